use super::*;

pub(super) const HEADER: &str = r#"{"record_type": "header", "schema_version": 1, "id": "s"}"#;
pub(super) const CHUNK: &str =
    r#"{"record_type": "chunk", "index": 0, "kind": "user", "payload": {}}"#;
pub(super) const TRAILER: &str = r#"{"record_type": "trailer", "final_chunk_count": 2}"#;

pub(super) fn file(lines: &[&str], tail: &str) -> Vec<u8> {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(tail);
    out.into_bytes()
}

/// A reader that hands out at most `step` bytes per call, to cross every
/// buffer boundary the streaming scan has.
pub(super) struct Trickle<'a> {
    pub(super) data: &'a [u8],
    pub(super) step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn default_file_has_two_events_and_counts_chunks() {
    let data = file(&[HEADER, CHUNK, CHUNK, TRAILER], "");
    let scan = scan_bytes(&data, true);
    assert_eq!(scan.lines, 4);
    assert_eq!(scan.chunks, 2);
    assert_eq!(scan.torn_bytes(), 0);
    assert_eq!(scan.size, data.len() as u64);
    assert_eq!(scan.invalid, None);
    let kinds: Vec<_> = scan.events.iter().map(|e| (e.line, e.kind)).collect();
    assert_eq!(kinds, [(1, LineKind::Header), (4, LineKind::Trailer)]);
    assert_eq!(scan.events[0].text, HEADER.as_bytes());
}

#[test]
fn torn_tail_is_everything_after_the_last_newline() {
    let tail = r#"{"record_type": "chunk", "ind"#;
    let data = file(&[HEADER, CHUNK], tail);
    let scan = scan_bytes(&data, true);
    assert_eq!((scan.lines, scan.chunks), (2, 1));
    assert_eq!(scan.torn_bytes(), tail.len() as u64);
    assert_eq!(scan.complete_len, (HEADER.len() + CHUNK.len() + 2) as u64);
    // The torn tail is not validated: it is not a record yet.
    assert_eq!(scan.invalid, None);
}

#[test]
fn empty_file() {
    let scan = scan_bytes(b"", true);
    assert_eq!(scan, Scan::default());
}

#[test]
fn other_shapes_become_events_with_their_bytes() {
    let reordered = r#"{"index": 0, "record_type": "chunk"}"#;
    let custom = r#"{"type": "msg"}"#;
    let escaped = r#"{"record_type": "ch\u0075nk", "index": 1}"#;
    let data = file(&[HEADER, reordered, custom, escaped, CHUNK], "");
    let scan = scan_bytes(&data, true);
    assert_eq!(scan.chunks, 1);
    let events: Vec<_> = scan
        .events
        .iter()
        .map(|e| (e.line, e.kind, String::from_utf8(e.text.clone()).unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            (1, LineKind::Header, HEADER.to_string()),
            (2, LineKind::Other, reordered.to_string()),
            (3, LineKind::Other, custom.to_string()),
            (4, LineKind::Other, escaped.to_string()),
        ]
    );
}

