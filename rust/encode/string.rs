//! String encoding, byte-exact with CPython 3.11 `json.dumps(s, ensure_ascii=False)`.
//!
//! With `ensure_ascii=False` the pure-Python and C encoders escape only `"`,
//! `\` and code points below 0x20 (short forms for `\b \f \n \r \t`, lowercase
//! `\u00XX` otherwise); everything else, including DEL, U+2028/U+2029 and `/`,
//! is written raw.
//!
//! 1-byte text (ASCII, Latin-1) is scanned two u64 words (SWAR) at a time for
//! the next byte that is not plain ASCII, and the run before it copied. 2-
//! and 4-byte text goes to a [`WideEncoder`]: the AVX-512 or AVX2 kernel
//! (`wide_avx512.rs`, `wide_avx2.rs`) where the CPU has one, else the scalar
//! loop here.
//!
//! Entry points mirror CPython's string kinds so the caller can hand over the
//! internal buffer of a `str` without transcoding it first.

use std::sync::OnceLock;

pub use super::unit::LoneSurrogate;
use super::unit::{write_escape, write_unit, CodeUnit, ESCAPE};

/// Appends `"` + escaped + `"`. Input is valid UTF-8 (includes pure ASCII).
pub fn write_str_utf8(buf: &mut Vec<u8>, s: &[u8]) {
    write_bytes::<false>(buf, s);
}

/// Input is Latin-1 code units (CPython `PyUnicode_1BYTE_KIND`, may contain
/// 0x80..0xFF which become 2-byte UTF-8).
pub fn write_str_ucs1(buf: &mut Vec<u8>, s: &[u8]) {
    write_bytes::<true>(buf, s);
}

/// CPython `PyUnicode_2BYTE_KIND` code units.
///
/// # Errors
/// `LoneSurrogate` if any unit is in U+D800..U+DFFF. The buffer then holds a
/// partial encoding: the caller truncates it back to its length before the
/// call.
pub fn write_str_ucs2(buf: &mut Vec<u8>, s: &[u16]) -> Result<(), LoneSurrogate> {
    write_units(buf, s)
}

/// CPython `PyUnicode_4BYTE_KIND` code units.
///
/// # Errors
/// `LoneSurrogate` if any unit is in U+D800..U+DFFF, or above U+10FFFF
/// (which CPython never stores; rejected rather than emitting invalid
/// UTF-8). The buffer then holds a partial encoding: the caller truncates it
/// back to its length before the call.
pub fn write_str_ucs4(buf: &mut Vec<u8>, s: &[u32]) -> Result<(), LoneSurrogate> {
    write_units(buf, s)
}

/// One in the lowest bit of each byte lane.
const BYTE_ONES: u64 = 0x0101_0101_0101_0101;
const BYTE_HIGHS: u64 = BYTE_ONES << 7;

/// Flags (in the lane's top bit) bytes below 0x20, `"` and `\`, plus all
/// bytes from 0x80 up when `LATIN1`. Only the lowest flag is exact: a
/// borrow can spill a false flag into a higher lane, never into a lower
/// one, which is all the scan needs since it stops at the first flag.
#[inline(always)]
fn byte_flags<const LATIN1: bool>(word: u64) -> u64 {
    let quote = word ^ (BYTE_ONES * u64::from(b'"'));
    let backslash = word ^ (BYTE_ONES * u64::from(b'\\'));
    let control = word.wrapping_sub(BYTE_ONES * 0x20) & !word;
    let quote = quote.wrapping_sub(BYTE_ONES) & !quote;
    let backslash = backslash.wrapping_sub(BYTE_ONES) & !backslash;
    let high = if LATIN1 { word } else { 0 };
    (control | quote | backslash | high) & BYTE_HIGHS
}

#[inline(always)]
fn word_at(chunk: &[u8]) -> u64 {
    u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"))
}

/// Position of the first flagged byte of a 16-byte chunk, given the flags
/// of its two words, at least one of them nonzero.
#[inline(always)]
fn first_flagged(lo: u64, hi: u64) -> usize {
    if lo != 0 {
        (lo.trailing_zeros() / 8) as usize
    } else {
        8 + (hi.trailing_zeros() / 8) as usize
    }
}

