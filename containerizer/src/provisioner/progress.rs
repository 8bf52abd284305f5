//! Reporting a pull's progress: bytes per layer and in total. The
//! provisioner logs it; the CLI draws a bar from the same events.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::digest::Digest;

/// Receives a pull's progress; calls come from many download tasks.
pub trait Progress: Send + Sync {
    /// A blob of `size` bytes starts downloading (`resumed_at` bytes were
    /// already on disk from an earlier, interrupted pull).
    fn started(&self, digest: &Digest, size: u64, resumed_at: u64);
    /// `bytes` more bytes of `digest` arrived.
    fn advanced(&self, digest: &Digest, bytes: u64);
    /// The blob was verified and stored (or was already present).
    fn finished(&self, digest: &Digest);
}

/// Logs progress with tracing: each blob's start and end, and at most
/// every few seconds the bytes so far.
pub struct LogProgress {
    state: Mutex<LogState>,
}

struct LogState {
    total: u64,
    done: u64,
    last: Instant,
}

const LOG_EVERY: Duration = Duration::from_secs(5);

impl Default for LogProgress {
    fn default() -> Self {
        Self {
            state: Mutex::new(LogState {
                total: 0,
                done: 0,
                last: Instant::now(),
            }),
        }
    }
}

impl Progress for LogProgress {
    fn started(&self, digest: &Digest, size: u64, resumed_at: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.total += size;
            s.done += resumed_at;
        }
        tracing::info!(%digest, size, resumed_at, "downloading blob");
    }

    fn advanced(&self, _digest: &Digest, bytes: u64) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.done += bytes;
        if s.last.elapsed() >= LOG_EVERY {
            s.last = Instant::now();
            tracing::info!(done = s.done, total = s.total, "pull progress");
        }
    }

    fn finished(&self, digest: &Digest) {
        tracing::debug!(%digest, "blob stored");
    }
}

/// Progress nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {
    fn started(&self, _: &Digest, _: u64, _: u64) {}
    fn advanced(&self, _: &Digest, _: u64) {}
    fn finished(&self, _: &Digest) {}
}
