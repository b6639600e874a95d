//! Session-file scanner: what `list_sessions` and `verify` need to know about
//! a file without handing every line to Python's `json.loads`.
//!
//! One pass over the file, a bounded buffer at a time (memory is the buffer
//! plus the longest line, at most `max_line`, never the file), finds:
//! - the line boundaries, and the torn tail (bytes after the last `\n`);
//! - the *chunk lines*: complete lines that start with the fixed prefix
//!   `{"record_type": "chunk"` followed by `,` or `}`. Only counted, never
//!   copied: `json.dumps` of a default chunk record always starts this way;
//! - every other complete line, as an [`Event`] with its bytes: the header
//!   and trailer of a default file, and *any* line of another shape (a
//!   subclass's `build_chunk_record` that orders keys differently, a runtime's
//!   own record types, garbage). The caller parses events itself, so such
//!   files are still read correctly, just without the speed-up: the scanner
//!   never guesses what a line it does not recognise means. A streaming scan
//!   hands each event to a callback as it is found, so events never pile up.
//!
//! A complete line longer than `max_line` stops the scan ([`Scan::overlong`]);
//! a torn tail that long is counted, not buffered. Buffer growth is
//! fallible: an allocation failure is an `OutOfMemory` error, never an abort.
//!
//! With `validate`, every complete line is also checked to be one JSON
//! object in the grammar Python's `json.loads` accepts (strict strings, plus
//! `NaN`, `Infinity`, `-Infinity`, which the writers emit for floats), and in
//! UTF-8. The first failure is reported as [`Invalid`]; scanning goes on so
//! the counts stay complete. Without `validate`, a chunk line is trusted on
//! its prefix alone: a corrupt payload is only found by `verify`.
//!
//! The recovery rule (where a crashed file's log ends) is [`recovery`].
//!
//! Plain Rust and portable (no unix-only calls): unit-tested with `cargo test`.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub mod recovery;
#[cfg(test)]
mod recovery_tests;

pub use recovery::{valid_prefix, RecoveryError, TailKind, ValidPrefix};

use crate::framing::{CHUNK_TYPE, RECORD_TYPE_KEY};

/// Initial read buffer; it grows only to hold a line longer than this.
const READ_BUFFER: usize = 256 * 1024;
/// The longest line readers accept unless told otherwise (docs/safety.md).
pub const DEFAULT_MAX_LINE: usize = 256 << 20;
/// Deeper nesting is reported as invalid rather than tracked without bound.
/// (Python's own limit is lower, about 1000, set by its recursion limit.)
const MAX_DEPTH: usize = 1 << 16;

/// What a non-chunk line looked like by its prefix. Only a hint: the caller
/// parses every event line and trusts its parsed `record_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Header,
    Trailer,
    Other,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Header => "header",
            LineKind::Trailer => "trailer",
            LineKind::Other => "other",
        }
    }
}

/// A complete line that is not a chunk line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// 1-based line number.
    pub line: u64,
    pub kind: LineKind,
    /// The line without its `\n`.
    pub text: Vec<u8>,
}

/// The first complete line that is not one valid JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// 1-based line number.
    pub line: u64,
    /// 0-based byte offset of the problem within the line.
    pub column: usize,
    pub reason: &'static str,
    /// The line without its `\n`, so the caller can report it in its own words.
    pub text: Vec<u8>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Bytes read (the file's size when the scan reached its end).
    pub size: u64,
    /// Bytes up to and including the last `\n`: everything after is torn.
    pub complete_len: u64,
    /// Complete lines.
    pub lines: u64,
    /// Complete lines recognised as chunk records by their prefix.
    pub chunks: u64,
    /// Every other complete line, in file order. Lines between two events
    /// (and after the last one) are chunk lines.
    pub events: Vec<Event>,
    /// Only with `validate`. Once set, no later line becomes an event.
    pub invalid: Option<Invalid>,
    /// The number of the first complete line longer than the limit; the
    /// scan stopped there.
    pub overlong: Option<u64>,
}

impl Scan {
    pub fn torn_bytes(&self) -> u64 {
        self.size - self.complete_len
    }
}

