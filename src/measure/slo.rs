//! The SLO model: every SLO defined once, and judged the same way everywhere.
//!
//! [`slos`] lists each SLO of `[slo]` with its indicator (which histogram or counter, which
//! percentile or ratio), its threshold and the probe that measures it. `chatload check`, the
//! generated recording and alert rules, the status page and `chatload_slo_objective{slo}` (which the
//! dashboards read) all come from that list, so no threshold is typed twice.
//!
//! A latency SLO "the q-quantile is at most T" is judged as "the share of observations above T is at
//! most 1 − q" (for q = 1, a maximum: none above T). Counting observations above T is exact wherever
//! T is a bucket bound, and [`latency_buckets`] makes every configured threshold one: the histogram
//! buckets Prometheus scrapes, the window `chatload check` measured and the samples of the status
//! page hold the same counts, so the three give one answer. Percentile *values* are shown beside the
//! verdict (HDR histograms in `check`, bucket interpolation in Prometheus and on the status page);
//! they never decide it. Nothing is judged without data: no observation is "no data", which fails.

use crate::config::{Config, SloIndicator};
use crate::measure::metrics::LATENCY_BUCKETS;
use crate::measure::stats::{BucketCounts, human_seconds, same_bound};
use std::time::Duration;

/// The window that the threshold alerts and the status page judge over.
pub const WINDOW: Duration = Duration::from_secs(300);
/// [`WINDOW`] as PromQL writes it.
pub const WINDOW_PROMQL: &str = "5m";

/// The selector of the traffic's database writes.
pub const WRITES: &str = r#"backend="scylla",op="write""#;

/// What an SLO measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Indicator {
    /// The `quantile` of a latency histogram (1.0: the maximum) is at most the threshold.
    Latency {
        /// The histogram's name (without `_bucket`).
        metric: &'static str,
        /// Its label selector (may be empty).
        selector: &'static str,
        /// The labels PromQL keeps when it aggregates (`job`, plus `probe` for a probe).
        by: &'static str,
        /// 0.99 for a p99, 1.0 for a maximum.
        quantile: f64,
    },
    /// Events with `outcome="ok"` over all events of a counter is at least the threshold.
    Success {
        /// The counter (`chatload_operations_total`, `chatload_e2e_deliveries_total`, …).
        metric: &'static str,
        /// Its label selector (may be empty).
        selector: &'static str,
    },
    /// Successful operations per second over the target rate of `op` is at least the threshold.
    Throughput {
        /// The label selector of `chatload_operations_total`.
        selector: &'static str,
        /// The `op` label of `chatload_target_rate`.
        op: &'static str,
    },
    /// The absolute value of a gauge that a probe sets is at most the threshold.
    Gauge {
        /// The gauge.
        metric: &'static str,
        /// Its label selector.
        selector: &'static str,
    },
    /// The highest value a gauge took in the window is at most the threshold (no successful
    /// reading in the window: no data).
    GaugeMax {
        /// The gauge.
        metric: &'static str,
    },
    /// Events counted in the window are at most the threshold.
    Count {
        /// The counter.
        metric: &'static str,
        /// Its `kind` label value.
        kind: &'static str,
    },
    /// One counter's increase over another's (a time-weighted share) is at least the threshold.
    Share {
        /// The part.
        good: &'static str,
        /// The whole.
        total: &'static str,
    },
    /// A probe's own check (which compares a gauge with the threshold) never failed; the gauge is
    /// shown as the measured value.
    ProbeCheck {
        /// The `check` label.
        check: &'static str,
        /// The gauge shown.
        metric: &'static str,
    },
}

/// `{a,b}` without empty parts.
pub fn selector(parts: &[&str]) -> String {
    let parts: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    format!("{{{}}}", parts.join(","))
}

/// One SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Its `[slo]` key, and the `slo` label of `chatload_slo_objective`.
    pub name: &'static str,
    /// What it measures.
    pub indicator: Indicator,
    /// The configured threshold: seconds for latencies and TTL, a ratio otherwise.
    pub threshold: f64,
    /// The probe that measures it (`None`: the traffic or the canary). A disabled probe's SLOs
    /// are not judged.
    pub probe: Option<&'static str>,
    /// Whether the end-to-end canary measures it (judged only with `[e2e]` enabled).
    pub e2e: bool,
}

