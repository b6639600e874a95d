//! The write-ahead-log file: open + lock, one `write(2)` per record with
//! rollback, durability per [`SyncMode`], and the trailer + atomic rename
//! that marks a clean close. Plain Rust, no Python: unit-tested with
//! `cargo test` through the [`Sys`] seam.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Result, WalError};
use crate::fork;
use crate::scan::{valid_prefix, RecoveryError, TailKind, MAX_LINE_BYTES};
use crate::sync_mode::SyncMode;
use crate::syncer::Syncer;
use crate::sys::{RealSys, Sys};

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

enum State {
    Open,
    Poisoned(String),
    Closed,
}

pub struct WalFile {
    file: Option<Arc<File>>,
    partial_path: PathBuf,
    final_path: PathBuf,
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
        if let Some(parent) = partial_path.parent() {
            fs::create_dir_all(parent).map_err(|e| WalError::io_at(e, parent))?;
        }
        for _ in 0..OPEN_ATTEMPTS {
            let file = sys
                .open_append(partial_path)
                .map_err(|e| WalError::io_at(e, partial_path))?;
            let locked =
                lock_patiently(&*sys, &file).map_err(|e| WalError::io_at(e, partial_path))?;
            if !locked {
                return Err(WalError::Locked {
                    partial_path: partial_path.to_path_buf(),
                });
            }
            if !names_same_file(&file, partial_path)? {
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
                partial_path: partial_path.to_path_buf(),
                final_path: final_path.to_path_buf(),
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
                wal.sync_dirs(&[partial_path])?;
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
    /// partial file between our trailer and the rename.
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
        match fs::symlink_metadata(&self.partial_path) {
            // Someone removed the partial file: nothing to promote (the seed
            // ignores FileNotFoundError from its rename the same way).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(WalError::io_at(e, &self.partial_path)),
            Ok(meta) => {
                if !self.holds(&meta)? {
                    let err = WalError::Replaced {
                        partial_path: self.partial_path.clone(),
                    };
                    self.state = State::Poisoned(err.to_string());
                    return Err(err);
                }
            }
        }
        match self.sys.rename(&self.partial_path, &self.final_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(WalError::io_at(e, &self.partial_path)),
            Ok(()) => {}
        }
        if self.sync.syncs_on_close() {
            // Both entries changed when a hook put them in different directories.
            self.sync_dirs(&[&self.final_path, &self.partial_path])?;
        }
        Ok(())
    }

    /// fsyncs the directory of each of `paths`, each directory once.
    fn sync_dirs(&self, paths: &[&Path]) -> Result<()> {
        let mut done: Vec<&Path> = Vec::new();
        for path in paths {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            if !done.contains(&dir) {
                self.sys
                    .sync_dir(dir)
                    .map_err(|e| WalError::io_at(e, dir))?;
                done.push(dir);
            }
        }
        Ok(())
    }

    /// Cuts the crash tail off a reopened file (the recovery rule of
    /// [`crate::scan::recovery`]), so the next record follows the last
    /// valid one and never garbage; returns the file's new size.
    ///
    /// A trailer ending the valid log goes too: the session's close wrote it
    /// but its rename was lost, and this writer continues the session (its
    /// header after a trailer would be out of sequence).
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
        let prefix = match valid_prefix(reader, MAX_LINE_BYTES) {
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
        let keep = prefix.trailer_at.unwrap_or(prefix.end);
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

    fn holds(&self, meta: &fs::Metadata) -> Result<bool> {
        let Some(file) = &self.file else {
            return Ok(false);
        };
        Ok(same_file(&file.metadata()?, meta))
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

fn names_same_file(file: &File, path: &Path) -> Result<bool> {
    let ours = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(theirs) => Ok(same_file(&ours, &theirs)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(WalError::io_at(e, path)),
    }
}

/// Whether two metadata describe the same file (device and inode).
#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
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

/// Windows: std exposes no stable file identity (volume serial + file
/// index are unstable), so the check that the name still leads to the file
/// we hold is skipped: a rename or unlink racing `open` or `close` goes
/// undetected there.
#[cfg(not(unix))]
fn same_file(_a: &fs::Metadata, _b: &fs::Metadata) -> bool {
    true
}

// Unix-only: they use symlinks, FIFOs, fork and /proc/self/fd.
#[cfg(all(test, unix))]
mod tests;