/// Index of the first byte at or after `i` that cannot be copied verbatim,
/// or `s.len()`.
#[inline(always)]
fn scan_bytes<const LATIN1: bool>(s: &[u8], mut i: usize) -> usize {
    // Two words per step: the flag computations overlap and the loop branch
    // is paid half as often (about 2x faster than one word per step).
    while let Some(chunk) = s.get(i..i + 16) {
        let lo = byte_flags::<LATIN1>(word_at(&chunk[..8]));
        let hi = byte_flags::<LATIN1>(word_at(&chunk[8..]));
        if lo | hi != 0 {
            return i + first_flagged(lo, hi);
        }
        i += 16;
    }
    if let Some(chunk) = s.get(i..i + 8) {
        let flags = byte_flags::<LATIN1>(word_at(chunk));
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = s.get(i) {
        if ESCAPE[usize::from(b)] != 0 || (LATIN1 && b >= 0x80) {
            break;
        }
        i += 1;
    }
    i
}

/// `"` + `s` + `"` for `s` of at most 16 bytes, copied as two overlapping
/// words (or halves of them) rather than through a `memcpy` call, which
/// costs more than the copy at these sizes.
#[inline(always)]
fn write_short_quoted(buf: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    debug_assert!(n <= 16);
    buf.reserve(n + 2);
    let len = buf.len();
    let spare = &mut buf.spare_capacity_mut()[..n + 2];
    let put = |dst: &mut [std::mem::MaybeUninit<u8>], src: &[u8]| {
        for (d, &b) in dst.iter_mut().zip(src) {
            d.write(b);
        }
    };
    spare[0].write(b'"');
    if n >= 8 {
        let (head, tail) = (word_at(&s[..8]), word_at(&s[n - 8..]));
        put(&mut spare[1..9], &head.to_le_bytes());
        put(&mut spare[n - 7..n + 1], &tail.to_le_bytes());
    } else if n >= 4 {
        let head = u32::from_le_bytes(s[..4].try_into().expect("4 bytes"));
        let tail = u32::from_le_bytes(s[n - 4..].try_into().expect("4 bytes"));
        put(&mut spare[1..5], &head.to_le_bytes());
        put(&mut spare[n - 3..n + 1], &tail.to_le_bytes());
    } else {
        put(&mut spare[1..n + 1], s);
    }
    spare[n + 1].write(b'"');
    // SAFETY: the n + 2 bytes after `len` were all written above.
    unsafe { buf.set_len(len + n + 2) };
}

#[inline(always)]
fn write_bytes<const LATIN1: bool>(buf: &mut Vec<u8>, s: &[u8]) {
    // Dict keys and enum-like values are short and plain: skip the SWAR
    // setup for them (a third of the strings in a typical chunk record).
    if s.len() <= 16
        && s.iter()
            .all(|&b| ESCAPE[usize::from(b)] == 0 && (!LATIN1 || b < 0x80))
    {
        write_short_quoted(buf, s);
        return;
    }
    // Escapes are rare; one reservation covers the common case and
    // extend_from_slice grows amortized otherwise.
    buf.reserve(s.len() + 2);
    buf.push(b'"');
    let mut start = 0;
    loop {
        let stop = scan_bytes::<LATIN1>(s, start);
        buf.extend_from_slice(&s[start..stop]);
        let Some(&b) = s.get(stop) else { break };
        if LATIN1 && b >= 0x80 {
            buf.extend_from_slice(&[0xc0 | (b >> 6), 0x80 | (b & 0x3f)]);
        } else {
            write_escape(buf, b);
        }
        start = stop + 1;
    }
    buf.push(b'"');
}

/// Units per vectorized test; 16 beat 8 and 32 in measurements.
const UNIT_CHUNK: usize = 16;

/// Length of the prefix of `s` whose units all satisfy `pred`. Tests whole
/// chunks branch-free first; the scalar loop then covers at most one chunk.
#[inline(always)]
fn run_len<U: CodeUnit>(s: &[U], pred: impl Fn(U) -> bool) -> usize {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + UNIT_CHUNK) {
        let chunk: &[U; UNIT_CHUNK] = chunk.try_into().expect("chunk length");
        if !chunk.iter().fold(true, |all, &u| all & pred(u)) {
            break;
        }
        i += UNIT_CHUNK;
    }
    while s.get(i).is_some_and(|&u| pred(u)) {
        i += 1;
    }
    i
}

