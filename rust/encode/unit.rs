//! One JSON string code unit at a time: the escape table, the scalar
//! encoding of a code unit, and the error a lone surrogate gives.
//!
//! The leaf the string encoders share: `string.rs` (the byte encoders and
//! the dispatch) and the vector kernels (`blocks.rs`, `wide_avx2.rs`,
//! `wide_avx512.rs`) all build on it, and it depends on none of them, so
//! the kernels need nothing from the module that dispatches to them.

/// A lone surrogate (U+D800..U+DFFF) in the input: the caller falls back to Python.
///
/// CPython stores astral characters as single UCS-4 code units, so any
/// surrogate code unit in a `str` is unpaired and has no UTF-8 encoding
/// (`json.dumps` would emit it, and encoding the line as UTF-8 then fails).
#[derive(Debug, PartialEq, Eq)]
pub struct LoneSurrogate;

/// Escape letter for each byte that json.dumps escapes, 0 for the rest;
/// `u` selects the `\u00XX` form.
pub(super) static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the escape sequence for an ASCII byte flagged in `ESCAPE`.
#[inline]
pub(super) fn write_escape(buf: &mut Vec<u8>, byte: u8) {
    match ESCAPE[usize::from(byte)] {
        b'u' => buf.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
        letter => buf.extend_from_slice(&[b'\\', letter]),
    }
}

/// A UCS-2 or UCS-4 code unit. The predicates compare in the unit's own
/// width and combine with bitwise `&`/`|` (no short-circuit branches), so
/// fixed-size folds over them vectorize.
pub(super) trait CodeUnit: Copy + PartialOrd + From<u16> {
    fn code(self) -> u32;

    /// Not copyable as one ASCII byte: non-ASCII, control, `"` or `\`.
    #[inline(always)]
    fn stops_ascii_run(self) -> bool {
        let [space, del, quote, backslash] = [0x20, 0x80, 0x22, 0x5c].map(Self::from);
        !(space..del).contains(&self) | (self == quote) | (self == backslash)
    }

    /// The unit itself if below 0x100, else 0xFF: narrowing by truncation
    /// would let U+0141 pass the ASCII test as `A`.
    #[inline(always)]
    fn saturate(self) -> u8 {
        self.code().min(0xff) as u8
    }
}

impl CodeUnit for u16 {
    #[inline(always)]
    fn code(self) -> u32 {
        self.into()
    }
}

impl CodeUnit for u32 {
    #[inline(always)]
    fn code(self) -> u32 {
        self
    }
}

/// Appends one code unit, escaped or as UTF-8.
#[inline(always)]
pub(super) fn write_unit<U: CodeUnit>(buf: &mut Vec<u8>, u: U) -> Result<(), LoneSurrogate> {
    let c = u.code();
    if c < 0x80 {
        if u.stops_ascii_run() {
            write_escape(buf, c as u8);
        } else {
            buf.push(c as u8);
        }
    } else if c < 0x800 {
        buf.extend_from_slice(&two_byte(c));
    } else if c < 0x1_0000 {
        if (0xd800..0xe000).contains(&c) {
            return Err(LoneSurrogate);
        }
        buf.extend_from_slice(&three_byte(c));
    } else {
        let ch = char::from_u32(c).ok_or(LoneSurrogate)?;
        buf.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
    }
    Ok(())
}

/// Truncating casts below keep exactly the payload bits each UTF-8 byte takes.
#[inline(always)]
fn two_byte(c: u32) -> [u8; 2] {
    [0xc0 | (c >> 6) as u8, 0x80 | (c & 0x3f) as u8]
}

#[inline(always)]
fn three_byte(c: u32) -> [u8; 3] {
    [
        0xe0 | (c >> 12) as u8,
        0x80 | ((c >> 6) & 0x3f) as u8,
        0x80 | (c & 0x3f) as u8,
    ]
}
