//! The write-ahead-log file: open + lock, one `write(2)` per record with
//! rollback, durability per [`SyncMode`], and the trailer + atomic rename
//! that marks a clean close. Plain Rust, no Python: unit-tested with
//! `cargo test` through the [`Sys`] seam.
//!
//! Only the directories are resolved: the partial file is opened, checked
//! and renamed relative to its directory's descriptor ([`Dir`]), so a
//! symlink planted at either name is never followed. The final name is
//! installed without replacing anything: an earlier session closed under
//! the same name is kept as `<final>.~N~` (see [`WalFile::close`]).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Result, WalError};
use crate::fork;
use crate::scan::{valid_prefix, RecoveryError, TailKind, DEFAULT_MAX_LINE};
use crate::sync_mode::SyncMode;
use crate::syncer::Syncer;
use crate::sys::{create_private_dirs, Dir, FileId, RealSys, Sys};

/// How many times `open` retries when the file it locked was renamed or
/// unlinked between its `open` and its `flock` (a concurrent close).
const OPEN_ATTEMPTS: usize = 3;

/// How long `open` waits for a lock that someone else holds before it
/// refuses. Readers that must probe the lock (`sessionwal.files.
/// writer_holds_lock`, when `/proc/locks` does not list it) hold it for
/// microseconds and must never make a writer fail; a second writer holds it
/// for its whole life and is still refused, this much later. The pure
/// writer waits the same (`WRITER_LOCK_PATIENCE`).
const LOCK_PATIENCE: Duration = Duration::from_millis(50);

/// How many times `close` moves a file found at the final name out of the
/// way before giving up (each time another process put one back).
const INSTALL_ATTEMPTS: usize = 8;

enum Installed {
    /// The partial name was gone (someone removed it): nothing to promote.
    PartialGone,
    /// Installed; an earlier file at the final name was moved here.
    Yes { kept_earlier: Option<PathBuf> },
}

enum State {
    Open,
    Poisoned(String),
    Closed,
}

pub struct WalFile {
    file: Option<Arc<File>>,
    /// The partial file's directory, held open from `open` to `close`.
    dir: Dir,
    partial_name: OsString,
    partial_path: PathBuf,
    final_path: PathBuf,
    /// Where `close` kept an earlier session it found at the final name.
    kept_earlier: Option<PathBuf>,
    sync: SyncMode,
    sys: Arc<dyn Sys>,
    /// Bytes in the file. Exact while we hold the lock: it is where the next
    /// record starts, so where a failed write is cut back to.
    size: u64,
    state: State,
    fork_generation: u64,
    syncer: Option<Syncer>,
}

impl WalFile {
    pub fn open(partial_path: &Path, final_path: &Path, sync: SyncMode) -> Result<Self> {
        Self::open_with(partial_path, final_path, sync, Arc::new(RealSys))
    }

    /// `open` with every file-system call after `mkdir -p` routed through `sys`.
    pub fn open_with(
        partial_path: &Path,
        final_path: &Path,
        sync: SyncMode,
        sys: Arc<dyn Sys>,
    ) -> Result<Self> {
        let (parent, partial_name) = split_name(partial_path)?;
        create_private_dirs(parent).map_err(|e| WalError::io_at(e, parent))?;
        let dir = Dir::open(parent).map_err(|e| WalError::io_at(e, parent))?;
        for _ in 0..OPEN_ATTEMPTS {
            let file = sys
                .open_append(&dir, partial_name)
                .map_err(|e| WalError::io_at(e, partial_path))?;
            let locked =
                lock_patiently(&*sys, &file).map_err(|e| WalError::io_at(e, partial_path))?;
            if !locked {
                return Err(WalError::Locked {
                    partial_path: partial_path.to_path_buf(),
                });
            }
            let named = dir
                .stat(partial_name)
                .map_err(|e| WalError::io_at(e, partial_path))?;
            if named != Some(FileId::of(&file)?) {
                continue;
            }
            // A FIFO or device planted at the path would block or swallow writes.
            if !file.metadata()?.file_type().is_file() {
                return Err(WalError::NotRegular {
                    path: partial_path.to_path_buf(),
                });
            }
            let mut wal = WalFile {
                file: Some(Arc::new(file)),
                dir,
                partial_name: partial_name.to_os_string(),
                partial_path: partial_path.to_path_buf(),
                final_path: final_path.to_path_buf(),
                kept_earlier: None,
                sync,
                sys,
                size: 0,
                state: State::Open,
                fork_generation: fork::generation(),
                syncer: None,
            };
            wal.size = wal.cut_crash_tail()?;
            if wal.sync.syncs_records() {
                // Synced records only survive power loss if the file's name
                // does: make the (possibly just created) entry durable.
                wal.sync_dir(&wal.dir)?;
            }
            if let SyncMode::Interval(every) = wal.sync {
                let file = Arc::clone(wal.file.as_ref().expect("just opened"));
                wal.syncer = Some(Syncer::start(file, Arc::clone(&wal.sys), every)?);
            }
            return Ok(wal);
        }
        Err(WalError::Replaced {
            partial_path: partial_path.to_path_buf(),
        })
    }

