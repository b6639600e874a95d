//! `NativeAsyncWriter`: the native base class of
//! `sessionwal.aio.AsyncSessionWriter`.
//!
//! `awrite_chunk` encodes the record while attached (so the bytes are fixed
//! at call time), hands them to the writer's [`WriteQueue`] and returns an
//! awaitable: one shared, already-done future when the record fit in the
//! queue, or a future from the Python side (`_wait_admitted` /
//! `_wait_written`) when the caller has to wait for room or, under
//! `sync="always"`, for the disk. The background thread never touches the
//! interpreter; it reports progress through an eventfd the event loop
//! watches, and only when the loop armed it for a threshold.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::batch::encode_batch;
use super::encoding::{encode_record_into, with_scratch, ChunkEncoder};
use super::errors::to_pyerr;
use super::session::begin_open;
use crate::error::WalError;
use crate::file::WalFile;
use crate::queue::{Finish, Limits, Notify, Progress, Submitted, WriteQueue};
use crate::sync_mode::SyncMode;

/// How long the writer thread, woken by a record after being idle, waits for
/// more before writing (see `Limits::linger`). Bounds the extra delay before
/// a queued record reaches the OS; waiters (flush, close, backpressure,
/// `sync="always"`) cut it short.
const LINGER: Duration = Duration::from_micros(200);

/// The worker's doorbell: readable on the loop's selector once rung. An
/// eventfd on Linux; a non-blocking pipe elsewhere (macOS has no eventfd).
struct EventFd {
    read: OwnedFd,
    #[cfg(not(target_os = "linux"))]
    write: OwnedFd,
}

impl EventFd {
    #[cfg(target_os = "linux")]
    fn new() -> std::io::Result<Self> {
        // SAFETY: plain syscall; a valid descriptor is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(EventFd {
            read: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> std::io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: pipe fills both descriptors on success; we own them after.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [read.as_raw_fd(), write.as_raw_fd()] {
            // SAFETY: fcntl on descriptors we own.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
            }
        }
        Ok(EventFd { read, write })
    }

    fn readable_fd(&self) -> std::os::fd::RawFd {
        self.read.as_raw_fd()
    }

    /// Resets the doorbell so the descriptor stops polling readable.
    fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a local buffer from a descriptor we own. EAGAIN
        // (nothing rung) is the only expected failure and means the same. An
        // eventfd hands back its whole counter in one 8-byte read; a pipe may
        // hold several bytes, so read until it is empty.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0
            && cfg!(not(target_os = "linux"))
        {}
    }
}

impl Notify for EventFd {
    fn notify(&self) {
        let one = 1u64;
        #[cfg(target_os = "linux")]
        let fd = self.read.as_raw_fd();
        #[cfg(not(target_os = "linux"))]
        let fd = self.write.as_raw_fd();
        // SAFETY: writes 8 bytes from a u64. Never blocks (non-blocking); a
        // saturated counter or a full pipe is still readable, which is all
        // the loop needs.
        unsafe { libc::write(fd, (&raw const one).cast(), 8) };
    }
}

#[pyclass(subclass, frozen, module = "sessionwal._native")]
pub struct NativeAsyncWriter {
    /// The file between `_open` and `_start`; then it belongs to the worker.
    opened: Mutex<Option<WalFile>>,
    queue: OnceLock<WriteQueue>,
    events: OnceLock<Arc<EventFd>>,
    final_path: OnceLock<PathBuf>,
    durable_each: OnceLock<bool>,
    /// A done future of the writer's loop: the answer when nothing needs awaiting.
    ready: OnceLock<Py<PyAny>>,
    chunks: ChunkEncoder,
}

impl NativeAsyncWriter {
    fn closed_error(&self) -> WalError {
        WalError::Closed {
            final_path: self.final_path.get().cloned().unwrap_or_default(),
        }
    }

    fn queue(&self) -> PyResult<&WriteQueue> {
        self.queue
            .get()
            .ok_or_else(|| PyRuntimeError::new_err("the asyncio session writer is not started"))
    }

