//! UCS-2 and UCS-4 text to escaped UTF-8, eight code points per step with
//! AVX2 (x86_64, detected at run time).
//!
//! Agent text switches script every few characters (an accented word, a CJK
//! name, an emoji, a newline), so a loop that branches on "ASCII run or
//! not" mispredicts at every switch. Here each block of eight code points,
//! whatever its mix of 1- to 4-byte characters and two-character escapes
//! (`\"`, `\\`, `\n`, ...), is encoded branch-free: every lane builds its
//! UTF-8 bytes (or escape) in place, and one byte shuffle per four lanes,
//! looked up from the lanes' lengths, packs them. Only blocks holding a
//! `\u00XX` control or a surrogate go to the scalar encoder; the last
//! partial block is encoded a unit at a time.

use std::arch::x86_64::{
    __m128i, __m256i, _mm256_and_si256, _mm256_andnot_si256, _mm256_blendv_epi8,
    _mm256_castsi256_ps, _mm256_castsi256_si128, _mm256_cmpeq_epi32, _mm256_cmpgt_epi32,
    _mm256_cvtepu16_epi32, _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_movemask_ps,
    _mm256_or_si256, _mm256_set1_epi32, _mm256_set_m128i, _mm256_setzero_si256,
    _mm256_shuffle_epi8, _mm256_slli_epi32, _mm256_testz_si256, _mm256_xor_si256, _mm_loadu_si128,
    _mm_storeu_si128,
};

use super::blocks::write_blocks;
use super::unit::{write_unit, CodeUnit, LoneSurrogate};