    pub fn partial_path(&self) -> &Path {
        &self.partial_path
    }

    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Where `close` kept the earlier session it found at the final name.
    pub fn kept_earlier(&self) -> Option<&Path> {
        self.kept_earlier.as_deref()
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Appends one or more complete lines with a single `write(2)` (looping
    /// on short writes and EINTR). On failure nothing of `lines` stays in the
    /// file: the tail is cut back, and if that fails the writer is poisoned.
    pub fn append(&mut self, lines: &[u8]) -> Result<()> {
        self.check_writable()?;
        if let Some(failure) = self.syncer.as_ref().and_then(Syncer::take_failure) {
            return Err(self.poison_with(failure, "background fdatasync failed"));
        }
        let start = self.size;
        let mut written = 0;
        while written < lines.len() {
            match self.sys.write(self.file(), &lines[written..]) {
                Ok(0) => {
                    let err = io::Error::from(io::ErrorKind::WriteZero);
                    return Err(self.roll_back(start, written, err));
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.roll_back(start, written, e)),
            }
        }
        self.size += lines.len() as u64;
        match &self.sync {
            SyncMode::Always => {
                if let Err(e) = self.sys.fdatasync(self.file()) {
                    return Err(self.poison_with(e, "fdatasync failed"));
                }
            }
            SyncMode::Interval(_) => {
                if let Some(syncer) = &self.syncer {
                    syncer.mark_dirty();
                }
            }
            SyncMode::Never | SyncMode::Close => {}
        }
        Ok(())
    }

    /// Writes the trailer, makes it durable per the sync mode, renames the
    /// partial file to its final name, then releases the lock. Idempotent.
    ///
    /// The lock is held across the rename so no other writer can open the
    /// partial file between our trailer and the rename. The rename never
    /// replaces: a file already at the final name (the same id closed
    /// before, or anything planted there) is first moved to the next free
    /// `<final>.~N~`, as `mv --backup=numbered` does, and kept.
    pub fn close(&mut self, trailer: &[u8]) -> Result<()> {
        if self.is_closed() {
            return Ok(());
        }
        let result = self.finish(trailer);
        self.release();
        result
    }

    /// Releases the file without a trailer or rename: the partial file stays.
    pub fn abandon(&mut self) {
        self.release();
    }

    fn finish(&mut self, trailer: &[u8]) -> Result<()> {
        self.append(trailer)?;
        self.check_writable()?;
        if let Some(failure) = self.syncer.take().and_then(Syncer::stop) {
            return Err(self.poison_with(failure, "background fdatasync failed"));
        }
        // Under `Always` the trailer's own append has just been synced.
        if matches!(self.sync, SyncMode::Close | SyncMode::Interval(_)) {
            if let Err(e) = self.sys.fdatasync(self.file()) {
                return Err(self.poison_with(e, "fdatasync failed"));
            }
        }
        match self.dir.stat(&self.partial_name) {
            // Someone removed the partial file: nothing to promote (the seed
            // ignores FileNotFoundError from its rename the same way).
            Ok(None) => return Ok(()),
            Err(e) => return Err(WalError::io_at(e, &self.partial_path)),
            Ok(Some(named)) => {
                if Some(named) != self.file.as_deref().map(FileId::of).transpose()? {
                    let err = WalError::Replaced {
                        partial_path: self.partial_path.clone(),
                    };
                    self.state = State::Poisoned(err.to_string());
                    return Err(err);
                }
            }
        }
        let (final_parent, final_name) = split_name(&self.final_path)?;
        // A hook may put the final name in another directory.
        let other_dir = if final_parent == self.dir.path() {
            None
        } else {
            Some(Dir::open(final_parent).map_err(|e| WalError::io_at(e, final_parent))?)
        };
        if other_dir.is_none() && final_name == self.partial_name {
            // Hooks that name one file for both: it already has its final
            // name (the seed's rename onto itself changes nothing either).
            // Its directory entry, made at open, must survive as a rename's would.
            if self.sync.syncs_on_close() {
                self.sync_dir(&self.dir)?;
            }
            return Ok(());
        }
        let final_dir = other_dir.as_ref().unwrap_or(&self.dir);
        match self.install(final_dir, final_name)? {
            Installed::PartialGone => return Ok(()),
            Installed::Yes { kept_earlier } => self.kept_earlier = kept_earlier,
        }
        if self.sync.syncs_on_close() {
            // Both entries changed when a hook put them in different directories.
            self.sync_dir(final_dir)?;
            if other_dir.is_some() {
                self.sync_dir(&self.dir)?;
            }
        }
        Ok(())
    }

    /// Renames the partial file to `final_name` in `final_dir` without
    /// replacing anything.
    fn install(&self, final_dir: &Dir, final_name: &OsStr) -> Result<Installed> {
        let mut kept_earlier = None;
        for _ in 0..INSTALL_ATTEMPTS {
            let renamed =
                self.sys
                    .rename_noreplace(&self.dir, &self.partial_name, final_dir, final_name);
            match renamed {
                Ok(()) => return Ok(Installed::Yes { kept_earlier }),
                // ENOENT: the partial name is gone (removed since our check),
                // or the final directory was removed: only the first is fine.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return match self.dir.stat(&self.partial_name) {
                        Ok(None) => Ok(Installed::PartialGone),
                        _ => Err(WalError::io_at(e, &self.final_path)),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    kept_earlier = self.keep_earlier(final_dir, final_name)?.or(kept_earlier);
                }
                Err(e) => return Err(WalError::io_at(e, &self.partial_path)),
            }
        }
        Err(WalError::io_at(
            io::Error::from(io::ErrorKind::AlreadyExists),
            &self.final_path,
        ))
    }

    /// Moves the file at `final_name` to the next free `<final_name>.~N~`
    /// (one past the highest number there, so numbers follow age) and
    /// returns that path. A file that vanished meanwhile needs no move.
    fn keep_earlier(&self, dir: &Dir, final_name: &OsStr) -> Result<Option<PathBuf>> {
        let names = dir.names().map_err(|e| WalError::io_at(e, dir.path()))?;
        // Past a planted `.~<u64::MAX>~` numbering starts again from 1.
        let next = |number: u64| number.checked_add(1).unwrap_or(1);
        let mut number = next(highest_backup_number(final_name, &names));
        loop {
            let backup = backup_name(final_name, number);
            match self.sys.rename_noreplace(dir, final_name, dir, &backup) {
                Ok(()) => return Ok(Some(dir.join(&backup))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => number = next(number),
                Err(e) => return Err(WalError::io_at(e, dir.join(final_name))),
            }
        }
    }

    fn sync_dir(&self, dir: &Dir) -> Result<()> {
        self.sys
            .sync_dir(dir)
            .map_err(|e| WalError::io_at(e, dir.path()))
    }

    /// Cuts the crash tail off a reopened file (the recovery rule of
    /// [`crate::scan::recovery`]), so the next record follows the last
    /// valid one and never garbage; returns the file's new size. A trailer
    /// ending the log stays: the header this writer appends after it is a
    /// reopen, as the seed's (a close whose rename was lost, or hooks that
    /// give a session one name for both).
    ///
    /// Cost: one sequential read of the whole file, each line checked by the
    /// native JSON validator. The tail was never acknowledged, or did not
    /// survive a power cut in an order a reader can use.
    ///
    /// Refused, touching nothing: a line longer than the readers' maximum
    /// (it may be a record), and a tail that starts with a whole JSON object
    /// that is not the next record (this writer's own crash cannot leave
    /// one; it may be another program's data).
    fn cut_crash_tail(&mut self) -> Result<u64> {
        let reader = SysReader {
            sys: self.sys.as_ref(),
            file: self.file(),
            offset: 0,
        };
        let prefix = match valid_prefix(reader, DEFAULT_MAX_LINE) {
            Ok(prefix) => prefix,
            Err(RecoveryError::Io(e)) => return Err(self.io_error(e)),
            Err(err @ RecoveryError::LineTooLong { .. }) => {
                return Err(self.unrecoverable(err.to_string()))
            }
        };
        if let Some(kind) = prefix.tail.filter(|kind| kind.starts_with_an_object()) {
            return Err(self.unrecoverable(format!(
                "after its last valid record (byte {}) comes {}, not crash damage; \
                 refusing to cut it or append after it",
                prefix.end,
                match kind {
                    TailKind::OutOfSequence => "a record out of sequence",
                    _ => "a JSON object without a known record_type",
                }
            )));
        }
        let keep = prefix.end;
        if keep != prefix.size {
            let file = self.file();
            self.sys
                .ftruncate(file, keep)
                .map_err(|e| self.io_error(e))?;
        }
        Ok(keep)
    }

    fn unrecoverable(&self, reason: String) -> WalError {
        WalError::Unrecoverable {
            path: self.partial_path.clone(),
            reason,
        }
    }

    fn file(&self) -> &File {
        self.file.as_ref().expect("an open writer has a file")
    }

    fn io_error(&self, err: io::Error) -> WalError {
        WalError::io_at(err, &self.partial_path)
    }

    fn check_writable(&self) -> Result<()> {
        match &self.state {
            State::Closed => Err(WalError::Closed {
                final_path: self.final_path.clone(),
            }),
            State::Poisoned(reason) => Err(WalError::Poisoned {
                reason: reason.clone(),
            }),
            State::Open if self.fork_generation != fork::generation() => Err(WalError::Forked),
            State::Open => Ok(()),
        }
    }

    /// Undoes a write that failed after `written` bytes of a record starting
    /// at `start`; returns the error to raise.
    fn roll_back(&mut self, start: u64, written: usize, err: io::Error) -> WalError {
        if written == 0 {
            return self.io_error(err);
        }
        let file = self.file();
        let expected = start + written as u64;
        let outcome = match self.sys.file_size(file) {
            // Cut only what we wrote: any other size means bytes we cannot account for.
            Ok(size) if size == expected => self.sys.ftruncate(file, start),
            Ok(size) => Err(io::Error::other(format!(
                "file is {size} bytes, expected {expected}"
            ))),
            Err(e) => Err(e),
        };
        if let Err(rollback) = outcome {
            self.state = State::Poisoned(format!(
                "a write failed part way ({err}) and cutting the torn record failed ({rollback})"
            ));
        }
        self.io_error(err)
    }

    fn poison_with(&mut self, err: io::Error, what: &str) -> WalError {
        self.state = State::Poisoned(format!("{what}: {err}"));
        self.io_error(err)
    }

    fn release(&mut self) {
        let forked = self.fork_generation != fork::generation();
        if let Some(syncer) = self.syncer.take() {
            if forked {
                // The syncer thread exists only in the parent: joining it
                // from the child panics or waits forever, and its mutexes may
                // have been copied mid-use. Leak it instead.
                std::mem::forget(syncer);
            } else {
                drop(syncer.stop());
            }
        }
        if let Some(file) = self.file.take() {
            // In a forked child the descriptor shares the parent's open file
            // description: unlocking it would drop the parent's lock.
            if !forked {
                let _ = self.sys.unlock(&file);
            }
        }
        self.state = State::Closed;
    }
}

/// Reads a file front to back through the `Sys` seam.
struct SysReader<'a> {
    sys: &'a dyn Sys,
    file: &'a File,
    offset: u64,
}

impl io::Read for SysReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sys.read_at(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Drop for WalFile {
    fn drop(&mut self) {
        self.release();
    }
}

/// (directory, file name) of a path the writer was given: the directory is
/// resolved by the kernel, the name never is.
fn split_name(path: &Path) -> Result<(&Path, &OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| WalError::io_at(io::Error::from(io::ErrorKind::InvalidInput), path))?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Ok((parent, name))
}

/// `<name>.~N~`: the numbered backup `mv --backup=numbered` would make.
fn backup_name(name: &OsStr, number: u64) -> OsString {
    let mut backup = name.to_os_string();
    backup.push(format!(".~{number}~"));
    backup
}

/// The highest N of the `<name>.~N~` among `names`, 0 when there is none.
fn highest_backup_number(name: &OsStr, names: &[OsString]) -> u64 {
    let prefix = name.as_encoded_bytes();
    names
        .iter()
        .filter_map(|entry| {
            let rest = entry.as_encoded_bytes().strip_prefix(prefix)?;
            let digits = rest.strip_prefix(b".~")?.strip_suffix(b"~")?;
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// `try_lock` until it succeeds or [`LOCK_PATIENCE`] has passed.
fn lock_patiently(sys: &dyn Sys, file: &File) -> io::Result<bool> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    let mut pause = Duration::from_micros(500);
    loop {
        if sys.try_lock(file)? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

// Unix-only: they use symlinks, FIFOs, fork and /proc/self/fd.
#[cfg(all(test, unix))]
mod tests;
