//! The power-loss model. A scenario drives a real `WalFile` through the
//! recording `Sys`; the log of writes, truncates, syncs, creates and renames
//! is then cut after every operation, and for each cut we rebuild every
//! disk image the model allows:
//!
//! - a file holds what its last fdatasync saw, plus, of what was written
//!   since, nothing / any prefix / zeros / garbage, or any whole earlier
//!   version since that sync (a truncate may be lost too);
//! - or, as pages are written back out of order: of the pages written since
//!   that sync, any subset landed, the rest holding the old bytes or NULs,
//!   with the size extended to the written length (the NUL hole of XFS or
//!   ext4 `data=writeback`) or to the end of the last page that landed;
//! - a directory holds the entries of its last fsync, plus any prefix (in
//!   order) of the creates and renames made in it since: a rename or create
//!   without a directory fsync may be reverted.
//!
//! On every image we assert what a reader may rely on: the complete lines
//! are a prefix of the records the writer committed (so at most one torn or
//! garbage tail, never a torn line in the middle); under `Always` every
//! acknowledged record survives; with any fsyncing mode a file under the
//! final name is complete and ends with the trailer, and after `close`
//! returns, the final name is there. On the out-of-order images the same
//! holds of the log the recovery rule finds (`crate::scan::recovery`), and a
//! reopen that cuts there and appends gives a file that is valid to its end.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::recording::{Op, WriteFault};
use super::{chunk, Fixture, HEADER, TRAILER};
use crate::scan::{valid_prefix, TailKind, DEFAULT_MAX_LINE};
use crate::sync_mode::SyncMode;

/// Tails up to this long get every prefix; longer ones a sample.
const ALL_PREFIXES_UP_TO: usize = 1024;
/// The model's page: smaller than a record, so a record spans pages and a
/// page boundary falls inside most records.
const PAGE: usize = 16;
/// Up to this many dirty pages get every subset of landed pages; more get a sample.
const ALL_SUBSETS_UP_TO: usize = 8;

#[derive(Clone, Debug)]
enum DirOp {
    Create { name: PathBuf, file: usize },
    Rename { from: PathBuf, to: PathBuf },
}

impl DirOp {
    fn dir(&self) -> &Path {
        match self {
            DirOp::Create { name, .. } => name.parent().unwrap(),
            DirOp::Rename { to, .. } => to.parent().unwrap(),
        }
    }

    fn apply(&self, entries: &mut BTreeMap<PathBuf, usize>) {
        match self {
            DirOp::Create { name, file } => {
                entries.insert(name.clone(), *file);
            }
            DirOp::Rename { from, to } => {
                if let Some(file) = entries.remove(from) {
                    entries.insert(to.clone(), file);
                }
            }
        }
    }
}

#[derive(Clone, Default)]
struct FileState {
    current: Vec<u8>,
    synced: Vec<u8>,
    /// Every content the file had since its last sync, oldest first.
    versions: Vec<Vec<u8>>,
}

impl FileState {
    fn changed(&mut self) {
        self.versions.push(self.current.clone());
    }

    /// Every content a disk could hold for this file after a power cut.
    fn images(&self) -> Vec<Vec<u8>> {
        let mut images = self.versions.clone();
        images.push(self.synced.clone());
        let Some(tail) = self.current.strip_prefix(self.synced.as_slice()) else {
            return images;
        };
        let mut cuts: Vec<usize> = if tail.len() <= ALL_PREFIXES_UP_TO {
            (0..=tail.len()).collect()
        } else {
            let mut sample = vec![0, 1, tail.len() / 2, tail.len() - 1, tail.len()];
            for (i, &b) in tail.iter().enumerate() {
                if b == b'\n' {
                    sample.extend([i, i + 1, i + 2]);
                }
            }
            sample
        };
        cuts.retain(|&n| n <= tail.len());
        for n in cuts {
            images.push([&self.synced, &tail[..n]].concat());
        }
        for fill in [0u8, 0xA5] {
            for n in [tail.len() / 2, tail.len()] {
                images.push([self.synced.clone(), vec![fill; n]].concat());
            }
        }
        images.sort();
        images.dedup();
        images
    }

