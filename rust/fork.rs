//! Fork detection without a syscall per write: a `pthread_atfork` child
//! handler bumps a generation counter, and a writer remembers the generation
//! it was opened in. (`getpid()` is a real syscall in current glibc.)
//! Windows has no fork: the generation never changes there.

use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(unix)]
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
#[cfg(unix)]
static INSTALL: Once = Once::new();

#[cfg(unix)]
extern "C" fn bump_generation_in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The generation of the current process; changes in every forked child.
#[cfg(unix)]
pub fn generation() -> u64 {
    INSTALL.call_once(|| {
        // SAFETY: registering a handler that only touches an atomic is
        // async-signal-safe, as a child handler must be.
        unsafe {
            libc::pthread_atfork(None, None, Some(bump_generation_in_child));
        }
    });
    GENERATION.load(Ordering::Relaxed)
}

#[cfg(not(unix))]
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}
