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
        if st.finish.is_some() || st.finish_result.is_some() {
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

    /// Stops intake; once everything submitted is written the worker ends
    /// as `how` says, then exits. Returns the finishing ticket, which is
    /// written when the close succeeded. Later calls change nothing.
    pub fn finish(&self, how: Finish) -> u64 {
        let mut st = self.shared.lock();
        if let Some((ticket, _)) = &st.finish {
            return *ticket;
        }
        if st.finish_result.is_some() {
            return st.last_ticket;
        }
        st.last_ticket += 1;
        let ticket = st.last_ticket;
        st.finish = Some((ticket, how));
        self.shared.work.notify_one();
        ticket
    }

    /// True once `finish` was called: intake is stopped.
    pub fn is_finishing(&self) -> bool {
        let st = self.shared.lock();
        st.finish.is_some() || st.finish_result.is_some()
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
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[derive(Default)]
    struct Log {
        batches: Vec<Vec<u8>>,
        closed_with: Option<Vec<u8>>,
        abandoned: bool,
    }

    /// A sink that records batches, can fail its nth append, and can be held
    /// inside `append` until the test lets it go.
    struct FakeSink {
        log: Arc<Mutex<Log>>,
        fail_at: Option<usize>,
        gate: Option<mpsc::Receiver<()>>,
        entered: Option<mpsc::Sender<()>>,
    }

    impl Sink for FakeSink {
        fn append(&mut self, lines: &[u8]) -> Result<()> {
            if let Some(entered) = &self.entered {
                let _ = entered.send(());
            }
            if let Some(gate) = &self.gate {
                let _ = gate.recv();
            }
            let mut log = self.log.lock().unwrap();
            if self.fail_at == Some(log.batches.len()) {
                return Err(io::Error::from_raw_os_error(libc::EFBIG).into());
            }
            log.batches.push(lines.to_vec());
            Ok(())
        }
        fn close(&mut self, trailer: &[u8]) -> Result<()> {
            self.log.lock().unwrap().closed_with = Some(trailer.to_vec());
            Ok(())
        }
        fn abandon(&mut self) {
            self.log.lock().unwrap().abandoned = true;
        }
    }

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Notify for Count {
        fn notify(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Rig {
        queue: WriteQueue,
        log: Arc<Mutex<Log>>,
        notified: Arc<Count>,
    }

    fn rig(limits: Limits, fail_at: Option<usize>) -> Rig {
        let log = Arc::new(Mutex::new(Log::default()));
        let notified = Arc::new(Count::default());
        let sink = FakeSink {
            log: Arc::clone(&log),
            fail_at,
            gate: None,
            entered: None,
        };
        let queue = WriteQueue::start(Box::new(sink), notified.clone(), limits).unwrap();
        Rig {
            queue,
            log,
            notified,
        }
    }

    const ROOMY: Limits = Limits {
        max_chunks: 1000,
        max_bytes: 1 << 20,
        linger: Duration::ZERO,
    };

    fn closed() -> WalError {
        WalError::Closed {
            final_path: "f".into(),
        }
    }

    fn written(log: &Arc<Mutex<Log>>) -> Vec<u8> {
        log.lock().unwrap().batches.concat()
    }

    #[test]
    fn writes_everything_in_order_then_closes() {
        let mut rig = rig(ROOMY, None);
        let mut expected = Vec::new();
        for i in 0..500 {
            let line = format!("{i}\n");
            let s = rig.queue.submit(line.as_bytes(), 1, closed).unwrap();
            assert_eq!(s.ticket, i + 1);
            expected.extend_from_slice(line.as_bytes());
        }
        let ticket = rig.queue.finish(Finish::Close(b"end\n".to_vec()));
        rig.queue.join();
        assert_eq!(written(&rig.log), expected);
        assert_eq!(
            rig.log.lock().unwrap().closed_with.as_deref(),
            Some(&b"end\n"[..])
        );
        let p = rig.queue.progress();
        assert_eq!(
            (p.written, p.chunks_written, p.finished),
            (ticket, 500, true)
        );
        assert_eq!((p.queued_chunks, p.queued_bytes), (0, 0));
        assert!(matches!(rig.queue.finish_result(), Some(Ok(()))));
        assert!(matches!(
            rig.queue.submit(b"x\n", 1, closed),
            Err(WalError::Closed { .. })
        ));
    }

    #[test]
    fn full_queue_makes_submissions_wait_in_order_and_bounds_memory() {
        let limits = Limits {
            max_chunks: 2,
            max_bytes: 1 << 20,
            linger: Duration::ZERO,
        };
        let mut rig = rig(limits, None);
        rig.queue.set_stalled(true);
        let results: Vec<_> = (0..5)
            .map(|i| {
                rig.queue
                    .submit(format!("{i}\n").as_bytes(), 1, closed)
                    .unwrap()
            })
            .collect();
        let admitted: Vec<_> = results.iter().map(|s| s.admitted).collect();
        assert_eq!(admitted, [true, true, false, false, false]);
        let p = rig.queue.progress();
        assert_eq!((p.admitted, p.queued_chunks, p.queued_bytes), (2, 2, 4));
        assert!(!rig.queue.arm(5, u64::MAX, false));
        rig.queue.set_stalled(false);
        rig.queue.finish(Finish::Abandon);
        rig.queue.join();
        assert_eq!(written(&rig.log), b"0\n1\n2\n3\n4\n");
        assert!(rig.log.lock().unwrap().abandoned);
        assert!(rig.notified.0.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn an_oversized_record_is_admitted_into_an_empty_queue() {
        let limits = Limits {
            max_chunks: 10,
            max_bytes: 4,
            linger: Duration::ZERO,
        };
        let mut rig = rig(limits, None);
        rig.queue.set_stalled(true);
        assert!(
            rig.queue
                .submit(b"0123456789\n", 1, closed)
                .unwrap()
                .admitted
        );
        assert!(!rig.queue.submit(b"a\n", 1, closed).unwrap().admitted);
        rig.queue.set_stalled(false);
        rig.queue.finish(Finish::Abandon);
        rig.queue.join();
        assert_eq!(written(&rig.log), b"0123456789\na\n");
    }

    #[test]
    fn a_failed_write_latches_drops_the_rest_and_refuses_to_close() {
        let mut rig = rig(ROOMY, Some(0));
        rig.queue.set_stalled(true);
        for i in 0..3 {
            rig.queue
                .submit(format!("{i}\n").as_bytes(), 1, closed)
                .unwrap();
        }
        rig.queue.set_stalled(false);
        while !rig.queue.progress().failed {
            std::thread::sleep(Duration::from_millis(1));
        }
        let err = rig.queue.submit(b"x\n", 1, closed).unwrap_err();
        assert!(
            matches!(&err, WalError::Io { source, .. } if source.raw_os_error() == Some(libc::EFBIG))
        );
        assert!(rig.queue.failure().is_some());
        rig.queue.finish(Finish::Close(b"end\n".to_vec()));
        rig.queue.join();
        let log = rig.log.lock().unwrap();
        assert!(log.batches.is_empty() && log.closed_with.is_none() && log.abandoned);
        assert!(matches!(
            rig.queue.finish_result(),
            Some(Err(WalError::Io { .. }))
        ));
        let p = rig.queue.progress();
        assert_eq!((p.written, p.chunks_written, p.queued_chunks), (0, 0, 0));
    }

    #[test]
    fn batches_coalesce_while_a_write_is_in_flight() {
        let log = Arc::new(Mutex::new(Log::default()));
        let (release, gate) = mpsc::channel();
        let (entered_tx, entered) = mpsc::channel();
        let sink = FakeSink {
            log: Arc::clone(&log),
            fail_at: None,
            gate: Some(gate),
            entered: Some(entered_tx),
        };
        let mut queue =
            WriteQueue::start(Box::new(sink), Arc::new(Count::default()), ROOMY).unwrap();
        queue.submit(b"first\n", 1, closed).unwrap();
        entered.recv().unwrap();
        for i in 0..10 {
            queue
                .submit(format!("{i}\n").as_bytes(), 1, closed)
                .unwrap();
        }
        assert_eq!(queue.progress().queued_chunks, 11);
        release.send(()).unwrap();
        entered.recv().unwrap();
        release.send(()).unwrap();
        queue.finish(Finish::Abandon);
        queue.join();
        let log = log.lock().unwrap();
        assert_eq!(log.batches.len(), 2);
        assert_eq!(log.batches[1], b"0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n");
    }

    fn lingering_rig(log: &Arc<Mutex<Log>>) -> WriteQueue {
        let sink = FakeSink {
            log: Arc::clone(log),
            fail_at: None,
            gate: None,
            entered: None,
        };
        let limits = Limits {
            linger: Duration::from_secs(3600),
            ..ROOMY
        };
        WriteQueue::start(Box::new(sink), Arc::new(Count::default()), limits).unwrap()
    }

    fn wait_for(what: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if what() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("condition never held");
    }

    #[test]
    fn records_after_idle_linger_into_one_batch_until_finish_cuts_it_short() {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut queue = lingering_rig(&log);
        for i in 0..10 {
            queue
                .submit(format!("{i}\n").as_bytes(), 1, closed)
                .unwrap();
        }
        queue.finish(Finish::Abandon);
        queue.join();
        let log = log.lock().unwrap();
        assert_eq!(log.batches, [b"0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n".to_vec()]);
    }

    #[test]
    fn a_waiter_cuts_the_linger_short() {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut queue = lingering_rig(&log);
        let s = queue.submit(b"a\n", 1, closed).unwrap();
        queue.arm(u64::MAX, s.ticket, false);
        wait_for(|| queue.progress().written == s.ticket);
        queue.finish(Finish::Abandon);
        queue.join();
    }

    #[test]
    fn a_half_full_queue_cuts_the_linger_short() {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut queue = lingering_rig(&log);
        for _ in 0..ROOMY.max_chunks / 2 {
            queue.submit(b"a\n", 1, closed).unwrap();
        }
        wait_for(|| queue.progress().chunks_written == ROOMY.max_chunks / 2);
        queue.finish(Finish::Abandon);
        queue.join();
    }

    #[test]
    fn arm_reports_reached_thresholds_without_notifying() {
        let mut rig = rig(ROOMY, None);
        let s = rig.queue.submit(b"a\n", 1, closed).unwrap();
        while rig.queue.progress().written < s.ticket {
            std::thread::sleep(Duration::from_millis(1));
        }
        let before = rig.notified.0.load(Ordering::SeqCst);
        assert!(rig.queue.arm(u64::MAX, s.ticket, false));
        assert_eq!(rig.notified.0.load(Ordering::SeqCst), before);
        rig.queue.finish(Finish::Abandon);
        rig.queue.join();
    }

    #[test]
    fn dropping_an_unfinished_queue_still_writes_what_it_admitted() {
        let log = Arc::new(Mutex::new(Log::default()));
        let sink = FakeSink {
            log: Arc::clone(&log),
            fail_at: None,
            gate: None,
            entered: None,
        };
        let queue = WriteQueue::start(Box::new(sink), Arc::new(Count::default()), ROOMY).unwrap();
        queue.submit(b"kept\n", 1, closed).unwrap();
        drop(queue);
        for _ in 0..5000 {
            if log.lock().unwrap().abandoned {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let log = log.lock().unwrap();
        assert!(log.abandoned);
        assert_eq!(log.batches.concat(), b"kept\n");
    }
}