    /// Images after out-of-order writeback: each subset of the pages
    /// written since the last sync landed, with the size extended to the
    /// written length or only to the last page that landed.
    fn out_of_order_images(&self) -> Vec<Vec<u8>> {
        let (synced, current) = (&self.synced, &self.current);
        let same = synced
            .iter()
            .zip(current)
            .take_while(|(a, b)| a == b)
            .count();
        let first_page = same / PAGE * PAGE;
        let pages: Vec<usize> = (first_page..current.len()).step_by(PAGE).collect();
        let mut images = Vec::new();
        for landed in page_subsets(pages.len()) {
            let mut extended = synced.clone();
            extended.resize(current.len().max(synced.len()), 0);
            let mut last_landed_end = synced.len();
            for (&page, _) in pages.iter().zip(&landed).filter(|(_, &l)| l) {
                let end = (page + PAGE).min(current.len());
                extended[page..end].copy_from_slice(&current[page..end]);
                last_landed_end = last_landed_end.max(end);
            }
            let mut short = extended.clone();
            short.truncate(last_landed_end);
            extended.truncate(current.len().max(synced.len()));
            images.extend([extended, short]);
        }
        images.sort();
        images.dedup();
        images
    }
}

/// Which of `n` pages landed, for every subset when there are few, else a
/// deterministic sample: none, all, each one alone, all but each one, and
/// pseudo-random mixes.
fn page_subsets(n: usize) -> Vec<Vec<bool>> {
    if n <= ALL_SUBSETS_UP_TO {
        return (0..1u32 << n)
            .map(|mask| (0..n).map(|i| mask & (1 << i) != 0).collect())
            .collect();
    }
    let mut subsets = vec![vec![false; n], vec![true; n]];
    for i in 0..n {
        subsets.push((0..n).map(|j| j == i).collect());
        subsets.push((0..n).map(|j| j != i).collect());
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
    for _ in 0..64 {
        subsets.push(
            (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    state >> 63 == 1
                })
                .collect(),
        );
    }
    subsets
}

/// What the log says happened up to one cut point.
#[derive(Clone, Default)]
struct Disk {
    files: BTreeMap<usize, FileState>,
    durable: BTreeMap<PathBuf, usize>,
    pending: Vec<DirOp>,
    /// The file the last `open` returned: where acknowledged records live.
    active: Option<usize>,
    /// Per file, how many bytes had been acknowledged.
    acked_len: BTreeMap<usize, usize>,
    closed: bool,
}

impl Disk {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Open {
                file,
                name,
                created,
            } => {
                self.files.entry(*file).or_default();
                if *created {
                    self.pending.push(DirOp::Create {
                        name: name.clone(),
                        file: *file,
                    });
                }
                self.active = Some(*file);
                self.closed = false;
            }
            Op::Write { file, offset, data } => {
                let state = self.files.get_mut(file).unwrap();
                assert_eq!(
                    *offset as usize,
                    state.current.len(),
                    "O_APPEND writes at the end"
                );
                state.current.extend_from_slice(data);
                state.changed();
            }
            Op::Truncate { file, len } => {
                let state = self.files.get_mut(file).unwrap();
                state.current.truncate(*len as usize);
                state.changed();
            }
            Op::SyncFile { file } => {
                let state = self.files.get_mut(file).unwrap();
                state.synced = state.current.clone();
                state.versions.clear();
            }
            Op::SyncDir { dir } => {
                let (now, later): (Vec<_>, Vec<_>) =
                    self.pending.drain(..).partition(|op| op.dir() == dir);
                for op in &now {
                    op.apply(&mut self.durable);
                }
                self.pending = later;
            }
            Op::Rename { from, to } => self.pending.push(DirOp::Rename {
                from: from.clone(),
                to: to.clone(),
            }),
            Op::Acked(_) => {
                let file = self.active.expect("acked before open");
                let len = self.files[&file].current.len();
                self.acked_len.insert(file, len);
            }
            Op::Closed => self.closed = true,
        }
    }

    /// The directory entries after power loss: durable plus each prefix of pending.
    fn dir_states(&self) -> Vec<BTreeMap<PathBuf, usize>> {
        let mut states = Vec::new();
        let mut entries = self.durable.clone();
        states.push(entries.clone());
        for op in &self.pending {
            op.apply(&mut entries);
            states.push(entries.clone());
        }
        states
    }
}

