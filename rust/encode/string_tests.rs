use super::{write_str_ucs1, write_str_utf8, LoneSurrogate, WideEncoder, WideUnit};

/// Runs every 2/4-byte encoder this CPU supports, and the dispatching entry
/// point, on the same units: all must agree (bytes, or the error). Appends
/// the common result, so every test below covers every encoder.
fn write_wide<U: WideUnit>(
    buf: &mut Vec<u8>,
    units: &[U],
    dispatch: fn(&mut Vec<u8>, &[U]) -> Result<(), LoneSurrogate>,
) -> Result<(), LoneSurrogate> {
    let mut expected = Vec::new();
    let result = dispatch(&mut expected, units).map(|()| expected);
    for encoder in [WideEncoder::Scalar, WideEncoder::Avx2, WideEncoder::Avx512] {
        if encoder > WideEncoder::fastest_supported() {
            continue;
        }
        let mut out = Vec::new();
        // SAFETY: encoders beyond what the CPU runs were skipped above.
        let got = unsafe { encoder.write(&mut out, units) }.map(|()| out);
        assert_eq!(got, result, "{encoder:?} disagrees with the dispatcher");
    }
    buf.extend_from_slice(&result?);
    Ok(())
}

fn write_str_ucs2(buf: &mut Vec<u8>, units: &[u16]) -> Result<(), LoneSurrogate> {
    write_wide(buf, units, super::write_str_ucs2)
}

fn write_str_ucs4(buf: &mut Vec<u8>, units: &[u32]) -> Result<(), LoneSurrogate> {
    write_wide(buf, units, super::write_str_ucs4)
}

