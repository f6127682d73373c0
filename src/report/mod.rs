//! Judging and reporting: a measured window ([`Measured`]) judged against the SLO model
//! ([`crate::measure::slo`]) gives one [`SloRow`] per SLO; `chatload check` wraps them into a
//! [`Report`] (rendered by [`text`] or as JSON) and the status page ([`status_page`]) renders the
//! same rows. Nothing here runs anything: it takes snapshots and returns values.
//!
//! Percentiles are exact (HDR), not interpolated from Prometheus buckets; verdicts count the
//! observations above each threshold at a bucket bound.

pub mod status_page;
pub mod text;

use crate::config::Config;
use crate::measure::e2e::{E2eSnapshot, E2eView};
use crate::measure::record::{OpSnapshot, Outcome};
use crate::measure::slo::{self, Indicator, Judgement, Observed, Slo};
use crate::measure::snapshot::ProbeSnapshot;
use crate::measure::snapshot::TrafficSnapshot;
use crate::measure::stats::{HDR_SIGNIFICANT_DIGITS, Percentiles};
use serde::Serialize;
use std::collections::BTreeMap;

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
    fn from_judgement(slo: &Slo, j: Judgement) -> Self {
        Self {
            slo: slo.name.to_string(),
            target: slo.threshold,
            measured: j.measured,
            unit: slo.unit(),
            bound: slo.bound(),
            pass: j.pass,
            note: j.note,
        }
    }
}

/// Everything a check (or the status page) measured over its window.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// The traffic.
    pub traffic: TrafficSnapshot,
    /// Every probe (enabled or not) over the window: its `buckets` are the window's.
    pub probes: BTreeMap<&'static str, ProbeSnapshot>,
    /// Seconds the window lasted.
    pub seconds: f64,
    /// Target write rate of this instance.
    pub target_write_rate: f64,
    /// The end-to-end canary over the window (`None`: it does not run).
    pub e2e: Option<E2eView>,
    /// Target post rate of this instance's canary.
    pub target_post_rate: f64,
}

impl Measured {
    /// What this window observed for `slo`.
    pub fn observed(&self, slo: &Slo) -> Observed {
        if slo.e2e {
            return self
                .e2e
                .as_ref()
                .map_or(Observed::Nothing, |e| e2e_observed(e, slo, self));
        }
        let probe = slo.probe.and_then(|p| self.probes.get(p));
        match slo.indicator {
            Indicator::Latency { quantile, .. } => {
                let (buckets, hdr) = match slo.probe {
                    None => (
                        self.traffic.scylla_write.buckets.clone(),
                        self.traffic.scylla_write.duration,
                    ),
                    Some(_) => {
                        probe.map_or_else(Default::default, |p| (p.buckets.clone(), p.latency))
                    }
                };
                let value = (hdr.count > 0).then_some(hdr.at(quantile));
                Observed::Latency { buckets, value }
            }
            Indicator::Success { .. } => {
                let w = &self.traffic.scylla_write;
                Observed::Ratio {
                    good: w.get(Outcome::Ok),
                    total: w.total(),
                }
            }
            Indicator::Throughput { .. } => Observed::Throughput {
                ok: self.traffic.scylla_write.get(Outcome::Ok),
                seconds: self.seconds,
                target_rate: self.target_write_rate,
            },
            Indicator::Gauge { metric, .. } => Observed::Gauge(self.gauge(slo, metric)),
            Indicator::ProbeCheck { check, metric } => Observed::Check {
                value: self.gauge(slo, metric),
                failures: probe
                    .and_then(|p| p.check_failures.get(check).copied())
                    .unwrap_or(0),
            },
            _ => Observed::Nothing,
        }
    }
}

/// What the canary's window observed for one of its SLOs.
fn e2e_observed(e: &E2eView, slo: &Slo, m: &Measured) -> Observed {
    use crate::measure::slo::{DELIVERIES, DELIVERY, VISIBLE, WS_CONNECT, WS_CONNECTS};
    let c = &e.canary;
    match slo.indicator {
        Indicator::Latency {
            metric, quantile, ..
        } => {
            let (buckets, hdr) = match metric {
                DELIVERY => (c.delivery_buckets.clone(), c.delivery),
                WS_CONNECT => (c.ws_connect_buckets.clone(), c.ws_connect),
                VISIBLE => (c.visible_buckets.clone(), c.visible),
                _ => (e.post.buckets.plus(&e.read.buckets), c.api),
            };
            let value = (hdr.count > 0).then_some(hdr.at(quantile));
            Observed::Latency { buckets, value }
        }
        Indicator::Success { metric, .. } => {
            let (good, total) = match metric {
                DELIVERIES => (E2eSnapshot::count(&c.deliveries, "ok"), c.expected()),
                WS_CONNECTS => (
                    E2eSnapshot::count(&c.ws_connects, "ok"),
                    c.ws_connects.values().sum(),
                ),
                _ => (
                    e.post.get(Outcome::Ok) + e.read.get(Outcome::Ok),
                    e.post.total() + e.read.total(),
                ),
            };
            Observed::Ratio { good, total }
        }
        Indicator::Throughput { .. } => Observed::Throughput {
            ok: e.post.get(Outcome::Ok),
            seconds: m.seconds,
            target_rate: m.target_post_rate,
        },
        // A kind the snapshot does not have is no data, never a count of 0.
        Indicator::Count { kind, .. } => c
            .anomalies
            .get(kind)
            .map_or(Observed::Nothing, |n| Observed::Count(*n)),
        Indicator::Share { .. } => Observed::Share {
            part: c.ready_seconds,
            whole: c.target_seconds,
        },
        Indicator::GaugeMax { .. } => Observed::Gauge(c.queue_depth_max),
        _ => Observed::Nothing,
    }
}

