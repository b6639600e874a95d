//! The recovery rule on every tail shape power loss and crashes leave.

use super::recovery::{valid_prefix, RecoveryError, TailKind, ValidPrefix};
use super::tests::{Trickle, HEADER, TRAILER};
use super::DEFAULT_MAX_LINE;
use super::READ_BUFFER;

fn chunk(i: usize) -> String {
    format!(r#"{{"record_type": "chunk", "index": {i}, "kind": "user", "payload": {{}}}}"#)
}

fn lines(records: &[&str]) -> Vec<u8> {
    records
        .iter()
        .flat_map(|r| [r.as_bytes(), b"\n"])
        .flatten()
        .copied()
        .collect()
}

/// The rule on `data`, checked to give the same answer at every read size.
fn rule_with(data: &[u8], max_line: usize) -> Result<ValidPrefix, String> {
    let run = |step| valid_prefix(Trickle { data, step }, max_line).map_err(|e| e.to_string());
    let expected = run(usize::MAX);
    for step in [1, 3, 64, 4096] {
        assert_eq!(run(step), expected, "read size {step}");
    }
    expected
}

fn rule(data: &[u8]) -> ValidPrefix {
    rule_with(data, DEFAULT_MAX_LINE).expect("no error")
}

fn ends_at(data: &[u8], end: usize, tail: Option<TailKind>) {
    let got = rule(data);
    assert_eq!(
        (got.end, got.size, got.tail),
        (end as u64, data.len() as u64, tail),
        "{:?}",
        String::from_utf8_lossy(data)
    );
}

#[test]
fn a_closed_file_is_all_prefix() {
    let data = lines(&[HEADER, &chunk(0), &chunk(1), TRAILER]);
    let got = rule(&data);
    assert_eq!(
        (got.end, got.tail, got.records, got.chunks),
        (data.len() as u64, None, 4, 2)
    );
    let trailer_at = data.len() - TRAILER.len() - 1;
    assert_eq!(got.trailer_at, Some(trailer_at as u64));
    assert!(got.has_header());
}

#[test]
fn empty_and_headerless_files() {
    assert_eq!(rule(b""), ValidPrefix::default());
    // A chunk before any header is out of sequence: nothing is valid.
    let data = lines(&[&chunk(0), HEADER]);
    ends_at(&data, 0, Some(TailKind::OutOfSequence));
    assert!(!rule(&data).has_header());
}

#[test]
fn the_power_loss_shape_from_the_issue() {
    // header + 182 records + a NUL run + later records that landed.
    let mut records = vec![HEADER.to_string()];
    records.extend((0..182).map(chunk));
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    let durable = lines(&refs);
    let later: Vec<String> = (273..277).map(chunk).collect();
    let later: Vec<&str> = later.iter().map(String::as_str).collect();
    let data = [durable.clone(), vec![0; 93_662], lines(&later)].concat();
    let got = rule(&data);
    assert_eq!(
        (got.end, got.chunks, got.tail),
        (durable.len() as u64, 182, Some(TailKind::Hole))
    );
    assert_eq!(got.tail_bytes(), (data.len() - durable.len()) as u64);
}

#[test]
fn each_tail_kind() {
    let head = lines(&[HEADER, &chunk(0)]);
    let at = head.len();
    let with = |tail: &[u8]| [head.as_slice(), tail].concat();
    ends_at(&with(b""), at, None);
    ends_at(&with(&[0; 5000]), at, Some(TailKind::Zeros));
    ends_at(&with(b"\0\0\0\n"), at, Some(TailKind::Hole));
    ends_at(
        &with(b"\0\0{\"record_type\": \"chunk\"}\n"),
        at,
        Some(TailKind::Hole),
    );
    // A record whose middle page never landed.
    ends_at(
        &with(b"{\"record_type\": \"ch\0\0\0\0\"}\n"),
        at,
        Some(TailKind::Hole),
    );
    ends_at(
        &with(b"{\"record_type\": \"chunk\", \"ind"),
        at,
        Some(TailKind::Torn),
    );
    ends_at(&with(b"stale block\n"), at, Some(TailKind::Garbage));
    ends_at(&with(b"[1, 2]\n"), at, Some(TailKind::Garbage));
    ends_at(
        &with(b"{\"type\": \"chunk\"}\n"),
        at,
        Some(TailKind::Unrecognized),
    );
    ends_at(
        &with(b"{\"record_type\": \"chunky\"}\n"),
        at,
        Some(TailKind::Unrecognized),
    );
    ends_at(
        &with(b"{\"record_type\": \"chunk\"\n"),
        at,
        Some(TailKind::Garbage),
    );
    // Valid-looking records after garbage are tail too.
    let after_garbage = with(format!("xx\n{}\n{}\n", chunk(1), TRAILER).as_bytes());
    ends_at(&after_garbage, at, Some(TailKind::Garbage));
}

#[test]
fn sequence_rules() {
    let c0 = chunk(0);
    let other = r#"{"record_type": "header", "id": "another"}"#;
    // A reopen (same id) continues the log; another id ends it.
    let open = lines(&[HEADER, &c0, HEADER, &c0]);
    ends_at(&open, open.len(), None);
    let reopened = lines(&[HEADER, &c0, HEADER, &c0, TRAILER]);
    assert_eq!(
        (rule(&reopened).end, rule(&reopened).chunks),
        (reopened.len() as u64, 2)
    );
    let head = lines(&[HEADER, &c0]);
    ends_at(
        &[head.clone(), lines(&[other, &c0])].concat(),
        head.len(),
        Some(TailKind::OutOfSequence),
    );
    // After a trailer only a reopen: a header for the same id.
    let closed = lines(&[HEADER, &c0, TRAILER]);
    for after in [c0.as_str(), TRAILER, other] {
        let data = [closed.clone(), lines(&[after])].concat();
        ends_at(&data, closed.len(), Some(TailKind::OutOfSequence));
        assert_eq!(
            rule(&data).trailer_at,
            Some((closed.len() - TRAILER.len() - 1) as u64)
        );
    }
    let reopened = [closed.clone(), lines(&[HEADER, &c0])].concat();
    ends_at(&reopened, reopened.len(), None);
    assert_eq!(rule(&reopened).trailer_at, None, "it no longer ends closed");
    let twice = [closed.clone(), closed.clone()].concat();
    assert_eq!(
        rule(&twice).trailer_at,
        Some((twice.len() - TRAILER.len() - 1) as u64)
    );
    // Chunk indices are not checked.
    let any_order = lines(&[HEADER, &chunk(5), &chunk(5), &chunk(1)]);
    ends_at(&any_order, any_order.len(), None);
}

#[test]
fn records_are_read_as_json_loads_reads_them() {
    // Key order, whitespace, escapes in values, duplicate keys (the last wins).
    let shapes = [
        r#"{"id": "s", "record_type": "header"}"#,
        r#"{"index": 0, "record_type": "chunk"}"#,
        r#"  {"record_type":"ch\u0075nk"}  "#,
        r#"{"record_type": "trailer", "record_type": "chunk"}"#,
        r#"{"record_type": "header", "id": "\u0073"}"#,
        TRAILER,
    ];
    let data = lines(&shapes);
    let got = rule(&data);
    assert_eq!(
        (got.end, got.chunks, got.tail),
        (data.len() as u64, 3, None)
    );
    // A header whose id differs only in spelling is the same session; a
    // nested "id" or "record_type" does not count.
    let nested = r#"{"payload": {"record_type": "header"}, "record_type": "chunk"}"#;
    let data = lines(&[HEADER, nested, r#"{"x": {"record_type": "chunk"}}"#]);
    ends_at(
        &data,
        HEADER.len() + nested.len() + 2,
        Some(TailKind::Unrecognized),
    );
}

#[test]
fn ids_compare_as_values() {
    let header = |id: &str| format!(r#"{{"record_type": "header", "id": {id}}}"#);
    for (first, again, same) in [
        (r#""s""#, r#""\u0073""#, true),
        (r#""😀""#, r#""\ud83d\ude00""#, true),
        (r#""\ud83d""#, r#""\uD83D""#, true),
        (r#""s""#, r#""t""#, false),
        ("null", "null", true),
        (r#""s""#, "null", false),
    ] {
        let (a, b) = (header(first), header(again));
        let data = lines(&[&a, &b]);
        let expected = if same { data.len() } else { a.len() + 1 };
        assert_eq!(rule(&data).end, expected as u64, "{first} vs {again}");
    }
    // No id at all is the same as null (json.loads: record.get("id") is None).
    let bare = r#"{"record_type": "header"}"#;
    let data = lines(&[bare, &header("null")]);
    assert_eq!(rule(&data).end, data.len() as u64);
}

#[test]
fn a_line_longer_than_the_maximum_is_an_error_not_a_tail() {
    let max = 100;
    let head = lines(&[HEADER]);
    let long = format!(
        r#"{{"record_type": "chunk", "payload": "{}"}}"#,
        "x".repeat(max)
    );
    let data = [head.clone(), lines(&[&long, &chunk(1)])].concat();
    let err = rule_with(&data, max).unwrap_err();
    assert!(err.contains("line 2 is"), "{err}");
    let raw = valid_prefix(data.as_slice(), max).unwrap_err();
    assert!(
        matches!(raw, RecoveryError::LineTooLong { line: 2, offset, .. } if offset == head.len() as u64)
    );
    // Within the maximum it is a record.
    assert_eq!(rule_with(&data, long.len()).unwrap().chunks, 2);
    // Long but holding a NUL, or never ended: a tail, counted, not buffered.
    let holed = [head.clone(), vec![b'x'; 500], vec![0; 10], b"\n".to_vec()].concat();
    assert_eq!(rule_with(&holed, max).unwrap().tail, Some(TailKind::Hole));
    let zeros = [head.clone(), vec![0; 10 * max]].concat();
    assert_eq!(rule_with(&zeros, max).unwrap().tail, Some(TailKind::Zeros));
    let torn = [head.clone(), vec![b'{'; 10 * max]].concat();
    assert_eq!(rule_with(&torn, max).unwrap().tail, Some(TailKind::Torn));
    // After the tail began, a long line is only more tail.
    let later = [head.clone(), b"junk\n".to_vec(), lines(&[&long])].concat();
    assert_eq!(
        rule_with(&later, max).unwrap().tail,
        Some(TailKind::Garbage)
    );
}

#[test]
fn long_records_across_buffer_boundaries() {
    let long = format!(
        r#"{{"record_type": "chunk", "payload": "{}"}}"#,
        "é".repeat(READ_BUFFER)
    );
    let data = lines(&[HEADER, &long, &chunk(1), &long, TRAILER]);
    let got = valid_prefix(data.as_slice(), DEFAULT_MAX_LINE).unwrap();
    assert_eq!(
        (got.end, got.chunks, got.tail),
        (data.len() as u64, 3, None)
    );
    for step in [7, READ_BUFFER - 1, READ_BUFFER + 1] {
        let again = valid_prefix(Trickle { data: &data, step }, DEFAULT_MAX_LINE).unwrap();
        assert_eq!(again, got, "step {step}");
    }
}
