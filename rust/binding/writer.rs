//! `NativeWriter`: the native base class of `sessionwal.SessionWriter`.
//!
//! Records are encoded into an owned buffer while attached to the
//! interpreter; the write (and any fsync) happens detached, with the file's
//! mutex taken only there, so a writer shared by threads serializes whole
//! records and never waits on its mutex while holding the GIL.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use pyo3::exceptions::{PyRuntimeError, PyUnicodeEncodeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::batch::encode_batch;
use super::errors::to_pyerr;
use crate::encode::defer::{self, Deferred};
use crate::encode::string::LoneSurrogate;
use crate::encode::{self, Unsupported};
use crate::error::WalError;
use crate::file::WalFile;
use crate::sync_mode::SyncMode;

const CHUNK_PREFIX: &[u8] = b"{\"record_type\": \"chunk\", \"index\": ";
const KIND_KEY: &[u8] = b", \"kind\": ";
const PAYLOAD_KEY: &[u8] = b", \"payload\": ";
const CHUNK_END: &[u8] = b"}\n";

/// Scratch buffers above this size are dropped after use rather than kept,
/// so one huge record does not pin memory for the life of the thread.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

thread_local! {
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's reusable encode buffer, emptied. Taking the
/// buffer out (rather than borrowing it) keeps a re-entrant call safe.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = SCRATCH.with(Cell::take);
    buf.clear();
    let result = f(&mut buf);
    if buf.capacity() <= SCRATCH_KEEP_BYTES {
        SCRATCH.with(|slot| slot.set(buf));
    }
    result
}

static ENCODE_LINE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ENCODE_CHUNK_LINE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CHUNK_KIND_VALUE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static STR_ENUM_IS_ITS_VALUE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Appends `record` + newline; Python's `json.dumps` when the fast path declines.
pub(super) fn encode_record_into(
    py: Python<'_>,
    buf: &mut Vec<u8>,
    record: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let start = buf.len();
    // SAFETY: attached (we hold `py`), and `record` is a live object.
    if unsafe { encode::encode(buf, record.as_ptr(), 0) }.is_ok() {
        buf.push(b'\n');
        return Ok(());
    }
    buf.truncate(start);
    defer::rollback_from(buf, start);
    let line = ENCODE_LINE
        .import(py, "sessionwal._fallback", "encode_line")?
        .call1((record,))?;
    buf.extend_from_slice(line.cast::<PyBytes>()?.as_bytes());
    Ok(())
}

/// Encodes one record with the native encoder, falling back to `json.dumps`:
/// exactly the bytes (and errors) of `json.dumps(record, ensure_ascii=False) + "\n"`.
#[pyfunction]
pub fn encode_record<'py>(
    py: Python<'py>,
    record: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    with_scratch(|buf| {
        encode_record_into(py, buf, record)?;
        Ok(PyBytes::new(py, buf))
    })
}

/// The checks every `_open` starts with: the sync mode its arguments name,
/// and the final path, recorded once (a second `_open` is refused).
pub(super) fn begin_open(
    final_slot: &OnceLock<PathBuf>,
    final_path: &std::path::Path,
    sync: &str,
    sync_interval: f64,
) -> PyResult<SyncMode> {
    let mode = SyncMode::parse(sync, sync_interval)
        .ok_or_else(|| PyValueError::new_err(format!("invalid sync mode {sync:?}")))?;
    if final_slot.set(final_path.to_path_buf()).is_err() {
        return Err(PyRuntimeError::new_err("session writer is already open"));
    }
    Ok(mode)
}

#[pyclass(subclass, frozen, module = "sessionwal._native")]
pub struct NativeWriter {
    wal: Mutex<Option<WalFile>>,
    /// No more writes: set by `_seal`, `_close` and `abandon`.
    closed: AtomicBool,
    /// `_close` or `abandon` ran: the file is released.
    finished: AtomicBool,
    chunks_written: AtomicU64,
    final_path: OnceLock<PathBuf>,
    chunks: ChunkEncoder,
}

/// Turns `(index, row)` into a chunk line; shared with the asyncio writer.
#[derive(Default)]
pub(super) struct ChunkEncoder {
    /// A subclass's `build_chunk_record`; `None` means native chunk framing.
    chunk_builder: OnceLock<Option<Py<PyAny>>>,
    /// A str-Enum kind type whose members serialize as their `.value`,
    /// so its members can skip the Python call for `.value`.
    plain_kind_type: OnceLock<Py<PyAny>>,
}

impl NativeWriter {
    fn lock_wal(&self) -> MutexGuard<'_, Option<WalFile>> {
        // A panic while holding the lock leaves a WalFile whose own state
        // still says what is safe; keep using it.
        self.wal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn closed_error(&self) -> WalError {
        WalError::Closed {
            final_path: self.final_path.get().cloned().unwrap_or_default(),
        }
    }

