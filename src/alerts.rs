//! `chatload generate alerts`: Prometheus recording and alerting rules derived from `[slo]`.
//!
//! Every SLO comes from the SLO model ([`crate::measure::slo`]): a latency SLO alerts on the share of
//! observations above its threshold (counted at the bucket bound that every threshold is), the same
//! judgement `chatload check` and the status page make.
//!
//! - Recording rules for the SLIs (write error ratio, share of slow writes, write p99, throughput
//!   ratio, probe p99s), aggregated per `job` so that replicas add up.
//! - Threshold alerts: write p99, probe latencies, throughput, failing probes, TTL drift and expiry
//!   violations, a backend down, chatload down or absent, drops, schedule lag, partition balance,
//!   Redis cache consistency.
//! - Multi-window, multi-burn-rate alerts (Google SRE workbook, ch. 5) for the write-success and the
//!   write-latency SLOs over 30 days: burn rate 14.4 over 1 h (and 5 m) and 6 over 6 h (and 30 m)
//!   page; 3 over 1 d (and 2 h) and 1 over 3 d (and 6 h) open a ticket.
//!
//! Every alert carries `severity` (`critical` pages, `warning` is a ticket), a `summary`, a
//! `description` and a `runbook_url` into the README's Runbook. The output is plain, stable text:
//! `deploy/prometheus/rules/chatload-rules.yml` is exactly the output for `config/chatload.toml`.

use crate::config::{Config, HumanDuration};
use crate::measure::slo::{self, Slo, WINDOW_PROMQL};
use std::fmt::Write as _;

/// The `job` label chatload is scraped under (the bundled scrape configs use it).
pub const JOB: &str = "chatload";
/// Where runbook links point by default: the README, relative (set `--runbook-base` to its URL).
pub const DEFAULT_RUNBOOK_BASE: &str = "README.md";
/// Target of the pacer's p99 schedule lag (the spec's 200 µs).
pub const SCHEDULE_LAG_TARGET: f64 = 0.0002;

/// One alert: name, expression, `for`, severity and the texts.
struct Alert {
    name: &'static str,
    expr: String,
    for_: &'static str,
    severity: &'static str,
    summary: String,
    description: String,
}

/// A number as PromQL and the exposition format write it (`0.005`, `1`, `2592000`).
fn num(v: f64) -> String {
    format!("{v}")
}

fn secs(d: HumanDuration) -> f64 {
    d.get().as_secs_f64()
}

fn human(d: HumanDuration) -> String {
    d.to_string()
}

