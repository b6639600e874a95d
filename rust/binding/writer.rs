//! `NativeWriter`: the native base class of `sessionwal.SessionWriter`.
//!
//! Records are encoded into an owned buffer while attached to the
//! interpreter; the write (and any fsync) happens detached, with the file's
//! mutex taken only there, so a writer shared by threads serializes whole
//! records and never waits on its mutex while holding the GIL.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use pyo3::exceptions::PyUnicodeEncodeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::batch::encode_batch;
use super::encoding::{encode_record_into, with_scratch, ChunkEncoder};
use super::errors::to_pyerr;
use super::session::{self, open_session, OpenArgs};
use crate::encode::defer::{self, Deferred};
use crate::encode::string::LoneSurrogate;
use crate::error::WalError;
use crate::file::WalFile;

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

impl NativeWriter {
    fn lock_wal(&self) -> MutexGuard<'_, Option<WalFile>> {
        // A panic while holding the lock leaves a WalFile whose own state
        // still says what is safe; keep using it.
        self.wal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn closed_error(&self) -> WalError {
        session::closed_error(&self.final_path)
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
        let args = OpenArgs {
            partial_path: &partial_path,
            final_path: &final_path,
            sync,
            sync_interval,
            chunk_builder,
        };
        let (wal, _mode) = open_session(py, &self.final_path, &self.chunks, args)?;
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
