//! Float encoding, byte-exact with CPython 3.11 `json.dumps` (`float.__repr__`).
//!
//! zmij supplies the shortest round-trip digits, which are the digits
//! CPython's `repr` picks too (both choose the shortest string that round-trips
//! and, among those, the one closest to the exact value). Only the layout
//! differs: zmij switches to exponent form below 1e-5 rather than 1e-4 and
//! writes one-digit exponents ("1.5e-7"). Where repr uses fixed notation,
//! zmij's text is repr's text and is copied as is; elsewhere it is
//! decomposed into digits and decimal point position and laid out the way
//! `PyOS_double_to_string` ('r' mode) does. Only zmij's notation style is
//! relied on (pinned by the tests); its thresholds are not, so a later zmij
//! 1.0.x that moves them still yields repr's text.

/// Shortest round-trip digits never exceed 17. Longer digit strings (a fully
/// written-out 1e300, say) only continue with zeros, which are dropped.
const MAX_DIGITS: usize = 20;

/// Appends what json.dumps writes for a float: Python's float.__repr__ layout,
/// or NaN / Infinity / -Infinity.
pub fn write_float(buf: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        write_non_finite(buf, value);
        return;
    }
    let mut zbuf = zmij::Buffer::new();
    let text = zbuf.format_finite(value).as_bytes();
    let fixed = repr_is_fixed(value);
    match exponent_at(text) {
        None if fixed => buf.extend_from_slice(text),
        Some(e) if !fixed && is_canonical_exponent_form(text, e) => {
            // Same mantissa; repr only pads the exponent to two digits.
            buf.extend_from_slice(&text[..e + 2]);
            if text.len() - e == 3 {
                buf.push(b'0');
            }
            buf.extend_from_slice(&text[e + 2..]);
        }
        _ => write_relaid(buf, text, fixed),
    }
}

/// Whether repr uses fixed notation: iff decpt > -4 and decpt <= 16, with
/// value = 0.d1..dn × 10^decpt. Comparing the value is equivalent: 1e-4 and
/// 1e16 print as "0.0001" and "1e+16", and no other double's shortest
/// digits can round across them since those strings belong to the boundary
/// doubles. It also spares a scan of the text.
#[inline]
fn repr_is_fixed(value: f64) -> bool {
    let magnitude = value.abs();
    magnitude == 0.0 || (1e-4..1e16).contains(&magnitude)
}

/// Lays out any finite float text (sign, digits with optional point,
/// optional exponent) the way repr does. Handles what the fast paths don't:
/// 1e-5 <= |value| < 1e-4, which zmij writes as "0.0000ddd", and any layout
/// a future zmij might choose.
#[inline(never)]
fn write_relaid(buf: &mut Vec<u8>, text: &[u8], fixed: bool) {
    let (digits, n, decpt) = decompose(text);
    if text.first() == Some(&b'-') {
        buf.push(b'-');
    }
    if n == 0 {
        buf.extend_from_slice(b"0.0");
    } else if fixed {
        write_fixed(buf, &digits[..n], decpt);
    } else {
        write_exponent(buf, &digits[..n], decpt - 1);
    }
}

/// Index of the exponent marker. Any exponent suffix of an f64 ("e-5" ..
/// "e+308") starts within the last five bytes, so only those are examined.
#[inline]
fn exponent_at(text: &[u8]) -> Option<usize> {
    let from = text.len().saturating_sub(5);
    let at = text[from..].iter().position(|&b| b == b'e' || b == b'E')?;
    Some(from + at)
}

/// `[-]d[.ddd]e±X..`: one nonzero leading digit, no trailing zero, signed
/// exponent, exactly repr's shape apart from exponent padding.
#[inline]
fn is_canonical_exponent_form(text: &[u8], e: usize) -> bool {
    let mantissa = &text[usize::from(text[0] == b'-')..e];
    let lead_ok = matches!(mantissa.first(), Some(b'1'..=b'9'));
    let frac_ok =
        mantissa.len() == 1 || (mantissa[1] == b'.' && mantissa[mantissa.len() - 1] != b'0');
    let sign_ok = matches!(text.get(e + 1), Some(b'+' | b'-'));
    lead_ok && frac_ok && sign_ok && text[e] == b'e'
}

