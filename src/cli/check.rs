//! `chatload check`: run the traffic for a bounded time and judge it against the `[slo]` section —
//! the pipeline gate. Exit 0 when every SLO passes, 1 on any breach, 3 when the database cannot be
//! reached at all.
//!
//! The warm-up (connections, JIT of the server, caches) is excluded: counters are taken as deltas
//! from its end and the exact (HDR) latency histograms are reset then. Percentiles are exact, not
//! interpolated from Prometheus buckets. A progress line goes to stderr every 5 s; the report goes to
//! stdout, as text or as one JSON document.

use crate::config::instance_rate;
use crate::config::{Config, HumanDuration};
use crate::daemon::Daemon;
use crate::measure::e2e::CHAT_API;
use crate::report::text::{e2e_progress_line, progress_line, render_text};
use crate::report::{E2eReport, Measured, Report, evaluate, op_report, precision};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often progress is printed.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How long the database (and the chat service, with `[e2e]`) may take to answer before `check`
/// gives up with exit code 3.
pub const CONNECT_WAIT: Duration = Duration::from_secs(30);
/// How long the canary's subscribers must have been ready before its window begins.
pub const READY_SETTLE: Duration = Duration::from_secs(1);
/// Above this p99 of its receiving thread's wake-up lag, the canary's rows say it limited them.
pub const CANARY_LIMITED: f64 = 0.005;

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// One JSON document.
    Json,
}

/// In a bounded run every probe runs at least three times: its interval is capped at a third of
/// the duration (and its jitter at a quarter of the interval).
pub fn compress_probe_intervals(cfg: &mut Config, duration: Duration) {
    let cap = HumanDuration((duration / 3).max(Duration::from_secs(1)));
    let names: Vec<&str> = cfg.probes.iter().map(|(name, _)| name).collect();
    for name in names {
        let p = cfg
            .probes
            .schedule_mut(name)
            .expect("a probe of the catalog");
        p.interval = p.interval.min(cap);
        p.jitter = p.jitter.min(HumanDuration(p.interval.get() / 4));
    }
}

/// How a check ended; [`crate::cli`] turns it into the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every SLO passed.
    Pass,
    /// At least one SLO was breached.
    Fail,
    /// The database could not be reached (or the statements prepared) within [`CONNECT_WAIT`].
    Unreachable,
    /// chatload could not start (e.g. the HTTP address or a TLS file).
    CannotStart,
}