impl Slo {
    /// `seconds` or `ratio`.
    pub fn unit(&self) -> &'static str {
        match self.indicator {
            Indicator::Latency { .. } => "seconds",
            Indicator::Gauge { .. } if self.probe.is_some() => "seconds",
            Indicator::GaugeMax { .. } | Indicator::Count { .. } => "count",
            _ => "ratio",
        }
    }

    /// `max` (measured must be ≤ threshold) or `min` (≥).
    pub fn bound(&self) -> &'static str {
        match self.indicator {
            Indicator::Success { .. } | Indicator::Throughput { .. } | Indicator::Share { .. } => {
                "min"
            }
            _ => "max",
        }
    }

    /// The share of bad events the SLO allows: 1 − quantile for latencies, 1 − target for success.
    pub fn budget(&self) -> Option<f64> {
        match self.indicator {
            Indicator::Latency { quantile, .. } => Some(round9(1.0 - quantile)),
            Indicator::Success { .. } => Some(round9(1.0 - self.threshold)),
            _ => None,
        }
    }

    /// PromQL for the share of bad events over `window`, per `job`: latencies above the threshold,
    /// or operations that did not succeed. `None` for the other indicators.
    pub fn bad_ratio_promql(&self, window: &str) -> Option<String> {
        match self.indicator {
            Indicator::Latency {
                metric,
                selector,
                by,
                ..
            } => Some(format!(
                "1 - sum by ({by}) (rate({metric}_bucket{bucket}[{window}])) / sum by ({by}) (rate({metric}_count{all}[{window}]))",
                bucket = self::selector(&[selector, &format!("le=\"{}\"", self.threshold)]),
                all = self::selector(&[selector]),
            )),
            Indicator::Success { metric, selector } => Some(format!(
                "sum by (job) (rate({metric}{bad}[{window}])) / sum by (job) (rate({metric}{all}[{window}]))",
                bad = self::selector(&[selector, "outcome!=\"ok\""]),
                all = self::selector(&[selector]),
            )),
            _ => None,
        }
    }

    /// Judge what was observed in a window.
    pub fn judge(&self, observed: &Observed) -> Judgement {
        match (self.indicator, observed) {
            (Indicator::Latency { quantile, .. }, Observed::Latency { buckets, value }) => {
                let Some(above) = buckets.above(self.threshold) else {
                    return Judgement::no_data(format!(
                        "{} s is not a bucket bound of this process; restart to judge it",
                        self.threshold
                    ));
                };
                if buckets.count == 0 {
                    return Judgement::no_data("no observation in the window".into());
                }
                let allowed = ((1.0 - quantile) * buckets.count as f64 + 1e-9).floor() as u64;
                let measured = value.or_else(|| buckets.quantile(quantile));
                Judgement {
                    measured,
                    pass: above <= allowed,
                    note: Some(format!(
                        "{above} of {} above {} (at most {allowed} allowed)",
                        buckets.count,
                        human_seconds(self.threshold)
                    )),
                }
            }
            (Indicator::Success { .. }, Observed::Ratio { good, total }) => {
                ratio_at_least(self.threshold, *good, *total)
            }
            (
                Indicator::Throughput { .. },
                Observed::Throughput {
                    ok,
                    seconds,
                    target_rate,
                },
            ) => {
                if *seconds <= 0.0 || *target_rate <= 0.0 {
                    return Judgement::no_data("no target rate or no time measured".into());
                }
                let r = *ok as f64 / seconds / target_rate;
                Judgement {
                    measured: Some(r),
                    pass: r >= self.threshold,
                    note: None,
                }
            }
            (Indicator::Gauge { .. } | Indicator::GaugeMax { .. }, Observed::Gauge(Some(v))) => {
                Judgement {
                    measured: Some(v.abs()),
                    pass: v.abs() <= self.threshold,
                    note: None,
                }
            }
            (Indicator::Count { .. }, Observed::Count(n)) => Judgement {
                measured: Some(*n as f64),
                pass: *n as f64 <= self.threshold,
                note: None,
            },
            (Indicator::Share { .. }, Observed::Share { part, whole }) => {
                if *whole <= 0.0 {
                    return Judgement::no_data("nothing targeted in the window".into());
                }
                let r = part / whole;
                Judgement {
                    measured: Some(r),
                    pass: r >= self.threshold,
                    note: None,
                }
            }
            (
                Indicator::ProbeCheck { check, .. },
                Observed::Check {
                    value: Some(v),
                    failures,
                },
            ) => Judgement {
                measured: Some(*v),
                pass: *failures == 0,
                note: if *failures > 0 {
                    Some(format!("{check} failed {failures} times"))
                } else if *v > self.threshold {
                    Some("not judged by the probe: too few rows per stream, or not significantly different from uniform random choice".into())
                } else {
                    None
                },
            },
            _ => Judgement::no_data("no measurement in the window".into()),
        }
    }
}

