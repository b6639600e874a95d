//! The shared I/O engine behind every `AsyncSessionWriter` of a process: a
//! fixed pool of I/O threads and one run queue of writers that have work.
//! Plain Rust, no Python.
//!
//! Why this shape (docs/asyncio.md measures the alternatives):
//!
//! * A thread per writer costs a thread, its stack and a context switch per
//!   chunk once sessions interleave; a runtime with thousands of sessions
//!   would need thousands of threads. A few threads serving a run queue of
//!   writers keep the thread count fixed and, because a writer's records
//!   pile up while it waits its turn, turn many small records into one
//!   `write(2)` per writer per turn.
//! * A writer is in the run queue at most once, and only one thread serves
//!   it at a time: its records stay in order without any per-record
//!   coordination between threads.
//! * Turns are round robin: a served writer that still has work goes to the
//!   back. One turn is one write of at most the writer's byte bound (plus an
//!   fdatasync under `sync="always"`), so a ready writer waits for at most one
//!   turn of each writer ahead of it, spread over the pool's threads; a slow
//!   fdatasync holds one thread, never the others.
//! * More than one thread by default, so one writer's slow disk does not
//!   stop every other writer; not many more than cores, since writes to the
//!   page cache are CPU work.
//!
//! Work arrives through [`Engine::schedule`] from whoever made a writer
//! runnable; the writer's own logic is behind [`Job`] (the write queue in
//! `queue.rs`).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::fork;

/// A unit of work the engine runs: one turn of one writer.
pub trait Job: Send + Sync + 'static {
    /// Does one turn. Returns true when the job has more work and must be
    /// queued again (at the back); false when it is done for now (it will be
    /// scheduled again by whoever gives it work).
    fn run_turn(&self) -> bool;
}

/// The environment variable that sets the number of I/O threads.
pub const THREADS_ENV: &str = "SESSIONWAL_IO_THREADS";
/// I/O threads only write and fsync; they need little stack.
const THREAD_STACK_BYTES: usize = 256 << 10;

struct RunQueue {
    ready: VecDeque<Arc<dyn Job>>,
    /// Threads waiting for work.
    idle: usize,
    /// Idle threads already told to wake that have not taken work yet.
    waking: usize,
    /// Threads running a turn now.
    busy: usize,
    /// A queued job has someone waiting on it: lingering threads stop.
    urgent: bool,
}

