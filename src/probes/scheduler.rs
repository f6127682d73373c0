//! [`ProbeScheduler`] runs every enabled probe in a task of its own: on its `interval` plus random
//! `jitter`, bounded by its `timeout`, never two runs of one probe at once. A run that times out or
//! cannot run (`error`) has measured nothing, so it is observed once at its `timeout` in
//! `chatload_probe_duration_seconds` and in the probe's percentiles: a failing probe never looks fast.

use super::probe::{Probe, ProbeContext, ProbeError, Verdict};
use super::registry::all;
use crate::config::{HumanDuration, ProbeConfig};
use crate::measure::metrics::Metrics;
use crate::measure::snapshot::ProbeSnapshot;
use crate::measure::stats::{BucketCounts, Percentiles, exact_histogram, micros};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, warn};

/// How a probe run ended; the `outcome` label of `chatload_probe_runs_total`.
pub const OUTCOMES: [&str; 4] = ["ok", "failed", "timeout", "error"];

#[derive(Default)]
struct ProbeState {
    runs: BTreeMap<&'static str, u64>,
    last_success: Option<bool>,
    last_problem: Option<String>,
    check_failures: BTreeMap<&'static str, u64>,
    gauges: BTreeMap<&'static str, f64>,
    latencies: Option<hdrhistogram::Histogram<u64>>,
}

/// Runs the probes and keeps what they found, for `/api/v1/status` and `chatload check`.
pub struct ProbeScheduler {
    ctx: Arc<ProbeContext>,
    states: BTreeMap<&'static str, Arc<Mutex<ProbeState>>>,
    /// Each probe's `check` labels.
    checks: BTreeMap<&'static str, &'static [&'static str]>,
}

impl ProbeScheduler {
    /// Start a task per enabled probe; every series of every probe exists from now on (at 0).
    pub fn start(
        ctx: Arc<ProbeContext>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let m = &ctx.metrics;
        let (mut states, mut checks) = (BTreeMap::new(), BTreeMap::new());
        for probe in all(&ctx.cfg()) {
            let name = probe.name();
            checks.insert(name, probe.checks());
            m.probe_success.with_label_values(&[name]).set(0);
            for o in OUTCOMES {
                m.probe_runs.with_label_values(&[name, o]);
            }
            for c in probe.checks() {
                m.probe_check_failures.with_label_values(&[name, c]);
            }
            m.probe_duration.with_label_values(&[name]);
            probe.init_series(m);
            let state = Arc::new(Mutex::new(ProbeState {
                latencies: Some(exact_histogram()),
                ..Default::default()
            }));
            states.insert(name, state.clone());
            // Disabled probes have a loop too, idle until a reload enables them.
            tracker.spawn(run_loop(probe, ctx.clone(), state, shutdown.child_token()));
        }
        Self {
            ctx,
            states,
            checks,
        }
    }

    /// Every probe's name with its `check` labels.
    pub fn checks(&self) -> &BTreeMap<&'static str, &'static [&'static str]> {
        &self.checks
    }

    /// What the probes share (their stream ids and key names derive from it).
    pub fn context(&self) -> &Arc<ProbeContext> {
        &self.ctx
    }

    /// Every probe's snapshot.
    pub fn snapshot(&self) -> BTreeMap<&'static str, ProbeSnapshot> {
        self.states
            .iter()
            .map(|(name, s)| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                let latency = s
                    .latencies
                    .as_ref()
                    .map(Percentiles::of)
                    .unwrap_or_default();
                (
                    *name,
                    ProbeSnapshot {
                        runs: s.runs.clone(),
                        last_success: s.last_success,
                        last_problem: s.last_problem.clone(),
                        latency,
                        check_failures: s.check_failures.clone(),
                        gauges: s.gauges.clone(),
                        buckets: BucketCounts::of(
                            &self.ctx.metrics.probe_duration.with_label_values(&[name]),
                        ),
                    },
                )
            })
            .collect()
    }

    /// Forget everything recorded so far (the end of a warm-up); runs go on.
    pub fn reset(&self) {
        for s in self.states.values() {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            s.runs.clear();
            s.check_failures.clear();
            s.gauges.clear();
            s.last_success = None;
            s.last_problem = None;
            if let Some(h) = s.latencies.as_mut() {
                h.reset();
            }
        }
    }
}

