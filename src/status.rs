//! The status page (`/`) and its JSON (`/api/v1/status`): for a person without Grafana.
//!
//! A sampler reads the counters and latency buckets that `/metrics` exports (traffic writes, every
//! probe's runs, check failures and duration buckets) every 10 s and keeps 15 minutes of them. From
//! those it draws the write rate and p99 as inline SVG sparklines, and judges every SLO of the SLO
//! model ([`crate::slo`]) over the last 5 minutes, the window of the threshold alerts, with the same
//! judge as `chatload check`: probes included, so a probe that failed an hour ago is not failing now.
//! The page has no external assets and refreshes itself every 10 s.

use crate::check::{Measured, SloRow, evaluate, human_seconds};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::probes::{ProbeScheduler, ProbeSnapshot};
use crate::slo::{BucketCounts, WINDOW};
use crate::traffic::TrafficSnapshot;
use crate::traffic::record::{OpSnapshot, Outcome, Percentiles};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the sampler samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How many samples it keeps (15 minutes).
pub const KEEP: usize = 91;
/// The window the SLO rows are judged over: the alerts' window.
pub const SLO_WINDOW: Duration = WINDOW;

/// What one probe's counters said at a sample.
#[derive(Debug, Clone, Default)]
struct ProbeSample {
    runs: BTreeMap<&'static str, u64>,
    check_failures: BTreeMap<&'static str, u64>,
    buckets: BucketCounts,
}

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    unix: i64,
    outcomes: BTreeMap<&'static str, u64>,
    /// The write latency histogram's buckets.
    buckets: BucketCounts,
    probes: BTreeMap<&'static str, ProbeSample>,
}

/// One point of a chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Unix seconds.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// `/api/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// chatload's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// This instance and how many share the traffic.
    pub instance: (u32, u32),
    /// `chatload_backend_up` per backend.
    pub backends_up: BTreeMap<String, bool>,
    /// What each backend said it is.
    pub backends: BTreeMap<String, String>,
    /// Target write and read rates of this instance.
    pub target_rates: (f64, f64),
    /// Seconds the SLO rows were judged over (up to 300, less right after the start).
    pub window_seconds: f64,
    /// SLO rows, traffic and probes over the last 5 minutes.
    pub slos: Vec<SloRow>,
    /// Each probe over the last 5 minutes (runs, check failures, interpolated latency), with its
    /// last result.
    pub probes: BTreeMap<&'static str, ProbeSnapshot>,
    /// Successful writes per second, every 10 s over 15 minutes.
    pub write_rate: Vec<Point>,
    /// Write p99 (seconds, from the scheduled start; interpolated in buckets) per 10 s.
    pub write_p99: Vec<Point>,
}

/// Keeps the samples and builds [`Status`].
pub struct StatusBoard {
    cfg: Mutex<Arc<Config>>,
    metrics: Arc<Metrics>,
    probes: Arc<ProbeScheduler>,
    started: Instant,
    samples: Mutex<VecDeque<Sample>>,
}

impl StatusBoard {
    /// A board over `metrics` and `probes`.
    pub fn new(cfg: Config, metrics: Arc<Metrics>, probes: Arc<ProbeScheduler>) -> Self {
        Self {
            cfg: Mutex::new(Arc::new(cfg)),
            metrics,
            probes,
            started: Instant::now(),
            samples: Mutex::new(VecDeque::with_capacity(KEEP + 1)),
        }
    }

    /// Judge against a reloaded configuration from now on.
    pub fn set_cfg(&self, cfg: Config) {
        *self.cfg.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
    }

