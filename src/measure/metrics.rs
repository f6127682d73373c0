//! Every metric chatload exports: names, help texts, labels and bucket layouts, defined once.
//!
//! Handles are created here at start-up and passed to the hot paths; nothing looks a metric up by name
//! per operation. Names follow Prometheus conventions: the `chatload_` prefix, base units (seconds),
//! `_total` for counters, and low-cardinality labels only (never a stream or message id).

use super::sharded::{Registered, ShardedTraffic, TrafficMetrics};
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use std::sync::Arc;

/// Shared latency buckets, 100 µs to 10 s. Every default SLO threshold (5 ms, 10 ms, 50 ms) is an exact
/// bound, and a daemon adds every configured latency threshold to them (see
/// [`crate::measure::slo::latency_buckets`]), so "share of requests under the SLO" is exact in PromQL, in
/// `chatload check` and on the status page, never interpolated.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

pub use super::sharded::SCHEDULE_LAG_BUCKETS;

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two backends, as the `backend` label spells them.
pub const BACKENDS: [&str; 2] = ["scylla", "redis"];

/// All of chatload's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// The labels of each backend's current `chatload_backend_info` series.
    backend_info_labels: std::sync::Mutex<std::collections::HashMap<String, [String; 2]>>,
    /// `chatload_build_info{version}`: always 1.
    pub build_info: IntGaugeVec,
    /// `chatload_backend_up{backend}`: 1 when the last health check of that backend succeeded.
    pub backend_up: IntGaugeVec,
    /// `chatload_backend_info{backend,kind,version}`: 1, for what the backend said it is.
    pub backend_info: IntGaugeVec,
    /// The traffic's families (operations, their latencies, in flight, schedule lag): one set per
    /// traffic shard, summed at each scrape.
    pub traffic: Arc<ShardedTraffic>,
    /// `chatload_target_rate{op}`: operations per second this instance is configured for.
    pub target_rate: GaugeVec,
    /// `chatload_probe_success{probe}`: 0/1 of the last run.
    pub probe_success: IntGaugeVec,
    /// `chatload_probe_runs_total{probe,outcome}`.
    pub probe_runs: IntCounterVec,
    /// `chatload_probe_duration_seconds{probe}`.
    pub probe_duration: HistogramVec,
    /// `chatload_probe_check_failures_total{probe,check}`.
    pub probe_check_failures: IntCounterVec,
    /// `chatload_probe_writes_unknown_total{probe}`: probe writes that may or may not have landed.
    pub probe_writes_unknown: IntCounterVec,
    /// `chatload_ttl_observed_seconds{backend}`.
    pub ttl_observed: GaugeVec,
    /// `chatload_ttl_drift_seconds{backend}`.
    pub ttl_drift: GaugeVec,
    /// `chatload_ttl_expected_seconds{backend}`: the TTL chatload expects entries to carry.
    pub ttl_expected: GaugeVec,
    /// `chatload_ttl_table_default_seconds`: `default_time_to_live` of the table, from `system_schema`.
    pub ttl_table_default: Gauge,
    /// `chatload_partition_balance_cv`.
    pub partition_balance_cv: Gauge,
    /// `chatload_redis_cache_consistent`.
    pub redis_cache_consistent: IntGauge,
    /// `chatload_config_reload_total{outcome}`.
    pub config_reload: IntCounterVec,
    /// `chatload_config_hash`: a number that changes when the effective config changes.
    pub config_hash: Gauge,
    /// `chatload_slo_objective{slo}`: each SLO's threshold as configured.
    pub slo_objective: GaugeVec,
    /// The bounds of the latency histograms (defaults plus every configured latency threshold).
    latency_buckets: Vec<f64>,
}

impl Metrics {
    /// Create and register every metric with the default [`LATENCY_BUCKETS`]; `version` goes into
    /// `chatload_build_info`.
    pub fn new(version: &str) -> Self {
        Self::with_latency_buckets(version, LATENCY_BUCKETS.to_vec())
    }