#[test]
fn prefix_must_end_the_value() {
    // "chunky" is not "chunk"; a bare prefix with nothing after is not a record.
    for line in [
        r#"{"record_type": "chunky", "index": 0}"#,
        r#"{"record_type": "chunk""#,
        r#"{"record_type": "chunk" , "index": 0}"#,
    ] {
        let scan = scan_bytes(&file(&[line], ""), false);
        assert_eq!(scan.chunks, 0, "{line}");
        assert_eq!(scan.events[0].kind, LineKind::Other);
    }
    let scan = scan_bytes(&file(&[r#"{"record_type": "chunk"}"#], ""), false);
    assert_eq!(scan.chunks, 1);
}

#[test]
fn without_validate_a_chunk_line_is_trusted_on_its_prefix() {
    let broken = r#"{"record_type": "chunk", "payload": {"#;
    let data = file(&[HEADER, broken], "");
    assert_eq!(scan_bytes(&data, false).invalid, None);
    assert_eq!(scan_bytes(&data, false).chunks, 1);
    let invalid = scan_bytes(&data, true).invalid.unwrap();
    assert_eq!((invalid.line, invalid.column), (2, broken.len()));
}

#[test]
fn first_invalid_line_is_reported_and_scanning_continues() {
    let data = file(&[HEADER, "[1, 2]", "{bad", CHUNK, TRAILER], "x");
    let scan = scan_bytes(&data, true);
    assert_eq!(
        scan.invalid,
        Some(Invalid {
            line: 2,
            column: 0,
            reason: "record is not a JSON object",
            text: b"[1, 2]".to_vec(),
        })
    );
    assert_eq!((scan.lines, scan.chunks, scan.torn_bytes()), (5, 1, 1));
}

#[test]
fn streaming_matches_in_memory_across_buffer_boundaries() {
    let long = format!(
        r#"{{"record_type": "chunk", "payload": "{}"}}"#,
        "é".repeat(READ_BUFFER)
    );
    let data = file(
        &[HEADER, CHUNK, &long, CHUNK, "{\"x\": 1}", TRAILER],
        "{\"tor",
    );
    let expected = scan_bytes(&data, true);
    assert_eq!(expected.chunks, 3);
    for step in [1, 7, 4096, READ_BUFFER - 1, READ_BUFFER, usize::MAX] {
        let reader = Trickle { data: &data, step };
        assert_eq!(scan_reader(reader, true).unwrap(), expected, "step {step}");
    }
}

#[test]
fn scan_path_reads_a_file_and_reports_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("sessionwal-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.jsonl");
    std::fs::write(&path, file(&[HEADER, CHUNK, TRAILER], "")).unwrap();
    let no_events = |_| Ok(());
    assert_eq!(
        scan_path(&path, false, 1 << 20, no_events).unwrap().chunks,
        1
    );
    let missing = scan_path(&dir.join("missing"), false, 1 << 20, no_events).unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn valid(text: &str) -> bool {
    validate_object(text.as_bytes()).is_ok()
}

#[test]
fn validator_accepts_what_python_json_loads_accepts() {
    for text in [
        "{}",
        " {} \r",
        r#"{"a": [1, -0, 0.5, 1e5, 1E+5, 2e-3, -1.5e10, true, false, null]}"#,
        r#"{"f": [NaN, Infinity, -Infinity]}"#,
        r#"{"s": "\" \\ \/ \b \f \n \r \t \u00e9 \uD800 \uDBFF\uDC00 é 世 😀 \u007f"}"#,
        r#"{"a": {"b": {"c": [[], {}, [{}]]}}}"#,
        "{\"k\": \"\x7f\"}",
        r#"{"a":1,"b":[1,2]}"#,
        r#"{"dup": 1, "dup": 2}"#,
    ] {
        assert!(valid(text), "{text}");
    }
}

#[test]
fn validator_rejects_what_python_json_loads_rejects() {
    for (text, column) in [
        ("", 0),
        ("{", 1),
        (r#"{"a": 1,}"#, 8),
        (r#"{"a" 1}"#, 5),
        (r#"{a: 1}"#, 1),
        (r#"{"a": [1,]}"#, 9),
        (r#"{"a": 01}"#, 7),
        (r#"{"a": 1.}"#, 7),
        (r#"{"a": .5}"#, 6),
        (r#"{"a": 1e}"#, 7),
        (r#"{"a": -}"#, 7),
        (r#"{"a": -NaN}"#, 7),
        (r#"{"a": nul}"#, 6),
        (r#"{"a": "x\q"}"#, 9),
        (r#"{"a": "\u12G4"}"#, 8),
        ("{\"a\": \"tab\there\"}", 10),
        (r#"{"a": "open}"#, 12),
        (r#"{} {}"#, 3),
        (r#"{"a": 1]"#, 7),
        ("[]", 0),
        ("\"s\"", 0),
        ("12", 0),
    ] {
        assert_eq!(
            validate_object(text.as_bytes()).map_err(|(c, _)| c),
            Err(column),
            "{text}"
        );
    }
}

#[test]
fn validator_rejects_bad_utf8_at_its_offset() {
    let mut line = b"{\"a\": \"".to_vec();
    line.extend_from_slice(&[0xe4, 0xb8]); // a truncated 3-byte sequence
    line.extend_from_slice(b"\"}");
    assert_eq!(validate_object(&line), Err((7, "invalid UTF-8")));
}

#[test]
fn validator_survives_deep_nesting() {
    let deep = format!("{{\"a\": {}1{}}}", "[".repeat(1000), "]".repeat(1000));
    assert!(valid(&deep));
    let hostile = format!("{{\"a\": {}", "[".repeat(MAX_DEPTH + 10));
    assert_eq!(
        validate_object(hostile.as_bytes()).map_err(|(_, r)| r),
        Err("nested too deeply")
    );
}
