//! What every probe is made of: the [`Probe`] trait, a run's [`Verdict`] and [`ProbeError`], and the
//! [`ProbeContext`] probes share (config, control-plane backends, metrics, the statements prepared
//! once, and the probe streams of this process).

use crate::chat::table::{MessageRow, MessageRowWithTtl, Ttl, insert_cql, newest_cql};
use crate::chat::workload::{Message, MessageType, Sender};
use crate::config::{Config, LiveConfig, ProbeSpec};
use crate::measure::metrics::Metrics;
use crate::store::redis::RedisError;
use crate::store::scylla::{ScyllaError, prepare};
use crate::store::{RedisBackend, ScyllaBackend};
use futures::future::BoxFuture;
use rand::Rng;
use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::statement::prepared::PreparedStatement;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

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
    /// Gauges of its SLOs this run measured (metric name, value).
    pub gauges: Vec<(&'static str, f64)>,
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

    /// Record the value of an SLO's gauge (`metric`) this run measured.
    pub fn gauge(&mut self, metric: &'static str, value: f64) {
        self.gauges.push((metric, value));
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
    /// Its declaration: name, config table, checks, SLOs, alerts, metrics.
    fn spec(&self) -> &'static ProbeSpec;
    /// The `probe` label and `[probes.<name>]` table.
    fn name(&self) -> &'static str {
        self.spec().name
    }
    /// Its `check` labels (each exists at 0 from the start).
    fn checks(&self) -> &'static [&'static str] {
        self.spec().checks
    }
    /// Whether it uses ScyllaDB (its first run then waits, up to one interval, for the session).
    fn needs_scylla(&self) -> bool {
        self.spec().needs_scylla
    }
    /// Create the series of its own metrics, at 0, so they exist from the first scrape (the series
    /// every probe has are the scheduler's).
    fn init_series(&self, _metrics: &Metrics) {}
    /// One run.
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>>;
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
        let p = |cql: String| async move { Ok::<_, ProbeError>(prepare(session, cql).await?) };
        let mut pages = p(format!(
            "SELECT message_id, timestamp FROM {t} WHERE stream_id = ?"
        ))
        .await?;
        pages.set_page_size(50);
        Ok(Self {
            insert_default_ttl: p(insert_cql(keyspace, Ttl::TableDefault)).await?,
            insert_with_ttl: p(insert_cql(keyspace, Ttl::Bound)).await?,
            newest: p(newest_cql(keyspace)).await?,
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
    /// The configuration in force (swapped whole on reload; read it with [`ProbeContext::cfg`]).
    cfg: LiveConfig,
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
        cfg: LiveConfig,
        scylla: Arc<ScyllaBackend>,
        redis: RedisBackend,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cfg,
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
        self.cfg.get()
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
                crate::store::schema::ensure(&session, &self.cfg().scylla).await?;
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
        let row = MessageRow::of(m);
        let result = match ttl {
            None => session.execute_unpaged(&st.insert_default_ttl, row).await,
            Some(ttl) => {
                let row = MessageRowWithTtl {
                    row,
                    ttl: i32::try_from(ttl).unwrap_or(i32::MAX),
                };
                session.execute_unpaged(&st.insert_with_ttl, row).await
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
    fn verdict_counts_only_real_violations() {
        let mut v = Verdict::default();
        v.fail("gap", 0);
        assert!(v.passed());
        v.fail("gap", 2);
        assert_eq!(v.failures, [("gap", 2)]);
    }
}
