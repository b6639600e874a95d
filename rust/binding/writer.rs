//! `NativeWriter`: the native base class of `sessionwal.SessionWriter`.
//!
//! Records are encoded into an owned buffer while attached to the
//! interpreter; the write (and any fsync) happens detached, with the file's
//! mutex taken only there, so a writer shared by threads serializes whole
//! records and never waits on its mutex while holding the GIL.
//!
//! Every method checks the fork generation before it takes the mutex: in a
//! `fork()` child the mutex may be a copy taken by a parent thread that does
//! not exist there, and would never be released.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};

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
use crate::fork;

/// The life of a writer, in [`NativeWriter::phase`]. Only ever moves forward.
mod phase {
    /// Before `_open` succeeded.
    pub const UNOPENED: u8 = 0;
    /// Taking writes.
    pub const OPEN: u8 = 1;
    /// `close()` has begun: `_seal` counted the chunks and the trailer is
    /// being built. No more writes; `abandon()` is a no-op from here, so a
    /// close that has begun either finishes or raises.
    pub const SEALED: u8 = 2;
    /// `_close` or `abandon` ran: the file is released (or being released).
    pub const FINISHED: u8 = 3;
}

#[pyclass(subclass, frozen, module = "sessionwal._native")]
pub struct NativeWriter {
    wal: Mutex<Option<WalFile>>,
    /// One of the [`phase`] constants.
    phase: AtomicU8,
    /// [`fork::generation`] when `_open` ran.
    fork_generation: AtomicU64,
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

    /// `Forked` in a `fork()` child of the process that opened the file,
    /// while the file is held (open, or sealed by a close). Checked before
    /// the mutex is taken (see the module doc).
    fn check_not_forked(&self) -> Result<(), WalError> {
        let held = matches!(
            self.phase.load(Ordering::Acquire),
            phase::OPEN | phase::SEALED
        );
        if held && self.fork_generation.load(Ordering::Acquire) != fork::generation() {
            return Err(WalError::Forked);
        }
        Ok(())
    }

    fn check_open(&self, py: Python<'_>) -> PyResult<()> {
        self.check_not_forked().map_err(|err| to_pyerr(py, err))?;
        if self.phase.load(Ordering::Acquire) != phase::OPEN {
            return Err(to_pyerr(py, self.closed_error()));
        }
        Ok(())
    }

    /// Moves to [`phase::FINISHED`] unless already there; true if it moved.
    fn finish(&self) -> bool {
        self.phase.swap(phase::FINISHED, Ordering::AcqRel) != phase::FINISHED
    }

    /// Releases the file without a trailer or rename.
    fn release(&self, py: Python<'_>) {
        let forked = self.fork_generation.load(Ordering::Acquire) != fork::generation();
        py.detach(|| {
            let mut wal = if forked {
                // In a fork() child only a mutex nobody held at the fork can
                // be taken; otherwise the descriptor stays open until exit
                // (the parent's flock is not the child's to drop either way:
                // see WalFile::release).
                match self.wal.try_lock() {
                    Ok(wal) => wal,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => return,
                }
            } else {
                self.lock_wal()
            };
            if let Some(wal) = wal.as_mut() {
                wal.abandon();
            }
        });
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
            if self.phase.load(Ordering::Acquire) != phase::OPEN {
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
            phase: AtomicU8::new(phase::UNOPENED),
            fork_generation: AtomicU64::new(0),
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
        self.fork_generation
            .store(fork::generation(), Ordering::Release);
        self.phase.store(phase::OPEN, Ordering::Release);
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
            if count == 0 {
                return Ok(());
            }
            // Splice the long strings in before the last interrupt check, so
            // that check is the last thing before the write.
            let lines = if deferred.is_empty() {
                Cow::Borrowed(&buf[..])
            } else if let Ok(full) = py.detach(|| deferred.splice(buf)) {
                Cow::Owned(full)
            } else {
                // A lone surrogate: see `write_chunk`.
                drop(deferred);
                buf.clear();
                let count = encode_batch(py, &self.chunks, buf, items)?;
                py.check_signals()?;
                return self.append(py, buf, &Deferred::default(), count).map(drop);
            };
            // An interrupt (Ctrl-C) that arrived while the batch was encoded
            // raises here, with nothing written; once the write has begun,
            // nothing below raises for it (it surfaces after the return).
            py.check_signals()?;
            self.append(py, &lines, &Deferred::default(), count)
                .map(drop)
        })
    }

    /// Begins `close()`: stops further writes once the ones in flight are
    /// done and returns the final chunk count for the trailer; `None` if
    /// already closed or abandoned. From here `abandon()` is a no-op: the
    /// close either finishes with `_close` or gives up with `_abandon_close`.
    fn _seal(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.check_not_forked().map_err(|err| to_pyerr(py, err))?;
        Ok(py.detach(|| {
            let _wal = self.lock_wal();
            self.phase
                .compare_exchange(
                    phase::OPEN,
                    phase::SEALED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .ok()
                .map(|_| self.chunks_written.load(Ordering::Relaxed))
        }))
    }

    /// Writes `trailer`, syncs per the mode, renames to the final path and
    /// releases the lock. A trailer that cannot be encoded releases the file
    /// without renaming, as the seed does.
    fn _close(&self, py: Python<'_>, trailer: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check_not_forked().map_err(|err| to_pyerr(py, err))?;
        if !self.finish() {
            return Ok(());
        }
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

    /// `close()`'s way out when its trailer hook raised: releases the file
    /// `_seal` kept for it, without a trailer or rename.
    fn _abandon_close(&self, py: Python<'_>) {
        if self.finish() {
            self.release(py);
        }
    }

    /// Releases the file without a trailer or rename; the partial file stays.
    /// A no-op once `close()` has begun (it finishes or raises) or ended.
    fn abandon(&self, py: Python<'_>) {
        let abandoned = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                matches!(now, phase::UNOPENED | phase::OPEN).then_some(phase::FINISHED)
            })
            .is_ok();
        if abandoned {
            self.release(py);
        }
    }

    /// Number of chunk records written so far.
    #[getter]
    fn chunks_written(&self) -> u64 {
        self.chunks_written.load(Ordering::Relaxed)
    }

    /// True after `close()` or `abandon()` (and before the file is open).
    #[getter]
    fn closed(&self) -> bool {
        self.phase.load(Ordering::Acquire) != phase::OPEN
    }
}
