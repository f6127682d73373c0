//! The traffic's metric families, kept per traffic shard and summed when scraped.
//!
//! Each traffic thread (shard) records into its own, unregistered [`TrafficMetrics`], so that no
//! two threads write the same counter or histogram on the per-operation path. [`ShardedTraffic`]
//! is the one collector in the registry: at each scrape it sums the shards' series with the same
//! labels (counters, gauges, histogram buckets, counts and sums), so the exposition has one
//! `chatload_operations_total{backend,op,outcome}` series, as with one thread.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Metric, MetricFamily};
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Buckets of the pacer's lateness: finer at the bottom, where its 200 µs target lies.
pub const SCHEDULE_LAG_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0,
];

/// One shard's handles of the traffic's metric families.
#[derive(Clone)]
pub struct TrafficMetrics {
    /// `chatload_operations_due_total{backend,op}`: operations the timetable made due.
    pub operations_due: IntCounterVec,
    /// `chatload_operations_total{backend,op,outcome}`.
    pub operations: IntCounterVec,
    /// `chatload_operation_duration_seconds{backend,op}`: from the scheduled start.
    pub operation_duration: HistogramVec,
    /// `chatload_operation_service_seconds{backend,op}`: from the actual send.
    pub operation_service: HistogramVec,
    /// `chatload_in_flight{backend}`.
    pub in_flight: IntGaugeVec,
    /// `chatload_schedule_lag_seconds`: how late requests were sent.
    pub schedule_lag: Histogram,
}

impl TrafficMetrics {
    fn new(latency_buckets: &[f64]) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(latency_buckets.to_vec()),
                &["backend", "op"],
            )
            .expect("valid metric")
        };
        Self {
            operations_due: counter(
                "chatload_operations_due_total",
                "Traffic operations (messages, for writes) the timetable made due; each ends under exactly one outcome of chatload_operations_total.",
                &["backend", "op"],
            ),
            operations: counter(
                "chatload_operations_total",
                "Traffic operations (messages, for writes) by outcome: ok, error, timeout, overloaded, unavailable, dropped.",
                &["backend", "op", "outcome"],
            ),
            operation_duration: histogram(
                "chatload_operation_duration_seconds",
                "Latency of traffic operations from their scheduled start (coordinated-omission-correct); one observation per operation counted, those that did not succeed at no less than their deadline.",
            ),
            operation_service: histogram(
                "chatload_operation_service_seconds",
                "Latency of traffic operations from the actual send (service time); operations that were sent only.",
            ),
            in_flight: IntGaugeVec::new(
                Opts::new("chatload_in_flight", "Requests in flight."),
                &["backend"],
            )
            .expect("valid metric"),
            schedule_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "chatload_schedule_lag_seconds",
                    "How late requests were sent relative to their scheduled start, taken at the send.",
                )
                .buckets(SCHEDULE_LAG_BUCKETS.to_vec()),
            )
            .expect("valid histogram"),
        }
    }

    fn collectors(&self) -> [&dyn Collector; 6] {
        [
            &self.operations_due,
            &self.operations,
            &self.operation_duration,
            &self.operation_service,
            &self.in_flight,
            &self.schedule_lag,
        ]
    }
}

/// The registry's collector of the traffic's families: the sum over the shards.
pub struct ShardedTraffic {
    /// Never recorded into: the families' descriptions.
    template: TrafficMetrics,
    latency_buckets: Vec<f64>,
    shards: RwLock<Vec<TrafficMetrics>>,
}

impl ShardedTraffic {
    /// No shards yet; histograms of latency get `latency_buckets`.
    pub fn new(latency_buckets: &[f64]) -> Arc<Self> {
        Arc::new(Self {
            template: TrafficMetrics::new(latency_buckets),
            latency_buckets: latency_buckets.to_vec(),
            shards: RwLock::new(Vec::new()),
        })
    }

    /// A new shard's handles, summed into every scrape from now on.
    pub fn add_shard(&self) -> TrafficMetrics {
        let shard = TrafficMetrics::new(&self.latency_buckets);
        self.shards
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(shard.clone());
        shard
    }
}

/// The registered handle of a [`ShardedTraffic`].
pub struct Registered(pub Arc<ShardedTraffic>);

