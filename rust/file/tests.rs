//! Unit tests of the file layer: faults injected through the `Sys` seam on
//! a real temporary directory. No Python involved.

mod powerloss;
mod recording;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::WalFile;
use crate::error::WalError;
use crate::sync_mode::SyncMode;
use crate::sys::Sys;
use recording::{Op, TempDir, TestSys, WriteFault};

const HEADER: &[u8] = b"{\"record_type\": \"header\"}\n";
const TRAILER: &[u8] = b"{\"record_type\": \"trailer\"}\n";
const EIO: i32 = libc::EIO;

fn chunk(i: usize) -> Vec<u8> {
    format!("{{\"record_type\": \"chunk\", \"index\": {i}}}\n").into_bytes()
}

fn lines(records: &[&[u8]]) -> Vec<u8> {
    records.concat()
}

struct Fixture {
    _dir: TempDir,
    sys: Arc<TestSys>,
    partial: PathBuf,
    final_path: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = TempDir::new();
        let final_path = dir.path().join("sessions").join("s.jsonl");
        let partial = dir.path().join("sessions").join("s.jsonl.__partial__");
        Fixture {
            _dir: dir,
            sys: Arc::new(TestSys::default()),
            partial,
            final_path,
        }
    }

    fn open(&self, sync: SyncMode) -> Result<WalFile, WalError> {
        let sys: Arc<dyn Sys> = self.sys.clone();
        WalFile::open_with(&self.partial, &self.final_path, sync, sys)
    }

    /// Opened with the header written, as the writer does it.
    fn started(&self, sync: SyncMode) -> WalFile {
        let mut wal = self.open(sync).expect("open");
        wal.append(HEADER).expect("header");
        wal
    }

    fn partial_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.partial).expect("partial file")
    }

    fn final_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(&self.final_path).ok()
    }
}

fn errno(result: Result<(), WalError>) -> i32 {
    match result {
        Err(WalError::Io { source, .. }) => source.raw_os_error().expect("an OS error"),
        other => panic!("expected an OS error, got {other:?}"),
    }
}

fn assert_poisoned(result: Result<(), WalError>) {
    assert!(
        matches!(result, Err(WalError::Poisoned { .. })),
        "expected Poisoned, got {result:?}"
    );
}

/// Waits (bounded, not timed) for the background syncer to have made `n` calls.
fn wait_for_syncs(sys: &TestSys, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sys.syncs() < n {
        assert!(Instant::now() < deadline, "the syncer never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn records_close_and_rename() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Close);
    wal.append(&chunk(0)).unwrap();
    wal.append(&[chunk(1), chunk(2)].concat()).unwrap();
    wal.close(TRAILER).unwrap();
    assert!(!fx.partial.exists());
    let expected = lines(&[HEADER, &chunk(0), &chunk(1), &chunk(2), TRAILER]);
    assert_eq!(fx.final_bytes().unwrap(), expected);
}

#[test]
fn short_writes_and_eintr_are_continued() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Never);
    fx.sys.faults().write.extend([
        WriteFault::Short(3),
        WriteFault::Fail(libc::EINTR),
        WriteFault::Short(1),
        WriteFault::Fail(libc::EINTR),
    ]);
    wal.append(&chunk(0)).unwrap();
    assert_eq!(fx.partial_bytes(), lines(&[HEADER, &chunk(0)]));
    let writes = fx.sys.count(|op| matches!(op, Op::Write { .. }));
    assert_eq!(writes, 1 + 3, "header, then 3 + 1 + the rest");
    assert_eq!(fx.sys.truncates(), 0);
}

#[test]
fn write_failing_part_way_is_cut_back_and_the_writer_stays_usable() {
    for fault in [WriteFault::Fail(libc::EFBIG), WriteFault::Zero] {
        let fx = Fixture::new();
        let mut wal = fx.started(SyncMode::Close);
        wal.append(&chunk(0)).unwrap();
        fx.sys.faults().write.extend([WriteFault::Short(7), fault]);
        let result = wal.append(&chunk(1));
        assert!(result.is_err());
        assert_eq!(fx.partial_bytes(), lines(&[HEADER, &chunk(0)]));
        assert_eq!(fx.sys.truncates(), 1);
        wal.append(&chunk(2)).unwrap();
        wal.close(TRAILER).unwrap();
        let expected = lines(&[HEADER, &chunk(0), &chunk(2), TRAILER]);
        assert_eq!(fx.final_bytes().unwrap(), expected);
    }
}

