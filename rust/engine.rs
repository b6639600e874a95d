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
/// The environment variable that caps the threads of `sync="always"` writers.
pub const SYNC_THREADS_ENV: &str = "SESSIONWAL_SYNC_THREADS";
/// Durable threads when neither the environment nor `configure_threads` says.
pub const DEFAULT_SYNC_THREADS: usize = 16;
/// I/O threads only write and fsync; they need little stack.
const THREAD_STACK_BYTES: usize = 256 << 10;

struct RunQueue {
    ready: VecDeque<Arc<dyn Job>>,
    /// Threads started so far (up to `Inner::threads`).
    spawned: usize,
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
    /// The most threads this pool starts.
    threads: usize,
    name: &'static str,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, RunQueue> {
        // Every update leaves the run queue consistent before anything can panic.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A pool of threads serving one run queue. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A pool of up to `threads` threads (at least one), `eager` ones all
    /// started now, others on demand when a job finds no idle thread. A
    /// thread woken from idle by a job that nobody waits on lingers up to
    /// `linger` for more work before running it: a producer slower than the
    /// disk would otherwise pay a wakeup and a write per record.
    pub fn start(
        name: &'static str,
        threads: usize,
        eager: bool,
        linger: Duration,
    ) -> io::Result<Pool> {
        let pool = Pool {
            inner: Arc::new(Inner {
                queue: Mutex::new(RunQueue {
                    ready: VecDeque::new(),
                    spawned: 0,
                    idle: 0,
                    waking: 0,
                    busy: 0,
                    urgent: false,
                }),
                work: Condvar::new(),
                hurry: Condvar::new(),
                quiet: Condvar::new(),
                linger,
                threads: threads.max(1),
                name,
            }),
        };
        if eager {
            let mut q = pool.inner.lock();
            while q.spawned < pool.inner.threads {
                pool.spawn_locked(&mut q)?;
            }
        }
        Ok(pool)
    }

    /// The threads started so far.
    pub fn threads(&self) -> usize {
        self.inner.lock().spawned
    }

    /// The most threads this pool starts.
    pub fn max_threads(&self) -> usize {
        self.inner.threads
    }

