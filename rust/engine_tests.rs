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
    let engine = Pool::start("test", 1, true, Duration::ZERO).unwrap();
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
    let engine = Pool::start("test", 2, true, Duration::ZERO).unwrap();
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
    let engine = Pool::start("test", 2, true, Duration::from_millis(50)).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    for name in 0..50 {
        engine.schedule(counted(name, 4, &log), false);
    }
    engine.drain();
    assert_eq!(log.lock().unwrap().len(), 200);
}

#[test]
fn a_lingering_thread_runs_an_urgent_job_at_once() {
    let engine = Pool::start("test", 1, true, Duration::from_secs(3600)).unwrap();
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
    assert!(configure_threads(0, None).is_err());
    assert!(configure_threads(2, Some(0)).is_err());
}

#[test]
fn a_lazy_pool_starts_threads_on_demand_up_to_its_bound() {
    let pool = Pool::start("test", 3, false, Duration::ZERO).unwrap();
    assert_eq!(pool.threads(), 0);
    let log = Arc::new(Mutex::new(Vec::new()));
    // Jobs held in their turn, like writers waiting for fdatasync: each new
    // one finds no idle thread and starts one, up to the bound.
    let mut releases = Vec::new();
    for name in 0..6 {
        let (release, gate) = mpsc::channel();
        let job = counted(name, 1, &log);
        *job.gate.lock().unwrap() = Some(gate);
        releases.push(release);
        pool.schedule(job, true);
    }
    assert_eq!(pool.threads(), 3);
    for release in releases {
        release.send(()).unwrap();
    }
    pool.drain();
    assert_eq!(log.lock().unwrap().len(), 6);
    assert_eq!(pool.threads(), 3);
}

#[test]
fn durable_jobs_run_on_their_own_pool() {
    let engine = Engine::start(1, 4, Duration::ZERO).unwrap();
    assert_eq!(engine.threads(), (1, 0));
    let log = Arc::new(Mutex::new(Vec::new()));
    // The only write thread is held: a durable job still runs.
    let (release, gate) = mpsc::channel();
    let held = counted(0, 1, &log);
    *held.gate.lock().unwrap() = Some(gate);
    engine.schedule(held, true, false);
    engine.schedule(counted(1, 1, &log), true, true);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log.lock().unwrap().contains(&1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the durable job waited for the write pool"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(engine.threads(), (1, 1));
    release.send(()).unwrap();
    engine.drain();
}