#[cold]
fn write_non_finite(buf: &mut Vec<u8>, value: f64) {
    // json.dumps ignores the NaN sign bit: float('-nan') also dumps as NaN.
    let text: &[u8] = if value.is_nan() {
        b"NaN"
    } else if value > 0.0 {
        b"Infinity"
    } else {
        b"-Infinity"
    };
    buf.extend_from_slice(text);
}

/// Splits zmij output such as `-1.25e-7`, `0.000001` or `1250.0` into
/// significant digits (no leading/trailing zeros) and `decpt`, so that
/// |value| = 0.d1..dn × 10^decpt. Returns `n == 0` for zero.
#[inline]
fn decompose(text: &[u8]) -> ([u8; MAX_DIGITS], usize, i32) {
    let mut digits = [0u8; MAX_DIGITS];
    let mut n = 0usize;
    // Digits seen before the '.', minus leading zeros: the decpt before the
    // exponent is applied.
    let mut int_len = 0i32;
    let mut seen_point = false;
    let mut i = usize::from(text.first() == Some(&b'-'));
    while i < text.len() {
        let c = text[i];
        match c {
            b'0'..=b'9' => {
                if n > 0 || c != b'0' {
                    if n < MAX_DIGITS {
                        digits[n] = c;
                        n += 1;
                    }
                    int_len += i32::from(!seen_point);
                } else if seen_point {
                    // Zero between the point and the first significant digit.
                    int_len -= 1;
                }
            }
            b'.' => seen_point = true,
            b'e' | b'E' => break,
            _ => {}
        }
        i += 1;
    }
    while n > 0 && digits[n - 1] == b'0' {
        n -= 1;
    }
    let exp = if i < text.len() {
        parse_exponent(&text[i + 1..])
    } else {
        0
    };
    (digits, n, int_len + exp)
}

#[inline]
fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, magnitude) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let value = magnitude
        .iter()
        .fold(0i32, |acc, &d| acc * 10 + i32::from(d.wrapping_sub(b'0')));
    if negative {
        -value
    } else {
        value
    }
}

#[inline]
fn write_fixed(buf: &mut Vec<u8>, digits: &[u8], decpt: i32) {
    let n = digits.len();
    if decpt <= 0 {
        // 0.000ddd: at most three zeros in repr's fixed range.
        buf.extend_from_slice(b"0.");
        buf.extend_from_slice(&b"000"[..decpt.unsigned_abs() as usize]);
        buf.extend_from_slice(digits);
    } else {
        let point = decpt as usize;
        if point < n {
            buf.extend_from_slice(&digits[..point]);
            buf.push(b'.');
            buf.extend_from_slice(&digits[point..]);
        } else {
            // Integral value: at most 15 padding zeros in repr's fixed range.
            buf.extend_from_slice(digits);
            buf.extend_from_slice(&b"0000000000000000"[..point - n]);
            buf.extend_from_slice(b".0");
        }
    }
}

#[inline]
fn write_exponent(buf: &mut Vec<u8>, digits: &[u8], exp: i32) {
    buf.push(digits[0]);
    if digits.len() > 1 {
        buf.push(b'.');
        buf.extend_from_slice(&digits[1..]);
    }
    let magnitude = exp.unsigned_abs();
    buf.extend_from_slice(if exp < 0 { b"e-" } else { b"e+" });
    // repr pads the exponent to two digits ("1e-05"); three suffice for f64.
    if magnitude >= 100 {
        buf.push(b'0' + (magnitude / 100) as u8);
    }
    buf.extend_from_slice(&[
        b'0' + (magnitude / 10 % 10) as u8,
        b'0' + (magnitude % 10) as u8,
    ]);
}

#[cfg(test)]
#[path = "float_tests.rs"]
mod tests;
