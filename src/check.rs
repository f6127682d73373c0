//! `chatload check`: run the traffic for a bounded time and judge it against the `[slo]` section —
//! the pipeline gate. Exit 0 when every SLO passes, 1 on any breach, 3 when the database cannot be
//! reached at all.
//!
//! The warm-up (connections, JIT of the server, caches) is excluded: counters are taken as deltas
//! from its end and the exact (HDR) latency histograms are reset then. Percentiles are exact, not
//! interpolated from Prometheus buckets. A progress line goes to stderr every 5 s; the report goes to
//! stdout, as text or as one JSON document.

use crate::config::{Config, HumanDuration};
use crate::daemon::Daemon;
use crate::probes::ProbeSnapshot;
use crate::traffic::record::{OpSnapshot, Outcome, Percentiles};
use crate::traffic::{TrafficSnapshot, instance_rate};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often progress is printed.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How long the database may take to answer before `check` gives up with exit code 3.
pub const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// One JSON document.
    Json,
}

/// One row of the report: an SLO, its target, what was measured, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloRow {
    /// The `[slo]` key, or `probe:<name>` for a probe's own row.
    pub slo: String,
    /// Target, in the unit of `unit`.
    pub target: f64,
    /// Measured value; `None` when nothing could be measured (which fails).
    pub measured: Option<f64>,
    /// `seconds` or `ratio`.
    pub unit: &'static str,
    /// `max` (measured must be ≤ target) or `min` (≥).
    pub bound: &'static str,
    /// The verdict.
    pub pass: bool,
    /// Why the verdict is what it is, when the numbers alone do not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SloRow {
    fn at_most(slo: impl Into<String>, target: f64, measured: Option<f64>) -> Self {
        Self {
            slo: slo.into(),
            target,
            measured,
            unit: "seconds",
            bound: "max",
            pass: measured.is_some_and(|m| m <= target),
            note: None,
        }
    }

    fn at_least(slo: impl Into<String>, target: f64, measured: Option<f64>) -> Self {
        Self {
            slo: slo.into(),
            target,
            measured,
            unit: "ratio",
            bound: "min",
            pass: measured.is_some_and(|m| m >= target),
            note: None,
        }
    }

    fn ratio_at_most(slo: &'static str, target: f64, measured: Option<f64>) -> Self {
        Self {
            unit: "ratio",
            ..Self::at_most(slo, target, measured)
        }
    }

    fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// Everything a check measured over its window.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// The traffic.
    pub traffic: TrafficSnapshot,
    /// Every probe (enabled or not).
    pub probes: BTreeMap<&'static str, ProbeSnapshot>,
    /// The last `chatload_ttl_drift_seconds{backend="scylla"}`.
    pub ttl_drift: f64,
    /// The last `chatload_partition_balance_cv`.
    pub partition_balance_cv: f64,
}

/// One (backend, op) over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpReport {
    /// `scylla` or `redis`.
    pub backend: &'static str,
    /// `write` or `read`.
    pub op: &'static str,
    /// Operations per outcome, and in total.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Every operation, whatever its outcome.
    pub total: u64,
    /// Successful operations per second.
    pub ok_per_second: f64,
    /// Latency from the scheduled start.
    pub latency: Percentiles,
    /// Latency from the send.
    pub service_time: Percentiles,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// chatload's version.
    pub version: &'static str,
    /// Measured window, seconds (warm-up excluded).
    pub duration_seconds: f64,
    /// Warm-up, seconds.
    pub warmup_seconds: f64,
    /// Target write rate of this instance, messages per second.
    pub target_write_rate: f64,
    /// Target read rate of this instance.
    pub target_read_rate: f64,
    /// What the database and Redis said they are.
    pub backends: BTreeMap<String, String>,
    /// One row per SLO.
    pub slos: Vec<SloRow>,
    /// What each probe did in the window.
    pub probes: BTreeMap<&'static str, ProbeSnapshot>,
    /// Per (backend, op) totals.
    pub operations: Vec<OpReport>,
    /// How late the pacer started operations (its target: p99 ≤ 200 µs on a machine that is not
    /// saturated).
    pub schedule_lag: Percentiles,
    /// Every SLO passed.
    pub pass: bool,
}

