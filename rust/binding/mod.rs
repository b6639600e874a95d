//! The `sessionwal._native` extension module.

// The asyncio writer's doorbell is an eventfd or pipe the event loop
// watches with add_reader, which Windows' default (proactor) loop lacks:
// NativeAsyncWriter is unix-only.
#[cfg(unix)]
mod aio;
mod batch;
mod errors;
mod scan;
mod writer;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<writer::NativeWriter>()?;
    #[cfg(unix)]
    m.add_class::<aio::NativeAsyncWriter>()?;
    m.add_function(wrap_pyfunction!(writer::encode_record, m)?)?;
    m.add_function(wrap_pyfunction!(scan::scan_file, m)?)?;
    m.add_function(wrap_pyfunction!(scan::recover, m)?)?;
    m.add("MAX_LINE_BYTES", crate::scan::MAX_LINE_BYTES)?;
    let wide = crate::encode::string::WideEncoder::selected();
    m.add("STRING_ENCODER", wide.name())?;
    Ok(())
}
