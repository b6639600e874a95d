use super::{exponent_at, is_canonical_exponent_form, repr_is_fixed, write_float, write_relaid};

/// `bits(hex) json.dumps(value)` per line, produced by CPython 3.11.7
/// (generator: boundaries, powers of 2 and 10 with neighbours, subnormals,
/// integers around 2**53, NaN payloads, seeded random bit patterns and
/// "human" decimals).
const PYTHON_CASES: &str = include_str!("float_cases.txt");

fn dumps(value: f64) -> String {
    let mut buf = Vec::new();
    write_float(&mut buf, value);
    String::from_utf8(buf).expect("float output is ASCII")
}

#[test]
fn matches_cpython_table() {
    let mut checked = 0;
    for line in PYTHON_CASES.lines().filter(|l| !l.starts_with('#')) {
        let (hex, expected) = line.split_once(' ').expect("malformed case line");
        let bits = u64::from_str_radix(hex, 16).expect("malformed bits");
        assert_eq!(dumps(f64::from_bits(bits)), expected, "bits {hex}");
        checked += 1;
    }
    assert!(checked > 2000, "table unexpectedly small: {checked}");
}

#[test]
fn layout_boundaries() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (f64::NAN, "NaN"),
        (-f64::NAN, "NaN"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
        (1e16, "1e+16"),
        (9999999999999998.0, "9999999999999998.0"),
        (1e15, "1000000000000000.0"),
        (1e-4, "0.0001"),
        (9.999999999999999e-05, "9.999999999999999e-05"),
        (1e-05, "1e-05"),
        (1.5e-07, "1.5e-07"),
        (1e100, "1e+100"),
        (5e-324, "5e-324"),
        (-1e-300, "-1e-300"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.0 / 3.0, "0.3333333333333333"),
        (123.0, "123.0"),
        (-42.5, "-42.5"),
        (9007199254740993.0, "9007199254740992.0"),
        (1.2345e-3, "0.0012345"),
        (1.2345e20, "1.2345e+20"),
    ];
    for &(value, expected) in cases {
        assert_eq!(dumps(value), expected, "value {value:?}");
    }
}

#[test]
fn appends_without_touching_existing_bytes() {
    let mut buf = b"[1, ".to_vec();
    write_float(&mut buf, 2.5);
    write_float(&mut buf, -1e-7);
    assert_eq!(buf, b"[1, 2.5-1e-07");
}

/// Independent reading of the repr rules, used on outputs for which no
/// CPython oracle is at hand.
fn check_layout(text: &str, value: f64) {
    let body = text.strip_prefix('-').unwrap_or(text);
    assert_eq!(text.starts_with('-'), value.is_sign_negative(), "{text}");
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let magnitude = value.abs();
    if let Some((mantissa, exp)) = body.split_once('e') {
        let (lead, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        assert!(lead.len() == 1 && lead != "0", "{text}");
        assert!(
            frac.is_empty() || (digits_only(frac) && !frac.ends_with('0')),
            "{text}"
        );
        assert!(mantissa.len() <= 18, "more than 17 digits: {text}");
        let (sign, exp_digits) = exp.split_at(1);
        assert!(sign == "+" || sign == "-", "{text}");
        assert!(digits_only(exp_digits) && exp_digits.len() >= 2, "{text}");
        assert!(
            exp_digits.len() == 2 || !exp_digits.starts_with('0'),
            "{text}"
        );
        let e: i32 = exp.parse().expect("exponent");
        assert!(!(-5 < e && e < 16), "should be fixed notation: {text}");
    } else {
        let (int, frac) = body.split_once('.').expect("fixed notation has a point");
        assert!(digits_only(int) && digits_only(frac), "{text}");
        assert!(int == "0" || !int.starts_with('0'), "{text}");
        assert!(frac == "0" || !frac.ends_with('0'), "{text}");
        let significant = format!("{int}{frac}");
        let significant = significant.trim_start_matches('0').trim_end_matches('0');
        assert!(significant.len() <= 17, "more than 17 digits: {text}");
        if magnitude != 0.0 {
            assert!(
                (1e-4..1e16).contains(&magnitude),
                "should be exponent: {text}"
            );
        }
    }
}

#[test]
fn random_bit_patterns_round_trip_with_repr_layout() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..400_000u32 {
        let raw = next();
        // Every other draw narrows the exponent to where layout switches
        // (about 1e-6..1e18) so the fixed/exponent boundary gets real coverage.
        let bits = if i % 2 == 0 {
            raw
        } else {
            (raw & 0x800F_FFFF_FFFF_FFFF) | ((1003 + (raw >> 52) % 81) << 52)
        };
        let value = f64::from_bits(bits);
        let text = dumps(value);
        if value.is_nan() {
            assert_eq!(text, "NaN");
            continue;
        }
        if value.is_infinite() {
            continue;
        }
        let back: f64 = text.parse().expect("output parses as f64");
        assert_eq!(back.to_bits(), bits, "{text} does not round-trip");
        check_layout(&text, value);
    }
}

