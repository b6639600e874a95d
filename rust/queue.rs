//! The bounded hand-off behind `sessionwal.aio.AsyncSessionWriter`: callers
//! on the event loop submit already-encoded records, the threads of the
//! shared I/O engine (`engine.rs`) write them, one turn at a time, and
//! progress is reported through counters and a [`Notify`] hook (the loop's
//! doorbell, `doorbell.rs`). Plain Rust, no Python.
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
//! * A queue with work is in the engine's run queue exactly once
//!   (`scheduled`); a turn writes everything pending with one `write(2)`,
//!   so records that pile up while the queue waits for its turn go out
//!   together.
//! * The engine signals only when the loop asked for a threshold that has
//!   now been reached (`arm`): a producer that never waits costs no wakeups.
//! * A failed write latches: nothing after it is written, later calls get
//!   the error, and finishing releases the file without a trailer.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::engine::{Engine, Job};
use crate::error::{Result, WalError};
use crate::file::WalFile;
use crate::fork;

/// Where a queue's records go: a [`WalFile`], or a fake in unit tests.
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

/// Tells the owner that progress it armed for happened. Called by an
/// engine thread with the queue's lock held, so it must not block.
pub trait Notify: Send + Sync + 'static {
    fn notify(&self);
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Chunks admitted but not yet written.
    pub max_chunks: u64,
    /// Bytes admitted but not yet written.
    pub max_bytes: usize,
}

/// Finishes a submission's bytes on an engine thread: given the bytes as
/// submitted (text left out, see `WriteQueue::submit_with`), appends the
/// whole lines to the output. Lets long immutable strings be escaped off the
/// event loop.
pub type Fill = Box<dyn FnOnce(&[u8], &mut Vec<u8>) + Send>;

/// What a submission still needs before it can be written: its `Fill` and
/// the bytes it will add (counted against the bound from admission on).
pub struct Deferred {
    pub extra_bytes: usize,
    pub fill: Fill,
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
    deferred: Option<Deferred>,
}