    fn submit(&self, py: Python<'_>, lines: &[u8], chunks: u64) -> PyResult<Submitted> {
        self.queue()?
            .submit(lines, chunks, || self.closed_error())
            .map_err(|err| to_pyerr(py, err))
    }

    /// What the caller awaits for a submission.
    fn acknowledge<'py>(
        slf: &Bound<'py, Self>,
        submitted: Submitted,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        if this.durable_each.get().copied().unwrap_or(false) {
            return slf.call_method1(intern!(py, "_wait_written"), (submitted.ticket,));
        }
        if !submitted.admitted {
            return slf.call_method1(intern!(py, "_wait_admitted"), (submitted.ticket,));
        }
        this.ready_future(py)
    }

    fn ready_future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.ready
            .get()
            .map(|ready| ready.bind(py).clone())
            .ok_or_else(|| PyRuntimeError::new_err("the asyncio session writer is not started"))
    }
}

#[pymethods]
impl NativeAsyncWriter {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        NativeAsyncWriter {
            opened: Mutex::new(None),
            queue: OnceLock::new(),
            events: OnceLock::new(),
            final_path: OnceLock::new(),
            durable_each: OnceLock::new(),
            ready: OnceLock::new(),
            chunks: ChunkEncoder::default(),
        }
    }

    /// Opens and locks the partial file (the header comes with `_start`).
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
        let _ = self.durable_each.set(mode == SyncMode::Always);
        self.chunks.set_builder(chunk_builder);
        let wal = py
            .detach(|| WalFile::open(&partial_path, &final_path, mode))
            .map_err(|err| to_pyerr(py, err))?;
        *self.opened.lock().unwrap_or_else(|p| p.into_inner()) = Some(wal);
        Ok(())
    }

    /// Writes `header` (before returning: the file is recognizable from
    /// here on), then starts the background writer. Returns the eventfd the
    /// loop should watch. On error the file is released.
    #[pyo3(signature = (header, ready, max_chunks, max_bytes))]
    fn _start(
        &self,
        py: Python<'_>,
        header: &Bound<'_, PyAny>,
        ready: Py<PyAny>,
        max_chunks: u64,
        max_bytes: usize,
    ) -> PyResult<i32> {
        let mut wal = self
            .opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the asyncio session writer is not open"))?;
        with_scratch(|buf| {
            encode_record_into(py, buf, header)?;
            py.detach(|| wal.append(buf))
                .map_err(|err| to_pyerr(py, err))
        })?;
        let events = Arc::new(EventFd::new()?);
        let limits = Limits {
            max_chunks,
            max_bytes,
            linger: LINGER,
        };
        let queue = WriteQueue::start(Box::new(wal), events.clone(), limits)?;
        let fd = events.readable_fd();
        let _ = self.ready.set(ready);
        let _ = self.events.set(events);
        let _ = self.queue.set(queue);
        Ok(fd)
    }

    /// Releases a file opened by `_open` that never started (a failed header).
    fn _release_unstarted(&self) {
        if let Some(mut wal) = self.opened.lock().unwrap_or_else(|p| p.into_inner()).take() {
            wal.abandon();
        }
    }

    /// Queues one chunk record, encoded now; returns what to await.
    fn awrite_chunk<'py>(
        slf: &Bound<'py, Self>,
        index: &Bound<'py, PyAny>,
        row: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let submitted = with_scratch(|buf| {
            this.chunks.encode_chunk_into(py, buf, index, row)?;
            this.submit(py, buf, 1)
        })?;
        Self::acknowledge(slf, submitted)
    }

    /// Queues many chunk records as one unit, all encoded now; if any cannot
    /// be encoded nothing is queued. Returns what to await.
    fn awrite_chunks<'py>(
        slf: &Bound<'py, Self>,
        items: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let submitted = with_scratch(|buf| {
            let count = encode_batch(py, &this.chunks, buf, items)?;
            if count == 0 {
                return Ok(None);
            }
            this.submit(py, buf, count).map(Some)
        })?;
        match submitted {
            Some(submitted) => Self::acknowledge(slf, submitted),
            None => {
                // Nothing to write, but a closed or failed writer still says so.
                this.submit_check(py)?;
                this.ready_future(py)
            }
        }
    }

    /// The ticket whose writing means everything submitted so far is written.
    fn _last_ticket(&self) -> PyResult<u64> {
        Ok(self.queue()?.last_ticket())
    }

    /// (admitted, written, failed, finished), and resets the doorbell.
    fn _poll(&self) -> PyResult<(u64, u64, bool, bool)> {
        if let Some(events) = self.events.get() {
            events.drain();
        }
        let p: Progress = self.queue()?.progress();
        Ok((p.admitted, p.written, p.failed, p.finished))
    }

    /// See `WriteQueue::arm`.
    fn _arm(&self, admitted_at: u64, written_at: u64, finished: bool) -> PyResult<bool> {
        Ok(self.queue()?.arm(admitted_at, written_at, finished))
    }

    /// The latched write failure as a fresh exception, or None.
    fn _failure(&self, py: Python<'_>) -> PyResult<Option<PyErr>> {
        Ok(self.queue()?.failure().map(|err| to_pyerr(py, err)))
    }

    /// Stops intake, so `chunks_submitted` is final; false if already stopped.
    fn _seal(&self) -> PyResult<bool> {
        Ok(self.queue()?.seal())
    }

    /// Stops intake and queues the close with `trailer` behind everything
    /// submitted. A trailer that cannot be encoded abandons instead (as the
    /// sync writer does) and raises.
    fn _finish_close(&self, py: Python<'_>, trailer: &Bound<'_, PyAny>) -> PyResult<()> {
        let queue = self.queue()?;
        let encoded =
            with_scratch(|buf| encode_record_into(py, buf, trailer).map(|()| buf.clone()));
        match encoded {
            Ok(lines) => {
                queue.finish(Finish::Close(lines));
                Ok(())
            }
            Err(err) => {
                queue.finish(Finish::Abandon);
                Err(err)
            }
        }
    }

    /// Stops intake; once everything submitted is written the file is
    /// released and the partial file stays.
    fn _finish_abandon(&self) -> PyResult<()> {
        self.queue()?.finish(Finish::Abandon);
        Ok(())
    }

    /// None while finishing is pending or went well; raises how it failed.
    fn _finish_result(&self, py: Python<'_>) -> PyResult<()> {
        match self.queue()?.finish_result() {
            Some(Err(err)) => Err(to_pyerr(py, err)),
            _ => Ok(()),
        }
    }

    /// Test hook: hold the background writer as if the disk did not answer.
    fn _stall(&self, stalled: bool) -> PyResult<()> {
        self.queue()?.set_stalled(stalled);
        Ok(())
    }

    /// Chunk records in the file (on disk under `sync="always"`).
    #[getter]
    fn chunks_written(&self) -> u64 {
        self.queue.get().map_or(0, |q| q.progress().chunks_written)
    }

    /// Chunk records accepted so far, written or not.
    #[getter]
    fn chunks_submitted(&self) -> u64 {
        self.queue
            .get()
            .map_or(0, |q| q.progress().chunks_submitted)
    }

    /// Chunk records in the queue: admitted, not yet written.
    #[getter]
    fn queued_chunks(&self) -> u64 {
        self.queue.get().map_or(0, |q| q.progress().queued_chunks)
    }

    /// Bytes in the queue: admitted, not yet written.
    #[getter]
    fn queued_bytes(&self) -> usize {
        self.queue.get().map_or(0, |q| q.progress().queued_bytes)
    }

    /// True once `aclose()` or `abandon()` was called (or before the start).
    #[getter]
    fn closed(&self) -> bool {
        self.queue.get().is_none() || self.is_finishing()
    }
}

impl NativeAsyncWriter {
    /// Raises what a submission would raise now (closed, failed), else nothing.
    fn submit_check(&self, py: Python<'_>) -> PyResult<()> {
        let queue = self.queue()?;
        if queue.is_finishing() {
            return Err(to_pyerr(py, self.closed_error()));
        }
        match queue.failure() {
            Some(failure) => Err(to_pyerr(py, failure)),
            None => Ok(()),
        }
    }

    fn is_finishing(&self) -> bool {
        self.queue.get().is_some_and(WriteQueue::is_finishing)
    }
}