    fn cfg(&self) -> Arc<Config> {
        self.cfg.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sample every [`SAMPLE_EVERY`] until `shutdown`.
    pub async fn run_sampler(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.sample(),
            }
        }
    }

    fn sample(&self) {
        let m = &self.metrics;
        let outcomes = Outcome::ALL
            .iter()
            .map(|o| {
                (
                    o.label(),
                    m.operations
                        .with_label_values(&["scylla", "write", o.label()])
                        .get(),
                )
            })
            .collect();
        let buckets =
            BucketCounts::of(&m.operation_duration.with_label_values(&["scylla", "write"]));
        let probes = self
            .probes
            .checks()
            .iter()
            .map(|(&name, checks)| {
                let sample = ProbeSample {
                    runs: crate::probes::OUTCOMES
                        .iter()
                        .map(|o| (*o, m.probe_runs.with_label_values(&[name, o]).get()))
                        .collect(),
                    check_failures: checks
                        .iter()
                        .map(|c| {
                            (
                                *c,
                                m.probe_check_failures.with_label_values(&[name, c]).get(),
                            )
                        })
                        .collect(),
                    buckets: BucketCounts::of(&m.probe_duration.with_label_values(&[name])),
                };
                (name, sample)
            })
            .collect();
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back(Sample {
            at: Instant::now(),
            unix: crate::traffic::wall_clock_ms() / 1000,
            outcomes,
            buckets,
            probes,
        });
        while s.len() > KEEP {
            s.pop_front();
        }
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.sample_if_stale();
        let samples: Vec<Sample> = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let mut write_rate = vec![];
        let mut write_p99 = vec![];
        for pair in samples.windows(2) {
            let secs = (pair[1].at - pair[0].at).as_secs_f64().max(1e-9);
            let ok = pair[1].outcomes["ok"] - pair[0].outcomes["ok"];
            write_rate.push(Point {
                t: pair[1].unix,
                v: ok as f64 / secs,
            });
            if let Some(p99) = pair[1].buckets.minus(&pair[0].buckets).quantile(0.99) {
                write_p99.push(Point {
                    t: pair[1].unix,
                    v: p99,
                });
            }
        }
        let cfg = self.cfg();
        let measured = self.measured(&cfg, &samples);
        let m = &self.metrics;
        let backends_up = ["scylla", "redis"]
            .iter()
            .map(|b| {
                (
                    b.to_string(),
                    m.backend_up.with_label_values(&[b]).get() == 1,
                )
            })
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            instance: (cfg.instance.index, cfg.instance.count),
            backends_up,
            backends: m.backend_descriptions(),
            target_rates: (
                crate::traffic::instance_rate(cfg.traffic.write_rate, &cfg),
                crate::traffic::instance_rate(cfg.traffic.read_rate, &cfg),
            ),
            window_seconds: measured.seconds,
            slos: evaluate(&cfg, &measured),
            probes: measured.probes,
            write_rate,
            write_p99,
        }
    }

    /// A page opened right after start still has numbers: sample now when the last is old.
    fn sample_if_stale(&self) {
        let stale = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .back()
            .is_none_or(|s| s.at.elapsed() >= Duration::from_secs(1));
        if stale {
            self.sample();
        }
    }

    /// Traffic and probes over the last [`SLO_WINDOW`].
    fn measured(&self, cfg: &Config, samples: &[Sample]) -> Measured {
        let m = &self.metrics;
        let last_results = self.probes.snapshot();
        let mut measured = Measured {
            target_write_rate: crate::traffic::instance_rate(cfg.traffic.write_rate, cfg),
            ..Default::default()
        };
        let (Some(first), Some(last)) = (window_start(samples), samples.last()) else {
            return measured;
        };
        measured.seconds = (last.at - first.at).as_secs_f64();
        let mut w = OpSnapshot {
            buckets: last.buckets.minus(&first.buckets),
            ..Default::default()
        };
        for (k, v) in &last.outcomes {
            w.outcomes
                .insert(k, v - first.outcomes.get(k).copied().unwrap_or(0));
        }
        w.duration = interpolated(&w.buckets);
        measured.traffic = TrafficSnapshot {
            scylla_write: w,
            ..Default::default()
        };
        for (name, now) in &last.probes {
            let before = first.probes.get(name).cloned().unwrap_or_default();
            let buckets = now.buckets.minus(&before.buckets);
            let since = |a: &BTreeMap<&'static str, u64>, b: &BTreeMap<&'static str, u64>| {
                a.iter()
                    .map(|(k, v)| (*k, v - b.get(k).copied().unwrap_or(0).min(*v)))
                    .filter(|(_, v)| *v > 0)
                    .collect()
            };
            let last_result = last_results.get(name).cloned().unwrap_or_default();
            measured.probes.insert(
                name,
                ProbeSnapshot {
                    runs: since(&now.runs, &before.runs),
                    check_failures: since(&now.check_failures, &before.check_failures),
                    latency: interpolated(&buckets),
                    last_success: last_result.last_success,
                    last_problem: last_result.last_problem,
                },
            );
            measured.probe_buckets.insert(name, buckets);
        }
        measured.read_probe_gauges(m);
        measured
    }
}

