//! A directory held open by descriptor. The sessions directory's path is the
//! one name the file layer resolves (symlinks in it are followed, as a user
//! who points `$SESSIONWAL_HOME` through a link expects); every name inside
//! it is opened, renamed, linked and unlinked relative to the descriptor
//! with `O_NOFOLLOW` semantics, so a link planted at `<id>.jsonl` or
//! `<id>.jsonl.__partial__` is never followed and a directory swapped after
//! the open cannot redirect the writer.
//!
//! Windows has no `*at` calls in std: there a `Dir` is its path and names are
//! joined to it (the symlink refusal rests on `FILE_FLAG_OPEN_REPARSE_POINT`).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

#[cfg(unix)]
use std::ffi::CString;
#[cfg(unix)]
use std::os::fd::{AsRawFd, RawFd};

#[cfg(unix)]
use super::check;

pub struct Dir {
    path: PathBuf,
    #[cfg(unix)]
    fd: File,
}

/// Which file a name or a descriptor leads to (device and inode).
///
/// Windows: std exposes no stable file identity, so every `FileId` is equal
/// there and the checks that a name still leads to the file we hold are
/// skipped: a rename or unlink racing `open` or `close` goes undetected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
}

impl FileId {
    pub fn of(file: &File) -> io::Result<FileId> {
        let meta = file.metadata()?;
        Ok(FileId::from_metadata(&meta))
    }

    #[cfg(unix)]
    fn from_metadata(meta: &fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    #[cfg(not(unix))]
    fn from_metadata(_meta: &fs::Metadata) -> FileId {
        FileId {}
    }
}

impl Dir {
    /// Opens the directory at `path`, resolving it (links included): this
    /// is the one path the layer resolves.
    #[cfg(unix)]
    pub fn open(path: &Path) -> io::Result<Dir> {
        use std::os::unix::fs::OpenOptionsExt;
        let fd = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Dir {
            path: path.to_path_buf(),
            fd,
        })
    }