/// Judge the measured window against `cfg.slo`: the traffic rows, then one row per probe SLO and
/// one per enabled probe (every run must pass). Nothing measured fails.
pub fn evaluate(cfg: &Config, m: &Measured, seconds: f64) -> Vec<SloRow> {
    let mut rows = evaluate_traffic(cfg, &m.traffic, seconds);
    let s = &cfg.slo;
    let enabled: BTreeMap<&str, bool> = cfg.probes.iter().map(|(n, p)| (n, p.enabled)).collect();
    let on = |name: &str| enabled.get(name).copied().unwrap_or(false);
    let probe = |name: &str| m.probes.get(name).cloned().unwrap_or_default();
    let measured = |p: &ProbeSnapshot, f: fn(&crate::traffic::record::Percentiles) -> f64| {
        (p.latency.count > 0).then(|| f(&p.latency))
    };
    let ran = |p: &ProbeSnapshot| p.runs.values().sum::<u64>();
    if on("recent_50") {
        rows.push(SloRow::at_most(
            "recent_50_p99",
            secs(s.recent_50_p99),
            measured(&probe("recent_50"), |l| l.p99),
        ));
    }
    if on("range_5m") {
        rows.push(SloRow::at_most(
            "range_5m_max",
            secs(s.range_5m_max),
            measured(&probe("range_5m"), |l| l.max),
        ));
    }
    if on("pagination") {
        rows.push(SloRow::at_most(
            "pagination_page_p99",
            secs(s.pagination_page_p99),
            measured(&probe("pagination"), |l| l.p99),
        ));
    }
    if on("ttl_metadata") {
        let p = probe("ttl_metadata");
        rows.push(SloRow::at_most(
            "ttl_tolerance",
            secs(s.ttl_tolerance),
            (ran(&p) > 0).then_some(m.ttl_drift.abs()),
        ));
    }
    if on("partition_balance") {
        let p = probe("partition_balance");
        let judged_bad = p.check_failures.get("imbalance").copied().unwrap_or(0) > 0;
        let measured_cv = (ran(&p) > 0).then_some(m.partition_balance_cv);
        let mut row =
            SloRow::ratio_at_most("partition_balance_cv", s.partition_balance_cv, measured_cv);
        if measured_cv.is_some() && !judged_bad && !row.pass {
            // Above the target only because too few rows per stream were written yet.
            row.pass = true;
            row = row.with_note("not judged: fewer than probes.partition_balance.min_rows_per_stream rows per stream");
        }
        if judged_bad {
            row.pass = false;
        }
        rows.push(row);
    }
    if on("redis_pubsub") {
        rows.push(SloRow::at_most(
            "redis_pubsub_p99",
            secs(s.redis_pubsub_p99),
            measured(&probe("redis_pubsub"), |l| l.p99),
        ));
    }
    for (name, _) in cfg.probes.iter().filter(|(_, p)| p.enabled) {
        let p = probe(name);
        let total = ran(&p);
        let ok = p.runs.get("ok").copied().unwrap_or(0);
        let mut row = SloRow::at_least(
            format!("probe:{name}"),
            1.0,
            (total > 0).then(|| ok as f64 / total as f64),
        );
        if let Some(problem) = p.last_problem.filter(|_| !row.pass) {
            row = row.with_note(problem);
        }
        rows.push(row);
    }
    rows
}

