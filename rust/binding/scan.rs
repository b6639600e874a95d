//! `sessionwal._native.scan`: the file scanner of `crate::scan`, for the
//! loader's `list_sessions` and the CLI's `verify`.

use std::io;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::errors::to_pyerr;
use crate::error::WalError;
use crate::scan::{scan_bytes, scan_path, Event, Scan, DEFAULT_MAX_LINE};

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
/// scan and propagates.
#[pyfunction]
#[pyo3(name = "scan", signature = (source, *, validate = false, max_line = DEFAULT_MAX_LINE, on_event = None))]
pub fn scan_file<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    validate: bool,
    max_line: usize,
    on_event: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    if let Ok(bytes) = source.cast::<PyBytes>() {
        return to_dict(py, scan_bytes(bytes.as_bytes(), validate));
    }
    let path: PathBuf = source.extract()?;
    let mut events = Vec::new();
    let mut raised: Option<PyErr> = None;
    let scanned = py.detach(|| {
        scan_path(&path, validate, max_line, |event: Event| match &on_event {
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
