//! The open-loop pacer: operations start on a fixed timetable, whatever the replies do.
//!
//! Each kind of operation has a [`Timetable`]: the `k`-th operation is due at `epoch + k / rate`,
//! computed from the epoch every time (never by adding intervals), so there is no drift however long it
//! runs. A rate change re-anchors the timetable at the next due time, so it neither bursts nor pauses.
//!
//! [`Pacer`] owns the timetables and hands every due operation, with its *scheduled* instant, to a
//! [`Dispatch`]; latency is later measured from that instant (coordinated-omission-correct).
//! [`Pacer::run`] waits for each due time with a [`Sleeper`]: in production the timerfd of
//! [`super::timer`] (nanosecond resolution, woken by the same epoll that drives the requests' I/O;
//! tokio's own timer wheel has 1 ms resolution, too coarse for a 5 ms SLO), in tests [`TokioSleeper`]
//! under tokio's paused clock. One wake-up dispatches every operation that is due: no timer exists
//! per operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The kinds of operation the pacer schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A message write (one message, or one batch in batch mode).
    Write,
    /// A "newest 50 of a stream" read.
    Read,
}

impl Op {
    /// Every kind, in a fixed order.
    pub const ALL: [Op; 2] = [Op::Write, Op::Read];

    /// The `op` label value.
    pub fn label(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Read => "read",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// When each operation of one kind is due.
#[derive(Debug, Clone)]
pub struct Timetable {
    rate: f64,
    epoch: Instant,
    next: u64,
}

impl Timetable {
    /// `rate` operations per second from `epoch` on (the first is due at `epoch`); 0 means none.
    pub fn new(rate: f64, epoch: Instant) -> Self {
        Self {
            rate: sanitize(rate),
            epoch,
            next: 0,
        }
    }

    /// The configured rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// When operation `k` (counted from the epoch) is due.
    pub fn at(&self, k: u64) -> Instant {
        // k / rate in whole nanoseconds, from the epoch: exact for any run shorter than ~100 days.
        let nanos = (k as f64 * 1e9 / self.rate).round() as u64;
        self.epoch + Duration::from_nanos(nanos)
    }

    /// When the next operation is due; `None` at rate 0.
    pub fn next_due(&self) -> Option<Instant> {
        (self.rate > 0.0).then(|| self.at(self.next))
    }

    /// Take the next operation if it is due at or before `now`, returning its scheduled instant.
    pub fn pop_due(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next_due()?;
        if due <= now {
            self.next += 1;
            Some(due)
        } else {
            None
        }
    }

    /// Change the rate from the next due operation on (or from `now`, at rate 0 before).
    pub fn set_rate(&mut self, rate: f64, now: Instant) {
        let rate = sanitize(rate);
        if rate == self.rate {
            return;
        }
        let anchor = self.next_due().unwrap_or(now);
        self.epoch = anchor;
        self.next = 0;
        self.rate = rate;
    }
}

fn sanitize(rate: f64) -> f64 {
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        0.0
    }
}

/// Target rates that can change at run time (a config reload), read by the pacer on every wake-up.
#[derive(Debug, Default)]
pub struct TargetRates {
    bits: [AtomicU64; 2],
}

impl TargetRates {
    /// Rates per op kind.
    pub fn new(write: f64, read: f64) -> Self {
        let r = Self::default();
        r.set(Op::Write, write);
        r.set(Op::Read, read);
        r
    }

    /// Set the rate of `op`.
    pub fn set(&self, op: Op, rate: f64) {
        self.bits[op.index()].store(sanitize(rate).to_bits(), Ordering::Relaxed);
    }

    /// The rate of `op`.
    pub fn get(&self, op: Op) -> f64 {
        f64::from_bits(self.bits[op.index()].load(Ordering::Relaxed))
    }
}

/// Receives every due operation.
pub trait Dispatch {
    /// Start `op`, scheduled at `scheduled`; called at `now` (`now - scheduled` is the pacer's lag).
    fn dispatch(&mut self, op: Op, scheduled: Instant, now: Instant);

    /// Called once per wake-up, after the due operations were dispatched (a heartbeat, say).
    fn tick(&mut self, _now: Instant) {}
}

/// Longest single sleep, so that rate changes and shutdown are noticed promptly even at 0.1/s.
pub const MAX_SLEEP: Duration = Duration::from_millis(50);

/// The timetables of all op kinds and the dispatcher they feed.
pub struct Pacer<D: Dispatch> {
    tables: [Timetable; 2],
    rates: Arc<TargetRates>,
    dispatch: D,
    wake_interval: Duration,
}

impl<D: Dispatch> Pacer<D> {
    /// Timetables starting at `epoch` with the current `rates`.
    pub fn new(rates: Arc<TargetRates>, epoch: Instant, dispatch: D) -> Self {
        let tables = Op::ALL.map(|op| Timetable::new(rates.get(op), epoch));
        Self {
            tables,
            rates,
            dispatch,
            wake_interval: Duration::ZERO,
        }
    }

