//! The native JSON encoder: walks Python objects and appends exactly what
//! `json.dumps(obj, ensure_ascii=False)` (CPython 3.11, default separators)
//! would produce.
//!
//! Dispatch is on the exact type pointer, the common types first. Anything
//! the encoder is not certain to render byte for byte (container
//! subclasses, unknown types, lone surrogates, very deep nesting, which is
//! also how cycles show up) makes it give up with [`Unsupported`]; the
//! caller then re-encodes the whole record with Python's `json.dumps`, so
//! every error is exactly Python's.
//!
//! Everything here runs attached to the interpreter and calls no Python
//! code, so a dict cannot change while we iterate it.

#[cfg(target_arch = "x86_64")]
mod blocks;
pub mod defer;
pub mod float;
mod int;
mod list;
mod map;
mod pystr;
pub mod string;
mod unit;
#[cfg(target_arch = "x86_64")]
mod wide_avx2;
#[cfg(target_arch = "x86_64")]
mod wide_avx512;

use pyo3::ffi;

pub use pystr::write_pystr;

/// The fast path declines this value; re-encode the record in Python.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsupported;

pub type Encoded = Result<(), Unsupported>;

/// Nesting the fast path handles. CPython's encoder goes as deep as the
/// recursion limit allows; deeper (or cyclic) values take the fallback,
/// which reproduces Python's `RecursionError` / `ValueError` exactly.
const MAX_DEPTH: u32 = 200;

/// Appends the JSON of `obj`.
///
/// # Safety
/// The caller is attached to the interpreter and `obj` is a valid object.
#[inline]
pub unsafe fn encode(buf: &mut Vec<u8>, obj: *mut ffi::PyObject, depth: u32) -> Encoded {
    let ty = ffi::Py_TYPE(obj);
    if ty == &raw mut ffi::PyUnicode_Type {
        write_pystr(buf, obj)
    } else if ty == &raw mut ffi::PyDict_Type {
        map::write_dict(buf, obj, depth)
    } else if ty == &raw mut ffi::PyLong_Type {
        int::write_int(buf, obj)
    } else if ty == &raw mut ffi::PyList_Type {
        list::write_list(buf, obj, depth)
    } else if obj == ffi::Py_None() {
        buf.extend_from_slice(b"null");
        Ok(())
    } else if ty == &raw mut ffi::PyBool_Type {
        buf.extend_from_slice(if obj == ffi::Py_True() {
            b"true"
        } else {
            b"false"
        });
        Ok(())
    } else if ty == &raw mut ffi::PyFloat_Type {
        float::write_float(buf, ffi::PyFloat_AS_DOUBLE(obj));
        Ok(())
    } else if ty == &raw mut ffi::PyTuple_Type {
        list::write_tuple(buf, obj, depth)
    } else {
        encode_subclass(buf, obj)
    }
}

/// str, int and float subclasses (str enums, IntEnum, ...) render by value,
/// as CPython's encoder does. Container subclasses may override iteration,
/// so they are left to Python.
#[cold]
#[inline(never)]
unsafe fn encode_subclass(buf: &mut Vec<u8>, obj: *mut ffi::PyObject) -> Encoded {
    if ffi::PyUnicode_Check(obj) != 0 {
        write_pystr(buf, obj)
    } else if ffi::PyLong_Check(obj) != 0 {
        int::write_int(buf, obj)
    } else if ffi::PyFloat_Check(obj) != 0 {
        float::write_float(buf, ffi::PyFloat_AS_DOUBLE(obj));
        Ok(())
    } else {
        Err(Unsupported)
    }
}

#[inline]
fn enter(depth: u32) -> Result<u32, Unsupported> {
    if depth >= MAX_DEPTH {
        Err(Unsupported)
    } else {
        Ok(depth + 1)
    }
}