/// What was observed for one SLO over a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// A latency histogram's bucket counts, and the percentile's value if measured more precisely
    /// than bucket interpolation (HDR).
    Latency {
        /// Bucket counts over the window.
        buckets: BucketCounts,
        /// The percentile's value, for display.
        value: Option<f64>,
    },
    /// Good and total events.
    Ratio {
        /// Good events.
        good: u64,
        /// All events counted.
        total: u64,
    },
    /// Successful writes over a time, against a target rate.
    Throughput {
        /// Successful writes.
        ok: u64,
        /// Seconds.
        seconds: f64,
        /// Writes per second intended.
        target_rate: f64,
    },
    /// The gauge a probe set in the window, or the highest value it took (`None`: nothing
    /// measured it).
    Gauge(Option<f64>),
    /// Events counted in the window.
    Count(u64),
    /// A time-weighted part of a whole.
    Share {
        /// The part.
        part: f64,
        /// The whole.
        whole: f64,
    },
    /// A probe check: the gauge it compares and how often it failed in the window.
    Check {
        /// The gauge (`None`: no run measured it).
        value: Option<f64>,
        /// Failures of the check in the window.
        failures: u64,
    },
    /// Nothing.
    Nothing,
}

/// A verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// What was measured (`None`: no data).
    pub measured: Option<f64>,
    /// Whether the SLO held. Never true without data.
    pub pass: bool,
    /// Why, when the numbers alone do not say.
    pub note: Option<String>,
}

impl Judgement {
    fn no_data(why: String) -> Self {
        Self {
            measured: None,
            pass: false,
            note: Some(format!("no data: {why}")),
        }
    }
}

fn ratio_at_least(target: f64, good: u64, total: u64) -> Judgement {
    if total == 0 {
        return Judgement::no_data("no operation in the window".into());
    }
    let r = good as f64 / total as f64;
    Judgement {
        measured: Some(r),
        pass: r >= target,
        note: None,
    }
}