/// The rules file for `cfg`; runbook links start with `runbook_base`.
pub fn generate(cfg: &Config, runbook_base: &str) -> String {
    let s = &cfg.slo;
    let writes = slo::WRITES;
    let model = slo::all(cfg);
    let slo_named = |name: &str| -> &Slo {
        model
            .iter()
            .find(|x| x.name == name)
            .expect("every SLO is in the model")
    };
    let write_p99 = slo_named("write_p99");
    let write_success = slo_named("write_success");
    let error_budget = write_success.budget().expect("a ratio SLO has a budget");
    let latency_budget = write_p99.budget().expect("a latency SLO has a budget");

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Prometheus rules for chatload, generated from the [slo] section of its config by"
    );
    let _ = writeln!(out, "#   chatload generate alerts --config FILE");
    let _ = writeln!(
        out,
        "# Do not edit by hand: regenerate. Targets: write p99 {}, write success {}, throughput",
        human(s.write_p99),
        num(s.write_success)
    );
    let _ = writeln!(
        out,
        "# ratio {}, recent_50 p99 {}, range_5m max {}, pagination page p99 {}, TTL tolerance {},",
        num(s.throughput_ratio),
        human(s.recent_50_p99),
        human(s.range_5m_max),
        human(s.pagination_page_p99),
        human(s.ttl_tolerance)
    );
    let _ = writeln!(
        out,
        "# partition balance CV {}, Redis pub/sub p99 {}.",
        num(s.partition_balance_cv),
        human(s.redis_pubsub_p99)
    );
    let _ = writeln!(out, "groups:");

    // Recording rules.
    let _ = writeln!(out, "  - name: chatload-sli");
    let _ = writeln!(out, "    rules:");
    for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        record(
            &mut out,
            &format!("chatload:write_errors:ratio_rate{w}"),
            &write_success
                .bad_ratio_promql(w)
                .expect("a ratio SLO has a bad-event ratio"),
        );
        record(
            &mut out,
            &format!("chatload:write_slow:ratio_rate{w}"),
            &write_p99
                .bad_ratio_promql(w)
                .expect("a latency SLO has a bad-event ratio"),
        );
    }
    record(
        &mut out,
        "chatload:write_latency_seconds:p99_rate5m",
        &format!(
            "histogram_quantile(0.99, sum by (job, le) (rate(chatload_operation_duration_seconds_bucket{{{writes}}}[5m])))"
        ),
    );
    record(
        &mut out,
        "chatload:write_throughput:ratio_rate5m",
        &format!(
            "sum by (job) (rate(chatload_operations_total{{{writes},outcome=\"ok\"}}[5m])) / sum by (job) (chatload_target_rate{{op=\"write\"}})"
        ),
    );
    record(
        &mut out,
        "chatload:probe_duration_seconds:p99_rate5m",
        "histogram_quantile(0.99, sum by (job, probe, le) (rate(chatload_probe_duration_seconds_bucket[5m])))",
    );
    record(
        &mut out,
        "chatload:schedule_lag_seconds:p99_rate5m",
        "histogram_quantile(0.99, sum by (job, instance, le) (rate(chatload_schedule_lag_seconds_bucket[5m])))",
    );

    // A probe's latency SLO: the share of its observations above the threshold over the window.
    let probe_slow = |name: &str| {
        let slo = slo_named(name);
        format!(
            "({}) > {}",
            slo.bad_ratio_promql(WINDOW_PROMQL)
                .expect("a latency SLO has a bad-event ratio"),
            num(slo.budget().expect("a latency SLO has a budget"))
        )
    };
    let mut alerts = vec![
        Alert {
            name: "ChatloadDown",
            expr: format!("up{{job=\"{JOB}\"}} == 0"),
            for_: "2m",
            severity: "critical",
            summary: "chatload {{ $labels.instance }} is down".into(),
            description: "Prometheus cannot scrape chatload on {{ $labels.instance }}: no traffic and no probes run there, so the SLO alerts are blind.".into(),
        },
        Alert {
            name: "ChatloadAbsent",
            expr: format!("absent(up{{job=\"{JOB}\"}})"),
            for_: "5m",
            severity: "critical",
            summary: "chatload is not scraped at all".into(),
            description: format!("No target of job \"{JOB}\" exists: the deployment or its scrape config is gone, and every chatload alert is silent."),
        },
        Alert {
            name: "ChatloadBackendDown",
            expr: "chatload_backend_up == 0".into(),
            for_: "2m",
            severity: "critical",
            summary: "{{ $labels.backend }} is unreachable from chatload {{ $labels.instance }}".into(),
            description: "The health check of {{ $labels.backend }} has failed for 2 minutes; traffic to it counts as unavailable.".into(),
        },
        Alert {
            name: "ChatloadWriteLatencyHigh",
            expr: format!("chatload:write_slow:ratio_rate{WINDOW_PROMQL} > {}", num(latency_budget)),
            for_: "10m",
            severity: "warning",
            summary: "{{ $value | humanizePercentage }} of writes are slower than the SLO".into(),
            description: format!("More than {} of writes (from the scheduled start; failed and dropped ones count as slower than every threshold) took longer than {} for 10 minutes: the write p99 is over the SLO.", pct(latency_budget), human(s.write_p99)),
        },
        Alert {
            name: "ChatloadThroughputLow",
            expr: format!("chatload:write_throughput:ratio_rate5m < {}", num(s.throughput_ratio)),
            for_: "10m",
            severity: "warning",
            summary: "Writes reach only {{ $value | humanizePercentage }} of the target rate".into(),
            description: format!("Successful writes have been below {} of the configured rate for 10 minutes: the backend does not keep up, or writes fail or are dropped.", pct(s.throughput_ratio)),
        },
        Alert {
            name: "ChatloadRecent50Slow",
            expr: probe_slow("recent_50_p99"),
            for_: "10m",
            severity: "warning",
            summary: "{{ $value | humanizePercentage }} of \"newest 50\" reads are slower than the SLO".into(),
            description: format!("More than 1 % of the recent_50 probe's queries took longer than {} for 10 minutes (its p99 is over the SLO): opening a chat is slow.", human(s.recent_50_p99)),
        },
        Alert {
            name: "ChatloadRange5mSlow",
            expr: probe_slow("range_5m_max"),
            for_: "10m",
            severity: "warning",
            summary: "{{ $value | humanizePercentage }} of five-minute range reads are slower than the SLO".into(),
            description: format!("Some range_5m probe query took longer than {} (the SLO is a maximum) in every 5-minute window for 10 minutes.", human(s.range_5m_max)),
        },
        Alert {
            name: "ChatloadPaginationSlow",
            expr: probe_slow("pagination_page_p99"),
            for_: "10m",
            severity: "warning",
            summary: "{{ $value | humanizePercentage }} of history pages are slower than the SLO".into(),
            description: format!("More than 1 % of the pagination probe's pages took longer than {} for 10 minutes (its per-page p99 is over the SLO): scrolling back is slow.", human(s.pagination_page_p99)),
        },
        Alert {
            name: "ChatloadRedisPubsubSlow",
            expr: probe_slow("redis_pubsub_p99"),
            for_: "10m",
            severity: "warning",
            summary: "{{ $value | humanizePercentage }} of Redis fan-out messages are later than the SLO".into(),
            description: format!("More than 1 % of the redis_pubsub probe's messages (lost ones count at the run's deadline) took longer than {} from publish to receive for 10 minutes: real-time delivery is late.", human(s.redis_pubsub_p99)),
        },
        Alert {
            name: "ChatloadProbeFailing",
            // Only probes that ran lately: a disabled probe's success gauge stays at 0.
            expr: "chatload_probe_success == 0 and on (job, instance, probe) \
                   (sum by (job, instance, probe) (increase(chatload_probe_runs_total[15m])) > 0)"
                .into(),
            for_: "5m",
            severity: "warning",
            summary: "Probe {{ $labels.probe }} has failed for 5 minutes on {{ $labels.instance }}".into(),
            description: "Every run of the {{ $labels.probe }} probe in the last 5 minutes failed a check, timed out or could not run. chatload_probe_check_failures_total says which check.".into(),
        },
        Alert {
            name: "ChatloadTtlDrift",
            expr: format!("abs(chatload_ttl_drift_seconds{{backend=\"scylla\"}}) > {}", num(secs(s.ttl_tolerance))),
            for_: "5m",
            severity: "warning",
            summary: "New messages get a TTL {{ $value | humanizeDuration }} off the expected one".into(),
            description: format!("The TTL of fresh rows differs from scylla.default_ttl by more than {}: messages will be kept too long or deleted too early. Compare chatload_ttl_table_default_seconds.", human(s.ttl_tolerance)),
        },
        Alert {
            name: "ChatloadTtlExpiryViolated",
            expr: "increase(chatload_probe_check_failures_total{probe=\"ttl_expiry\",check=\"not_expired\"}[15m]) > 0".into(),
            for_: "0m",
            severity: "warning",
            summary: "Rows past their TTL are still readable".into(),
            description: "The ttl_expiry probe read rows after their TTL plus grace: expired data is being served.".into(),
        },
        Alert {
            name: "ChatloadDropping",
            expr: "sum by (job, instance, backend) (rate(chatload_operations_total{outcome=\"dropped\"}[5m])) > 0".into(),
            for_: "5m",
            severity: "warning",
            summary: "chatload drops {{ $value | humanize }} operations/s to {{ $labels.backend }}".into(),
            description: "Operations are skipped because traffic.max_in_flight requests are already waiting: the backend is slower than the offered rate allows.".into(),
        },
        Alert {
            name: "ChatloadScheduleLagHigh",
            expr: format!("chatload:schedule_lag_seconds:p99_rate5m > {}", num(SCHEDULE_LAG_TARGET)),
            for_: "15m",
            severity: "warning",
            summary: "chatload starts operations {{ $value | humanizeDuration }} late at p99".into(),
            description: "The pacer is late: chatload itself is short of CPU, which inflates the latencies it measures. Give it CPU (requests/limits) or lower the rate.".into(),
        },
        Alert {
            name: "ChatloadPartitionImbalance",
            expr: "increase(chatload_probe_check_failures_total{probe=\"partition_balance\",check=\"imbalance\"}[15m]) > 0".into(),
            for_: "0m",
            severity: "warning",
            summary: "Rows per stream vary by {{ with printf \"chatload_partition_balance_cv{job=%q,instance=%q}\" $labels.job $labels.instance | query }}{{ . | first | value | humanizePercentage }}{{ end }}".into(),
            description: format!("The skew CV of rows per stream (the coefficient of variation beyond what uniform random choice gives, significant at 99.9 %) exceeded {}: some partitions are hot.", num(s.partition_balance_cv)),
        },
        Alert {
            name: "ChatloadRedisCacheInconsistent",
            // Only while the redis_cache probe runs: its gauge starts at 0 and a disabled probe never sets it.
            expr: "chatload_redis_cache_consistent == 0 and on (job, instance) \
                   (sum by (job, instance) (increase(chatload_probe_runs_total{probe=\"redis_cache\"}[15m])) > 0)"
                .into(),
            for_: "5m",
            severity: "warning",
            summary: "Redis cache disagrees with ScyllaDB on {{ $labels.instance }}".into(),
            description: "The newest entry of the probe stream's Redis cache is not the newest row in ScyllaDB: clients reading the cache see missing or stale messages.".into(),
        },
    ];
    for (sli, budget, what) in [
        ("write_errors", error_budget, "write success"),
        ("write_slow", latency_budget, "write latency"),
    ] {
        let slug = if sli == "write_errors" {
            "WriteErrorBudget"
        } else {
            "WriteLatencyBudget"
        };
        let burn = |long: &str, short: &str, factor: f64| {
            format!(
                "chatload:{sli}:ratio_rate{long} > ({factor} * {b}) and chatload:{sli}:ratio_rate{short} > ({factor} * {b})",
                b = num(budget)
            )
        };
        let target = if sli == "write_errors" {
            format!("{} of writes succeed", pct(s.write_success))
        } else {
            format!("99 % of writes within {}", human(s.write_p99))
        };
        alerts.push(Alert {
            name: if sli == "write_errors" { "ChatloadWriteErrorBudgetBurnFast" } else { "ChatloadWriteLatencyBudgetBurnFast" },
            expr: format!("({}) or ({})", burn("1h", "5m", 14.4), burn("6h", "30m", 6.0)),
            for_: "2m",
            severity: "critical",
            summary: format!("The {what} error budget burns fast"),
            description: format!("At the current rate the 30-day budget of the SLO \"{target}\" is gone in under 5 days (burn rate 14.4 over 1 h or 6 over 6 h). {slug}: act now."),
        });
        alerts.push(Alert {
            name: if sli == "write_errors" { "ChatloadWriteErrorBudgetBurnSlow" } else { "ChatloadWriteLatencyBudgetBurnSlow" },
            expr: format!("({}) or ({})", burn("1d", "2h", 3.0), burn("3d", "6h", 1.0)),
            for_: "15m",
            severity: "warning",
            summary: format!("The {what} error budget burns steadily"),
            description: format!("The SLO \"{target}\" is consuming its 30-day budget faster than it renews (burn rate 3 over 1 d or 1 over 3 d). {slug}: look at it this week."),
        });
    }

    let _ = writeln!(out, "  - name: chatload-alerts");
    let _ = writeln!(out, "    rules:");
    for a in &alerts {
        let _ = writeln!(out, "      - alert: {}", a.name);
        let _ = writeln!(out, "        expr: {}", quote(&a.expr));
        let _ = writeln!(out, "        for: {}", a.for_);
        let _ = writeln!(out, "        labels:");
        let _ = writeln!(out, "          severity: {}", a.severity);
        let _ = writeln!(out, "        annotations:");
        let _ = writeln!(out, "          summary: {}", quote(&a.summary));
        let _ = writeln!(out, "          description: {}", quote(&a.description));
        let _ = writeln!(
            out,
            "          runbook_url: {}",
            quote(&format!("{runbook_base}#{}", a.name.to_lowercase()))
        );
    }
    out
}