/// Incremental scanner: feed it complete lines in order; events go to `sink`
/// (which may stop the scan by returning an error).
struct Scanner<F> {
    validate: bool,
    scan: Scan,
    sink: F,
}

impl<F: FnMut(Event) -> io::Result<()>> Scanner<F> {
    fn line(&mut self, text: &[u8]) -> io::Result<()> {
        let scan = &mut self.scan;
        scan.lines += 1;
        scan.complete_len += text.len() as u64 + 1;
        if self.validate && scan.invalid.is_none() {
            if let Err((column, reason)) = validate_object(text) {
                scan.invalid = Some(Invalid {
                    line: scan.lines,
                    column,
                    reason,
                    text: text.to_vec(),
                });
            }
        }
        match record_type_prefix(text) {
            Some(CHUNK_TYPE) => scan.chunks += 1,
            // The caller judges records only up to the first invalid line.
            _ if scan.invalid.is_some() => {}
            prefix => (self.sink)(Event {
                line: scan.lines,
                kind: match prefix {
                    Some(b"header") => LineKind::Header,
                    Some(b"trailer") => LineKind::Trailer,
                    _ => LineKind::Other,
                },
                text: text.to_vec(),
            })?,
        }
        Ok(())
    }
}

/// The value of a leading `"record_type"` key when the line starts the way
/// `json.dumps` writes a record whose first key it is, and the value is a
/// plain string closed by `,` or `}`.
fn record_type_prefix(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(RECORD_TYPE_KEY)?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    // An escape in the value means the prefix is not a plain word: let the
    // caller parse it.
    if rest[end] != b'"' || !matches!(rest.get(end + 1), Some(b',' | b'}')) {
        return None;
    }
    Some(&rest[..end])
}

/// Scans bytes already in memory; events are collected in `Scan::events`.
pub fn scan_bytes(data: &[u8], validate: bool) -> Scan {
    let mut events = Vec::new();
    let mut scanner = Scanner {
        validate,
        scan: Scan::default(),
        sink: |event| {
            events.push(event);
            Ok(())
        },
    };
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data) {
        scanner
            .line(&data[start..end])
            .expect("collecting never fails");
        start = end + 1;
    }
    scanner.scan.size = data.len() as u64;
    let mut scan = scanner.scan;
    scan.events = events;
    scan
}

/// Scans everything `reader` yields with no line limit, collecting events.
pub fn scan_reader(reader: impl Read, validate: bool) -> io::Result<Scan> {
    let mut events = Vec::new();
    let mut scan = scan_stream(reader, validate, usize::MAX, |event| {
        events.push(event);
        Ok(())
    })?;
    scan.events = events;
    Ok(scan)
}

