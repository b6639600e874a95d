//! `sync="interval"`: the file is fdatasync'ed at most once per interval,
//! and only when something was appended since the last sync (Redis's
//! `appendfsync everysec`). Its failure is latched for the writer to report:
//! a failed fsync is never retried and reported as success.
//!
//! One timer thread per process serves every such file, and hands each due
//! fdatasync to a small pool started on demand (`engine::Pool`): a thread
//! per writer would make the thread count grow with open sessions (issue
//! 17), and one thread doing every fdatasync in turn would let a slow file
//! delay the others past their interval.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::engine::{Job, Pool};
use crate::fork;
use crate::sys::Sys;

/// The most threads running interval fdatasyncs at once, process-wide.
const SYNC_THREADS: usize = 8;

struct Entry {
    file: Arc<File>,
    sys: Arc<dyn Sys>,
    interval: Duration,
    dirty: AtomicBool,
    failed: AtomicBool,
    failure: Mutex<Option<io::Error>>,
    /// In the pool's run queue: the timer does not queue it twice.
    queued: AtomicBool,
    /// True once stopped. Held while this file's fdatasync runs, so `stop`
    /// returns only when no sync of the file is in flight or will start.
    stopped: Mutex<bool>,
    /// `stopped` for the timer thread, which must not wait for a sync.
    stopping: AtomicBool,
}

impl Entry {
    fn finished(&self) -> bool {
        self.failed.load(Ordering::Acquire) || self.stopping.load(Ordering::Acquire)
    }
}

impl Job for Entry {
    fn run_turn(&self) -> bool {
        let stopped = lock(&self.stopped);
        self.queued.store(false, Ordering::Release);
        if !*stopped && self.dirty.swap(false, Ordering::AcqRel) {
            if let Err(err) = self.sys.fdatasync(&self.file) {
                *lock(&self.failure) = Some(err);
                self.failed.store(true, Ordering::Release);
            }
        }
        false
    }
}

/// When an entry is next due; the heap's order is the earliest first.
struct Due {
    at: Instant,
    entry: Arc<Entry>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at)
    }
}

struct Service {
    timers: Mutex<BinaryHeap<Due>>,
    wake: Condvar,
    pool: Pool,
}

static SERVICE: Mutex<Option<(u64, Arc<Service>)>> = Mutex::new(None);

/// The process's timer thread and pool, started on first use; a forked
/// child starts its own (the parent's threads do not exist there).
fn service() -> io::Result<Arc<Service>> {
    let generation = fork::generation();
    let mut slot = lock(&SERVICE);
    if let Some((born, service)) = slot.as_ref() {
        if *born == generation {
            return Ok(Arc::clone(service));
        }
        // Inherited: its locks may be held by threads that are gone.
        std::mem::forget(slot.take());
    }
    let service = Arc::new(Service {
        timers: Mutex::new(BinaryHeap::new()),
        wake: Condvar::new(),
        pool: Pool::start("isync", SYNC_THREADS, false, Duration::ZERO)?,
    });
    let theirs = Arc::clone(&service);
    std::thread::Builder::new()
        .name("sessionwal-sync-timer".into())
        .stack_size(128 << 10)
        .spawn(move || run_timers(&theirs))?;
    *slot = Some((generation, Arc::clone(&service)));
    Ok(service)
}

fn run_timers(service: &Service) {
    let mut timers = lock(&service.timers);
    loop {
        let now = Instant::now();
        let wait = match timers.peek() {
            None => None,
            Some(due) if due.at > now => Some(due.at - now),
            Some(_) => {
                let due = timers.pop().expect("peeked");
                if due.entry.finished() {
                    continue; // dropped from the heap: the writer is done with it
                }
                if !due.entry.queued.swap(true, Ordering::AcqRel) {
                    service
                        .pool
                        .schedule(Arc::clone(&due.entry) as Arc<dyn Job>, true);
                }
                let at = now + due.entry.interval;
                timers.push(Due {
                    at,
                    entry: due.entry,
                });
                continue;
            }
        };
        timers = match wait {
            None => service.wake.wait(timers).unwrap_or_else(|p| p.into_inner()),
            Some(wait) => {
                service
                    .wake
                    .wait_timeout(timers, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
    }
}

pub struct Syncer {
    entry: Arc<Entry>,
}

impl Syncer {
    pub fn start(file: Arc<File>, sys: Arc<dyn Sys>, interval: Duration) -> io::Result<Self> {
        let entry = Arc::new(Entry {
            file,
            sys,
            interval,
            dirty: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            queued: AtomicBool::new(false),
            stopped: Mutex::new(false),
            stopping: AtomicBool::new(false),
        });
        let service = service()?;
        lock(&service.timers).push(Due {
            at: Instant::now() + interval,
            entry: Arc::clone(&entry),
        });
        service.wake.notify_one();
        Ok(Syncer { entry })
    }

    pub fn mark_dirty(&self) {
        self.entry.dirty.store(true, Ordering::Release);
    }

    /// The background fdatasync failure, if one happened (taken once).
    pub fn take_failure(&self) -> Option<io::Error> {
        if !self.entry.failed.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.entry.failure).take()
    }

    /// Stops syncing (waiting for an fdatasync in flight); returns a failure
    /// it latched.
    pub fn stop(self) -> Option<io::Error> {
        self.shutdown();
        self.take_failure()
    }

    fn shutdown(&self) {
        self.entry.stopping.store(true, Ordering::Release);
        *lock(&self.entry.stopped) = true;
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
