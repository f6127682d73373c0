//! The ledger: every post is registered (with the subscribers expected to receive it) *before* its
//! request is sent, so a delivery that beats the HTTP reply still finds it; every receipt on every
//! subscriber is matched against it; each post is finalised once, and only then counted whole: as
//! soon as its API reply is in and every expected recipient has it, or at the delivery timeout,
//! when what was expected and never came is counted lost (observed at the timeout, so a loss never
//! makes a percentile look better). Counting a post at one instant keeps a window's counts exact:
//! a post belongs to the window it was finalised in, with all its deliveries.
//!
//! Out of order is judged only along happens-before: concurrent posts have no defined order. Each
//! post carries `floor`, the highest seq of its channel such that every seq up to it had its HTTP
//! reply before this post was sent. A subscriber that received a post with floor `f` and later
//! receives seq ≤ `f` got a message after one that was sent only once the first was acknowledged.
//!
//! Times are taken by the callers ([`Instant`]s of one process) and passed in, so the logic is
//! tested without a clock.

use crate::measure::e2e::{Anomaly, Delivery, E2eMetrics, Fanout};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The subscribers' state the ledger reads: which are ready, and when each last disconnected.
/// Subscriber `s` listens on channel `s mod channels`, as slot `s / channels` of it.
pub struct Population {
    channels: u32,
    origin: Instant,
    ready: Vec<AtomicBool>,
    /// Micros since `origin` of the last disconnect, + 1 (0: never).
    disconnected: Vec<AtomicU64>,
}

impl Population {
    /// `count` subscribers over `channels` channels, none ready.
    pub fn new(count: u32, channels: u32) -> Self {
        Self {
            channels: channels.max(1),
            origin: Instant::now(),
            ready: (0..count).map(|_| AtomicBool::new(false)).collect(),
            disconnected: (0..count).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Subscribers.
    pub fn count(&self) -> usize {
        self.ready.len()
    }

    /// The channel subscriber `s` listens on.
    pub fn channel_of(&self, s: usize) -> u32 {
        (s as u32) % self.channels
    }

    /// Subscriber `s` is ready.
    pub fn set_ready(&self, s: usize) {
        self.ready[s].store(true, Ordering::Release);
    }

    /// Subscriber `s` lost its socket at `at`.
    pub fn set_disconnected(&self, s: usize, at: Instant) {
        self.ready[s].store(false, Ordering::Release);
        let micros = at.saturating_duration_since(self.origin).as_micros() as u64 + 1;
        self.disconnected[s].fetch_max(micros, Ordering::AcqRel);
    }

    /// Ready subscribers.
    pub fn ready_count(&self) -> usize {
        self.ready
            .iter()
            .filter(|r| r.load(Ordering::Acquire))
            .count()
    }

    /// The ready slots of `channel` as a bit mask.
    fn ready_mask(&self, channel: u32) -> u64 {
        let mut mask = 0;
        let mut s = channel as usize;
        let mut slot = 0;
        while s < self.ready.len() && slot < 64 {
            if self.ready[s].load(Ordering::Acquire) {
                mask |= 1 << slot;
            }
            s += self.channels as usize;
            slot += 1;
        }
        mask
    }

    fn disconnected_after(&self, s: usize, at: Instant) -> bool {
        let d = self.disconnected[s].load(Ordering::Acquire);
        d > 0 && d > at.saturating_duration_since(self.origin).as_micros() as u64
    }
}

/// What the API said of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sent (or about to be), no reply yet.
    Posting,
    /// 2xx.
    Acked,
    /// A refusal (non-2xx): a delivery of it is a ghost.
    Refused,
    /// No reply (timeout, reset): it may or may not have been taken; nothing is expected of it.
    Unknown,
}

struct Entry {
    channel: u32,
    seq: u64,
    floor: u64,
    scheduled: Instant,
    sent: Option<Instant>,
    state: State,
    expected: u64,
    received: u64,
    /// Latency from the schedule and from the send of each expected receipt.
    arrivals: Vec<(Duration, Duration)>,
    last: Option<Instant>,
}

impl Entry {
    /// Its reply is in and every expected recipient has it.
    fn done(&self) -> bool {
        self.state != State::Posting && self.expected & self.received == self.expected
    }
}

/// A finalised post, kept a while to tell duplicates and late receipts from unknown ids.
struct Finalised {
    channel: u32,
    expected: u64,
    received: u64,
    refused: bool,
}

#[derive(Default)]
struct ChannelSeq {
    next: u64,
    prefix: u64,
    done: BTreeSet<u64>,
}

impl ChannelSeq {
    fn resolve(&mut self, seq: u64) {
        if seq <= self.prefix {
            return;
        }
        self.done.insert(seq);
        while self.done.remove(&(self.prefix + 1)) {
            self.prefix += 1;
        }
    }
}

struct Inner {
    entries: HashMap<Uuid, Entry>,
    order: VecDeque<(Instant, Uuid)>,
    recent: HashMap<Uuid, Finalised>,
    recent_order: VecDeque<Uuid>,
    channels: Vec<ChannelSeq>,
    max_floor_seen: Vec<u64>,
}

/// The ledger of one canary.
pub struct Ledger {
    inner: Mutex<Inner>,
    metrics: Arc<E2eMetrics>,
    population: Arc<Population>,
    timeout: Duration,
    cap: usize,
}

/// A registered post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// Its correlation id.
    pub id: Uuid,
    /// Its number in its channel, from 1.
    pub seq: u64,
}

