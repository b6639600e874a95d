//! `sessionwal._native.scan`: the file scanner of `crate::scan`, for the
//! loader's `list_sessions` and the CLI's `verify`; `sessionwal._native.recover`:
//! the recovery rule of `crate::scan::recovery`, for every reader.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::errors::to_pyerr;
use crate::error::WalError;
use crate::scan::{
    open_regular, scan_bytes, scan_stream, valid_prefix, Event, RecoveryError, Scan,
    DEFAULT_MAX_LINE,
};

/// Scans a session file (a path) or its bytes (a `bytes` object).
///
/// Returns a dict: `size`, `complete_len`, `lines`, `chunks` (ints);
/// `events`, a list of `(line, kind, text)` for every complete line that is
/// not a chunk line (`kind` is "header", "trailer" or "other", a hint from
/// the prefix; `text` is the line's bytes without the newline); `invalid`,
/// `None` or `(line, byte_column, reason, text)` for the first line that is not
/// one valid JSON object (only checked with `validate=True`); no line after
/// that one is an event. `overlong`: `None` or the number of the first
/// complete line longer than `max_line` bytes (the scan stopped there).
///
/// A path is read with the interpreter released, opened without following a
/// symlink or blocking on a FIFO (anything but a regular file raises
/// `PersistenceError`). With `on_event`, each event is passed to
/// `on_event(line, kind, text)` as it is found instead of being collected
/// (memory stays bounded by `max_line`); an exception it raises stops the
/// scan and propagates. With `end`, only the first `end` bytes are scanned
/// (the valid log `recover` found).
#[pyfunction]
#[pyo3(name = "scan", signature = (source, *, validate = false, max_line = DEFAULT_MAX_LINE, on_event = None, end = None))]
pub fn scan_file<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    validate: bool,
    max_line: usize,
    on_event: Option<Py<PyAny>>,
    end: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let end = end.unwrap_or(u64::MAX);
    if let Ok(bytes) = source.cast::<PyBytes>() {
        let data = bytes.as_bytes();
        return to_dict(
            py,
            scan_bytes(&data[..data.len().min(end as usize)], validate),
        );
    }
    let path: PathBuf = source.extract()?;
    let mut events = Vec::new();
    let mut raised: Option<PyErr> = None;
    let scanned = py.detach(|| {
        let file = open_regular(&path)?.take(end);
        scan_stream(file, validate, max_line, |event: Event| match &on_event {
            None => {
                events.push(event);
                Ok(())
            }
            Some(callback) => Python::attach(|py| {
                let args = (
                    event.line,
                    event.kind.as_str(),
                    PyBytes::new(py, &event.text),
                );
                callback.call1(py, args).map(drop).map_err(|err| {
                    raised = Some(err);
                    io::Error::other("stopped by on_event")
                })
            }),
        })
    });
    if let Some(err) = raised {
        return Err(err);
    }
    let mut scan = scanned.map_err(|e| match e.kind() {
        io::ErrorKind::InvalidInput => to_pyerr(py, WalError::NotRegular { path: path.clone() }),
        _ => to_pyerr(py, WalError::io_at(e, path.clone())),
    })?;
    scan.events = events;
    to_dict(py, scan)
}

/// What `recover` reads: bytes in memory, or a file opened from a path or
/// duplicated from a descriptor the caller holds.
enum Source<'py> {
    Bytes(Bound<'py, PyBytes>),
    File(FileReader, Option<PathBuf>),
}

/// Reads a file from offset 0 with `pread`, so a descriptor the caller
/// shares keeps its own offset.
struct FileReader {
    file: File,
    offset: u64,
}

impl Read for FileReader {
    #[cfg(unix)]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }

