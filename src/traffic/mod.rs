//! Steady synthetic chat traffic: writes and reads at fixed rates into ScyllaDB, plus the Redis
//! cache and fan-out of each message.
//!
//! - [`pacer`]: the open-loop timetable and the dedicated thread that keeps it;
//! - [`scylla_ops`], [`redis_ops`]: the requests themselves and their error sorting (the messages
//!   and their CQL and Redis layout are the chat's: [`crate::chat`]);
//! - [`crate::measure::record`] counts each operation and observes its latency;
//! - [`timer`]: the timerfd that wakes the pacer with microsecond precision.
//!
//! The traffic runs on a thread of its own (`chatload-traffic`) with a single-threaded tokio runtime,
//! its own ScyllaDB session and its own Redis connection: the thread that keeps the timetable is the
//! one that sends the requests and reads the replies, so an operation costs no hand-off between
//! threads, and HTTP scrapes or probes on the main runtime never delay a scheduled start.
//! The pacer hands every due operation to a [`Dispatcher`] that builds its messages, takes an
//! in-flight slot of the backend (or counts the operation `dropped` when there is none: never a queue)
//! and spawns the request. ScyllaDB and Redis have a slot pool each, so a slow or dead Redis never
//! holds back the database writes, and the other way round.
//!
//! Operations are counted per *message*: a batch of 10 that succeeds adds 10 to
//! `chatload_operations_total{outcome="ok"}` and 10 observations to the latency histograms, so a
//! histogram's count always equals the operations counted (see [`crate::measure::record`]).

pub mod pacer;
pub mod redis_ops;
pub mod scylla_ops;
pub mod timer;

use crate::chat::cache::RedisSide;
use crate::chat::workload::{Message, Workload};
use crate::config::{Config, WriteMode};
use crate::measure::health::Health;
use crate::measure::metrics::Metrics;
use crate::measure::record::{LagRecorder, OpRecorder, Outcome};
use crate::store::{Backoff, RedisBackend};
use pacer::{Dispatch, Op, Pacer, TargetRates, TokioSleeper};
use prometheus::IntGauge;
use scylla::client::session::Session;
use scylla_ops::Statements;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The session with the traffic's statements prepared on it.
pub struct Prepared {
    /// The shared session.
    pub session: Arc<Session>,
    /// The statements.
    pub statements: Statements,
}

/// A slot pool of one backend with its `chatload_in_flight` gauge.
pub struct Slots {
    semaphore: Arc<Semaphore>,
    capacity: u32,
    gauge: IntGauge,
}

/// An in-flight slot; returns itself and updates the gauge when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Slots {
    /// `capacity` slots, reported through `gauge`.
    pub fn new(capacity: u32, gauge: IntGauge) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            gauge,
        }
    }

    /// A slot, or `None` when `capacity` requests are already in flight.
    pub fn try_take(&self) -> Option<Slot> {
        let permit = self.semaphore.clone().try_acquire_owned().ok()?;
        self.gauge.inc();
        Some(Slot {
            _permit: permit,
            gauge: self.gauge.clone(),
        })
    }

    /// Wait until every slot is free again (all in-flight requests finished), at most `limit`.
    pub async fn drained(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.semaphore.acquire_many(self.capacity))
            .await
            .is_ok()
    }
}

/// What the spawned requests share.
pub struct Shared {
    prepared: RwLock<Option<Arc<Prepared>>>,
    redis_side: RedisSide,
    redis_timeout: Duration,
    scylla_slots: Slots,
    redis_slots: Slots,
    scylla_write: Arc<OpRecorder>,
    scylla_read: Arc<OpRecorder>,
    redis_write: Arc<OpRecorder>,
    /// How late requests were sent.
    schedule_lag: Arc<LagRecorder>,
}

