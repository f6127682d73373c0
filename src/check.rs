//! `chatload check`: run the traffic for a bounded time and judge it against the `[slo]` section —
//! the pipeline gate. Exit 0 when every SLO passes, 1 on any breach, 3 when the database cannot be
//! reached at all.
//!
//! The warm-up (connections, JIT of the server, caches) is excluded: counters are taken as deltas
//! from its end and the exact (HDR) latency histograms are reset then. Percentiles are exact, not
//! interpolated from Prometheus buckets. A progress line goes to stderr every 5 s; the report goes to
//! stdout, as text or as one JSON document.

use crate::config::Config;
use crate::daemon::Daemon;
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
    /// The `[slo]` key.
    pub slo: &'static str,
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
}

impl SloRow {
    fn at_most(slo: &'static str, target: f64, measured: Option<f64>) -> Self {
        Self {
            slo,
            target,
            measured,
            unit: "seconds",
            bound: "max",
            pass: measured.is_some_and(|m| m <= target),
        }
    }

    fn at_least(slo: &'static str, target: f64, measured: Option<f64>) -> Self {
        Self {
            slo,
            target,
            measured,
            unit: "ratio",
            bound: "min",
            pass: measured.is_some_and(|m| m >= target),
        }
    }
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
    /// Per (backend, op) totals.
    pub operations: Vec<OpReport>,
    /// How late the pacer started operations (its target: p99 ≤ 200 µs on a machine that is not
    /// saturated).
    pub schedule_lag: Percentiles,
    /// Every SLO passed.
    pub pass: bool,
}

/// Judge the measured window against `cfg.slo`.
pub fn evaluate(cfg: &Config, window: &TrafficSnapshot, seconds: f64) -> Vec<SloRow> {
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
    let backends = daemon.metrics().backend_descriptions();
    stop(daemon).await;

    let slos = evaluate(&cfg, &window, seconds);
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        duration_seconds: seconds,
        warmup_seconds: warmup.as_secs_f64(),
        target_write_rate: instance_rate(cfg.traffic.write_rate, &cfg),
        target_read_rate: instance_rate(cfg.traffic.read_rate, &cfg),
        backends,
        pass: slos.iter().all(|r| r.pass),
        slos,
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
        "\n{:<22} {:>12} {:>14}  result",
        "SLO", "target", "measured"
    );
    for row in &r.slos {
        let op = if row.bound == "max" { "<=" } else { ">=" };
        let _ = writeln!(
            out,
            "{:<22} {op}{:>10} {:>14}  {}",
            row.slo,
            human(row.target, row.unit),
            row.measured
                .map_or_else(|| "n/a".to_string(), |m| human(m, row.unit)),
            if row.pass { "PASS" } else { "FAIL" }
        );
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
    let failed: Vec<&str> = r.slos.iter().filter(|s| !s.pass).map(|s| s.slo).collect();
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
        let rows = evaluate(
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
        let rows = evaluate(&cfg, &window(snapshot(60_000, 0, 0, 0.0051)), 60.0);
        assert_eq!(
            rows.iter().map(|r| r.pass).collect::<Vec<_>>(),
            [false, true, true]
        );
        // Drops count against success: the load was not served.
        let rows = evaluate(&cfg, &window(snapshot(59_000, 0, 1_000, 0.001)), 60.0);
        assert_eq!(
            rows.iter().map(|r| r.pass).collect::<Vec<_>>(),
            [true, false, true]
        );
        // Half the rate.
        let rows = evaluate(&cfg, &window(snapshot(30_000, 0, 0, 0.001)), 60.0);
        assert_eq!(
            rows.iter().map(|r| r.pass).collect::<Vec<_>>(),
            [true, true, false]
        );
        // A 1 µs target fails any real latency.
        cfg.slo.write_p99 = HumanDuration(Duration::from_micros(1));
        assert!(!evaluate(&cfg, &window(snapshot(60_000, 0, 0, 0.0002)), 60.0)[0].pass);
    }

    #[test]
    fn nothing_measured_fails() {
        let rows = evaluate(&Config::default(), &window(snapshot(0, 0, 0, 0.0)), 60.0);
        assert!(
            rows.iter()
                .all(|r| !r.pass && r.measured.is_none_or(|m| m == 0.0)),
            "{rows:#?}"
        );
    }

    #[test]
    fn text_report_marks_failed_rows() {
        let cfg = Config::default();
        let w = window(snapshot(60_000, 0, 0, 0.0051));
        let slos = evaluate(&cfg, &w, 60.0);
        let r = Report {
            version: "x",
            duration_seconds: 60.0,
            warmup_seconds: 5.0,
            target_write_rate: 1000.0,
            target_read_rate: 200.0,
            backends: BTreeMap::new(),
            pass: false,
            slos,
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
