//! `sessionwal._native.scan`: the file scanner of `crate::scan`, for the
//! loader's `list_sessions` and the CLI's `verify`.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::errors::to_pyerr;
use crate::error::WalError;
use crate::scan::{scan_bytes, scan_path, Scan};

/// Scans a session file (a path) or its bytes (a `bytes` object).
///
/// Returns a dict: `size`, `complete_len`, `lines`, `chunks` (ints);
/// `events`, a list of `(line, kind, text)` for every complete line that is
/// not a chunk line (`kind` is "header", "trailer" or "other", a hint from
/// the prefix; `text` is the line's bytes without the newline); `invalid`,
/// `None` or `(line, byte_column, reason, text)` for the first line that is not
/// one valid JSON object (only checked with `validate=True`).
/// A path is read with the interpreter released.
#[pyfunction]
#[pyo3(name = "scan", signature = (source, *, validate = false))]
pub fn scan_file<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    validate: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let result = if let Ok(bytes) = source.cast::<PyBytes>() {
        scan_bytes(bytes.as_bytes(), validate)
    } else {
        let path: PathBuf = source.extract()?;
        py.detach(|| scan_path(&path, validate))
            .map_err(|e| to_pyerr(py, WalError::io_at(e, path)))?
    };
    to_dict(py, result)
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
    Ok(dict)
}
