//! Records to line bytes, for every write path: the sync writer's
//! `write_chunk` / `write_chunks` (through `batch.rs`), the asyncio writer's
//! `awrite_chunk(s)`, headers, trailers and `encode_record`.
//!
//! Each path encodes into this thread's scratch buffer while attached and
//! hands the bytes on; nothing here knows about files or queues.

use std::cell::Cell;
use std::sync::OnceLock;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;

use crate::encode::defer;
use crate::encode::{self, Unsupported};
use crate::framing::{CHUNK_END, CHUNK_KIND_KEY, CHUNK_PAYLOAD_KEY, CHUNK_PREFIX};

/// Scratch buffers above this size are dropped after use rather than kept,
/// so one huge record does not pin memory for the life of the thread.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

thread_local! {
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's reusable encode buffer, emptied. Taking the
/// buffer out (rather than borrowing it) keeps a re-entrant call safe.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = SCRATCH.with(Cell::take);
    buf.clear();
    let result = f(&mut buf);
    if buf.capacity() <= SCRATCH_KEEP_BYTES {
        SCRATCH.with(|slot| slot.set(buf));
    }
    result
}

static ENCODE_LINE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ENCODE_CHUNK_LINE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CHUNK_KIND_VALUE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static STR_ENUM_IS_ITS_VALUE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Appends `record` + newline; Python's `json.dumps` when the fast path declines.
pub(super) fn encode_record_into(
    py: Python<'_>,
    buf: &mut Vec<u8>,
    record: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let start = buf.len();
    // SAFETY: attached (we hold `py`), and `record` is a live object.
    if unsafe { encode::encode(buf, record.as_ptr(), 0) }.is_ok() {
        buf.push(b'\n');
        return Ok(());
    }
    buf.truncate(start);
    defer::rollback_from(buf, start);
    let line = ENCODE_LINE
        .import(py, "sessionwal._fallback", "encode_line")?
        .call1((record,))?;
    buf.extend_from_slice(line.cast::<PyBytes>()?.as_bytes());
    Ok(())
}

/// Encodes one record with the native encoder, falling back to `json.dumps`:
/// exactly the bytes (and errors) of `json.dumps(record, ensure_ascii=False) + "\n"`.
#[pyfunction]
pub fn encode_record<'py>(
    py: Python<'py>,
    record: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    with_scratch(|buf| {
        encode_record_into(py, buf, record)?;
        Ok(PyBytes::new(py, buf))
    })
}

/// Turns `(index, row)` into a chunk line; one per writer, since a writer
/// subclass may bring its own `build_chunk_record`.
#[derive(Default)]
pub(super) struct ChunkEncoder {
    /// A subclass's `build_chunk_record`; `None` means native chunk framing.
    chunk_builder: OnceLock<Option<Py<PyAny>>>,
    /// A str-Enum kind type whose members serialize as their `.value`,
    /// so its members can skip the Python call for `.value`.
    plain_kind_type: OnceLock<Py<PyAny>>,
}

impl ChunkEncoder {
    /// Uses `builder` (a subclass's `build_chunk_record`) instead of native framing.
    pub(super) fn set_builder(&self, builder: Option<Py<PyAny>>) {
        let _ = self.chunk_builder.set(builder);
    }

    pub(super) fn encode_chunk_into(
        &self,
        py: Python<'_>,
        buf: &mut Vec<u8>,
        index: &Bound<'_, PyAny>,
        row: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Some(builder) = self.chunk_builder.get().and_then(Option::as_ref) {
            let record = builder.bind(py).call1((index, row))?;
            return encode_record_into(py, buf, &record);
        }
        let kind = row.getattr(intern!(py, "kind"))?;
        let payload = row.getattr(intern!(py, "payload"))?;
        let start = buf.len();
        if self
            .encode_chunk_fast(py, buf, index, &kind, &payload)
            .is_ok()
        {
            return Ok(());
        }
        buf.truncate(start);
        defer::rollback_from(buf, start);
        let line = ENCODE_CHUNK_LINE
            .import(py, "sessionwal._fallback", "encode_chunk_line")?
            .call1((index, row))?;
        buf.extend_from_slice(line.cast::<PyBytes>()?.as_bytes());
        Ok(())
    }

    /// The chunk record framed natively, keys in the builder's order.
    fn encode_chunk_fast(
        &self,
        py: Python<'_>,
        buf: &mut Vec<u8>,
        index: &Bound<'_, PyAny>,
        kind: &Bound<'_, PyAny>,
        payload: &Bound<'_, PyAny>,
    ) -> Result<(), Unsupported> {
        buf.extend_from_slice(CHUNK_PREFIX);
        // SAFETY (all three): attached, live objects; depth 1 is inside the record.
        unsafe { encode::encode(buf, index.as_ptr(), 1)? };
        buf.extend_from_slice(CHUNK_KIND_KEY);
        let kind_type = kind.get_type();
        let plain = self
            .plain_kind_type
            .get()
            .is_some_and(|known| known.is(&kind_type));
        if kind_type.is(py.get_type::<pyo3::types::PyString>()) || plain {
            unsafe { encode::write_pystr(buf, kind.as_ptr())? };
        } else {
            self.encode_kind_value(py, buf, kind)?;
        }
        buf.extend_from_slice(CHUNK_PAYLOAD_KEY);
        unsafe { encode::encode(buf, payload.as_ptr(), 1)? };
        buf.extend_from_slice(CHUNK_END);
        Ok(())
    }

    /// `kind.value` for enums (what the record builder writes), learning
    /// str-Enum types whose members are their own values.
    #[cold]
    fn encode_kind_value(
        &self,
        py: Python<'_>,
        buf: &mut Vec<u8>,
        kind: &Bound<'_, PyAny>,
    ) -> Result<(), Unsupported> {
        let value = CHUNK_KIND_VALUE
            .import(py, "sessionwal.records", "chunk_kind_value")
            .and_then(|f| f.call1((kind,)))
            .map_err(|_| Unsupported)?;
        // SAFETY: attached, live object.
        unsafe { encode::encode(buf, value.as_ptr(), 1)? };
        if self.plain_kind_type.get().is_none() {
            let kind_type = kind.get_type();
            let plain = STR_ENUM_IS_ITS_VALUE
                .import(py, "sessionwal.records", "str_enum_is_its_value")
                .and_then(|f| f.call1((&kind_type,)))
                .and_then(|r| r.is_truthy())
                .unwrap_or(false);
            if plain {
                let _ = self.plain_kind_type.set(kind_type.into_any().unbind());
            }
        }
        Ok(())
    }
}
