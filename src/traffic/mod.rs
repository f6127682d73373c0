//! Steady synthetic chat traffic: writes and reads at fixed rates into ScyllaDB, plus the Redis
//! cache and fan-out of each message.
//!
//! - [`pacer`]: the open-loop timetable and the dedicated thread that keeps it;
//! - [`dispatch`]: due operations turned into requests, each in an in-flight slot of its backend
//!   ([`slots`]);
//! - `engine`: what the traffic thread runs: the session prepared, the pacer, the drain;
//! - [`scylla_ops`], [`redis_ops`]: the requests themselves and their error sorting (the messages
//!   and their CQL and Redis layout are the chat's: [`crate::chat`]);
//! - [`crate::measure::record`] counts each operation and observes its latency;
//! - [`timer`]: the timerfd that wakes the pacer with microsecond precision.
//!
//! The traffic runs on a thread of its own (`chatload-traffic`) with a single-threaded tokio runtime,
//! its own ScyllaDB session and its own Redis connection: the thread that keeps the timetable is the
//! one that sends the requests and reads the replies, so an operation costs no hand-off between
//! threads, and HTTP scrapes or probes on the main runtime never delay a scheduled start.
//! The pacer hands every due operation to a [`dispatch::Dispatcher`] that builds its messages, takes
//! an in-flight slot of the backend (or counts the operation `dropped` when there is none: never a
//! queue) and spawns the request. ScyllaDB and Redis have a slot pool each, so a slow or dead Redis
//! never holds back the database writes, and the other way round.
//!
//! Operations are counted per *message*: a batch of 10 that succeeds adds 10 to
//! `chatload_operations_total{outcome="ok"}` and 10 observations to the latency histograms, so a
//! histogram's count always equals the operations counted (see [`crate::measure::record`]).

pub mod dispatch;
mod engine;
pub mod pacer;
pub mod redis_ops;
pub mod scylla_ops;
pub mod slots;
pub mod timer;

use crate::chat::cache::RedisSide;
use crate::chat::workload::Workload;
use crate::config::Config;
use crate::measure::health::Health;
use crate::measure::metrics::Metrics;
use crate::measure::record::{LagRecorder, OpRecorder};
use crate::measure::snapshot::TrafficSnapshot;
use dispatch::Shared;
use engine::{Engine, op_rate};
use pacer::{Op, TargetRates};
use slots::Slots;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info};

/// The running traffic.
pub struct Traffic {
    rates: Arc<TargetRates>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    /// Stops the pacer (a child of the daemon's shutdown token).
    stop: CancellationToken,
    /// Cancelled by the traffic thread once it stopped and drained.
    stopped: CancellationToken,
    drain_timeout: Duration,
}

