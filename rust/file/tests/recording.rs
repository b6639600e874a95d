//! A `Sys` for tests: the real calls on a real temporary directory, with
//! scripted faults in front of them and a log of every call that changes
//! what a disk could hold (the power-loss model replays that log).

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::sys::{Dir, RealSys, Sys};

/// One logged call, in the order it reached the kernel.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `file` numbers the inode for the life of the log.
    Open {
        file: usize,
        name: PathBuf,
        created: bool,
    },
    Write {
        file: usize,
        offset: u64,
        data: Vec<u8>,
    },
    Truncate {
        file: usize,
        len: u64,
    },
    SyncFile {
        file: usize,
    },
    SyncDir {
        dir: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    /// Logged by the test, not the writer: this line's append returned Ok.
    Acked(Vec<u8>),
    /// Logged by the test: `close` returned Ok.
    Closed,
}

/// What the next `write` does instead of (or before) the real call.
pub enum WriteFault {
    /// Write at most this many bytes.
    Short(usize),
    /// Fail with this errno without writing.
    Fail(i32),
    /// Return Ok(0).
    Zero,
    /// Another process appends these bytes, then this write fails with the errno.
    ForeignThenFail(Vec<u8>, i32),
}

/// Runs after an `open_append`, given the path it opened.
pub type OpenHook = Box<dyn FnOnce(&Path) + Send>;

#[derive(Default)]
pub struct Faults {
    pub write: VecDeque<WriteFault>,
    /// errno for each `ftruncate`, in order; `None` lets the call through.
    pub ftruncate: VecDeque<Option<i32>>,
    pub fdatasync: VecDeque<Option<i32>>,
    pub sync_dir: VecDeque<Option<i32>>,
    /// Run after each successful `open_append` (e.g. to swap the file away).
    pub after_open: VecDeque<OpenHook>,
}

#[derive(Default)]
pub struct TestSys {
    pub faults: Mutex<Faults>,
    log: Mutex<Vec<Op>>,
    fdatasync_calls: AtomicUsize,
    files: Mutex<HashMap<RawFd, usize>>,
    inodes: Mutex<HashMap<(u64, u64), usize>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn scripted(queue: &mut VecDeque<Option<i32>>) -> io::Result<()> {
    match queue.pop_front().flatten() {
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        None => Ok(()),
    }
}

impl TestSys {
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn log(&self) -> Vec<Op> {
        lock(&self.log).clone()
    }

    pub fn push(&self, op: Op) {
        lock(&self.log).push(op);
    }

    pub fn count(&self, pred: impl Fn(&Op) -> bool) -> usize {
        lock(&self.log).iter().filter(|op| pred(op)).count()
    }

    /// fdatasync calls, failed ones included (the log holds only successes).
    pub fn syncs(&self) -> usize {
        self.fdatasync_calls.load(Ordering::SeqCst)
    }

    pub fn renames(&self) -> usize {
        self.count(|op| matches!(op, Op::Rename { .. }))
    }

    pub fn truncates(&self) -> usize {
        self.count(|op| matches!(op, Op::Truncate { .. }))
    }

    fn file_of(&self, file: &File) -> usize {
        *lock(&self.files)
            .get(&file.as_raw_fd())
            .expect("fd opened through this Sys")
    }
}

impl Sys for TestSys {
    fn open_append(&self, dir: &Dir, name: &OsStr) -> io::Result<File> {
        let path = &dir.join(name);
        let created = std::fs::symlink_metadata(path).is_err();
        let file = RealSys.open_append(dir, name)?;
        let meta = file.metadata()?;
        let file_id = {
            let mut inodes = lock(&self.inodes);
            let next = inodes.len();
            *inodes.entry((meta.dev(), meta.ino())).or_insert(next)
        };
        lock(&self.files).insert(file.as_raw_fd(), file_id);
        self.push(Op::Open {
            file: file_id,
            name: path.to_path_buf(),
            created,
        });
        let hook = self.faults().after_open.pop_front();
        if let Some(hook) = hook {
            hook(path);
        }
        Ok(file)
    }

    fn try_lock(&self, file: &File) -> io::Result<bool> {
        RealSys.try_lock(file)
    }

    fn unlock(&self, file: &File) -> io::Result<()> {
        RealSys.unlock(file)
    }

    fn write(&self, file: &File, buf: &[u8]) -> io::Result<usize> {
        let fault = self.faults().write.pop_front();
        let buf = match fault {
            None => buf,
            Some(WriteFault::Short(n)) => &buf[..n.min(buf.len())],
            Some(WriteFault::Fail(errno)) => return Err(io::Error::from_raw_os_error(errno)),
            Some(WriteFault::Zero) => return Ok(0),
            Some(WriteFault::ForeignThenFail(bytes, errno)) => {
                let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
                OpenOptions::new()
                    .append(true)
                    .open(path)?
                    .write_all(&bytes)?;
                return Err(io::Error::from_raw_os_error(errno));
            }
        };
        let offset = RealSys.file_size(file)?;
        let n = RealSys.write(file, buf)?;
        self.push(Op::Write {
            file: self.file_of(file),
            offset,
            data: buf[..n].to_vec(),
        });
        Ok(n)
    }

    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        RealSys.read_at(file, buf, offset)
    }

    fn ftruncate(&self, file: &File, len: u64) -> io::Result<()> {
        scripted(&mut self.faults().ftruncate)?;
        RealSys.ftruncate(file, len)?;
        self.push(Op::Truncate {
            file: self.file_of(file),
            len,
        });
        Ok(())
    }

    fn fdatasync(&self, file: &File) -> io::Result<()> {
        self.fdatasync_calls.fetch_add(1, Ordering::SeqCst);
        scripted(&mut self.faults().fdatasync)?;
        RealSys.fdatasync(file)?;
        self.push(Op::SyncFile {
            file: self.file_of(file),
        });
        Ok(())
    }

    fn file_size(&self, file: &File) -> io::Result<u64> {
        RealSys.file_size(file)
    }

    fn rename_noreplace(
        &self,
        from_dir: &Dir,
        from: &OsStr,
        to_dir: &Dir,
        to: &OsStr,
    ) -> io::Result<()> {
        RealSys.rename_noreplace(from_dir, from, to_dir, to)?;
        self.push(Op::Rename {
            from: from_dir.join(from),
            to: to_dir.join(to),
        });
        Ok(())
    }

    fn sync_dir(&self, dir: &Dir) -> io::Result<()> {
        scripted(&mut self.faults().sync_dir)?;
        RealSys.sync_dir(dir)?;
        self.push(Op::SyncDir {
            dir: dir.path().to_path_buf(),
        });
        Ok(())
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "sessionwal-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