impl Ledger {
    /// A ledger that finalises posts `timeout` after their scheduled start and holds at most `cap`
    /// pending ones.
    pub fn new(
        metrics: Arc<E2eMetrics>,
        population: Arc<Population>,
        timeout: Duration,
        cap: usize,
    ) -> Self {
        let channels = population.channels as usize;
        let subscribers = population.count();
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                recent: HashMap::new(),
                recent_order: VecDeque::new(),
                channels: (0..channels).map(|_| ChannelSeq::default()).collect(),
                max_floor_seen: vec![0; subscribers],
            }),
            metrics,
            population,
            timeout,
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Posts awaiting their timeout.
    pub fn pending(&self) -> usize {
        self.lock().entries.len()
    }

    /// Register a post to `channel` scheduled at `scheduled`, expecting every subscriber of the
    /// channel that is ready now. `None`: the ledger is full (the post is dropped, not sent).
    pub fn register(&self, channel: u32, scheduled: Instant) -> Option<Registered> {
        let expected = self.population.ready_mask(channel);
        let mut inner = self.lock();
        if inner.entries.len() >= self.cap {
            return None;
        }
        let id = Uuid::new_v4();
        let ch = &mut inner.channels[channel as usize];
        ch.next += 1;
        let (seq, floor) = (ch.next, ch.prefix);
        inner.entries.insert(
            id,
            Entry {
                channel,
                seq,
                floor,
                scheduled,
                sent: None,
                state: State::Posting,
                expected,
                received: 0,
                arrivals: Vec::new(),
                last: None,
            },
        );
        inner.order.push_back((scheduled + self.timeout, id));
        self.metrics.set_pending(inner.entries.len());
        Some(Registered { id, seq })
    }

    /// The post's request went out at `at`.
    pub fn sent(&self, id: Uuid, at: Instant) {
        if let Some(e) = self.lock().entries.get_mut(&id) {
            e.sent = Some(at);
        }
    }

    /// The post was never sent (no connection free): forget it.
    pub fn abandon(&self, id: Uuid) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.remove(&id) {
            inner.channels[e.channel as usize].resolve(e.seq);
            self.metrics.set_pending(inner.entries.len());
        }
    }

    /// The API acknowledged the post (2xx).
    pub fn acked(&self, id: Uuid) {
        self.replied(id, State::Acked);
    }

    /// The API refused the post (non-2xx): any delivery of it is a ghost.
    pub fn refused(&self, id: Uuid) {
        self.replied(id, State::Refused);
    }

    /// The post's request failed without a reply: nothing is expected of it.
    pub fn unanswered(&self, id: Uuid) {
        self.replied(id, State::Unknown);
    }

    fn replied(&self, id: Uuid, state: State) {
        let mut inner = self.lock();
        let Some(e) = inner.entries.get_mut(&id) else {
            return;
        };
        e.state = state;
        let (channel, seq, received, done) = (e.channel, e.seq, e.received, e.done());
        inner.channels[channel as usize].resolve(seq);
        if state == State::Refused {
            for _ in 0..received.count_ones() {
                self.metrics.anomaly(Anomaly::Ghost);
            }
        }
        if done {
            self.finalise_now(&mut inner, id);
        }
    }

    fn finalise_now(&self, inner: &mut Inner, id: Uuid) {
        if let Some(e) = inner.entries.remove(&id) {
            self.finalise(inner, id, e);
            self.metrics.set_pending(inner.entries.len());
        }
    }

    /// Subscriber `s` received the frame of `id` at `now`.
    pub fn arrived(&self, id: Uuid, s: usize, now: Instant) {
        let channel = self.population.channel_of(s);
        let bit = 1u64 << (s / self.population.channels as usize).min(63);
        let mut inner = self.lock();
        let Inner {
            entries,
            recent,
            max_floor_seen,
            ..
        } = &mut *inner;
        let mut done = false;
        if let Some(e) = entries.get_mut(&id) {
            if e.channel != channel {
                self.metrics.anomaly(Anomaly::Misrouted);
            } else if e.received & bit != 0 {
                self.metrics.anomaly(Anomaly::Duplicate);
            } else if e.state == State::Refused {
                e.received |= bit;
                self.metrics.anomaly(Anomaly::Ghost);
            } else {
                e.received |= bit;
                if e.expected & bit != 0 {
                    let sent = e.sent.unwrap_or(e.scheduled);
                    e.arrivals.push((
                        now.saturating_duration_since(e.scheduled),
                        now.saturating_duration_since(sent),
                    ));
                    e.last = Some(now);
                    if e.seq <= max_floor_seen[s] {
                        self.metrics.anomaly(Anomaly::OutOfOrder);
                    }
                    max_floor_seen[s] = max_floor_seen[s].max(e.floor);
                    done = e.done();
                }
            }
        } else if let Some(f) = recent.get_mut(&id) {
            if f.channel != channel {
                self.metrics.anomaly(Anomaly::Misrouted);
            } else if f.received & bit != 0 {
                self.metrics.anomaly(Anomaly::Duplicate);
            } else if f.refused {
                f.received |= bit;
                self.metrics.anomaly(Anomaly::Ghost);
            } else {
                f.received |= bit;
                // A subscriber that joined after the post was not expected: not late.
                if f.expected & bit != 0 {
                    self.metrics.anomaly(Anomaly::Late);
                }
            }
        } else {
            self.metrics.anomaly(Anomaly::Unknown);
        }
        if done {
            self.finalise_now(&mut inner, id);
        }
    }

    /// A frame without a readable id.
    pub fn unparseable(&self) {
        self.metrics.anomaly(Anomaly::Unparseable);
    }

    /// Subscriber `s` (re)connected: what it saw before says nothing of what comes now.
    pub fn reconnected(&self, s: usize) {
        self.lock().max_floor_seen[s] = 0;
    }

    /// Finalise every post whose timeout is at or before `now`; returns how many are pending.
    pub fn expire(&self, now: Instant) -> usize {
        let mut inner = self.lock();
        while let Some(&(deadline, id)) = inner.order.front() {
            if deadline > now {
                break;
            }
            inner.order.pop_front();
            if let Some(e) = inner.entries.remove(&id) {
                self.finalise(&mut inner, id, e);
            }
        }
        self.metrics.set_pending(inner.entries.len());
        inner.entries.len()
    }

    fn finalise(&self, inner: &mut Inner, id: Uuid, e: Entry) {
        let counted = matches!(e.state, State::Acked | State::Posting);
        if counted {
            for (from_schedule, from_send) in &e.arrivals {
                self.metrics.delivered(*from_schedule, *from_send);
            }
            let missing = e.expected & !e.received;
            let (mut lost, mut aborted) = (0, 0);
            for slot in 0..64 {
                if missing & (1 << slot) == 0 {
                    continue;
                }
                let s = e.channel as usize + slot * self.population.channels as usize;
                if self.population.disconnected_after(s, e.scheduled) {
                    aborted += 1;
                } else {
                    lost += 1;
                }
            }
            self.metrics
                .not_delivered(Delivery::Lost, lost, self.timeout);
            self.metrics
                .not_delivered(Delivery::Aborted, aborted, self.timeout);
            let got = e.expected & e.received;
            let fanout = if e.expected == 0 {
                Fanout::NoRecipients
            } else if got == e.expected {
                Fanout::Complete
            } else if got == 0 {
                Fanout::None
            } else {
                Fanout::Partial
            };
            let last = (fanout == Fanout::Complete)
                .then(|| e.last.map(|l| l.saturating_duration_since(e.scheduled)))
                .flatten();
            self.metrics.fanout(fanout, last);
        }
        inner.recent.insert(
            id,
            Finalised {
                channel: e.channel,
                expected: e.expected,
                received: e.received,
                refused: e.state == State::Refused,
            },
        );
        inner.recent_order.push_back(id);
        while inner.recent_order.len() > self.cap {
            if let Some(old) = inner.recent_order.pop_front() {
                inner.recent.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::e2e::{E2E_BUCKETS, E2eSnapshot};
    use prometheus::Registry;

    const T: Duration = Duration::from_secs(5);

    fn setup(
        subscribers: u32,
        channels: u32,
        cap: usize,
    ) -> (Ledger, Arc<E2eMetrics>, Arc<Population>) {
        let m = Arc::new(E2eMetrics::register(&Registry::new(), E2E_BUCKETS));
        let p = Arc::new(Population::new(subscribers, channels));
        (Ledger::new(m.clone(), p.clone(), T, cap), m, p)
    }

    fn count(s: &E2eSnapshot, what: &str) -> u64 {
        let m = match what {
            "ok" | "lost" | "aborted" => &s.deliveries,
            "complete" | "partial" | "none" | "no_recipients" => &s.messages,
            _ => &s.anomalies,
        };
        E2eSnapshot::count(m, what)
    }

    #[test]
    fn every_expected_delivery_ends_once_and_losses_count_at_the_timeout() {
        // 6 subscribers on 2 channels: channel 0 has subscribers 0, 2, 4.
        let (l, m, p) = setup(6, 2, 100);
        for s in [0, 2, 4, 1] {
            p.set_ready(s);
        }
        let t0 = Instant::now();
        let a = l.register(0, t0).unwrap();
        l.sent(a.id, t0);
        // The frame beats the reply: the entry is there already.
        l.arrived(a.id, 0, t0 + Duration::from_millis(10));
        l.acked(a.id);
        l.arrived(a.id, 2, t0 + Duration::from_millis(20));
        l.arrived(a.id, 2, t0 + Duration::from_millis(21));
        assert_eq!(l.expire(t0 + T - Duration::from_millis(1)), 1, "not yet");
        assert_eq!(l.expire(t0 + T), 0);
        l.arrived(a.id, 4, t0 + T + Duration::from_millis(1));
        l.arrived(a.id, 4, t0 + T + Duration::from_millis(2));
        l.arrived(Uuid::new_v4(), 1, t0);
        let s = m.snapshot();
        assert_eq!(count(&s, "ok"), 2);
        assert_eq!(count(&s, "lost"), 1);
        assert_eq!(count(&s, "partial"), 1);
        assert_eq!(count(&s, "duplicate"), 2, "one live, one after the timeout");
        assert_eq!(count(&s, "late"), 1);
        assert_eq!(count(&s, "unknown"), 1);
        assert_eq!(s.delivery.count, 3);
        assert!(
            s.delivery.max >= T.as_secs_f64() * 0.999,
            "the loss at the timeout"
        );
    }

    #[test]
    fn a_recipient_that_left_is_aborted_and_an_empty_channel_has_no_recipients() {
        let (l, m, p) = setup(4, 2, 100);
        p.set_ready(0);
        p.set_ready(2);
        let t0 = Instant::now();
        let a = l.register(0, t0).unwrap();
        let b = l.register(1, t0).unwrap();
        l.acked(a.id);
        l.acked(b.id);
        l.arrived(a.id, 0, t0 + Duration::from_millis(5));
        p.set_disconnected(2, t0 + Duration::from_millis(50));
        l.expire(t0 + T);
        let s = m.snapshot();
        assert_eq!(count(&s, "ok"), 1);
        assert_eq!(count(&s, "aborted"), 1);
        assert_eq!(count(&s, "lost"), 0);
        assert_eq!(count(&s, "no_recipients"), 1);
        assert_eq!(count(&s, "partial"), 1);
    }

    #[test]
    fn refused_posts_expect_nothing_and_their_deliveries_are_ghosts() {
        let (l, m, p) = setup(2, 1, 100);
        p.set_ready(0);
        p.set_ready(1);
        let t0 = Instant::now();
        let a = l.register(0, t0).unwrap();
        l.refused(a.id);
        l.arrived(a.id, 0, t0);
        let b = l.register(0, t0).unwrap();
        l.unanswered(b.id);
        l.expire(t0 + T);
        l.arrived(a.id, 1, t0 + T);
        let s = m.snapshot();
        assert_eq!(count(&s, "ghost"), 2);
        assert_eq!(
            s.expected(),
            0,
            "neither a refused nor an unanswered post expects deliveries"
        );
        assert_eq!(s.messages.values().sum::<u64>(), 0);
    }

    #[test]
    fn out_of_order_only_along_happens_before() {
        let (l, m, p) = setup(1, 1, 100);
        p.set_ready(0);
        let t0 = Instant::now();
        // Concurrent: b is sent before a's reply; b arriving first is no anomaly.
        let a = l.register(0, t0).unwrap();
        let b = l.register(0, t0).unwrap();
        l.acked(a.id);
        l.acked(b.id);
        l.arrived(b.id, 0, t0);
        l.arrived(a.id, 0, t0);
        assert_eq!(count(&m.snapshot(), "out_of_order"), 0);
        // c is acknowledged before d is sent: d arriving before c is out of order.
        let c = l.register(0, t0).unwrap();
        l.acked(c.id);
        let d = l.register(0, t0).unwrap();
        l.acked(d.id);
        l.arrived(d.id, 0, t0);
        l.arrived(c.id, 0, t0);
        assert_eq!(count(&m.snapshot(), "out_of_order"), 1);
        // An abandoned post does not hold the floor back.
        let e = l.register(0, t0).unwrap();
        l.abandon(e.id);
        let f = l.register(0, t0).unwrap();
        l.acked(f.id);
        let g = l.register(0, t0).unwrap();
        l.arrived(g.id, 0, t0);
        l.arrived(f.id, 0, t0);
        assert_eq!(count(&m.snapshot(), "out_of_order"), 2);
    }

    #[test]
    fn a_full_ledger_refuses_and_a_finalised_one_frees_room() {
        let (l, _, _) = setup(1, 1, 2);
        let t0 = Instant::now();
        assert!(l.register(0, t0).is_some());
        assert!(l.register(0, t0).is_some());
        assert!(l.register(0, t0).is_none());
        l.expire(t0 + T);
        assert!(l.register(0, t0 + T).is_some());
    }

    #[test]
    fn a_post_is_counted_whole_as_soon_as_it_is_complete() {
        let (l, m, p) = setup(4, 2, 10);
        p.set_ready(0);
        let t0 = Instant::now();
        let a = l.register(0, t0).unwrap();
        p.set_ready(2); // joins after the post: not expected
        l.arrived(a.id, 0, t0 + Duration::from_millis(3));
        assert_eq!(count(&m.snapshot(), "ok"), 0, "not before the reply");
        l.acked(a.id);
        let s = m.snapshot();
        assert_eq!((count(&s, "ok"), count(&s, "complete")), (1, 1));
        assert_eq!(l.pending(), 0, "finalised before its timeout");
        l.arrived(a.id, 2, t0 + Duration::from_millis(4));
        l.arrived(a.id, 0, t0 + Duration::from_millis(5));
        let s = m.snapshot();
        assert_eq!((count(&s, "late"), count(&s, "duplicate")), (0, 1));
        assert_eq!(l.expire(t0 + T), 0);
        assert_eq!(
            m.snapshot().messages.values().sum::<u64>(),
            1,
            "counted once"
        );
    }

    #[test]
    fn a_frame_on_another_channel_is_misrouted() {
        let (l, m, p) = setup(2, 2, 10);
        p.set_ready(0);
        p.set_ready(1);
        let t0 = Instant::now();
        let a = l.register(0, t0).unwrap();
        l.arrived(a.id, 1, t0);
        assert_eq!(count(&m.snapshot(), "misrouted"), 1);
        assert_eq!(count(&m.snapshot(), "ok"), 0);
    }
}