pub struct Checked {
    pub images: usize,
    pub violations: Vec<String>,
}

/// Replays `log` and checks every image at every cut point.
pub fn check(log: &[Op], sync: &SyncMode, final_path: &Path) -> Checked {
    let mut end = Disk::default();
    for op in log {
        end.apply(op);
    }
    let known: HashSet<Vec<u8>> = log
        .iter()
        .filter_map(|op| match op {
            Op::Acked(lines) => Some(lines),
            _ => None,
        })
        .flat_map(|lines| lines.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec))
        .chain([HEADER.to_vec(), TRAILER.to_vec()])
        .collect();
    let mut out = Checked {
        images: 0,
        violations: Vec::new(),
    };
    let mut disk = Disk::default();
    for cut in 0..=log.len() {
        if cut > 0 {
            disk.apply(&log[cut - 1]);
        }
        check_cut(&disk, &end, &known, sync, final_path, cut, &mut out);
    }
    out
}

fn check_cut(
    disk: &Disk,
    end: &Disk,
    known: &HashSet<Vec<u8>>,
    sync: &SyncMode,
    final_path: &Path,
    cut: usize,
    out: &mut Checked,
) {
    let mut fail = |what: String| {
        if out.violations.len() < 20 {
            out.violations.push(format!("cut {cut}: {what}"));
        }
    };
    for entries in disk.dir_states() {
        if let Some(file) = disk.active {
            let acked = disk.acked_len.get(&file).copied().unwrap_or(0);
            let reachable = entries.values().any(|&f| f == file);
            if *sync == SyncMode::Always && acked > 0 && !reachable {
                fail(format!(
                    "acknowledged records unreachable: entries {entries:?}"
                ));
            }
        }
        if disk.closed && sync.syncs_on_close() && !entries.contains_key(final_path) {
            fail(format!("closed, but no final name in {entries:?}"));
        }
        for (name, &file) in &entries {
            let committed = &end.files[&file].current;
            let acked = disk.acked_len.get(&file).copied().unwrap_or(0);
            for image in disk.files[&file].images() {
                out.images += 1;
                let complete = match image.iter().rposition(|&b| b == b'\n') {
                    Some(i) => &image[..=i],
                    None => &image[..0],
                };
                if !committed.starts_with(complete) {
                    fail(format!(
                        "{name:?}: lines not a prefix of the committed records"
                    ));
                }
                let bad = complete
                    .split_inclusive(|&b| b == b'\n')
                    .find(|line| !known.contains(*line));
                if let Some(line) = bad {
                    let line = String::from_utf8_lossy(line);
                    fail(format!("{name:?}: line {line:?} is not a whole record"));
                }
                if *sync == SyncMode::Always && image.len() < acked {
                    fail(format!("{name:?}: lost acknowledged bytes"));
                }
                if name == final_path && sync.syncs_on_close() && !image.ends_with(TRAILER) {
                    fail(format!("{name:?}: final name without a trailer"));
                }
            }
            for image in disk.files[&file].out_of_order_images() {
                out.images += 1;
                if let Err(what) = check_recovered(&image, committed, known, acked, sync) {
                    fail(format!("{name:?} (out of order): {what}"));
                }
                if name == final_path && sync.syncs_on_close() && !image.ends_with(TRAILER) {
                    fail(format!(
                        "{name:?} (out of order): final name without a trailer"
                    ));
                }
            }
        }
    }
}

