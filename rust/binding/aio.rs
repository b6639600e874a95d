//! `NativeAsyncWriter`: the native base class of
//! `sessionwal.aio.AsyncSessionWriter`.
//!
//! `awrite_chunk` encodes the record while attached (so the bytes are fixed
//! at call time), hands them to the writer's [`WriteQueue`] and returns an
//! awaitable: one shared, already-done future when the record fit in the
//! queue, or a future from the Python side (`_wait_admitted` /
//! `_wait_written`) when the caller has to wait for room or, under
//! `sync="always"`, for the disk. The shared I/O engine's threads never
//! touch the interpreter; they report progress through the doorbell of the
//! writer's event loop, and only when the loop armed the writer for a
//! threshold.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyUnicodeEncodeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::batch::encode_batch;
use super::encoding::{encode_record_into, with_scratch, ChunkEncoder};
use super::errors::to_pyerr;
use super::session::begin_open;
use crate::doorbell::{Doorbell, Ringer};
use crate::encode::defer::{self, Deferred as DeferredText};
use crate::engine;
use crate::error::{Result as WalResult, WalError};
use crate::file::WalFile;
use crate::queue::{Deferred, Fill, Finish, Limits, Progress, Submitted, WriteQueue};
use crate::sync_mode::SyncMode;

/// How long an idle I/O thread, woken by a record nobody waits on, waits for
/// more before writing (see `Engine::start`). Bounds the extra delay before
/// a queued record reaches the OS; waiters (flush, close, backpressure,
/// `sync="always"`) cut it short.
const LINGER: Duration = Duration::from_micros(200);

/// Identifies a writer to its loop's doorbell.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Long strings whose text an I/O thread has written: their references are
/// released by the loop thread on its next call (attached), never by an
/// I/O thread, which does not hold the interpreter.
static RELEASED: Mutex<Vec<DeferredText>> = Mutex::new(Vec::new());
static ANY_RELEASED: AtomicBool = AtomicBool::new(false);

/// Hands the strings of a written submission back for release.
struct Parked(Option<DeferredText>);

impl Drop for Parked {
    fn drop(&mut self) {
        if let Some(text) = self.0.take() {
            RELEASED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(text);
            ANY_RELEASED.store(true, Ordering::Release);
        }
    }
}

/// Drops (attached: decrefs) what the I/O threads are done with.
fn release_written(_py: Python<'_>) {
    // A plain load first: the common case (nothing to release) stays a read.
    if ANY_RELEASED.load(Ordering::Relaxed) && ANY_RELEASED.swap(false, Ordering::Acquire) {
        let done = std::mem::take(&mut *RELEASED.lock().unwrap_or_else(|p| p.into_inner()));
        drop(done);
    }
}

/// An event loop's doorbell (see `doorbell.rs`): the one descriptor the loop
/// watches for every asyncio writer it owns.
#[pyclass(frozen, module = "sessionwal._native")]
pub struct NativeDoorbell {
    bell: Arc<Doorbell>,
}

#[pymethods]
impl NativeDoorbell {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(NativeDoorbell {
            bell: Doorbell::new()?,
        })
    }

    /// The descriptor to watch with `loop.add_reader`.
    #[getter]
    fn fd(&self) -> i32 {
        self.bell.fd()
    }

    /// The tokens of the writers that rang since the last call.
    fn take(&self) -> Vec<u64> {
        self.bell.take()
    }
}

/// How many threads serve every asyncio writer of the process: (write
/// threads, the most threads for `sync="always"` writers).
#[pyfunction]
pub fn io_threads() -> PyResult<(usize, usize)> {
    let threads = engine::threads()?;
    Ok((threads.writes, threads.syncs))
}

/// Sets the number of write threads (and, with `syncs`, the most threads for
/// `sync="always"` writers); only before the first writer opens.
#[pyfunction]
#[pyo3(signature = (threads, syncs=None))]
pub fn set_io_threads(threads: usize, syncs: Option<usize>) -> PyResult<()> {
    engine::configure_threads(threads, syncs).map_err(PyRuntimeError::new_err)
}

