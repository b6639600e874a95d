//! The output loop the vector string kernels share: reserve, run the kernel
//! block by block, fall back to the scalar encoder for the blocks it gives
//! back.

use super::unit::{write_unit, CodeUnit, LoneSurrogate};

/// Units reserved for at a time: bounds the over-reservation on long text.
const SEGMENT_UNITS: usize = 512;

/// Most bytes a kernel keeps per code unit (4-byte UTF-8, or a
/// two-character escape); the scalar fallback reserves for itself.
const MAX_KEPT_PER_UNIT: usize = 4;

/// Appends the escaped UTF-8 of `s` (no quotes), `lanes` units at a time.
///
/// `kernel(block, out)` encodes `block` (`lanes` units; fewer only for the
/// last one) at `out` and returns how many bytes to keep, at most four per
/// unit, or `None` to leave the block to the scalar encoder. It may store up
/// to `reach` bytes at `out`, whatever it keeps.
///
/// # Errors
/// `LoneSurrogate` as [`super::string::write_str_ucs4`]; the buffer then
/// holds a partial encoding.
#[inline(always)]
pub(super) fn write_blocks<U: CodeUnit>(
    buf: &mut Vec<u8>,
    s: &[U],
    lanes: usize,
    reach: usize,
    mut kernel: impl FnMut(&[U], *mut u8) -> Option<usize>,
) -> Result<(), LoneSurrogate> {
    // Room for the rest of the segment at the kernel's worst case, so the
    // loop keeps its output position in a register: going through `buf`
    // after each store would reload it (a `u8` store may alias the Vec's
    // own fields) and serialize the blocks.
    let room = |units_left: usize| units_left * MAX_KEPT_PER_UNIT + reach;
    for segment in s.chunks(SEGMENT_UNITS) {
        buf.reserve(room(segment.len()));
        let mut out = buf.as_mut_ptr();
        let mut len = buf.len();
        let mut done = 0;
        for block in segment.chunks(lanes) {
            done += block.len();
            // In bounds: `len` is at most the capacity.
            match kernel(block, out.wrapping_add(len)) {
                Some(kept) => len += kept,
                None => {
                    // SAFETY: the first `len` bytes are initialized.
                    unsafe { buf.set_len(len) };
                    for &u in block {
                        write_unit(buf, u)?;
                    }
                    buf.reserve(room(segment.len() - done));
                    out = buf.as_mut_ptr();
                    len = buf.len();
                }
            }
        }
        // SAFETY: `len` bytes are initialized: the kernel wrote every byte
        // it kept, the scalar encoder pushed the rest.
        unsafe { buf.set_len(len) };
    }
    Ok(())
}