#[test]
fn write_failing_before_any_byte_needs_no_rollback() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Never);
    fx.sys
        .faults()
        .write
        .push_back(WriteFault::Fail(libc::ENOSPC));
    assert_eq!(errno(wal.append(&chunk(0))), libc::ENOSPC);
    assert_eq!(fx.sys.truncates(), 0);
    wal.append(&chunk(1)).unwrap();
    assert_eq!(fx.partial_bytes(), lines(&[HEADER, &chunk(1)]));
}

#[test]
fn failed_rollback_poisons_and_close_leaves_the_partial_file() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Close);
    fx.sys
        .faults()
        .write
        .extend([WriteFault::Short(5), WriteFault::Fail(libc::EFBIG)]);
    fx.sys.faults().ftruncate.push_back(Some(EIO));
    assert_eq!(
        errno(wal.append(&chunk(0))),
        libc::EFBIG,
        "the write's error"
    );
    let torn = [HEADER, &chunk(0)[..5]].concat();
    assert_eq!(fx.partial_bytes(), torn);
    assert_poisoned(wal.append(&chunk(1)));
    assert_poisoned(wal.close(TRAILER));
    assert_eq!(fx.partial_bytes(), torn, "close wrote nothing");
    assert_eq!(fx.final_bytes(), None);
    assert_eq!((fx.sys.renames(), fx.sys.syncs()), (0, 0));
    wal.close(TRAILER).unwrap();
    assert_eq!(fx.final_bytes(), None, "a second close is a no-op");
}

#[test]
fn bytes_we_did_not_write_are_never_cut() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Never);
    let foreign = b"someone else\n".to_vec();
    fx.sys.faults().write.extend([
        WriteFault::Short(4),
        WriteFault::ForeignThenFail(foreign.clone(), EIO),
    ]);
    assert_eq!(errno(wal.append(&chunk(0))), EIO);
    assert_eq!(fx.sys.truncates(), 0);
    let expected = [HEADER, &chunk(0)[..4], &foreign].concat();
    assert_eq!(fx.partial_bytes(), expected);
    assert_poisoned(wal.append(&chunk(1)));
}

#[test]
fn fdatasync_failure_under_always_poisons_and_is_never_retried() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Always);
    assert_eq!(fx.sys.syncs(), 1, "the header");
    fx.sys.faults().fdatasync.push_back(Some(EIO));
    assert_eq!(errno(wal.append(&chunk(0))), EIO);
    assert_eq!(fx.sys.syncs(), 2);
    assert_poisoned(wal.append(&chunk(1)));
    assert_poisoned(wal.close(TRAILER));
    assert_eq!(fx.sys.syncs(), 2, "never retried, not even by close");
    assert_eq!(fx.sys.renames(), 0);
    assert_eq!(fx.partial_bytes(), lines(&[HEADER, &chunk(0)]));
    assert_eq!(fx.final_bytes(), None);
}

#[test]
fn fdatasync_failure_at_close_leaves_the_partial_file() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Close);
    wal.append(&chunk(0)).unwrap();
    fx.sys.faults().fdatasync.push_back(Some(EIO));
    assert_eq!(errno(wal.close(TRAILER)), EIO);
    assert_eq!(fx.sys.syncs(), 1);
    assert_eq!(fx.sys.renames(), 0);
    assert_eq!(fx.final_bytes(), None);
    assert_eq!(fx.partial_bytes(), lines(&[HEADER, &chunk(0), TRAILER]));
    wal.close(TRAILER).unwrap();
    assert_eq!((fx.sys.syncs(), fx.sys.renames()), (1, 0), "idempotent");
    assert!(matches!(
        wal.append(&chunk(1)),
        Err(WalError::Closed { .. })
    ));
}

