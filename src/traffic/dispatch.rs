//! Due operations turned into requests: the [`Dispatcher`] builds each operation's messages, takes
//! an in-flight slot of its backend (or counts the operation `dropped`: never a queue) and
//! [`launch`]es the request, whose outcome and latencies are recorded when it returns.

use super::pacer::{Dispatch, Op};
use super::redis_ops;
use super::scylla_ops::{self, Statements};
use super::slots::Slots;
use crate::chat::cache::RedisSide;
use crate::chat::workload::{Message, Workload};
use crate::config::Config;
use crate::measure::health::Heartbeat;
use crate::measure::record::{LagRecorder, OpRecorder, Outcome};
use crate::measure::sharded::TrafficMetrics;
use crate::store::RedisBackend;
use scylla::client::session::Session;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// The session with the traffic's statements prepared on it.
pub struct Prepared {
    /// The shared session.
    pub session: Arc<Session>,
    /// The statements.
    pub statements: Statements,
}

/// What the spawned requests share.
pub struct Shared {
    pub(super) prepared: RwLock<Option<Arc<Prepared>>>,
    pub(super) redis_side: RedisSide,
    pub(super) redis_timeout: Duration,
    pub(super) scylla_slots: Slots,
    pub(super) redis_slots: Slots,
    pub(super) scylla_write: Arc<OpRecorder>,
    pub(super) scylla_read: Arc<OpRecorder>,
    pub(super) redis_write: Arc<OpRecorder>,
    /// How late requests were sent.
    pub(super) schedule_lag: Arc<LagRecorder>,
}

impl Shared {
    /// One shard's state: its slots (`cap` per backend) and recorders over its metric handles.
    pub(super) fn new(cfg: &Config, metrics: &TrafficMetrics, cap: u32) -> Self {
        let (scylla_deadline, redis_deadline) = (
            cfg.scylla.request_timeout.get(),
            cfg.redis.request_timeout.get(),
        );
        let recorder =
            |backend, op, deadline| Arc::new(OpRecorder::new(metrics, backend, op, deadline));
        Self {
            prepared: RwLock::new(None),
            redis_side: RedisSide::of(&cfg.redis),
            redis_timeout: redis_deadline,
            scylla_slots: Slots::new(cap, metrics.in_flight.with_label_values(&["scylla"])),
            redis_slots: Slots::new(cap, metrics.in_flight.with_label_values(&["redis"])),
            scylla_write: recorder("scylla", "write", scylla_deadline),
            scylla_read: recorder("scylla", "read", scylla_deadline),
            redis_write: recorder("redis", "write", redis_deadline),
            schedule_lag: Arc::new(LagRecorder::new(metrics.schedule_lag.clone())),
        }
    }

    pub(super) fn prepared(&self) -> Option<Arc<Prepared>> {
        self.prepared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn set_prepared(&self, p: Arc<Prepared>) {
        *self.prepared.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }
}

/// Lives on the traffic thread: turns due operations into spawned requests.
pub struct Dispatcher {
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) shared: Arc<Shared>,
    pub(super) redis: RedisBackend,
    pub(super) workload: Workload,
    pub(super) batch_size: usize,
    pub(super) heartbeat: Heartbeat,
    pub(super) last_beat: Option<Instant>,
    /// The Redis side of the writes due in this wake-up, sent together at its end.
    pub(super) redis_due: Vec<(Arc<Vec<Message>>, Instant)>,
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
                    self.shared.redis_write.due(messages.len() as u64);
                    self.redis_due.push((messages, scheduled));
                }
            }
            Op::Read => {
                let stream = self.workload.pick_stream();
                self.read_scylla(stream, scheduled);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        if !self.redis_due.is_empty() {
            self.write_redis();
        }
        if self.last_beat.is_none_or(|t| now - t >= BEAT_EVERY) {
            self.heartbeat.beat();
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
            // Boxed: the driver's future is ~4 KiB, and a task that holds it inline is copied
            // whole each time it is moved into place (a tenth of the CPU at 20,000/s).
            let result = Box::pin(scylla_ops::write(
                &prepared.session,
                &prepared.statements,
                &messages,
            ))
            .await;
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
            [(n, scheduled)],
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
            let result = Box::pin(scylla_ops::read_recent(
                &prepared.session,
                &prepared.statements,
                stream,
            ))
            .await;
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
            [(1, scheduled)],
            request,
        );
    }

    /// One pipeline with the Redis commands of every write due in this wake-up; each message
    /// is still one operation, timed from its own scheduled start.
    fn write_redis(&mut self) {
        let due = std::mem::take(&mut self.redis_due);
        let ops: Vec<(u64, Instant)> = due.iter().map(|(m, s)| (m.len() as u64, *s)).collect();
        let shared = self.shared.clone();
        let mut conn = self.redis.connection();
        let request = async move {
            let mut pipe = redis::pipe();
            for (messages, _) in &due {
                shared.redis_side.append(&mut pipe, messages);
            }
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
            ops,
            request,
        );
    }
}

