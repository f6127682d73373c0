//! The recording rules: the SLIs per `job`, so that replicas add up.

use super::rules::{Rule, bad_ratio};
use crate::measure::slo::{self, Slo};

/// The recording rules of group `chatload-sli`.
pub(super) fn recording_rules(model: &[Slo]) -> Vec<Rule> {
    let writes = slo::WRITES;
    let mut rules = Vec::new();
    // The SLIs of the write SLOs over every window a burn-rate alert looks at.
    for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        for (sli, slo) in [
            ("write_errors", "write_success"),
            ("write_slow", "write_p99"),
            ("e2e_delivery_lost", "e2e_delivery_success"),
        ] {
            let expr = bad_ratio(model, slo, w);
            rules.push(record(format!("chatload:{sli}:ratio_rate{w}"), expr));
        }
    }
    rules.extend([
        record(
            "chatload:write_latency_seconds:p99_rate5m",
            format!("histogram_quantile(0.99, sum by (job, le) (rate(chatload_operation_duration_seconds_bucket{{{writes}}}[5m])))"),
        ),
        record(
            "chatload:write_throughput:ratio_rate5m",
            format!("sum by (job) (rate(chatload_operations_total{{{writes},outcome=\"ok\"}}[5m])) / sum by (job) (chatload_target_rate{{op=\"write\"}})"),
        ),
        record(
            "chatload:probe_duration_seconds:p99_rate5m",
            "histogram_quantile(0.99, sum by (job, probe, le) (rate(chatload_probe_duration_seconds_bucket[5m])))",
        ),
        record(
            "chatload:e2e_delivery_seconds:p95_rate5m",
            "histogram_quantile(0.95, sum by (job, le) (rate(chatload_e2e_delivery_seconds_bucket[5m])))",
        ),
        record(
            "chatload:schedule_lag_seconds:p99_rate5m",
            "histogram_quantile(0.99, sum by (job, instance, le) (rate(chatload_schedule_lag_seconds_bucket[5m])))",
        ),
    ]);
    rules
}

fn record(name: impl Into<String>, expr: impl Into<String>) -> Rule {
    Rule::Record {
        record: name.into(),
        expr: expr.into(),
    }
}
