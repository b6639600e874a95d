//! Every file-system call the WAL makes, behind a trait: the seam through
//! which unit tests inject short writes, EINTR, failed truncates and EIO on
//! fdatasync (which a real filesystem rarely produces), and through which the
//! power-loss model records writes, syncs and renames in the order they
//! reach the kernel.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub trait Sys: Send + Sync {
    /// Opens `path` for appending, creating it with mode 0600 in the open
    /// itself; never follows a symlink in the last component.
    fn open_append(&self, path: &Path) -> io::Result<File>;
    /// `flock(LOCK_EX | LOCK_NB)`; `Ok(false)` when another open file
    /// description holds the lock.
    fn try_lock(&self, fd: RawFd) -> io::Result<bool>;
    fn unlock(&self, fd: RawFd) -> io::Result<()>;
    fn write(&self, fd: RawFd, buf: &[u8]) -> io::Result<usize>;
    fn read_at(&self, fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn ftruncate(&self, fd: RawFd, len: u64) -> io::Result<()>;
    fn fdatasync(&self, fd: RawFd) -> io::Result<()>;
    /// Current size of the file behind `fd`.
    fn file_size(&self, fd: RawFd) -> io::Result<u64>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync of a directory: makes the creates and renames in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real thing: thin wrappers over libc.
pub struct RealSys;

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Sys for RealSys {
    fn open_append(&self, path: &Path) -> io::Result<File> {
        // Read access too: reopening a crashed session inspects its last
        // bytes for a torn record before appending.
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    }

    fn try_lock(&self, fd: RawFd) -> io::Result<bool> {
        loop {
            // SAFETY: plain syscall on a descriptor the caller owns.
            match check(unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }) {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn unlock(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: plain syscall on a descriptor the caller owns.
        check(unsafe { libc::flock(fd, libc::LOCK_UN) })
    }

    fn write(&self, fd: RawFd, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: buf is a valid slice for its length; fd is owned by the caller.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn read_at(&self, fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: buf is a valid, writable slice for its length.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn ftruncate(&self, fd: RawFd, len: u64) -> io::Result<()> {
        let len =
            libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: plain syscall on a descriptor the caller owns.
        check(unsafe { libc::ftruncate(fd, len) })
    }

    fn fdatasync(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: plain syscall on a descriptor the caller owns.
        check(unsafe { libc::fdatasync(fd) })
    }

    fn file_size(&self, fd: RawFd) -> io::Result<u64> {
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat fills the struct on success, which is the only case we read it.
        check(unsafe { libc::fstat(fd, stat.as_mut_ptr()) })?;
        Ok(unsafe { stat.assume_init() }.st_size as u64)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let handle = File::open(dir)?;
        // SAFETY: plain syscall on a descriptor we own for the call's duration.
        check(unsafe { libc::fsync(handle.as_raw_fd()) })
    }
}
