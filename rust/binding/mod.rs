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

// On a free-threaded CPython this module asks for the GIL (pyo3 now assumes
// the opposite by default): the encoder walks dicts and lists through
// borrowed references and reads str data in place, safe only while no other
// thread can mutate them, and nothing here has run without the GIL. Importing
// it there re-enables the GIL, with a RuntimeWarning (docs/platforms.md).
#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<writer::NativeWriter>()?;
    #[cfg(unix)]
    {
        m.add_class::<aio::NativeAsyncWriter>()?;
        m.add_class::<aio::NativeDoorbell>()?;
        m.add_function(wrap_pyfunction!(aio::io_threads, m)?)?;
        m.add_function(wrap_pyfunction!(aio::set_io_threads, m)?)?;
        m.add_function(wrap_pyfunction!(aio::drain_io, m)?)?;
    }
    m.add_function(wrap_pyfunction!(encoding::encode_record, m)?)?;
    m.add_function(wrap_pyfunction!(scan::scan_file, m)?)?;
    m.add_function(wrap_pyfunction!(scan::recover, m)?)?;
    let framing = PyDict::new(m.py());
    for (name, bytes) in crate::framing::CHUNK_FRAMING {
        framing.set_item(name, PyBytes::new(m.py(), bytes))?;
    }
    m.add("CHUNK_FRAMING", framing)?;
    let wide = crate::encode::string::WideEncoder::selected();
    m.add("STRING_ENCODER", wide.name())?;
    Ok(())
}
