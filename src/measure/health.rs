//! The pacer's heartbeat and chatload's readiness: written by the traffic and the daemon, read by
//! `/healthz` and `/readyz`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Liveness and readiness, shared between the scheduler (which beats) and the HTTP server (which reads).
#[derive(Debug)]
pub struct Health {
    start: Instant,
    last_beat_ms: AtomicU64,
    /// One heartbeat per traffic thread: the oldest of them is the scheduler's age.
    pacers: RwLock<Vec<Arc<AtomicU64>>>,
    ready: AtomicBool,
}

/// The heartbeat of one traffic thread (see [`Health::pacer`]).
#[derive(Debug)]
pub struct Heartbeat {
    start: Instant,
    last_beat_ms: Arc<AtomicU64>,
}

impl Heartbeat {
    /// This thread is alive now.
    pub fn beat(&self) {
        self.last_beat_ms
            .store(ms_since(self.start), Ordering::Relaxed);
    }
}

fn ms_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
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
            pacers: RwLock::new(Vec::new()),
            ready: AtomicBool::new(false),
        }
    }

    /// The scheduler is alive now (before any traffic thread has a heartbeat of its own).
    pub fn beat(&self) {
        self.last_beat_ms
            .store(ms_since(self.start), Ordering::Relaxed);
    }

    /// A heartbeat for one more traffic thread, beating from now on; from then on the scheduler
    /// is as old as the stalest of these.
    pub fn pacer(&self) -> Heartbeat {
        let beat = Heartbeat {
            start: self.start,
            last_beat_ms: Arc::new(AtomicU64::new(0)),
        };
        beat.beat();
        self.pacers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(beat.last_beat_ms.clone());
        beat
    }

    /// Time since the last beat: of the stalest traffic thread, once they have heartbeats.
    pub fn heartbeat_age(&self) -> Duration {
        let pacers = self.pacers.read().unwrap_or_else(|e| e.into_inner());
        let last_ms = pacers
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .min()
            .unwrap_or_else(|| self.last_beat_ms.load(Ordering::Relaxed));
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(last_ms))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One stuck traffic thread is a stuck scheduler, however lively the others are.
    #[test]
    fn the_stalest_traffic_thread_is_the_schedulers_age() {
        let started = Instant::now() - Duration::from_secs(100);
        let h = Health::since(started);
        h.beat();
        assert!(h.heartbeat_age() < Duration::from_secs(1));
        let (a, b) = (h.pacer(), h.pacer());
        let stale = ms_since(started) - 30_000;
        b.last_beat_ms.store(stale, Ordering::Relaxed);
        a.beat();
        h.beat();
        let age = h.heartbeat_age();
        assert!(age >= Duration::from_secs(30), "{age:?}");
        b.beat();
        assert!(h.heartbeat_age() < Duration::from_secs(1));
    }
}