fn record(out: &mut String, name: &str, expr: &str) {
    let _ = writeln!(out, "      - record: {name}");
    let _ = writeln!(out, "        expr: {}", quote(expr));
}

fn pct(r: f64) -> String {
    format!("{} %", num((r * 1e6).round() / 1e4))
}

/// A YAML double-quoted string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Every alert name `generate` produces, for docs and tests.
pub fn alert_names(cfg: &Config) -> Vec<String> {
    generate(cfg, DEFAULT_RUNBOOK_BASE)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: ").map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_targets_appear_in_the_rules() {
        let mut cfg = Config::default();
        cfg.slo.write_p99 = HumanDuration::from_millis(10);
        cfg.slo.write_success = 0.995;
        let rules = generate(&cfg, "https://example.org/README.md");
        assert!(
            rules.contains("chatload:write_slow:ratio_rate5m > 0.01"),
            "{rules}"
        );
        assert!(
            rules.contains(r#"le=\"0.01\""#),
            "slow writes counted at the SLO bucket"
        );
        assert!(rules.contains("> (14.4 * 0.005) and"), "{rules}");
        assert!(
            rules.contains(
                "runbook_url: \"https://example.org/README.md#chatloadwritelatencyhigh\""
            )
        );
    }

    #[test]
    fn a_threshold_between_default_buckets_is_counted_at_its_own_bound() {
        let mut cfg = Config::default();
        cfg.slo.write_p99 = HumanDuration::from_millis(7);
        cfg.slo.range_5m_max = HumanDuration::from_millis(40);
        let rules = generate(&cfg, DEFAULT_RUNBOOK_BASE);
        assert!(rules.contains(r#"le=\"0.007\""#), "{rules}");
        assert!(
            rules.contains(r#"probe=\"range_5m\",le=\"0.04\""#),
            "{rules}"
        );
        assert!(!rules.contains(r#"le=\"0.005\""#), "{rules}");
    }

    /// The committed rules are exactly what the documented default config generates.
    #[test]
    fn committed_rules_match_the_default_config() {
        let cfg = crate::config::load_str(
            include_str!("../config/chatload.toml"),
            std::path::Path::new("config/chatload.toml"),
            [],
        )
        .unwrap();
        let committed = include_str!("../deploy/prometheus/rules/chatload-rules.yml");
        assert!(
            generate(&cfg, DEFAULT_RUNBOOK_BASE) == committed,
            "deploy/prometheus/rules/chatload-rules.yml is stale: run \
             `chatload generate alerts --config config/chatload.toml > deploy/prometheus/rules/chatload-rules.yml`"
        );
    }

    /// Every recording rule has a `promql_expr_test` of its own in the committed promtool tests.
    #[test]
    fn every_recording_rule_has_its_own_expression_test() {
        let rules = generate(&Config::default(), DEFAULT_RUNBOOK_BASE);
        let tests = include_str!("../deploy/prometheus/rules/chatload-rules.test.yml");
        let tested: Vec<&str> = tests
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- expr: "))
            .collect();
        let records: Vec<&str> = rules
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- record: "))
            .collect();
        assert_eq!(records.len(), 18);
        for r in records {
            assert!(
                tested.iter().any(|e| e.contains(&format!("({r},"))),
                "no promql_expr_test for {r}"
            );
        }
    }

    #[test]
    fn every_alert_has_severity_summary_description_and_runbook() {
        let rules = generate(&Config::default(), DEFAULT_RUNBOOK_BASE);
        let alerts = rules.matches("- alert: ").count();
        assert!(alerts >= 20, "{alerts}");
        for key in ["severity: ", "summary: ", "description: ", "runbook_url: "] {
            assert_eq!(rules.matches(key).count(), alerts, "{key}");
        }
        let names = alert_names(&Config::default());
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }
}