#[test]
fn directory_fsync_failure_after_the_rename_is_reported() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Close);
    fx.sys.faults().sync_dir.push_back(Some(EIO));
    assert_eq!(errno(wal.close(TRAILER)), EIO);
    assert_eq!(fx.final_bytes().unwrap(), lines(&[HEADER, TRAILER]));
}

/// The calls each mode makes, in order, for header + 2 chunks + close.
fn durable_ops(sync: SyncMode) -> Vec<&'static str> {
    let fx = Fixture::new();
    let mut wal = fx.started(sync);
    wal.append(&chunk(0)).unwrap();
    wal.append(&chunk(1)).unwrap();
    wal.close(TRAILER).unwrap();
    fx.sys
        .log()
        .iter()
        .map(|op| match op {
            Op::Open { .. } => "open",
            Op::Write { .. } => "write",
            Op::Truncate { .. } => "truncate",
            Op::SyncFile { .. } => "fdatasync",
            Op::SyncDir { .. } => "fsync(dir)",
            Op::Rename { .. } => "rename",
            Op::Acked(_) | Op::Closed => unreachable!(),
        })
        .collect()
}

#[test]
fn each_sync_mode_makes_exactly_its_calls() {
    let w = "write";
    let s = "fdatasync";
    let d = "fsync(dir)";
    assert_eq!(durable_ops(SyncMode::Never), ["open", w, w, w, w, "rename"]);
    assert_eq!(
        durable_ops(SyncMode::Close),
        ["open", w, w, w, w, s, "rename", d]
    );
    assert_eq!(
        durable_ops(SyncMode::Always),
        ["open", d, w, s, w, s, w, s, w, s, "rename", d]
    );
    // An interval longer than the test: only the close syncs.
    assert_eq!(
        durable_ops(SyncMode::Interval(Duration::from_secs(3600))),
        ["open", d, w, w, w, w, s, "rename", d]
    );
}

#[test]
fn interval_syncs_in_the_background_only_while_dirty() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Interval(Duration::from_millis(1)));
    wait_for_syncs(&fx.sys, 1);
    // Nothing appended since: however long we wait, no further sync.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(fx.sys.syncs(), 1);
    wal.append(&chunk(0)).unwrap();
    wait_for_syncs(&fx.sys, 2);
    wal.abandon();
    let after_abandon = fx.sys.syncs();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(fx.sys.syncs(), after_abandon, "the thread stopped");
    assert_eq!(after_abandon, 2);
}

#[test]
fn interval_failure_is_latched_and_surfaced() {
    for surface_at_close in [false, true] {
        let fx = Fixture::new();
        fx.sys.faults().fdatasync.push_back(Some(EIO));
        let mut wal = fx.started(SyncMode::Interval(Duration::from_millis(1)));
        wait_for_syncs(&fx.sys, 1);
        if surface_at_close {
            assert_eq!(errno(wal.close(TRAILER)), EIO);
        } else {
            assert_eq!(errno(wal.append(&chunk(0))), EIO);
            assert_poisoned(wal.append(&chunk(1)));
            assert_poisoned(wal.close(TRAILER));
        }
        assert_eq!(fx.sys.syncs(), 1, "never retried");
        assert_eq!(fx.sys.renames(), 0);
        assert_eq!(
            fx.partial_bytes(),
            HEADER,
            "nothing written after the failure"
        );
    }
}

#[test]
fn close_is_idempotent_and_abandon_after_close_is_harmless() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Close);
    wal.close(TRAILER).unwrap();
    wal.close(TRAILER).unwrap();
    wal.abandon();
    assert_eq!(fx.final_bytes().unwrap(), lines(&[HEADER, TRAILER]));
    assert_eq!((fx.sys.renames(), fx.sys.syncs()), (1, 1));
}

