//! sessionwal's native core.
//!
//! `file`, `sync_mode`, `syncer`, `sys`, `fork`, `queue`, `engine`,
//! `doorbell` and `error` are plain Rust: the write-ahead-log file layer and
//! the asyncio writer's queue, shared I/O engine and event-loop doorbell,
//! unit-tested without an interpreter.
//! `encode` walks Python objects into JSON bytes; `binding` is the one
//! pyo3 module that ties them to the Python shim.

#[cfg(unix)]
pub mod doorbell;
pub mod encode;
pub mod engine;
pub mod error;
pub mod file;
pub mod fork;
pub mod queue;
pub mod scan;
pub mod sync_mode;
pub mod syncer;
pub mod sys;

mod binding;
