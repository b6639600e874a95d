//! `WalError` → the Python exception the pure reference raises, in one place.

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::error::WalError;

static PERSISTENCE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn persistence_error(py: Python<'_>, message: String) -> PyErr {
    match PERSISTENCE_ERROR.import(py, "sessionwal.errors", "PersistenceError") {
        Ok(ty) => PyErr::from_type(ty.clone(), message),
        Err(err) => err,
    }
}

pub fn to_pyerr(py: Python<'_>, err: WalError) -> PyErr {
    match err {
        WalError::Io { source, path } => match source.raw_os_error() {
            // (errno, strerror, filename) lets CPython pick the OSError
            // subclass (FileNotFoundError, ...) and fill errno and filename.
            Some(errno) => {
                let strerror = py
                    .import("os")
                    .and_then(|os| os.call_method1("strerror", (errno,)))
                    .and_then(|s| s.extract::<String>())
                    .unwrap_or_else(|_| source.to_string());
                match path {
                    // A str filename, as the seed's `open()` gives (a PathBuf
                    // would arrive as a Path and print as PosixPath('...')).
                    Some(path) => PyOSError::new_err((errno, strerror, path.into_os_string())),
                    None => PyOSError::new_err((errno, strerror)),
                }
            }
            None => PyOSError::new_err(source.to_string()),
        },
        WalError::Closed { .. } => PyRuntimeError::new_err(err.to_string()),
        WalError::Locked { .. }
        | WalError::Poisoned { .. }
        | WalError::Forked
        | WalError::Replaced { .. }
        | WalError::NotRegular { .. }
        | WalError::Unrecoverable { .. } => persistence_error(py, err.to_string()),
    }
}
