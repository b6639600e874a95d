//! Unit tests of the write queue, with a fake sink that records batches,
//! fails on demand and can be held inside `append`.

use super::*;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

/// One engine for the tests that do not measure lingering: two threads,
/// as the smallest default, so queues of concurrent tests share them.
fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| Engine::start(2, 2, Duration::ZERO).unwrap())
        .clone()
}

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
    let queue = WriteQueue::start(engine(), Box::new(sink), notified.clone(), limits, false);
    Rig {
        queue,
        log,
        notified,
    }
}

const ROOMY: Limits = Limits {
    max_chunks: 1000,
    max_bytes: 1 << 20,
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
    let rig = rig(ROOMY, None);
    let mut expected = Vec::new();
    for i in 0..500 {
        let line = format!("{i}\n");
        let s = rig.queue.submit(line.as_bytes(), 1, closed).unwrap();
        assert_eq!(s.ticket, i + 1);
        expected.extend_from_slice(line.as_bytes());
    }
    let ticket = rig.queue.finish(Finish::Close(b"end\n".to_vec())).unwrap();
    rig.queue.join();
    assert_eq!(written(&rig.log), expected);
    assert_eq!(
        rig.log.lock().unwrap().closed_with.as_deref(),
        Some(&b"end\n"[..])
    );
    let p = rig.queue.progress().unwrap();
    assert_eq!(
        (p.written, p.chunks_written, p.finished),
        (ticket, 500, true)
    );
    assert_eq!((p.queued_chunks, p.queued_bytes), (0, 0));
    assert!(matches!(rig.queue.finish_result().unwrap(), Some(Ok(()))));
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
    };
    let rig = rig(limits, None);
    rig.queue.set_stalled(true).unwrap();
    let results: Vec<_> = (0..5)
        .map(|i| {
            rig.queue
                .submit(format!("{i}\n").as_bytes(), 1, closed)
                .unwrap()
        })
        .collect();
    let admitted: Vec<_> = results.iter().map(|s| s.admitted).collect();
    assert_eq!(admitted, [true, true, false, false, false]);
    let p = rig.queue.progress().unwrap();
    assert_eq!((p.admitted, p.queued_chunks, p.queued_bytes), (2, 2, 4));
    assert!(!rig.queue.arm(5, u64::MAX, false).unwrap());
    rig.queue.set_stalled(false).unwrap();
    rig.queue.finish(Finish::Abandon).unwrap();
    rig.queue.join();
    assert_eq!(written(&rig.log), b"0\n1\n2\n3\n4\n");
    assert!(rig.log.lock().unwrap().abandoned);
    assert!(rig.notified.0.load(Ordering::SeqCst) >= 1);
}

#[test]
fn seal_stops_intake_before_the_finish_is_queued() {
    let rig = rig(ROOMY, None);
    rig.queue.submit(b"a\n", 1, closed).unwrap();
    assert!(rig.queue.seal().unwrap());
    assert!(!rig.queue.seal().unwrap());
    assert!(matches!(
        rig.queue.submit(b"b\n", 1, closed),
        Err(WalError::Closed { .. })
    ));
    assert_eq!(rig.queue.progress().unwrap().chunks_submitted, 1);
    let ticket = rig.queue.finish(Finish::Close(b"end\n".to_vec())).unwrap();
    assert_eq!(rig.queue.finish(Finish::Abandon).unwrap(), ticket);
    rig.queue.join();
    let log = rig.log.lock().unwrap();
    assert_eq!(log.batches.concat(), b"a\n");
    assert_eq!(log.closed_with.as_deref(), Some(&b"end\n"[..]));
    assert!(!log.abandoned);
}

#[test]
fn an_oversized_record_is_admitted_into_an_empty_queue() {
    let limits = Limits {
        max_chunks: 10,
        max_bytes: 4,
    };
    let rig = rig(limits, None);
    rig.queue.set_stalled(true).unwrap();
    assert!(
        rig.queue
            .submit(b"0123456789\n", 1, closed)
            .unwrap()
            .admitted
    );
    assert!(!rig.queue.submit(b"a\n", 1, closed).unwrap().admitted);
    rig.queue.set_stalled(false).unwrap();
    rig.queue.finish(Finish::Abandon).unwrap();
    rig.queue.join();
    assert_eq!(written(&rig.log), b"0123456789\na\n");
}