/// The probe's current `[probes.<name>]` settings (they change on reload).
fn schedule_of(ctx: &ProbeContext, name: &str) -> ProbeConfig {
    ctx.cfg()
        .probes
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p)
        .expect("every probe has a [probes] table")
}

/// How often an idle (disabled) probe looks whether a reload enabled it.
const IDLE_CHECK: Duration = Duration::from_secs(1);

async fn run_loop(
    probe: Arc<dyn Probe>,
    ctx: Arc<ProbeContext>,
    state: Arc<Mutex<ProbeState>>,
    shutdown: CancellationToken,
) {
    let name = probe.name();
    let m = &ctx.metrics;
    let jitter = |j: Duration| {
        if j.is_zero() {
            Duration::ZERO
        } else {
            rand::rng().random_range(Duration::ZERO..=j)
        }
    };
    // Idle while disabled.
    while !schedule_of(&ctx, name).enabled {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(IDLE_CHECK) => {}
        }
    }
    let schedule = schedule_of(&ctx, name);
    // The first run soon after start, spread by the jitter; not before the database has answered
    // (for at most one interval), so that a fresh start does not count as a probe error.
    if probe.needs_scylla() {
        let mut sessions = ctx.scylla.subscribe();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sessions.wait_for(Option::is_some) => {}
            _ = tokio::time::sleep(schedule.interval.get()) => {}
        }
    }
    let mut next = Instant::now() + jitter(schedule.jitter.get()).min(schedule.interval.get());
    let mut runs: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        let schedule = schedule_of(&ctx, name);
        if !schedule.enabled {
            next = Instant::now() + IDLE_CHECK;
            continue;
        }
        let started = Instant::now();
        runs += 1;
        // Everything a run logs (its own lines and the driver's) carries the probe and the run.
        let span = tracing::info_span!("probe", probe = name, run = runs);
        // A shutdown does not wait for a run in progress (ttl_expiry's takes ttl + grace): the run
        // is abandoned and not counted.
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(schedule.timeout.get(), probe.run(&ctx)).instrument(span.clone()) => r,
        };
        let run = judge_run(result, &schedule.timeout);
        record_run(name, &run, m, &state);
        let _in_run = span.enter();
        match (&run.problem, run.outcome) {
            (Some(p), "failed") => warn!(problem = %p, "probe failed"),
            (Some(p), outcome) => warn!(outcome, problem = %p, "probe could not run"),
            _ => debug!(took = ?started.elapsed(), "probe passed"),
        }
        next =
            (started + schedule.interval.get() + jitter(schedule.jitter.get())).max(Instant::now());
    }
}

/// One finished run, as it is recorded.
#[derive(Debug, PartialEq)]
struct RunRecord {
    /// One of [`OUTCOMES`].
    outcome: &'static str,
    /// What went wrong, for the log and `last_problem`.
    problem: Option<String>,
    /// Its check failures and latencies.
    verdict: Verdict,
}

/// Sort a run's result into its outcome. A run that timed out or could not run has measured nothing,
/// so it is observed once at its deadline (the probe's `timeout`): a failing probe never looks fast.
fn judge_run(
    result: Result<Result<Verdict, ProbeError>, tokio::time::error::Elapsed>,
    timeout: &HumanDuration,
) -> RunRecord {
    let at_deadline = Verdict {
        latencies: vec![timeout.get()],
        ..Verdict::default()
    };
    let (outcome, problem, verdict) = match result {
        Err(_) => (
            "timeout",
            Some(format!("no result within {timeout}")),
            at_deadline,
        ),
        Ok(Err(e)) => ("error", Some(e.to_string()), at_deadline),
        Ok(Ok(v)) if v.passed() => ("ok", None, v),
        Ok(Ok(v)) => {
            let what = v
                .failures
                .iter()
                .map(|(c, n)| format!("{c} ({n})"))
                .collect::<Vec<_>>()
                .join(", ");
            ("failed", Some(format!("checks failed: {what}")), v)
        }
    };
    RunRecord {
        outcome,
        problem,
        verdict,
    }
}