    /// [`Metrics::new`] with these latency bucket bounds (sorted, unique).
    pub fn with_latency_buckets(version: &str, latency_buckets: Vec<f64>) -> Self {
        let registry = Registry::new();
        let buckets = latency_buckets.as_slice();
        let r = &registry;
        let m = Self {
            build_info: int_gauge_vec(
                r,
                "chatload_build_info",
                "Build information; always 1.",
                &["version"],
            ),
            backend_up: int_gauge_vec(
                r,
                "chatload_backend_up",
                "1 when the last health check of the backend succeeded, else 0.",
                &["backend"],
            ),
            backend_info: int_gauge_vec(
                r,
                "chatload_backend_info",
                "What the backend reported it is (kind: scylla, cassandra or redis); always 1.",
                &["backend", "kind", "version"],
            ),
            traffic: {
                let traffic = ShardedTraffic::new(buckets);
                r.register(Box::new(Registered(traffic.clone())))
                    .expect("unique metric");
                traffic
            },
            target_rate: gauge_vec(
                r,
                "chatload_target_rate",
                "Operations per second this instance is configured to start.",
                &["op"],
            ),
            probe_success: int_gauge_vec(
                r,
                "chatload_probe_success",
                "1 when the probe's last run passed all its checks, else 0.",
                &["probe"],
            ),
            probe_runs: int_counter_vec(
                r,
                "chatload_probe_runs_total",
                "Probe runs by outcome (ok, failed, timeout, error).",
                &["probe", "outcome"],
            ),
            probe_duration: histogram_vec(
                r,
                "chatload_probe_duration_seconds",
                "Duration of the probe's measured query or round trip; a run that timed out or could not run counts once at its timeout.",
                &["probe"],
                buckets,
            ),
            probe_check_failures: int_counter_vec(
                r,
                "chatload_probe_check_failures_total",
                "Correctness checks that failed, by probe and check.",
                &["probe", "check"],
            ),
            probe_writes_unknown: int_counter_vec(
                r,
                "chatload_probe_writes_unknown_total",
                "Probe writes whose outcome is unknown: timed out or failed after being sent; range_5m accepts them as present or absent.",
                &["probe"],
            ),
            ttl_observed: gauge_vec(
                r,
                "chatload_ttl_observed_seconds",
                "TTL the backend reported for a freshly written probe entry, corrected for its age.",
                &["backend"],
            ),
            ttl_drift: gauge_vec(
                r,
                "chatload_ttl_drift_seconds",
                "Observed TTL minus expected TTL.",
                &["backend"],
            ),
            ttl_expected: gauge_vec(
                r,
                "chatload_ttl_expected_seconds",
                "TTL chatload expects entries to carry (scylla.default_ttl; 60 s for the Redis probe key).",
                &["backend"],
            ),
            ttl_table_default: gauge(
                r,
                "chatload_ttl_table_default_seconds",
                "default_time_to_live of the chat_messages table, read from system_schema.",
            ),
            partition_balance_cv: gauge(
                r,
                "chatload_partition_balance_cv",
                "Skew CV of rows per stream written over the probe window: the coefficient of variation with the noise of uniform random choice, b(k-1)/N, removed from its square.",
            ),
            redis_cache_consistent: {
                let g = IntGauge::new(
                    "chatload_redis_cache_consistent",
                    "1 when the newest entry of the Redis cache matched the newest row in ScyllaDB.",
                )
                .expect("valid gauge");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            config_reload: int_counter_vec(
                r,
                "chatload_config_reload_total",
                "Configuration reloads by outcome (ok, error).",
                &["outcome"],
            ),
            config_hash: gauge(
                r,
                "chatload_config_hash",
                "Hash of the effective configuration (changes when the config does).",
            ),
            slo_objective: gauge_vec(
                r,
                "chatload_slo_objective",
                "Each SLO's threshold as configured (seconds for latency and TTL, a ratio otherwise).",
                &["slo"],
            ),
            latency_buckets,
            registry,
            backend_info_labels: Default::default(),
        };
        m.build_info.with_label_values(&[version]).set(1);
        for b in BACKENDS {
            m.backend_up.with_label_values(&[b]).set(0);
        }
        for outcome in ["ok", "error"] {
            m.config_reload.with_label_values(&[outcome]);
        }
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registers once");
        m
    }

    /// Record what a backend reported it is, replacing what it reported before (one series per backend).
    pub fn set_backend_info(&self, backend: &str, kind: &str, version: &str) {
        let mut current = self
            .backend_info_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some([old_kind, old_version]) = current.get(backend) {
            let _ = self
                .backend_info
                .remove_label_values(&[backend, old_kind, old_version]);
        }
        self.backend_info
            .with_label_values(&[backend, kind, version])
            .set(1);
        current.insert(backend.to_string(), [kind.to_string(), version.to_string()]);
    }

    /// What each backend said it is, e.g. `scylla` → `cassandra 5.0.9`.
    pub fn backend_descriptions(&self) -> std::collections::BTreeMap<String, String> {
        let current = self
            .backend_info_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        current
            .iter()
            .map(|(backend, [kind, version])| (backend.clone(), format!("{kind} {version}")))
            .collect()
    }

    /// A new traffic shard's handles of the traffic's families (see [`ShardedTraffic`]).
    pub fn traffic_shard(&self) -> TrafficMetrics {
        self.traffic.add_shard()
    }

    /// The bounds of the latency histograms.
    pub fn latency_buckets(&self) -> &[f64] {
        &self.latency_buckets
    }

    /// The registry, to gather from.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in the text exposition format.
    pub fn encode(&self) -> Vec<u8> {
        encode(&self.registry)
    }
}

/// Every metric of `registry` in the text exposition format.
pub fn encode(registry: &Registry) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 * 1024);
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("encoding to a Vec cannot fail");
    buf
}

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        r,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    register(
        r,
        Gauge::with_opts(Opts::new(name, help)).expect("valid metric"),
    )
}

fn int_counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    register(
        r,
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_thresholds_are_exact_bucket_bounds() {
        for slo in [0.005, 0.01, 0.05] {
            assert!(LATENCY_BUCKETS.contains(&slo), "{slo}");
        }
        assert!(SCHEDULE_LAG_BUCKETS.contains(&0.0002));
        assert_eq!(LATENCY_BUCKETS.first(), Some(&0.0001));
        assert_eq!(LATENCY_BUCKETS.last(), Some(&10.0));
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn exposition_has_build_info_and_backends_down_at_start() {
        let m = Metrics::new("1.2.3");
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(
            text.contains("chatload_build_info{version=\"1.2.3\"} 1"),
            "{text}"
        );
        assert!(text.contains("chatload_backend_up{backend=\"scylla\"} 0"));
        assert!(text.contains("chatload_backend_up{backend=\"redis\"} 0"));
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"));
    }

    #[test]
    fn backend_info_keeps_one_series_per_backend() {
        let m = Metrics::new("x");
        m.set_backend_info("scylla", "cassandra", "5.0.1");
        m.set_backend_info("scylla", "cassandra", "5.0.2");
        m.set_backend_info("redis", "redis", "7.0.15");
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(!text.contains("5.0.1"), "{text}");
        assert!(text.contains(
            r#"chatload_backend_info{backend="scylla",kind="cassandra",version="5.0.2"} 1"#
        ));
        assert!(
            text.contains(
                r#"chatload_backend_info{backend="redis",kind="redis",version="7.0.15"} 1"#
            )
        );
    }
}