#[test]
fn abandon_keeps_the_partial_file_and_releases_the_lock() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Close);
    assert!(matches!(
        fx.open(SyncMode::Close),
        Err(WalError::Locked { .. })
    ));
    wal.abandon();
    assert!(matches!(
        wal.append(&chunk(0)),
        Err(WalError::Closed { .. })
    ));
    let mut again = fx.started(SyncMode::Close);
    again.close(TRAILER).unwrap();
    assert_eq!(fx.final_bytes().unwrap(), lines(&[HEADER, HEADER, TRAILER]));
}

#[test]
fn reopening_cuts_the_crash_tail_back_to_the_last_valid_record() {
    let head = lines(&[HEADER, &chunk(0)]);
    let big_torn = vec![b'x'; 200 * 1024];
    let with = |tail: &[u8]| [head.as_slice(), tail].concat();
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (vec![], vec![]),
        (head.clone(), head.clone()),
        (with(b"{\"record_type\": \"chu"), head.clone()),
        (with(&[0; 5000]), head.clone()),
        // Power loss: a NUL hole, then later records that landed.
        (
            with(&[vec![0; 4096], chunk(7), chunk(8)].concat()),
            head.clone(),
        ),
        (with(b"stale\n"), head.clone()),
        (with(&big_torn), head.clone()),
        (big_torn.clone(), vec![]),
        (vec![0; 100], vec![]),
        // A close whose rename was lost: the trailer stays, the new header
        // after it is a reopen (as the seed writes it).
        (with(TRAILER), with(TRAILER)),
        (with(&[TRAILER, b"\0\0".as_slice()].concat()), with(TRAILER)),
    ];
    for (on_disk, kept) in cases {
        let fx = Fixture::new();
        std::fs::create_dir_all(fx.partial.parent().unwrap()).unwrap();
        std::fs::write(&fx.partial, &on_disk).unwrap();
        let mut wal = fx.started(SyncMode::Never);
        wal.append(&chunk(1)).unwrap();
        wal.abandon();
        let shown = String::from_utf8_lossy(&on_disk[..on_disk.len().min(80)]).into_owned();
        assert_eq!(
            fx.partial_bytes(),
            [&kept, HEADER, &chunk(1)].concat(),
            "{shown}"
        );
        let cut = usize::from(kept.len() != on_disk.len());
        assert_eq!(fx.sys.truncates(), cut, "{shown}");
    }
}

#[test]
fn reopening_refuses_what_a_crash_cannot_leave() {
    let head = lines(&[HEADER, &chunk(0)]);
    let other_id = b"{\"record_type\": \"header\", \"id\": \"other\"}\n".as_slice();
    for tail in [b"{\"type\": \"custom\"}\n".as_slice(), other_id] {
        let on_disk = [head.as_slice(), tail].concat();
        let fx = Fixture::new();
        std::fs::create_dir_all(fx.partial.parent().unwrap()).unwrap();
        std::fs::write(&fx.partial, &on_disk).unwrap();
        let err = fx.open(SyncMode::Never).err().expect("refused");
        assert!(matches!(err, WalError::Unrecoverable { .. }), "{err}");
        assert_eq!(fx.partial_bytes(), on_disk, "untouched");
        // The lock was released: another open gets the same answer, not Locked.
        assert!(matches!(
            fx.open(SyncMode::Never),
            Err(WalError::Unrecoverable { .. })
        ));
    }
}

#[test]
fn open_retries_when_the_locked_file_was_renamed_away() {
    let fx = Fixture::new();
    let moved = fx.partial.with_extension("moved");
    let target = moved.clone();
    fx.sys
        .faults()
        .after_open
        .push_back(Box::new(move |path| std::fs::rename(path, target).unwrap()));
    let mut wal = fx.started(SyncMode::Never);
    wal.close(TRAILER).unwrap();
    assert_eq!(
        std::fs::read(&moved).unwrap(),
        b"",
        "the other file untouched"
    );
    assert_eq!(fx.final_bytes().unwrap(), lines(&[HEADER, TRAILER]));
    assert_eq!(fx.sys.count(|op| matches!(op, Op::Open { .. })), 2);
}

