//! Probes: scheduled checks that turn "the backend seems fine" into numbers an alert can stand on.
//!
//! Each probe is one module implementing [`Probe`]: it runs, measures one or more latencies, and runs
//! correctness checks whose failures are counted per check. [`ProbeScheduler`] runs every enabled
//! probe in a task of its own: on its `interval` plus random `jitter`, bounded by its `timeout`, never
//! two runs of one probe at once. A run that times out or cannot run (`error`) has measured nothing,
//! so it is observed once at its `timeout` in `chatload_probe_duration_seconds` and in the probe's
//! percentiles: a failing probe never looks fast. Probes write only to streams of their own (derived
//! from a random id of this process, the instance and the probe), so each knows exactly what it wrote
//! and can check what it reads; their rows carry a TTL so the streams stay small.
//!
//! Adding a probe: a new module and one line in [`all`].

pub mod pagination;
pub mod partition_balance;
pub mod range_5m;
pub mod recent_50;
pub mod redis_cache;
pub mod redis_pubsub;
pub mod redis_ttl;
pub mod ttl_expiry;
pub mod ttl_metadata;

use crate::chat::table::{self, COLUMNS};
use crate::chat::workload::{Message, MessageType, Sender};
use crate::config::{Config, HumanDuration, ProbeConfig};
use crate::measure::metrics::Metrics;
use crate::measure::record::{Percentiles, exact_histogram, micros};
use crate::store::redis::RedisError;
use crate::store::scylla::ScyllaError;
use crate::store::{RedisBackend, ScyllaBackend};
use futures::future::BoxFuture;
use rand::Rng;
use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::statement::prepared::PreparedStatement;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};
use uuid::Uuid;

/// How a probe run ended; the `outcome` label of `chatload_probe_runs_total`.
pub const OUTCOMES: [&str; 4] = ["ok", "failed", "timeout", "error"];

/// TTL of the rows most probes write: their streams hold about an hour of probe runs.
pub const PROBE_ROW_TTL: u32 = 3600;

/// High half of every probe stream id: "chatprob" in ASCII.
const PROBE_NAMESPACE: u64 = u64::from_be_bytes(*b"chatprob");

/// What one run found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Verdict {
    /// Failed checks and how many violations each found.
    pub failures: Vec<(&'static str, u64)>,
    /// Latencies measured (the probe's query or round trip), for its histogram and percentiles.
    pub latencies: Vec<Duration>,
}

impl Verdict {
    /// Count `n` violations of `check` (nothing when `n` is 0).
    pub fn fail(&mut self, check: &'static str, n: u64) {
        if n > 0 {
            self.failures.push((check, n));
        }
    }

    /// Record one measured latency.
    pub fn measured(&mut self, d: Duration) {
        self.latencies.push(d);
    }

    /// No check failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Why a probe could not run its checks.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// ScyllaDB failed (boxed: the driver's errors are large, and probe errors are rare).
    #[error("{0}")]
    Scylla(Box<ScyllaError>),
    /// Redis failed.
    #[error("{0}")]
    Redis(#[from] RedisError),
    /// There is no ScyllaDB session yet.
    #[error("no ScyllaDB session yet (the database has not answered)")]
    NoSession,
    /// Something else, said in words.
    #[error("{0}")]
    Other(String),
}

impl From<ScyllaError> for ProbeError {
    fn from(e: ScyllaError) -> Self {
        ProbeError::Scylla(Box::new(e))
    }
}

/// Wrap a driver error with the statement it ran.
pub fn cql_error(cql: &str, cause: ExecutionError) -> ProbeError {
    ScyllaError::Query {
        cql: cql.to_string(),
        cause,
    }
    .into()
}

/// A probe.
pub trait Probe: Send + Sync {
    /// The `probe` label and `[probes.<name>]` table.
    fn name(&self) -> &'static str;
    /// Its `check` labels (each exists at 0 from the start).
    fn checks(&self) -> &'static [&'static str];
    /// Whether it uses ScyllaDB (its first run then waits, up to one interval, for the session).
    fn needs_scylla(&self) -> bool {
        true
    }
    /// One run.
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>>;
}