/// Start `request` in a slot of `slots`, or count its operations `dropped` (observed at their
/// deadline) when every slot is taken. The request carries `ops`: `(n, scheduled)` for each group
/// of `n` operations scheduled at `scheduled`. It returns its outcome and the instant it was
/// actually sent; each group's latency is recorded from its own scheduled instant and from that
/// send, and `sent - scheduled` is its schedule lag.
pub fn launch<R, O>(
    runtime: &tokio::runtime::Handle,
    slots: &Slots,
    recorder: &Arc<OpRecorder>,
    lag: &Arc<LagRecorder>,
    ops: O,
    request: R,
) where
    R: Future<Output = (Outcome, Instant)> + Send + 'static,
    O: AsRef<[(u64, Instant)]> + Send + 'static,
{
    let Some(slot) = slots.try_take() else {
        let n = ops.as_ref().iter().map(|&(n, _)| n).sum();
        recorder.not_sent(Outcome::Dropped, n);
        return;
    };
    let (recorder, lag) = (recorder.clone(), lag.clone());
    runtime.spawn(async move {
        let (outcome, sent) = request.await;
        let done = Instant::now();
        for &(n, scheduled) in ops.as_ref() {
            lag.sent(scheduled, sent);
            recorder.completed(outcome, n, scheduled, sent, done);
        }
        drop(slot);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::workload::Workload;
    use crate::measure::metrics::Metrics;
    use crate::traffic::pacer::{Pacer, TargetRates};
    use tokio_util::sync::CancellationToken;

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
                [(1, scheduled)],
                request,
            );
        }
    }

    fn fake(metrics: &TrafficMetrics, cap: u32, start: Instant, stall: Duration) -> FakeBackend {
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
        let metrics = Metrics::new("t").traffic_shard();
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
        let metrics = Metrics::new("t").traffic_shard();
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

    /// The Redis side of every write due in one wake-up goes out as one pipeline in one in-flight
    /// slot: with a single slot, three writes due together are three operations of one request
    /// (none dropped), each counted and observed once. Redis here is a closed port, so the
    /// request fails fast, and the database has no session: both are counted, not lost.
    #[tokio::test]
    async fn one_wake_up_sends_its_writes_redis_side_as_one_pipeline() {
        let mut cfg = Config::default();
        cfg.redis.url = "redis://127.0.0.1:1".into();
        cfg.redis.cache = true;
        let metrics = Metrics::new("t");
        let shared = Arc::new(Shared::new(&cfg, &metrics.traffic_shard(), 1));
        let mut d = Dispatcher {
            runtime: tokio::runtime::Handle::current(),
            shared: shared.clone(),
            redis: RedisBackend::new(&cfg.redis).unwrap(),
            workload: Workload::new(&cfg.traffic, &cfg.instance, 1),
            batch_size: 1,
            heartbeat: crate::measure::health::Health::default().pacer(),
            last_beat: None,
            redis_due: Vec::new(),
        };
        let now = Instant::now();
        for k in 0..3 {
            d.dispatch(Op::Write, now - Duration::from_micros(30 * k), now);
        }
        d.tick(now);
        assert!(d.redis_due.is_empty(), "sent at the end of the wake-up");
        let redis = &shared.redis_write;
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.snapshot().total() < 3 {
            assert!(Instant::now() < deadline, "{:?}", redis.snapshot());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = redis.snapshot();
        assert_eq!(s.due, 3);
        assert_eq!(s.get(Outcome::Dropped), 0, "one request, one slot: {s:?}");
        assert_eq!(s.total(), 3, "one operation per message: {s:?}");
        assert_eq!(s.buckets.count, 3);
        let db = shared.scylla_write.snapshot();
        assert_eq!((db.due, db.get(Outcome::Unavailable)), (3, 3));
    }
}
