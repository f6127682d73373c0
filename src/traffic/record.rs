//! Recording what each operation did: its outcome, its latency from the scheduled start and from the
//! actual send, and a rate-limited log line for failures.
//!
//! Every handle is resolved once, when the traffic starts, and every `outcome` label value exists from
//! the first scrape (at 0), so `rate()` and ratio alerts work immediately.

use crate::metrics::Metrics;
use prometheus::{Histogram, IntCounter};
use serde::Serialize;
use std::sync::Mutex;
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
    exact: Mutex<ExactLatency>,
    start: Instant,
    last_log_ms: AtomicU64,
    suppressed: AtomicU64,
}

/// Exact latency distributions (HDR histograms, microseconds, 3 significant digits) beside the
/// Prometheus buckets: `chatload check` and the status page report percentiles from these.
pub struct ExactLatency {
    /// From the scheduled start.
    pub duration: hdrhistogram::Histogram<u64>,
    /// From the send.
    pub service: hdrhistogram::Histogram<u64>,
}

/// An HDR histogram for latencies in microseconds, 1 µs to 1 h, 3 significant digits.
pub fn exact_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid HDR bounds")
}

/// `d` in whole microseconds, at least 1 (the histogram's lowest value).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl ExactLatency {
    fn new() -> Self {
        Self {
            duration: exact_histogram(),
            service: exact_histogram(),
        }
    }
}

/// Percentiles of one distribution, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Observations.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Read the percentiles of an HDR histogram recorded in microseconds.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let s = |us: u64| us as f64 / 1e6;
        Self {
            count: h.len(),
            mean: h.mean() / 1e6,
            p50: s(h.value_at_quantile(0.5)),
            p90: s(h.value_at_quantile(0.9)),
            p99: s(h.value_at_quantile(0.99)),
            p999: s(h.value_at_quantile(0.999)),
            max: s(h.max()),
        }
    }
}

/// What one (backend, op) did: counts per outcome and exact latency percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpSnapshot {
    /// Operations per outcome label.
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Latency from the scheduled start.
    pub duration: Percentiles,
    /// Latency from the send.
    pub service: Percentiles,
}

impl OpSnapshot {
    /// Operations with `outcome`.
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(outcome.label()).copied().unwrap_or(0)
    }

    /// Every operation, whatever its outcome.
    pub fn total(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// The counts of `self` minus those of an earlier snapshot (percentiles are kept as they are).
    pub fn minus_counts(&self, earlier: &OpSnapshot) -> OpSnapshot {
        let mut d = self.clone();
        for (k, v) in d.outcomes.iter_mut() {
            *v -= earlier.outcomes.get(k).copied().unwrap_or(0).min(*v);
        }
        d
    }
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
            exact: Mutex::new(ExactLatency::new()),
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
        let (duration, service) = (done - scheduled, done - sent);
        self.duration.observe(duration.as_secs_f64());
        self.service.observe(service.as_secs_f64());
        let mut exact = self.exact.lock().unwrap_or_else(|e| e.into_inner());
        exact.duration.saturating_record(micros(duration));
        exact.service.saturating_record(micros(service));
    }

    /// Counts so far and exact percentiles since the start (or the last [`OpRecorder::reset_exact`]).
    pub fn snapshot(&self) -> OpSnapshot {
        let exact = self.exact.lock().unwrap_or_else(|e| e.into_inner());
        OpSnapshot {
            outcomes: Outcome::ALL
                .iter()
                .map(|o| (o.label(), self.total(*o)))
                .collect(),
            duration: Percentiles::of(&exact.duration),
            service: Percentiles::of(&exact.service),
        }
    }

    /// Forget the exact latencies recorded so far (the end of a warm-up).
    pub fn reset_exact(&self) {
        let mut exact = self.exact.lock().unwrap_or_else(|e| e.into_inner());
        exact.duration.reset();
        exact.service.reset();
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
        let snap = r.snapshot();
        assert_eq!(snap.get(Outcome::Ok), 10);
        assert_eq!(snap.total(), 12);
        assert_eq!(snap.duration.count, 1);
        assert!(
            (snap.duration.p99 - 0.004).abs() < 0.00001,
            "{:?}",
            snap.duration
        );
        assert!(
            (snap.service.max - 0.001).abs() < 0.000002,
            "{:?}",
            snap.service
        );
        r.reset_exact();
        assert_eq!(r.snapshot().duration.count, 0);
        assert_eq!(
            r.snapshot().get(Outcome::Ok),
            10,
            "counters are never reset"
        );
    }

    #[test]
    fn exact_percentiles_are_not_bucket_interpolated() {
        let m = Metrics::new("t");
        let r = OpRecorder::new(&m, "scylla", "write");
        let t0 = Instant::now();
        // 990 requests of 1.2 ms and 10 of 3.3 ms: p99 is 1.2 ms, p99.9 is 3.3 ms.
        for i in 0..1000 {
            let d = if i < 990 { 1200 } else { 3300 };
            r.completed(Outcome::Ok, 1, t0, t0, t0 + Duration::from_micros(d));
        }
        let p = r.snapshot().duration;
        assert!((p.p99 - 0.0012).abs() < 0.000002, "{p:?}");
        assert!((p.p999 - 0.0033).abs() < 0.000004, "{p:?}");
        assert_eq!(p.count, 1000);
    }
}