    /// Wake at most once per `interval`: each wake-up dispatches everything due since the last
    /// one, each operation with its own scheduled instant (so its lateness is measured).
    pub fn with_wake_interval(mut self, interval: Duration) -> Self {
        self.wake_interval = interval.min(MAX_SLEEP);
        self
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &D {
        &self.dispatch
    }

    /// Apply rate changes, dispatch everything due at `now`, and return when the next operation is due.
    pub fn step(&mut self, now: Instant) -> Option<Instant> {
        for op in Op::ALL {
            let table = &mut self.tables[op.index()];
            table.set_rate(self.rates.get(op), now);
            while let Some(scheduled) = table.pop_due(now) {
                self.dispatch.dispatch(op, scheduled, now);
            }
        }
        self.dispatch.tick(now);
        self.tables.iter().filter_map(Timetable::next_due).min()
    }

    /// Drive the pacer until `shutdown`, waiting for each due time with `sleeper`.
    pub async fn run<S: Sleeper>(mut self, sleeper: &mut S, shutdown: CancellationToken) -> D {
        loop {
            let now = Instant::now();
            let next = self
                .step(now)
                .unwrap_or(now + MAX_SLEEP)
                .min(now + MAX_SLEEP)
                .max(now + self.wake_interval);
            tokio::select! {
                _ = shutdown.cancelled() => return self.dispatch,
                _ = sleeper.sleep_until(next) => {}
            }
        }
    }
}

impl<D: Dispatch + Send + 'static> Pacer<D> {
    /// [`Pacer::run`] with tokio's timer (tests under a paused clock).
    pub async fn run_with_tokio(self, shutdown: CancellationToken) -> D {
        self.run(&mut TokioSleeper, shutdown).await
    }
}

/// How the pacer waits for the next due time.
pub trait Sleeper {
    /// Return at `deadline` (or as soon after it as the sleeper can).
    fn sleep_until(&mut self, deadline: Instant) -> impl Future<Output = ()>;
}

/// tokio's timer: 1 ms resolution. For tests under a paused clock, and where no timerfd exists.
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    async fn sleep_until(&mut self, deadline: Instant) {
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timetable_has_no_drift_over_100k_intervals() {
        let epoch = Instant::now();
        for rate in [1.0, 3.0, 7.0, 1000.0, 33_333.0, 200_000.0] {
            let mut t = Timetable::new(rate, epoch);
            let far = epoch + Duration::from_secs(100_000 * 1_000_000);
            for _ in 0..100_000 {
                t.pop_due(far).unwrap();
            }
            let expected = Duration::from_secs_f64(100_000.0 / rate);
            let actual = t.next_due().unwrap() - epoch;
            let error = actual.abs_diff(expected);
            assert!(
                error <= Duration::from_nanos(1),
                "rate {rate}: {actual:?} vs {expected:?}"
            );
        }
    }

    #[test]
    fn labels_and_rates_read_back() {
        assert_eq!(Op::Write.label(), "write");
        assert_eq!(Op::Read.label(), "read");
        let epoch = Instant::now();
        assert_eq!(Timetable::new(250.0, epoch).rate(), 250.0);
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0] {
            let t = Timetable::new(bad, epoch);
            assert_eq!(t.rate(), 0.0, "{bad}");
            assert_eq!(t.next_due(), None, "{bad}: nothing is due at rate 0");
        }
        let rates = TargetRates::new(3.0, 4.0);
        assert_eq!((rates.get(Op::Write), rates.get(Op::Read)), (3.0, 4.0));
    }

    #[test]
    fn rate_change_re_anchors_without_burst_or_gap() {
        let epoch = Instant::now();
        let mut t = Timetable::new(10.0, epoch);
        let now = epoch + Duration::from_millis(250);
        let mut due = vec![];
        while let Some(s) = t.pop_due(now) {
            due.push(s);
        }
        assert_eq!(due.len(), 3); // 0, 100, 200 ms
        t.set_rate(100.0, now);
        // The next op stays at 300 ms (no burst), then every 10 ms.
        assert_eq!(t.next_due().unwrap() - epoch, Duration::from_millis(300));
        let later = epoch + Duration::from_millis(350);
        let mut n = 0;
        while t.pop_due(later).is_some() {
            n += 1;
        }
        assert_eq!(n, 6); // 300, 310, …, 350
        t.set_rate(0.0, later);
        assert_eq!(t.next_due(), None);
        t.set_rate(1.0, later);
        assert_eq!(t.next_due(), Some(later));
    }

    /// Counts the operations scheduled before `horizon`, and the wake-ups.
    struct Count {
        horizon: Instant,
        counts: [u64; 2],
        max_lag: Duration,
        wakes: u64,
    }

    impl Count {
        fn until(horizon: Instant) -> Self {
            Self {
                horizon,
                counts: [0; 2],
                max_lag: Duration::ZERO,
                wakes: 0,
            }
        }
    }

    impl Dispatch for Count {
        fn dispatch(&mut self, op: Op, scheduled: Instant, now: Instant) {
            assert!(now >= scheduled, "an operation started before it was due");
            if scheduled < self.horizon {
                self.counts[op.index()] += 1;
                self.max_lag = self.max_lag.max(now - scheduled);
            }
        }