fn round9(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// Every SLO of `cfg`, whether its probe is enabled or not: the traffic's three, then each probe's
/// as its declaration ([`crate::config::ProbeSpec`]) has them.
pub fn all(cfg: &Config) -> Vec<Slo> {
    let s = &cfg.slo;
    let mut slos = vec![
        Slo {
            name: "write_p99",
            indicator: Indicator::Latency {
                metric: "chatload_operation_duration_seconds",
                selector: WRITES,
                by: "job",
                quantile: 0.99,
            },
            threshold: s.write_p99.get().as_secs_f64(),
            probe: None,
            e2e: false,
        },
        Slo {
            name: "write_success",
            indicator: Indicator::Success {
                metric: OPERATIONS,
                selector: WRITES,
            },
            threshold: s.write_success,
            probe: None,
            e2e: false,
        },
        Slo {
            name: "throughput_ratio",
            indicator: Indicator::Throughput {
                selector: WRITES,
                op: "write",
            },
            threshold: s.throughput_ratio,
            probe: None,
            e2e: false,
        },
    ];
    let catalog = cfg.probes.catalog();
    slos.extend(catalog.slos().map(|(probe, spec)| Slo {
        name: spec.key,
        indicator: match spec.indicator {
            SloIndicator::Latency { quantile, selector } => Indicator::Latency {
                metric: "chatload_probe_duration_seconds",
                selector,
                by: "job, probe",
                quantile,
            },
            SloIndicator::Gauge { metric, selector } => Indicator::Gauge { metric, selector },
            SloIndicator::Check { check, metric } => Indicator::ProbeCheck { check, metric },
        },
        threshold: cfg.slo.threshold(spec).get(),
        probe: Some(probe.name),
        e2e: false,
    }));
    slos.extend(e2e_slos(cfg));
    slos
}

/// The canary's delivery latency.
pub const DELIVERY: &str = "chatload_e2e_delivery_seconds";
/// The canary's WebSocket connect latency.
pub const WS_CONNECT: &str = "chatload_e2e_ws_connect_seconds";
/// The canary's database visibility latency.
pub const VISIBLE: &str = "chatload_e2e_visible_seconds";
/// The canary's expected deliveries by outcome.
pub const DELIVERIES: &str = "chatload_e2e_deliveries_total";
/// The canary's WebSocket connects by outcome.
pub const WS_CONNECTS: &str = "chatload_e2e_ws_connects_total";
/// Operations of the traffic and the canary's API requests.
pub const OPERATIONS: &str = "chatload_operations_total";
/// The selector of the canary's API requests.
pub const API: &str = r#"backend="chat_api""#;
/// The selector of the canary's posts.
pub const API_POSTS: &str = r#"backend="chat_api",op="api_post""#;

/// The end-to-end canary's SLOs.
fn e2e_slos(cfg: &Config) -> Vec<Slo> {
    let s = &cfg.slo;
    let secs = |d: crate::config::HumanDuration| d.get().as_secs_f64();
    let latency = |metric, selector, quantile| Indicator::Latency {
        metric,
        selector,
        by: "job",
        quantile,
    };
    let op_latency = |q| latency("chatload_operation_duration_seconds", API, q);
    [
        (
            "e2e_delivery_p95",
            latency(DELIVERY, "", 0.95),
            secs(s.e2e_delivery_p95),
        ),
        (
            "e2e_delivery_p99",
            latency(DELIVERY, "", 0.99),
            secs(s.e2e_delivery_p99),
        ),
        (
            "e2e_delivery_max",
            latency(DELIVERY, "", 1.0),
            secs(s.e2e_delivery_max),
        ),
        (
            "e2e_delivery_success",
            Indicator::Success {
                metric: DELIVERIES,
                selector: "",
            },
            s.e2e_delivery_success,
        ),
        (
            "e2e_duplicates_max",
            Indicator::Count {
                metric: "chatload_e2e_anomalies_total",
                kind: "duplicate",
            },
            s.e2e_duplicates_max,
        ),
        (
            "e2e_out_of_order_max",
            Indicator::Count {
                metric: "chatload_e2e_anomalies_total",
                kind: "out_of_order",
            },
            s.e2e_out_of_order_max,
        ),
        (
            "e2e_ws_connect_p95",
            latency(WS_CONNECT, "", 0.95),
            secs(s.e2e_ws_connect_p95),
        ),
        (
            "e2e_ws_connect_p99",
            latency(WS_CONNECT, "", 0.99),
            secs(s.e2e_ws_connect_p99),
        ),
        (
            "e2e_ws_connect_success",
            Indicator::Success {
                metric: WS_CONNECTS,
                selector: "",
            },
            s.e2e_ws_connect_success,
        ),
        (
            "e2e_subscribers_ready",
            Indicator::Share {
                good: "chatload_e2e_subscriber_ready_seconds_total",
                total: "chatload_e2e_subscriber_target_seconds_total",
            },
            s.e2e_subscribers_ready,
        ),
        ("e2e_api_p95", op_latency(0.95), secs(s.e2e_api_p95)),
        ("e2e_api_p99", op_latency(0.99), secs(s.e2e_api_p99)),
        (
            "e2e_api_success",
            Indicator::Success {
                metric: OPERATIONS,
                selector: API,
            },
            s.e2e_api_success,
        ),
        (
            "e2e_api_throughput_ratio",
            Indicator::Throughput {
                selector: API_POSTS,
                op: "api_post",
            },
            s.e2e_api_throughput_ratio,
        ),
        (
            "e2e_visible_p95",
            latency(VISIBLE, "", 0.95),
            secs(s.e2e_visible_p95),
        ),
        (
            "e2e_queue_depth_max",
            Indicator::GaugeMax {
                metric: "chatload_e2e_queue_depth",
            },
            s.e2e_queue_depth_max,
        ),
    ]
    .into_iter()
    .map(|(name, indicator, threshold)| Slo {
        name,
        indicator,
        threshold,
        probe: None,
        e2e: true,
    })
    .collect()
}

/// The SLOs that are judged: those of the traffic and of enabled probes.
pub fn slos(cfg: &Config) -> Vec<Slo> {
    let enabled: Vec<&str> = cfg
        .probes
        .iter()
        .filter(|(_, p)| p.enabled)
        .map(|(n, _)| n)
        .collect();
    let e = &cfg.e2e;
    all(cfg)
        .into_iter()
        .filter(|s| s.probe.is_none_or(|p| enabled.contains(&p)))
        .filter(|s| {
            !s.e2e
                || (e.enabled
                    && (s.name != "e2e_visible_p95" || e.visibility.enabled)
                    && (s.name != "e2e_queue_depth_max" || e.queue.enabled))
        })
        .collect()
}

/// Whether `slo` judges one of the histograms with [`latency_buckets`] (the operations' and the
/// probes'; the canary's own have theirs, [`crate::measure::e2e::E2E_BUCKETS`]).
fn on_latency_buckets(slo: &Slo) -> bool {
    matches!(slo.indicator, Indicator::Latency { metric, .. }
        if metric == "chatload_operation_duration_seconds" || metric == "chatload_probe_duration_seconds")
}

/// Whether `slo` judges one of the canary's own histograms (with [`e2e_latency_buckets`]).
fn on_e2e_buckets(slo: &Slo) -> bool {
    matches!(slo.indicator, Indicator::Latency { metric, .. }
        if metric == DELIVERY || metric == WS_CONNECT || metric == VISIBLE)
}

/// `base` plus the threshold of every SLO of `cfg` that `judged_on` its histograms, sorted.
fn with_thresholds(base: &[f64], cfg: &Config, judged_on: fn(&Slo) -> bool) -> Vec<f64> {
    let mut b = base.to_vec();
    for slo in all(cfg) {
        if judged_on(&slo) && !has_bound(&b, slo.threshold) {
            b.push(slo.threshold);
        }
    }
    b.sort_by(f64::total_cmp);
    b
}

/// The latency bucket bounds for `cfg`: [`LATENCY_BUCKETS`] plus every latency threshold judged
/// on them.
pub fn latency_buckets(cfg: &Config) -> Vec<f64> {
    with_thresholds(LATENCY_BUCKETS, cfg, on_latency_buckets)
}

/// The bucket bounds of the canary's latency histograms for `cfg`:
/// [`crate::measure::e2e::E2E_BUCKETS`] plus every threshold judged on them.
pub fn e2e_latency_buckets(cfg: &Config) -> Vec<f64> {
    with_thresholds(crate::measure::e2e::E2E_BUCKETS, cfg, on_e2e_buckets)
}

/// Latency thresholds of `cfg` that are not bounds of `buckets` (a reload cannot add bounds to the
/// histograms of a running process), as `slo.<key>` paths.
pub fn thresholds_outside(cfg: &Config, buckets: &[f64]) -> Vec<String> {
    all(cfg)
        .into_iter()
        .filter(on_latency_buckets)
        .filter(|s| !has_bound(buckets, s.threshold))
        .map(|s| format!("slo.{} = {}", s.name, human_seconds(s.threshold)))
        .collect()
}

fn has_bound(bounds: &[f64], v: f64) -> bool {
    bounds.iter().any(|b| same_bound(*b, v))
}

/// Export every SLO's threshold as `chatload_slo_objective{slo}`.
pub fn export_objectives(cfg: &Config, metrics: &crate::measure::metrics::Metrics) {
    for slo in all(cfg) {
        metrics
            .slo_objective
            .with_label_values(&[slo.name])
            .set(slo.threshold);
    }
}

#[cfg(test)]
mod tests;
