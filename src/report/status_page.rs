//! The status page (`/`) and its JSON (`/api/v1/status`): for a person without Grafana.
//!
//! [`Status`] is what the sampler ([`crate::daemon::status`]) measured: SLO rows judged by the same
//! judge as `chatload check`, each probe over the last 5 minutes, and 15 minutes of write rate and
//! p99. [`render_html`] draws it with inline SVG sparklines; the page has no external assets and
//! refreshes itself every 10 s.

use super::SloRow;
use crate::measure::snapshot::ProbeSnapshot;
use crate::measure::stats::human_seconds;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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
    match row.unit {
        "seconds" => human_seconds(v),
        "count" => format!("{v:.0}"),
        _ => format!("{:.3} %", v * 100.0),
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