/// Whether this CPU runs the kernel.
pub fn cpu_supports() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Byte shuffles that pack four lanes of UTF-8 (lane `i`'s bytes at
/// `4i..4i + len`, last byte first) into consecutive bytes, with the packed length. Indexed
/// by the lanes' `len - 1` split in two nibbles: bit `i` is bit 0 of lane
/// `i`'s value, bit `4 + i` its bit 1.
struct PackTable {
    shuffles: [[u8; 16]; 256],
    lengths: [u8; 256],
}

static PACK: PackTable = {
    let mut shuffles = [[0x80u8; 16]; 256];
    let mut lengths = [0u8; 256];
    let mut index = 0;
    while index < 256 {
        let mut out = 0;
        let mut lane = 0;
        while lane < 4 {
            let len = 1 + ((index >> lane) & 1) + 2 * ((index >> (lane + 4)) & 1);
            let mut byte = 0;
            while byte < len {
                shuffles[index][out] = (lane * 4 + len - 1 - byte) as u8;
                out += 1;
                byte += 1;
            }
            lane += 1;
        }
        lengths[index] = out as u8;
        index += 1;
    }
    PackTable { shuffles, lengths }
};

/// How a [`CodeUnit`] slice is widened to eight 32-bit lanes.
pub trait Load8: CodeUnit {
    /// Whether units can be astral (4-byte UTF-8) or out of range at all.
    const WIDE: bool;

    /// # Safety
    /// `at` points to eight readable units; AVX2 is available.
    unsafe fn load8(at: *const Self) -> __m256i;
}

impl Load8 for u16 {
    const WIDE: bool = false;

    #[inline(always)]
    unsafe fn load8(at: *const Self) -> __m256i {
        unsafe { _mm256_cvtepu16_epi32(_mm_loadu_si128(at.cast::<__m128i>())) }
    }
}

impl Load8 for u32 {
    const WIDE: bool = true;

    #[inline(always)]
    unsafe fn load8(at: *const Self) -> __m256i {
        unsafe { _mm256_loadu_si256(at.cast::<__m256i>()) }
    }
}

/// Appends the escaped UTF-8 of `s` (no quotes).
///
/// # Errors
/// `LoneSurrogate` as [`super::string::write_str_ucs4`]; the buffer then
/// holds a partial encoding.
///
/// # Safety
/// The CPU supports the kernel ([`cpu_supports`]).
#[target_feature(enable = "avx2")]
pub unsafe fn write_units<U: Load8>(buf: &mut Vec<u8>, s: &[U]) -> Result<(), LoneSurrogate> {
    let (whole, tail) = s.split_at(s.len() - s.len() % 8);
    // Two 16-byte stores, the second starting at most 16 bytes in.
    write_blocks(buf, whole, 8, 32, |block, out| {
        // SAFETY: `block` holds eight units; `write_blocks` gives `out`
        // room for the stores.
        unsafe { encode_block::<U>(U::load8(block.as_ptr()), out) }
    })?;
    for &u in tail {
        write_unit(buf, u)?;
    }
    Ok(())
}

/// Writes the block's escaped UTF-8 at `out` and returns its length, or
/// `None` (nothing meaningful written) when a lane needs the scalar path.
///
/// # Safety
/// `out` has 32 writable bytes; lanes hold code points
/// below 2^31 (any `str` code unit).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn encode_block<U: Load8>(c: __m256i, out: *mut u8) -> Option<usize> {
    let below_space = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x20), c);
    let at_least_80 = _mm256_cmpgt_epi32(c, _mm256_set1_epi32(0x7f));
    let quote_or_backslash = _mm256_or_si256(
        _mm256_cmpeq_epi32(c, _mm256_set1_epi32(0x22)),
        _mm256_cmpeq_epi32(c, _mm256_set1_epi32(0x5c)),
    );
    let escaped = _mm256_or_si256(below_space, quote_or_backslash);
    // `\b \t \n \f \r` by low nibble; a lane below 0x20 without a letter,
    // or from 0x10 on, needs the `\u00XX` form.
    // Bytes 1..3 of a lane below 0x20 are zero and look up entry 0 (zero).
    let letter = _mm256_shuffle_epi8(SHORT_ESCAPES, c);
    let short_control = _mm256_andnot_si256(
        _mm256_cmpeq_epi32(letter, _mm256_setzero_si256()),
        _mm256_cmpgt_epi32(_mm256_set1_epi32(0x10), c),
    );
    let long_escape = _mm256_andnot_si256(short_control, below_space);
    let surrogate = _mm256_cmpeq_epi32(
        _mm256_and_si256(c, _mm256_set1_epi32(0x7fff_f800)),
        _mm256_set1_epi32(0xd800),
    );
    let mut scalar_only = _mm256_or_si256(long_escape, surrogate);
    if U::WIDE {
        let beyond_unicode = _mm256_cmpgt_epi32(c, _mm256_set1_epi32(0x10_ffff));
        scalar_only = _mm256_or_si256(scalar_only, beyond_unicode);
    }
    if _mm256_testz_si256(scalar_only, ALL_ONES) == 0 {
        return None;
    }

    let at_least_800 = _mm256_cmpgt_epi32(c, _mm256_set1_epi32(0x7ff));
    // The code point's 6-bit UTF-8 fields, least significant in byte 0;
    // the pack shuffle reads a lane's bytes last to first, so they come
    // out in UTF-8 order. The markers then turn them into lead and
    // continuation bytes for the lane's length.
    let field =
        |shift_left: __m256i, mask: i32| _mm256_and_si256(shift_left, _mm256_set1_epi32(mask));
    let mut fields = _mm256_or_si256(
        _mm256_or_si256(field(c, 0x3f), field(_mm256_slli_epi32::<2>(c), 0x3f00)),
        field(_mm256_slli_epi32::<4>(c), 0x3f_0000),
    );
    let mut markers = _mm256_xor_si256(
        _mm256_and_si256(at_least_80, _mm256_set1_epi32(0xc080)),
        _mm256_and_si256(at_least_800, _mm256_set1_epi32(0xe0_4000)),
    );
    // len - 1 per lane (an escape counts as two bytes), as bit 0 and bit 1.
    let mut bit0 = _mm256_or_si256(_mm256_xor_si256(at_least_80, at_least_800), escaped);
    if U::WIDE {
        let at_least_10000 = _mm256_cmpgt_epi32(c, _mm256_set1_epi32(0xffff));
        fields = _mm256_or_si256(fields, field(_mm256_slli_epi32::<6>(c), 0x0700_0000));
        markers = _mm256_xor_si256(
            markers,
            _mm256_and_si256(at_least_10000, _mm256_set1_epi32(0xf060_0000_u32 as i32)),
        );
        bit0 = _mm256_xor_si256(bit0, at_least_10000);
    }
    // ASCII stays as is; `"` and `\` escape as themselves (the backslash
    // in byte 1 is read first).
    let escape_letter = _mm256_blendv_epi8(c, letter, below_space);
    let escape = _mm256_or_si256(escape_letter, _mm256_set1_epi32(0x5c00));
    let mut bytes = _mm256_blendv_epi8(c, _mm256_or_si256(fields, markers), at_least_80);
    bytes = _mm256_blendv_epi8(bytes, escape, escaped);
    let bit0 = _mm256_movemask_ps(_mm256_castsi256_ps(bit0)) as usize;
    let bit1 = _mm256_movemask_ps(_mm256_castsi256_ps(at_least_800)) as usize;
    let index_lo = (bit0 & 0xf) | ((bit1 & 0xf) << 4);
    let index_hi = (bit0 >> 4) | (bit1 & 0xf0);
    let len_lo = usize::from(PACK.lengths[index_lo]);
    // SAFETY: table rows are 16 bytes; `out` has room for two 16-byte
    // stores, the second starting at most 16 bytes in.
    unsafe {
        let shuffle = _mm256_set_m128i(
            _mm_loadu_si128(PACK.shuffles[index_hi].as_ptr().cast::<__m128i>()),
            _mm_loadu_si128(PACK.shuffles[index_lo].as_ptr().cast::<__m128i>()),
        );
        let packed = _mm256_shuffle_epi8(bytes, shuffle);
        _mm_storeu_si128(out.cast::<__m128i>(), _mm256_castsi256_si128(packed));
        _mm_storeu_si128(
            out.add(len_lo).cast::<__m128i>(),
            _mm256_extracti128_si256::<1>(packed),
        );
    }
    Some(len_lo + usize::from(PACK.lengths[index_hi]))
}

const ALL_ONES: __m256i = unsafe { std::mem::transmute::<[i32; 8], __m256i>([-1; 8]) };

/// Letters of the short control escapes by low nibble, in both halves.
const SHORT_ESCAPES: __m256i = unsafe {
    let half: [u8; 16] = [
        0, 0, 0, 0, 0, 0, 0, 0, b'b', b't', b'n', 0, b'f', b'r', 0, 0,
    ];
    let mut both = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        both[i] = half[i];
        both[i + 16] = half[i];
        i += 1;
    }
    std::mem::transmute::<[u8; 32], __m256i>(both)
};
