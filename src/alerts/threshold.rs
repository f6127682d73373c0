//! Alerts on a threshold: SLO latencies and throughput, probes, TTL, backends, chatload itself.

use super::rules::Severity::{Critical, Warning};
use super::rules::{Alerts, JOB, SCHEDULE_LAG_TARGET, bad_ratio, budget, num, pct};
use crate::config::{AlertSpec, Config, SloIndicator};
use crate::measure::slo::{Slo, WINDOW_PROMQL};

/// The threshold alerts, added to `a`.
pub(super) fn alerts(cfg: &Config, model: &[Slo], a: &mut Alerts) {
    let s = &cfg.slo;
    let latency_budget = budget(model, "write_p99");
    a.add(
        ("ChatloadDown", "2m", Critical),
        format!("up{{job=\"{JOB}\"}} == 0"),
        "chatload {{ $labels.instance }} is down",
        "Prometheus cannot scrape chatload on {{ $labels.instance }}: no traffic and no probes run there, so the SLO alerts are blind.",
    );
    a.add(
        ("ChatloadAbsent", "5m", Critical),
        format!("absent(up{{job=\"{JOB}\"}})"),
        "chatload is not scraped at all",
        format!("No target of job \"{JOB}\" exists: the deployment or its scrape config is gone, and every chatload alert is silent."),
    );
    a.add(
        ("ChatloadBackendDown", "2m", Critical),
        "chatload_backend_up == 0",
        "{{ $labels.backend }} is unreachable from chatload {{ $labels.instance }}",
        "The health check of {{ $labels.backend }} has failed for 2 minutes; traffic to it counts as unavailable.",
    );
    a.add(
        ("ChatloadWriteLatencyHigh", "10m", Warning),
        format!("chatload:write_slow:ratio_rate{WINDOW_PROMQL} > {}", num(latency_budget)),
        "{{ $value | humanizePercentage }} of writes are slower than the SLO",
        format!("More than {} of writes (from the scheduled start; failed and dropped ones count as slower than every threshold) took longer than {} for 10 minutes: the write p99 is over the SLO.", pct(latency_budget), s.write_p99),
    );
    a.add(
        ("ChatloadThroughputLow", "10m", Warning),
        format!("chatload:write_throughput:ratio_rate5m < {}", num(s.throughput_ratio)),
        "Writes reach only {{ $value | humanizePercentage }} of the target rate",
        format!("Successful writes have been below {} of the configured rate for 10 minutes: the backend does not keep up, or writes fail or are dropped.", pct(s.throughput_ratio)),
    );
    a.add(
        ("ChatloadProbeFailing", "5m", Warning),
        // Only probes that ran lately: a disabled probe's success gauge stays at 0.
        "chatload_probe_success == 0 and on (job, instance, probe) \
         (sum by (job, instance, probe) (increase(chatload_probe_runs_total[15m])) > 0)",
        "Probe {{ $labels.probe }} has failed for 5 minutes on {{ $labels.instance }}",
        "Every run of the {{ $labels.probe }} probe in the last 5 minutes failed a check, timed out or could not run. chatload_probe_check_failures_total says which check.",
    );
    a.add(
        ("ChatloadDropping", "5m", Warning),
        // The canary's drops are API errors of its own alert (ChatloadE2EApiErrors).
        "sum by (job, instance, backend) (rate(chatload_operations_total{outcome=\"dropped\",backend!=\"chat_api\"}[5m])) > 0",
        "chatload drops {{ $value | humanize }} operations/s to {{ $labels.backend }}",
        "Operations are skipped because traffic.max_in_flight requests are already waiting: the backend is slower than the offered rate allows.",
    );
    a.add(
        ("ChatloadScheduleLagHigh", "15m", Warning),
        format!("chatload:schedule_lag_seconds:p99_rate5m > {}", num(SCHEDULE_LAG_TARGET)),
        "chatload starts operations {{ $value | humanizeDuration }} late at p99",
        "The pacer is late: chatload itself is short of CPU, which inflates the latencies it measures. Give it CPU (requests/limits) or lower the rate.",
    );
    probe_alerts(cfg, model, a);
}

/// Each probe's alerts, as its declaration has them: one per SLO (its expression from the SLO
/// model), then its own.
fn probe_alerts(cfg: &Config, model: &[Slo], a: &mut Alerts) {
    let catalog = cfg.probes.catalog();
    for probe in catalog.specs() {
        for slo in probe.slos {
            let threshold = cfg.slo.threshold(slo);
            let expr = match slo.indicator {
                SloIndicator::Latency { .. } => format!(
                    "({}) > {}",
                    bad_ratio(model, slo.key, WINDOW_PROMQL),
                    num(budget(model, slo.key))
                ),
                SloIndicator::Gauge { metric, selector } => {
                    format!("abs({metric}{{{selector}}}) > {}", num(threshold.get()))
                }
                SloIndicator::Check { check, .. } => format!(
                    "increase(chatload_probe_check_failures_total{{probe=\"{}\",check=\"{check}\"}}[15m]) > 0",
                    probe.name
                ),
            };
            add(a, &slo.alert, expr, &threshold.to_string());
        }
        for alert in probe.alerts {
            add(a, alert, alert.expr.to_string(), "");
        }
    }
}

/// A probe's alert (a ticket: probes never page) with `{threshold}` filled in.
fn add(a: &mut Alerts, alert: &AlertSpec, expr: String, threshold: &str) {
    a.add(
        (alert.name, alert.for_, Warning),
        expr,
        alert.summary,
        alert.description.replace("{threshold}", threshold),
    );
}
