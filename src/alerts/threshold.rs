//! Alerts on a threshold: SLO latencies and throughput, probes, TTL, backends, chatload itself.

use super::rules::Severity::{Critical, Warning};
use super::rules::{Alerts, JOB, SCHEDULE_LAG_TARGET, bad_ratio, budget, num, pct};
use crate::config::Config;
use crate::measure::slo::{Slo, WINDOW_PROMQL};

/// The threshold alerts, added to `a`.
pub(super) fn alerts(cfg: &Config, model: &[Slo], a: &mut Alerts) {
    let s = &cfg.slo;
    let latency_budget = budget(model, "write_p99");
    // A probe's latency SLO: the share of its observations above the threshold over the window.
    let probe_slow = |name: &str| {
        let (ratio, budget) = (bad_ratio(model, name, WINDOW_PROMQL), budget(model, name));
        format!("({ratio}) > {}", num(budget))
    };
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
        ("ChatloadRecent50Slow", "10m", Warning),
        probe_slow("recent_50_p99"),
        "{{ $value | humanizePercentage }} of \"newest 50\" reads are slower than the SLO",
        format!("More than 1 % of the recent_50 probe's queries took longer than {} for 10 minutes (its p99 is over the SLO): opening a chat is slow.", s.recent_50_p99),
    );
    a.add(
        ("ChatloadRange5mSlow", "10m", Warning),
        probe_slow("range_5m_max"),
        "{{ $value | humanizePercentage }} of five-minute range reads are slower than the SLO",
        format!("Some range_5m probe query took longer than {} (the SLO is a maximum) in every 5-minute window for 10 minutes.", s.range_5m_max),
    );
    a.add(
        ("ChatloadPaginationSlow", "10m", Warning),
        probe_slow("pagination_page_p99"),
        "{{ $value | humanizePercentage }} of history pages are slower than the SLO",
        format!("More than 1 % of the pagination probe's pages took longer than {} for 10 minutes (its per-page p99 is over the SLO): scrolling back is slow.", s.pagination_page_p99),
    );
    a.add(
        ("ChatloadRedisPubsubSlow", "10m", Warning),
        probe_slow("redis_pubsub_p99"),
        "{{ $value | humanizePercentage }} of Redis fan-out messages are later than the SLO",
        format!("More than 1 % of the redis_pubsub probe's messages (lost ones count at the run's deadline) took longer than {} from publish to receive for 10 minutes: real-time delivery is late.", s.redis_pubsub_p99),
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
        ("ChatloadTtlDrift", "5m", Warning),
        format!("abs(chatload_ttl_drift_seconds{{backend=\"scylla\"}}) > {}", num(s.ttl_tolerance.get().as_secs_f64())),
        "New messages get a TTL {{ $value | humanizeDuration }} off the expected one",
        format!("The TTL of fresh rows differs from scylla.default_ttl by more than {}: messages will be kept too long or deleted too early. Compare chatload_ttl_table_default_seconds.", s.ttl_tolerance),
    );
    a.add(
        ("ChatloadTtlExpiryViolated", "0m", Warning),
        "increase(chatload_probe_check_failures_total{probe=\"ttl_expiry\",check=\"not_expired\"}[15m]) > 0",
        "Rows past their TTL are still readable",
        "The ttl_expiry probe read rows after their TTL plus grace: expired data is being served.",
    );
    a.add(
        ("ChatloadDropping", "5m", Warning),
        "sum by (job, instance, backend) (rate(chatload_operations_total{outcome=\"dropped\"}[5m])) > 0",
        "chatload drops {{ $value | humanize }} operations/s to {{ $labels.backend }}",
        "Operations are skipped because traffic.max_in_flight requests are already waiting: the backend is slower than the offered rate allows.",
    );
    a.add(
        ("ChatloadScheduleLagHigh", "15m", Warning),
        format!("chatload:schedule_lag_seconds:p99_rate5m > {}", num(SCHEDULE_LAG_TARGET)),
        "chatload starts operations {{ $value | humanizeDuration }} late at p99",
        "The pacer is late: chatload itself is short of CPU, which inflates the latencies it measures. Give it CPU (requests/limits) or lower the rate.",
    );
    a.add(
        ("ChatloadPartitionImbalance", "0m", Warning),
        "increase(chatload_probe_check_failures_total{probe=\"partition_balance\",check=\"imbalance\"}[15m]) > 0",
        "Rows per stream vary by {{ with printf \"chatload_partition_balance_cv{job=%q,instance=%q}\" $labels.job $labels.instance | query }}{{ . | first | value | humanizePercentage }}{{ end }}",
        format!("The skew CV of rows per stream (the coefficient of variation beyond what uniform random choice gives, significant at 99.9 %) exceeded {}: some partitions are hot.", num(s.partition_balance_cv)),
    );
    a.add(
        ("ChatloadRedisCacheInconsistent", "5m", Warning),
        // Only while the redis_cache probe runs: its gauge starts at 0 and a disabled probe never sets it.
        "chatload_redis_cache_consistent == 0 and on (job, instance) \
         (sum by (job, instance) (increase(chatload_probe_runs_total{probe=\"redis_cache\"}[15m])) > 0)",
        "Redis cache disagrees with ScyllaDB on {{ $labels.instance }}",
        "The newest entry of the probe stream's Redis cache is not the newest row in ScyllaDB: clients reading the cache see missing or stale messages.",
    );
}