        fn tick(&mut self, now: Instant) {
            if now < self.horizon {
                self.wakes += 1;
            }
        }
    }

    /// With a wake interval of 5 ms, 1000 writes/s take about 200 wake-ups a second instead of
    /// 1000; every operation is still dispatched, none early, each at most one interval (and the
    /// timer's rounding) late, measured from its own scheduled instant.
    #[tokio::test(start_paused = true)]
    async fn a_wake_interval_batches_wake_ups_and_keeps_every_operation() {
        for (interval, max_wakes) in [(Duration::ZERO, 1001), (Duration::from_millis(5), 201)] {
            let rates = Arc::new(TargetRates::new(1000.0, 0.0));
            let token = CancellationToken::new();
            let start = Instant::now();
            let horizon = start + Duration::from_secs(1);
            let pacer =
                Pacer::new(rates, start, Count::until(horizon)).with_wake_interval(interval);
            let run = tokio::spawn(pacer.run_with_tokio(token.clone()));
            tokio::time::sleep_until(horizon + Duration::from_millis(20)).await;
            token.cancel();
            let d = run.await.unwrap();
            assert_eq!(d.counts, [1000, 0], "interval {interval:?}");
            assert!(
                d.wakes <= max_wakes && d.wakes >= max_wakes * 9 / 10,
                "interval {interval:?}: {} wake-ups",
                d.wakes
            );
            assert!(
                d.max_lag <= interval + Duration::from_millis(1),
                "interval {interval:?}: lag {:?}",
                d.max_lag
            );
            // The operations waiting for a wake-up keep their own scheduled instants: their
            // lateness is there to measure, not lost.
            assert!(
                d.max_lag >= interval.saturating_sub(Duration::from_millis(1)),
                "interval {interval:?}: lag {:?}",
                d.max_lag
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn exact_counts_at_fractional_rates() {
        for (write, read, secs, expect_w, expect_r) in [
            (0.1, 0.0, 95, 10, 0), // 0, 10, …, 90 s
            (2.5, 0.5, 10, 25, 5), // 0, 0.4, … 9.6 s; 0, 2, … 8 s
            (1000.0, 333.3, 3, 3000, 1000),
        ] {
            let rates = Arc::new(TargetRates::new(write, read));
            let token = CancellationToken::new();
            let start = Instant::now();
            let horizon = start + Duration::from_secs(secs);
            let pacer = Pacer::new(rates, start, Count::until(horizon));
            let run = tokio::spawn(pacer.run_with_tokio(token.clone()));
            tokio::time::sleep_until(horizon + Duration::from_millis(10)).await;
            token.cancel();
            let d = run.await.unwrap();
            assert_eq!(
                d.counts,
                [expect_w, expect_r],
                "write {write}/s, read {read}/s over {secs}s"
            );
            // tokio's timer wheel rounds deadlines up to whole milliseconds.
            assert!(d.max_lag <= Duration::from_millis(1), "lag {:?}", d.max_lag);
        }
    }

    /// Wakes (ticks) per step, with nothing due.
    struct Ticks(u64);

    impl Dispatch for Ticks {
        fn dispatch(&mut self, _op: Op, _scheduled: Instant, _now: Instant) {}

        fn tick(&mut self, _now: Instant) {
            self.0 += 1;
        }
    }

    /// At rate 0 the pacer still wakes every `MAX_SLEEP` (to notice a reload), and no more often.
    #[tokio::test(start_paused = true)]
    async fn an_idle_pacer_wakes_every_max_sleep() {
        let token = CancellationToken::new();
        let start = Instant::now();
        let pacer = Pacer::new(Arc::new(TargetRates::new(0.0, 0.0)), start, Ticks(0));
        let run = tokio::spawn(pacer.run_with_tokio(token.clone()));
        tokio::time::sleep_until(start + Duration::from_millis(1010)).await;
        token.cancel();
        let ticks = run.await.unwrap().0;
        assert_eq!(ticks, 21, "one wake at start, then every 50 ms for 1 s");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_changes_apply_at_run_time() {
        let rates = Arc::new(TargetRates::new(10.0, 0.0));
        let token = CancellationToken::new();
        let start = Instant::now();
        let horizon = start + Duration::from_secs(2);
        let pacer = Pacer::new(rates.clone(), start, Count::until(horizon));
        let run = tokio::spawn(pacer.run_with_tokio(token.clone()));
        tokio::time::sleep_until(start + Duration::from_millis(999)).await;
        rates.set(Op::Write, 100.0);
        rates.set(Op::Read, 20.0);
        tokio::time::sleep_until(horizon + Duration::from_millis(10)).await;
        token.cancel();
        let d = run.await.unwrap();
        // 10 in the first second, then 100 writes from 1.0 s (the re-anchored next op) to 1.99 s.
        assert_eq!(d.counts[Op::Write.index()], 10 + 100);
        // Reads start within one pacer wake-up (≤ MAX_SLEEP) of the change at 0.999 s.
        let reads = d.counts[Op::Read.index()];
        assert!((19..=20).contains(&reads), "{reads}");
    }
}