/// In a bounded run every probe runs at least three times: its interval is capped at a third of
/// the duration (and its jitter at a quarter of the interval).
pub fn compress_probe_intervals(cfg: &mut Config, duration: Duration) {
    let cap = HumanDuration((duration / 3).max(Duration::from_secs(1)));
    let p = &mut cfg.probes;
    for (interval, jitter) in [
        (&mut p.ttl_metadata.interval, &mut p.ttl_metadata.jitter),
        (&mut p.ttl_expiry.interval, &mut p.ttl_expiry.jitter),
        (&mut p.recent_50.interval, &mut p.recent_50.jitter),
        (&mut p.range_5m.interval, &mut p.range_5m.jitter),
        (&mut p.pagination.interval, &mut p.pagination.jitter),
        (
            &mut p.partition_balance.interval,
            &mut p.partition_balance.jitter,
        ),
        (&mut p.redis_ttl.interval, &mut p.redis_ttl.jitter),
        (&mut p.redis_cache.interval, &mut p.redis_cache.jitter),
        (&mut p.redis_pubsub.interval, &mut p.redis_pubsub.jitter),
    ] {
        *interval = (*interval).min(cap);
        *jitter = (*jitter).min(HumanDuration(interval.get() / 4));
    }
}

fn secs(d: HumanDuration) -> f64 {
    d.get().as_secs_f64()
}

/// The traffic's rows: write p99, write success, throughput ratio.
pub fn evaluate_traffic(cfg: &Config, window: &TrafficSnapshot, seconds: f64) -> Vec<SloRow> {
    let w = &window.scylla_write;
    let total = w.total();
    let ok = w.get(Outcome::Ok);
    let target_rate = instance_rate(cfg.traffic.write_rate, cfg);
    let s = &cfg.slo;
    vec![
        SloRow::at_most(
            "write_p99",
            s.write_p99.get().as_secs_f64(),
            (w.duration.count > 0).then_some(w.duration.p99),
        ),
        SloRow::at_least(
            "write_success",
            s.write_success,
            (total > 0).then(|| ok as f64 / total as f64),
        ),
        SloRow::at_least(
            "throughput_ratio",
            s.throughput_ratio,
            (seconds > 0.0 && target_rate > 0.0).then(|| ok as f64 / seconds / target_rate),
        ),
    ]
}

fn op_report(backend: &'static str, op: &'static str, s: &OpSnapshot, seconds: f64) -> OpReport {
    OpReport {
        backend,
        op,
        outcomes: s.outcomes.clone(),
        total: s.total(),
        ok_per_second: if seconds > 0.0 {
            s.get(Outcome::Ok) as f64 / seconds
        } else {
            0.0
        },
        latency: s.duration,
        service_time: s.service,
    }
}