impl Shared {
    fn prepared(&self) -> Option<Arc<Prepared>> {
        self.prepared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_prepared(&self, p: Arc<Prepared>) {
        *self.prepared.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }
}

/// Lives on the traffic thread: turns due operations into spawned requests.
pub struct Dispatcher {
    runtime: tokio::runtime::Handle,
    shared: Arc<Shared>,
    redis: RedisBackend,
    workload: Workload,
    batch_size: usize,
    health: Arc<Health>,
    last_beat: Option<Instant>,
}

/// How often the pacer thread proves it is alive to `/healthz`.
const BEAT_EVERY: Duration = Duration::from_millis(100);

impl Dispatch for Dispatcher {
    fn dispatch(&mut self, op: Op, scheduled: Instant, _now: Instant) {
        match op {
            Op::Write => {
                let messages = Arc::new(
                    self.workload
                        .messages(self.batch_size, crate::chat::now_ms()),
                );
                self.write_scylla(messages.clone(), scheduled);
                if self.shared.redis_side.enabled() {
                    self.write_redis(messages, scheduled);
                }
            }
            Op::Read => {
                let stream = self.workload.pick_stream();
                self.read_scylla(stream, scheduled);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        if self.last_beat.is_none_or(|t| now - t >= BEAT_EVERY) {
            self.health.beat();
            self.last_beat = Some(now);
        }
    }
}

impl Dispatcher {
    fn write_scylla(&self, messages: Arc<Vec<Message>>, scheduled: Instant) {
        let shared = self.shared.clone();
        let n = messages.len() as u64;
        shared.scylla_write.due(n);
        let Some(prepared) = shared.prepared() else {
            // No session (yet): the database is unavailable to us. Count, don't queue.
            shared.scylla_write.not_sent(Outcome::Unavailable, n);
            return;
        };
        let request = async move {
            let sent = Instant::now();
            let result =
                scylla_ops::write(&prepared.session, &prepared.statements, &messages).await;
            let outcome = result.map_or_else(
                |e| shared.scylla_write.failed(scylla_ops::classify(&e), &e),
                |()| Outcome::Ok,
            );
            (outcome, sent)
        };
        launch(
            &self.runtime,
            &self.shared.scylla_slots,
            &self.shared.scylla_write,
            &self.shared.schedule_lag,
            n,
            scheduled,
            request,
        );
    }

    fn read_scylla(&self, stream: uuid::Uuid, scheduled: Instant) {
        let shared = self.shared.clone();
        shared.scylla_read.due(1);
        let Some(prepared) = shared.prepared() else {
            shared.scylla_read.not_sent(Outcome::Unavailable, 1);
            return;
        };
        let request = async move {
            let sent = Instant::now();
            let result =
                scylla_ops::read_recent(&prepared.session, &prepared.statements, stream).await;
            let outcome = result.map_or_else(
                |e| shared.scylla_read.failed(scylla_ops::classify(&e), &e),
                |_| Outcome::Ok,
            );
            (outcome, sent)
        };
        launch(
            &self.runtime,
            &self.shared.scylla_slots,
            &self.shared.scylla_read,
            &self.shared.schedule_lag,
            1,
            scheduled,
            request,
        );
    }

    fn write_redis(&self, messages: Arc<Vec<Message>>, scheduled: Instant) {
        let shared = self.shared.clone();
        let mut conn = self.redis.connection();
        let n = messages.len() as u64;
        shared.redis_write.due(n);
        let request = async move {
            let pipe = shared.redis_side.pipeline(&messages);
            let sent = Instant::now();
            let result =
                tokio::time::timeout(shared.redis_timeout, pipe.query_async::<()>(&mut conn)).await;
            let outcome = match result {
                Ok(Ok(())) => Outcome::Ok,
                Ok(Err(e)) => shared.redis_write.failed(redis_ops::classify(&e), &e),
                Err(_) => shared
                    .redis_write
                    .failed(Outcome::Timeout, &"no reply within redis.request_timeout"),
            };
            (outcome, sent)
        };
        launch(
            &self.runtime,
            &self.shared.redis_slots,
            &self.shared.redis_write,
            &self.shared.schedule_lag,
            n,
            scheduled,
            request,
        );
    }
}

/// Start `request` (carrying `n` operations, scheduled at `scheduled`) in a slot of `slots`, or count
/// it `dropped` (observed at its deadline) when every slot is taken. The request returns its outcome
/// and the instant it was actually sent; its latency is recorded from both `scheduled` and that
/// instant, and `sent - scheduled` is the schedule lag.
pub fn launch<R>(
    runtime: &tokio::runtime::Handle,
    slots: &Slots,
    recorder: &Arc<OpRecorder>,
    lag: &Arc<LagRecorder>,
    n: u64,
    scheduled: Instant,
    request: R,
) where
    R: Future<Output = (Outcome, Instant)> + Send + 'static,
{
    let Some(slot) = slots.try_take() else {
        recorder.not_sent(Outcome::Dropped, n);
        return;
    };
    let (recorder, lag) = (recorder.clone(), lag.clone());
    runtime.spawn(async move {
        let (outcome, sent) = request.await;
        lag.sent(scheduled, sent);
        recorder.completed(outcome, n, scheduled, sent, Instant::now());
        drop(slot);
    });
}

/// Operations per second the pacer schedules for `op`: writes are batches in batch mode.
fn op_rate(cfg: &Config, op: Op) -> f64 {
    match op {
        Op::Write => {
            crate::config::instance_rate(cfg.traffic.write_rate, cfg) / batch_size(cfg) as f64
        }
        Op::Read => crate::config::instance_rate(cfg.traffic.read_rate, cfg),
    }
}

fn batch_size(cfg: &Config) -> usize {
    match cfg.traffic.write_mode {
        WriteMode::Single => 1,
        WriteMode::Batch => cfg.traffic.batch_size as usize,
    }
}

/// What every (backend, op) of the traffic did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TrafficSnapshot {
    /// Message writes to ScyllaDB.
    pub scylla_write: crate::measure::record::OpSnapshot,
    /// "Newest 50" reads from ScyllaDB.
    pub scylla_read: crate::measure::record::OpSnapshot,
    /// The Redis side of message writes.
    pub redis_write: crate::measure::record::OpSnapshot,
    /// How late requests were sent (at the send, per request).
    pub schedule_lag: crate::measure::stats::Percentiles,
}

impl TrafficSnapshot {
    /// Counts since `earlier` (percentiles are kept as they are).
    pub fn minus_counts(&self, earlier: &TrafficSnapshot) -> TrafficSnapshot {
        TrafficSnapshot {
            scylla_write: self.scylla_write.minus_counts(&earlier.scylla_write),
            scylla_read: self.scylla_read.minus_counts(&earlier.scylla_read),
            redis_write: self.redis_write.minus_counts(&earlier.redis_write),
            schedule_lag: self.schedule_lag,
        }
    }
}

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
                runtime.block_on(engine.run());
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

/// What the traffic thread runs.
struct Engine {
    cfg: Config,
    shared: Arc<Shared>,
    workload: Workload,
    rates: Arc<TargetRates>,
    health: Arc<Health>,
    shutdown: CancellationToken,
}

impl Engine {
    async fn run(self) {
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
            self.shutdown.clone(),
        ));
        let dispatcher = Dispatcher {
            runtime: tokio::runtime::Handle::current(),
            shared: self.shared.clone(),
            redis,
            workload: self.workload,
            batch_size: batch_size(&self.cfg),
            health: self.health,
            last_beat: None,
        };
        // A healthy start waits for the statements (at most scylla.connect_timeout), so that the
        // first operations are not counted unavailable just because the session was still opening.
        // A database that is down shows as `unavailable` from then on.
        let waited = Instant::now();
        while self.shared.prepared().is_none()
            && waited.elapsed() < self.cfg.scylla.connect_timeout.get()
        {
            dispatcher.health.beat();
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
        let pacer = Pacer::new(self.rates, Instant::now(), dispatcher);
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
async fn prepare_statements(shared: Arc<Shared>, cfg: Config, shutdown: CancellationToken) {
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
            crate::store::schema::guard(&s, &cfg.scylla).await?;
            if cfg.scylla.create_schema {
                let report = crate::store::schema::apply(&s, &cfg.scylla).await?;
                for d in &report.differences {
                    warn!(difference = %d, "the existing chat_messages table differs from chatload's; left unchanged");
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::metrics::Metrics;

    /// A dispatcher like the real one, whose request is a fake backend: one connection (a gate),
    /// 1 ms of service per request, except that the request scheduled at `stall_at` holds the
    /// connection for `stall`.
    struct FakeBackend {
        slots: Slots,
        recorder: Arc<OpRecorder>,
        lag: Arc<LagRecorder>,
        gate: Arc<tokio::sync::Mutex<()>>,
        stall_at: Instant,
        stall: Duration,
        dispatched: u64,
    }

    impl Dispatch for FakeBackend {
        fn dispatch(&mut self, _op: Op, scheduled: Instant, _now: Instant) {
            self.dispatched += 1;
            self.recorder.due(1);
            let gate = self.gate.clone();
            let hold = if scheduled == self.stall_at {
                self.stall
            } else {
                Duration::from_millis(1)
            };
            let request = async move {
                let _connection = gate.lock().await;
                let sent = Instant::now();
                tokio::time::sleep(hold).await;
                (Outcome::Ok, sent)
            };
            launch(
                &tokio::runtime::Handle::current(),
                &self.slots,
                &self.recorder,
                &self.lag,
                1,
                scheduled,
                request,
            );
        }
    }

    fn fake(metrics: &Metrics, cap: u32, start: Instant, stall: Duration) -> FakeBackend {
        FakeBackend {
            slots: Slots::new(cap, metrics.in_flight.with_label_values(&["scylla"])),
            recorder: Arc::new(OpRecorder::new(
                metrics,
                "scylla",
                "write",
                Duration::from_secs(2),
            )),
            lag: Arc::new(LagRecorder::new(metrics.schedule_lag.clone())),
            gate: Arc::new(tokio::sync::Mutex::new(())),
            stall_at: start + Duration::from_millis(100),
            stall,
            dispatched: 0,
        }
    }

    /// Observations at or below `bound` seconds.
    fn at_most(h: &prometheus::Histogram, bound: f64) -> u64 {
        let proto = prometheus::core::Collector::collect(h);
        let buckets = proto[0].get_metric()[0].get_histogram().get_bucket();
        buckets
            .iter()
            .find(|b| (b.upper_bound() - bound).abs() < 1e-12)
            .map(|b| b.cumulative_count())
            .expect("bound is a bucket")
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_shows_in_latency_from_the_schedule_not_in_service_time() {
        let metrics = Metrics::new("t");
        let start = Instant::now();
        let backend = fake(&metrics, 1000, start, Duration::from_millis(500));
        let recorder = backend.recorder.clone();
        let token = CancellationToken::new();
        // 100 writes/s for 1 s; the one at 100 ms holds the only connection for 500 ms.
        let pacer = Pacer::new(Arc::new(TargetRates::new(100.0, 0.0)), start, backend);
        let run = tokio::spawn(pacer.run_with_tokio(token.clone()));
        tokio::time::sleep_until(start + Duration::from_millis(995)).await;
        token.cancel();
        run.await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await; // let the queue behind the stall drain

        assert_eq!(recorder.total(Outcome::Ok), 100);
        let (duration, service) = recorder.histograms();
        // Service time: every request but the stalled one took 1 ms once it had the connection.
        assert_eq!(at_most(service, 0.0025), 99);
        // From the scheduled start, 56 requests show the stall: the stalled one (at 100 ms), the 49
        // scheduled during it (110..590 ms), and the 6 (600..650 ms) that queue behind that backlog
        // while it drains at 1 ms each until 654 ms.
        let waited = 100 - at_most(duration, 0.0025);
        assert_eq!(
            waited, 56,
            "requests whose latency from the schedule shows the stall"
        );
        assert!(
            100 - at_most(duration, 0.25) >= 20,
            "the early ones waited > 250 ms"
        );
        // A closed-loop tool would have seen one slow request; the mean here is honest.
        let mean = duration.get_sample_sum() / 100.0;
        assert!(mean > 0.1, "mean latency from schedule {mean}");
        assert!(service.get_sample_sum() / 100.0 < 0.007);
    }

    #[tokio::test(start_paused = true)]
    async fn the_in_flight_cap_turns_into_drops_not_a_queue() {
        let metrics = Metrics::new("t");
        let start = Instant::now();
        // Every request after the stalled one queues behind it; only 5 may be in flight.
        let backend = fake(&metrics, 5, start, Duration::from_secs(60));
        let recorder = backend.recorder.clone();
        let in_flight = metrics.in_flight.with_label_values(&["scylla"]);
        let token = CancellationToken::new();
        let pacer = Pacer::new(Arc::new(TargetRates::new(1000.0, 0.0)), start, backend);
        let run = tokio::spawn(pacer.run_with_tokio(token.clone()));
        tokio::time::sleep_until(start + Duration::from_millis(2000)).await;
        assert_eq!(in_flight.get(), 5, "in flight never exceeds the cap");
        token.cancel();
        let backend = run.await.unwrap();
        // ~2000 scheduled (the one due at the very stop instant may or may not start): ~100
        // completed before the stall, 5 stuck in flight, the rest dropped.
        let ok = recorder.total(Outcome::Ok);
        let dropped = recorder.total(Outcome::Dropped);
        assert!((99..=101).contains(&ok), "{ok}");
        assert!(
            (2000..=2001).contains(&backend.dispatched),
            "{}",
            backend.dispatched
        );
        assert_eq!(
            ok + 5 + dropped,
            backend.dispatched,
            "every scheduled operation is accounted for"
        );
        let snap = recorder.snapshot();
        assert_eq!(snap.due, backend.dispatched);
        assert_eq!(
            snap.buckets.count,
            ok + dropped,
            "one observation per counted operation"
        );
        assert_eq!(
            snap.buckets.above(1.0),
            Some(dropped),
            "every drop is observed at its 2 s deadline, slower than any SLO"
        );
        assert!(dropped > 1800, "{dropped}");
    }
}
