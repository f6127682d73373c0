//! The pacer's heartbeat and chatload's readiness: written by the traffic and the daemon, read by
//! `/healthz` and `/readyz`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Liveness and readiness, shared between the scheduler (which beats) and the HTTP server (which reads).
#[derive(Debug)]
pub struct Health {
    start: Instant,
    last_beat_ms: AtomicU64,
    ready: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self::since(Instant::now())
    }
}

impl Health {
    /// Health of a process started at `start` that has not beaten yet and is not ready.
    pub fn since(start: Instant) -> Self {
        Self {
            start,
            last_beat_ms: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        }
    }

    /// The scheduler is alive now.
    pub fn beat(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn heartbeat_age(&self) -> Duration {
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Mark chatload ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether chatload is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
