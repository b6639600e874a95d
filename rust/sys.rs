//! The system calls the file layer makes after open, behind a trait: the
//! seam through which unit tests inject short writes, EINTR, failed
//! truncates and EIO on fdatasync, which a real filesystem rarely produces.

use std::io;
use std::os::fd::RawFd;

pub trait Sys: Send + Sync {
    fn write(&self, fd: RawFd, buf: &[u8]) -> io::Result<usize>;
    fn ftruncate(&self, fd: RawFd, len: u64) -> io::Result<()>;
    fn fdatasync(&self, fd: RawFd) -> io::Result<()>;
    fn fsync(&self, fd: RawFd) -> io::Result<()>;
    /// Current size of the file behind `fd`.
    fn file_size(&self, fd: RawFd) -> io::Result<u64>;
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
    fn write(&self, fd: RawFd, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: buf is a valid slice for its length; fd is owned by the caller.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
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

    fn fsync(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: plain syscall on a descriptor the caller owns.
        check(unsafe { libc::fsync(fd) })
    }

    fn file_size(&self, fd: RawFd) -> io::Result<u64> {
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat fills the struct on success, which is the only case we read it.
        check(unsafe { libc::fstat(fd, stat.as_mut_ptr()) })?;
        Ok(unsafe { stat.assume_init() }.st_size as u64)
    }
}
