//! The scanner's bounds: the line limit, torn tails past it, events that
//! stream to a callback and stop at the first invalid line, and the open
//! that refuses links and FIFOs (docs/safety.md).

use std::io;

use super::tests::{file, Trickle, CHUNK, HEADER, TRAILER};
use super::{scan_stream, Scan};

fn stream(data: &[u8], max_line: usize, step: usize) -> (Scan, Vec<u64>) {
    let mut lines = Vec::new();
    let reader = Trickle { data, step };
    let scan = scan_stream(reader, true, max_line, |event| {
        lines.push(event.line);
        Ok(())
    })
    .unwrap();
    (scan, lines)
}

#[test]
fn a_line_longer_than_the_limit_stops_the_scan_with_its_number() {
    let long = format!(r#"{{"record_type": "chunk", "p": "{}"}}"#, "x".repeat(100));
    let data = file(&[HEADER, CHUNK, &long, TRAILER], "");
    for step in [1, 7, 64, usize::MAX] {
        let (scan, events) = stream(&data, long.len() - 1, step);
        assert_eq!(scan.overlong, Some(3), "step {step}");
        assert_eq!((scan.lines, scan.chunks, events), (2, 1, vec![1]));
        // A line exactly at the limit is fine.
        let (scan, _) = stream(&data, long.len(), step);
        assert_eq!((scan.overlong, scan.lines, scan.chunks), (None, 4, 2));
    }
}

#[test]
fn a_torn_tail_longer_than_the_limit_is_counted_not_an_error() {
    let tail = "y".repeat(10_000);
    let data = file(&[HEADER, CHUNK], &tail);
    for step in [1, 333, usize::MAX] {
        let (scan, _) = stream(&data, 100, step);
        assert_eq!(scan.overlong, None);
        assert_eq!(scan.torn_bytes(), tail.len() as u64, "step {step}");
        assert_eq!(scan.size, data.len() as u64);
    }
}

#[test]
fn no_event_after_the_first_invalid_line_and_a_sink_error_stops_the_scan() {
    let data = file(&[HEADER, "{bad", "{\"other\": 1}", CHUNK], "");
    let (scan, events) = stream(&data, 1 << 20, usize::MAX);
    assert_eq!(events, [1]);
    assert_eq!((scan.lines, scan.chunks), (4, 1));
    let mut seen = 0;
    let stopped = scan_stream(&data[..], false, 1 << 20, |_| {
        seen += 1;
        Err(io::Error::other("stop"))
    });
    assert_eq!(stopped.unwrap_err().to_string(), "stop");
    assert_eq!(seen, 1);
}

#[cfg(unix)]
#[test]
fn open_regular_refuses_links_and_fifos_without_blocking() {
    let dir = std::env::temp_dir().join(format!("sessionwal-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("target");
    std::fs::write(&target, b"secret\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("link")).unwrap();
    let err = super::open_regular(&dir.join("link")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    let fifo = std::ffi::CString::new(dir.join("fifo").into_os_string().into_encoded_bytes());
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.unwrap().as_ptr(), 0o600) }, 0);
    let err = super::open_regular(&dir.join("fifo")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    std::fs::remove_dir_all(&dir).unwrap();
}
