//! Large strings transcoded outside the interpreter lock.
//!
//! Escaping a 64 KiB tool output is most of the cost of its chunk, and it
//! only reads the string's code units. While a [`collect`] scope is active,
//! `write_pystr` leaves strings of at least [`DEFER_MIN_CHARS`] code points
//! out of the buffer and records where they go, holding a reference so the
//! (immutable) text stays alive. The writer then splices them in with
//! [`Deferred::splice`] while detached, so threads with their own writers
//! encode large chunks in parallel instead of queueing on the GIL.
//!
//! A lone surrogate in a deferred string is only found by `splice`; the
//! caller then re-encodes attached, without deferral, which raises exactly
//! the error the pure writer raises.

use std::cell::{Cell, RefCell};

use pyo3::ffi;

use super::string::{
    wide_vectorized, write_str_ucs1, write_str_ucs2, write_str_ucs4, write_str_utf8, LoneSurrogate,
};

/// Below this many code points a string is escaped in place: deferring costs
/// a reference and a copy, which only pays off on long text.
pub const DEFER_MIN_CHARS: usize = 8192;

struct Pending {
    /// A strong reference to the str, or to the bytes of its UTF-8 form
    /// (released by `Deferred::drop` or `rollback_from`).
    obj: usize,
    /// Where the string's JSON goes in the buffer.
    at: usize,
    kind: u32,
    ascii: bool,
    /// The code units; valid while `obj` is alive (a str never changes).
    data: usize,
    len: usize,
}

thread_local! {
    /// The address of the buffer deferral applies to; 0 when off. Tied to one
    /// buffer so that anything else encoded meanwhile on this thread (Python
    /// code run by a chunk builder may encode through another writer) is
    /// written in place as usual.
    static TARGET: Cell<usize> = const { Cell::new(0) };
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
}

/// Strings left out of a buffer by [`collect`], in buffer order.
///
/// Holds references to Python objects: drop it only while attached.
#[derive(Default)]
pub struct Deferred {
    items: Vec<Pending>,
}

/// Runs `f` (attached) with deferral on for what it encodes into `buf`. On
/// error nothing stays deferred.
pub fn collect<T, E>(
    buf: &mut Vec<u8>,
    f: impl FnOnce(&mut Vec<u8>) -> Result<T, E>,
) -> Result<(T, Deferred), E> {
    // Saved and restored: a nested scope (another writer's write_chunk run by
    // a chunk builder) must not see or keep ours.
    let outer_target = TARGET.replace(std::ptr::from_ref(buf) as usize);
    let outer = PENDING.take();
    let result = f(buf);
    let items = PENDING.replace(outer);
    TARGET.set(outer_target);
    let deferred = Deferred { items };
    result.map(|value| (value, deferred))
}

/// Forgets what was deferred at or after `start`: the caller cut the buffer
/// back there (a record the fast path gave up on).
pub fn rollback_from(buf: &Vec<u8>, start: usize) {
    if TARGET.get() != std::ptr::from_ref(buf) as usize {
        return;
    }
    PENDING.with_borrow_mut(|pending| {
        while pending.last().is_some_and(|p| p.at >= start) {
            let p = pending.pop().expect("checked");
            // SAFETY: attached (the encoder runs attached); we own this reference.
            unsafe { ffi::Py_DECREF(p.obj as *mut ffi::PyObject) };
        }
    });
}