#[test]
fn open_gives_up_when_the_file_keeps_being_replaced() {
    let fx = Fixture::new();
    for _ in 0..super::OPEN_ATTEMPTS {
        fx.sys
            .faults()
            .after_open
            .push_back(Box::new(|path| std::fs::remove_file(path).unwrap()));
    }
    assert!(matches!(
        fx.open(SyncMode::Never),
        Err(WalError::Replaced { .. })
    ));
}

#[test]
fn swapped_partial_is_refused_at_close_and_the_other_file_kept() {
    for replace in ["rename", "unlink"] {
        let fx = Fixture::new();
        let mut ours = fx.started(SyncMode::Close);
        ours.append(&chunk(0)).unwrap();
        match replace {
            "rename" => std::fs::rename(&fx.partial, fx.partial.with_extension("old")).unwrap(),
            _ => std::fs::remove_file(&fx.partial).unwrap(),
        }
        let mut theirs = fx.started(SyncMode::Close);
        assert!(matches!(
            ours.close(TRAILER),
            Err(WalError::Replaced { .. })
        ));
        assert_eq!(fx.final_bytes(), None);
        assert_eq!(fx.partial_bytes(), HEADER, "their file is untouched");
        theirs.close(TRAILER).unwrap();
        assert_eq!(fx.final_bytes().unwrap(), lines(&[HEADER, TRAILER]));
    }
}

#[test]
fn symlinks_and_fifos_at_the_partial_path_are_refused() {
    let fx = Fixture::new();
    let dir = fx.partial.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let target = dir.join("target");
    std::fs::write(&target, b"precious").unwrap();
    std::os::unix::fs::symlink(&target, &fx.partial).unwrap();
    let Err(WalError::Io { source, .. }) = fx.open(SyncMode::Close) else {
        panic!("a symlink was followed");
    };
    assert_eq!(source.raw_os_error(), Some(libc::ELOOP));
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");

    std::fs::remove_file(&fx.partial).unwrap();
    let path = std::ffi::CString::new(fx.partial.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    assert!(matches!(
        fx.open(SyncMode::Close),
        Err(WalError::NotRegular { .. })
    ));
}

#[test]
fn a_forked_child_cannot_write_and_leaves_the_parent_intact() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Interval(Duration::from_millis(1)));
    wal.append(&chunk(0)).unwrap();
    // SAFETY: the child only runs code that does not allocate or lock
    // anything the parent's other threads could hold, then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let refused = matches!(wal.append(&chunk(99)), Err(WalError::Forked));
        let close_refused = matches!(wal.close(TRAILER), Err(WalError::Forked));
        wal.abandon();
        // SAFETY: terminates the child without running the parent's destructors.
        unsafe { libc::_exit(if refused && close_refused { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child crashed or hung: {status}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child was allowed to write"
    );
    assert!(matches!(
        fx.open(SyncMode::Never),
        Err(WalError::Locked { .. })
    ));
    wal.append(&chunk(1)).unwrap();
    wal.close(TRAILER).unwrap();
    let expected = lines(&[HEADER, &chunk(0), &chunk(1), TRAILER]);
    assert_eq!(fx.final_bytes().unwrap(), expected);
}

#[test]
fn a_symlink_at_the_final_name_is_kept_aside_never_followed() {
    let fx = Fixture::new();
    let dir = fx.partial.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let precious = fx._dir.path().join("precious");
    std::fs::write(&precious, b"precious").unwrap();
    std::os::unix::fs::symlink(&precious, &fx.final_path).unwrap();
    let mut wal = fx.started(SyncMode::Close);
    wal.close(TRAILER).unwrap();
    assert_eq!(std::fs::read(&precious).unwrap(), b"precious");
    let meta = std::fs::symlink_metadata(&fx.final_path).unwrap();
    assert!(meta.file_type().is_file(), "our file, not the link");
    assert_eq!(fx.final_bytes().unwrap(), lines(&[HEADER, TRAILER]));
    let kept = dir.join("s.jsonl.~1~");
    assert_eq!(wal.kept_earlier(), Some(kept.as_path()));
    assert_eq!(
        std::fs::read_link(&kept).unwrap(),
        precious,
        "the link itself moved"
    );
}

#[test]
fn closing_an_id_again_keeps_each_earlier_session_under_the_next_number() {
    let fx = Fixture::new();
    let mut sessions = Vec::new();
    for round in 0..3 {
        let mut wal = fx.started(SyncMode::Never);
        for i in 0..=round {
            wal.append(&chunk(i)).unwrap();
        }
        wal.close(TRAILER).unwrap();
        sessions.push(fx.final_bytes().unwrap());
    }
    let dir = fx.final_path.parent().unwrap();
    assert_eq!(std::fs::read(dir.join("s.jsonl.~1~")).unwrap(), sessions[0]);
    assert_eq!(std::fs::read(dir.join("s.jsonl.~2~")).unwrap(), sessions[1]);
    assert_eq!(fx.final_bytes().unwrap(), sessions[2]);
    // Numbers follow age even when a lower one was deleted meanwhile.
    std::fs::remove_file(dir.join("s.jsonl.~1~")).unwrap();
    fx.started(SyncMode::Never).close(TRAILER).unwrap();
    assert_eq!(std::fs::read(dir.join("s.jsonl.~3~")).unwrap(), sessions[2]);
    assert!(!dir.join("s.jsonl.~1~").exists());
}

#[test]
fn a_final_name_that_is_the_partial_name_stays_put() {
    // Hooks may name one file for both (a runtime without `__partial__`
    // files): the seed's rename onto itself leaves it there; ours must not
    // take it for an earlier session and move it to `.~1~`.
    let fx = Fixture::new();
    let sys: Arc<dyn Sys> = fx.sys.clone();
    let mut wal = WalFile::open_with(&fx.final_path, &fx.final_path, SyncMode::Close, sys).unwrap();
    wal.append(HEADER).unwrap();
    wal.close(TRAILER).unwrap();
    assert_eq!(fx.final_bytes().unwrap(), lines(&[HEADER, TRAILER]));
    assert_eq!(wal.kept_earlier(), None);
    let dir = fx.final_path.parent().unwrap();
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);
}

