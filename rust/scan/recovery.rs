//! The recovery rule: where the log of a session file ends after a crash.
//!
//! A kill -9 leaves a prefix of what was written (at most one record cut
//! short). Power loss leaves less order: pages are written back out of order,
//! and a file can come back with its size extended over data that never
//! landed (a run of NUL bytes, possibly followed by later records that did).
//! So the log is the longest prefix of *valid records in sequence*:
//!
//! - valid: a whole line (`\n`-terminated) that is one JSON object, as
//!   Python's `json.loads` reads it, with a known `record_type`;
//! - in sequence: a header first; then chunks; a further header only for the
//!   same `id` (a writer reopening the session); a trailer ends a segment,
//!   and only such a header may follow it. Chunk indices are not checked
//!   (the seed writes whatever index it is given).
//!
//! Everything after that prefix is the *crash tail*: a NUL run, garbage, a
//! torn line, and any valid-looking record beyond them. Every reader (the
//! loader, `ls`, `verify`, `repair`, `tail`) and the writer's reopen take
//! the end from [`valid_prefix`], so they all agree on it.
//!
//! One exception: a complete line longer than the readers' maximum that
//! holds no NUL byte may be a record the writer accepted; it is reported as
//! [`RecoveryError::LineTooLong`], never cut. (A NUL byte cannot be in any
//! JSON text, so a line holding one is provably not a record.)
//!
//! Cost: one sequential read of the file, every line of the prefix checked
//! by the native JSON validator; memory is one read buffer plus the maximum
//! line length, whatever the file's size. The tail is read (to classify it),
//! never buffered.

use std::fmt;
use std::io::{self, Read};

#[cfg(doc)]
use super::DEFAULT_MAX_LINE;
use super::{grow, parse_object, READ_BUFFER};

/// What the crash tail looks like: how the file came to end as it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailKind {
    /// NUL bytes only: the size was extended over data that never landed.
    Zeros,
    /// NUL bytes and other data: some later pages landed, earlier ones did not.
    Hole,
    /// One line without its newline: a write cut short.
    Torn,
    /// A complete line that is not a JSON object.
    Garbage,
    /// A JSON object without a known `record_type`: not a record of this
    /// format (stale data, or another program's line).
    Unrecognized,
    /// A valid record out of sequence (before the header, after the trailer,
    /// or a header for another session id).
    OutOfSequence,
}

impl TailKind {
    /// Whether the tail starts with a whole JSON object: something a crash
    /// of this writer cannot leave (its own bytes land where it wrote them,
    /// in sequence), so possibly another program's data.
    pub fn starts_with_an_object(self) -> bool {
        matches!(self, TailKind::Unrecognized | TailKind::OutOfSequence)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TailKind::Zeros => "zeros",
            TailKind::Hole => "hole",
            TailKind::Torn => "torn",
            TailKind::Garbage => "garbage",
            TailKind::Unrecognized => "unrecognized record",
            TailKind::OutOfSequence => "out of sequence",
        }
    }
}

/// The valid log of a file and what follows it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ValidPrefix {
    /// Bytes of the valid prefix: it ends with a newline, or is empty.
    pub end: u64,
    /// Bytes read: the file's size when read to its end.
    pub size: u64,
    /// Records (lines) in the prefix.
    pub records: u64,
    /// Chunk records in the prefix.
    pub chunks: u64,
    /// Where the prefix's last trailer starts, when the prefix ends with it
    /// (a closed session).
    pub trailer_at: Option<u64>,
    /// `None` exactly when `end == size`.
    pub tail: Option<TailKind>,
}

impl ValidPrefix {
    pub fn tail_bytes(&self) -> u64 {
        self.size - self.end
    }

    /// Whether the prefix holds a header, i.e. a session.
    pub fn has_header(&self) -> bool {
        self.records > 0
    }
}

#[derive(Debug)]
pub enum RecoveryError {
    Io(io::Error),
    /// The line after the valid prefix is longer than `max` bytes and could
    /// be a record: the file is refused rather than cut.
    LineTooLong {
        /// 1-based line number.
        line: u64,
        /// Where the line starts.
        offset: u64,
        /// Its length without the newline.
        len: u64,
        max: usize,
    },
}

impl From<io::Error> for RecoveryError {
    fn from(e: io::Error) -> Self {
        RecoveryError::Io(e)
    }
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Io(e) => write!(f, "{e}"),
            RecoveryError::LineTooLong { line, len, max, .. } => write!(
                f,
                "line {line} is {len} bytes, longer than the maximum of {max}; \
                 it may be a record, so it is not cut as a crash tail"
            ),
        }
    }
}