/// Every probe, in `[probes]` order.
pub fn all(cfg: &Config) -> Vec<Arc<dyn Probe>> {
    vec![
        Arc::new(ttl_metadata::TtlMetadata),
        Arc::new(ttl_expiry::TtlExpiry),
        Arc::new(recent_50::Recent50::default()),
        Arc::new(range_5m::Range5m::default()),
        Arc::new(pagination::Pagination::default()),
        Arc::new(partition_balance::PartitionBalance),
        Arc::new(redis_ttl::RedisTtl::default()),
        Arc::new(redis_cache::RedisCache::default()),
        Arc::new(redis_pubsub::RedisPubsub::new(cfg)),
    ]
}

/// The statements probes share, prepared once per session.
pub struct ProbeStatements {
    /// INSERT relying on the table's default TTL.
    pub insert_default_ttl: PreparedStatement,
    /// INSERT … USING TTL ?.
    pub insert_with_ttl: PreparedStatement,
    /// Newest rows of a stream: `stream_id = ? LIMIT ?`.
    pub newest: PreparedStatement,
    /// `message_id, timestamp` of a stream's rows since a timestamp.
    pub since: PreparedStatement,
    /// `message_id, timestamp` of a stream's rows up to a timestamp.
    pub until: PreparedStatement,
    /// `COUNT(*)` of a stream's rows since a timestamp.
    pub count_since: PreparedStatement,
    /// `TTL(message_text), WRITETIME(message_text)` of one row, and the server's clock
    /// (`toUnixTimestamp(now())`, milliseconds) at the read.
    pub ttl_of: PreparedStatement,
    /// `message_id, timestamp` of a whole stream, 50 rows per page.
    pub pages: PreparedStatement,
}

impl ProbeStatements {
    async fn prepare(session: &Session, keyspace: &str) -> Result<Self, ProbeError> {
        let t = format!("{keyspace}.{}", crate::chat::table::TABLE);
        let p = |cql: String| async move {
            session.prepare(cql.as_str()).await.map_err(|e| {
                ProbeError::from(ScyllaError::Prepare {
                    cql,
                    cause: e.to_string(),
                })
            })
        };
        let values = "VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
        let mut pages = p(format!(
            "SELECT message_id, timestamp FROM {t} WHERE stream_id = ?"
        ))
        .await?;
        pages.set_page_size(50);
        Ok(Self {
            insert_default_ttl: p(format!("INSERT INTO {t} ({COLUMNS}) {values}")).await?,
            insert_with_ttl: p(format!("INSERT INTO {t} ({COLUMNS}) {values} USING TTL ?")).await?,
            newest: p(format!(
                "SELECT {COLUMNS} FROM {t} WHERE stream_id = ? LIMIT ?"
            ))
            .await?,
            since: p(format!(
                "SELECT message_id, timestamp FROM {t} WHERE stream_id = ? AND timestamp >= ?"
            ))
            .await?,
            until: p(format!(
                "SELECT message_id, timestamp FROM {t} WHERE stream_id = ? AND timestamp <= ?"
            ))
            .await?,
            count_since: p(format!(
                "SELECT COUNT(*) FROM {t} WHERE stream_id = ? AND timestamp >= ?"
            ))
            .await?,
            ttl_of: p(format!(
                "SELECT TTL(message_text), WRITETIME(message_text), toUnixTimestamp(now()) \
                 FROM {t} WHERE stream_id = ? AND timestamp = ? AND message_id = ?"
            ))
            .await?,
            pages,
        })
    }
}

/// What probes share: the config, the control-plane backends, metrics, and this process's probe id.
pub struct ProbeContext {
    /// The configuration (swapped whole on reload; read it with [`ProbeContext::cfg`]).
    cfg: std::sync::RwLock<Arc<Config>>,
    /// The ScyllaDB session of the control plane (shared with the health check).
    pub scylla: Arc<ScyllaBackend>,
    /// The Redis connection of the control plane.
    pub redis: RedisBackend,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Random per process: probe streams of an earlier run are never mixed up with this one's.
    pub run_id: u32,
    statements: tokio::sync::OnceCell<Arc<ProbeStatements>>,
    sender: Arc<Sender>,
}

