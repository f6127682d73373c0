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
//!
//! Each traffic shard has recorders of its own, over its own metric handles
//! ([`crate::measure::sharded`]): no two threads write the same counter or histogram. The HDR
//! histograms of a recorder sit behind a mutex that only its shard and a snapshot take (the
//! status page's every 10 s, `check`'s at its window's edges), so the per-operation path takes no
//! lock that another thread holds. [`merged_snapshot`] and [`merged_begin_window`] add up the
//! shards of one (backend, op).

use crate::measure::sharded::TrafficMetrics;
use crate::measure::stats::{
    BucketCounts, ExactLatency, Percentiles, counts_since, exact_histogram, micros,
};
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
        d.outcomes = counts_since(&self.outcomes, &earlier.outcomes);
        d.buckets = self.buckets.minus(&earlier.buckets);
        d
    }
}

impl OpRecorder {
    /// Resolve the handles of `backend`/`op` and create every outcome series at 0. An operation that
    /// does not succeed is observed at no less than `deadline` from its scheduled start.
    pub fn new(
        metrics: &TrafficMetrics,
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
        merged_snapshot(&[self])
    }

    /// Start a measuring window (the end of a warm-up): the counts so far, and the HDR histograms
    /// emptied at the same instant, so the window's percentiles hold exactly its operations.
    pub fn begin_window(&self) -> OpSnapshot {
        merged_begin_window(&[self])
    }

    fn lock_exact(&self) -> std::sync::MutexGuard<'_, ExactLatency> {
        self.exact.lock().unwrap_or_else(|e| e.into_inner())
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

/// The shards' recorders of one (backend, op) added up: counts so far, and percentiles since the
/// start (or the last [`merged_begin_window`]).
pub fn merged_snapshot(recorders: &[&OpRecorder]) -> OpSnapshot {
    let exact: Vec<_> = recorders.iter().map(|r| r.lock_exact()).collect();
    merge(recorders, &exact)
}

/// [`OpRecorder::begin_window`] of every shard's recorder of one (backend, op), at one instant
/// (all their locks held), added up.
pub fn merged_begin_window(recorders: &[&OpRecorder]) -> OpSnapshot {
    let mut exact: Vec<_> = recorders.iter().map(|r| r.lock_exact()).collect();
    let snapshot = merge(recorders, &exact);
    for e in exact.iter_mut() {
        e.duration.reset();
        e.service.reset();
    }
    snapshot
}

/// The snapshot of `recorders`, whose HDR locks the caller holds (`exact`, in the same order).
fn merge(
    recorders: &[&OpRecorder],
    exact: &[std::sync::MutexGuard<'_, ExactLatency>],
) -> OpSnapshot {
    let mut snapshot = OpSnapshot::default();
    for r in recorders {
        snapshot.due += r.due.get();
        snapshot.buckets = snapshot.buckets.plus(&BucketCounts::of(&r.duration));
        for o in Outcome::ALL {
            *snapshot.outcomes.entry(o.label()).or_default() += r.total(o);
        }
    }
    let mut all = ExactLatency::new();
    for e in exact {
        // Same layout (exact_histogram) on every shard: adding cannot fail.
        let _ = all.duration.add(&e.duration);
        let _ = all.service.add(&e.service);
    }
    snapshot.duration = Percentiles::of(&all.duration);
    snapshot.service = Percentiles::of(&all.service);
    snapshot
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

    /// Percentiles since the start (or the last reset) of every shard's lag together.
    pub fn merged_percentiles(recorders: &[&LagRecorder]) -> Percentiles {
        let mut all = exact_histogram();
        for r in recorders {
            let _ = all.add(&*r.exact.lock().unwrap_or_else(|e| e.into_inner()));
        }
        Percentiles::of(&all)
    }

    /// Forget the HDR values so far (the end of a warm-up).
    pub fn reset(&self) {
        self.exact.lock().unwrap_or_else(|e| e.into_inner()).reset();
    }
}

#[cfg(test)]
mod tests;
