//! sessionwal's native core.
//!
//! `file`, `sync_mode`, `syncer`, `sys`, `fork`, `queue`, `engine`,
//! `doorbell`, `scan`, `framing` and `error` are plain Rust: the
//! write-ahead-log file layer, the asyncio writer's queue, shared I/O engine
//! and event-loop doorbell, the session-file scanner and the record bytes it
//! shares with the writer, unit-tested without an interpreter.
//! `encode` walks Python objects into JSON bytes; `binding` is the one
//! pyo3 module that ties them to the Python shim.

#[cfg(unix)]
pub mod doorbell;
pub mod encode;
pub mod engine;
pub mod error;
pub mod file;
pub mod fork;
pub mod framing;
pub mod queue;
pub mod scan;
pub mod sync_mode;
pub mod syncer;
pub mod sys;

mod binding;

/// The stand-in for a crate boundary (docs/architecture.md, "Crate layout"):
/// the plain-Rust core must not reach for pyo3 or for the pyo3 modules.
#[cfg(test)]
mod layering {
    const CORE: [(&str, &str); 14] = [
        ("doorbell.rs", include_str!("doorbell.rs")),
        ("engine.rs", include_str!("engine.rs")),
        ("engine_tests.rs", include_str!("engine_tests.rs")),
        ("error.rs", include_str!("error.rs")),
        ("file.rs", include_str!("file.rs")),
        ("fork.rs", include_str!("fork.rs")),
        ("framing.rs", include_str!("framing.rs")),
        ("queue.rs", include_str!("queue.rs")),
        ("queue_tests.rs", include_str!("queue_tests.rs")),
        ("scan.rs", include_str!("scan.rs")),
        ("sync_mode.rs", include_str!("sync_mode.rs")),
        ("syncer.rs", include_str!("syncer.rs")),
        ("sys.rs", include_str!("sys.rs")),
        ("file/tests.rs", include_str!("file/tests.rs")),
    ];

    #[test]
    fn the_core_uses_neither_pyo3_nor_the_encoder_nor_the_binding() {
        for (name, source) in CORE {
            for forbidden in ["pyo3", "crate::encode", "crate::binding"] {
                assert!(!source.contains(forbidden), "{name} mentions {forbidden}");
            }
        }
    }
}
