//! Durability modes: when the writer asks the kernel to put data on disk.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub enum SyncMode {
    /// The seed: each record reaches the OS (survives kill -9), no fsync.
    Never,
    /// Also fdatasync the file before the rename and fsync the directory after.
    Close,
    /// `Close`, plus a background fdatasync at most once per interval while dirty.
    Interval(Duration),
    /// fdatasync after every append, before it returns.
    Always,
}

impl SyncMode {
    /// `None` for an unknown name or a non-positive interval.
    pub fn parse(name: &str, interval_seconds: f64) -> Option<Self> {
        match name {
            "never" => Some(SyncMode::Never),
            "close" => Some(SyncMode::Close),
            "always" => Some(SyncMode::Always),
            "interval" => Duration::try_from_secs_f64(interval_seconds)
                .ok()
                .filter(|d| !d.is_zero())
                .map(SyncMode::Interval),
            _ => None,
        }
    }

    pub fn syncs_on_close(&self) -> bool {
        !matches!(self, SyncMode::Never)
    }

    /// Whether records are synced before close (each one, or in the background).
    pub fn syncs_records(&self) -> bool {
        matches!(self, SyncMode::Always | SyncMode::Interval(_))
    }
}