    #[cfg(not(unix))]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

fn open_source<'py>(py: Python<'py>, source: &Bound<'py, PyAny>) -> PyResult<Source<'py>> {
    if let Ok(bytes) = source.cast::<PyBytes>() {
        return Ok(Source::Bytes(bytes.clone()));
    }
    #[cfg(unix)]
    if let Ok(fd) = source.extract::<std::os::fd::RawFd>() {
        use std::os::fd::BorrowedFd;
        // SAFETY: the caller passes a descriptor it holds open for the call;
        // we only duplicate it.
        let owned = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .map_err(|e| to_pyerr(py, WalError::from(e)))?;
        let file = File::from(owned);
        return Ok(Source::File(FileReader { file, offset: 0 }, None));
    }
    let path: PathBuf = source.extract()?;
    let file = py
        .detach(|| open_regular(&path))
        .map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput => {
                to_pyerr(py, WalError::NotRegular { path: path.clone() })
            }
            _ => to_pyerr(py, WalError::io_at(e, &path)),
        })?;
    Ok(Source::File(FileReader { file, offset: 0 }, Some(path)))
}

/// The recovery rule on a session file (a path, opened as `scan` opens it,
/// or an open descriptor, read from its start without moving its offset) or
/// its bytes: where its valid log ends and what follows.
///
/// Returns a dict: `end` (bytes of the valid prefix), `size`, `records`,
/// `chunks`, `trailer_at` (offset of the trailer ending the prefix, or
/// `None`), `tail` (`None` or its kind: "zeros", "hole", "torn", "garbage",
/// "unrecognized record", "out of sequence"), and `line_too_long`: `None`, or
/// `(line, offset, length, max_line)` when the line after the prefix is
/// longer than `max_line` and may be a record (the other keys then
/// describe the prefix before it, and `size`, `chunks`, `tail` are `None`).
#[pyfunction]
#[pyo3(signature = (source, *, max_line = DEFAULT_MAX_LINE))]
pub fn recover<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    max_line: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (result, path) = match open_source(py, source)? {
        Source::Bytes(bytes) => (valid_prefix(bytes.as_bytes(), max_line), None),
        Source::File(reader, path) => (py.detach(|| valid_prefix(reader, max_line)), path),
    };
    let dict = PyDict::new(py);
    match result {
        Ok(prefix) => {
            dict.set_item("end", prefix.end)?;
            dict.set_item("size", prefix.size)?;
            dict.set_item("records", prefix.records)?;
            dict.set_item("chunks", prefix.chunks)?;
            dict.set_item("trailer_at", prefix.trailer_at)?;
            dict.set_item("tail", prefix.tail.map(|kind| kind.as_str()))?;
            dict.set_item("line_too_long", py.None())?;
        }
        Err(RecoveryError::LineTooLong {
            line,
            offset,
            len,
            max,
        }) => {
            dict.set_item("end", offset)?;
            dict.set_item("size", py.None())?;
            dict.set_item("records", line - 1)?;
            dict.set_item("chunks", py.None())?;
            dict.set_item("trailer_at", py.None())?;
            dict.set_item("tail", py.None())?;
            dict.set_item("line_too_long", (line, offset, len, max))?;
        }
        Err(RecoveryError::Io(source)) => {
            return Err(to_pyerr(py, WalError::Io { source, path }));
        }
    }
    Ok(dict)
}

fn to_dict(py: Python<'_>, scan: Scan) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("size", scan.size)?;
    dict.set_item("complete_len", scan.complete_len)?;
    dict.set_item("lines", scan.lines)?;
    dict.set_item("chunks", scan.chunks)?;
    let events = PyList::empty(py);
    for event in &scan.events {
        let text = PyBytes::new(py, &event.text);
        events.append(PyTuple::new(
            py,
            [
                event.line.into_pyobject(py)?.into_any(),
                event.kind.as_str().into_pyobject(py)?.into_any(),
                text.into_any(),
            ],
        )?)?;
    }
    dict.set_item("events", events)?;
    match &scan.invalid {
        Some(invalid) => {
            let text = PyBytes::new(py, &invalid.text);
            dict.set_item(
                "invalid",
                (invalid.line, invalid.column, invalid.reason, text),
            )?
        }
        None => dict.set_item("invalid", py.None())?,
    }
    dict.set_item("overlong", scan.overlong)?;
    Ok(dict)
}