/// Scans everything `reader` yields, handing each event to `on_event` as it
/// is found: memory is one buffer plus the longest line up to `max_line`,
/// whatever the number of lines. An error from `on_event` stops the scan.
pub fn scan_stream(
    mut reader: impl Read,
    validate: bool,
    max_line: usize,
    on_event: impl FnMut(Event) -> io::Result<()>,
) -> io::Result<Scan> {
    let mut scanner = Scanner {
        validate,
        scan: Scan::default(),
        sink: on_event,
    };
    let mut buf = Vec::new();
    grow(&mut buf, READ_BUFFER.min(max_line.saturating_add(1)))?;
    // buf[..filled] holds unread bytes, the start of a line whose end has
    // not been read yet. While `skipping`, that line outgrew `max_line`:
    // its bytes are counted and dropped until its newline (or the end).
    let mut filled = 0;
    let mut skipping = false;
    let mut total: u64 = 0;
    loop {
        if filled == buf.len() {
            if buf.len() > max_line {
                // Longer than any line we accept: a torn tail (counted) or
                // an overlong line (reported when its newline comes).
                skipping = true;
                filled = 0;
            } else {
                // One line fills the whole buffer: make room for the rest of it.
                let wanted = buf.len().saturating_mul(2).min(max_line.saturating_add(1));
                grow(&mut buf, wanted)?;
            }
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Only the new bytes can hold newlines we have not seen.
        let searched_from = filled;
        filled += n;
        total += n as u64;
        if skipping {
            if memchr::memchr(b'\n', &buf[..filled]).is_some() {
                scanner.scan.overlong = Some(scanner.scan.lines + 1);
                scanner.scan.size = total;
                return Ok(scanner.scan);
            }
            filled = 0;
            continue;
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &buf[searched_from..filled]) {
            let end = searched_from + end;
            if end - start > max_line {
                scanner.scan.overlong = Some(scanner.scan.lines + 1);
                scanner.scan.size = total;
                return Ok(scanner.scan);
            }
            scanner.line(&buf[start..end])?;
            start = end + 1;
        }
        // Move the unfinished line to the front (only when something before
        // it was consumed: re-copying a long pending line on every read of
        // it would be quadratic).
        if start > 0 {
            buf.copy_within(start..filled, 0);
            filled -= start;
        }
    }
    scanner.scan.size = total;
    Ok(scanner.scan)
}

/// Grows `buf` to `len` bytes, reporting an allocation failure as an error.
fn grow(buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    buf.try_reserve_exact(len.saturating_sub(buf.len()))
        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    buf.resize(len, 0);
    Ok(())
}

/// [`scan_stream`] of the file at `path`, opened as a reader must open a
/// session file: never through a symlink at `path`, never blocking on a
/// FIFO, and only if it is a regular file (`InvalidInput` otherwise).
pub fn scan_path(
    path: &Path,
    validate: bool,
    max_line: usize,
    on_event: impl FnMut(Event) -> io::Result<()>,
) -> io::Result<Scan> {
    scan_stream(open_regular(path)?, validate, max_line, on_event)
}

/// Opens `path` for reading without following a link at it or blocking on a
/// FIFO, and refuses anything but a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

// ---------------------------------------------------------------- validation

/// `Ok` when `line` is valid UTF-8 holding exactly one JSON object (with
/// surrounding whitespace) as Python's `json.loads` would accept it; else the
/// byte offset of the first problem and what it is.
pub fn validate_object(line: &[u8]) -> Result<(), (usize, &'static str)> {
    parse_object(line).map(|_| ())
}

/// The raw JSON text of the top-level `record_type` and `id` values of a
/// record (the last of each when a key repeats, as `json.loads` keeps it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TopFields<'a> {
    pub record_type: Option<&'a [u8]>,
    pub id: Option<&'a [u8]>,
}

/// [`validate_object`], also returning the top-level fields the recovery
/// rule needs (found in the same pass: no second walk over the line).
pub fn parse_object(line: &[u8]) -> Result<TopFields<'_>, (usize, &'static str)> {
    // SIMD validation: on payloads heavy in accents, CJK and emoji, std's
    // byte-wise check was about as slow as the JSON parse that follows.
    if let Err(e) = simdutf8::compat::from_utf8(line) {
        return Err((e.valid_up_to(), "invalid UTF-8"));
    }
    let mut p = Parser {
        s: line,
        i: 0,
        capture: None,
        fields: [None, None],
    };
    p.skip_ws();
    let top = p.peek();
    p.value()?;
    p.skip_ws();
    if p.i != line.len() {
        return Err((p.i, "extra data after the record"));
    }
    if top != Some(b'{') {
        return Err((0, "record is not a JSON object"));
    }
    let field = |slot: Option<(usize, usize)>| slot.map(|(start, end)| &line[start..end]);
    Ok(TopFields {
        record_type: field(p.fields[0]),
        id: field(p.fields[1]),
    })
}

/// Top-level keys whose values [`parse_object`] returns, by slot.
const CAPTURED_KEYS: [&[u8]; 2] = [b"\"record_type\"", b"\"id\""];

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// While the value of a captured top-level key is being parsed: its
    /// slot and where the value starts.
    capture: Option<(usize, usize)>,
    fields: [Option<(usize, usize)>; 2],
}

