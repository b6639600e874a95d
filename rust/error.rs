//! The one error type of the file layer. The binding turns each variant into
//! the Python exception the pure reference raises (see `binding/errors.rs`).

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum WalError {
    /// An OS call failed; `path` is the file it was about, when there is one.
    Io {
        source: io::Error,
        path: Option<PathBuf>,
    },
    /// Another open file description holds the flock on the partial file.
    Locked { partial_path: PathBuf },
    /// The writer was closed or abandoned; `final_path` names it like the seed does.
    Closed { final_path: PathBuf },
    /// An earlier failure left the file in a state the writer cannot vouch for.
    Poisoned { reason: String },
    /// This process is a `fork()` child of the process that opened the file.
    Forked,
    /// The partial path no longer names the file this writer holds locked.
    Replaced { partial_path: PathBuf },
    /// Something other than a regular file (a FIFO, a device) sits at the path.
    NotRegular { path: PathBuf },
    /// A reopened file's end is not one the recovery rule may cut back to.
    Unrecoverable { path: PathBuf, reason: String },
}

pub type Result<T, E = WalError> = std::result::Result<T, E>;

impl WalError {
    pub fn io_at(source: io::Error, path: impl Into<PathBuf>) -> Self {
        WalError::Io {
            source,
            path: Some(path.into()),
        }
    }
}

impl WalError {
    /// An equal error, for a failure that is reported more than once (the
    /// asyncio writer's latched write failure). `io::Error` is not `Clone`.
    pub fn duplicate(&self) -> WalError {
        match self {
            WalError::Io { source, path } => WalError::Io {
                source: match source.raw_os_error() {
                    Some(errno) => io::Error::from_raw_os_error(errno),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
                path: path.clone(),
            },
            WalError::Locked { partial_path } => WalError::Locked {
                partial_path: partial_path.clone(),
            },
            WalError::Closed { final_path } => WalError::Closed {
                final_path: final_path.clone(),
            },
            WalError::Poisoned { reason } => WalError::Poisoned {
                reason: reason.clone(),
            },
            WalError::Forked => WalError::Forked,
            WalError::Replaced { partial_path } => WalError::Replaced {
                partial_path: partial_path.clone(),
            },
            WalError::NotRegular { path } => WalError::NotRegular { path: path.clone() },
            WalError::Unrecoverable { path, reason } => WalError::Unrecoverable {
                path: path.clone(),
                reason: reason.clone(),
            },
        }
    }
}

impl From<io::Error> for WalError {
    fn from(source: io::Error) -> Self {
        WalError::Io { source, path: None }
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { source, path: None } => write!(f, "{source}"),
            WalError::Io {
                source,
                path: Some(path),
            } => write!(f, "{source}: '{}'", path.display()),
            WalError::Locked { partial_path } => write!(
                f,
                "another process is already writing to '{}'; refusing to interleave appends",
                partial_path.display()
            ),
            WalError::Closed { final_path } => write!(
                f,
                "SessionWriter({}) is closed; cannot append more chunks",
                final_path.display()
            ),
            WalError::Poisoned { reason } => write!(
                f,
                "session writer is unusable after an earlier failure ({reason}); \
                 the partial file is left as it is"
            ),
            WalError::Forked => write!(
                f,
                "session writer was opened by the parent of this forked process; \
                 refusing to write from the child"
            ),
            WalError::Replaced { partial_path } => write!(
                f,
                "'{}' was replaced or removed while this writer held it; refusing to continue",
                partial_path.display()
            ),
            WalError::NotRegular { path } => write!(
                f,
                "'{}' is not a regular file; refusing to use it as a session log",
                path.display()
            ),
            WalError::Unrecoverable { path, reason } => {
                write!(f, "cannot reopen '{}': {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
