//! Every file-system call the WAL makes, behind a trait: the seam through
//! which unit tests inject short writes, EINTR, failed truncates and EIO on
//! fdatasync (which a real filesystem rarely produces), and through which the
//! power-loss model records writes, syncs and renames in the order they
//! reach the kernel.
//!
//! Calls take the open `&File`, not a raw descriptor, so the seam is the
//! same on every platform. On unix [`RealSys`] makes exactly the libc calls
//! it always made (through the file's descriptor); on Windows it uses std's
//! portable equivalents, and what has no Windows counterpart is a no-op
//! (see the `windows` impl).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
#[cfg(unix)]
use std::os::fd::AsRawFd;

mod dir;
pub use dir::{create_private_dirs, Dir, FileId};

pub trait Sys: Send + Sync {
    /// Opens `name` in `dir` for appending, creating it with mode 0600 in
    /// the open itself; never follows a symlink at `name`.
    fn open_append(&self, dir: &Dir, name: &OsStr) -> io::Result<File>;
    /// `flock(LOCK_EX | LOCK_NB)`; `Ok(false)` when another open file
    /// description holds the lock.
    fn try_lock(&self, file: &File) -> io::Result<bool>;
    fn unlock(&self, file: &File) -> io::Result<()>;
    fn write(&self, file: &File, buf: &[u8]) -> io::Result<usize>;
    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn ftruncate(&self, file: &File, len: u64) -> io::Result<()>;
    fn fdatasync(&self, file: &File) -> io::Result<()>;
    /// Current size of `file`.
    fn file_size(&self, file: &File) -> io::Result<u64>;
    /// Renames `from` in `from_dir` to `to` in `to_dir` unless `to` exists
    /// (then `AlreadyExists`); never replaces, never follows a symlink.
    fn rename_noreplace(
        &self,
        from_dir: &Dir,
        from: &OsStr,
        to_dir: &Dir,
        to: &OsStr,
    ) -> io::Result<()>;
    /// fsync of a directory: makes the creates and renames in it durable.
    fn sync_dir(&self, dir: &Dir) -> io::Result<()>;
}

/// The real thing: thin wrappers over libc on unix, over std on Windows.
pub struct RealSys;