    fn check_open(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(to_pyerr(py, self.closed_error()));
        }
        Ok(())
    }

    /// One `write(2)` of complete lines, detached from the interpreter, with
    /// the strings in `deferred` spliced in first (before the file's mutex:
    /// threads sharing a writer transcode in parallel). `Ok(false)`: a
    /// deferred string holds a lone surrogate and nothing was written.
    fn append(
        &self,
        py: Python<'_>,
        lines: &[u8],
        deferred: &Deferred,
        chunks: u64,
    ) -> PyResult<bool> {
        py.detach(|| {
            let spliced;
            let lines = if deferred.is_empty() {
                lines
            } else {
                match deferred.splice(lines) {
                    Ok(full) => {
                        spliced = full;
                        &spliced[..]
                    }
                    Err(LoneSurrogate) => return Ok(false),
                }
            };
            let mut wal = self.lock_wal();
            // Checked again under the lock: a write that passed `check_open`
            // must not land after `_seal` counted the chunks for the trailer.
            if self.closed.load(Ordering::Acquire) {
                return Err(self.closed_error());
            }
            let wal = wal.as_mut().ok_or_else(|| self.closed_error())?;
            wal.append(lines)?;
            self.chunks_written.fetch_add(chunks, Ordering::Relaxed);
            Ok(true)
        })
        .map_err(|err| to_pyerr(py, err))
    }
}

impl ChunkEncoder {
    /// Uses `builder` (a subclass's `build_chunk_record`) instead of native framing.
    pub(super) fn set_builder(&self, builder: Option<Py<PyAny>>) {
        let _ = self.chunk_builder.set(builder);
    }

    pub(super) fn encode_chunk_into(
        &self,
        py: Python<'_>,
        buf: &mut Vec<u8>,
        index: &Bound<'_, PyAny>,
        row: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Some(builder) = self.chunk_builder.get().and_then(Option::as_ref) {
            let record = builder.bind(py).call1((index, row))?;
            return encode_record_into(py, buf, &record);
        }
        let kind = row.getattr(intern!(py, "kind"))?;
        let payload = row.getattr(intern!(py, "payload"))?;
        let start = buf.len();
        if self
            .encode_chunk_fast(py, buf, index, &kind, &payload)
            .is_ok()
        {
            return Ok(());
        }
        buf.truncate(start);
        defer::rollback_from(buf, start);
        let line = ENCODE_CHUNK_LINE
            .import(py, "sessionwal._fallback", "encode_chunk_line")?
            .call1((index, row))?;
        buf.extend_from_slice(line.cast::<PyBytes>()?.as_bytes());
        Ok(())
    }

    /// The chunk record framed natively, keys in the builder's order.
    fn encode_chunk_fast(
        &self,
        py: Python<'_>,
        buf: &mut Vec<u8>,
        index: &Bound<'_, PyAny>,
        kind: &Bound<'_, PyAny>,
        payload: &Bound<'_, PyAny>,
    ) -> Result<(), Unsupported> {
        buf.extend_from_slice(CHUNK_PREFIX);
        // SAFETY (all three): attached, live objects; depth 1 is inside the record.
        unsafe { encode::encode(buf, index.as_ptr(), 1)? };
        buf.extend_from_slice(KIND_KEY);
        let kind_type = kind.get_type();
        let plain = self
            .plain_kind_type
            .get()
            .is_some_and(|known| known.is(&kind_type));
        if kind_type.is(py.get_type::<pyo3::types::PyString>()) || plain {
            unsafe { encode::write_pystr(buf, kind.as_ptr())? };
        } else {
            self.encode_kind_value(py, buf, kind)?;
        }
        buf.extend_from_slice(PAYLOAD_KEY);
        unsafe { encode::encode(buf, payload.as_ptr(), 1)? };
        buf.extend_from_slice(CHUNK_END);
        Ok(())
    }

    /// `kind.value` for enums (what the record builder writes), learning
    /// str-Enum types whose members are their own values.
    #[cold]
    fn encode_kind_value(
        &self,
        py: Python<'_>,
        buf: &mut Vec<u8>,
        kind: &Bound<'_, PyAny>,
    ) -> Result<(), Unsupported> {
        let value = CHUNK_KIND_VALUE
            .import(py, "sessionwal.records", "chunk_kind_value")
            .and_then(|f| f.call1((kind,)))
            .map_err(|_| Unsupported)?;
        // SAFETY: attached, live object.
        unsafe { encode::encode(buf, value.as_ptr(), 1)? };
        if self.plain_kind_type.get().is_none() {
            let kind_type = kind.get_type();
            let plain = STR_ENUM_IS_ITS_VALUE
                .import(py, "sessionwal.records", "str_enum_is_its_value")
                .and_then(|f| f.call1((&kind_type,)))
                .and_then(|r| r.is_truthy())
                .unwrap_or(false);
            if plain {
                let _ = self.plain_kind_type.set(kind_type.into_any().unbind());
            }
        }
        Ok(())
    }
}