#[test]
fn a_failed_write_latches_drops_the_rest_and_refuses_to_close() {
    let rig = rig(ROOMY, Some(0));
    rig.queue.set_stalled(true).unwrap();
    for i in 0..3 {
        rig.queue
            .submit(format!("{i}\n").as_bytes(), 1, closed)
            .unwrap();
    }
    rig.queue.set_stalled(false).unwrap();
    while !rig.queue.progress().unwrap().failed {
        std::thread::sleep(Duration::from_millis(1));
    }
    let err = rig.queue.submit(b"x\n", 1, closed).unwrap_err();
    assert!(
        matches!(&err, WalError::Io { source, .. } if source.raw_os_error() == Some(libc::EFBIG))
    );
    assert!(rig.queue.failure().unwrap().is_some());
    rig.queue.finish(Finish::Close(b"end\n".to_vec())).unwrap();
    rig.queue.join();
    let log = rig.log.lock().unwrap();
    assert!(log.batches.is_empty() && log.closed_with.is_none() && log.abandoned);
    assert!(matches!(
        rig.queue.finish_result().unwrap(),
        Some(Err(WalError::Io { .. }))
    ));
    let p = rig.queue.progress().unwrap();
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
    let queue = WriteQueue::start(
        engine(),
        Box::new(sink),
        Arc::new(Count::default()),
        ROOMY,
        false,
    );
    queue.submit(b"first\n", 1, closed).unwrap();
    entered.recv().unwrap();
    for i in 0..10 {
        queue
            .submit(format!("{i}\n").as_bytes(), 1, closed)
            .unwrap();
    }
    assert_eq!(queue.progress().unwrap().queued_chunks, 11);
    release.send(()).unwrap();
    entered.recv().unwrap();
    release.send(()).unwrap();
    queue.finish(Finish::Abandon).unwrap();
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
    // Its own engine: another test's waiter would cut a shared engine's linger short.
    let engine = Engine::start(1, 1, Duration::from_secs(3600)).unwrap();
    // Lingering is for a thread woken from idle: let it go idle first.
    std::thread::sleep(Duration::from_millis(20));
    WriteQueue::start(
        engine,
        Box::new(sink),
        Arc::new(Count::default()),
        ROOMY,
        false,
    )
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
    let queue = lingering_rig(&log);
    for i in 0..10 {
        queue
            .submit(format!("{i}\n").as_bytes(), 1, closed)
            .unwrap();
    }
    queue.finish(Finish::Abandon).unwrap();
    queue.join();
    let log = log.lock().unwrap();
    assert_eq!(log.batches, [b"0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n".to_vec()]);
}

#[test]
fn a_waiter_cuts_the_linger_short() {
    let log = Arc::new(Mutex::new(Log::default()));
    let queue = lingering_rig(&log);
    let s = queue.submit(b"a\n", 1, closed).unwrap();
    queue.arm(u64::MAX, s.ticket, false).unwrap();
    wait_for(|| queue.progress().unwrap().written == s.ticket);
    queue.finish(Finish::Abandon).unwrap();
    queue.join();
}

#[test]
fn a_half_full_queue_cuts_the_linger_short() {
    let log = Arc::new(Mutex::new(Log::default()));
    let queue = lingering_rig(&log);
    for _ in 0..ROOMY.max_chunks / 2 {
        queue.submit(b"a\n", 1, closed).unwrap();
    }
    wait_for(|| queue.progress().unwrap().chunks_written == ROOMY.max_chunks / 2);
    queue.finish(Finish::Abandon).unwrap();
    queue.join();
}

#[test]
fn arm_reports_reached_thresholds_without_notifying() {
    let rig = rig(ROOMY, None);
    let s = rig.queue.submit(b"a\n", 1, closed).unwrap();
    while rig.queue.progress().unwrap().written < s.ticket {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = rig.notified.0.load(Ordering::SeqCst);
    assert!(rig.queue.arm(u64::MAX, s.ticket, false).unwrap());
    assert_eq!(rig.notified.0.load(Ordering::SeqCst), before);
    rig.queue.finish(Finish::Abandon).unwrap();
    rig.queue.join();
}

#[test]
fn dropping_an_unfinished_queue_still_writes_what_it_admitted() {
    let Rig { queue, log, .. } = rig(ROOMY, None);
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

#[test]
fn deferred_submissions_are_filled_in_their_place() {
    let rig = rig(ROOMY, None);
    rig.queue.set_stalled(true).unwrap();
    rig.queue.submit(b"a\n", 1, closed).unwrap();
    let fill: Fill = Box::new(|holes: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(holes);
        out.extend_from_slice(b"filled\n");
    });
    let deferred = Deferred {
        extra_bytes: 100,
        fill,
    };
    rig.queue
        .submit_with(b"b:", 1, Some(deferred), closed)
        .unwrap();
    rig.queue.submit(b"c\n", 1, closed).unwrap();
    // The text to come counts against the bound from admission on.
    assert_eq!(rig.queue.progress().unwrap().queued_bytes, 2 + 2 + 100 + 2);
    rig.queue.set_stalled(false).unwrap();
    rig.queue.finish(Finish::Abandon).unwrap();
    rig.queue.join();
    assert_eq!(written(&rig.log), b"a\nb:filled\nc\n");
    assert_eq!(rig.queue.progress().unwrap().queued_bytes, 0);
}