/// Percentiles interpolated in buckets (the status page has no HDR histogram over a window).
fn interpolated(b: &BucketCounts) -> Percentiles {
    let q = |q: f64| b.quantile(q).unwrap_or(0.0);
    Percentiles {
        count: b.count,
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: q(1.0),
        ..Default::default()
    }
}

/// The oldest sample within [`SLO_WINDOW`] of the newest.
fn window_start(samples: &[Sample]) -> Option<&Sample> {
    let last = samples.last()?;
    samples.iter().find(|s| last.at - s.at <= SLO_WINDOW)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An inline SVG sparkline of `points`, with a dashed line at `threshold` if given.
fn sparkline(points: &[Point], threshold: Option<f64>, label: &str) -> String {
    let (w, h) = (600.0, 80.0);
    if points.len() < 2 {
        return format!("<p class=\"muted\">{label}: collecting data (a point every 10 s)…</p>");
    }
    let max = points
        .iter()
        .map(|p| p.v)
        .chain(threshold)
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let (t0, t1) = (points[0].t as f64, points[points.len() - 1].t as f64);
    let x = |t: i64| (t as f64 - t0) / (t1 - t0).max(1.0) * w;
    let y = |v: f64| h - v / max * h;
    let path: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.t), y(p.v)))
        .collect();
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{label}\">\
         <polyline fill=\"none\" stroke=\"#2b6cb0\" stroke-width=\"2\" points=\"{}\"/>",
        path.join(" ")
    );
    if let Some(t) = threshold {
        let _ = write!(
            svg,
            "<line x1=\"0\" x2=\"{w}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c53030\" stroke-dasharray=\"6 4\"/>",
            y(t),
            y(t)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn value(row: &SloRow, v: f64) -> String {
    if row.unit == "seconds" {
        human_seconds(v)
    } else {
        format!("{:.3} %", v * 100.0)
    }
}

/// The HTML page for `s`.
pub fn render_html(s: &Status) -> String {
    let mut o = String::new();
    let all_pass = s.slos.iter().all(|r| r.pass);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"10\"><title>chatload status</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#1a202c}} table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{padding:.3em .8em;border-bottom:1px solid #e2e8f0;text-align:left}} .pass{{color:#276749;font-weight:600}}\
         .fail{{color:#c53030;font-weight:600}} .muted{{color:#718096}} h1 span{{font-size:.6em}}</style></head><body>\
         <h1>chatload <span class=\"muted\">{} · instance {} of {} · up {:.0} s</span></h1>\
         <p class=\"{}\">{}</p>",
        s.version,
        s.instance.0,
        s.instance.1,
        s.uptime_seconds,
        if all_pass { "pass" } else { "fail" },
        if all_pass {
            "All SLOs met"
        } else {
            "SLO breached"
        }
    );
    let _ = write!(
        o,
        "<h2>Backends</h2><table><tr><th>backend</th><th>state</th><th>server</th></tr>"
    );
    for (b, up) in &s.backends_up {
        let _ = write!(
            o,
            "<tr><td>{b}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            if *up { "pass" } else { "fail" },
            if *up { "up" } else { "down" },
            escape(s.backends.get(b).map(String::as_str).unwrap_or("unknown"))
        );
    }
    o.push_str("</table>");
    let _ = write!(
        o,
        "<h2>SLOs</h2><p class=\"muted\">Traffic and probes over the last {:.0} s (the alerts' 5-minute window).</p>\
         <table><tr><th>SLO</th><th>target</th><th>measured</th><th>result</th></tr>",
        s.window_seconds
    );
    for r in &s.slos {
        let op = if r.bound == "max" { "≤" } else { "≥" };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{op} {}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"muted\">{}</td></tr>",
            r.slo,
            value(r, r.target),
            r.measured.map_or_else(|| "n/a".into(), |m| value(r, m)),
            if r.pass { "pass" } else { "fail" },
            if r.pass { "PASS" } else { "FAIL" },
            escape(r.note.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</table>");
    let _ = write!(
        o,
        "<h2>Write rate (target {}/s)</h2>{}<h2>Write p99 (SLO line dashed)</h2>{}",
        s.target_rates.0,
        sparkline(&s.write_rate, Some(s.target_rates.0), "write rate"),
        sparkline(
            &s.write_p99,
            s.slos
                .iter()
                .find(|r| r.slo == "write_p99")
                .map(|r| r.target),
            "write p99"
        )
    );
    let _ = write!(
        o,
        "<h2>Probes</h2><p class=\"muted\">Runs over the last 5 minutes.</p><table><tr><th>probe</th><th>last run</th><th>runs ok / total</th><th>p99</th><th>last problem</th></tr>"
    );
    for (name, p) in &s.probes {
        let total: u64 = p.runs.values().sum();
        let (class, state) = match p.last_success {
            Some(true) => ("pass", "passed"),
            Some(false) => ("fail", "failed"),
            None => ("muted", "not run yet"),
        };
        let _ = write!(
            o,
            "<tr><td>{name}</td><td class=\"{class}\">{state}</td><td>{} / {total}</td><td>{}</td><td>{}</td></tr>",
            p.runs.get("ok").copied().unwrap_or(0),
            human_seconds(p.latency.p99),
            escape(p.last_problem.as_deref().unwrap_or(""))
        );
    }
    o.push_str(
        "</table><p class=\"muted\">Also: <a href=\"/metrics\">/metrics</a> · \
         <a href=\"/api/v1/status\">/api/v1/status</a> · <a href=\"/healthz\">/healthz</a> · \
         <a href=\"/readyz\">/readyz</a></p></body></html>\n",
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_draws_points_and_threshold() {
        let pts: Vec<Point> = (0..5)
            .map(|i| Point {
                t: i * 10,
                v: i as f64,
            })
            .collect();
        let svg = sparkline(&pts, Some(2.0), "x");
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("stroke-dasharray")
        );
        assert!(sparkline(&pts[..1], None, "x").contains("collecting data"));
    }

    #[test]
    fn html_escapes_problems_and_marks_results() {
        let mut probes = BTreeMap::new();
        probes.insert(
            "redis_cache",
            ProbeSnapshot {
                last_success: Some(false),
                last_problem: Some("<script>".into()),
                ..Default::default()
            },
        );
        let s = Status {
            version: "1",
            uptime_seconds: 5.0,
            instance: (0, 1),
            backends_up: [("scylla".to_string(), true)].into(),
            backends: BTreeMap::new(),
            target_rates: (1000.0, 200.0),
            window_seconds: 300.0,
            slos: vec![],
            probes,
            write_rate: vec![],
            write_p99: vec![],
        };
        let html = render_html(&s);
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("http-equiv=\"refresh\""));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }
}
