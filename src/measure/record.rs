//! Recording what each operation did: its outcome, its latency from the scheduled start and from the
//! actual send, and a rate-limited log line for failures.
//!
//! The rule that keeps the numbers true under faults: every operation the timetable made due is
//! counted `due` when it is dispatched and, once its fate is known, counted under exactly one outcome
//! *and* observed exactly once in the scheduled-start histogram, whatever became of it. One that
//! failed, timed out, was dropped or found no session is observed at no less than its deadline (the
//! backend's `request_timeout` after its scheduled start), so an error storm can never make the
//! latency look better. The service-time histogram holds only operations that were sent.
//! So `chatload_operations_due_total` = Σ `chatload_operations_total` + in flight, and
//! `chatload_operation_duration_seconds_count` = Σ `chatload_operations_total`.
//!
//! Every handle is resolved once, when the traffic starts, and every `outcome` label value exists from
//! the first scrape (at 0), so `rate()` and ratio alerts work immediately.

use crate::measure::metrics::Metrics;
use crate::measure::stats::{BucketCounts, ExactLatency, Percentiles, exact_histogram, micros};
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
    /// An operation that did not succeed is observed at no less than this (from its schedule).
    deadline: Duration,
    due: IntCounter,
    outcomes: [IntCounter; 6],
    duration: Histogram,
    service: Histogram,
    exact: Mutex<ExactLatency>,
    start: Instant,
    last_log_ms: AtomicU64,
    suppressed: AtomicU64,
}

/// What one (backend, op) did: counts per outcome and latency percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpSnapshot {
    /// Operations the timetable made due (counted at dispatch).
    pub due: u64,
    /// Operations per outcome label (counted when their fate is known).
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Cumulative bucket counts of the scheduled-start histogram (what Prometheus scrapes).
    #[serde(skip)]
    pub buckets: BucketCounts,
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
        d.due = d.due.saturating_sub(earlier.due);
        for (k, v) in d.outcomes.iter_mut() {
            *v -= earlier.outcomes.get(k).copied().unwrap_or(0).min(*v);
        }
        d.buckets = self.buckets.minus(&earlier.buckets);
        d
    }
}

