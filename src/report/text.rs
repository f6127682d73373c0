//! The check report as a table for people, and the progress line `chatload check` prints.

use super::Report;
use crate::measure::e2e::{E2eSnapshot, E2eView};
use crate::measure::record::{OpSnapshot, Outcome};
use crate::measure::snapshot::TrafficSnapshot;
use crate::measure::stats::human_seconds;
use std::fmt::Write as _;
use tokio::time::Instant;

/// One progress line: rates since the previous line, failures and drops since the start.
pub fn progress_line(
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

/// The canary's progress: `[15s/60s ETA 45s] post 100.0/s ok 100% | read 200.0/s | delivered
/// 99.98% p95 14ms | ws 200/200 | queue 3`.
pub fn e2e_progress_line(
    first: &E2eView,
    (t_prev, prev): &(Instant, E2eView),
    (t_now, now): &(Instant, E2eView),
    start: Instant,
    duration: std::time::Duration,
    (ready, target): (usize, usize),
) -> String {
    let secs = (*t_now - *t_prev).as_secs_f64().max(1e-9);
    let elapsed = (*t_now - start).as_secs_f64();
    let per_s = |a: &OpSnapshot, b: &OpSnapshot| a.total().saturating_sub(b.total()) as f64 / secs;
    let window = now.minus_counts(first);
    let pct = |good: u64, total: u64| {
        if total == 0 {
            "n/a".to_string()
        } else {
            format!("{:.2}%", good as f64 * 100.0 / total as f64)
        }
    };
    let c = &window.canary;
    let queue = match (c.queue_up, c.queue_depth) {
        (true, Some(d)) => format!("{d:.0}"),
        (false, Some(d)) => format!("unknown (last {d:.0})"),
        _ => "unknown".into(),
    };
    format!(
        "[{elapsed:.0}s/{:.0}s ETA {:.0}s] post {:.1}/s ok {} | read {:.1}/s | delivered {} p95 {} | ws {ready}/{target} | queue {queue}",
        duration.as_secs_f64(),
        (duration.as_secs_f64() - elapsed).max(0.0),
        per_s(&now.post, &prev.post),
        pct(window.post.get(Outcome::Ok), window.post.total()),
        per_s(&now.read, &prev.read),
        pct(E2eSnapshot::count(&c.deliveries, "ok"), c.expected()),
        human_seconds(c.delivery.p95),
    )
}

fn human(value: f64, unit: &str) -> String {
    match unit {
        "seconds" => human_seconds(value),
        "count" => format!("{value:.0}"),
        _ => format!("{:.3} %", value * 100.0),
    }
}

/// The report as a table.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nchatload {} check: {:.1}s measured after {:.0}s warm-up; target {}/s writes, {}/s reads; {} traffic thread{}",
        r.version,
        r.duration_seconds,
        r.warmup_seconds,
        r.target_write_rate,
        r.target_read_rate,
        r.traffic_threads,
        if r.traffic_threads == 1 { "" } else { "s" }
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
        "\n{:<13} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "operation",
        "due",
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
            "{:<13} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10.1} {:>10} {:>10} {:>10} {:>10} {:>10}",
            format!("{} {}", o.backend, o.op),
            o.due,
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
    if let Some(e) = &r.e2e {
        let w = &e.window;
        let list = |m: &std::collections::BTreeMap<&'static str, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "\ne2e canary: {}/s posts, {}/s reads, {} subscribers",
            e.target_post_rate, e.target_read_rate, e.subscribers
        );
        let _ = writeln!(
            out,
            "  deliveries expected {}: {}",
            w.expected(),
            list(&w.deliveries)
        );
        let _ = writeln!(out, "  messages by fan-out: {}", list(&w.messages));
        let _ = writeln!(out, "  anomalies: {}", list(&w.anomalies));
        let _ = writeln!(
            out,
            "  delivery from the schedule: p50 {}, p95 {}, p99 {}, max {}",
            human_seconds(w.delivery.p50),
            human_seconds(w.delivery.p95),
            human_seconds(w.delivery.p99),
            human_seconds(w.delivery.max)
        );
        let _ = writeln!(
            out,
            "  websocket connects: {}; disconnects: {}",
            list(&w.ws_connects),
            list(&w.ws_disconnects)
        );
        let _ = writeln!(
            out,
            "  database read-back: {}; reads: {}; deepest queue {}",
            list(&w.visibility),
            list(&w.reads),
            w.queue_depth_max
                .map_or_else(|| "unknown".to_string(), |d| format!("{d:.0}"))
        );
    }
    let _ = writeln!(
        out,
        "(latency from the scheduled start, every due operation counted: one that failed or was \
         dropped at no less than its deadline; service time from the send is in --format json)"
    );
    let _ = writeln!(out, "precision: {}", r.precision);
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