type Step = Result<(), (usize, &'static str)>;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn fail<T>(&self, reason: &'static str) -> Result<T, (usize, &'static str)> {
        Err((self.i, reason))
    }

    /// JSON whitespace as Python's `json` module defines it.
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// One value, nesting tracked on an explicit stack (no recursion, so no
    /// stack overflow on hostile input).
    fn value(&mut self) -> Step {
        let mut stack: Vec<u8> = Vec::new();
        loop {
            // A value is expected at `self.i`.
            self.skip_ws();
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    self.i += 1;
                    self.skip_ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                    } else {
                        if stack.len() == MAX_DEPTH {
                            return self.fail("nested too deeply");
                        }
                        stack.push(open);
                        if open == b'{' {
                            self.key(stack.len())?;
                        }
                        continue;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'N') => self.literal(b"NaN")?,
                Some(b'I') => self.literal(b"Infinity")?,
                _ => return self.fail("expecting a value"),
            }
            // A value ended: close containers until one wants another value.
            loop {
                if stack.len() == 1 {
                    if let Some((slot, start)) = self.capture.take() {
                        self.fields[slot] = Some((start, self.i));
                    }
                }
                let Some(&open) = stack.last() else {
                    return Ok(());
                };
                self.skip_ws();
                let close = if open == b'{' { b'}' } else { b']' };
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if open == b'{' {
                            self.key(stack.len())?;
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return self.fail("expecting ',' or a closing bracket"),
                }
            }
        }
    }

    /// `"key" :` inside an object nested `depth` deep (1: the record itself).
    fn key(&mut self, depth: usize) -> Step {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return self.fail("expecting a property name in double quotes");
        }
        let start = self.i;
        self.string()?;
        let key = &self.s[start..self.i];
        self.skip_ws();
        if self.peek() != Some(b':') {
            return self.fail("expecting ':'");
        }
        self.i += 1;
        if depth == 1 {
            // A key spelled with escapes is not captured: the writers never
            // escape these keys, and such a record is then "without a
            // record_type", a crash tail, rather than guessed at.
            if let Some(slot) = CAPTURED_KEYS.iter().position(|k| *k == key) {
                self.skip_ws();
                self.capture = Some((slot, self.i));
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Step {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.fail("expecting a value")
        }
    }

    /// Python's `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`, or `-Infinity`.
    /// Optional parts are taken only when complete, like the regex: `1.` is
    /// the number `1` followed by a stray `.`, which the caller rejects.
    fn number(&mut self) -> Step {
        if self.peek() == Some(b'-') {
            self.i += 1;
            if self.peek() == Some(b'I') {
                return self.literal(b"Infinity");
            }
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.fail("expecting a value"),
        }
        if self.peek() == Some(b'.') && self.digit_at(self.i + 1) {
            self.i += 1;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.s.get(self.i + 1), Some(b'+' | b'-')));
            if self.digit_at(self.i + 1 + sign) {
                self.i += 1 + sign;
                self.digits();
            }
        }
        Ok(())
    }

    fn digit_at(&self, at: usize) -> bool {
        self.s.get(at).is_some_and(u8::is_ascii_digit)
    }

    fn digits(&mut self) {
        while self.digit_at(self.i) {
            self.i += 1;
        }
    }

    /// A string in strict mode: no raw control characters, only the escapes
    /// JSON defines (`\uXXXX` with any hex case; lone surrogates allowed, as
    /// Python allows them). UTF-8 was checked for the whole line already.
    fn string(&mut self) -> Step {
        self.i += 1; // the opening quote
        loop {
            // Strings are most of a record: find the next quote or backslash
            // with memchr, then check the bytes skipped for control characters
            // in a branch-free loop (both vectorize).
            let rest = &self.s[self.i..];
            let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
            let span = &rest[..end];
            if span.iter().fold(false, |seen, &c| seen | (c < 0x20)) {
                self.i += span.iter().position(|&c| c < 0x20).unwrap_or(0);
                return self.fail("invalid control character in string");
            }
            self.i += end;
            match self.peek() {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(_) => {
                    // A backslash.
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.s.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.fail("invalid \\uXXXX escape");
                            }
                            self.i += 5;
                        }
                        _ => return self.fail("invalid escape"),
                    }
                }
            }
        }
    }
}

// The line limit, torn tails past it, streaming events: scan/limit_tests.rs.
#[cfg(test)]
mod limit_tests;

// The scanner's own tests, and the fixtures the other test files share: scan/tests.rs.
#[cfg(test)]
mod tests;