#[test]
fn a_planted_backup_at_the_highest_number_does_not_overflow_the_next() {
    // Anyone who can write the directory can plant `.~<u64::MAX>~`: one past
    // it must not overflow (a panic in debug, `.~0~` in release).
    let fx = Fixture::new();
    fx.started(SyncMode::Never).close(TRAILER).unwrap();
    let dir = fx.final_path.parent().unwrap();
    std::fs::write(dir.join(format!("s.jsonl.~{}~", u64::MAX)), b"planted").unwrap();
    for expected in ["s.jsonl.~1~", "s.jsonl.~2~"] {
        let mut wal = fx.started(SyncMode::Never);
        wal.close(TRAILER).unwrap();
        assert_eq!(wal.kept_earlier(), Some(dir.join(expected).as_path()));
    }
}

#[test]
fn the_directory_held_at_open_is_the_one_closed_into() {
    let fx = Fixture::new();
    let mut wal = fx.started(SyncMode::Close);
    let dir = fx.partial.parent().unwrap();
    let moved = fx._dir.path().join("moved");
    let elsewhere = fx._dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(dir, &moved).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir).unwrap();
    wal.close(TRAILER).unwrap();
    assert_eq!(
        std::fs::read(moved.join("s.jsonl")).unwrap(),
        lines(&[HEADER, TRAILER])
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn a_final_directory_removed_before_close_is_an_error_and_the_partial_stays() {
    let fx = Fixture::new();
    let elsewhere = fx._dir.path().join("closed");
    std::fs::create_dir(&elsewhere).unwrap();
    let sys: Arc<dyn Sys> = fx.sys.clone();
    let final_path = elsewhere.join("s.jsonl");
    let mut wal = WalFile::open_with(&fx.partial, &final_path, SyncMode::Never, sys).unwrap();
    wal.append(HEADER).unwrap();
    std::fs::remove_dir(&elsewhere).unwrap();
    assert_eq!(errno(wal.close(TRAILER)), libc::ENOENT);
    assert_eq!(fx.partial_bytes(), lines(&[HEADER, TRAILER]));
}
