//! The status page's sampler: what `/` and `/api/v1/status` show.
//!
//! A sampler reads the counters and latency buckets that `/metrics` exports (traffic writes, every
//! probe's runs, check failures and duration buckets) every 10 s and keeps 15 minutes of them. From
//! those it builds the write rate and p99 charts, and judges every SLO of the SLO
//! model ([`crate::measure::slo`]) over the last 5 minutes, the window of the threshold alerts, with the same
//! judge as `chatload check`: probes included, so a probe that failed an hour ago is not failing now.
//! [`crate::report::status_page`] renders what it builds.

use crate::config::{Config, LiveConfig};
use crate::e2e::Canary;
use crate::measure::e2e::E2eView;
use crate::measure::metrics::Metrics;
use crate::measure::record::OpSnapshot;
use crate::measure::slo::WINDOW;
use crate::measure::snapshot::ProbeSnapshot;
use crate::measure::snapshot::TrafficSnapshot;
use crate::measure::stats::{BucketCounts, Percentiles, counts_since};
use crate::probes::ProbeScheduler;
use crate::report::status_page::{Point, Status};
use crate::report::{Measured, evaluate};
use crate::traffic::Traffic;
use std::collections::{BTreeMap, VecDeque};
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
    /// The canary's counters and buckets, when it runs.
    e2e: Option<E2eView>,
}

/// Keeps the samples and builds [`Status`].
pub struct StatusBoard {
    cfg: LiveConfig,
    metrics: Arc<Metrics>,
    traffic: Arc<Traffic>,
    probes: Arc<ProbeScheduler>,
    e2e: Option<Arc<Canary>>,
    started: Instant,
    samples: Mutex<VecDeque<Sample>>,
}

impl StatusBoard {
    /// A board over `metrics` and `probes`.
    pub fn new(
        cfg: LiveConfig,
        metrics: Arc<Metrics>,
        traffic: Arc<Traffic>,
        probes: Arc<ProbeScheduler>,
        e2e: Option<Arc<Canary>>,
    ) -> Self {
        Self {
            cfg,
            metrics,
            traffic,
            probes,
            e2e,
            started: Instant::now(),
            samples: Mutex::new(VecDeque::with_capacity(KEEP + 1)),
        }
    }

    fn cfg(&self) -> Arc<Config> {
        self.cfg.get()
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
        let writes = self.traffic.snapshot().scylla_write;
        let probes = self
            .probes
            .snapshot()
            .into_iter()
            .map(|(name, p)| {
                let sample = ProbeSample {
                    runs: p.runs,
                    check_failures: p.check_failures,
                    buckets: p.buckets,
                };
                (name, sample)
            })
            .collect();
        let (outcomes, buckets) = (writes.outcomes, writes.buckets);
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back(Sample {
            at: Instant::now(),
            unix: crate::chat::now_ms() / 1000,
            outcomes,
            buckets,
            probes,
            e2e: self.e2e.as_ref().map(|c| c.snapshot()),
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
                crate::config::instance_rate(cfg.traffic.write_rate, &cfg),
                crate::config::instance_rate(cfg.traffic.read_rate, &cfg),
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
        let last_results = self.probes.snapshot();
        let mut measured = Measured {
            target_write_rate: crate::config::instance_rate(cfg.traffic.write_rate, cfg),
            target_post_rate: self.e2e.as_ref().map_or(0.0, |c| c.rates().0),
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
        measured.e2e = e2e_window(samples, first, last);
        for (name, now) in &last.probes {
            let before = first.probes.get(name).cloned().unwrap_or_default();
            let buckets = now.buckets.minus(&before.buckets);
            let since = |a: &BTreeMap<&'static str, u64>, b: &BTreeMap<&'static str, u64>| {
                counts_since(a, b)
                    .into_iter()
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
                    gauges: last_result.gauges,
                    buckets,
                },
            );
        }
        measured
    }
}

/// The canary over the window between `first` and `last`: counts and buckets subtracted,
/// percentiles interpolated, the deepest queue read among the samples.
fn e2e_window(samples: &[Sample], first: &Sample, last: &Sample) -> Option<E2eView> {
    let (a, b) = (first.e2e.as_ref()?, last.e2e.as_ref()?);
    let mut w = b.minus_counts(a);
    let c = &mut w.canary;
    c.delivery = interpolated(&c.delivery_buckets);
    c.ws_connect = interpolated(&c.ws_connect_buckets);
    c.visible = interpolated(&c.visible_buckets);
    c.api = interpolated(&w.post.buckets.plus(&w.read.buckets));
    c.queue_depth_max = samples
        .iter()
        .filter(|s| s.at >= first.at)
        .filter_map(|s| s.e2e.as_ref())
        .filter(|e| e.canary.queue_up)
        .filter_map(|e| e.canary.queue_depth)
        .reduce(f64::max);
    Some(w)
}

/// Percentiles interpolated in buckets (the status page has no HDR histogram over a window).
fn interpolated(b: &BucketCounts) -> Percentiles {
    let q = |q: f64| b.quantile(q).unwrap_or(0.0);
    Percentiles {
        count: b.count,
        p50: q(0.5),
        p90: q(0.9),
        p95: q(0.95),
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
