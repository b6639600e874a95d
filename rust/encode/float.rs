//! PLACEHOLDER until the tuned version lands: Python float repr via Rust formatting.
pub fn write_float(buf: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        buf.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        buf.extend_from_slice(if value > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
    } else {
        let mut b = zmij::Buffer::new();
        buf.extend_from_slice(b.format_finite(value).as_bytes());
    }
}