impl Traffic {
    /// Start the traffic thread; everything stops when `shutdown` is cancelled, after in-flight
    /// requests had up to `traffic.drain_timeout` to finish. The database need not be reachable:
    /// until it is, writes and reads are counted `unavailable`.
    pub fn start(
        cfg: &Config,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let redis_side = RedisSide {
            cache: cfg.redis.cache,
            pubsub: cfg.redis.pubsub,
            cache_length: cfg.redis.cache_length,
            cache_ttl_ms: u64::try_from(cfg.redis.cache_ttl.get().as_millis()).unwrap_or(u64::MAX),
            key_prefix: cfg.redis.key_prefix.clone(),
        };
        let cap = cfg.traffic.max_in_flight;
        let (scylla_deadline, redis_deadline) = (
            cfg.scylla.request_timeout.get(),
            cfg.redis.request_timeout.get(),
        );
        let shared = Arc::new(Shared {
            prepared: RwLock::new(None),
            redis_side,
            redis_timeout: cfg.redis.request_timeout.get(),
            scylla_slots: Slots::new(cap, metrics.in_flight.with_label_values(&["scylla"])),
            redis_slots: Slots::new(cap, metrics.in_flight.with_label_values(&["redis"])),
            scylla_write: Arc::new(OpRecorder::new(
                &metrics,
                "scylla",
                "write",
                scylla_deadline,
            )),
            scylla_read: Arc::new(OpRecorder::new(&metrics, "scylla", "read", scylla_deadline)),
            redis_write: Arc::new(OpRecorder::new(&metrics, "redis", "write", redis_deadline)),
            schedule_lag: Arc::new(LagRecorder::new(metrics.schedule_lag.clone())),
        });
        let seed = cfg.traffic.seed.unwrap_or_else(rand::random);
        let workload = Workload::new(&cfg.traffic, &cfg.instance, seed);
        let rates = Arc::new(TargetRates::new(
            op_rate(cfg, Op::Write),
            op_rate(cfg, Op::Read),
        ));
        let stop = shutdown.child_token();
        let stopped = CancellationToken::new();
        let traffic = Self {
            rates: rates.clone(),
            shared: shared.clone(),
            metrics: metrics.clone(),
            stop: stop.clone(),
            stopped: stopped.clone(),
            drain_timeout: cfg.traffic.drain_timeout.get(),
        };
        traffic.publish_target_rates(cfg);
        info!(
            seed,
            streams = workload.streams().len(),
            write_rate = crate::config::instance_rate(cfg.traffic.write_rate, cfg),
            read_rate = crate::config::instance_rate(cfg.traffic.read_rate, cfg),
            instance = cfg.instance.index,
            instances = cfg.instance.count,
            "traffic starting"
        );

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let engine = Engine {
            cfg: cfg.clone(),
            shared,
            workload,
            rates,
            health,
            shutdown: stop,
        };
        let thread = std::thread::Builder::new()
            .name("chatload-traffic".into())
            .spawn(move || {
                // Everything the traffic logs carries which share of the traffic it is.
                let span = tracing::info_span!("traffic", instance = engine.cfg.instance.index);
                runtime.block_on(engine.run().instrument(span));
                stopped.cancel();
            })?;
        tracker.spawn(async move {
            shutdown.cancelled().await;
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        });
        Ok(traffic)
    }

    /// Apply the rates of `cfg` (a reload) from the next due operation on.
    pub fn set_rates(&self, cfg: &Config) {
        for op in Op::ALL {
            self.rates.set(op, op_rate(cfg, op));
        }
        self.publish_target_rates(cfg);
    }

    fn publish_target_rates(&self, cfg: &Config) {
        let m = &self.metrics;
        m.target_rate
            .with_label_values(&["write"])
            .set(crate::config::instance_rate(cfg.traffic.write_rate, cfg));
        m.target_rate
            .with_label_values(&["read"])
            .set(crate::config::instance_rate(cfg.traffic.read_rate, cfg));
    }

    /// Counts and latency percentiles of every (backend, op) so far.
    pub fn snapshot(&self) -> TrafficSnapshot {
        let s = &self.shared;
        TrafficSnapshot {
            scylla_write: s.scylla_write.snapshot(),
            scylla_read: s.scylla_read.snapshot(),
            redis_write: s.redis_write.snapshot(),
            schedule_lag: s.schedule_lag.percentiles(),
        }
    }

    /// Start a measuring window (the end of a warm-up): the counts so far, with the HDR latencies
    /// forgotten at the same instant (see [`OpRecorder::begin_window`]).
    pub fn begin_window(&self) -> TrafficSnapshot {
        let s = &self.shared;
        s.schedule_lag.reset();
        TrafficSnapshot {
            scylla_write: s.scylla_write.begin_window(),
            scylla_read: s.scylla_read.begin_window(),
            redis_write: s.redis_write.begin_window(),
            schedule_lag: crate::measure::stats::Percentiles::default(),
        }
    }

    /// Stop scheduling and wait until the requests in flight have finished (at most
    /// `traffic.drain_timeout`), so that every operation made due has its outcome counted. Returns
    /// whether the traffic thread finished in time.
    pub async fn stop(&self) -> bool {
        self.stop.cancel();
        let limit = self.drain_timeout + Duration::from_secs(1);
        tokio::time::timeout(limit, self.stopped.cancelled())
            .await
            .is_ok()
    }

    /// Whether the statements are prepared (the database has answered at least once).
    pub fn is_prepared(&self) -> bool {
        self.shared.prepared().is_some()
    }
}