    fn spawn_locked(&self, q: &mut RunQueue) -> io::Result<()> {
        let theirs = Arc::clone(&self.inner);
        // Detached: the threads live as long as the process (`drain` is how
        // a caller waits for them to have nothing left to do).
        std::thread::Builder::new()
            .name(format!("sessionwal-{}-{}", self.inner.name, q.spawned))
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || serve(&theirs))?;
        q.spawned += 1;
        Ok(())
    }

    /// Queues one turn of `job` behind every job already queued. The caller
    /// guarantees a job is queued at most once at a time. `urgent`: someone
    /// waits for it, so no thread lingers. Hands the job back if the pool
    /// has no thread and cannot start one.
    pub fn try_schedule(&self, job: Arc<dyn Job>, urgent: bool) -> Result<(), Arc<dyn Job>> {
        let mut q = self.inner.lock();
        let free = q.idle.saturating_sub(q.waking);
        // Every thread busy or already claimed: start another, if allowed.
        if free <= q.ready.len() && q.spawned < self.inner.threads {
            let started = self.spawn_locked(&mut q);
            if started.is_err() && q.spawned == 0 {
                return Err(job);
            }
        }
        q.ready.push_back(job);
        self.wake_locked(&mut q, urgent);
        Ok(())
    }

    /// `try_schedule` on a pool that has a thread.
    pub fn schedule(&self, job: Arc<dyn Job>, urgent: bool) {
        if let Err(job) = self.try_schedule(job, urgent) {
            // Only a lazy pool that could not start its first thread gets
            // here; `Engine` never uses one that way.
            drop(job);
            unreachable!("schedule on a pool without threads");
        }
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

/// The engine of a process: a pool for writers whose turns only write
/// (`sync` never, close, interval: CPU work into the page cache, so about
/// as many threads as cores), and a pool for `sync="always"` writers, whose
/// every turn also waits for an fdatasync. That wait costs no CPU, and the
/// file system commits concurrent fdatasyncs of many files together (ext4's
/// journal does), so durable writers get more threads, started only when
/// they are used: with two threads, 16 `sync="always"` writers paid 159 µs
/// per chunk against 64 µs with 16.
#[derive(Clone)]
pub struct Engine {
    writes: Pool,
    syncs: Pool,
}

impl Engine {
    /// `writes` threads started now; up to `syncs` durable threads on demand.
    pub fn start(writes: usize, syncs: usize, linger: Duration) -> io::Result<Engine> {
        Ok(Engine {
            writes: Pool::start("io", writes, true, linger)?,
            syncs: Pool::start("sync", syncs, false, linger)?,
        })
    }

    /// (write threads, durable threads started so far).
    pub fn threads(&self) -> (usize, usize) {
        (self.writes.threads(), self.syncs.threads())
    }

    /// Queues one turn of `job` on the pool for its kind (`durable`: every
    /// turn ends in an fdatasync). See [`Pool::try_schedule`].
    pub fn schedule(&self, job: Arc<dyn Job>, urgent: bool, durable: bool) {
        let job = if durable {
            match self.syncs.try_schedule(job, urgent) {
                Ok(()) => return,
                // No durable thread could start: the write pool serves it.
                Err(job) => job,
            }
        } else {
            job
        };
        self.writes.schedule(job, urgent);
    }

    /// Someone now waits on a queued job: stop lingering.
    pub fn hurry(&self) {
        self.writes.hurry();
        self.syncs.hurry();
    }

    /// Waits until neither pool has a job queued or running.
    pub fn drain(&self) {
        self.writes.drain();
        self.syncs.drain();
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

/// How many threads of each pool the engine starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threads {
    /// The write pool's threads, started with the engine.
    pub writes: usize,
    /// The most threads for `sync="always"` writers, started on demand.
    pub syncs: usize,
}

struct Global {
    engine: Option<Engine>,
    generation: u64,
    configured: Option<Threads>,
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
        Some(threads) => threads,
        None => threads_from_env()?,
    };
    let engine = Engine::start(threads.writes, threads.syncs, linger)?;
    g.engine = Some(engine.clone());
    Ok(engine)
}

fn positive_env(name: &str) -> io::Result<Option<usize>> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} must be a positive integer, not {text:?}"),
            )),
        },
    }
}

/// The thread counts from the environment, defaults where it says nothing.
fn threads_from_env() -> io::Result<Threads> {
    Ok(Threads {
        writes: positive_env(THREADS_ENV)?.unwrap_or_else(default_threads),
        syncs: positive_env(SYNC_THREADS_ENV)?.unwrap_or(DEFAULT_SYNC_THREADS),
    })
}

/// Sets how many threads the engine starts with (`syncs`: None keeps the
/// environment's or the default). Refused once the engine of this process
/// runs: its threads are fixed.
pub fn configure_threads(writes: usize, syncs: Option<usize>) -> Result<(), String> {
    if writes == 0 || syncs == Some(0) {
        return Err("the engine needs at least one thread in each pool".into());
    }
    let mut g = global();
    if let Some(engine) = g
        .engine
        .as_ref()
        .filter(|_| g.generation == fork::generation())
    {
        return Err(format!(
            "the I/O engine already runs with {} threads; configure it before the first writer opens",
            engine.writes.max_threads()
        ));
    }
    let from_env = threads_from_env().map_err(|err| err.to_string())?;
    g.configured = Some(Threads {
        writes,
        syncs: syncs.unwrap_or(from_env.syncs),
    });
    Ok(())
}

/// The running engine's most threads per pool, or what it would start with.
pub fn threads() -> io::Result<Threads> {
    let g = global();
    match (&g.engine, g.configured) {
        (Some(engine), _) if g.generation == fork::generation() => Ok(Threads {
            writes: engine.writes.max_threads(),
            syncs: engine.syncs.max_threads(),
        }),
        (_, Some(threads)) => Ok(threads),
        _ => threads_from_env(),
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
