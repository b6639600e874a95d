//! Python `str` objects, read in place from CPython's compact representation
//! (1, 2 or 4 bytes per code point) and transcoded to escaped UTF-8 in one
//! pass. Measured against `PyUnicode_AsUTF8AndSize` in docs/performance.md:
//! that call also caches a UTF-8 copy inside every non-ASCII payload string.

use pyo3::ffi;

use super::string::write_str_utf8;
#[cfg(not(feature = "str-via-utf8"))]
use super::string::{wide_vectorized, write_str_ucs1, write_str_ucs2, write_str_ucs4};
use super::{Encoded, Unsupported};

/// Without the vectorized encoder, 2- and 4-byte strings from this length
/// on are transcoded by CPython's UTF-8 encoder and then escaped: on long
/// mixed-script text (tool output) that measured ~15% faster than our
/// scalar transcoder, while short strings are faster without the temporary
/// bytes object. The vectorized encoder is faster than both.
#[cfg(not(feature = "str-via-utf8"))]
const LONG_WIDE_STR: usize = 4096;

/// CPython transcodes into a new bytes object (not the str's cached UTF-8,
/// which would stay attached to the payload); we escape and copy it.
#[cfg(not(feature = "str-via-utf8"))]
#[cold]
#[inline(never)]
unsafe fn write_via_cpython_utf8(buf: &mut Vec<u8>, obj: *mut ffi::PyObject) -> Encoded {
    let bytes = ffi::PyUnicode_AsUTF8String(obj);
    if bytes.is_null() {
        // A lone surrogate: Python's fallback raises the UnicodeEncodeError.
        ffi::PyErr_Clear();
        return Err(Unsupported);
    }
    let data = ffi::PyBytes_AS_STRING(bytes) as *const u8;
    let len = ffi::PyBytes_Size(bytes) as usize;
    write_str_utf8(buf, std::slice::from_raw_parts(data, len));
    ffi::Py_DECREF(bytes);
    Ok(())
}

/// Appends `"…"` for a str (or str subclass) object.
///
/// # Safety
/// Attached to the interpreter; `obj` is a valid `str` instance.
#[cfg(not(feature = "str-via-utf8"))]
#[inline]
pub unsafe fn write_pystr(buf: &mut Vec<u8>, obj: *mut ffi::PyObject) -> Encoded {
    let len = ffi::PyUnicode_GET_LENGTH(obj) as usize;
    if len >= super::defer::DEFER_MIN_CHARS && super::defer::defer(buf, obj, len) {
        return Ok(());
    }
    let data = ffi::PyUnicode_DATA(obj);
    match ffi::PyUnicode_KIND(obj) {
        ffi::PyUnicode_1BYTE_KIND => {
            let units = std::slice::from_raw_parts(data as *const u8, len);
            if ffi::PyUnicode_IS_ASCII(obj) != 0 {
                write_str_utf8(buf, units);
            } else {
                write_str_ucs1(buf, units);
            }
            Ok(())
        }
        ffi::PyUnicode_2BYTE_KIND | ffi::PyUnicode_4BYTE_KIND
            if len >= LONG_WIDE_STR && !wide_vectorized() =>
        {
            write_via_cpython_utf8(buf, obj)
        }
        ffi::PyUnicode_2BYTE_KIND => {
            let units = std::slice::from_raw_parts(data as *const u16, len);
            write_str_ucs2(buf, units).map_err(|_| Unsupported)
        }
        ffi::PyUnicode_4BYTE_KIND => {
            let units = std::slice::from_raw_parts(data as *const u32, len);
            write_str_ucs4(buf, units).map_err(|_| Unsupported)
        }
        _ => Err(Unsupported),
    }
}

/// The alternative measured in docs/performance.md (`--features str-via-utf8`): let
/// CPython transcode (and cache) the UTF-8 form, then only escape it.
///
/// # Safety
/// Attached to the interpreter; `obj` is a valid `str` instance.
#[cfg(feature = "str-via-utf8")]
#[inline]
pub unsafe fn write_pystr(buf: &mut Vec<u8>, obj: *mut ffi::PyObject) -> Encoded {
    let mut size: ffi::Py_ssize_t = 0;
    let utf8 = ffi::PyUnicode_AsUTF8AndSize(obj, &mut size);
    if utf8.is_null() {
        // A lone surrogate: Python's fallback raises the UnicodeEncodeError.
        ffi::PyErr_Clear();
        return Err(Unsupported);
    }
    write_str_utf8(
        buf,
        std::slice::from_raw_parts(utf8 as *const u8, size as usize),
    );
    Ok(())
}
