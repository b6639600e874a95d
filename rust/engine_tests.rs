//! Unit tests of the engine's scheduling, with jobs that count their turns
//! and can be held inside one.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// A job that needs `turns` turns, logging each into `log`.
struct Counted {
    name: usize,
    left: AtomicUsize,
    log: Arc<Mutex<Vec<usize>>>,
    gate: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Job for Counted {
    fn run_turn(&self) -> bool {
        if let Some(gate) = self.gate.lock().unwrap().as_ref() {
            let _ = gate.recv();
        }
        self.log.lock().unwrap().push(self.name);
        self.left.fetch_sub(1, Ordering::SeqCst) > 1
    }
}

fn counted(name: usize, turns: usize, log: &Arc<Mutex<Vec<usize>>>) -> Arc<Counted> {
    Arc::new(Counted {
        name,
        left: AtomicUsize::new(turns),
        log: Arc::clone(log),
        gate: Mutex::new(None),
    })
}

#[test]
fn turns_are_round_robin_on_one_thread() {
    let engine = Engine::start(1, Duration::ZERO).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    // Hold the only thread inside a first job while the others queue up.
    let (release, gate) = mpsc::channel();
    let holder = counted(9, 1, &log);
    *holder.gate.lock().unwrap() = Some(gate);
    engine.schedule(holder, false);
    for name in 0..3 {
        engine.schedule(counted(name, 3, &log), false);
    }
    release.send(()).unwrap();
    engine.drain();
    assert_eq!(*log.lock().unwrap(), [9, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
}

#[test]
fn a_job_held_in_its_turn_stops_one_thread_only() {
    // The fairness bound with a slow disk: one writer stuck in an fdatasync
    // holds its thread; the other threads keep serving everyone else.
    let engine = Engine::start(2, Duration::ZERO).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (release, gate) = mpsc::channel();
    let slow = counted(1000, 1, &log);
    *slow.gate.lock().unwrap() = Some(gate);
    engine.schedule(slow, true);
    let others: Vec<_> = (0..100).map(|name| counted(name, 5, &log)).collect();
    for job in &others {
        engine.schedule(Arc::clone(job) as Arc<dyn Job>, false);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while others.iter().any(|job| job.left.load(Ordering::SeqCst) > 0) {
        assert!(std::time::Instant::now() < deadline, "the others starved");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!log.lock().unwrap().contains(&1000));
    release.send(()).unwrap();
    engine.drain();
    assert_eq!(log.lock().unwrap().len(), 501);
}

#[test]
fn drain_waits_for_queued_and_running_turns() {
    let engine = Engine::start(2, Duration::from_millis(50)).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    for name in 0..50 {
        engine.schedule(counted(name, 4, &log), false);
    }
    engine.drain();
    assert_eq!(log.lock().unwrap().len(), 200);
}

#[test]
fn a_lingering_thread_runs_an_urgent_job_at_once() {
    let engine = Engine::start(1, Duration::from_secs(3600)).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    // Lingering is for a thread woken from idle: let it go idle first.
    std::thread::sleep(Duration::from_millis(20));
    engine.schedule(counted(1, 1, &log), false);
    std::thread::sleep(Duration::from_millis(20));
    assert!(log.lock().unwrap().is_empty(), "it should linger");
    engine.hurry();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while log.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "hurry did not cut the linger"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn configured_threads_must_be_positive() {
    assert!(configure_threads(0).is_err());
}
