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
//! The traffic runs on `traffic.threads` threads of its own (`chatload-traffic-N`, the shards), each
//! with a single-threaded tokio runtime, its own ScyllaDB session and its own Redis connection, and
//! its share of the one timetable: operation `k` goes to shard `k mod N` ([`pacer::Shard`]), so the
//! shards together start exactly the configured rate, through rate changes too. The thread that
//! keeps a shard's timetable is the one that sends its requests and reads their replies, so an
//! operation costs no hand-off between threads, and HTTP scrapes or probes on the main runtime never
//! delay a scheduled start. Each shard records into its own recorders and metric handles, summed
//! at scrape and snapshot time ([`crate::measure::sharded`]): nothing on the per-operation path is
//! shared between threads.
//! The pacer hands every due operation to a [`dispatch::Dispatcher`] that builds its messages, takes
//! an in-flight slot of the backend (or counts the operation `dropped` when there is none: never a
//! queue) and spawns the request; the Redis side of every write due in one wake-up goes out as one
//! pipeline. ScyllaDB and Redis have a slot pool each, so a slow or dead Redis never holds back the
//! database writes, and the other way round.
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

use crate::chat::workload::Workload;
use crate::config::Config;
use crate::measure::health::Health;
use crate::measure::metrics::Metrics;
use crate::measure::record::{LagRecorder, OpRecorder, merged_begin_window, merged_snapshot};
use crate::measure::snapshot::TrafficSnapshot;
use dispatch::Shared;
use engine::{Engine, op_rate, shard_count};
use pacer::{Op, Shard, TargetRates};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info};

/// The running traffic.
pub struct Traffic {
    rates: Arc<TargetRates>,
    /// Each shard's state.
    shards: Vec<Arc<Shared>>,
    metrics: Arc<Metrics>,
    /// Stops the pacers (a child of the daemon's shutdown token).
    stop: CancellationToken,
    /// Cancelled once every traffic thread stopped and drained.
    stopped: CancellationToken,
    drain_timeout: Duration,
}

/// Tasks (request completions) a traffic thread runs before it looks at its timer and sockets
/// again: the pacer is the runtime's main future, polled between such rounds, so this bounds how
/// long a burst of replies can hold back a due operation (tokio's default is 61).
const EVENT_INTERVAL: u32 = 8;

/// The seed of shard `index`'s workload: the configured seed for the first, so that one shard
/// sends what one thread always sent; distinct streams of randomness for the others.
fn shard_seed(seed: u64, index: u32) -> u64 {
    seed ^ u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Shard `index`'s share of `cap` in-flight slots per backend (at least one).
fn shard_cap(cap: u32, shard: Shard) -> u32 {
    (cap / shard.count + u32::from(shard.index < cap % shard.count)).max(1)
}

impl Traffic {
    /// Start the traffic threads; everything stops when `shutdown` is cancelled, after in-flight
    /// requests had up to `traffic.drain_timeout` to finish. The database need not be reachable:
    /// until it is, writes and reads are counted `unavailable`.
    pub fn start(
        cfg: &Config,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let count = shard_count(cfg);
        let seed = cfg.traffic.seed.unwrap_or_else(rand::random);
        let rates = Arc::new(TargetRates::new(
            op_rate(cfg, Op::Write),
            op_rate(cfg, Op::Read),
        ));
        let stop = shutdown.child_token();
        let stopped = CancellationToken::new();
        let running = Arc::new(AtomicUsize::new(count as usize));
        let together = Arc::new(engine::Together::new(count as usize));
        let mut shards = Vec::new();
        let mut threads = Vec::new();
        for index in 0..count {
            let shard = Shard { index, count };
            let shared = Arc::new(Shared::new(
                cfg,
                &metrics.traffic_shard(),
                shard_cap(cfg.traffic.max_in_flight, shard),
            ));
            let workload = Workload::new(&cfg.traffic, &cfg.instance, shard_seed(seed, index));
            if index == 0 {
                info!(
                    seed,
                    threads = count,
                    streams = workload.streams().len(),
                    write_rate = crate::config::instance_rate(cfg.traffic.write_rate, cfg),
                    read_rate = crate::config::instance_rate(cfg.traffic.read_rate, cfg),
                    instance = cfg.instance.index,
                    instances = cfg.instance.count,
                    "traffic starting"
                );
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .event_interval(EVENT_INTERVAL)
                .build()?;
            let engine = Engine {
                cfg: cfg.clone(),
                shared: shared.clone(),
                workload,
                rates: rates.clone(),
                health: health.clone(),
                shutdown: stop.clone(),
                shard,
                together: together.clone(),
            };
            let (running, stopped) = (running.clone(), stopped.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("chatload-traffic-{index}"))
                    .spawn(move || {
                        // Everything the traffic logs carries which share of the traffic it is.
                        let span = tracing::info_span!(
                            "traffic",
                            instance = engine.cfg.instance.index,
                            shard = index
                        );
                        runtime.block_on(engine.run().instrument(span));
                        if running.fetch_sub(1, Ordering::AcqRel) == 1 {
                            stopped.cancel();
                        }
                    })?,
            );
            shards.push(shared);
        }
        let traffic = Self {
            rates,
            shards,
            metrics,
            stop,
            stopped,
            drain_timeout: cfg.traffic.drain_timeout.get(),
        };
        traffic.publish_target_rates(cfg);
        tracker.spawn(async move {
            shutdown.cancelled().await;
            let _ = tokio::task::spawn_blocking(move || {
                for thread in threads {
                    let _ = thread.join();
                }
            })
            .await;
        });
        Ok(traffic)
    }

    /// How many traffic threads (shards) run.
    pub fn threads(&self) -> usize {
        self.shards.len()
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

    fn recorders(&self, pick: fn(&Shared) -> &OpRecorder) -> Vec<&OpRecorder> {
        self.shards.iter().map(|s| pick(s)).collect()
    }

    fn lags(&self) -> Vec<&LagRecorder> {
        self.shards.iter().map(|s| &*s.schedule_lag).collect()
    }

    /// Counts and latency percentiles of every (backend, op) so far, over all shards.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            scylla_write: merged_snapshot(&self.recorders(|s| &s.scylla_write)),
            scylla_read: merged_snapshot(&self.recorders(|s| &s.scylla_read)),
            redis_write: merged_snapshot(&self.recorders(|s| &s.redis_write)),
            schedule_lag: LagRecorder::merged_percentiles(&self.lags()),
        }
    }

    /// Start a measuring window (the end of a warm-up): the counts so far, with the HDR latencies
    /// forgotten at the same instant (see [`OpRecorder::begin_window`]).
    pub fn begin_window(&self) -> TrafficSnapshot {
        for lag in self.lags() {
            lag.reset();
        }
        TrafficSnapshot {
            scylla_write: merged_begin_window(&self.recorders(|s| &s.scylla_write)),
            scylla_read: merged_begin_window(&self.recorders(|s| &s.scylla_read)),
            redis_write: merged_begin_window(&self.recorders(|s| &s.redis_write)),
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

    /// Whether every shard's statements are prepared (the database has answered each).
    pub fn is_prepared(&self) -> bool {
        self.shards.iter().all(|s| s.prepared().is_some())
    }
}
