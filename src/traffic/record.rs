//! Recording what each operation did: its outcome, its latency from the scheduled start and from the
//! actual send, and a rate-limited log line for failures.
//!
//! Every handle is resolved once, when the traffic starts, and every `outcome` label value exists from
//! the first scrape (at 0), so `rate()` and ratio alerts work immediately.

use crate::metrics::Metrics;
use prometheus::{Histogram, IntCounter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// How an operation ended; the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Succeeded.
    Ok,
    /// Failed for another reason than the ones below.
    Error,
    /// Client-side timeout, or the server's read/write timeout.
    Timeout,
    /// The server said it is overloaded (or rate-limited).
    Overloaded,
    /// Not enough replicas, no connection, or no session at all.
    Unavailable,
    /// Not started: the in-flight cap was reached.
    Dropped,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::Overloaded,
        Outcome::Unavailable,
        Outcome::Dropped,
    ];

    /// The `outcome` label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Overloaded => "overloaded",
            Outcome::Unavailable => "unavailable",
            Outcome::Dropped => "dropped",
        }
    }
}

/// Failures are logged at most this often per (backend, op); the metric counts every one.
pub const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The metric handles of one (backend, op).
pub struct OpRecorder {
    backend: &'static str,
    op: &'static str,
    outcomes: [IntCounter; 6],
    duration: Histogram,
    service: Histogram,
    start: Instant,
    last_log_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl OpRecorder {
    /// Resolve the handles of `backend`/`op` and create every outcome series at 0.
    pub fn new(metrics: &Metrics, backend: &'static str, op: &'static str) -> Self {
        Self {
            backend,
            op,
            outcomes: Outcome::ALL.map(|o| {
                metrics
                    .operations
                    .with_label_values(&[backend, op, o.label()])
            }),
            duration: metrics.operation_duration.with_label_values(&[backend, op]),
            service: metrics.operation_service.with_label_values(&[backend, op]),
            start: Instant::now(),
            last_log_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Count `n` operations (messages) that ended with `outcome` without being sent (dropped, no session).
    pub fn count(&self, outcome: Outcome, n: u64) {
        self.outcomes[outcome as usize].inc_by(n);
    }

    /// One request carrying `n` operations completed: count them and observe its latency from the
    /// scheduled start (`done - scheduled`) and from the send (`done - sent`).
    pub fn completed(
        &self,
        outcome: Outcome,
        n: u64,
        scheduled: Instant,
        sent: Instant,
        done: Instant,
    ) {
        self.count(outcome, n);
        self.duration.observe((done - scheduled).as_secs_f64());
        self.service.observe((done - sent).as_secs_f64());
    }

    /// How many operations ended with `outcome` so far.
    pub fn total(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize].get()
    }

    /// The latency histograms: from the scheduled start, and from the send.
    pub fn histograms(&self) -> (&Histogram, &Histogram) {
        (&self.duration, &self.service)
    }

    /// Log a failure (rate-limited, see [`OpRecorder::log_failure`]) and return its outcome.
    pub fn failed(&self, outcome: Outcome, error: &dyn std::fmt::Display) -> Outcome {
        self.log_failure(outcome, error);
        outcome
    }

    /// Log a failure, unless one was logged less than [`ERROR_LOG_INTERVAL`] ago (then count it).
    pub fn log_failure(&self, outcome: Outcome, error: &dyn std::fmt::Display) {
        let now_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last_log_ms.load(Ordering::Relaxed);
        let interval = ERROR_LOG_INTERVAL.as_millis() as u64;
        if (last == 0 || now_ms >= last + interval)
            && self
                .last_log_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            warn!(backend = self.backend, op = self.op, outcome = outcome.label(), error = %error,
                  similar_since_last_log = suppressed, "operation failed");
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_exists_from_the_start() {
        let m = Metrics::new("t");
        let _r = OpRecorder::new(&m, "scylla", "write");
        let text = String::from_utf8(m.encode()).unwrap();
        for o in Outcome::ALL {
            let series = format!(
                "chatload_operations_total{{backend=\"scylla\",op=\"write\",outcome=\"{}\"}} 0",
                o.label()
            );
            assert!(text.contains(&series), "{series}");
        }
    }

    #[test]
    fn completed_counts_and_observes_both_latencies() {
        let m = Metrics::new("t");
        let r = OpRecorder::new(&m, "redis", "write");
        let t0 = Instant::now();
        r.completed(
            Outcome::Ok,
            10,
            t0,
            t0 + Duration::from_millis(3),
            t0 + Duration::from_millis(4),
        );
        r.count(Outcome::Dropped, 2);
        assert_eq!(r.outcomes[0].get(), 10);
        assert_eq!(r.outcomes[5].get(), 2);
        assert_eq!(r.duration.get_sample_count(), 1);
        assert!((r.duration.get_sample_sum() - 0.004).abs() < 1e-9);
        assert!((r.service.get_sample_sum() - 0.001).abs() < 1e-9);
    }
}
