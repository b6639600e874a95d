//! The fixed bytes of a record line as `json.dumps(record, ensure_ascii=False)`
//! writes the builders' dicts (`sessionwal.records`): default separators
//! `", "` and `": "`, keys in the builders' order, `record_type` first.
//!
//! One home for what the writer emits around a chunk's values and what the
//! scanner recognises a line by, so the two cannot drift apart. The Python
//! tests tie these bytes to `build_chunk_record` + `json.dumps` through
//! `sessionwal._native.CHUNK_FRAMING`.

/// Every record line starts with this, then the record type and `"`.
pub const RECORD_TYPE_KEY: &[u8] = b"{\"record_type\": \"";
/// The `record_type` of a chunk record.
pub const CHUNK_TYPE: &[u8] = b"chunk";
/// A chunk line up to its `index` value:
/// [`RECORD_TYPE_KEY`] + [`CHUNK_TYPE`] + `", "index": `.
pub const CHUNK_PREFIX: &[u8] = b"{\"record_type\": \"chunk\", \"index\": ";
/// Between the `index` value and the `kind` value.
pub const CHUNK_KIND_KEY: &[u8] = b", \"kind\": ";
/// Between the `kind` value and the `payload` value.
pub const CHUNK_PAYLOAD_KEY: &[u8] = b", \"payload\": ";
/// After the `payload` value: the record's close and the line's newline.
pub const CHUNK_END: &[u8] = b"}\n";

/// The pieces in line order, by name: what `_native.CHUNK_FRAMING` exposes.
pub const CHUNK_FRAMING: [(&str, &[u8]); 4] = [
    ("prefix", CHUNK_PREFIX),
    ("kind_key", CHUNK_KIND_KEY),
    ("payload_key", CHUNK_PAYLOAD_KEY),
    ("end", CHUNK_END),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_prefix_is_the_record_type_key_then_chunk_then_the_index_key() {
        let mut built = RECORD_TYPE_KEY.to_vec();
        built.extend_from_slice(CHUNK_TYPE);
        built.extend_from_slice(b"\", \"index\": ");
        assert_eq!(built, CHUNK_PREFIX);
    }
}
