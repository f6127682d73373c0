//! What each traffic thread runs: its session connected and its statements prepared (retried until
//! the database answers), its shard of the pacer driving the [`Dispatcher`], and the drain at the end.

use super::dispatch::{Dispatcher, Prepared, Shared};
use super::pacer::{Op, Pacer, Shard, TargetRates, TokioSleeper};
use super::scylla_ops::Statements;
use super::timer;
use crate::chat::workload::Workload;
use crate::config::{Config, WriteMode};
use crate::measure::health::Health;
use crate::store::{Backoff, RedisBackend};
use scylla::client::session::Session;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Operations per second the pacer schedules for `op`: writes are batches in batch mode.
pub(super) fn op_rate(cfg: &Config, op: Op) -> f64 {
    match op {
        Op::Write => {
            crate::config::instance_rate(cfg.traffic.write_rate, cfg) / batch_size(cfg) as f64
        }
        Op::Read => crate::config::instance_rate(cfg.traffic.read_rate, cfg),
    }
}

/// Operations per second one traffic thread is given when `traffic.threads` is unset.
pub const OPS_PER_THREAD: f64 = 25_000.0;

/// How many traffic threads run: `traffic.threads`, or one per [`OPS_PER_THREAD`] database
/// operations per second this instance starts (the Redis side rides in one pipeline per wake-up),
/// at most the number of cores, at least one.
pub(super) fn shard_count(cfg: &Config) -> u32 {
    if let Some(n) = cfg.traffic.threads {
        return n.max(1);
    }
    let ops = op_rate(cfg, Op::Write) + op_rate(cfg, Op::Read);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    ((ops / OPS_PER_THREAD).ceil() as u32).clamp(1, cores.max(1))
}

/// What the traffic threads do together: begin the timetable at one instant, and create the
/// schema one at a time.
pub(super) struct Together {
    start: tokio::sync::Barrier,
    schema: tokio::sync::Mutex<()>,
}

impl Together {
    pub(super) fn new(threads: usize) -> Self {
        Self {
            start: tokio::sync::Barrier::new(threads),
            schema: tokio::sync::Mutex::new(()),
        }
    }
}

fn batch_size(cfg: &Config) -> usize {
    match cfg.traffic.write_mode {
        WriteMode::Single => 1,
        WriteMode::Batch => cfg.traffic.batch_size as usize,
    }
}

/// What the traffic thread runs.
pub(super) struct Engine {
    pub(super) cfg: Config,
    pub(super) shared: Arc<Shared>,
    pub(super) workload: Workload,
    pub(super) rates: Arc<TargetRates>,
    pub(super) health: Arc<Health>,
    pub(super) shutdown: CancellationToken,
    pub(super) shard: Shard,
    pub(super) together: Arc<Together>,
}

impl Engine {
    pub(super) async fn run(self) {
        let redis = match RedisBackend::new(&self.cfg.redis) {
            Ok(r) => r,
            Err(e) => {
                // The URL was validated with the config; this cannot happen short of a bug.
                tracing::error!(error = %e, "traffic cannot start");
                return;
            }
        };
        tokio::spawn(prepare_statements(
            self.shared.clone(),
            self.cfg.clone(),
            self.together.clone(),
            self.shutdown.clone(),
        ));
        let dispatcher = Dispatcher {
            runtime: tokio::runtime::Handle::current(),
            shared: self.shared.clone(),
            redis,
            workload: self.workload,
            batch_size: batch_size(&self.cfg),
            heartbeat: self.health.pacer(),
            last_beat: None,
            redis_due: Vec::new(),
        };
        // A healthy start waits for the statements (at most scylla.connect_timeout), so that the
        // first operations are not counted unavailable just because the session was still opening.
        // A database that is down shows as `unavailable` from then on.
        let waited = Instant::now();
        while self.shared.prepared().is_none()
            && waited.elapsed() < self.cfg.scylla.connect_timeout.get()
        {
            dispatcher.heartbeat.beat();
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
        // Every shard begins its share of the timetable at the same instant.
        tokio::select! {
            _ = self.shutdown.cancelled() => return,
            _ = self.together.start.wait() => {}
        }
        let pacer = Pacer::shard(self.rates, Instant::now(), self.shard, dispatcher)
            .with_wake_interval(self.cfg.traffic.wake_interval.get());
        match timer::TimerFdSleeper::new() {
            Ok(mut precise) => drop(pacer.run(&mut precise, self.shutdown.clone()).await),
            Err(e) => {
                warn!(error = %e, "no timerfd: pacing with tokio's 1 ms timer instead");
                drop(pacer.run(&mut TokioSleeper, self.shutdown.clone()).await);
            }
        }
        let drain = self.cfg.traffic.drain_timeout.get();
        let shared = &self.shared;
        let (db, cache) = tokio::join!(
            shared.scylla_slots.drained(drain),
            shared.redis_slots.drained(drain)
        );
        if db && cache {
            info!("traffic stopped; every in-flight request finished");
        } else {
            warn!(drain_timeout = ?drain, "traffic stopped with requests still in flight");
        }
    }
}

/// Connect the traffic's own session, create the schema if configured, prepare the statements;
/// retry with backoff until it works or `shutdown`.
async fn prepare_statements(
    shared: Arc<Shared>,
    cfg: Config,
    together: Arc<Together>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));
    let ttl = cfg.traffic.ttl.map(|t| t.get().as_secs());
    let batch = matches!(cfg.traffic.write_mode, WriteMode::Batch)
        .then_some(cfg.traffic.batch_size as usize);
    let mut session: Option<Arc<Session>> = None;
    loop {
        let attempt = async {
            let s = match &session {
                Some(s) => s.clone(),
                None => {
                    let password = cfg
                        .scylla
                        .password()
                        .map_err(crate::store::scylla::ScyllaError::Password)?;
                    let s = Arc::new(crate::store::scylla::connect(&cfg.scylla, password).await?);
                    session = Some(s.clone());
                    s
                }
            };
            {
                // One thread at a time: the others find the schema there.
                let _one = together.schema.lock().await;
                crate::store::schema::ensure(&s, &cfg.scylla).await?;
            }
            let statements = Statements::prepare(&s, &cfg.scylla.keyspace, ttl, batch).await?;
            Ok::<_, crate::store::scylla::ScyllaError>(Prepared {
                session: s,
                statements,
            })
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = attempt => r,
        };
        match result {
            Ok(prepared) => {
                shared.set_prepared(Arc::new(prepared));
                info!(keyspace = %cfg.scylla.keyspace, "statements prepared; traffic reaches the database");
                return;
            }
            Err(e) => {
                warn!(error = %e, "traffic cannot reach the database yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}
