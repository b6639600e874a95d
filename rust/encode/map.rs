//! Exact dicts, in insertion order, with json.dumps's key coercions:
//! str as is; float, int, bool and None keys as their JSON text in quotes.

use pyo3::ffi;

use super::{encode, enter, float, int, write_pystr, Encoded, Unsupported};

/// # Safety
/// Attached to the interpreter; `obj` is an exact dict.
pub unsafe fn write_dict(buf: &mut Vec<u8>, obj: *mut ffi::PyObject, depth: u32) -> Encoded {
    let depth = enter(depth)?;
    buf.push(b'{');
    let mut pos: ffi::Py_ssize_t = 0;
    let mut key: *mut ffi::PyObject = std::ptr::null_mut();
    let mut value: *mut ffi::PyObject = std::ptr::null_mut();
    let mut first = true;
    while ffi::PyDict_Next(obj, &mut pos, &mut key, &mut value) != 0 {
        if !first {
            buf.extend_from_slice(b", ");
        }
        first = false;
        if ffi::Py_TYPE(key) == &raw mut ffi::PyUnicode_Type {
            write_pystr(buf, key)?;
        } else {
            write_key(buf, key)?;
        }
        buf.extend_from_slice(b": ");
        encode(buf, value, depth)?;
    }
    buf.push(b'}');
    Ok(())
}

/// Non-str keys, checked in CPython's order (str, float, True/False/None, int);
/// anything else is Python's `TypeError` to raise.
#[cold]
#[inline(never)]
unsafe fn write_key(buf: &mut Vec<u8>, key: *mut ffi::PyObject) -> Encoded {
    if ffi::PyUnicode_Check(key) != 0 {
        return write_pystr(buf, key);
    }
    buf.push(b'"');
    if ffi::PyFloat_Check(key) != 0 {
        float::write_float(buf, ffi::PyFloat_AS_DOUBLE(key));
    } else if key == ffi::Py_True() {
        buf.extend_from_slice(b"true");
    } else if key == ffi::Py_False() {
        buf.extend_from_slice(b"false");
    } else if key == ffi::Py_None() {
        buf.extend_from_slice(b"null");
    } else if ffi::PyLong_Check(key) != 0 {
        int::write_int(buf, key)?;
    } else {
        return Err(Unsupported);
    }
    buf.push(b'"');
    Ok(())
}