/// Run the check; returns the exit code.
pub async fn run(mut cfg: Config, duration: Duration, warmup: Duration, format: Format) -> u8 {
    // A gate needs no fixed port: serve the endpoints on an ephemeral loopback one.
    cfg.http.listen = "127.0.0.1:0".parse().expect("valid address");
    compress_probe_intervals(&mut cfg, duration);
    let shutdown = CancellationToken::new();
    let daemon = match Daemon::start(cfg.clone(), shutdown.clone()).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::cli::EXIT_USAGE;
        }
    };
    let stop = |daemon: Daemon| async {
        shutdown.cancel();
        daemon.wait().await;
    };

    let t0 = Instant::now();
    while !daemon.traffic().is_prepared() {
        if t0.elapsed() > CONNECT_WAIT {
            eprintln!(
                "error: could not reach ScyllaDB at {} within {}s (or prepare the statements there); see the log above",
                cfg.scylla.hosts.join(","),
                CONNECT_WAIT.as_secs()
            );
            stop(daemon).await;
            return crate::cli::EXIT_UNREACHABLE;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let traffic = daemon.traffic();
    eprintln!(
        "chatload check: {}s of traffic after a {}s warm-up (writes {}/s, reads {}/s)",
        duration.as_secs_f64(),
        warmup.as_secs_f64(),
        instance_rate(cfg.traffic.write_rate, &cfg),
        instance_rate(cfg.traffic.read_rate, &cfg),
    );
    tokio::time::sleep(warmup).await;
    traffic.reset_exact();
    daemon.probes().reset();
    let start_snapshot = traffic.snapshot();
    let start = Instant::now();
    let mut previous = (start, start_snapshot.clone());
    while start.elapsed() < duration {
        let left = duration.saturating_sub(start.elapsed());
        tokio::time::sleep(left.min(PROGRESS_EVERY)).await;
        let now = (Instant::now(), traffic.snapshot());
        eprintln!("{}", progress_line(&start_snapshot, &previous, &now, start));
        previous = now;
    }
    let seconds = start.elapsed().as_secs_f64();
    let window = traffic.snapshot().minus_counts(&start_snapshot);
    let metrics = daemon.metrics();
    let measured = Measured {
        traffic: window.clone(),
        probes: daemon.probes().snapshot(),
        ttl_drift: metrics.ttl_drift.with_label_values(&["scylla"]).get(),
        partition_balance_cv: metrics.partition_balance_cv.get(),
    };
    let backends = metrics.backend_descriptions();
    stop(daemon).await;

    let slos = evaluate(&cfg, &measured, seconds);
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        duration_seconds: seconds,
        warmup_seconds: warmup.as_secs_f64(),
        target_write_rate: instance_rate(cfg.traffic.write_rate, &cfg),
        target_read_rate: instance_rate(cfg.traffic.read_rate, &cfg),
        backends,
        pass: slos.iter().all(|r| r.pass),
        slos,
        probes: measured.probes,
        operations: vec![
            op_report("scylla", "write", &window.scylla_write, seconds),
            op_report("scylla", "read", &window.scylla_read, seconds),
            op_report("redis", "write", &window.redis_write, seconds),
        ],
        schedule_lag: window.schedule_lag,
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        ),
        Format::Text => print!("{}", render_text(&report)),
    }
    if report.pass {
        crate::cli::EXIT_OK
    } else {
        crate::cli::EXIT_FAILURE
    }
}

fn progress_line(
    first: &TrafficSnapshot,
    (t_prev, prev): &(Instant, TrafficSnapshot),
    (t_now, now): &(Instant, TrafficSnapshot),
    start: Instant,
) -> String {
    let secs = (*t_now - *t_prev).as_secs_f64().max(1e-9);
    let rate =
        |a: &OpSnapshot, b: &OpSnapshot| (a.get(Outcome::Ok) - b.get(Outcome::Ok)) as f64 / secs;
    let failures = |s: &OpSnapshot| {
        [
            Outcome::Error,
            Outcome::Timeout,
            Outcome::Overloaded,
            Outcome::Unavailable,
        ]
        .iter()
        .map(|o| s.get(*o))
        .sum::<u64>()
    };
    let all = |s: &TrafficSnapshot, f: &dyn Fn(&OpSnapshot) -> u64| {
        f(&s.scylla_write) + f(&s.scylla_read) + f(&s.redis_write)
    };
    format!(
        "[{:>4.0}s] writes {:>9.1}/s  reads {:>8.1}/s  redis {:>9.1}/s  errors {:>6}  drops {:>6}  write p99 {}",
        (*t_now - start).as_secs_f64(),
        rate(&now.scylla_write, &prev.scylla_write),
        rate(&now.scylla_read, &prev.scylla_read),
        rate(&now.redis_write, &prev.redis_write),
        all(now, &failures) - all(first, &failures),
        all(now, &|s| s.get(Outcome::Dropped)) - all(first, &|s| s.get(Outcome::Dropped)),
        human_seconds(now.scylla_write.duration.p99),
    )
}

/// `0.00123` → `1.23 ms`.
pub fn human_seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn human(value: f64, unit: &str) -> String {
    match unit {
        "seconds" => human_seconds(value),
        _ => format!("{:.3} %", value * 100.0),
    }
}

