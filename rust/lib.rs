//! sessionwal's native core.
//!
//! `file`, `sync_mode`, `syncer`, `sys`, `fork`, `queue` and `error` are
//! plain Rust: the write-ahead-log file layer and the asyncio writer's
//! background queue, unit-tested without an interpreter.
//! `encode` walks Python objects into JSON bytes; `binding` is the one
//! pyo3 module that ties them to the Python shim.

pub mod encode;
pub mod error;
pub mod file;
pub mod fork;
pub mod queue;
pub mod scan;
pub mod sync_mode;
pub mod syncer;
pub mod sys;

mod binding;