/// Copies the plain-ASCII prefix of `s` and returns its length. Narrows 16
/// units at a time (vectorized), then finds the stop on the narrowed bytes
/// with the same SWAR test as the byte encoders, so each chunk is read once.
#[inline(always)]
fn write_ascii_run<U: CodeUnit>(buf: &mut Vec<u8>, s: &[U]) -> usize {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 16) {
        let mut narrow = [0u8; 16];
        for (byte, &u) in narrow.iter_mut().zip(chunk) {
            *byte = u.saturate();
        }
        let lo = byte_flags::<true>(word_at(&narrow[..8]));
        let hi = byte_flags::<true>(word_at(&narrow[8..]));
        if lo | hi != 0 {
            let lane = first_flagged(lo, hi);
            buf.extend_from_slice(&narrow[..lane]);
            return i + lane;
        }
        buf.extend_from_slice(&narrow);
        i += 16;
    }
    let run = run_len(&s[i..], |u: U| !u.stops_ascii_run());
    buf.extend(s[i..i + run].iter().map(|&u| u.code() as u8));
    i + run
}

/// UCS-2/UCS-4 units the vectorized encoders can widen (x86_64 only).
#[cfg(target_arch = "x86_64")]
trait WideUnit: super::wide_avx2::Load8 + super::wide_avx512::Load16 {}
#[cfg(not(target_arch = "x86_64"))]
trait WideUnit: CodeUnit {}
impl WideUnit for u16 {}
impl WideUnit for u32 {}

/// The encoder 2- and 4-byte strings take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WideEncoder {
    Scalar,
    Avx2,
    Avx512,
}

/// Caps the choice of [`WideEncoder`]: `scalar` or `avx2` (to rule the
/// wider kernels out when chasing a bug, and to test the others on any
/// machine). Unset or anything else: the fastest the CPU runs.
pub const ENCODER_ENV: &str = "SESSIONWAL_STRING_ENCODER";

impl WideEncoder {
    /// Chosen once per process.
    #[inline]
    pub fn selected() -> Self {
        static SELECTED: OnceLock<WideEncoder> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let cap = match std::env::var(ENCODER_ENV).as_deref() {
                Ok("scalar") => Self::Scalar,
                Ok("avx2") => Self::Avx2,
                _ => Self::Avx512,
            };
            Self::fastest_supported().min(cap)
        })
    }

    /// The fastest encoder this CPU runs.
    pub fn fastest_supported() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if super::wide_avx512::cpu_supports() {
                return Self::Avx512;
            }
            if super::wide_avx2::cpu_supports() {
                return Self::Avx2;
            }
        }
        Self::Scalar
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// Appends `"` + escaped UTF-8 of `s` + `"` with this encoder.
    ///
    /// # Errors
    /// `LoneSurrogate` as [`write_str_ucs4`].
    ///
    /// # Safety
    /// The CPU runs this encoder: `self <= Self::fastest_supported()`, as
    /// for [`selected`](Self::selected). Checked once per process there
    /// rather than per string.
    #[inline(always)]
    unsafe fn write<U: WideUnit>(self, buf: &mut Vec<u8>, s: &[U]) -> Result<(), LoneSurrogate> {
        debug_assert!(self <= Self::fastest_supported());
        buf.reserve(s.len() + 2);
        buf.push(b'"');
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller vouches for the CPU.
            Self::Avx512 => unsafe { super::wide_avx512::write_units(buf, s)? },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Self::Avx2 if s.len() >= 8 => unsafe { super::wide_avx2::write_units(buf, s)? },
            _ => write_units_scalar(buf, s)?,
        }
        buf.push(b'"');
        Ok(())
    }
}

/// Whether 2- and 4-byte strings take a vectorized encoder. Those are about
/// twice as fast as CPython's own UTF-8 encoder on mixed-script text, so
/// callers stop routing long text through CPython.
#[inline]
pub fn wide_vectorized() -> bool {
    WideEncoder::selected() != WideEncoder::Scalar
}

#[inline(always)]
fn write_units<U: WideUnit>(buf: &mut Vec<u8>, s: &[U]) -> Result<(), LoneSurrogate> {
    // SAFETY: `selected` never picks more than the CPU runs.
    unsafe { WideEncoder::selected().write(buf, s) }
}

/// ASCII runs go through the 16-unit narrowing copy; everything else is
/// handled one character at a time: the encoder for 2- and 4-byte strings
/// on CPUs without AVX2 (and, with AVX2 only, for strings shorter than
/// eight units).
#[inline(always)]
pub(super) fn write_units_scalar<U: CodeUnit>(
    buf: &mut Vec<u8>,
    s: &[U],
) -> Result<(), LoneSurrogate> {
    let mut i = 0;
    while i < s.len() {
        i += write_ascii_run(buf, &s[i..]);
        while let Some(&u) = s.get(i) {
            if u.code() < 0x80 && !u.stops_ascii_run() {
                break;
            }
            write_unit(buf, u)?;
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "string_tests.rs"]
mod tests;