/// Run the check and print its report.
pub async fn run(mut cfg: Config, duration: Duration, warmup: Duration, format: Format) -> Verdict {
    // A gate needs no fixed port: serve the endpoints on an ephemeral loopback one.
    cfg.http.listen = "127.0.0.1:0".parse().expect("valid address");
    compress_probe_intervals(&mut cfg, duration);
    let shutdown = CancellationToken::new();
    let daemon = match Daemon::start(cfg.clone(), shutdown.clone()).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Verdict::CannotStart;
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
            return Verdict::Unreachable;
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
    let e2e = daemon.e2e().cloned();
    if let Some(canary) = &e2e {
        let (posts, reads) = canary.rates();
        eprintln!(
            "chatload check: e2e canary against {} ({posts}/s posts, {reads}/s reads, {} subscribers)",
            cfg.e2e.base_url,
            canary.subscribers().1
        );
        let t0 = Instant::now();
        while !canary.answered() {
            if t0.elapsed() > CONNECT_WAIT {
                eprintln!(
                    "error: the chat service at e2e.base_url = {} did not answer within {}s; see the log above",
                    cfg.e2e.base_url,
                    CONNECT_WAIT.as_secs()
                );
                canary.halt();
                stop(daemon).await;
                return Verdict::Unreachable;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(warmup).await;
    if let Some(canary) = &e2e {
        // The measured window starts once 99 % of the subscribers have been ready for
        // READY_SETTLE (so the posts it counts were made to the full population, not to the one
        // still connecting a moment before), waiting at most the time their connect timetable
        // needs.
        let (_, target) = canary.subscribers();
        let wait = Duration::from_secs_f64(target as f64 / cfg.e2e.subscribers.connect_rate)
            + READY_SETTLE
            + Duration::from_secs(2);
        let t0 = Instant::now();
        let mut ready_since: Option<Instant> = None;
        while t0.elapsed() < wait {
            if (canary.subscribers().0 as f64) >= 0.99 * target as f64 {
                let since = *ready_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= READY_SETTLE {
                    break;
                }
            } else {
                ready_since = None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (ready, _) = canary.subscribers();
        if (ready as f64) < 0.99 * target as f64 {
            eprintln!(
                "warning: only {ready} of {target} subscribers ready after {}s; measuring anyway",
                wait.as_secs()
            );
        }
    }
    daemon.probes().reset();
    let metrics = daemon.metrics().clone();
    let start_snapshot = traffic.begin_window();
    let start_probes = daemon.probes().snapshot();
    let start_e2e = e2e.as_ref().map(|c| c.begin_window());
    let start = Instant::now();
    let mut previous = (start, start_snapshot.clone());
    let mut previous_e2e = start_e2e.clone().map(|s| (start, s));
    while start.elapsed() < duration {
        let left = duration.saturating_sub(start.elapsed());
        tokio::time::sleep(left.min(PROGRESS_EVERY)).await;
        let now = (Instant::now(), traffic.snapshot());
        eprintln!("{}", progress_line(&start_snapshot, &previous, &now, start));
        previous = now;
        if let (Some(canary), Some(first), Some(prev)) = (&e2e, &start_e2e, &previous_e2e) {
            let now = (Instant::now(), canary.snapshot());
            eprintln!(
                "{}",
                e2e_progress_line(first, prev, &now, start, duration, canary.subscribers())
            );
            previous_e2e = Some(now);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // Stop scheduling and let the requests in flight finish, so that every operation made due in
    // the window is counted with its outcome and observed.
    if !traffic.stop().await {
        eprintln!("warning: requests were still in flight after traffic.drain_timeout");
    }
    // The canary's posts wait for their delivery timeout, so every expected delivery is counted.
    let e2e_window = match (&e2e, &start_e2e) {
        (Some(canary), Some(first)) => {
            if !canary.stop().await {
                eprintln!("warning: e2e requests or deliveries were still pending at the end");
            }
            Some(canary.snapshot().minus_counts(first))
        }
        _ => None,
    };
    let window = traffic.snapshot().minus_counts(&start_snapshot);
    let probes = daemon.probes().snapshot();
    let measured = Measured {
        traffic: window.clone(),
        // The probes' buckets over the window: their counts since the start, less those before it.
        probes: probes
            .into_iter()
            .map(|(k, mut p)| {
                if let Some(before) = start_probes.get(k) {
                    p.buckets = p.buckets.minus(&before.buckets);
                }
                (k, p)
            })
            .collect(),
        seconds,
        target_write_rate: instance_rate(cfg.traffic.write_rate, &cfg),
        e2e: e2e_window.clone(),
        target_post_rate: e2e.as_ref().map_or(0.0, |c| c.rates().0),
    };
    let backends = metrics.backend_descriptions();
    let traffic_threads = daemon.traffic().threads();
    stop(daemon).await;

    let mut slos = evaluate(&cfg, &measured);
    if let Some(w) = &e2e_window
        && w.canary.rx_lag.p99 > CANARY_LIMITED
    {
        // The canary's own receiving thread was late: its latencies include that.
        for row in slos.iter_mut().filter(|r| r.slo.starts_with("e2e_")) {
            let note = format!(
                "canary-limited: its receiving thread woke up {} late at p99",
                crate::measure::stats::human_seconds(w.canary.rx_lag.p99)
            );
            row.note = Some(match row.note.take() {
                Some(n) => format!("{n}; {note}"),
                None => note,
            });
        }
    }
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        duration_seconds: seconds,
        warmup_seconds: warmup.as_secs_f64(),
        target_write_rate: instance_rate(cfg.traffic.write_rate, &cfg),
        target_read_rate: instance_rate(cfg.traffic.read_rate, &cfg),
        traffic_threads,
        backends,
        pass: slos.iter().all(|r| r.pass),
        slos,
        probes: measured.probes,
        e2e: match (&e2e, &e2e_window) {
            (Some(canary), Some(w)) => Some(E2eReport {
                target_post_rate: canary.rates().0,
                target_read_rate: canary.rates().1,
                subscribers: canary.subscribers().1,
                window: w.canary.clone(),
            }),
            _ => None,
        },
        operations: vec![
            op_report(
                "scylla",
                "write",
                &window.scylla_write,
                &start_snapshot.scylla_write,
                seconds,
            ),
            op_report(
                "scylla",
                "read",
                &window.scylla_read,
                &start_snapshot.scylla_read,
                seconds,
            ),
            op_report(
                "redis",
                "write",
                &window.redis_write,
                &start_snapshot.redis_write,
                seconds,
            ),
        ]
        .into_iter()
        .chain(
            e2e_window
                .iter()
                .zip(start_e2e.iter())
                .flat_map(|(w, first)| {
                    [
                        op_report(CHAT_API, "api_post", &w.post, &first.post, seconds),
                        op_report(CHAT_API, "api_read", &w.read, &first.read, seconds),
                    ]
                }),
        )
        .collect(),
        schedule_lag: window.schedule_lag,
        precision: precision(),
        in_flight_at_start: [
            &start_snapshot.scylla_write,
            &start_snapshot.scylla_read,
            &start_snapshot.redis_write,
        ]
        .iter()
        .map(|s| s.due.saturating_sub(s.total()))
        .sum(),
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        ),
        Format::Text => print!("{}", render_text(&report)),
    }
    if report.pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_intervals_are_compressed_into_the_run() {
        let mut cfg = crate::probes::registry::defaults();
        compress_probe_intervals(&mut cfg, Duration::from_secs(30));
        for (name, p) in cfg.probes.iter() {
            assert!(p.interval.get() <= Duration::from_secs(10), "{name}");
            assert!(p.jitter.get() <= p.interval.get() / 4, "{name}");
        }
        assert_eq!(
            cfg.probes.schedule("recent_50").unwrap().interval.get(),
            Duration::from_secs(5),
            "shorter ones are kept"
        );
    }
}
