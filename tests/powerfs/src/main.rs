//! powerfs: a FUSE file system that loses power on command.
//!
//! `powerfs BACKING MOUNTPOINT` shows BACKING's tree at MOUNTPOINT. Reads
//! pass through; writes to a file stay in memory until its `fsync` /
//! `fdatasync` copies them to BACKING (the "disk"). Creates, hard links,
//! renames and unlinks reach BACKING at once but are journaled until an
//! `fsync` of the directory; `mkdir` and `rmdir` are durable at once.
//!
//! Commands on stdin, one reply line each on stdout:
//! - `cut MODE SEED`: power cut. For each file with unsynced writes the model
//!   (`model.rs`: drop, prefix, reorder, holes, random) decides which pages
//!   land; then a random suffix of the unsynced directory operations is
//!   undone (all of them under `drop`). From then on every operation fails
//!   with EIO, as on a machine without power, until
//! - `revive`: the machine is back; the mount shows BACKING as it is.
//!
//! EOF on stdin unmounts. Every open uses direct I/O and no attribute is
//! cached, so the kernel never serves bytes the model has not decided on.

mod model;

use std::collections::hash_map::{Entry, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use model::{after_cut, Mode, Rng};

const NO_CACHE: Duration = Duration::ZERO;

/// A directory operation not yet made durable by an fsync of its directory.
enum DirOp {
    Create {
        path: PathBuf,
    },
    /// `replaced` holds the file the rename replaced, kept to put it back.
    Rename {
        from: PathBuf,
        to: PathBuf,
        replaced: Option<PathBuf>,
    },
    Unlink {
        path: PathBuf,
        kept: PathBuf,
    },
}

impl DirOp {
    fn dir(&self) -> &Path {
        match self {
            DirOp::Create { path } | DirOp::Unlink { path, .. } => path.parent().unwrap(),
            DirOp::Rename { to, .. } => to.parent().unwrap(),
        }
    }

    /// Puts the backing tree back as it was before this operation.
    fn undo(&self) -> io::Result<()> {
        match self {
            DirOp::Create { path } => fs::remove_file(path),
            DirOp::Rename { from, to, replaced } => {
                fs::rename(to, from)?;
                match replaced {
                    Some(old) => fs::rename(old, to),
                    None => Ok(()),
                }
            }
            DirOp::Unlink { path, kept } => fs::rename(kept, path),
        }
    }
}

struct State {
    /// Where unlinked and replaced files wait until their directory is synced.
    attic: PathBuf,
    /// Inode number -> backing path. 1 is the root.
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_inode: u64,
    /// Inode -> the file's content including unsynced writes.
    unsynced: HashMap<u64, Vec<u8>>,
    journal: Vec<DirOp>,
    attic_names: u64,
    powered: bool,
}

impl State {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        if !self.powered {
            return Err(Errno::EIO);
        }
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    fn inode_of(&mut self, path: &Path) -> u64 {
        if let Some(&ino) = self.inodes.get(path) {
            return ino;
        }
        let ino = self.next_inode;
        self.next_inode += 1;
        self.paths.insert(ino, path.to_path_buf());
        self.inodes.insert(path.to_path_buf(), ino);
        ino
    }

    fn moved(&mut self, from: &Path, to: &Path) {
        if let Some(ino) = self.inodes.remove(from) {
            self.paths.insert(ino, to.to_path_buf());
            self.inodes.insert(to.to_path_buf(), ino);
        }
    }

    fn attr(&mut self, path: &Path) -> Result<FileAttr, Errno> {
        let meta = fs::symlink_metadata(path).map_err(Errno::from)?;
        let ino = self.inode_of(path);
        let size = self
            .unsynced
            .get(&ino)
            .map_or(meta.len(), |data| data.len() as u64);
        let kind = if meta.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        };
        let time = |secs: i64| UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time(meta.atime()),
            mtime: time(meta.mtime()),
            ctime: time(meta.ctime()),
            crtime: time(meta.ctime()),
            kind,
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// The file's content with its unsynced writes, loaded to be changed.
    fn content(&mut self, ino: INodeNo) -> Result<&mut Vec<u8>, Errno> {
        let path = self.path(ino)?;
        match self.unsynced.entry(ino.0) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => Ok(entry.insert(fs::read(&path).map_err(Errno::from)?)),
        }
    }

    fn move_to_attic(&mut self, path: &Path) -> io::Result<PathBuf> {
        self.attic_names += 1;
        let kept = self.attic.join(self.attic_names.to_string());
        fs::rename(path, &kept)?;
        self.moved(path, &kept);
        Ok(kept)
    }

    fn write_back(path: &Path, data: &[u8]) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.write_all_at(data, 0)?;
        file.set_len(data.len() as u64)
    }

    /// The power cut: see the module doc. Returns the reply line.
    fn cut(&mut self, mode: Mode, seed: u64) -> io::Result<String> {
        let mut rng = Rng::new(seed);
        let (mut files, mut dirty, mut landed) = (0, 0, 0);
        let mut unsynced: Vec<_> = self.unsynced.drain().collect();
        unsynced.sort_by_key(|(ino, _)| *ino);
        for (ino, current) in unsynced {
            let Some(path) = self.paths.get(&ino) else {
                continue;
            };
            // Gone with a directory removed since (rmdir is durable at once).
            let Some(durable) = existing(fs::read(path))? else {
                continue;
            };
            let (image, pages) = after_cut(&durable, &current, mode, &mut rng);
            files += 1;
            dirty += model::dirty_pages(&durable, &current).len();
            landed += pages;
            Self::write_back(path, &image)?;
        }
        let keep = if mode == Mode::Drop {
            0
        } else {
            rng.upto(self.journal.len())
        };
        let undone = self.journal.len() - keep;
        for op in self.journal.drain(keep..).rev() {
            // An operation in a directory removed since has nothing to undo.
            existing(op.undo())?;
        }
        self.journal.clear();
        self.powered = false;
        Ok(format!(
            "cut files={files} pages={landed}/{dirty} dir_ops_undone={undone}"
        ))
    }

    fn revive(&mut self) {
        // Inode numbers are not reused: the kernel may still name old ones.
        self.paths.retain(|&ino, _| ino == 1);
        self.inodes.retain(|_, &mut ino| ino == 1);
        self.powered = true;
    }
}

