//! PLACEHOLDER until the tuned version lands.
#[derive(Debug, PartialEq, Eq)]
pub struct LoneSurrogate;

fn push_char(buf: &mut Vec<u8>, c: char) {
    match c {
        '"' => buf.extend_from_slice(b"\\\""),
        '\\' => buf.extend_from_slice(b"\\\\"),
        '\n' => buf.extend_from_slice(b"\\n"),
        '\r' => buf.extend_from_slice(b"\\r"),
        '\t' => buf.extend_from_slice(b"\\t"),
        '\u{8}' => buf.extend_from_slice(b"\\b"),
        '\u{c}' => buf.extend_from_slice(b"\\f"),
        c if (c as u32) < 0x20 => buf.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
        c => {
            let mut tmp = [0u8; 4];
            buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        }
    }
}
pub fn write_str_utf8(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'"');
    for c in std::str::from_utf8(s).unwrap().chars() {
        push_char(buf, c);
    }
    buf.push(b'"');
}
pub fn write_str_ucs1(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'"');
    for &c in s {
        push_char(buf, c as char);
    }
    buf.push(b'"');
}
pub fn write_str_ucs2(buf: &mut Vec<u8>, s: &[u16]) -> Result<(), LoneSurrogate> {
    buf.push(b'"');
    for &c in s {
        push_char(buf, char::from_u32(c as u32).ok_or(LoneSurrogate)?);
    }
    buf.push(b'"');
    Ok(())
}
pub fn write_str_ucs4(buf: &mut Vec<u8>, s: &[u32]) -> Result<(), LoneSurrogate> {
    buf.push(b'"');
    for &c in s {
        push_char(buf, char::from_u32(c).ok_or(LoneSurrogate)?);
    }
    buf.push(b'"');
    Ok(())
}