/// A libc call's `-1` as the `errno` error it stands for (also used by
/// `dir`'s `*at` calls).
#[cfg(unix)]
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(unix)]
impl Sys for RealSys {
    fn open_append(&self, dir: &Dir, name: &OsStr) -> io::Result<File> {
        use std::os::fd::FromRawFd;
        let name = dir::c_name(name)?;
        // Read access too: reopening a crashed session inspects its last
        // bytes for a torn record before appending.
        let flags = libc::O_RDWR
            | libc::O_APPEND
            | libc::O_CREAT
            | libc::O_NOFOLLOW
            | libc::O_CLOEXEC
            // A FIFO planted at the name must not block the open; the
            // caller refuses anything but a regular file right after.
            | libc::O_NONBLOCK;
        let fd = loop {
            // SAFETY: a valid NUL-terminated name and a directory fd we hold.
            let fd = unsafe { libc::openat(dir.fd(), name.as_ptr(), flags, 0o600 as libc::c_uint) };
            if fd >= 0 {
                break fd;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };
        // SAFETY: openat just returned this descriptor and nothing else owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        // Back to blocking for the appends (O_NONBLOCK means nothing for a
        // regular file, but a write must never see EAGAIN).
        // SAFETY: plain fcntl on the descriptor we own.
        check(unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_APPEND) })?;
        Ok(file)
    }

    fn try_lock(&self, file: &File) -> io::Result<bool> {
        let fd = file.as_raw_fd();
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

    fn unlock(&self, file: &File) -> io::Result<()> {
        let fd = file.as_raw_fd();
        // SAFETY: plain syscall on a descriptor the caller owns.
        check(unsafe { libc::flock(fd, libc::LOCK_UN) })
    }

    fn write(&self, file: &File, buf: &[u8]) -> io::Result<usize> {
        let fd = file.as_raw_fd();
        // SAFETY: buf is a valid slice for its length; fd is owned by the caller.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let fd = file.as_raw_fd();
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

    fn ftruncate(&self, file: &File, len: u64) -> io::Result<()> {
        let fd = file.as_raw_fd();
        let len =
            libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: plain syscall on a descriptor the caller owns.
        check(unsafe { libc::ftruncate(fd, len) })
    }

    #[cfg(not(target_vendor = "apple"))]
    fn fdatasync(&self, file: &File) -> io::Result<()> {
        let fd = file.as_raw_fd();
        // SAFETY: plain syscall on a descriptor the caller owns.
        check(unsafe { libc::fdatasync(fd) })
    }

    /// macOS has no fdatasync, and its fsync does not flush the drive's
    /// cache: F_FULLFSYNC is what makes data survive power loss there.
    #[cfg(target_vendor = "apple")]
    fn fdatasync(&self, file: &File) -> io::Result<()> {
        let fd = file.as_raw_fd();
        // SAFETY: plain fcntl on a descriptor the caller owns.
        check(unsafe { libc::fcntl(fd, libc::F_FULLFSYNC) })
    }

    fn file_size(&self, file: &File) -> io::Result<u64> {
        let fd = file.as_raw_fd();
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat fills the struct on success, which is the only case we read it.
        check(unsafe { libc::fstat(fd, stat.as_mut_ptr()) })?;
        Ok(unsafe { stat.assume_init() }.st_size as u64)
    }

    fn rename_noreplace(
        &self,
        from_dir: &Dir,
        from: &OsStr,
        to_dir: &Dir,
        to: &OsStr,
    ) -> io::Result<()> {
        match dir::rename_exclusive(from_dir, from, to_dir, to) {
            Err(e) if dir::unsupported(&e) => dir::link_then_unlink(from_dir, from, to_dir, to),
            other => other,
        }
    }

    fn sync_dir(&self, dir: &Dir) -> io::Result<()> {
        // SAFETY: plain syscall on a directory descriptor the caller holds.
        check(unsafe { libc::fsync(dir.fd()) })
    }
}

/// Windows: std's portable calls. `try_lock` is `LockFileEx` over the whole
/// file (exclusive, fail-immediately), `set_len` truncates, `sync_data` is
/// `FlushFileBuffers`. Handles std opens are not inheritable, so there is no
/// `O_CLOEXEC` to ask for, and there is no mode: the file gets the
/// directory's inherited ACL.
#[cfg(windows)]
impl Sys for RealSys {
    fn open_append(&self, dir: &Dir, name: &OsStr) -> io::Result<File> {
        use std::os::windows::fs::OpenOptionsExt;
        let path = dir.join(name);
        /// Opens a symlink itself instead of its target (`O_NOFOLLOW`): the
        /// handle then is not a regular file and `WalFile::open` refuses it.
        const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
        std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
            .open(&path)
    }

    fn try_lock(&self, file: &File) -> io::Result<bool> {
        match file.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn unlock(&self, file: &File) -> io::Result<()> {
        file.unlock()
    }

    fn write(&self, file: &File, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut &*file, buf)
    }

    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // Moves the handle's file pointer, which appends ignore.
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }

    fn ftruncate(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn fdatasync(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn file_size(&self, file: &File) -> io::Result<u64> {
        Ok(file.metadata()?.len())
    }

    /// Windows has no rename that refuses an existing target through std,
    /// and a hard link is not portable across its file systems: the target
    /// is checked first, which leaves a window in which a file created
    /// there is replaced.
    fn rename_noreplace(
        &self,
        from_dir: &Dir,
        from: &OsStr,
        to_dir: &Dir,
        to: &OsStr,
    ) -> io::Result<()> {
        let target = to_dir.join(to);
        if std::fs::symlink_metadata(&target).is_ok() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        std::fs::rename(from_dir.join(from), target)
    }

    /// A no-op: Windows has no directory fsync (std cannot even open a
    /// directory as a `File`), so a rename's durability rests on the
    /// file system's metadata journal.
    fn sync_dir(&self, _dir: &Dir) -> io::Result<()> {
        Ok(())
    }
}