/// What the recovery rule makes of one image: the log it finds holds only
/// committed records, in order; under `Always` every acknowledged one; and a
/// reopen that cuts where the writer does and appends yields a valid file.
fn check_recovered(
    image: &[u8],
    committed: &[u8],
    known: &HashSet<Vec<u8>>,
    acked: usize,
    sync: &SyncMode,
) -> Result<(), String> {
    let prefix = valid_prefix(image, DEFAULT_MAX_LINE).map_err(|e| e.to_string())?;
    let log = &image[..prefix.end as usize];
    if !committed.starts_with(log) {
        return Err("the recovered log is not a prefix of the committed records".into());
    }
    if let Some(line) = log
        .split_inclusive(|&b| b == b'\n')
        .find(|l| !known.contains(*l))
    {
        return Err(format!(
            "recovered line {:?} is not a whole record",
            String::from_utf8_lossy(line)
        ));
    }
    if *sync == SyncMode::Always && log.len() < acked {
        return Err(format!(
            "recovered {} bytes of {acked} acknowledged",
            log.len()
        ));
    }
    let kept = prefix.end as usize;
    let reopened = [&image[..kept], HEADER, &chunk(99), TRAILER].concat();
    let after = valid_prefix(reopened.as_slice(), DEFAULT_MAX_LINE).map_err(|e| e.to_string())?;
    if after.end != reopened.len() as u64 || after.trailer_at.is_none() {
        return Err(format!("reopen-append-close left {:?}", after.tail));
    }
    Ok(())
}

/// A scenario's WAL calls, logging each successful append and close.
struct Run<'a> {
    fx: &'a Fixture,
}

impl Run<'_> {
    fn append(&self, wal: &mut super::WalFile, lines: &[u8]) -> bool {
        let ok = wal.append(lines).is_ok();
        if ok {
            self.fx.sys.push(Op::Acked(lines.to_vec()));
        }
        ok
    }

    fn open(&self, sync: &SyncMode) -> super::WalFile {
        let mut wal = self.fx.open(sync.clone()).expect("open");
        assert!(self.append(&mut wal, HEADER));
        wal
    }

    fn close(&self, mut wal: super::WalFile) {
        if wal.close(TRAILER).is_ok() {
            self.fx.sys.push(Op::Closed);
        }
    }
}

fn modes() -> [SyncMode; 4] {
    [
        SyncMode::Never,
        SyncMode::Close,
        SyncMode::Interval(Duration::from_millis(1)),
        SyncMode::Always,
    ]
}

