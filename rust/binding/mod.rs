//! The `sessionwal._native` extension module.

// The asyncio writer's doorbell is an eventfd or pipe the event loop
// watches with add_reader, which Windows' default (proactor) loop lacks:
// NativeAsyncWriter is unix-only.
#[cfg(unix)]
mod aio;
mod batch;
mod encoding;
mod errors;
mod scan;
mod session;
mod writer;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<writer::NativeWriter>()?;
    #[cfg(unix)]
    m.add_class::<aio::NativeAsyncWriter>()?;
    m.add_function(wrap_pyfunction!(encoding::encode_record, m)?)?;
    m.add_function(wrap_pyfunction!(scan::scan_file, m)?)?;
    m.add_function(wrap_pyfunction!(scan::recover, m)?)?;
    m.add("MAX_LINE_BYTES", crate::scan::MAX_LINE_BYTES)?;
    let framing = PyDict::new(m.py());
    for (name, bytes) in crate::framing::CHUNK_FRAMING {
        framing.set_item(name, PyBytes::new(m.py(), bytes))?;
    }
    m.add("CHUNK_FRAMING", framing)?;
    let wide = crate::encode::string::WideEncoder::selected();
    m.add("STRING_ENCODER", wide.name())?;
    Ok(())
}