fn relaid(text: &str, value: f64) -> String {
    let mut buf = Vec::new();
    write_relaid(&mut buf, text.as_bytes(), repr_is_fixed(value));
    String::from_utf8(buf).expect("float output is ASCII")
}

/// The same number as `repr` in notations zmij might use instead:
/// everything written out, scientific without padding, integer mantissa.
fn other_layouts(repr: &str) -> Vec<String> {
    let (sign, body) = repr.strip_prefix('-').map_or(("", repr), |b| ("-", b));
    let (mantissa, exp) = body.split_once('e').unwrap_or((body, "0"));
    let exp: i32 = exp.parse().expect("exponent");
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return vec![
            format!("{sign}0"),
            format!("{sign}0e0"),
            format!("{sign}0.000"),
        ];
    }
    // value = 0.digits × 10^decpt
    let decpt = exp + int.len() as i32 - (all.len() - all.trim_start_matches('0').len()) as i32;
    let n = digits.len() as i32;
    let written_out = if decpt <= 0 {
        format!(
            "{sign}0.{}{digits}",
            "0".repeat(decpt.unsigned_abs() as usize)
        )
    } else if decpt >= n {
        format!("{sign}{digits}{}", "0".repeat((decpt - n) as usize))
    } else {
        let (a, b) = digits.split_at(decpt as usize);
        format!("{sign}{a}.{b}")
    };
    let (lead, rest) = digits.split_at(1);
    vec![
        written_out,
        format!("{sign}{lead}.{rest}0e{}", decpt - 1),
        format!("{sign}{digits}E{}", decpt - n),
        format!(
            "{sign}{lead}{}{rest}e{}{:03}",
            if rest.is_empty() { "" } else { "." },
            if decpt > 0 { '+' } else { '-' },
            (decpt - 1).unsigned_abs()
        ),
    ]
}

/// The slow path must not depend on zmij's layout: given the same digits in
/// any notation it must produce repr's text.
#[test]
fn relayout_accepts_any_notation() {
    let hand_made: &[(&str, f64, &str)] = &[
        ("1e16", 1e16, "1e+16"),
        ("1.5E-7", 1.5e-7, "1.5e-07"),
        ("-0.00001234", -1.234e-5, "-1.234e-05"),
        ("12340000000000000000.0", 1.234e19, "1.234e+19"),
        ("1234e-2", 12.34, "12.34"),
        ("-0e0", -0.0, "-0.0"),
        ("1.0e15", 1e15, "1000000000000000.0"),
        ("000.000100", 1e-4, "0.0001"),
    ];
    for &(text, value, expected) in hand_made {
        assert_eq!(relaid(text, value), expected, "{text}");
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let curated = [
        0.0,
        1e16,
        1e-5,
        2.5e-5,
        1e300,
        f64::MAX,
        5e-324,
        1e22,
        0.1,
        123.456,
    ];
    let random = (0..20_000).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        f64::from_bits(state)
    });
    for value in curated.into_iter().chain(random).filter(|v| v.is_finite()) {
        let expected = dumps(value);
        for text in other_layouts(&expected) {
            assert_eq!(relaid(&text, value), expected, "{text}");
        }
    }
}

#[test]
fn exponent_fast_path_only_takes_repr_shaped_mantissas() {
    let canonical = |text: &str| {
        let e = exponent_at(text.as_bytes()).expect("has exponent");
        is_canonical_exponent_form(text.as_bytes(), e)
    };
    for text in ["5e-324", "-1.5e-7", "1.7976931348623157e+308", "1e+16"] {
        assert!(canonical(text), "{text}");
    }
    for text in ["12.5e+7", "1.50e+7", "0.5e+7", "1.5e7", "1.5E+7", "-15e-7"] {
        assert!(!canonical(text), "{text}");
    }
    assert_eq!(exponent_at(b"1234.5678"), None);
}
