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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

/// A stretch of one kind's timetable at one rate: its `j`-th operation (j = 0, 1, …) is due at
/// `anchor + j / rate`, computed from the anchor every time (never by adding intervals, so there is
/// no drift however long it runs), and has the global number `base + j`. A rate change ends a
/// segment and starts the next at the old timetable's next due time, so it neither bursts nor
/// pauses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// When operation `base` is due.
    pub anchor: Instant,
    /// Operations per second; 0 means none.
    pub rate: f64,
    /// The global number of the segment's first operation.
    pub base: u64,
}

impl Segment {
    /// When the segment's `j`-th operation is due.
    pub fn at(&self, j: u64) -> Instant {
        // j / rate in whole nanoseconds, from the anchor: exact for any run shorter than ~100 days.
        let nanos = (j as f64 * 1e9 / self.rate).round() as u64;
        self.anchor + Duration::from_nanos(nanos)
    }

    /// The number (within the segment) of its first operation due at or after `t`.
    fn first_at_or_after(&self, t: Instant) -> u64 {
        if self.rate <= 0.0 || t <= self.anchor {
            return 0;
        }
        let mut j = ((t - self.anchor).as_secs_f64() * self.rate).floor() as u64;
        while self.at(j) < t {
            j += 1;
        }
        while j > 0 && self.at(j - 1) >= t {
            j -= 1;
        }
        j
    }
}

fn sanitize(rate: f64) -> f64 {
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        0.0
    }
}

/// A rate change takes effect at the first due time at least this far ahead, so that every
/// shard has seen it before any of them would start an operation under it (a shard wakes at
/// least every [`MAX_SLEEP`]).
pub const RATE_CHANGE_DELAY: Duration = Duration::from_millis(100);

/// Segments kept per kind; a shard that has missed more rate changes than this (impossible short
/// of being stopped for as many reloads) goes on from the oldest kept.
const SEGMENTS_KEPT: usize = 16;

/// The one timetable of every kind, shared by the traffic's shards and changed by config
/// reloads. The shards read it only when its generation has changed, so keeping the timetable
/// costs no lock per operation or per wake-up.
#[derive(Debug, Default)]
pub struct TargetRates {
    plan: Mutex<Plan>,
    generation: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct Plan {
    rates: [f64; 2],
    /// Empty until [`TargetRates::start`]; then each kind's segments, oldest first, with a
    /// sequence number.
    segments: [Vec<(u64, Segment)>; 2],
    next_seq: u64,
}

impl TargetRates {
    /// Rates per op kind; the timetables begin at [`TargetRates::start`].
    pub fn new(write: f64, read: f64) -> Self {
        let r = Self::default();
        r.set(Op::Write, write);
        r.set(Op::Read, read);
        r
    }