/// Waits, detached, until the I/O threads have nothing queued or running:
/// every record queued so far is in the OS (run at interpreter exit).
#[pyfunction]
pub fn drain_io(py: Python<'_>) {
    py.detach(engine::drain_shared);
}

#[pyclass(subclass, frozen, module = "sessionwal._native")]
pub struct NativeAsyncWriter {
    /// The file between `_open` and `_start`; then it belongs to the queue.
    opened: Mutex<Option<WalFile>>,
    queue: OnceLock<WriteQueue>,
    /// The event loop the writer belongs to: calls from any other are refused.
    event_loop: OnceLock<Py<PyAny>>,
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

    /// Runs `f` on the started queue; its errors (a forked child, a latched
    /// failure) become the Python exception.
    fn with_queue<T>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&WriteQueue) -> WalResult<T>,
    ) -> PyResult<T> {
        let queue = self
            .queue
            .get()
            .ok_or_else(|| PyRuntimeError::new_err("the asyncio session writer is not started"))?;
        f(queue).map_err(|err| to_pyerr(py, err))
    }

    /// Like `with_queue`, with `default` before the start (the getters).
    fn read_queue<T>(
        &self,
        py: Python<'_>,
        default: T,
        f: impl FnOnce(&WriteQueue) -> WalResult<T>,
    ) -> PyResult<T> {
        match self.queue.get() {
            None => Ok(default),
            Some(queue) => f(queue).map_err(|err| to_pyerr(py, err)),
        }
    }

    /// Refuses a call made outside the writer's event loop, before it has
    /// any effect: a record queued from another loop would be written while
    /// its caller could not await it.
    /// A forked child is told so first: it has no running loop of its own.
    ///
    /// The fast path compares the loop's `_thread_id` (set by asyncio while
    /// the loop runs) with this thread: a thread runs one loop at a time, so
    /// a match means the running loop is the writer's. That costs an
    /// attribute read; `asyncio._get_running_loop()` costs a `getpid()`
    /// syscall per call on 3.11, so it only runs when the fast path fails.
    fn check_loop(&self, py: Python<'_>) -> PyResult<()> {
        if self.queue.get().is_some_and(WriteQueue::forked) {
            return Err(to_pyerr(py, WalError::Forked));
        }
        let Some(owner) = self.event_loop.get() else {
            return Ok(());
        };
        let owner = owner.bind(py);
        if let Ok(thread_id) = owner.getattr(intern!(py, "_thread_id")) {
            // SAFETY: reads the calling thread's identifier; no state involved.
            let here = unsafe { pyo3::ffi::PyThread_get_thread_ident() };
            if thread_id.extract::<std::ffi::c_ulong>().ok() == Some(here) {
                return Ok(());
            }
        }
        let running = GET_RUNNING_LOOP
            .import(py, "asyncio.events", "_get_running_loop")?
            .call0()?;
        if running.is(owner) {
            return Ok(());
        }
        let path = self.final_path.get().cloned().unwrap_or_default();
        Err(PyRuntimeError::new_err(if running.is_none() {
            format!(
                "AsyncSessionWriter({}) needs its running event loop: no running event loop",
                path.display()
            )
        } else {
            format!(
                "AsyncSessionWriter({}) is attached to a different event loop",
                path.display()
            )
        }))
    }

    fn submit(&self, py: Python<'_>, lines: &[u8], chunks: u64) -> PyResult<Submitted> {
        self.with_queue(py, |q| q.submit(lines, chunks, || self.closed_error()))
    }

    /// Submits `lines`, whose long strings `text` left out (see
    /// `encode::defer`): an I/O thread escapes them into place just before
    /// the write, so a large batch holds the loop only for the walk over
    /// its records. Only immutable str contents are left for later, so the
    /// payload is still captured at call time. None when a left-out string
    /// holds a lone surrogate, found now rather than after acknowledging:
    /// the caller encodes again without deferral, which raises exactly what
    /// the pure writer raises.
    fn submit_deferred(
        &self,
        py: Python<'_>,
        lines: &[u8],
        chunks: u64,
        text: DeferredText,
    ) -> PyResult<Option<Submitted>> {
        if text.is_empty() {
            return self.submit(py, lines, chunks).map(Some);
        }
        if py.detach(|| text.has_lone_surrogate()) {
            return Ok(None);
        }
        let extra_bytes = text.text_len();
        let parked = Parked(Some(text));
        let fill: Fill = Box::new(move |holes: &[u8], out: &mut Vec<u8>| {
            if let Some(text) = &parked.0 {
                // Cannot fail: lone surrogates were looked for above.
                let _ = text.splice_into(holes, out);
            }
        });
        let deferred = Deferred { extra_bytes, fill };
        self.with_queue(py, |q| {
            q.submit_with(lines, chunks, Some(deferred), || self.closed_error())
        })
        .map(Some)
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

    /// Raises what a submission would raise now (closed, failed), else nothing.
    fn submit_check(&self, py: Python<'_>) -> PyResult<()> {
        self.with_queue(py, |q| {
            if q.is_finishing()? {
                return Err(self.closed_error());
            }
            match q.failure()? {
                Some(failure) => Err(failure),
                None => Ok(()),
            }
        })
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
            event_loop: OnceLock::new(),
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
    /// here on), then hands the file to the shared I/O engine, reporting to
    /// `bell`. Returns the writer's token on that doorbell. On error the
    /// file is released.
    /// `bounds` is (max queued chunks, max queued bytes).
    #[pyo3(signature = (header, event_loop, ready, bell, bounds))]
    fn _start(
        &self,
        py: Python<'_>,
        header: &Bound<'_, PyAny>,
        event_loop: Py<PyAny>,
        ready: Py<PyAny>,
        bell: &NativeDoorbell,
        bounds: (u64, usize),
    ) -> PyResult<u64> {
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
        let engine = engine::shared(LINGER)?;
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let ringer = Arc::new(Ringer {
            bell: Arc::clone(&bell.bell),
            token,
        });
        let (max_chunks, max_bytes) = bounds;
        let limits = Limits {
            max_chunks,
            max_bytes,
        };
        let durable = self.durable_each.get().copied().unwrap_or(false);
        let queue = WriteQueue::start(engine, Box::new(wal), ringer, limits, durable);
        let _ = self.ready.set(ready);
        let _ = self.event_loop.set(event_loop);
        let _ = self.queue.set(queue);
        Ok(token)
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
        this.check_loop(py)?;
        release_written(py);
        let submitted = with_scratch(|buf| {
            let ((), text) = defer::collect(buf, |buf| {
                this.chunks.encode_chunk_into(py, buf, index, row)
            })?;
            if let Some(submitted) = this.submit_deferred(py, buf, 1, text)? {
                return Ok(submitted);
            }
            buf.clear();
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
        this.check_loop(py)?;
        release_written(py);
        // Only a list or tuple can be encoded a second time, which a lone
        // surrogate in a left-out string needs (as in the sync writer).
        let again =
            items.is_exact_instance_of::<PyList>() || items.is_exact_instance_of::<PyTuple>();
        let submitted = with_scratch(|buf| {
            let (count, text) = if again {
                match defer::collect(buf, |buf| encode_batch(py, &this.chunks, buf, items)) {
                    Ok(encoded) => encoded,
                    // The error's position counts the batch's text, which the
                    // left-out strings are missing from: encode again in full.
                    Err(err) if err.is_instance_of::<PyUnicodeEncodeError>(py) => {
                        buf.clear();
                        let count = encode_batch(py, &this.chunks, buf, items)?;
                        (count, DeferredText::default())
                    }
                    Err(err) => return Err(err),
                }
            } else {
                let count = encode_batch(py, &this.chunks, buf, items)?;
                (count, DeferredText::default())
            };
            if count == 0 {
                return Ok(None);
            }
            if let Some(submitted) = this.submit_deferred(py, buf, count, text)? {
                return Ok(Some(submitted));
            }
            buf.clear();
            let count = encode_batch(py, &this.chunks, buf, items)?;
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

    /// Raises unless called from the writer's event loop.
    fn _check_loop(&self, py: Python<'_>) -> PyResult<()> {
        self.check_loop(py)
    }

    /// The ticket whose writing means everything submitted so far is written.
    fn _last_ticket(&self, py: Python<'_>) -> PyResult<u64> {
        self.with_queue(py, WriteQueue::last_ticket)
    }

    /// (admitted, written, failed, finished).
    fn _poll(&self, py: Python<'_>) -> PyResult<(u64, u64, bool, bool)> {
        let p: Progress = self.with_queue(py, WriteQueue::progress)?;
        Ok((p.admitted, p.written, p.failed, p.finished))
    }

    /// See `WriteQueue::arm`.
    fn _arm(
        &self,
        py: Python<'_>,
        admitted_at: u64,
        written_at: u64,
        finished: bool,
    ) -> PyResult<bool> {
        self.with_queue(py, |q| q.arm(admitted_at, written_at, finished))
    }

    /// The latched write failure as a fresh exception, or None.
    fn _failure(&self, py: Python<'_>) -> PyResult<Option<PyErr>> {
        Ok(self
            .with_queue(py, WriteQueue::failure)?
            .map(|err| to_pyerr(py, err)))
    }

    /// Stops intake, so `chunks_submitted` is final; false if already stopped.
    fn _seal(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_queue(py, WriteQueue::seal)
    }

    /// Stops intake and queues the close with `trailer` behind everything
    /// submitted. A trailer that cannot be encoded abandons instead (as the
    /// sync writer does) and raises.
    fn _finish_close(&self, py: Python<'_>, trailer: &Bound<'_, PyAny>) -> PyResult<()> {
        let encoded =
            with_scratch(|buf| encode_record_into(py, buf, trailer).map(|()| buf.clone()));
        match encoded {
            Ok(lines) => self.with_queue(py, |q| q.finish(Finish::Close(lines)).map(drop)),
            Err(err) => {
                self.with_queue(py, |q| q.finish(Finish::Abandon))?;
                Err(err)
            }
        }
    }

    /// Stops intake; once everything submitted is written the file is
    /// released and the partial file stays.
    fn _finish_abandon(&self, py: Python<'_>) -> PyResult<()> {
        self.with_queue(py, |q| q.finish(Finish::Abandon).map(drop))
    }

    /// None while finishing is pending or went well; raises how it failed.
    fn _finish_result(&self, py: Python<'_>) -> PyResult<()> {
        match self.with_queue(py, WriteQueue::finish_result)? {
            Some(Err(err)) => Err(to_pyerr(py, err)),
            _ => Ok(()),
        }
    }

    /// Test hook: hold the writer's turns as if the disk did not answer.
    fn _stall(&self, py: Python<'_>, stalled: bool) -> PyResult<()> {
        self.with_queue(py, |q| q.set_stalled(stalled))
    }

    /// Chunk records in the file (on disk under `sync="always"`).
    #[getter]
    fn chunks_written(&self, py: Python<'_>) -> PyResult<u64> {
        self.read_queue(py, 0, |q| Ok(q.progress()?.chunks_written))
    }

    /// Chunk records accepted so far, written or not.
    #[getter]
    fn chunks_submitted(&self, py: Python<'_>) -> PyResult<u64> {
        self.read_queue(py, 0, |q| Ok(q.progress()?.chunks_submitted))
    }

    /// Chunk records in the queue: admitted, not yet written.
    #[getter]
    fn queued_chunks(&self, py: Python<'_>) -> PyResult<u64> {
        self.read_queue(py, 0, |q| Ok(q.progress()?.queued_chunks))
    }

    /// Bytes in the queue: admitted, not yet written.
    #[getter]
    fn queued_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        self.read_queue(py, 0, |q| Ok(q.progress()?.queued_bytes))
    }

    /// True once `aclose()` or `abandon()` was called (or before the start).
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        self.read_queue(py, true, WriteQueue::is_finishing)
    }
}
