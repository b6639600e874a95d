//! Fork detection without a syscall per write: a `pthread_atfork` child
//! handler bumps a generation counter, and a writer remembers the generation
//! it was opened in. (`getpid()` is a real syscall in current glibc.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

extern "C" fn bump_generation_in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The generation of the current process; changes in every forked child.
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