impl std::error::Error for RecoveryError {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordType {
    Header,
    Chunk,
    Trailer,
}

/// Where in the sequence the prefix is.
#[derive(Default)]
struct Sequence {
    /// The first header's `id` (its JSON text), once seen.
    header_id: Option<Vec<u8>>,
    closed: bool,
}

impl Sequence {
    /// Whether a record of this type (and header id) may come next; if so, take it.
    fn accept(&mut self, record_type: RecordType, id: Option<&[u8]>) -> bool {
        let id = id.unwrap_or(b"null");
        if self.closed && record_type != RecordType::Header {
            return false;
        }
        match (record_type, &self.header_id) {
            (RecordType::Header, None) => {
                self.header_id = Some(id.to_vec());
                true
            }
            // A reopen, also of a closed file: the seed appends its header
            // after the trailer when the close's rename was lost, or when
            // hooks give a session one name for both (closed in place).
            (RecordType::Header, Some(first)) => {
                let same = same_json_value(first, id);
                self.closed &= !same;
                same
            }
            (_, None) => false,
            (RecordType::Chunk, Some(_)) => true,
            (RecordType::Trailer, Some(_)) => {
                self.closed = true;
                true
            }
        }
    }
}

/// What a complete line is.
enum Line<'a> {
    Record(RecordType, Option<&'a [u8]>),
    /// A JSON object without a known `record_type`.
    Unrecognized,
    NotAnObject,
}

fn judge(line: &[u8]) -> Line<'_> {
    let Ok(fields) = parse_object(line) else {
        return Line::NotAnObject;
    };
    let name = fields.record_type.and_then(decode_string);
    let record_type = match name.as_deref() {
        Some(b"header") => RecordType::Header,
        Some(b"chunk") => RecordType::Chunk,
        Some(b"trailer") => RecordType::Trailer,
        _ => return Line::Unrecognized,
    };
    Line::Record(record_type, fields.id)
}

/// Two JSON values (already validated) equal as Python compares what
/// `json.loads` makes of them, for the strings ids are; other values by text.
fn same_json_value(a: &[u8], b: &[u8]) -> bool {
    a == b || matches!((decode_string(a), decode_string(b)), (Some(x), Some(y)) if x == y)
}

