//! Free disk space: when the data directory's disk is nearly full, the server refuses what
//! would grow it (new messages and rooms, sign-ups, uploads) with the transient
//! `storage_full`, and goes on serving everything else — reads, catch-up, sign-in, Join,
//! replays of requests it already committed. SQLite on a full disk fails mid-transaction;
//! refusing early keeps every acknowledged write whole.
//!
//! The free space is read when the server starts and then every few seconds by a
//! background task (a `statvfs`, cheap), not on every request.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
};

use tidings_proto::ErrorCode;

use crate::error::OpError;

/// How often the free space is read again.
pub(crate) const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the data directory's disk has room for more.
#[derive(Debug)]
pub(crate) struct DiskWatch {
    dir: PathBuf,
    min_free: u64,
    full: AtomicBool,
}

impl DiskWatch {
    /// Watches `dir`, counting it full below `min_free` bytes available.
    pub(crate) fn new(dir: PathBuf, min_free: u64) -> Self {
        let watch = Self { dir, min_free, full: AtomicBool::new(false) };
        watch.refresh();
        watch
    }

    /// Reads the free space again.
    pub(crate) fn refresh(&self) {
        let full = match available(&self.dir) {
            Some(free) => free < self.min_free,
            // Unknown (a platform without statvfs): never refuse for it.
            None => false,
        };
        if full != self.full.swap(full, Ordering::AcqRel) {
            if full {
                tracing::error!(dir = %self.dir.display(), "The disk is nearly full: refusing writes.");
            } else {
                tracing::info!("There is disk space again: taking writes.");
            }
        }
    }

    /// `storage_full` while the disk is nearly full.
    pub(crate) fn check(&self) -> Result<(), OpError> {
        if self.full.load(Ordering::Acquire) {
            return Err(OpError::new(
                ErrorCode::StorageFull,
                "the server's disk is full; what you send is kept and sent later",
            ));
        }
        Ok(())
    }
}

/// Bytes available to this process on the filesystem of `dir`.
#[cfg(unix)]
fn available(dir: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn available(_dir: &std::path::Path) -> Option<u64> {
    None
}
