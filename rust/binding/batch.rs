//! Encoding a `write_chunks` batch with the errors of the pure writer.
//!
//! The pure writer dumps every record of the batch first and then writes
//! their joined text, so a lone surrogate surfaces as a `UnicodeEncodeError`
//! only after every other record was dumped (a later `TypeError` wins), and
//! its position counts from the start of the batch. Both are reproduced
//! here, on the error path only.
//!
//! Pending signals are checked after every record: an interrupt (Ctrl-C)
//! during a long batch raises before anything of it is written or queued.

use pyo3::exceptions::PyUnicodeEncodeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyString, PyTuple};

use super::encoding::ChunkEncoder;

static UNPACK_PAIR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Appends the chunk line of every `(index, row)` in `items`; returns how
/// many. On error `buf` holds garbage and nothing may be written.
pub(super) fn encode_batch(
    py: Python<'_>,
    chunks: &ChunkEncoder,
    buf: &mut Vec<u8>,
    items: &Bound<'_, PyAny>,
) -> PyResult<u64> {
    let mut count = 0;
    let mut surrogate: Option<PyErr> = None;
    for item in items.try_iter()? {
        // Cheap when no signal is pending (one atomic load); a handler that
        // raises (KeyboardInterrupt) cancels the whole batch.
        py.check_signals()?;
        let (index, row) = unpack_pair(py, &item?)?;
        let start = buf.len();
        match chunks.encode_chunk_into(py, buf, &index, &row) {
            Ok(()) => {}
            Err(err) if surrogate.is_none() && err.is_instance_of::<PyUnicodeEncodeError>(py) => {
                surrogate = Some(rebase(py, err, &buf[..start]));
                buf.truncate(start);
            }
            Err(err) => return Err(err),
        }
        count += 1;
    }
    match surrogate {
        Some(err) => Err(err),
        None => Ok(count),
    }
}

/// `(index, row)` from a 2-tuple or 2-list; anything else is unpacked by
/// Python, so a malformed item raises exactly what `index, row = item` does.
fn unpack_pair<'py>(
    py: Python<'py>,
    item: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    if let Ok(pair) = item.cast_exact::<PyTuple>() {
        if pair.len() == 2 {
            return Ok((pair.get_item(0)?, pair.get_item(1)?));
        }
    } else if let Ok(pair) = item.cast_exact::<PyList>() {
        if pair.len() == 2 {
            return Ok((pair.get_item(0)?, pair.get_item(1)?));
        }
    }
    UNPACK_PAIR
        .import(py, "sessionwal._fallback", "unpack_pair")?
        .call1((item,))?
        .extract()
}

/// The error of one record's line, re-based as if raised while encoding the
/// joined batch whose earlier lines are `before` (valid UTF-8).
fn rebase(py: Python<'_>, err: PyErr, before: &[u8]) -> PyErr {
    if before.is_empty() {
        return err;
    }
    let rebuilt = (|| -> PyResult<PyErr> {
        let value = err.value(py);
        let prefix = std::str::from_utf8(before).map_err(|_| err.clone_ref(py))?;
        let offset = prefix.chars().count();
        let line = value.getattr("object")?;
        let joined = PyString::new(py, prefix).add(&line)?;
        let start: usize = value.getattr("start")?.extract()?;
        let end: usize = value.getattr("end")?.extract()?;
        let rebased = py.get_type::<PyUnicodeEncodeError>().call1((
            value.getattr("encoding")?,
            joined,
            start + offset,
            end + offset,
            value.getattr("reason")?,
        ))?;
        Ok(PyErr::from_value(rebased))
    })();
    rebuilt.unwrap_or(err)
}