/// A validated JSON string literal's contents as WTF-8-like bytes (escapes
/// resolved; a lone surrogate kept as its own code unit, as Python keeps it),
/// or `None` when `raw` is not a string.
fn decode_string(raw: &[u8]) -> Option<Vec<u8>> {
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if !inner.contains(&b'\\') {
        return Some(inner.to_vec());
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    let hex = |at: usize| -> u32 {
        let digits = std::str::from_utf8(&inner[at..at + 4]).unwrap_or("0");
        u32::from_str_radix(digits, 16).unwrap_or(0)
    };
    while i < inner.len() {
        if inner[i] != b'\\' {
            out.push(inner[i]);
            i += 1;
            continue;
        }
        let unit = match inner[i + 1] {
            b'u' => {
                let mut code = hex(i + 2);
                i += 6;
                let is_pair = (0xD800..0xDC00).contains(&code)
                    && inner.get(i..i + 2) == Some(b"\\u")
                    && (0xDC00..0xE000).contains(&hex(i + 2));
                if is_pair {
                    code = 0x10000 + ((code - 0xD800) << 10) + (hex(i + 2) - 0xDC00);
                    i += 6;
                }
                code
            }
            other => {
                i += 2;
                u32::from(match other {
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    c => c, // `"`, `\`, `/`
                })
            }
        };
        push_code_point(&mut out, unit);
    }
    Some(out)
}

/// UTF-8 encoding extended to lone surrogates (so equal strings give equal bytes).
fn push_code_point(out: &mut Vec<u8>, code: u32) {
    match char::from_u32(code) {
        Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        None => out.extend_from_slice(&[
            0xE0 | (code >> 12) as u8,
            0x80 | ((code >> 6) & 0x3F) as u8,
            0x80 | (code & 0x3F) as u8,
        ]),
    }
}

/// Facts about the tail, gathered as its bytes stream past.
#[derive(Default)]
struct TailStats {
    len: u64,
    any_zero: bool,
    any_nonzero: bool,
    /// Length of the tail's first line, once its newline was seen.
    first_line_len: Option<u64>,
    first_line_has_zero: bool,
    /// What the first line was, when it was complete and short enough to judge.
    first_line: Option<TailKind>,
}

impl TailStats {
    fn feed(&mut self, bytes: &[u8]) {
        if !self.any_zero || !self.any_nonzero {
            self.any_zero |= memchr::memchr(0, bytes).is_some();
            self.any_nonzero |= bytes.iter().any(|&b| b != 0);
        }
        if self.first_line_len.is_none() {
            let line_part = match memchr::memchr(b'\n', bytes) {
                Some(n) => {
                    self.first_line_len = Some(self.len + n as u64);
                    &bytes[..n]
                }
                None => bytes,
            };
            self.first_line_has_zero |= memchr::memchr(0, line_part).is_some();
        }
        self.len += bytes.len() as u64;
    }

    fn kind(&self) -> Option<TailKind> {
        Some(if self.len == 0 {
            return None;
        } else if !self.any_nonzero {
            TailKind::Zeros
        } else if self.any_zero {
            TailKind::Hole
        } else if self.first_line_len.is_none() {
            TailKind::Torn
        } else {
            self.first_line.unwrap_or(TailKind::Garbage)
        })
    }
}

/// Reads `reader` to its end once and applies the recovery rule (module doc).
/// `max_line` is the readers' maximum line length ([`DEFAULT_MAX_LINE`] by default).
pub fn valid_prefix(reader: impl Read, max_line: usize) -> Result<ValidPrefix, RecoveryError> {
    let mut reader = reader;
    let mut prefix = ValidPrefix::default();
    let mut sequence = Sequence::default();
    let mut tail: Option<TailStats> = None;
    // Room for one maximal line plus one read; grown to that only when a
    // long line needs it.
    let capacity = max_line.saturating_add(READ_BUFFER);
    let mut buf = Vec::new();
    grow(&mut buf, READ_BUFFER.min(capacity))?;
    // Before the tail: buf[..filled] holds the bytes from prefix.end on.
    // In the tail: nothing is kept, filled stays 0.
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            let wanted = buf.len().saturating_mul(2).min(capacity);
            grow(&mut buf, wanted)?;
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        prefix.size += n as u64;
        if let Some(stats) = tail.as_mut() {
            stats.feed(&buf[..n]);
            check_first_line(stats, &prefix, max_line)?;
            continue;
        }
        let searched_from = filled;
        filled += n;
        let mut start = 0;
        for at in memchr::memchr_iter(b'\n', &buf[searched_from..filled]) {
            let line = &buf[start..searched_from + at];
            let judged = (line.len() <= max_line).then(|| judge(line));
            if let Some(Line::Record(record_type, id)) = judged {
                if sequence.accept(record_type, id) {
                    prefix.trailer_at = (record_type == RecordType::Trailer).then_some(prefix.end);
                    prefix.chunks += u64::from(record_type == RecordType::Chunk);
                    prefix.records += 1;
                    prefix.end += line.len() as u64 + 1;
                    start = searched_from + at + 1;
                    continue;
                }
            }
            let mut stats = TailStats {
                first_line: judged.map(|line| match line {
                    Line::Record(..) => TailKind::OutOfSequence,
                    Line::Unrecognized => TailKind::Unrecognized,
                    Line::NotAnObject => TailKind::Garbage,
                }),
                ..TailStats::default()
            };
            stats.feed(&buf[start..filled]);
            check_first_line(&stats, &prefix, max_line)?;
            tail = Some(stats);
            break;
        }
        if tail.is_some() {
            filled = 0;
        } else if filled - start > max_line {
            // A line longer than the maximum has not ended yet: judge it as
            // the tail, streaming, instead of buffering it.
            let mut stats = TailStats::default();
            stats.feed(&buf[start..filled]);
            tail = Some(stats);
            filled = 0;
        } else {
            buf.copy_within(start..filled, 0);
            filled -= start;
        }
    }
    if tail.is_none() && filled > 0 {
        let mut stats = TailStats::default();
        stats.feed(&buf[..filled]);
        tail = Some(stats);
    }
    prefix.tail = tail.and_then(|stats| stats.kind());
    Ok(prefix)
}

/// The one case that is an error, not a tail: see the module doc.
fn check_first_line(
    stats: &TailStats,
    prefix: &ValidPrefix,
    max_line: usize,
) -> Result<(), RecoveryError> {
    match stats.first_line_len {
        Some(len) if len > max_line as u64 && !stats.first_line_has_zero => {
            Err(RecoveryError::LineTooLong {
                line: prefix.records + 1,
                offset: prefix.end,
                len,
                max: max_line,
            })
        }
        _ => Ok(()),
    }
}
