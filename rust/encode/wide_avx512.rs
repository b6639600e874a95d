//! UCS-2 and UCS-4 text to escaped UTF-8, sixteen code points per step with
//! AVX-512 (F, BW, VL and VBMI2; x86_64, detected at run time).
//!
//! The same branch-free scheme as the AVX2 kernel ([`super::wide_avx2`]):
//! every lane builds its UTF-8 bytes or two-character escape in place. Mask
//! registers replace the compare-and-blend chains, and instead of a shuffle
//! looked up per four lanes, one byte compress packs the valid bytes of all
//! sixteen lanes. The last partial block is loaded masked and padded with
//! spaces, so short strings and tails take the same path.

use std::arch::x86_64::{
    __m256i, __m512i, __mmask16, __mmask64, _mm256_loadu_si256, _mm256_mask_loadu_epi16,
    _mm256_set1_epi16, _mm512_and_si512, _mm512_cmpeq_epi32_mask, _mm512_cmpgt_epu32_mask,
    _mm512_cmplt_epu32_mask, _mm512_cvtepu16_epi32, _mm512_loadu_si512, _mm512_mask_loadu_epi32,
    _mm512_mask_mov_epi32, _mm512_maskz_compress_epi8, _mm512_maskz_mov_epi32, _mm512_movepi8_mask,
    _mm512_or_si512, _mm512_set1_epi32, _mm512_shuffle_epi8, _mm512_slli_epi32,
    _mm512_storeu_si512, _mm512_ternarylogic_epi32, _mm512_test_epi32_mask,
};

use super::blocks::write_blocks;
use super::unit::{CodeUnit, LoneSurrogate};

/// Whether this CPU has every extension the kernel uses.
pub fn cpu_supports() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512vbmi2")
        && std::is_x86_feature_detected!("popcnt")
}

const LANES: usize = 16;

/// How a [`CodeUnit`] slice is widened to sixteen 32-bit lanes.
pub trait Load16: CodeUnit {
    /// Whether units can be astral (4-byte UTF-8) or out of range at all.
    const WIDE: bool;

    /// # Safety
    /// Sixteen units are readable at `at`; the CPU supports the kernel.
    unsafe fn load16(at: *const Self) -> __m512i;

    /// The first `len` (< 16) units at `at`, then spaces; reads nothing
    /// past them.
    ///
    /// # Safety
    /// `len` units are readable at `at`; the CPU supports the kernel.
    unsafe fn load_padded(at: *const Self, len: usize) -> __m512i;
}

impl Load16 for u16 {
    const WIDE: bool = false;

    #[inline(always)]
    unsafe fn load16(at: *const Self) -> __m512i {
        unsafe { _mm512_cvtepu16_epi32(_mm256_loadu_si256(at.cast::<__m256i>())) }
    }

    #[inline(always)]
    unsafe fn load_padded(at: *const Self, len: usize) -> __m512i {
        let keep = ((1u32 << len) - 1) as __mmask16;
        let spaces = _mm256_set1_epi16(0x20);
        unsafe { _mm512_cvtepu16_epi32(_mm256_mask_loadu_epi16(spaces, keep, at.cast::<i16>())) }
    }
}

impl Load16 for u32 {
    const WIDE: bool = true;

    #[inline(always)]
    unsafe fn load16(at: *const Self) -> __m512i {
        unsafe { _mm512_loadu_si512(at.cast::<__m512i>()) }
    }