/// Runs `scenario` under `sync`; returns the fixture with its log.
fn record(sync: &SyncMode, scenario: impl Fn(&Run<'_>, &SyncMode)) -> Fixture {
    let fx = Fixture::new();
    scenario(&Run { fx: &fx }, sync);
    fx
}

fn assert_model_holds(name: &str, scenario: impl Fn(&Run<'_>, &SyncMode)) {
    for sync in modes() {
        let fx = record(&sync, &scenario);
        let checked = check(&fx.sys.log(), &sync, &fx.final_path);
        assert!(
            checked.violations.is_empty(),
            "{name} under {sync:?}: {:#?}",
            checked.violations
        );
        assert!(checked.images > 100, "{name}: the model built no images");
    }
}

fn plain_session(run: &Run<'_>, sync: &SyncMode) {
    let mut wal = run.open(sync);
    for i in 0..4 {
        assert!(run.append(&mut wal, &chunk(i)));
    }
    assert!(run.append(&mut wal, &[chunk(4), chunk(5), chunk(6)].concat()));
    run.close(wal);
}

#[test]
fn power_loss_during_a_plain_session() {
    assert_model_holds("plain", plain_session);
}

#[test]
fn power_loss_around_a_rolled_back_write() {
    assert_model_holds("rollback", |run, sync| {
        let mut wal = run.open(sync);
        assert!(run.append(&mut wal, &chunk(0)));
        run.fx
            .sys
            .faults()
            .write
            .extend([WriteFault::Short(9), WriteFault::Fail(libc::ENOSPC)]);
        assert!(!run.append(&mut wal, &chunk(1)));
        assert!(run.append(&mut wal, &chunk(2)));
        run.close(wal);
    });
}

#[test]
fn power_loss_around_a_crash_and_reopen() {
    assert_model_holds("reopen", |run, sync| {
        // A failed rollback leaves a torn record; the next writer cuts it.
        let mut first = run.open(sync);
        assert!(run.append(&mut first, &chunk(0)));
        let faults = &run.fx.sys;
        faults
            .faults()
            .write
            .extend([WriteFault::Short(9), WriteFault::Fail(libc::EIO)]);
        faults.faults().ftruncate.push_back(Some(libc::EIO));
        assert!(!run.append(&mut first, &chunk(1)));
        first.abandon();
        let mut second = run.open(sync);
        assert!(run.append(&mut second, &chunk(1)));
        run.close(second);
    });
}

#[test]
fn power_loss_across_two_sessions_with_one_id() {
    assert_model_holds("same id twice", |run, sync| {
        plain_session(run, sync);
        let mut again = run.open(sync);
        assert!(run.append(&mut again, &chunk(7)));
        run.close(again);
    });
}

#[test]
fn power_loss_with_background_syncs_mid_stream() {
    let sync = SyncMode::Interval(Duration::from_millis(1));
    let fx = record(&sync, |run, sync| {
        let mut wal = run.open(sync);
        for i in 0..6 {
            assert!(run.append(&mut wal, &chunk(i)));
            std::thread::sleep(Duration::from_millis(3));
        }
        run.close(wal);
    });
    let log = fx.sys.log();
    let checked = check(&log, &sync, &fx.final_path);
    assert!(checked.violations.is_empty(), "{:#?}", checked.violations);
}

// The model has teeth: each guarantee fails on a log that lacks what makes it hold.

#[test]
fn model_flags_a_final_name_without_its_data_under_never() {
    let fx = record(&SyncMode::Never, plain_session);
    let checked = check(&fx.sys.log(), &SyncMode::Close, &fx.final_path);
    let found = checked
        .violations
        .iter()
        .any(|v| v.contains("without a trailer"));
    assert!(found, "{:#?}", checked.violations);
}

#[test]
fn model_flags_acknowledged_records_lost_without_a_directory_fsync() {
    let fx = record(&SyncMode::Always, plain_session);
    let mut log = fx.sys.log();
    let first_dir_sync = log
        .iter()
        .position(|op| matches!(op, Op::SyncDir { .. }))
        .unwrap();
    log.remove(first_dir_sync);
    let checked = check(&log, &SyncMode::Always, &fx.final_path);
    let found = checked.violations.iter().any(|v| v.contains("unreachable"));
    assert!(found, "{:#?}", checked.violations);
}

#[test]
fn model_flags_a_torn_line_left_in_the_middle() {
    let fx = record(&SyncMode::Always, plain_session);
    let mut log = fx.sys.log();
    let file = 0;
    let at = log
        .iter()
        .position(|op| matches!(op, Op::Write { .. }))
        .unwrap();
    // A torn record that was never cut back, followed by the real ones.
    log.insert(
        at + 1,
        Op::Write {
            file,
            offset: HEADER.len() as u64,
            data: b"{\"torn".to_vec(),
        },
    );
    for op in &mut log[at + 2..] {
        if let Op::Write { offset, .. } = op {
            *offset += 6;
        }
    }
    let checked = check(&log, &SyncMode::Always, &fx.final_path);
    let found = checked
        .violations
        .iter()
        .any(|v| v.contains("not a whole record"));
    assert!(found, "{:#?}", checked.violations);
}

#[test]
fn out_of_order_images_hold_holes_that_a_newline_cut_would_append_after() {
    // The new images matter: some end in a NUL hole with later records, and
    // there the old reopen (cut at the last newline) glues the next session
    // segment after garbage, which no reader can get past.
    let fx = record(&SyncMode::Close, plain_session);
    let mut disk = Disk::default();
    let (mut holes, mut glued) = (0, 0);
    for op in fx.sys.log() {
        disk.apply(&op);
        for state in disk.files.values() {
            for image in state.out_of_order_images() {
                let prefix = valid_prefix(image.as_slice(), DEFAULT_MAX_LINE).unwrap();
                holes += usize::from(prefix.tail == Some(TailKind::Hole));
                let newline_cut = image.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let appended = [&image[..newline_cut], HEADER, TRAILER].concat();
                let after = valid_prefix(appended.as_slice(), DEFAULT_MAX_LINE).unwrap();
                glued += usize::from(after.end < appended.len() as u64);
            }
        }
    }
    assert!(holes > 100 && glued > 100, "holes {holes}, glued {glued}");
}
