//! `sync="interval"`: a background thread that fdatasyncs the file at most
//! once per interval, and only when something was appended since the last
//! sync (Redis's `appendfsync everysec`). Its failure is latched for the
//! writer to report: a failed fsync is never retried and reported as success.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys::Sys;

struct Shared {
    dirty: AtomicBool,
    failed: AtomicBool,
    failure: Mutex<Option<io::Error>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

pub struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    pub fn start(file: Arc<File>, sys: Arc<dyn Sys>, interval: Duration) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            dirty: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sessionwal-sync".into())
            .spawn(move || run(&theirs, &file, sys.as_ref(), interval))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    pub fn mark_dirty(&self) {
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// The background fdatasync failure, if one happened (taken once).
    pub fn take_failure(&self) -> Option<io::Error> {
        if !self.shared.failed.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.shared.failure).take()
    }

    /// Stops and joins the thread; returns a failure it latched.
    pub fn stop(mut self) -> Option<io::Error> {
        self.shutdown();
        self.take_failure()
    }

    fn shutdown(&mut self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run(shared: &Shared, file: &File, sys: &dyn Sys, interval: Duration) {
    let mut stop = lock(&shared.stop);
    loop {
        stop = shared
            .wake
            .wait_timeout_while(stop, interval, |stopped| !*stopped)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
        if *stop {
            return;
        }
        if shared.dirty.swap(false, Ordering::AcqRel) {
            if let Err(err) = sys.fdatasync(file) {
                *lock(&shared.failure) = Some(err);
                shared.failed.store(true, Ordering::Release);
                return;
            }
        }
    }
}