/// Count `run` in the metrics and in the probe's state (the snapshot's runs, checks and latencies).
fn record_run(name: &'static str, run: &RunRecord, m: &Metrics, state: &Mutex<ProbeState>) {
    m.probe_runs.with_label_values(&[name, run.outcome]).inc();
    m.probe_success
        .with_label_values(&[name])
        .set(i64::from(run.outcome == "ok"));
    let histogram = m.probe_duration.with_label_values(&[name]);
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    *s.runs.entry(run.outcome).or_default() += 1;
    s.last_success = Some(run.outcome == "ok");
    for (check, n) in &run.verdict.failures {
        m.probe_check_failures
            .with_label_values(&[name, check])
            .inc_by(*n);
        *s.check_failures.entry(check).or_default() += n;
    }
    for d in &run.verdict.latencies {
        histogram.observe(d.as_secs_f64());
        if let Some(h) = s.latencies.as_mut() {
            h.saturating_record(micros(*d));
        }
    }
    for (metric, value) in &run.verdict.gauges {
        s.gauges.insert(metric, *value);
    }
    if run.problem.is_some() {
        s.last_problem = run.problem.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::probe::{ProbeError, Verdict};
    use crate::store::{RedisBackend, ScyllaBackend};
    use futures::future::BoxFuture;

    /// A probe named like `redis_pubsub` (so it has a `[probes]` table) that does what it is told.
    struct FakeProbe {
        run: fn() -> BoxFuture<'static, Result<Verdict, ProbeError>>,
    }

    impl Probe for FakeProbe {
        fn spec(&self) -> &'static crate::config::ProbeSpec {
            &crate::probes::redis_pubsub::SPEC
        }
        fn run<'a>(&'a self, _: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
            (self.run)()
        }
    }

    /// Run `probe` through the scheduler's loop (timeout 1 s) until its first run is recorded; on
    /// paused time, so the timeout fires without waiting.
    async fn first_run(probe: FakeProbe) -> (Arc<Metrics>, Arc<Mutex<ProbeState>>) {
        let mut cfg = crate::probes::registry::defaults();
        cfg.probes.schedule_mut("redis_pubsub").unwrap().timeout = HumanDuration::from_secs(1);
        let metrics = Arc::new(Metrics::new("test"));
        let ctx = Arc::new(ProbeContext::new(
            crate::config::LiveConfig::new(cfg.clone()),
            Arc::new(ScyllaBackend::new(cfg.scylla.clone())),
            RedisBackend::new(&cfg.redis).unwrap(),
            metrics.clone(),
        ));
        let state = Arc::new(Mutex::new(ProbeState {
            latencies: Some(exact_histogram()),
            ..Default::default()
        }));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_loop(
            Arc::new(probe),
            ctx,
            state.clone(),
            shutdown.clone(),
        ));
        while state.lock().unwrap().runs.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        (metrics, state)
    }

    /// The run was observed exactly once, at the 1 s timeout, in the histogram and the snapshot.
    fn assert_observed_once_at_timeout(m: &Metrics, state: &Mutex<ProbeState>, outcome: &str) {
        let s = state.lock().unwrap();
        assert_eq!(s.runs.get(outcome), Some(&1), "{:?}", s.runs);
        let h = m.probe_duration.with_label_values(&["redis_pubsub"]);
        assert_eq!(h.get_sample_count(), 1);
        assert_eq!(h.get_sample_sum(), 1.0);
        let latency = Percentiles::of(s.latencies.as_ref().unwrap());
        assert_eq!(latency.count, 1);
        assert!((latency.max - 1.0).abs() < 0.001, "{latency:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_times_out_is_observed_at_its_timeout() {
        let (m, state) = first_run(FakeProbe {
            run: || {
                Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(Verdict::default())
                })
            },
        })
        .await;
        assert_observed_once_at_timeout(&m, &state, "timeout");
    }

    /// Its log line carries the run's span: the probe and which run it was.
    #[tokio::test(start_paused = true)]
    async fn a_run_that_errs_is_observed_at_its_timeout() {
        let log = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = {
            let log = log.clone();
            move || Captured(log.clone())
        };
        let _subscriber = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(writer)
                .with_ansi(false)
                .finish(),
        );
        let (m, state) = first_run(FakeProbe {
            run: || Box::pin(async { Err(ProbeError::Other("backend gone".into())) }),
        })
        .await;
        assert_observed_once_at_timeout(&m, &state, "error");
        let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("probe{probe=\"redis_pubsub\" run=1}: ")
                && text.contains("probe could not run")
                && text.contains("backend gone"),
            "{text}"
        );
    }

    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
