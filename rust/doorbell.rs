//! One doorbell per event loop: how I/O threads tell a loop that writers it
//! waits on made progress. Plain Rust, no Python.
//!
//! The loop watches one descriptor (an eventfd on Linux, a pipe elsewhere)
//! whatever the number of writers; a ring also records which writer rang, so
//! the loop settles only those writers. The descriptor is written only when
//! the list of rung writers goes from empty to non-empty: a burst of
//! progress on many writers costs the loop one wakeup.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use crate::queue::Notify;

/// A descriptor that polls readable once rung, until drained.
struct EventFd {
    read: OwnedFd,
    #[cfg(not(target_os = "linux"))]
    write: OwnedFd,
}

impl EventFd {
    #[cfg(target_os = "linux")]
    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; a valid descriptor is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EventFd {
            read: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: pipe fills both descriptors on success; we own them after.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [read.as_raw_fd(), write.as_raw_fd()] {
            // SAFETY: fcntl on descriptors we own.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
            }
        }
        Ok(EventFd { read, write })
    }

    fn ring(&self) {
        let one = 1u64;
        #[cfg(target_os = "linux")]
        let fd = self.read.as_raw_fd();
        #[cfg(not(target_os = "linux"))]
        let fd = self.write.as_raw_fd();
        // SAFETY: writes 8 bytes from a u64. Never blocks (non-blocking); a
        // saturated counter or a full pipe is still readable, which is all
        // the loop needs.
        unsafe { libc::write(fd, (&raw const one).cast(), 8) };
    }

    /// Resets the descriptor so it stops polling readable.
    fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a local buffer from a descriptor we own. EAGAIN
        // (nothing rung) is the only expected failure and means the same. An
        // eventfd hands back its whole counter in one 8-byte read; a pipe may
        // hold several bytes, so read until it is empty.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0
            && cfg!(not(target_os = "linux"))
        {}
    }
}

/// One event loop's doorbell.
pub struct Doorbell {
    event: EventFd,
    rung: Mutex<Vec<u64>>,
}

impl Doorbell {
    pub fn new() -> io::Result<Arc<Self>> {
        Ok(Arc::new(Doorbell {
            event: EventFd::new()?,
            rung: Mutex::new(Vec::new()),
        }))
    }

    /// The descriptor the loop watches.
    pub fn fd(&self) -> RawFd {
        self.event.read.as_raw_fd()
    }

    /// Records that `token`'s writer made progress someone armed for.
    /// Never blocks on I/O (called with the writer's lock held).
    pub fn ring(&self, token: u64) {
        let mut rung = self.rung.lock().unwrap_or_else(|p| p.into_inner());
        let first = rung.is_empty();
        rung.push(token);
        drop(rung);
        if first {
            self.event.ring();
        }
    }

    /// The tokens rung since the last call (possibly repeated), and resets
    /// the descriptor. The descriptor is drained first: a ring after it
    /// lands in a list that is empty again, so it rings the descriptor anew.
    pub fn take(&self) -> Vec<u64> {
        self.event.drain();
        std::mem::take(&mut *self.rung.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A writer's side of its loop's doorbell.
pub struct Ringer {
    pub bell: Arc<Doorbell>,
    pub token: u64,
}

impl Notify for Ringer {
    fn notify(&self) {
        self.bell.ring(self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polls one descriptor we own, without waiting.
        unsafe { libc::poll(&raw mut pfd, 1, 0) == 1 }
    }

    #[test]
    fn many_rings_make_one_wakeup_and_every_token_is_reported() {
        let bell = Doorbell::new().unwrap();
        assert!(!readable(bell.fd()));
        for token in [3, 1, 3, 7] {
            Ringer {
                bell: Arc::clone(&bell),
                token,
            }
            .notify();
        }
        assert!(readable(bell.fd()));
        assert_eq!(bell.take(), [3, 1, 3, 7]);
        assert!(!readable(bell.fd()));
        bell.ring(9);
        assert!(readable(bell.fd()));
        assert_eq!(bell.take(), [9]);
        assert_eq!(bell.take(), Vec::<u64>::new());
    }
}
