//! The bounded hand-off behind `sessionwal.aio.AsyncSessionWriter`: callers
//! on the event loop submit already-encoded records, one background thread
//! per writer writes them, and progress is reported through counters and a
//! [`Notify`] hook (an eventfd the loop watches). Plain Rust, no Python.
//!
//! Why it is shaped this way:
//!
//! * Admitted records are appended to one contiguous `pending` buffer, so
//!   whatever piles up while a `write(2)` (or an fdatasync) is in flight
//!   goes out as the next single write: coalescing costs nothing extra and
//!   `sync="always"` becomes group commit.
//! * Every submission gets a ticket. Tickets are admitted and written in
//!   order, so "is ticket t done" is a comparison against two counters and
//!   the loop never needs a message per record.
//! * The bound counts bytes and chunks admitted but not yet written,
//!   including the batch being written, so memory held by the queue never
//!   exceeds it. A submission that does not fit waits in `overflow` (the
//!   caller is told to wait); nothing behind it may overtake it.
//! * The worker signals only when the loop asked for a threshold that has
//!   now been reached (`arm`): a producer that never waits costs no wakeups.
//! * A failed write latches: nothing after it is written, later calls get
//!   the error, and finishing releases the file without a trailer.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Result, WalError};
use crate::file::WalFile;
use crate::fork;

/// Where the worker writes: a [`WalFile`], or a fake in unit tests.
pub trait Sink: Send + 'static {
    fn append(&mut self, lines: &[u8]) -> Result<()>;
    fn close(&mut self, trailer: &[u8]) -> Result<()>;
    fn abandon(&mut self);
}

impl Sink for WalFile {
    fn append(&mut self, lines: &[u8]) -> Result<()> {
        WalFile::append(self, lines)
    }
    fn close(&mut self, trailer: &[u8]) -> Result<()> {
        WalFile::close(self, trailer)
    }
    fn abandon(&mut self) {
        WalFile::abandon(self)
    }
}

/// Tells the owner that progress it armed for happened. Called by the
/// worker with the queue's lock held, so it must not block.
pub trait Notify: Send + Sync + 'static {
    fn notify(&self);
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Chunks admitted but not yet written.
    pub max_chunks: u64,
    /// Bytes admitted but not yet written.
    pub max_bytes: usize,
    /// How long the worker, woken from idle by a new record, waits for more
    /// before writing, unless someone waits on the queue or it is half full.
    pub linger: Duration,
}

/// How the writer ends once everything admitted before is written.
pub enum Finish {
    /// Write this trailer, sync per the mode, rename.
    Close(Vec<u8>),
    /// Release the file; the partial file stays.
    Abandon,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub ticket: u64,
    /// In the queue now; otherwise waiting for room behind earlier submissions.
    pub admitted: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Tickets up to this one are in the queue (or written).
    pub admitted: u64,
    /// Tickets up to this one reached the file (and the disk under `sync="always"`).
    pub written: u64,
    pub chunks_written: u64,
    /// Chunks submitted, admitted or not: the trailer's count once intake stops.
    pub chunks_submitted: u64,
    pub queued_chunks: u64,
    pub queued_bytes: usize,
    pub failed: bool,
    pub finished: bool,
}

struct Waiting {
    ticket: u64,
    lines: Vec<u8>,
    chunks: u64,
}