/// `Ok(None)` for a path that no longer exists.
fn existing<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

struct PowerFs(Arc<Mutex<State>>);

impl PowerFs {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn opened() -> FopenFlags {
    FopenFlags::FOPEN_DIRECT_IO
}

impl Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.state();
        match st.child(parent, name).and_then(|p| st.attr(&p)) {
            Ok(attr) => reply.entry(&NO_CACHE, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut st = self.state();
        match st.path(ino).and_then(|p| st.attr(&p)) {
            Ok(attr) => reply.attr(&NO_CACHE, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.state();
        let result = (|| {
            let path = st.path(ino)?;
            if let Some(size) = size {
                st.content(ino)?.resize(size as usize, 0);
            }
            if let Some(mode) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(Errno::from)?;
            }
            st.attr(&path)
        })();
        match result {
            Ok(attr) => reply.attr(&NO_CACHE, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.state();
        let result = st.child(parent, name).and_then(|path| {
            fs::DirBuilder::new()
                .mode(mode & 0o7777)
                .create(&path)
                .map_err(Errno::from)?;
            st.attr(&path)
        });
        match result {
            Ok(attr) => reply.entry(&NO_CACHE, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.state();
        let result = st.child(parent, name).and_then(|path| {
            let kept = st.move_to_attic(&path).map_err(Errno::from)?;
            st.journal.push(DirOp::Unlink { path, kept });
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let st = self.state();
        match st
            .child(parent, name)
            .and_then(|p| fs::remove_dir(p).map_err(Errno::from))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state();
        let result = (|| {
            let from = st.child(parent, name)?;
            let to = st.child(newparent, newname)?;
            fs::symlink_metadata(&from).map_err(Errno::from)?;
            let replaced = match fs::symlink_metadata(&to) {
                Ok(_) => Some(st.move_to_attic(&to).map_err(Errno::from)?),
                Err(_) => None,
            };
            fs::rename(&from, &to).map_err(Errno::from)?;
            st.moved(&from, &to);
            st.journal.push(DirOp::Rename { from, to, replaced });
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// A hard link is journaled like a create. Inodes here are per path, so
    /// writes through one name are not seen through the other until synced:
    /// enough for `repair`, which links a backup it has already fsynced.
    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut st = self.state();
        let result = (|| {
            let from = st.path(ino)?;
            let to = st.child(newparent, newname)?;
            fs::hard_link(&from, &to).map_err(Errno::from)?;
            st.journal.push(DirOp::Create { path: to.clone() });
            st.attr(&to)
        })();
        match result {
            Ok(attr) => reply.entry(&NO_CACHE, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.state().path(ino) {
            Ok(_) => reply.opened(FileHandle(0), opened()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.state();
        let result = st.path(ino).and_then(|path| {
            let end = offset.saturating_add(u64::from(size));
            if let Some(data) = st.unsynced.get(&ino.0) {
                let len = data.len() as u64;
                let range = offset.min(len) as usize..end.min(len) as usize;
                return Ok(data[range].to_vec());
            }
            let file = File::open(path).map_err(Errno::from)?;
            let mut buf = vec![0; size as usize];
            let n = file.read_at(&mut buf, offset).map_err(Errno::from)?;
            buf.truncate(n);
            Ok(buf)
        });
        match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.state();
        match st.content(ino) {
            Ok(content) => {
                let start = offset as usize;
                if content.len() < start + data.len() {
                    content.resize(start + data.len(), 0);
                }
                content[start..start + data.len()].copy_from_slice(data);
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        let mut st = self.state();
        let result = st.path(ino).and_then(|path| {
            if let Some(data) = st.unsynced.remove(&ino.0) {
                State::write_back(&path, &data).map_err(Errno::from)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.state();
        let listing = st.path(ino).and_then(|dir| {
            let mut names: Vec<_> = fs::read_dir(&dir)
                .map_err(Errno::from)?
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect();
            names.sort();
            Ok((dir, names))
        });
        let (dir, names) = match listing {
            Ok(found) => found,
            Err(e) => return reply.error(e),
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for name in names {
            let path = dir.join(&name);
            let kind = match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => FileType::Directory,
                Ok(_) => FileType::RegularFile,
                Err(_) => continue,
            };
            entries.push((st.inode_of(&path), kind, name));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _ds: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state();
        match st.path(ino) {
            Ok(dir) => {
                st.journal.retain(|op| op.dir() != dir);
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.state();
        let result = st.child(parent, name).and_then(|path| {
            let existed = fs::symlink_metadata(&path).is_ok();
            OpenOptions::new()
                .write(true)
                .create(true)
                .create_new(flags & libc::O_EXCL != 0)
                .mode(mode & 0o7777)
                .open(&path)
                .map_err(Errno::from)?;
            if !existed {
                st.journal.push(DirOp::Create { path: path.clone() });
            }
            st.attr(&path)
        });
        match result {
            Ok(attr) => reply.created(&NO_CACHE, &attr, Generation(0), FileHandle(0), opened()),
            Err(e) => reply.error(e),
        }
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, backing, mountpoint] = args.as_slice() else {
        eprintln!("usage: powerfs BACKING MOUNTPOINT  (commands on stdin: see the source)");
        std::process::exit(2);
    };
    let backing = fs::canonicalize(backing)?;
    let attic = backing.with_extension("attic");
    fs::create_dir_all(&attic)?;
    let state = Arc::new(Mutex::new(State {
        paths: HashMap::from([(1, backing.clone())]),
        inodes: HashMap::from([(backing, 1)]),
        attic,
        next_inode: 2,
        unsynced: HashMap::new(),
        journal: Vec::new(),
        attic_names: 0,
        powered: true,
    }));
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("powerfs".into()),
        MountOption::DefaultPermissions,
    ];
    let session = fuser::spawn_mount(PowerFs(Arc::clone(&state)), mountpoint, &config)?;
    let mut out = io::stdout().lock();
    writeln!(out, "mounted")?;
    out.flush()?;
    for line in io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let reply = match words.as_slice() {
            ["cut", mode, seed] => match (Mode::parse(mode), seed.parse()) {
                (Some(mode), Ok(seed)) => {
                    st.cut(mode, seed).unwrap_or_else(|e| format!("error {e}"))
                }
                _ => format!("error bad cut: {line}"),
            },
            ["revive"] => {
                st.revive();
                "revived".to_string()
            }
            _ => format!("error unknown command: {line}"),
        };
        drop(st);
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    drop(session);
    Ok(())
}