/// Records `obj` for later if deferral is on; false means "write it now".
///
/// # Safety
/// Attached; `obj` is a valid, ready `str` of `len` code points.
#[cfg_attr(feature = "str-via-utf8", allow(dead_code))]
pub(super) unsafe fn defer(buf: &Vec<u8>, obj: *mut ffi::PyObject, len: usize) -> bool {
    if TARGET.get() != std::ptr::from_ref(buf) as usize {
        return false;
    }
    let kind = ffi::PyUnicode_KIND(obj);
    let pending = if kind == ffi::PyUnicode_1BYTE_KIND || wide_vectorized() {
        ffi::Py_INCREF(obj);
        Pending {
            obj: obj as usize,
            at: buf.len(),
            kind,
            ascii: ffi::PyUnicode_IS_ASCII(obj) != 0,
            data: ffi::PyUnicode_DATA(obj) as usize,
            len,
        }
    } else {
        // Without a vectorized encoder, 2- and 4-byte text is transcoded now
        // by CPython's UTF-8 encoder (about twice as fast as our scalar one
        // on mixed-script text) into a new bytes object, not the str's
        // cached UTF-8; only escaping it is deferred. A lone surrogate fails
        // here: write it now, which falls back to Python.
        let bytes = ffi::PyUnicode_AsUTF8String(obj);
        if bytes.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        Pending {
            obj: bytes as usize,
            at: buf.len(),
            kind: ffi::PyUnicode_1BYTE_KIND,
            // Valid UTF-8: `write_str_utf8` escapes it as is.
            ascii: true,
            data: ffi::PyBytes_AS_STRING(bytes) as usize,
            len: ffi::PyBytes_Size(bytes) as usize,
        }
    };
    PENDING.with_borrow_mut(|items| items.push(pending));
    true
}

impl Deferred {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `buf` with every deferred string escaped into its place. Needs no
    /// interpreter: call it detached.
    pub fn splice(&self, buf: &[u8]) -> Result<Vec<u8>, LoneSurrogate> {
        let mut out = Vec::with_capacity(buf.len() + self.text_len() + self.text_len() / 8 + 16);
        self.splice_into(buf, &mut out)?;
        Ok(out)
    }

    /// How many code units (bytes, for transcoded text) were deferred: a
    /// lower bound of what they add to the buffer.
    pub fn text_len(&self) -> usize {
        self.items.iter().map(|p| p.len).sum()
    }

    /// Whether a deferred 2- or 4-byte string holds a lone surrogate, which
    /// `splice` would only find later. Reads code units only: call it
    /// detached if it may take long.
    pub fn has_lone_surrogate(&self) -> bool {
        self.items.iter().any(|p| {
            // SAFETY: as in `splice_into`: the code units of a str we hold.
            unsafe {
                match p.kind {
                    2 => std::slice::from_raw_parts(p.data as *const u16, p.len)
                        .iter()
                        .fold(false, |found, &u| found | (u & 0xF800 == 0xD800)),
                    4 => std::slice::from_raw_parts(p.data as *const u32, p.len)
                        .iter()
                        .fold(false, |found, &u| found | (u & 0xFFFF_F800 == 0xD800)),
                    _ => false,
                }
            }
        })
    }

    /// `splice`, appending to `out`.
    pub fn splice_into(&self, buf: &[u8], out: &mut Vec<u8>) -> Result<(), LoneSurrogate> {
        let mut copied = 0;
        for p in &self.items {
            out.extend_from_slice(&buf[copied..p.at]);
            copied = p.at;
            // SAFETY: `data`/`len`/`kind` describe the code units of a str we
            // hold a reference to; str contents never change once created.
            unsafe {
                match p.kind {
                    1 => {
                        let units = std::slice::from_raw_parts(p.data as *const u8, p.len);
                        if p.ascii {
                            write_str_utf8(out, units);
                        } else {
                            write_str_ucs1(out, units);
                        }
                    }
                    2 => write_str_ucs2(
                        out,
                        std::slice::from_raw_parts(p.data as *const u16, p.len),
                    )?,
                    _ => write_str_ucs4(
                        out,
                        std::slice::from_raw_parts(p.data as *const u32, p.len),
                    )?,
                }
            }
        }
        out.extend_from_slice(&buf[copied..]);
        Ok(())
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        for p in self.items.drain(..) {
            // SAFETY: a `Deferred` lives in attached code only (see the type's doc).
            unsafe { ffi::Py_DECREF(p.obj as *mut ffi::PyObject) };
        }
    }
}