impl Measured {
    /// The gauge `metric` of `slo`'s probe as the last run in the window that measured it left it
    /// (`None`: no run in the window measured it; a gauge nobody set is no data, not a value).
    fn gauge(&self, slo: &Slo, metric: &str) -> Option<f64> {
        let p = slo.probe.and_then(|p| self.probes.get(p));
        measured_by_a_run(p)
            .then(|| p.and_then(|p| p.gauges.get(metric).copied()))
            .flatten()
    }
}

/// Whether a probe's runs in the window measured its gauge (a run that passed or failed its checks
/// did; one that timed out or could not run did not).
fn measured_by_a_run(p: Option<&ProbeSnapshot>) -> bool {
    p.is_some_and(|p| {
        ["ok", "failed"]
            .iter()
            .any(|o| p.runs.get(o).copied().unwrap_or(0) > 0)
    })
}

/// One (backend, op) over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpReport {
    /// `scylla` or `redis`.
    pub backend: &'static str,
    /// `write` or `read`.
    pub op: &'static str,
    /// Operations the timetable made due in the window; each is counted under one outcome.
    pub due: u64,
    /// Operations made due before the window and counted in it (in flight when it began): after
    /// the drain at the end, `total = due + in_flight_at_start`, nothing vanished.
    pub in_flight_at_start: u64,
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
    /// Traffic threads (shards) that ran.
    pub traffic_threads: usize,
    /// What the database and Redis said they are.
    pub backends: BTreeMap<String, String>,
    /// One row per SLO.
    pub slos: Vec<SloRow>,
    /// What each probe did in the window.
    pub probes: BTreeMap<&'static str, ProbeSnapshot>,
    /// Per (backend, op) totals.
    pub operations: Vec<OpReport>,
    /// How late requests were sent, taken at the send (its target: p99 ≤ 200 µs on a machine
    /// that is not saturated).
    pub schedule_lag: Percentiles,
    /// How precise the percentiles are.
    pub precision: String,
    /// Operations in flight when the window began (made due before it, counted in it).
    pub in_flight_at_start: u64,
    /// The end-to-end canary, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e: Option<E2eReport>,
    /// Every SLO passed.
    pub pass: bool,
}

/// What the end-to-end canary measured in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct E2eReport {
    /// Posts per second this instance started.
    pub target_post_rate: f64,
    /// Reads per second.
    pub target_read_rate: f64,
    /// Subscribers held (target).
    pub subscribers: usize,
    /// Counts, percentiles and the queue over the window (posts still pending at its end were
    /// waited for, so every expected delivery is counted).
    pub window: E2eSnapshot,
}

/// Judge the measured window against the SLO model of `cfg` (see [`crate::measure::slo`]): one row per
/// SLO of the traffic and of each enabled probe, then one per enabled probe (every run must pass).
/// Nothing measured fails.
pub fn evaluate(cfg: &Config, m: &Measured) -> Vec<SloRow> {
    let mut rows: Vec<SloRow> = slo::slos(cfg)
        .iter()
        .map(|s| SloRow::from_judgement(s, s.judge(&m.observed(s))))
        .collect();
    for (name, _) in cfg.probes.iter().filter(|(_, p)| p.enabled) {
        let p = m.probes.get(name).cloned().unwrap_or_default();
        let total = p.runs.values().sum::<u64>();
        let ok = p.runs.get("ok").copied().unwrap_or(0);
        let mut row = SloRow {
            slo: format!("probe:{name}"),
            target: 1.0,
            measured: (total > 0).then(|| ok as f64 / total as f64),
            unit: "ratio",
            bound: "min",
            pass: total > 0 && ok == total,
            note: (total == 0).then(|| "no data: no run in the window".to_string()),
        };
        if let Some(problem) = p.last_problem.filter(|_| !row.pass && total > 0) {
            row.note = Some(problem);
        }
        rows.push(row);
    }
    rows
}

/// One (backend, op) over the measured window, against the window's start (`at_start`).
pub fn op_report(
    backend: &'static str,
    op: &'static str,
    s: &OpSnapshot,
    at_start: &OpSnapshot,
    seconds: f64,
) -> OpReport {
    OpReport {
        backend,
        op,
        due: s.due,
        in_flight_at_start: at_start.due.saturating_sub(at_start.total()),
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

/// What the report says of its percentiles.
pub fn precision() -> String {
    format!(
        "latency percentiles from HDR histograms with {HDR_SIGNIFICANT_DIGITS} significant digits \
         (each value within 0.1 % of the true one); SLO verdicts count the observations above each \
         threshold exactly, at a histogram bucket bound"
    )
}

#[cfg(test)]
mod tests;
