//! Opening a session file for a writer pyclass, and the error every write
//! after `close()` raises: the same for the sync and the asyncio writer.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use super::encoding::ChunkEncoder;
use super::errors::to_pyerr;
use crate::error::WalError;
use crate::file::WalFile;
use crate::sync_mode::SyncMode;

/// The checks every `_open` starts with: the sync mode its arguments name,
/// and the final path, recorded once (a second `_open` is refused).
pub(super) fn begin_open(
    final_slot: &OnceLock<PathBuf>,
    final_path: &Path,
    sync: &str,
    sync_interval: f64,
) -> PyResult<SyncMode> {
    let mode = SyncMode::parse(sync, sync_interval)
        .ok_or_else(|| PyValueError::new_err(format!("invalid sync mode {sync:?}")))?;
    if final_slot.set(final_path.to_path_buf()).is_err() {
        return Err(PyRuntimeError::new_err("session writer is already open"));
    }
    Ok(mode)
}

/// What a writer's `_open(partial_path, final_path, sync, sync_interval,
/// chunk_builder)` receives.
pub(super) struct OpenArgs<'a> {
    pub partial_path: &'a Path,
    pub final_path: &'a Path,
    pub sync: &'a str,
    pub sync_interval: f64,
    pub chunk_builder: Option<Py<PyAny>>,
}

/// The whole of `_open`: [`begin_open`]'s checks, the chunk builder handed
/// to `chunks`, and the partial file opened and locked while detached.
pub(super) fn open_session(
    py: Python<'_>,
    final_slot: &OnceLock<PathBuf>,
    chunks: &ChunkEncoder,
    args: OpenArgs<'_>,
) -> PyResult<(WalFile, SyncMode)> {
    let mode = begin_open(final_slot, args.final_path, args.sync, args.sync_interval)?;
    chunks.set_builder(args.chunk_builder);
    let opened_mode = mode.clone();
    let wal = py
        .detach(|| WalFile::open(args.partial_path, args.final_path, opened_mode))
        .map_err(|err| to_pyerr(py, err))?;
    Ok((wal, mode))
}

/// What a write after `close()` (or `abandon()`) raises.
pub(super) fn closed_error(final_slot: &OnceLock<PathBuf>) -> WalError {
    WalError::Closed {
        final_path: final_slot.get().cloned().unwrap_or_default(),
    }
}
