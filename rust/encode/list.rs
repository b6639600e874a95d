//! Exact lists and tuples (subclasses may override `__iter__`: Python's job).

use pyo3::ffi;

use super::{encode, enter, Encoded};

/// # Safety
/// Attached to the interpreter; `obj` is an exact list.
pub unsafe fn write_list(buf: &mut Vec<u8>, obj: *mut ffi::PyObject, depth: u32) -> Encoded {
    let depth = enter(depth)?;
    buf.push(b'[');
    // Re-read the length each time: nothing here runs Python code, but the
    // list is not ours, so never trust a cached length for indexing.
    let mut i = 0;
    while i < ffi::PyList_GET_SIZE(obj) {
        if i > 0 {
            buf.extend_from_slice(b", ");
        }
        encode(buf, ffi::PyList_GET_ITEM(obj, i), depth)?;
        i += 1;
    }
    buf.push(b']');
    Ok(())
}

/// # Safety
/// Attached to the interpreter; `obj` is an exact tuple.
pub unsafe fn write_tuple(buf: &mut Vec<u8>, obj: *mut ffi::PyObject, depth: u32) -> Encoded {
    let depth = enter(depth)?;
    buf.push(b'[');
    for i in 0..ffi::PyTuple_GET_SIZE(obj) {
        if i > 0 {
            buf.extend_from_slice(b", ");
        }
        encode(buf, ffi::PyTuple_GET_ITEM(obj, i), depth)?;
    }
    buf.push(b']');
    Ok(())
}