struct State {
    limits: Limits,
    last_ticket: u64,
    progress: Progress,
    /// Admitted, not yet taken by the worker; tickets (written, admitted].
    pending: Vec<u8>,
    pending_chunks: u64,
    overflow: VecDeque<Waiting>,
    failure: Option<WalError>,
    /// Set by `seal` (or `finish`) and never cleared.
    intake_closed: bool,
    /// Set by the first `finish`; `finish` itself is taken by the worker.
    finish_requested: bool,
    finish: Option<(u64, Finish)>,
    finish_result: Option<Result<()>>,
    wake_admitted: u64,
    wake_written: u64,
    wake_finished: bool,
    worker_idle: bool,
    lingering: bool,
    stalled: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    notify: Arc<dyn Notify>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update keeps the state consistent before it can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The worker's batch buffer is dropped instead of kept above this size.
const BATCH_KEEP_BYTES: usize = 4 << 20;
/// The worker only writes and fsyncs; it needs little stack.
const WORKER_STACK_BYTES: usize = 256 << 10;

pub struct WriteQueue {
    shared: Arc<Shared>,
    fork_generation: u64,
    worker: Option<JoinHandle<()>>,
}

impl WriteQueue {
    pub fn start(sink: Box<dyn Sink>, notify: Arc<dyn Notify>, limits: Limits) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                limits,
                last_ticket: 0,
                progress: Progress::default(),
                pending: Vec::new(),
                pending_chunks: 0,
                overflow: VecDeque::new(),
                failure: None,
                intake_closed: false,
                finish_requested: false,
                finish: None,
                finish_result: None,
                wake_admitted: u64::MAX,
                wake_written: u64::MAX,
                wake_finished: false,
                worker_idle: false,
                lingering: false,
                stalled: false,
            }),
            work: Condvar::new(),
            notify,
        });
        let theirs = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("sessionwal-aio".into())
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || run(&theirs, sink))?;
        Ok(WriteQueue {
            shared,
            fork_generation: fork::generation(),
            worker: Some(worker),
        })
    }

    /// Queues `lines` (`chunks` complete records) behind everything
    /// submitted before. `closed` is the error for a queue that is finishing.
    pub fn submit(
        &self,
        lines: &[u8],
        chunks: u64,
        closed: impl FnOnce() -> WalError,
    ) -> Result<Submitted> {
        if self.fork_generation != fork::generation() {
            return Err(WalError::Forked);
        }
        let mut st = self.shared.lock();
        if st.intake_closed {
            return Err(closed());
        }
        if let Some(failure) = &st.failure {
            return Err(failure.duplicate());
        }
        st.last_ticket += 1;
        st.progress.chunks_submitted += chunks;
        let ticket = st.last_ticket;
        if st.overflow.is_empty() && st.fits(lines.len(), chunks) {
            st.admit(ticket, lines, chunks);
            if st.worker_idle || (st.lingering && st.urgent()) {
                st.worker_idle = false;
                self.shared.work.notify_one();
            }
            return Ok(Submitted {
                ticket,
                admitted: true,
            });
        }
        st.overflow.push_back(Waiting {
            ticket,
            lines: lines.to_vec(),
            chunks,
        });
        Ok(Submitted {
            ticket,
            admitted: false,
        })
    }

    /// Stops intake, so `chunks_submitted` is final (the trailer's count).
    /// Returns false if it was already stopped.
    pub fn seal(&self) -> bool {
        !std::mem::replace(&mut self.shared.lock().intake_closed, true)
    }

    /// Stops intake; once everything submitted is written the worker ends
    /// as `how` says, then exits. Returns the finishing ticket, which is
    /// written when the close succeeded. Later calls change nothing and
    /// return the last ticket.
    pub fn finish(&self, how: Finish) -> u64 {
        let mut st = self.shared.lock();
        st.intake_closed = true;
        if std::mem::replace(&mut st.finish_requested, true) {
            return st.last_ticket;
        }
        st.last_ticket += 1;
        let ticket = st.last_ticket;
        st.finish = Some((ticket, how));
        self.shared.work.notify_one();
        ticket
    }

    /// True once `seal` or `finish` was called: intake is stopped.
    pub fn is_finishing(&self) -> bool {
        self.shared.lock().intake_closed
    }

    /// The last ticket handed out: waiting until it is written is a flush.
    pub fn last_ticket(&self) -> u64 {
        self.shared.lock().last_ticket
    }

    pub fn progress(&self) -> Progress {
        self.shared.lock().progress
    }

    /// The latched write failure, if any (a fresh copy each call).
    pub fn failure(&self) -> Option<WalError> {
        self.shared.lock().failure.as_ref().map(WalError::duplicate)
    }

    /// How finishing went, once it has: `Some(Err)` for a failed close, or
    /// for a close refused because an earlier write failed.
    pub fn finish_result(&self) -> Option<Result<()>> {
        let st = self.shared.lock();
        st.finish_result.as_ref().map(|result| match result {
            Ok(()) => Ok(()),
            Err(err) => Err(err.duplicate()),
        })
    }

    /// Asks for one [`Notify`] once `admitted >= admitted_at` or `written >=
    /// written_at` (or, for either, once a write failed: those tickets will
    /// never come), or, with `finished`, once the queue finished. Replaces
    /// what was armed before. Returns true, and arms nothing, when that is
    /// already the case.
    pub fn arm(&self, admitted_at: u64, written_at: u64, finished: bool) -> bool {
        let mut st = self.shared.lock();
        st.wake_admitted = admitted_at;
        st.wake_written = written_at;
        st.wake_finished = finished;
        if st.lingering {
            self.shared.work.notify_one();
        }
        st.take_wake()
    }

    /// Test hook: a stalled worker takes no batch and does not finish, like a
    /// disk that does not answer.
    pub fn set_stalled(&self, stalled: bool) {
        let mut st = self.shared.lock();
        st.stalled = stalled;
        self.shared.work.notify_one();
    }

    /// Waits for the worker to exit (after finishing). For tests and for
    /// callers that know it is done; blocks otherwise.
    pub fn join(&mut self) {
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for WriteQueue {
    /// An unfinished queue is abandoned: what was admitted is still written,
    /// then the file is released. The worker is not joined, so dropping
    /// never waits for the disk.
    fn drop(&mut self) {
        self.finish(Finish::Abandon);
    }
}

impl State {
    fn fits(&self, bytes: usize, chunks: u64) -> bool {
        let p = &self.progress;
        // An empty queue takes anything, or one oversized record would wait forever.
        p.queued_chunks == 0 && p.queued_bytes == 0
            || p.queued_chunks + chunks <= self.limits.max_chunks
                && p.queued_bytes + bytes <= self.limits.max_bytes
    }

    /// Someone waits on the queue, or it is filling up: write without lingering.
    fn urgent(&self) -> bool {
        let p = &self.progress;
        self.wake_admitted != u64::MAX
            || self.wake_written != u64::MAX
            || self.finish.is_some()
            || !self.overflow.is_empty()
            || p.queued_chunks.saturating_mul(2) >= self.limits.max_chunks
            || p.queued_bytes.saturating_mul(2) >= self.limits.max_bytes
    }

    fn admit(&mut self, ticket: u64, lines: &[u8], chunks: u64) {
        self.pending.extend_from_slice(lines);
        self.pending_chunks += chunks;
        self.progress.queued_bytes += lines.len();
        self.progress.queued_chunks += chunks;
        self.progress.admitted = ticket;
    }

    fn admit_waiting(&mut self) {
        while let Some(head) = self.overflow.front() {
            if !self.fits(head.lines.len(), head.chunks) {
                return;
            }
            let head = self.overflow.pop_front().expect("front exists");
            if self.pending.is_empty() {
                // Take the buffer instead of copying it.
                self.progress.queued_bytes += head.lines.len();
                self.pending = head.lines;
                self.pending_chunks += head.chunks;
                self.progress.queued_chunks += head.chunks;
                self.progress.admitted = head.ticket;
            } else {
                self.admit(head.ticket, &head.lines, head.chunks);
            }
        }
    }

    fn fail(&mut self, err: WalError) {
        // Nothing after a failed write may land: the file would have a hole.
        self.failure = Some(err);
        self.pending = Vec::new();
        self.pending_chunks = 0;
        self.overflow.clear();
        self.progress.failed = true;
        self.progress.queued_chunks = 0;
        self.progress.queued_bytes = 0;
    }

    fn take_wake(&mut self) -> bool {
        let p = &self.progress;
        let tickets = self.wake_admitted != u64::MAX || self.wake_written != u64::MAX;
        let reached = p.admitted >= self.wake_admitted
            || p.written >= self.wake_written
            || (tickets && p.failed)
            || (self.wake_finished && p.finished);
        if reached {
            self.wake_admitted = u64::MAX;
            self.wake_written = u64::MAX;
            self.wake_finished = false;
        }
        reached
    }

    fn wake(&mut self, notify: &dyn Notify) {
        if self.take_wake() {
            notify.notify();
        }
    }
}

fn run(shared: &Shared, mut sink: Box<dyn Sink>) {
    let mut batch = Vec::new();
    let mut st = shared.lock();
    let mut woken_from_idle = false;
    loop {
        if !st.stalled && st.failure.is_none() && !st.pending.is_empty() {
            // A producer slower than the disk would otherwise pay a wakeup
            // and the disk a write per record; lingering batches them.
            let linger = st.limits.linger;
            if std::mem::take(&mut woken_from_idle) && !linger.is_zero() && !st.urgent() {
                st.lingering = true;
                st = shared
                    .work
                    .wait_timeout_while(st, linger, |st| !st.urgent() && !st.stalled)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
                st.lingering = false;
                continue;
            }
            std::mem::swap(&mut st.pending, &mut batch);
            let through = st.progress.admitted;
            let chunks = std::mem::take(&mut st.pending_chunks);
            drop(st);
            let outcome = sink.append(&batch);
            st = shared.lock();
            if st.failure.is_none() {
                st.progress.queued_bytes -= batch.len();
                st.progress.queued_chunks -= chunks;
                match outcome {
                    Ok(()) => {
                        st.progress.written = through;
                        st.progress.chunks_written += chunks;
                        st.admit_waiting();
                    }
                    Err(err) => st.fail(err),
                }
            }
            st.wake(shared.notify.as_ref());
            batch.clear();
            if batch.capacity() > BATCH_KEEP_BYTES {
                batch = Vec::new();
            }
            continue;
        }
        let drained = st.pending.is_empty() && st.overflow.is_empty() && !st.stalled;
        if st.finish.is_some() && (drained || st.failure.is_some()) {
            let (ticket, how) = st.finish.take().expect("checked");
            let failure = st.failure.as_ref().map(WalError::duplicate);
            drop(st);
            let result = match (how, failure) {
                (Finish::Close(trailer), None) => sink.close(&trailer),
                (Finish::Close(_), Some(failure)) => {
                    sink.abandon();
                    Err(failure)
                }
                (Finish::Abandon, _) => {
                    sink.abandon();
                    Ok(())
                }
            };
            st = shared.lock();
            if result.is_ok() && st.failure.is_none() {
                st.progress.written = ticket;
            }
            st.finish_result = Some(result);
            st.progress.finished = true;
            st.wake(shared.notify.as_ref());
            return;
        }
        st.worker_idle = true;
        st = shared
            .work
            .wait(st)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        st.worker_idle = false;
        woken_from_idle = true;
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