#[pymethods]
impl NativeWriter {
    /// Accepts and ignores the subclass's constructor arguments: the Python
    /// `__init__` resolves paths and calls `_open`.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        NativeWriter {
            wal: Mutex::new(None),
            closed: AtomicBool::new(true),
            finished: AtomicBool::new(false),
            chunks_written: AtomicU64::new(0),
            final_path: OnceLock::new(),
            chunks: ChunkEncoder::default(),
        }
    }

    #[pyo3(signature = (partial_path, final_path, sync, sync_interval, chunk_builder))]
    fn _open(
        &self,
        py: Python<'_>,
        partial_path: PathBuf,
        final_path: PathBuf,
        sync: &str,
        sync_interval: f64,
        chunk_builder: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let mode = begin_open(&self.final_path, &final_path, sync, sync_interval)?;
        self.chunks.set_builder(chunk_builder);
        let wal = py
            .detach(|| WalFile::open(&partial_path, &final_path, mode))
            .map_err(|err| to_pyerr(py, err))?;
        *self.lock_wal() = Some(wal);
        self.closed.store(false, Ordering::Release);
        Ok(())
    }

    /// Appends one whole record (the header, or any dict a subclass writes).
    fn _append_record(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check_open(py)?;
        with_scratch(|buf| {
            encode_record_into(py, buf, record)?;
            self.append(py, buf, &Deferred::default(), 0).map(drop)
        })
    }

    /// Appends one chunk record.
    fn write_chunk(
        &self,
        py: Python<'_>,
        index: &Bound<'_, PyAny>,
        row: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.check_open(py)?;
        with_scratch(|buf| {
            let ((), deferred) = defer::collect(buf, |buf| {
                self.chunks.encode_chunk_into(py, buf, index, row)
            })?;
            if self.append(py, buf, &deferred, 1)? {
                return Ok(());
            }
            // A lone surrogate in a long string: encoding attached, without
            // deferral, raises exactly what the pure writer raises.
            drop(deferred);
            buf.clear();
            self.chunks.encode_chunk_into(py, buf, index, row)?;
            self.append(py, buf, &Deferred::default(), 1).map(drop)
        })
    }

    /// Appends many chunk records with one `write(2)`; if any record cannot
    /// be encoded, nothing is written.
    fn write_chunks(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check_open(py)?;
        // Only a list or tuple can be encoded a second time, which a lone
        // surrogate found in a deferred string needs (see `write_chunk`).
        let again =
            items.is_exact_instance_of::<PyList>() || items.is_exact_instance_of::<PyTuple>();
        with_scratch(|buf| {
            let (count, deferred) = if again {
                match defer::collect(buf, |buf| encode_batch(py, &self.chunks, buf, items)) {
                    Ok(encoded) => encoded,
                    // The error's position counts the batch's text, which the
                    // deferred strings are missing from: encode again without
                    // deferral to raise exactly what the pure writer raises.
                    Err(err) if err.is_instance_of::<PyUnicodeEncodeError>(py) => {
                        buf.clear();
                        let count = encode_batch(py, &self.chunks, buf, items)?;
                        (count, Deferred::default())
                    }
                    Err(err) => return Err(err),
                }
            } else {
                (
                    encode_batch(py, &self.chunks, buf, items)?,
                    Deferred::default(),
                )
            };
            if count == 0 || self.append(py, buf, &deferred, count)? {
                return Ok(());
            }
            drop(deferred);
            buf.clear();
            let count = encode_batch(py, &self.chunks, buf, items)?;
            self.append(py, buf, &Deferred::default(), count).map(drop)
        })
    }

    /// Stops further writes once the ones in flight are done and returns the
    /// final chunk count for the trailer; `None` if already closed.
    fn _seal(&self, py: Python<'_>) -> Option<u64> {
        py.detach(|| {
            let _wal = self.lock_wal();
            if self.closed.swap(true, Ordering::AcqRel) {
                return None;
            }
            Some(self.chunks_written.load(Ordering::Relaxed))
        })
    }

    /// Writes `trailer`, syncs per the mode, renames to the final path and
    /// releases the lock. A trailer that cannot be encoded releases the file
    /// without renaming, as the seed does.
    fn _close(&self, py: Python<'_>, trailer: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.finished.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.closed.store(true, Ordering::Release);
        with_scratch(|buf| {
            let encoded = encode_record_into(py, buf, trailer);
            py.detach(|| {
                let mut wal = self.lock_wal();
                let Some(wal) = wal.as_mut() else {
                    return Ok(());
                };
                match encoded {
                    Ok(()) => wal.close(buf),
                    Err(_) => {
                        wal.abandon();
                        Ok(())
                    }
                }
            })
            .map_err(|err| to_pyerr(py, err))?;
            encoded
        })
    }

    /// Releases the file without a trailer or rename; the partial file stays.
    fn abandon(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        self.finished.store(true, Ordering::Release);
        py.detach(|| {
            if let Some(wal) = self.lock_wal().as_mut() {
                wal.abandon();
            }
        });
    }

    /// Number of chunk records written so far.
    #[getter]
    fn chunks_written(&self) -> u64 {
        self.chunks_written.load(Ordering::Relaxed)
    }

    /// True after `close()` or `abandon()` (and before the file is open).
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