impl Collector for Registered {
    fn desc(&self) -> Vec<&Desc> {
        self.0
            .template
            .collectors()
            .into_iter()
            .flat_map(|c| c.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let shards = self.0.shards.read().unwrap_or_else(|e| e.into_inner());
        let mut families: Vec<MetricFamily> = Vec::new();
        for shard in shards.iter() {
            for (i, family) in shard
                .collectors()
                .into_iter()
                .flat_map(|c| c.collect())
                .enumerate()
            {
                match families.get_mut(i) {
                    None => families.push(family),
                    Some(sum) => add_family(sum, &family),
                }
            }
        }
        // A vector without series yet is no family at all, as in a registry.
        families.retain(|f| !f.get_metric().is_empty());
        families
    }
}

fn label_key(m: &Metric) -> Vec<(String, String)> {
    m.get_label()
        .iter()
        .map(|l| (l.name().to_owned(), l.value().to_owned()))
        .collect()
}

/// Add the series of `more` into `sum`, series by series (matched by their labels).
fn add_family(sum: &mut MetricFamily, more: &MetricFamily) {
    let index: HashMap<_, _> = sum
        .get_metric()
        .iter()
        .enumerate()
        .map(|(i, m)| (label_key(m), i))
        .collect();
    for m in more.get_metric() {
        match index.get(&label_key(m)) {
            Some(&i) => add_metric(&mut sum.mut_metric()[i], m),
            None => sum.mut_metric().push(m.clone()),
        }
    }
}

fn add_metric(sum: &mut Metric, more: &Metric) {
    if let (Some(a), Some(b)) = (sum.counter.as_mut(), more.counter.as_ref()) {
        a.set_value(a.value() + b.value());
    }
    if let (Some(a), Some(b)) = (sum.gauge.as_mut(), more.gauge.as_ref()) {
        a.set_value(a.value() + b.value());
    }
    if let (Some(a), Some(b)) = (sum.histogram.as_mut(), more.histogram.as_ref()) {
        a.set_sample_count(a.sample_count() + b.sample_count());
        a.set_sample_sum(a.sample_sum() + b.sample_sum());
        for (x, y) in a.bucket.iter_mut().zip(&b.bucket) {
            x.set_cumulative_count(x.cumulative_count() + y.cumulative_count());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_sums_the_shards_series_by_label() {
        let traffic = ShardedTraffic::new(&[0.25, 1.0]);
        let registry = prometheus::Registry::new();
        registry
            .register(Box::new(Registered(traffic.clone())))
            .unwrap();
        assert!(
            registry.gather().is_empty(),
            "no series before the traffic starts"
        );
        let (a, b) = (traffic.add_shard(), traffic.add_shard());
        a.operations
            .with_label_values(&["scylla", "write", "ok"])
            .inc_by(3);
        b.operations
            .with_label_values(&["scylla", "write", "ok"])
            .inc_by(4);
        b.operations
            .with_label_values(&["redis", "write", "ok"])
            .inc_by(5);
        a.in_flight.with_label_values(&["scylla"]).set(2);
        b.in_flight.with_label_values(&["scylla"]).set(1);
        let h = |s: &TrafficMetrics| s.operation_duration.with_label_values(&["scylla", "write"]);
        h(&a).observe(0.125);
        h(&b).observe(0.25);
        h(&b).observe(0.5);
        a.schedule_lag.observe(0.0001);
        b.schedule_lag.observe(0.0001);
        let mut text = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        for line in [
            r#"chatload_operations_total{backend="scylla",op="write",outcome="ok"} 7"#,
            r#"chatload_operations_total{backend="redis",op="write",outcome="ok"} 5"#,
            r#"chatload_in_flight{backend="scylla"} 3"#,
            r#"chatload_operation_duration_seconds_bucket{backend="scylla",op="write",le="0.25"} 2"#,
            r#"chatload_operation_duration_seconds_bucket{backend="scylla",op="write",le="1"} 3"#,
            r#"chatload_operation_duration_seconds_count{backend="scylla",op="write"} 3"#,
            r#"chatload_operation_duration_seconds_sum{backend="scylla",op="write"} 0.875"#,
            "chatload_schedule_lag_seconds_count 2",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert_eq!(
            text.matches("chatload_operations_total{").count(),
            2,
            "one series per label set, however many shards"
        );
    }
}