    /// [`TargetRates::new`], started at `epoch`.
    pub fn started(write: f64, read: f64, epoch: Instant) -> Self {
        let r = Self::new(write, read);
        r.start(epoch);
        r
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Begin the timetables at `epoch` (the first operation of each kind is due then); the first
    /// call decides, later ones return the epoch it set.
    pub fn start(&self, epoch: Instant) -> Instant {
        let mut plan = self.plan();
        if plan.segments[0].is_empty() {
            for op in Op::ALL {
                let seq = plan.next_seq;
                plan.next_seq += 1;
                let rate = plan.rates[op.index()];
                plan.segments[op.index()].push((
                    seq,
                    Segment {
                        anchor: epoch,
                        rate,
                        base: 0,
                    },
                ));
            }
            self.generation.fetch_add(1, Ordering::Release);
        }
        plan.segments[0][0].1.anchor
    }

    /// Set the rate of `op`: from the first operation due at least [`RATE_CHANGE_DELAY`] from now,
    /// the timetable runs at `rate`.
    pub fn set(&self, op: Op, rate: f64) {
        let rate = sanitize(rate);
        let mut plan = self.plan();
        plan.rates[op.index()] = rate;
        let seq = plan.next_seq;
        let segments = &mut plan.segments[op.index()];
        let Some(&(_, last)) = segments.last() else {
            return; // not started: the rate is where the timetable will begin
        };
        if last.rate == rate {
            return;
        }
        let from = Instant::now() + RATE_CHANGE_DELAY;
        if last.anchor >= from {
            // Not begun yet (an earlier change within the delay): change its rate instead.
            segments.last_mut().expect("not empty").1.rate = rate;
        } else {
            let k = last.first_at_or_after(from);
            let anchor = if last.rate > 0.0 { last.at(k) } else { from };
            segments.push((
                seq,
                Segment {
                    anchor,
                    rate,
                    base: last.base + k,
                },
            ));
            if segments.len() > SEGMENTS_KEPT {
                segments.remove(0);
            }
            plan.next_seq += 1;
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The rate of `op`.
    pub fn get(&self, op: Op) -> f64 {
        self.plan().rates[op.index()]
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn segments(&self, op: Op) -> Vec<(u64, Segment)> {
        self.plan().segments[op.index()].clone()
    }
}

/// Which share of the timetable a traffic thread keeps: operation `g` (numbered globally, across
/// rate changes) belongs to shard `g mod count`, so the shards' operations together are exactly
/// the timetable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// How many shards share the timetable.
    pub count: u32,
}

impl Shard {
    /// The only shard.
    pub const ONE: Shard = Shard { index: 0, count: 1 };
}

/// One shard's view of one kind's timetable: the segments it knows and its next operation.
#[derive(Debug, Clone)]
struct Slice {
    segments: Vec<(u64, Segment)>,
    /// The segment the next operation falls in.
    current: usize,
    /// The global number of this shard's next operation.
    next: u64,
    stride: u64,
}

impl Slice {
    fn new(shard: Shard) -> Self {
        Self {
            segments: Vec::new(),
            current: 0,
            next: u64::from(shard.index),
            stride: u64::from(shard.count.max(1)),
        }
    }

    /// Take in the latest segments (after a rate change).
    fn update(&mut self, latest: Vec<(u64, Segment)>) {
        let seq = self.segments.get(self.current).map(|s| s.0);
        match seq.and_then(|seq| latest.iter().position(|s| s.0 == seq)) {
            Some(i) => self.current = i,
            None => {
                // The first segments, or (after missing more than SEGMENTS_KEPT changes) the oldest
                // kept: go on from its first operation of this shard.
                self.current = 0;
                if let Some(first) = latest.first()
                    && self.next < first.1.base
                {
                    let behind = first.1.base - self.next;
                    self.next += behind.div_ceil(self.stride) * self.stride;
                }
            }
        }
        self.segments = latest;
    }

    /// The segment of the next operation (moving on to a later one that has begun by its number).
    fn segment(&mut self) -> Option<Segment> {
        while let Some(later) = self.segments.get(self.current + 1)
            && self.next >= later.1.base
        {
            self.current += 1;
        }
        self.segments.get(self.current).map(|s| s.1)
    }

    fn next_due(&mut self) -> Option<Instant> {
        let seg = self.segment()?;
        (seg.rate > 0.0).then(|| seg.at(self.next - seg.base))
    }

    fn pop_due(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next_due()?;
        if due <= now {
            self.next += self.stride;
            Some(due)
        } else {
            None
        }
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

/// One shard's slices of the timetables of all op kinds and the dispatcher they feed.
pub struct Pacer<D: Dispatch> {
    slices: [Slice; 2],
    rates: Arc<TargetRates>,
    generation: Option<u64>,
    dispatch: D,
    wake_interval: Duration,
}

impl<D: Dispatch> Pacer<D> {
    /// The only shard of the timetables of `rates` (started at `epoch` unless started before).
    pub fn new(rates: Arc<TargetRates>, epoch: Instant, dispatch: D) -> Self {
        Self::shard(rates, epoch, Shard::ONE, dispatch)
    }

    /// Shard `shard` of the timetables of `rates` (started at `epoch` unless started before).
    pub fn shard(rates: Arc<TargetRates>, epoch: Instant, shard: Shard, dispatch: D) -> Self {
        rates.start(epoch);
        Self {
            slices: [Slice::new(shard), Slice::new(shard)],
            rates,
            generation: None,
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

    /// Take in rate changes, dispatch everything due at `now` (which the caller read before this
    /// call), and return when the next operation is due.
    pub fn step(&mut self, now: Instant) -> Option<Instant> {
        let generation = self.rates.generation();
        if self.generation != Some(generation) {
            self.generation = Some(generation);
            for op in Op::ALL {
                self.slices[op.index()].update(self.rates.segments(op));
            }
        }
        for op in Op::ALL {
            while let Some(scheduled) = self.slices[op.index()].pop_due(now) {
                self.dispatch.dispatch(op, scheduled, now);
            }
        }
        self.dispatch.tick(now);
        self.slices.iter_mut().filter_map(Slice::next_due).min()
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
            let seg = Segment {
                anchor: epoch,
                rate,
                base: 0,
            };
            let expected = Duration::from_secs_f64(100_000.0 / rate);
            let actual = seg.at(100_000) - epoch;
            let error = actual.abs_diff(expected);
            assert!(
                error <= Duration::from_nanos(1),
                "rate {rate}: {actual:?} vs {expected:?}"
            );
            for t in [epoch, seg.at(17), seg.at(17) + Duration::from_nanos(1)] {
                let j = seg.first_at_or_after(t);
                assert!(
                    seg.at(j) >= t && (j == 0 || seg.at(j - 1) < t),
                    "rate {rate}"
                );
            }
        }
    }

    #[test]
    fn labels_and_rates_read_back() {
        assert_eq!(Op::Write.label(), "write");
        assert_eq!(Op::Read.label(), "read");
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0] {
            assert_eq!(sanitize(bad), 0.0, "{bad}");
            let rates = TargetRates::started(bad, 1.0, Instant::now());
            assert_eq!(rates.get(Op::Write), 0.0, "{bad}");
            let mut slice = Slice::new(Shard::ONE);
            slice.update(rates.segments(Op::Write));
            assert_eq!(slice.next_due(), None, "{bad}: nothing is due at rate 0");
        }
        assert_eq!(sanitize(250.0), 250.0);
        let rates = TargetRates::new(3.0, 4.0);
        assert_eq!((rates.get(Op::Write), rates.get(Op::Read)), (3.0, 4.0));
    }

    /// Counts the operations scheduled before `horizon`, and the wake-ups.
    struct Count {
        horizon: Instant,
        counts: [u64; 2],
        max_lag: Duration,
        wakes: u64,
        /// Every operation scheduled before the horizon, in dispatch order.
        scheduled: Vec<(Op, Instant)>,
    }

    impl Count {
        fn until(horizon: Instant) -> Self {
            Self {
                horizon,
                counts: [0; 2],
                max_lag: Duration::ZERO,
                wakes: 0,
                scheduled: Vec::new(),
            }
        }
    }

    impl Dispatch for Count {
        fn dispatch(&mut self, op: Op, scheduled: Instant, now: Instant) {
            assert!(now >= scheduled, "an operation started before it was due");
            if scheduled < self.horizon {
                self.counts[op.index()] += 1;
                self.max_lag = self.max_lag.max(now - scheduled);
                self.scheduled.push((op, scheduled));
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

    /// Run `shards` pacers over one timetable for 2 s; at 0.999 s and at 1.2995 s the rates
    /// change (a reload). Returns every scheduled instant (as an offset from the start), sorted.
    async fn sharded_run(shards: u32) -> Vec<(Op, Duration)> {
        let rates = Arc::new(TargetRates::new(10.0, 0.0));
        let token = CancellationToken::new();
        let start = Instant::now();
        let horizon = start + Duration::from_secs(2);
        let runs: Vec<_> = (0..shards)
            .map(|index| {
                let shard = Shard {
                    index,
                    count: shards,
                };
                let pacer = Pacer::shard(rates.clone(), start, shard, Count::until(horizon));
                tokio::spawn(pacer.run_with_tokio(token.clone()))
            })
            .collect();
        tokio::time::sleep_until(start + Duration::from_millis(999)).await;
        rates.set(Op::Write, 100.0);
        rates.set(Op::Read, 20.0);
        tokio::time::sleep_until(start + Duration::from_micros(1_299_500)).await;
        rates.set(Op::Write, 333.0);
        tokio::time::sleep_until(horizon + Duration::from_millis(10)).await;
        token.cancel();
        let mut all = vec![];
        for run in runs {
            let d = run.await.unwrap();
            all.extend(d.scheduled.iter().map(|&(op, at)| (op, at - start)));
        }
        all.sort_by_key(|&(op, at)| (at, op.index()));
        all
    }

    #[tokio::test(start_paused = true)]
    async fn rate_changes_apply_at_run_time() {
        let all = sharded_run(1).await;
        let count = |op| all.iter().filter(|s| s.0 == op).count();
        let at = |op: Op, ms: f64| (op, Duration::from_secs_f64(ms / 1e3));
        // Writes: 10/s from 0 to 1.0 s (11); the change at 0.999 s takes effect at the first due
        // time at least 100 ms later, 1.1 s: 100/s for 1.1, 1.11, …, 1.39 (30, the next change at
        // 1.2995 s takes effect at 1.4 s); then 333/s from 1.4 s to 2 s (200, the last at 1.9976 s).
        assert_eq!(count(Op::Write), 11 + 30 + 200);
        assert!(all.contains(&at(Op::Write, 1000.0)) && !all.contains(&at(Op::Write, 1050.0)));
        assert!(all.contains(&at(Op::Write, 1100.0)) && all.contains(&at(Op::Write, 1390.0)));
        assert!(all.contains(&at(Op::Write, 1400.0)));
        // Reads were off: they begin 100 ms after the change (1.099 s), 20/s until 2 s.
        assert_eq!(count(Op::Read), 19);
        assert_eq!(
            all.iter().find(|s| s.0 == Op::Read),
            Some(&at(Op::Read, 1099.0))
        );
        // No burst, no gap: consecutive writes are never closer than the faster rate allows.
        let writes: Vec<_> = all
            .iter()
            .filter(|s| s.0 == Op::Write)
            .map(|s| s.1)
            .collect();
        for w in writes.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_micros(3003), "{w:?}");
        }
    }

    /// Shards together start exactly the timetable of one pacer, through rate changes: operation
    /// `k` goes to shard `k mod N`, and every shard switches rates at the same operation.
    #[tokio::test(start_paused = true)]
    async fn shards_together_keep_exactly_the_one_timetable() {
        let one = sharded_run(1).await;
        assert_eq!(one.len(), 11 + 30 + 200 + 19);
        for shards in [2, 3, 7] {
            assert_eq!(sharded_run(shards).await, one, "{shards} shards");
        }
    }

    /// Shard `i` of `n` takes operations i, i+n, i+2n, …
    #[test]
    fn a_shard_takes_every_nth_operation() {
        let epoch = Instant::now();
        let rates = TargetRates::started(1000.0, 0.0, epoch);
        let mut slice = Slice::new(Shard { index: 2, count: 3 });
        slice.update(rates.segments(Op::Write));
        let far = epoch + Duration::from_secs(10);
        let due: Vec<_> = (0..4)
            .map(|_| slice.pop_due(far).unwrap() - epoch)
            .collect();
        let ms = |m| Duration::from_millis(m);
        assert_eq!(due, [ms(2), ms(5), ms(8), ms(11)]);
    }
}