impl ProbeContext {
    /// A context for `cfg`.
    pub fn new(
        cfg: Config,
        scylla: Arc<ScyllaBackend>,
        redis: RedisBackend,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cfg: std::sync::RwLock::new(Arc::new(cfg)),
            scylla,
            redis,
            metrics,
            run_id: rand::rng().random(),
            statements: tokio::sync::OnceCell::new(),
            sender: Arc::new(Sender {
                id: Uuid::from_u64_pair(PROBE_NAMESPACE, 0),
                display_name: "chatload probe".into(),
            }),
        }
    }

    /// The current configuration.
    pub fn cfg(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Swap in a reloaded configuration: schedules, timeouts and SLOs apply from the next run.
    pub fn set_cfg(&self, cfg: Config) {
        *self.cfg.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
    }

    /// The session, or [`ProbeError::NoSession`].
    pub fn session(&self) -> Result<Arc<Session>, ProbeError> {
        self.scylla.session().ok_or(ProbeError::NoSession)
    }

    /// The shared statements, prepared on first use.
    pub async fn statements(&self) -> Result<Arc<ProbeStatements>, ProbeError> {
        let session = self.session()?;
        self.statements
            .get_or_try_init(|| async {
                // The traffic creates the schema too; whoever comes first wins (IF NOT EXISTS).
                crate::store::schema::guard(&session, &self.cfg().scylla).await?;
                if self.cfg().scylla.create_schema {
                    crate::store::schema::apply(&session, &self.cfg().scylla).await?;
                }
                ProbeStatements::prepare(&session, &self.cfg().scylla.keyspace)
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// The stream `probe` writes to; `generation` rotates it (per hour, per seeding, …).
    pub fn stream(&self, probe: &str, generation: u32) -> Uuid {
        probe_stream(self.run_id, self.cfg().instance.index, probe, generation)
    }

    /// A probe message in `stream` at `timestamp_ms`.
    pub fn message(&self, stream: Uuid, timestamp_ms: i64, text: String) -> Message {
        Message {
            stream_id: stream,
            timestamp_ms,
            message_id: Uuid::new_v4(),
            sender: self.sender.clone(),
            text,
            moderation_status: "approved",
            message_type: MessageType::Text,
        }
    }

    /// Write `m` with `ttl` seconds (`None`: the table's default TTL).
    pub async fn write(&self, m: &Message, ttl: Option<u32>) -> Result<(), ProbeError> {
        let session = self.session()?;
        let st = self.statements().await?;
        let r = table::row(m);
        let result = match ttl {
            None => session.execute_unpaged(&st.insert_default_ttl, r).await,
            Some(ttl) => {
                let (a, b, c, d, e, f, g, h) = r;
                session
                    .execute_unpaged(&st.insert_with_ttl, (a, b, c, d, e, f, g, h, ttl as i32))
                    .await
            }
        };
        result.map(drop).map_err(|e| cql_error("probe INSERT", e))
    }
}

/// The id of a probe's stream: namespace, process run id, instance, probe and generation.
pub fn probe_stream(run_id: u32, instance: u32, probe: &str, generation: u32) -> Uuid {
    // A small stable hash of the probe name (FNV-1a), so the layout does not depend on probe order.
    let name = probe.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let low = (u64::from(run_id) << 32)
        | (u64::from(instance & 0xff) << 24)
        | u64::from(name & 0xff) << 16
        | u64::from(generation & 0xffff);
    Uuid::from_u64_pair(PROBE_NAMESPACE, low ^ (u64::from(name) << 40))
}

/// What one probe did since the start (or the last reset): runs by outcome, last result, percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeSnapshot {
    /// Runs per outcome.
    pub runs: BTreeMap<&'static str, u64>,
    /// Whether the last run passed (`None`: no run yet).
    pub last_success: Option<bool>,
    /// What the last failed run said.
    pub last_problem: Option<String>,
    /// Measured latencies.
    pub latency: Percentiles,
    /// Violations per check.
    pub check_failures: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct ProbeState {
    runs: BTreeMap<&'static str, u64>,
    last_success: Option<bool>,
    last_problem: Option<String>,
    check_failures: BTreeMap<&'static str, u64>,
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
        for backend in ["scylla", "redis"] {
            m.ttl_observed.with_label_values(&[backend]);
            m.ttl_drift.with_label_values(&[backend]);
        }
        m.probe_writes_unknown.with_label_values(&[range_5m::NAME]);
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
        // A shutdown does not wait for a run in progress (ttl_expiry's takes ttl + grace): the run
        // is abandoned and not counted.
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(schedule.timeout.get(), probe.run(&ctx)) => r,
        };
        let run = judge_run(result, &schedule.timeout);
        record_run(name, &run, m, &state);
        match (&run.problem, run.outcome) {
            (Some(p), "failed") => warn!(probe = name, problem = %p, "probe failed"),
            (Some(p), outcome) => warn!(probe = name, outcome, problem = %p, "probe could not run"),
            _ => debug!(probe = name, took = ?started.elapsed(), "probe passed"),
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
        failures: Vec::new(),
        latencies: vec![timeout.get()],
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
    if run.problem.is_some() {
        s.last_problem = run.problem.clone();
    }
}

/// Time `fut`, returning its output and how long it took.
pub async fn timed<T>(fut: impl Future<Output = T>) -> (T, Duration) {
    let t = Instant::now();
    let out = fut.await;
    (out, t.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_streams_differ_by_run_instance_probe_and_generation() {
        let base = probe_stream(1, 0, "recent_50", 0);
        assert_ne!(base, probe_stream(2, 0, "recent_50", 0));
        assert_ne!(base, probe_stream(1, 1, "recent_50", 0));
        assert_ne!(base, probe_stream(1, 0, "range_5m", 0));
        assert_ne!(base, probe_stream(1, 0, "recent_50", 1));
        assert_eq!(base, probe_stream(1, 0, "recent_50", 0));
        // Never a traffic stream.
        assert!(crate::chat::workload::stream_index(&base).is_none());
    }

    #[test]
    fn every_probe_has_a_config_table_and_unique_name() {
        let cfg = Config::default();
        let names: Vec<&str> = all(&cfg).iter().map(|p| p.name()).collect();
        let tables: Vec<&str> = cfg.probes.iter().map(|(n, _)| n).collect();
        assert_eq!(names, tables);
    }

    /// A probe named like `redis_pubsub` (so it has a `[probes]` table) that does what it is told.
    struct FakeProbe {
        run: fn() -> BoxFuture<'static, Result<Verdict, ProbeError>>,
    }

    impl Probe for FakeProbe {
        fn name(&self) -> &'static str {
            "redis_pubsub"
        }
        fn checks(&self) -> &'static [&'static str] {
            &[]
        }
        fn needs_scylla(&self) -> bool {
            false
        }
        fn run<'a>(&'a self, _: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
            (self.run)()
        }
    }

    /// Run `probe` through the scheduler's loop (timeout 1 s) until its first run is recorded; on
    /// paused time, so the timeout fires without waiting.
    async fn first_run(probe: FakeProbe) -> (Arc<Metrics>, Arc<Mutex<ProbeState>>) {
        let mut cfg = Config::default();
        cfg.probes.redis_pubsub.timeout = HumanDuration::from_secs(1);
        let metrics = Arc::new(Metrics::new("test"));
        let ctx = Arc::new(ProbeContext::new(
            cfg.clone(),
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

    #[tokio::test(start_paused = true)]
    async fn a_run_that_errs_is_observed_at_its_timeout() {
        let (m, state) = first_run(FakeProbe {
            run: || Box::pin(async { Err(ProbeError::Other("backend gone".into())) }),
        })
        .await;
        assert_observed_once_at_timeout(&m, &state, "error");
    }

    #[test]
    fn verdict_counts_only_real_violations() {
        let mut v = Verdict::default();
        v.fail("gap", 0);
        assert!(v.passed());
        v.fail("gap", 2);
        assert_eq!(v.failures, [("gap", 2)]);
    }
}