    #[inline(always)]
    unsafe fn load_padded(at: *const Self, len: usize) -> __m512i {
        let keep = ((1u32 << len) - 1) as __mmask16;
        let spaces = _mm512_set1_epi32(0x20);
        unsafe { _mm512_mask_loadu_epi32(spaces, keep, at.cast::<i32>()) }
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
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi2,popcnt")]
pub unsafe fn write_units<U: Load16>(buf: &mut Vec<u8>, s: &[U]) -> Result<(), LoneSurrogate> {
    // One 64-byte store per block.
    write_blocks(buf, s, LANES, 64, |block, out| {
        let padding = LANES - block.len();
        // SAFETY: the loads read only `block`; `write_blocks` gives `out`
        // room for the store.
        let written = unsafe {
            let lanes = if padding == 0 {
                U::load16(block.as_ptr())
            } else {
                U::load_padded(block.as_ptr(), block.len())
            };
            encode_block::<U>(lanes, out)
        };
        // The padding spaces are the block's last bytes.
        written.map(|n| n - padding)
    })
}

/// Writes the block's escaped UTF-8 at `out` and returns its length, or
/// `None` (nothing meaningful written) when a lane needs the scalar path.
///
/// # Safety
/// `out` has 64 writable bytes; lanes hold `str` code units.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi2,popcnt")]
#[inline]
unsafe fn encode_block<U: Load16>(c: __m512i, out: *mut u8) -> Option<usize> {
    let splat = _mm512_set1_epi32;
    let below_space = _mm512_cmplt_epu32_mask(c, splat(0x20));
    let escaped = below_space
        | _mm512_cmpeq_epi32_mask(c, splat(0x22))
        | _mm512_cmpeq_epi32_mask(c, splat(0x5c));
    // `\b \t \n \f \r` by low nibble (bytes 1..3 of a lane below 0x20 are
    // zero and look up entry 0, also zero); the other controls need the
    // `\u00XX` form, which is left to the scalar encoder.
    let letter = _mm512_shuffle_epi8(SHORT_ESCAPES, c);
    let short_control =
        _mm512_test_epi32_mask(letter, letter) & _mm512_cmplt_epu32_mask(c, splat(0x10));
    let surrogate = _mm512_cmpeq_epi32_mask(_mm512_and_si512(c, splat(0x7fff_f800)), splat(0xd800));
    let mut scalar_only = (below_space & !short_control) | surrogate;
    if U::WIDE {
        scalar_only |= _mm512_cmpgt_epu32_mask(c, splat(0x10_ffff));
    }
    if scalar_only != 0 {
        return None;
    }

    let at_least_80 = _mm512_cmpgt_epu32_mask(c, splat(0x7f));
    let at_least_800 = _mm512_cmpgt_epu32_mask(c, splat(0x7ff));
    // The 6-bit UTF-8 fields, least significant in byte 0, and the lead
    // and continuation markers for the lane's length. (A & B) | C:
    const OR_MASKED: i32 = 0xea;
    let mut fields = _mm512_and_si512(c, splat(0x3f));
    fields =
        _mm512_ternarylogic_epi32::<OR_MASKED>(_mm512_slli_epi32::<2>(c), splat(0x3f00), fields);
    fields =
        _mm512_ternarylogic_epi32::<OR_MASKED>(_mm512_slli_epi32::<4>(c), splat(0x3f_0000), fields);
    let mut markers = _mm512_maskz_mov_epi32(at_least_80, splat(0xc080));
    markers = _mm512_mask_mov_epi32(markers, at_least_800, splat(0xe0_8080));
    // Valid bytes per lane, once byte-swapped below: the top `len` ones.
    let mut valid = splat(0xff00_0000_u32 as i32);
    valid = _mm512_mask_mov_epi32(valid, at_least_80 | escaped, splat(0xffff_0000_u32 as i32));
    valid = _mm512_mask_mov_epi32(valid, at_least_800, splat(0xffff_ff00_u32 as i32));
    if U::WIDE {
        let at_least_10000 = _mm512_cmpgt_epu32_mask(c, splat(0xffff));
        fields = _mm512_ternarylogic_epi32::<OR_MASKED>(
            _mm512_slli_epi32::<6>(c),
            splat(0x0700_0000),
            fields,
        );
        markers = _mm512_mask_mov_epi32(markers, at_least_10000, splat(0xf080_8080_u32 as i32));
        valid = _mm512_mask_mov_epi32(valid, at_least_10000, splat(-1));
    }
    // ASCII stays as is; `"` and `\` escape as themselves, the backslash in
    // byte 1 so that it comes first after the swap.
    let mut bytes = _mm512_mask_mov_epi32(c, at_least_80, _mm512_or_si512(fields, markers));
    let escape = _mm512_or_si512(_mm512_mask_mov_epi32(c, below_space, letter), splat(0x5c00));
    bytes = _mm512_mask_mov_epi32(bytes, escaped, escape);
    let swapped = _mm512_shuffle_epi8(bytes, BYTE_SWAP);
    let keep: __mmask64 = _mm512_movepi8_mask(valid);
    let packed = _mm512_maskz_compress_epi8(keep, swapped);
    // SAFETY: `out` has room for the 64-byte store.
    unsafe { _mm512_storeu_si512(out.cast::<__m512i>(), packed) };
    Some(keep.count_ones() as usize)
}

/// `bytes` repeated in each 16-byte lane of a 512-bit vector.
const fn per_lane(bytes: [u8; 16]) -> __m512i {
    let mut all = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        all[i] = bytes[i % 16];
        i += 1;
    }
    // SAFETY: any 64 bytes are a valid __m512i.
    unsafe { std::mem::transmute::<[u8; 64], __m512i>(all) }
}

/// Letters of the short control escapes by low nibble.
const SHORT_ESCAPES: __m512i = per_lane([
    0, 0, 0, 0, 0, 0, 0, 0, b'b', b't', b'n', 0, b'f', b'r', 0, 0,
]);

/// Reverses the bytes of each 32-bit lane.
const BYTE_SWAP: __m512i = per_lane([3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12]);