struct Inner {
    queue: Mutex<RunQueue>,
    /// Idle threads wait here for work.
    work: Condvar,
    /// Lingering threads wait here for urgency.
    hurry: Condvar,
    /// `drain` waits here for the queue to empty.
    quiet: Condvar,
    linger: Duration,
    threads: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, RunQueue> {
        // Every update leaves the run queue consistent before anything can panic.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle to a pool of I/O threads. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Starts `threads` I/O threads (at least one). A thread woken from idle
    /// by a job that nobody waits on lingers up to `linger` for more work
    /// before running it: a producer slower than the disk would otherwise
    /// pay a wakeup and a write per record.
    pub fn start(threads: usize, linger: Duration) -> io::Result<Engine> {
        let threads = threads.max(1);
        let inner = Arc::new(Inner {
            queue: Mutex::new(RunQueue {
                ready: VecDeque::new(),
                idle: 0,
                waking: 0,
                busy: 0,
                urgent: false,
            }),
            work: Condvar::new(),
            hurry: Condvar::new(),
            quiet: Condvar::new(),
            linger,
            threads,
        });
        for n in 0..threads {
            let theirs = Arc::clone(&inner);
            // Detached: the threads live as long as the process (`drain`
            // is how a caller waits for them to have nothing left to do).
            std::thread::Builder::new()
                .name(format!("sessionwal-io-{n}"))
                .stack_size(THREAD_STACK_BYTES)
                .spawn(move || serve(&theirs))?;
        }
        Ok(Engine { inner })
    }

    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Queues one turn of `job` behind every job already queued. The caller
    /// guarantees a job is queued at most once at a time. `urgent`: someone
    /// waits for it, so no thread lingers.
    pub fn schedule(&self, job: Arc<dyn Job>, urgent: bool) {
        let mut q = self.inner.lock();
        q.ready.push_back(job);
        self.wake_locked(&mut q, urgent);
    }

    /// Someone now waits on a queued job: stop lingering.
    pub fn hurry(&self) {
        let mut q = self.inner.lock();
        if !q.urgent && !q.ready.is_empty() {
            q.urgent = true;
            self.inner.hurry.notify_all();
        }
    }

    fn wake_locked(&self, q: &mut RunQueue, urgent: bool) {
        if urgent && !q.urgent {
            q.urgent = true;
            self.inner.hurry.notify_all();
        }
        // One more thread per queued job, and none if they are all busy: a
        // notify costs a futex syscall even with nobody waiting.
        if q.idle > q.waking && q.ready.len() > q.waking {
            q.waking += 1;
            self.inner.work.notify_one();
        }
    }

    /// Waits until no job is queued or running: everything schedulable was
    /// done. Jobs that are held (a stalled writer) are not queued and are not
    /// waited for. Meant for interpreter exit.
    pub fn drain(&self) {
        let mut q = self.inner.lock();
        q.urgent = true;
        self.inner.hurry.notify_all();
        while !q.ready.is_empty() || q.busy > 0 {
            q = self.inner.quiet.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn serve(inner: &Inner) {
    let mut q = inner.lock();
    loop {
        let mut woken = false;
        while q.ready.is_empty() {
            q.idle += 1;
            q = inner.work.wait(q).unwrap_or_else(|p| p.into_inner());
            q.idle -= 1;
            q.waking = q.waking.saturating_sub(1);
            woken = true;
        }
        if woken && !q.urgent && !inner.linger.is_zero() {
            q = inner
                .hurry
                .wait_timeout_while(q, inner.linger, |q| !q.urgent)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let Some(job) = q.ready.pop_front() else {
            continue; // another thread took it while this one lingered
        };
        if q.ready.is_empty() {
            q.urgent = false;
        }
        q.busy += 1;
        drop(q);
        let again = job.run_turn();
        q = inner.lock();
        q.busy -= 1;
        if again {
            q.ready.push_back(job);
        } else {
            drop(job);
        }
        if q.ready.is_empty() && q.busy == 0 {
            inner.quiet.notify_all();
        }
    }
}

/// The number of I/O threads when neither [`THREADS_ENV`] nor
/// [`configure_threads`] says: the cores, at least 2 (one slow disk must
/// not stop every writer) and at most 8 (writes to the page cache are CPU
/// work; more threads than cores only add switches).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}

struct Global {
    engine: Option<Engine>,
    generation: u64,
    configured: Option<usize>,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    engine: None,
    generation: 0,
    configured: None,
});

fn global() -> MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The process's engine, started on first use with the configured number of
/// threads. A forked child gets a new one: the parent's threads do not exist
/// there.
pub fn shared(linger: Duration) -> io::Result<Engine> {
    let generation = fork::generation();
    let mut g = global();
    if g.generation != generation {
        // Inherited from the parent: its threads and locks are not ours.
        std::mem::forget(g.engine.take());
        g.generation = generation;
    }
    if let Some(engine) = &g.engine {
        return Ok(engine.clone());
    }
    let threads = match g.configured {
        Some(n) => n,
        None => threads_from_env()?.unwrap_or_else(default_threads),
    };
    let engine = Engine::start(threads, linger)?;
    g.engine = Some(engine.clone());
    Ok(engine)
}

fn threads_from_env() -> io::Result<Option<usize>> {
    match std::env::var(THREADS_ENV) {
        Err(_) => Ok(None),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{THREADS_ENV} must be a positive integer, not {text:?}"),
            )),
        },
    }
}

/// Sets how many I/O threads the engine starts with. Refused once the engine
/// of this process runs (its threads are fixed).
pub fn configure_threads(threads: usize) -> Result<(), String> {
    if threads == 0 {
        return Err("the engine needs at least one I/O thread".into());
    }
    let mut g = global();
    if g.engine.is_some() && g.generation == fork::generation() {
        return Err(format!(
            "the I/O engine already runs with {} threads; configure it before the first writer opens",
            g.engine.as_ref().map_or(0, Engine::threads)
        ));
    }
    g.configured = Some(threads);
    Ok(())
}

/// The running engine's thread count, or what it would start with.
pub fn threads() -> io::Result<usize> {
    let g = global();
    match (&g.engine, g.configured) {
        (Some(engine), _) if g.generation == fork::generation() => Ok(engine.threads()),
        (_, Some(n)) => Ok(n),
        _ => Ok(threads_from_env()?.unwrap_or_else(default_threads)),
    }
}

/// Waits until the process's engine has nothing queued or running (see
/// [`Engine::drain`]); returns at once when there is none, or when it was
/// inherited through fork.
pub fn drain_shared() {
    let engine = {
        let g = global();
        if g.generation != fork::generation() {
            return;
        }
        g.engine.clone()
    };
    if let Some(engine) = engine {
        engine.drain();
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
