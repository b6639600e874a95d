//! Python ints: machine-sized ones formatted natively, bigger ones through
//! `int.__repr__` (which is what json.dumps uses, also for int subclasses).

use pyo3::ffi;

use super::{Encoded, Unsupported};

/// # Safety
/// Attached to the interpreter; `obj` is an int (or subclass) instance.
#[inline]
pub unsafe fn write_int(buf: &mut Vec<u8>, obj: *mut ffi::PyObject) -> Encoded {
    let mut overflow = 0;
    let value = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
    if overflow == 0 {
        // -1 is also the error value; an exact int cannot fail here, but be sure.
        if value == -1 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            return Err(Unsupported);
        }
        buf.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        Ok(())
    } else {
        write_big_int(buf, obj)
    }
}

#[cold]
#[inline(never)]
unsafe fn write_big_int(buf: &mut Vec<u8>, obj: *mut ffi::PyObject) -> Encoded {
    let Some(repr) = ffi::PyLong_Type.tp_repr else {
        return Err(Unsupported);
    };
    // Over sys.get_int_max_str_digits this raises ValueError; the Python
    // fallback raises it again with Python's own message.
    let text = repr(obj);
    if text.is_null() {
        ffi::PyErr_Clear();
        return Err(Unsupported);
    }
    let mut size: ffi::Py_ssize_t = 0;
    let utf8 = ffi::PyUnicode_AsUTF8AndSize(text, &mut size);
    let result = if utf8.is_null() {
        ffi::PyErr_Clear();
        Err(Unsupported)
    } else {
        buf.extend_from_slice(std::slice::from_raw_parts(utf8 as *const u8, size as usize));
        Ok(())
    };
    ffi::Py_DECREF(text);
    result
}
