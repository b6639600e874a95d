//! The `sessionwal._native` extension module.

mod aio;
mod batch;
mod errors;
mod writer;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<writer::NativeWriter>()?;
    m.add_class::<aio::NativeAsyncWriter>()?;
    m.add_function(wrap_pyfunction!(writer::encode_record, m)?)?;
    Ok(())
}