/// The report as a table.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nchatload {} check: {:.1}s measured after {:.0}s warm-up; target {}/s writes, {}/s reads",
        r.version, r.duration_seconds, r.warmup_seconds, r.target_write_rate, r.target_read_rate
    );
    for (backend, what) in &r.backends {
        let _ = writeln!(out, "  {backend}: {what}");
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:>12} {:>14}  result",
        "SLO", "target", "measured"
    );
    for row in &r.slos {
        let op = if row.bound == "max" { "<=" } else { ">=" };
        let note = row
            .note
            .as_deref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<24} {op}{:>10} {:>14}  {}{note}",
            row.slo,
            human(row.target, row.unit),
            row.measured
                .map_or_else(|| "n/a".to_string(), |m| human(m, row.unit)),
            if row.pass { "PASS" } else { "FAIL" }
        );
    }
    if !r.probes.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<18} {:>5} {:>7} {:>6} {:>8} {:>10} {:>10} {:>10}",
            "probe", "ok", "failed", "error", "timeout", "p50", "p99", "max"
        );
        for (name, p) in r.probes.iter().filter(|(_, p)| !p.runs.is_empty()) {
            let c = |k: &str| p.runs.get(k).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name:<18} {:>5} {:>7} {:>6} {:>8} {:>10} {:>10} {:>10}",
                c("ok"),
                c("failed"),
                c("error"),
                c("timeout"),
                human_seconds(p.latency.p50),
                human_seconds(p.latency.p99),
                human_seconds(p.latency.max),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{:<13} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "operation",
        "total",
        "ok",
        "error",
        "timeout",
        "overld",
        "unavail",
        "dropped",
        "ok/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max"
    );
    for o in &r.operations {
        let c = |k: &str| o.outcomes.get(k).copied().unwrap_or(0);
        let l = &o.latency;
        let _ = writeln!(
            out,
            "{:<13} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10.1} {:>10} {:>10} {:>10} {:>10} {:>10}",
            format!("{} {}", o.backend, o.op),
            o.total,
            c("ok"),
            c("error"),
            c("timeout"),
            c("overloaded"),
            c("unavailable"),
            c("dropped"),
            o.ok_per_second,
            human_seconds(l.p50),
            human_seconds(l.p90),
            human_seconds(l.p99),
            human_seconds(l.p999),
            human_seconds(l.max),
        );
    }
    let _ = writeln!(
        out,
        "(latency from the scheduled start; service time from the send is in --format json)"
    );
    let lag = &r.schedule_lag;
    let _ = writeln!(
        out,
        "schedule lag: p50 {}, p99 {}, p99.9 {}, max {}",
        human_seconds(lag.p50),
        human_seconds(lag.p99),
        human_seconds(lag.p999),
        human_seconds(lag.max)
    );
    let failed: Vec<&str> = r
        .slos
        .iter()
        .filter(|s| !s.pass)
        .map(|s| s.slo.as_str())
        .collect();
    if failed.is_empty() {
        let _ = writeln!(out, "\nRESULT: PASS (all {} SLOs met)", r.slos.len());
    } else {
        let _ = writeln!(
            out,
            "\nRESULT: FAIL ({} breached: {})",
            failed.len(),
            failed.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn snapshot(ok: u64, errors: u64, dropped: u64, p99: f64) -> OpSnapshot {
        let mut s = OpSnapshot::default();
        for o in Outcome::ALL {
            s.outcomes.insert(o.label(), 0);
        }
        s.outcomes.insert("ok", ok);
        s.outcomes.insert("error", errors);
        s.outcomes.insert("dropped", dropped);
        s.duration = Percentiles {
            count: ok + errors,
            p99,
            ..Default::default()
        };
        s
    }

    fn window(w: OpSnapshot) -> TrafficSnapshot {
        TrafficSnapshot {
            scylla_write: w,
            scylla_read: OpSnapshot::default(),
            redis_write: OpSnapshot::default(),
            schedule_lag: Percentiles::default(),
        }
    }

    #[test]
    fn a_healthy_window_passes_every_slo() {
        let rows = evaluate_traffic(
            &Config::default(),
            &window(snapshot(59_990, 10, 0, 0.0021)),
            60.0,
        );
        assert!(rows.iter().all(|r| r.pass), "{rows:#?}");
        assert_eq!(rows[1].measured, Some(59_990.0 / 60_000.0));
        assert!((rows[2].measured.unwrap() - 59_990.0 / 60.0 / 1000.0).abs() < 1e-12);
    }

    #[test]
    fn each_breach_fails_its_own_row() {
        let mut cfg = Config::default();
        let rows = evaluate_traffic(&cfg, &window(snapshot(60_000, 0, 0, 0.0051)), 60.0);
        assert_eq!(
            rows.iter().map(|r| r.pass).collect::<Vec<_>>(),
            [false, true, true]
        );
        // Drops count against success: the load was not served.
        let rows = evaluate_traffic(&cfg, &window(snapshot(59_000, 0, 1_000, 0.001)), 60.0);
        assert_eq!(
            rows.iter().map(|r| r.pass).collect::<Vec<_>>(),
            [true, false, true]
        );
        // Half the rate.
        let rows = evaluate_traffic(&cfg, &window(snapshot(30_000, 0, 0, 0.001)), 60.0);
        assert_eq!(
            rows.iter().map(|r| r.pass).collect::<Vec<_>>(),
            [true, true, false]
        );
        // A 1 µs target fails any real latency.
        cfg.slo.write_p99 = HumanDuration(Duration::from_micros(1));
        assert!(!evaluate_traffic(&cfg, &window(snapshot(60_000, 0, 0, 0.0002)), 60.0)[0].pass);
    }

    #[test]
    fn nothing_measured_fails() {
        let rows = evaluate_traffic(&Config::default(), &window(snapshot(0, 0, 0, 0.0)), 60.0);
        assert!(
            rows.iter()
                .all(|r| !r.pass && r.measured.is_none_or(|m| m == 0.0)),
            "{rows:#?}"
        );
    }

    fn probe(ok: u64, failed: u64, p99: f64, max: f64) -> ProbeSnapshot {
        let mut p = ProbeSnapshot::default();
        p.runs.insert("ok", ok);
        if failed > 0 {
            p.runs.insert("failed", failed);
        }
        p.latency = Percentiles {
            count: ok + failed,
            p99,
            max,
            ..Default::default()
        };
        p
    }

    fn healthy() -> Measured {
        let mut m = Measured {
            traffic: window(snapshot(60_000, 0, 0, 0.002)),
            ttl_drift: 0.5,
            partition_balance_cv: 0.04,
            ..Default::default()
        };
        for name in crate::probes::all(&Config::default())
            .iter()
            .map(|p| p.name())
        {
            m.probes.insert(name, probe(10, 0, 0.004, 0.006));
        }
        m
    }

    fn verdicts(rows: &[SloRow]) -> BTreeMap<String, bool> {
        rows.iter().map(|r| (r.slo.clone(), r.pass)).collect()
    }

    #[test]
    fn probe_rows_pass_on_healthy_probes() {
        let rows = evaluate(&Config::default(), &healthy(), 60.0);
        assert_eq!(rows.len(), 3 + 6 + 9, "{rows:#?}");
        assert!(rows.iter().all(|r| r.pass), "{rows:#?}");
    }

    #[test]
    fn each_probe_slo_fails_on_its_own_breach() {
        let cfg = Config::default();
        type Breach = fn(&mut Measured);
        let cases: [(&str, Breach); 7] = [
            ("recent_50_p99", |m| {
                m.probes
                    .insert("recent_50", probe(10, 0, 0.011, 0.02))
                    .map(drop)
                    .unwrap_or(())
            }),
            ("range_5m_max", |m| {
                m.probes
                    .insert("range_5m", probe(10, 0, 0.01, 0.051))
                    .map(drop)
                    .unwrap_or(())
            }),
            ("pagination_page_p99", |m| {
                m.probes
                    .insert("pagination", probe(10, 0, 0.02, 0.03))
                    .map(drop)
                    .unwrap_or(())
            }),
            ("ttl_tolerance", |m| m.ttl_drift = -2_588_400.0),
            ("redis_pubsub_p99", |m| {
                m.probes
                    .insert("redis_pubsub", probe(10, 0, 0.06, 0.07))
                    .map(drop)
                    .unwrap_or(())
            }),
            ("probe:redis_cache", |m| {
                m.probes
                    .insert("redis_cache", probe(9, 1, 0.004, 0.006))
                    .map(drop)
                    .unwrap_or(())
            }),
            ("probe:ttl_expiry", |m| {
                m.probes
                    .insert("ttl_expiry", ProbeSnapshot::default())
                    .map(drop)
                    .unwrap_or(())
            }),
        ];
        for (slo, breach) in cases {
            let mut m = healthy();
            breach(&mut m);
            let v = verdicts(&evaluate(&cfg, &m, 60.0));
            let failed: Vec<&str> = v
                .iter()
                .filter(|(_, ok)| !**ok)
                .map(|(k, _)| k.as_str())
                .collect();
            assert_eq!(failed, [slo], "breach of {slo}");
        }
    }

    #[test]
    fn partition_balance_is_judged_only_with_enough_rows() {
        let cfg = Config::default();
        let mut m = healthy();
        m.partition_balance_cv = 0.3; // above target, but the probe did not judge it
        let rows = evaluate(&cfg, &m, 60.0);
        let row = rows
            .iter()
            .find(|r| r.slo == "partition_balance_cv")
            .unwrap();
        assert!(row.pass && row.note.is_some(), "{row:?}");
        m.probes
            .get_mut("partition_balance")
            .unwrap()
            .check_failures
            .insert("imbalance", 1);
        let rows = evaluate(&cfg, &m, 60.0);
        assert!(
            !rows
                .iter()
                .find(|r| r.slo == "partition_balance_cv")
                .unwrap()
                .pass
        );
    }

    #[test]
    fn disabled_probes_have_no_rows() {
        let mut cfg = Config::default();
        cfg.probes.recent_50.enabled = false;
        cfg.probes.redis_pubsub.enabled = false;
        let v = verdicts(&evaluate(&cfg, &healthy(), 60.0));
        for gone in [
            "recent_50_p99",
            "probe:recent_50",
            "redis_pubsub_p99",
            "probe:redis_pubsub",
        ] {
            assert!(!v.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn probe_intervals_are_compressed_into_the_run() {
        let mut cfg = Config::default();
        compress_probe_intervals(&mut cfg, Duration::from_secs(30));
        for (name, p) in cfg.probes.iter() {
            assert!(p.interval.get() <= Duration::from_secs(10), "{name}");
            assert!(p.jitter.get() <= p.interval.get() / 4, "{name}");
        }
        assert_eq!(
            cfg.probes.recent_50.interval.get(),
            Duration::from_secs(5),
            "shorter ones are kept"
        );
    }

    #[test]
    fn text_report_marks_failed_rows() {
        let cfg = Config::default();
        let w = window(snapshot(60_000, 0, 0, 0.0051));
        let slos = evaluate_traffic(&cfg, &w, 60.0);
        let r = Report {
            version: "x",
            duration_seconds: 60.0,
            warmup_seconds: 5.0,
            target_write_rate: 1000.0,
            target_read_rate: 200.0,
            backends: BTreeMap::new(),
            pass: false,
            slos,
            probes: BTreeMap::new(),
            operations: vec![op_report("scylla", "write", &w.scylla_write, 60.0)],
            schedule_lag: Percentiles::default(),
        };
        let text = render_text(&r);
        assert!(
            text.contains("write_p99") && text.contains("5.10 ms") && text.contains("FAIL"),
            "{text}"
        );
        assert!(
            text.contains("RESULT: FAIL (1 breached: write_p99)"),
            "{text}"
        );
        assert_eq!(human_seconds(0.000_25), "250 µs");
        assert_eq!(human_seconds(2.5), "2.50 s");
    }
}