struct State {
    limits: Limits,
    last_ticket: u64,
    progress: Progress,
    /// Admitted, not yet taken by a turn; tickets (written, admitted].
    pending: Vec<u8>,
    /// The buffer of the previous turn, cleared, to become `pending` next.
    spare: Vec<u8>,
    /// Byte ranges of `pending` that need their `Fill` before writing.
    pending_fills: Vec<(usize, usize, Fill)>,
    /// What `pending` counts against the byte bound (its length plus the
    /// text its fills will add).
    pending_cost: usize,
    pending_chunks: u64,
    overflow: VecDeque<Waiting>,
    failure: Option<WalError>,
    /// Set by `seal` (or `finish`) and never cleared.
    intake_closed: bool,
    /// Set by the first `finish`; `finish` itself is taken by the turn that runs it.
    finish_requested: bool,
    finish: Option<(u64, Finish)>,
    finish_result: Option<Result<()>>,
    wake_admitted: u64,
    wake_written: u64,
    wake_finished: bool,
    /// In the engine's run queue, or being run: at most once at a time.
    scheduled: bool,
    /// The engine was told this queue is urgent since it was scheduled:
    /// telling it again would only take its lock.
    hurried: bool,
    stalled: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Touched only by the engine thread running this queue's turn: one at
    /// a time, so never contended.
    sink: Mutex<Box<dyn Sink>>,
    notify: Arc<dyn Notify>,
    engine: Engine,
    /// Every turn ends in an fdatasync (`sync="always"`): the engine's
    /// durable pool runs it.
    durable: bool,
    /// Signalled when the queue finished (for `join`).
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update keeps the state consistent before it can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A turn's buffer is kept for the next turn up to this size while more
/// records keep coming; dropped above it.
const BATCH_KEEP_BYTES: usize = 4 << 20;
/// A writer that has nothing queued keeps a buffer only up to this size:
/// an idle writer costs little memory.
const IDLE_KEEP_BYTES: usize = 8 << 10;

pub struct WriteQueue {
    shared: Arc<Shared>,
    fork_generation: u64,
}

impl WriteQueue {
    /// A queue whose records `engine`'s threads write to `sink`; `durable`
    /// when every append of `sink` ends in an fdatasync.
    pub fn start(
        engine: Engine,
        sink: Box<dyn Sink>,
        notify: Arc<dyn Notify>,
        limits: Limits,
        durable: bool,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                limits,
                last_ticket: 0,
                progress: Progress::default(),
                pending: Vec::new(),
                spare: Vec::new(),
                pending_fills: Vec::new(),
                pending_cost: 0,
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
                scheduled: false,
                hurried: false,
                stalled: false,
            }),
            sink: Mutex::new(sink),
            notify,
            engine,
            durable,
            done: Condvar::new(),
        });
        WriteQueue {
            shared,
            fork_generation: fork::generation(),
        }
    }

    /// True in a forked child of the process that started the queue: its
    /// engine threads do not exist here and its locks may have been copied
    /// held, so nothing may touch it.
    pub fn forked(&self) -> bool {
        self.fork_generation != fork::generation()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        if self.forked() {
            return Err(WalError::Forked);
        }
        Ok(self.shared.lock())
    }

    /// Queues `lines` (`chunks` complete records) behind everything
    /// submitted before. `closed` is the error for a queue that is finishing.
    pub fn submit(
        &self,
        lines: &[u8],
        chunks: u64,
        closed: impl FnOnce() -> WalError,
    ) -> Result<Submitted> {
        self.submit_with(lines, chunks, None, closed)
    }

    /// `submit` for lines that are not whole yet: `deferred.fill` completes
    /// them on an engine thread, in their place in the file, just before
    /// they are written.
    pub fn submit_with(
        &self,
        lines: &[u8],
        chunks: u64,
        deferred: Option<Deferred>,
        closed: impl FnOnce() -> WalError,
    ) -> Result<Submitted> {
        let mut st = self.lock()?;
        if st.intake_closed {
            return Err(closed());
        }
        if let Some(failure) = &st.failure {
            return Err(failure.duplicate());
        }
        st.last_ticket += 1;
        st.progress.chunks_submitted += chunks;
        let ticket = st.last_ticket;
        let cost = lines.len() + deferred.as_ref().map_or(0, |d| d.extra_bytes);
        if st.overflow.is_empty() && st.fits(cost, chunks) {
            st.admit(ticket, lines, chunks, deferred);
            self.schedule(&mut st);
            self.hurry_if_urgent(&mut st);
            return Ok(Submitted {
                ticket,
                admitted: true,
            });
        }
        st.overflow.push_back(Waiting {
            ticket,
            lines: lines.to_vec(),
            chunks,
            deferred,
        });
        Ok(Submitted {
            ticket,
            admitted: false,
        })
    }

    /// Gives the engine a turn of this queue if it has work and none is
    /// queued yet.
    fn schedule(&self, st: &mut State) {
        schedule(&self.shared, st);
    }

    /// A queued turn became urgent (someone waits, or the queue fills up):
    /// no engine thread may linger before running it.
    fn hurry_if_urgent(&self, st: &mut State) {
        if st.scheduled && !st.hurried && st.urgent() {
            st.hurried = true;
            self.shared.engine.hurry();
        }
    }

    /// Stops intake, so `chunks_submitted` is final (the trailer's count).
    /// Returns false if it was already stopped.
    pub fn seal(&self) -> Result<bool> {
        Ok(!std::mem::replace(&mut self.lock()?.intake_closed, true))
    }

    /// Stops intake; once everything submitted is written the queue ends
    /// as `how` says. Returns the finishing ticket, which is written when
    /// the close succeeded. Later calls change nothing and return the last
    /// ticket.
    pub fn finish(&self, how: Finish) -> Result<u64> {
        let mut st = self.lock()?;
        st.intake_closed = true;
        if std::mem::replace(&mut st.finish_requested, true) {
            return Ok(st.last_ticket);
        }
        st.last_ticket += 1;
        let ticket = st.last_ticket;
        st.finish = Some((ticket, how));
        self.schedule(&mut st);
        self.hurry_if_urgent(&mut st);
        Ok(ticket)
    }

    /// True once `seal` or `finish` was called: intake is stopped.
    pub fn is_finishing(&self) -> Result<bool> {
        Ok(self.lock()?.intake_closed)
    }

    /// The last ticket handed out: waiting until it is written is a flush.
    pub fn last_ticket(&self) -> Result<u64> {
        Ok(self.lock()?.last_ticket)
    }

    pub fn progress(&self) -> Result<Progress> {
        Ok(self.lock()?.progress)
    }

    /// The latched write failure, if any (a fresh copy each call).
    pub fn failure(&self) -> Result<Option<WalError>> {
        Ok(self.lock()?.failure.as_ref().map(WalError::duplicate))
    }

    /// How finishing went, once it has: `Some(Err)` for a failed close, or
    /// for a close refused because an earlier write failed.
    pub fn finish_result(&self) -> Result<Option<Result<()>>> {
        let st = self.lock()?;
        Ok(st.finish_result.as_ref().map(|result| match result {
            Ok(()) => Ok(()),
            Err(err) => Err(err.duplicate()),
        }))
    }

    /// Asks for one [`Notify`] once `admitted >= admitted_at` or `written >=
    /// written_at` (or, for either, once a write failed: those tickets will
    /// never come), or, with `finished`, once the queue finished. Replaces
    /// what was armed before. Returns true, and arms nothing, when that is
    /// already the case.
    pub fn arm(&self, admitted_at: u64, written_at: u64, finished: bool) -> Result<bool> {
        let mut st = self.lock()?;
        st.wake_admitted = admitted_at;
        st.wake_written = written_at;
        st.wake_finished = finished;
        let reached = st.take_wake();
        if !reached {
            self.hurry_if_urgent(&mut st);
        }
        Ok(reached)
    }

    /// Test hook: a stalled queue gets no turn and does not finish, like a
    /// disk that does not answer.
    pub fn set_stalled(&self, stalled: bool) -> Result<()> {
        let mut st = self.lock()?;
        st.stalled = stalled;
        self.schedule(&mut st);
        Ok(())
    }

    /// Waits until the queue finished. For tests and for callers that know
    /// it is finishing; blocks otherwise.
    pub fn join(&self) {
        let mut st = self.shared.lock();
        while !st.progress.finished {
            st = self
                .shared
                .done
                .wait(st)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for WriteQueue {
    /// An unfinished queue is abandoned: what was admitted is still written
    /// by the engine, then the file is released. Dropping never waits for
    /// the disk. In a forked child nothing is touched (see `forked`).
    fn drop(&mut self) {
        if self.forked() {
            std::mem::forget(Arc::clone(&self.shared));
            return;
        }
        let _ = self.finish(Finish::Abandon);
    }
}

fn schedule(shared: &Arc<Shared>, st: &mut State) {
    if !st.scheduled && st.has_work() {
        st.scheduled = true;
        let urgent = st.urgent();
        st.hurried = urgent;
        shared
            .engine
            .schedule(Arc::clone(shared) as Arc<dyn Job>, urgent, shared.durable);
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

    /// Records to write now.
    fn has_batch(&self) -> bool {
        !self.stalled && self.failure.is_none() && !self.pending.is_empty()
    }

    /// The finish may run now: everything before it is written (or failed).
    fn finish_due(&self) -> bool {
        !self.stalled
            && self.finish.is_some()
            && (self.pending.is_empty() && self.overflow.is_empty() || self.failure.is_some())
    }

    fn has_work(&self) -> bool {
        self.has_batch() || self.finish_due()
    }

    /// Someone waits on the queue, or it is filling up: no lingering.
    fn urgent(&self) -> bool {
        let p = &self.progress;
        self.wake_admitted != u64::MAX
            || self.wake_written != u64::MAX
            || self.finish.is_some()
            || !self.overflow.is_empty()
            || p.queued_chunks.saturating_mul(2) >= self.limits.max_chunks
            || p.queued_bytes.saturating_mul(2) >= self.limits.max_bytes
    }

    fn admit(&mut self, ticket: u64, lines: &[u8], chunks: u64, deferred: Option<Deferred>) {
        let start = self.pending.len();
        self.pending.extend_from_slice(lines);
        self.admitted(ticket, start, chunks, deferred);
    }

    /// Books `pending[start..]`, just added, as submission `ticket`.
    fn admitted(&mut self, ticket: u64, start: usize, chunks: u64, deferred: Option<Deferred>) {
        let mut cost = self.pending.len() - start;
        if let Some(Deferred { extra_bytes, fill }) = deferred {
            cost += extra_bytes;
            self.pending_fills.push((start, self.pending.len(), fill));
        }
        self.pending_cost += cost;
        self.pending_chunks += chunks;
        self.progress.queued_bytes += cost;
        self.progress.queued_chunks += chunks;
        self.progress.admitted = ticket;
    }

    fn admit_waiting(&mut self) {
        while let Some(head) = self.overflow.front() {
            let extra = head.deferred.as_ref().map_or(0, |d| d.extra_bytes);
            if !self.fits(head.lines.len() + extra, head.chunks) {
                return;
            }
            let head = self.overflow.pop_front().expect("front exists");
            if self.pending.is_empty() {
                // Take the buffer instead of copying it.
                self.pending = head.lines;
                self.admitted(head.ticket, 0, head.chunks, head.deferred);
            } else {
                self.admit(head.ticket, &head.lines, head.chunks, head.deferred);
            }
        }
    }

    fn fail(&mut self, err: WalError) {
        // Nothing after a failed write may land: the file would have a hole.
        self.failure = Some(err);
        self.pending = Vec::new();
        self.spare = Vec::new();
        self.pending_fills.clear();
        self.pending_cost = 0;
        self.pending_chunks = 0;
        self.overflow.clear();
        self.progress.failed = true;
        self.progress.queued_chunks = 0;
        self.progress.queued_bytes = 0;
    }

    /// Keeps the written buffer `batch` for reuse where it pays: as the
    /// next turn's buffer while records keep coming, or as a small pending
    /// buffer once the queue is empty.
    fn recycle(&mut self, mut batch: Vec<u8>) {
        batch.clear();
        if self.pending.is_empty() {
            self.spare = Vec::new();
            if batch.capacity() <= IDLE_KEEP_BYTES {
                self.pending = batch;
            }
        } else if batch.capacity() <= BATCH_KEEP_BYTES {
            self.spare = batch;
        }
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

/// `batch` with every fill applied in its place: the bytes to write.
fn fill_in(batch: &[u8], fills: Vec<(usize, usize, Fill)>, cost: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(cost + cost / 8);
    let mut copied = 0;
    for (start, end, fill) in fills {
        out.extend_from_slice(&batch[copied..start]);
        fill(&batch[start..end], &mut out);
        copied = end;
    }
    out.extend_from_slice(&batch[copied..]);
    out
}

impl Job for Shared {
    /// One turn: write everything pending with one `write(2)`, or run the
    /// finish once everything before it is written.
    fn run_turn(&self) -> bool {
        let mut st = self.lock();
        st.hurried = false;
        if st.has_batch() {
            let spare = std::mem::take(&mut st.spare);
            let batch = std::mem::replace(&mut st.pending, spare);
            let fills = std::mem::take(&mut st.pending_fills);
            let cost = std::mem::take(&mut st.pending_cost);
            let through = st.progress.admitted;
            let chunks = std::mem::take(&mut st.pending_chunks);
            drop(st);
            let filled = (!fills.is_empty()).then(|| fill_in(&batch, fills, cost));
            let outcome = self
                .sink
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(filled.as_deref().unwrap_or(&batch));
            drop(filled);
            st = self.lock();
            if st.failure.is_none() {
                st.progress.queued_bytes -= cost;
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
            st.recycle(batch);
            st.wake(self.notify.as_ref());
            st.scheduled = st.has_work();
            return st.scheduled;
        }
        if st.finish_due() {
            let (ticket, how) = st.finish.take().expect("checked");
            let failure = st.failure.as_ref().map(WalError::duplicate);
            drop(st);
            let result = {
                let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
                match (how, failure) {
                    (Finish::Close(trailer), None) => sink.close(&trailer),
                    (Finish::Close(_), Some(failure)) => {
                        sink.abandon();
                        Err(failure)
                    }
                    (Finish::Abandon, _) => {
                        sink.abandon();
                        Ok(())
                    }
                }
            };
            st = self.lock();
            if result.is_ok() && st.failure.is_none() {
                st.progress.written = ticket;
            }
            st.finish_result = Some(result);
            st.progress.finished = true;
            st.pending = Vec::new();
            st.spare = Vec::new();
            st.pending_fills.clear();
            st.wake(self.notify.as_ref());
            self.done.notify_all();
        }
        st.scheduled = false;
        false
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