/// Char-at-a-time restatement of json.dumps(ensure_ascii=False) escaping.
fn reference(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Encodes `text` through every entry point that can represent it and
/// checks they agree; returns the common output.
fn encode_all(text: &str) -> String {
    let mut utf8 = Vec::new();
    write_str_utf8(&mut utf8, text.as_bytes());
    let codes: Vec<u32> = text.chars().map(u32::from).collect();
    if codes.iter().all(|&c| c <= 0xff) {
        let units: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
        let mut out = Vec::new();
        write_str_ucs1(&mut out, &units);
        assert_eq!(out, utf8, "ucs1 differs for {text:?}");
    }
    if codes.iter().all(|&c| c <= 0xffff) {
        let units: Vec<u16> = codes.iter().map(|&c| c as u16).collect();
        let mut out = Vec::new();
        assert_eq!(write_str_ucs2(&mut out, &units), Ok(()));
        assert_eq!(out, utf8, "ucs2 differs for {text:?}");
    }
    let mut out = Vec::new();
    assert_eq!(write_str_ucs4(&mut out, &codes), Ok(()));
    assert_eq!(out, utf8, "ucs4 differs for {text:?}");
    String::from_utf8(utf8).expect("output is valid UTF-8")
}

/// Code points 0..0x3000 plus every 97th above, surrogates excluded: the
/// set hashed by the CPython oracle below.
fn sampled_code_points() -> impl Iterator<Item = char> {
    (0..0x3000u32)
        .chain((0x3000..0x11_0000).step_by(97))
        .filter_map(char::from_u32)
}

#[test]
fn every_code_point_matches_reference() {
    for c in sampled_code_points().chain(['\u{ffff}', '\u{10000}', '\u{10ffff}', '😀']) {
        let text = c.to_string();
        assert_eq!(encode_all(&text), reference(&text), "U+{:04X}", c as u32);
    }
}

#[test]
fn code_points_match_cpython_hash() {
    // FNV-1a 64 of "\n".join(json.dumps(chr(c), ensure_ascii=False)) over
    // sampled_code_points(), computed by CPython 3.11.7 (23627 code points,
    // 150538 bytes).
    const CPYTHON_FNV1A: u64 = 0x21d1_b47c_fb1b_57cd;
    let mut joined = Vec::new();
    let mut count = 0;
    for c in sampled_code_points() {
        if count > 0 {
            joined.push(b'\n');
        }
        let mut utf8 = [0u8; 4];
        write_str_utf8(&mut joined, c.encode_utf8(&mut utf8).as_bytes());
        count += 1;
    }
    assert_eq!((count, joined.len()), (23627, 150_538));
    let hash = joined.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    assert_eq!(hash, CPYTHON_FNV1A);
}

#[test]
fn matches_cpython_samples() {
    let cases = [
        (
            "a\"b\\c\n\t\x00\x1f\x7f/é中😀\u{2028}\u{2029}\x08\x0c\r\x0b\x1b\u{85}",
            "\"a\\\"b\\\\c\\n\\t\\u0000\\u001f\x7f/é中😀\u{2028}\u{2029}\\b\\f\\r\\u000b\\u001b\u{85}\"",
        ),
        ("", "\"\""),
        ("plain ascii", "\"plain ascii\""),
        ("café ÿ\u{a0}", "\"café ÿ\u{a0}\""),
    ];
    for (text, expected) in cases {
        assert_eq!(encode_all(text), expected);
    }
}

#[test]
fn lone_surrogates_rejected() {
    for s in 0xd800..=0xdfffu16 {
        // Alone, after a full ASCII word (SWAR path), and inside a CJK run.
        let mut after_ascii = vec![u16::from(b'a'); 9];
        after_ascii.push(s);
        for units in [vec![s], after_ascii, vec![0x4e2d, s, u16::from(b'x')]] {
            let mut buf = Vec::new();
            assert_eq!(write_str_ucs2(&mut buf, &units), Err(LoneSurrogate));
            let wide: Vec<u32> = units.iter().map(|&u| u.into()).collect();
            assert_eq!(write_str_ucs4(&mut buf, &wide), Err(LoneSurrogate));
        }
    }
    // A "pair" is still two lone surrogates in CPython's representation.
    let mut buf = Vec::new();
    assert_eq!(
        write_str_ucs2(&mut buf, &[0xd83d, 0xde00]),
        Err(LoneSurrogate)
    );
    assert_eq!(
        write_str_ucs4(&mut buf, &[0x61, 0x11_0000]),
        Err(LoneSurrogate)
    );
}

#[test]
fn appends_to_existing_buffer() {
    let mut buf = b"{\"k\":".to_vec();
    write_str_utf8(&mut buf, b"v\n");
    assert_eq!(buf, b"{\"k\":\"v\\n\"");
}

/// Characters that stop or straddle the word-at-a-time scan.
const SPECIALS: &[char] = &[
    '"',
    '\\',
    '\n',
    '\0',
    '\x1f',
    ' ',
    '!',
    '#',
    '[',
    ']',
    '\x7f',
    '\u{80}',
    'é',
    'ÿ',
    '\u{7ff}',
    '\u{800}',
    '中',
    '\u{2028}',
    '\u{ffff}',
    '😀',
    '\u{10ffff}',
];

#[test]
fn escapes_at_every_alignment() {
    // Past 16 so both words of the two-word step and the tails are hit.
    for offset in 0..=33 {
        for tail in [0, 1, 7, 8, 9, 23] {
            for &special in SPECIALS {
                let text = format!("{}{special}{}", "a".repeat(offset), "b".repeat(tail));
                assert_eq!(encode_all(&text), reference(&text), "{text:?}");
                // Two stops in one word, the second right after the first.
                let text = format!("{}{special}\"{}", "a".repeat(offset), "z".repeat(tail));
                assert_eq!(encode_all(&text), reference(&text), "{text:?}");
            }
        }
    }
}

/// A deterministic pseudo-random sequence (xorshift64).
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[test]
fn random_mixtures_match_reference() {
    let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
    let mut text = String::new();
    for _ in 0..20_000 {
        text.clear();
        let len = next() % 48;
        for _ in 0..len {
            let r = next();
            // Mostly ASCII letters, as in real records, so runs form.
            let c = if r.is_multiple_of(3) {
                SPECIALS[(r >> 8) as usize % SPECIALS.len()]
            } else {
                char::from(b'a' + (r >> 8) as u8 % 26)
            };
            text.push(c);
        }
        assert_eq!(encode_all(&text), reference(&text), "{text:?}");
    }
}

#[test]
fn long_runs_of_each_utf8_width() {
    // Lengths around the 16-unit test chunks and the 32/48-character
    // encode blocks.
    for c in ['é', '\u{7ff}', '中', '\u{ffff}', '😀', 'x'] {
        for len in [1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 100, 200] {
            let run = c.to_string().repeat(len);
            let text = format!("a{run}\"{run}\u{1}{run}");
            assert_eq!(encode_all(&text), reference(&text), "{c:?} x {len}");
        }
    }
}

#[test]
fn long_text_round_trips() {
    let text = "Ünïcödé text — with \"quotes\", tabs\t, 中文, emoji 😀 and \\paths\\\n".repeat(200);
    assert_eq!(encode_all(&text), reference(&text));
}

#[test]
fn every_encoder_agrees_on_every_kind_of_unit() {
    // Every lane of a block sees every class: plain ASCII, each escape form
    // (short and `\u00XX`, including 0x10..0x1f, whose low nibble aliases
    // a short escape), 2-, 3- and 4-byte UTF-8 at their boundaries.
    let pool: Vec<u32> = (0..0x20)
        .chain([0x20, 0x22, 0x2f, 0x5c, 0x7e, 0x7f, 0x80, 0xe9, 0x7ff, 0x800])
        .chain([
            0x4e2d, 0xd7ff, 0xe000, 0xffff, 0x1_0000, 0x1_f600, 0x10_ffff,
        ])
        .collect();
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
    for _ in 0..20_000 {
        let len = (next() % 70) as usize;
        let codes: Vec<u32> = (0..len)
            .map(|_| {
                let r = next();
                if r.is_multiple_of(4) {
                    u32::from(b'a') + (r >> 8) as u32 % 26
                } else {
                    pool[(r >> 8) as usize % pool.len()]
                }
            })
            .collect();
        let text: String = codes.iter().map(|&c| char::from_u32(c).unwrap()).collect();
        let expected = reference(&text).into_bytes();
        let mut wide = Vec::new();
        assert_eq!(write_str_ucs4(&mut wide, &codes), Ok(()));
        assert_eq!(wide, expected, "ucs4 {text:?}");
        if codes.iter().all(|&c| c <= 0xffff) {
            let units: Vec<u16> = codes.iter().map(|&c| c as u16).collect();
            let mut narrow = Vec::new();
            assert_eq!(write_str_ucs2(&mut narrow, &units), Ok(()));
            assert_eq!(narrow, expected, "ucs2 {text:?}");
        }
    }
}

#[test]
fn surrogate_in_any_lane_of_any_block_is_rejected() {
    for len in [8, 9, 16, 23, 600] {
        for at in 0..len {
            for surrogate in [0xd800u32, 0xdbff, 0xdc00, 0xdfff] {
                let mut codes = vec![u32::from(b'x'); len];
                codes[at] = surrogate;
                // A 3-byte neighbour keeps the block off any ASCII shortcut.
                codes[(at + 1) % len] = 0x4e2d;
                let mut buf = Vec::new();
                assert_eq!(write_str_ucs4(&mut buf, &codes), Err(LoneSurrogate));
                let units: Vec<u16> = codes.iter().map(|&c| c as u16).collect();
                assert_eq!(write_str_ucs2(&mut buf, &units), Err(LoneSurrogate));
            }
        }
    }
    let mut buf = Vec::new();
    let mut beyond = vec![0x61u32; 16];
    beyond[11] = 0x11_0000;
    assert_eq!(write_str_ucs4(&mut buf, &beyond), Err(LoneSurrogate));
}

#[test]
fn long_text_stays_within_reserved_room() {
    // Crosses the 512-unit reservation segments with blocks that need the
    // scalar fallback (six bytes per unit) and blocks of 4-byte characters,
    // at lengths that leave every size of last partial block.
    let mut codes = Vec::new();
    for i in 0..5000u32 {
        codes.push(match i % 7 {
            0 => 0x01,
            1 => 0x1_f600,
            2 => 0x4e2d,
            _ => 0x61 + i % 26,
        });
    }
    for len in (4970..=5000).chain([1030, 1031, 1040, 1047]) {
        let codes = &codes[..len];
        let text: String = codes.iter().map(|&c| char::from_u32(c).unwrap()).collect();
        let mut out = b"prefix".to_vec();
        assert_eq!(write_str_ucs4(&mut out, codes), Ok(()));
        assert_eq!(&out[6..], reference(&text).as_bytes());
    }
}

#[test]
fn short_plain_strings_of_every_length() {
    // The word-copy path for up to 16 bytes, at each of its size classes.
    let alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    for len in 0..=20 {
        let text = &alphabet[..len];
        let mut buf = b"[".to_vec();
        write_str_utf8(&mut buf, text.as_bytes());
        assert_eq!(buf, format!("[\"{text}\"").into_bytes());
        assert_eq!(encode_all(text), reference(text));
    }
}