impl OpRecorder {
    /// Resolve the handles of `backend`/`op` and create every outcome series at 0. An operation that
    /// does not succeed is observed at no less than `deadline` from its scheduled start.
    pub fn new(
        metrics: &Metrics,
        backend: &'static str,
        op: &'static str,
        deadline: Duration,
    ) -> Self {
        Self {
            backend,
            op,
            deadline,
            due: metrics.operations_due.with_label_values(&[backend, op]),
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

    /// `n` operations (messages) were made due by the timetable and dispatched.
    pub fn due(&self, n: u64) {
        self.due.inc_by(n);
    }

    /// `n` due operations ended with `outcome` without being sent (dropped at the in-flight cap, or
    /// no session): count them and observe each at its deadline, so that they weigh in the latency
    /// as what they are for a user, requests that never got an answer in time.
    pub fn not_sent(&self, outcome: Outcome, n: u64) {
        self.record(outcome, n, self.deadline, None);
    }

    /// One request carrying `n` operations completed: count them and observe each one's latency
    /// from the scheduled start (`done - scheduled`, or the deadline if that is later and the request
    /// did not succeed) and from the send (`done - sent`).
    pub fn completed(
        &self,
        outcome: Outcome,
        n: u64,
        scheduled: Instant,
        sent: Instant,
        done: Instant,
    ) {
        let mut duration = done - scheduled;
        if outcome != Outcome::Ok {
            duration = duration.max(self.deadline);
        }
        self.record(outcome, n, duration, Some(done - sent));
    }

    /// Count `n` operations under `outcome` and observe them `n` times (one observation per
    /// operation, so a histogram's count equals the operations counted).
    ///
    /// All under the lock of the HDR histograms, so that [`OpRecorder::begin_window`] sees counts and
    /// histograms of the same set of operations.
    fn record(&self, outcome: Outcome, n: u64, duration: Duration, service: Option<Duration>) {
        let mut exact = self.exact.lock().unwrap_or_else(|e| e.into_inner());
        self.outcomes[outcome as usize].inc_by(n);
        for _ in 0..n {
            self.duration.observe(duration.as_secs_f64());
            if let Some(s) = service {
                self.service.observe(s.as_secs_f64());
            }
        }
        exact.duration.saturating_record_n(micros(duration), n);
        if let Some(s) = service {
            exact.service.saturating_record_n(micros(s), n);
        }
    }

    /// Counts so far and percentiles since the start (or the last [`OpRecorder::begin_window`]).
    pub fn snapshot(&self) -> OpSnapshot {
        let exact = self.exact.lock().unwrap_or_else(|e| e.into_inner());
        self.snapshot_with(&exact)
    }

    /// Start a measuring window (the end of a warm-up): the counts so far, and the HDR histograms
    /// emptied at the same instant, so the window's percentiles hold exactly its operations.
    pub fn begin_window(&self) -> OpSnapshot {
        let mut exact = self.exact.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = self.snapshot_with(&exact);
        exact.duration.reset();
        exact.service.reset();
        snapshot
    }

    /// The snapshot, with the lock of the HDR histograms held by the caller.
    fn snapshot_with(&self, exact: &ExactLatency) -> OpSnapshot {
        OpSnapshot {
            due: self.due.get(),
            buckets: BucketCounts::of(&self.duration),
            outcomes: Outcome::ALL
                .iter()
                .map(|o| (o.label(), self.total(*o)))
                .collect(),
            duration: Percentiles::of(&exact.duration),
            service: Percentiles::of(&exact.service),
        }
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

/// How late requests were sent relative to their scheduled start: taken at the send (the instant
/// the request leaves for the backend), once per request sent, into
/// `chatload_schedule_lag_seconds` and an HDR histogram for `chatload check`.
pub struct LagRecorder {
    histogram: Histogram,
    exact: Mutex<hdrhistogram::Histogram<u64>>,
}

impl LagRecorder {
    /// A recorder feeding `histogram`.
    pub fn new(histogram: Histogram) -> Self {
        Self {
            histogram,
            exact: Mutex::new(exact_histogram()),
        }
    }

    /// A request scheduled at `scheduled` was sent at `sent`.
    pub fn sent(&self, scheduled: Instant, sent: Instant) {
        let lag = sent.saturating_duration_since(scheduled);
        self.histogram.observe(lag.as_secs_f64());
        self.exact
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(micros(lag));
    }

    /// Percentiles since the start (or the last reset).
    pub fn percentiles(&self) -> Percentiles {
        Percentiles::of(&self.exact.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Forget the HDR values so far (the end of a warm-up).
    pub fn reset(&self) {
        self.exact.lock().unwrap_or_else(|e| e.into_inner()).reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(2);

    #[test]
    fn every_outcome_exists_from_the_start() {
        let m = Metrics::new("t");
        let _r = OpRecorder::new(&m, "scylla", "write", DEADLINE);
        let text = String::from_utf8(m.encode()).unwrap();
        for o in Outcome::ALL {
            let series = format!(
                "chatload_operations_total{{backend=\"scylla\",op=\"write\",outcome=\"{}\"}} 0",
                o.label()
            );
            assert!(text.contains(&series), "{series}");
        }
        assert!(text.contains("chatload_operations_due_total{backend=\"scylla\",op=\"write\"} 0"));
    }

    #[test]
    fn completed_counts_and_observes_both_latencies_per_operation() {
        let m = Metrics::new("t");
        let r = OpRecorder::new(&m, "redis", "write", DEADLINE);
        let t0 = Instant::now();
        r.due(12);
        r.completed(
            Outcome::Ok,
            10,
            t0,
            t0 + Duration::from_millis(3),
            t0 + Duration::from_millis(4),
        );
        r.not_sent(Outcome::Dropped, 2);
        assert_eq!(r.total(Outcome::Ok), 10);
        assert_eq!(r.total(Outcome::Dropped), 2);
        // One observation per operation: a batch of 10 is 10 observations.
        assert_eq!(r.duration.get_sample_count(), 12);
        assert!((r.duration.get_sample_sum() - (10.0 * 0.004 + 2.0 * 2.0)).abs() < 1e-9);
        assert_eq!(r.service.get_sample_count(), 10, "only sent operations");
        assert!((r.service.get_sample_sum() - 10.0 * 0.001).abs() < 1e-9);
        let snap = r.snapshot();
        assert_eq!((snap.due, snap.total()), (12, 12));
        assert_eq!(snap.buckets.count, 12);
        assert_eq!(snap.duration.count, 12);
        assert!(
            (snap.duration.p50 - 0.004).abs() < 0.00001,
            "{:?}",
            snap.duration
        );
        assert!(
            (snap.duration.max - 2.0).abs() < 0.002,
            "{:?}",
            snap.duration
        );
        assert_eq!(r.begin_window().total(), 12);
        assert_eq!(r.snapshot().duration.count, 0);
        assert_eq!(
            r.snapshot().get(Outcome::Ok),
            10,
            "counters are never reset"
        );
    }

    /// A failure that came back in 500 µs is observed at its deadline: an error storm never makes
    /// the latency look better. A slow failure keeps its own, longer latency.
    #[test]
    fn failures_are_observed_at_no_less_than_their_deadline() {
        let m = Metrics::new("t");
        let r = OpRecorder::new(&m, "scylla", "write", DEADLINE);
        let t0 = Instant::now();
        let fast = t0 + Duration::from_micros(500);
        for outcome in [Outcome::Error, Outcome::Unavailable, Outcome::Overloaded] {
            r.completed(outcome, 1, t0, t0, fast);
        }
        r.completed(Outcome::Timeout, 1, t0, t0, t0 + Duration::from_secs(3));
        r.not_sent(Outcome::Unavailable, 1);
        let d = r.snapshot().duration;
        assert_eq!(d.count, 5);
        assert!(d.p50 >= 2.0 && d.p50 < 2.01, "{d:?}");
        assert!(d.max >= 3.0 && d.max < 3.01, "{d:?}");
        // The histogram Prometheus scrapes agrees: nothing at or below 1 s.
        let b = r.snapshot().buckets;
        assert_eq!(b.above(1.0), Some(5));
        // Service time keeps what the server really took, for the ones sent.
        assert_eq!(r.service.get_sample_count(), 4);
        assert!(r.service.get_sample_sum() < 3.01);
    }

    #[test]
    fn a_window_counts_only_what_happened_in_it() {
        let m = Metrics::new("t");
        let r = OpRecorder::new(&m, "scylla", "write", DEADLINE);
        let t0 = Instant::now();
        r.due(3);
        r.completed(Outcome::Ok, 3, t0, t0, t0 + Duration::from_millis(1));
        let start = r.begin_window();
        r.due(5);
        r.completed(Outcome::Ok, 4, t0, t0, t0 + Duration::from_millis(2));
        r.not_sent(Outcome::Dropped, 1);
        let w = r.snapshot().minus_counts(&start);
        assert_eq!((w.due, w.total()), (5, 5));
        assert_eq!((w.get(Outcome::Ok), w.get(Outcome::Dropped)), (4, 1));
        assert_eq!(w.buckets.count, 5);
        // The HDR histograms were emptied at the window's start: 4 at 2 ms and 1 at 2 s.
        assert_eq!(w.duration.count, 5);
        let mean = (4.0 * 0.002 + 2.0) / 5.0;
        assert!((w.duration.mean - mean).abs() < 0.001, "{:?}", w.duration);
    }

    /// Failures are logged once per interval; the others are counted to be reported with the next.
    #[test]
    fn failure_logs_are_rate_limited() {
        let m = Metrics::new("t");
        let r = OpRecorder::new(&m, "redis", "write", DEADLINE);
        for _ in 0..5 {
            assert_eq!(r.failed(Outcome::Error, &"refused"), Outcome::Error);
        }
        assert!(
            r.last_log_ms.load(Ordering::Relaxed) > 0,
            "the first was logged"
        );
        assert_eq!(
            r.suppressed.load(Ordering::Relaxed),
            4,
            "the next four were not"
        );
        // An interval later the next one is logged again, and reports the four.
        let interval = ERROR_LOG_INTERVAL.as_millis() as u64;
        let mut later = OpRecorder::new(&m, "redis", "write", DEADLINE);
        later.start = Instant::now()
            .checked_sub(Duration::from_secs(100))
            .expect("the clock is past 100 s");
        later.log_failure(Outcome::Error, &"refused");
        let first = later.last_log_ms.load(Ordering::Relaxed);
        assert!(first > 100_000, "{first}");
        later.log_failure(Outcome::Error, &"refused");
        assert_eq!(later.suppressed.load(Ordering::Relaxed), 1);
        later
            .last_log_ms
            .store(first - interval - 1, Ordering::Relaxed);
        later.log_failure(Outcome::Error, &"refused");
        assert_eq!(
            later.suppressed.load(Ordering::Relaxed),
            0,
            "logged again after the interval, with the suppressed count"
        );
    }

    #[test]
    fn lag_is_taken_from_the_schedule_to_the_send() {
        let m = Metrics::new("t");
        let lag = LagRecorder::new(m.schedule_lag.clone());
        let t0 = Instant::now();
        lag.sent(t0, t0 + Duration::from_micros(150));
        lag.sent(t0 + Duration::from_secs(1), t0); // never negative
        assert_eq!(m.schedule_lag.get_sample_count(), 2);
        let p = lag.percentiles();
        assert!((p.max - 0.00015).abs() < 0.000001, "{p:?}");
        lag.reset();
        assert_eq!(lag.percentiles().count, 0);
    }

    #[test]
    fn exact_percentiles_are_not_bucket_interpolated() {
        let m = Metrics::new("t");
        let r = OpRecorder::new(&m, "scylla", "write", DEADLINE);
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
