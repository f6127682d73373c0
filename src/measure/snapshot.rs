//! The measuring layer's snapshots: what the traffic and each probe did, as `chatload check` and the
//! status page read it (never back out of the Prometheus registry).

use super::record::OpSnapshot;
use super::stats::{BucketCounts, Percentiles};
use serde::Serialize;
use std::collections::BTreeMap;

/// What every (backend, op) of the traffic did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrafficSnapshot {
    /// Message writes to ScyllaDB.
    pub scylla_write: OpSnapshot,
    /// "Newest 50" reads from ScyllaDB.
    pub scylla_read: OpSnapshot,
    /// The Redis side of message writes.
    pub redis_write: OpSnapshot,
    /// How late requests were sent (at the send, per request).
    pub schedule_lag: Percentiles,
}

impl TrafficSnapshot {
    /// Counts since `earlier` (percentiles are kept as they are).
    pub fn minus_counts(&self, earlier: &TrafficSnapshot) -> TrafficSnapshot {
        TrafficSnapshot {
            scylla_write: self.scylla_write.minus_counts(&earlier.scylla_write),
            scylla_read: self.scylla_read.minus_counts(&earlier.scylla_read),
            redis_write: self.redis_write.minus_counts(&earlier.redis_write),
            schedule_lag: self.schedule_lag,
        }
    }
}

/// What one probe did since the start (or the last reset): runs by outcome, last result, percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeSnapshot {
    /// Runs per outcome.
    pub runs: BTreeMap<&'static str, u64>,
    /// Whether the last run passed (`None`: no run yet).
    pub last_success: Option<bool>,
    /// What the last failed run said.
    pub last_problem: Option<String>,
    /// Measured latencies.
    pub latency: Percentiles,
    /// Violations per check.
    pub check_failures: BTreeMap<&'static str, u64>,
    /// Bucket counts of the probe's `chatload_probe_duration_seconds` since the start (never
    /// reset: take two and subtract).
    #[serde(skip)]
    pub buckets: BucketCounts,
    /// The last value of each SLO gauge a run measured (by metric name).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gauges: BTreeMap<&'static str, f64>,
}