    #[cfg(not(unix))]
    pub fn open(path: &Path) -> io::Result<Dir> {
        if !fs::metadata(path)?.is_dir() {
            return Err(io::Error::other(format!(
                "not a directory: {}",
                path.display()
            )));
        }
        Ok(Dir {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory, for messages and logs.
    pub fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    #[cfg(unix)]
    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// What `name` in this directory is, without following a link: `None`
    /// when there is no such entry.
    #[cfg(unix)]
    pub fn stat(&self, name: &OsStr) -> io::Result<Option<FileId>> {
        let c = c_name(name)?;
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid NUL-terminated name and a directory fd we hold;
        // the struct is read only when the call succeeded.
        let ret = unsafe {
            libc::fstatat(
                self.fd(),
                c.as_ptr(),
                stat.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if ret == -1 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::NotFound => Ok(None),
                _ => Err(err),
            };
        }
        // SAFETY: fstatat succeeded, so it filled the struct.
        let stat = unsafe { stat.assume_init() };
        // st_dev is i32 and st_ino u64 on macOS, both u64 on Linux.
        #[allow(clippy::unnecessary_cast)]
        Ok(Some(FileId {
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
        }))
    }

    #[cfg(not(unix))]
    pub fn stat(&self, name: &OsStr) -> io::Result<Option<FileId>> {
        match fs::symlink_metadata(self.join(name)) {
            Ok(meta) => Ok(Some(FileId::from_metadata(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The names in this directory. Read through the path: used only to
    /// pick a backup number, never to decide what to open.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        fs::read_dir(&self.path)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }
}

/// `mkdir -p` where every directory created gets mode 0700 whatever the
/// umask (session logs are private, like PostgreSQL's data directory).
/// Directories that already exist are left as they are.
pub fn create_private_dirs(path: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut current = path;
    loop {
        match fs::metadata(current) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(io::Error::from(io::ErrorKind::NotADirectory)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(current),
            Err(e) => return Err(e),
        }
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => break,
        }
    }
    for dir in missing.into_iter().rev() {
        match make_private_dir(dir) {
            // Someone else created it meanwhile: theirs, not ours to chmod.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(unix)]
fn make_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    fs::DirBuilder::new().mode(0o700).create(dir)?;
    // The umask can only clear bits of 0700; restore any it cleared (0277
    // would leave the owner unable to enter). fchmod on the directory
    // itself: a link swapped in after the mkdir is refused, not followed.
    let handle = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)?;
    handle.set_permissions(fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn make_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir(dir)
}

#[cfg(unix)]
pub(super) fn c_name(name: &OsStr) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The kernel's own no-replace rename (`EEXIST` when `to` exists).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn rename_exclusive(
    from_dir: &Dir,
    from: &OsStr,
    to_dir: &Dir,
    to: &OsStr,
) -> io::Result<()> {
    let (from, to) = (c_name(from)?, c_name(to)?);
    // SAFETY: valid NUL-terminated names and directory fds we hold.
    check(unsafe {
        libc::renameat2(
            from_dir.fd(),
            from.as_ptr(),
            to_dir.fd(),
            to.as_ptr(),
            libc::RENAME_NOREPLACE as _,
        )
    })
}

#[cfg(target_vendor = "apple")]
pub(super) fn rename_exclusive(
    from_dir: &Dir,
    from: &OsStr,
    to_dir: &Dir,
    to: &OsStr,
) -> io::Result<()> {
    let (from, to) = (c_name(from)?, c_name(to)?);
    // SAFETY: valid NUL-terminated names and directory fds we hold.
    check(unsafe {
        libc::renameatx_np(
            from_dir.fd(),
            from.as_ptr(),
            to_dir.fd(),
            to.as_ptr(),
            libc::RENAME_EXCL,
        )
    })
}

#[cfg(all(
    unix,
    not(any(target_os = "linux", target_os = "android", target_vendor = "apple"))
))]
pub(super) fn rename_exclusive(_: &Dir, _: &OsStr, _: &Dir, _: &OsStr) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// The errors by which a kernel or file system says it has no such call or flag.
#[cfg(unix)]
pub(super) fn unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP)
    ) || err.raw_os_error() == Some(libc::EOPNOTSUPP)
}

/// The no-replace rename for file systems without `RENAME_NOREPLACE`: a hard
/// link fails with `EEXIST` when `to` exists, then the old name goes. A
/// crash between the two leaves both names on the one complete file.
#[cfg(unix)]
pub(super) fn link_then_unlink(
    from_dir: &Dir,
    from: &OsStr,
    to_dir: &Dir,
    to: &OsStr,
) -> io::Result<()> {
    let (c_from, c_to) = (c_name(from)?, c_name(to)?);
    // SAFETY: valid NUL-terminated names and directory fds we hold. Flags 0:
    // a symlink at `from` would be linked itself, never its target.
    let linked = check(unsafe {
        libc::linkat(
            from_dir.fd(),
            c_from.as_ptr(),
            to_dir.fd(),
            c_to.as_ptr(),
            0,
        )
    });
    match linked {
        Err(e) if unsupported(&e) || e.raw_os_error() == Some(libc::EPERM) => {
            return check_then_rename(from_dir, from, to_dir, to);
        }
        other => other?,
    }
    // SAFETY: a valid NUL-terminated name and a directory fd we hold.
    check(unsafe { libc::unlinkat(from_dir.fd(), c_from.as_ptr(), 0) })
}

/// The last resort, for file systems with neither (FAT, some network ones):
/// refuse when `to` exists, else a plain rename. A file created at `to`
/// between the check and the rename is replaced.
#[cfg(unix)]
pub(super) fn check_then_rename(
    from_dir: &Dir,
    from: &OsStr,
    to_dir: &Dir,
    to: &OsStr,
) -> io::Result<()> {
    if to_dir.stat(to)?.is_some() {
        return Err(io::Error::from_raw_os_error(libc::EEXIST));
    }
    let (from, to) = (c_name(from)?, c_name(to)?);
    // SAFETY: valid NUL-terminated names and directory fds we hold.
    check(unsafe { libc::renameat(from_dir.fd(), from.as_ptr(), to_dir.fd(), to.as_ptr()) })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("sessionwal-dir-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        path
    }

    type Rename = fn(&Dir, &OsStr, &Dir, &OsStr) -> io::Result<()>;

    #[test]
    fn every_no_replace_rename_refuses_an_existing_target_and_moves_otherwise() {
        let ways: [(&str, Rename); 3] = [
            ("renameat2", rename_exclusive),
            ("link", link_then_unlink),
            ("check", check_then_rename),
        ];
        for (tag, rename) in ways {
            let path = temp_dir(tag);
            let dir = Dir::open(&path).unwrap();
            fs::write(path.join("a"), b"ours").unwrap();
            fs::write(path.join("b"), b"theirs").unwrap();
            let err = rename(&dir, OsStr::new("a"), &dir, OsStr::new("b")).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{tag}");
            assert_eq!(fs::read(path.join("a")).unwrap(), b"ours", "{tag}");
            assert_eq!(fs::read(path.join("b")).unwrap(), b"theirs", "{tag}");
            rename(&dir, OsStr::new("a"), &dir, OsStr::new("c")).unwrap();
            assert!(!path.join("a").exists(), "{tag}");
            assert_eq!(fs::read(path.join("c")).unwrap(), b"ours", "{tag}");
            fs::remove_dir_all(&path).unwrap();
        }
    }

    #[test]
    fn stat_does_not_follow_a_link() {
        let path = temp_dir("stat");
        let dir = Dir::open(&path).unwrap();
        fs::write(path.join("target"), b"x").unwrap();
        std::os::unix::fs::symlink(path.join("target"), path.join("link")).unwrap();
        let target = dir.stat(OsStr::new("target")).unwrap().unwrap();
        let link = dir.stat(OsStr::new("link")).unwrap().unwrap();
        assert_ne!(target, link);
        assert_eq!(dir.stat(OsStr::new("absent")).unwrap(), None);
        fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn created_directories_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_dir("private");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let deep = path.join("a").join("b");
        // SAFETY: umask is process-wide; restored right after. Other tests
        // in this binary create files with explicit modes only.
        let old = unsafe { libc::umask(0o000) };
        let created = create_private_dirs(&deep);
        // SAFETY: restores the previous mask.
        unsafe { libc::umask(old) };
        created.unwrap();
        for dir in [path.join("a"), deep] {
            let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        let untouched = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(untouched, 0o755, "an existing directory keeps its mode");
        fs::remove_dir_all(&path).unwrap();
    }
}
