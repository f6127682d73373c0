//! The end-to-end canary's metrics (`chatload_e2e_*`) and the exact (HDR) histograms `chatload
//! check` reads them with. Registered only when `[e2e]` is enabled: a canary that does not run
//! exports nothing. Labels are small fixed sets: never a channel, subscriber, URL or status code.
//!
//! The API requests themselves are traffic operations (`chatload_operations_total{backend="chat_api",
//! op="api_post"|"api_read"}` and their histograms, see [`crate::measure::record::OpRecorder`]).

use super::stats::{BucketCounts, Percentiles, counts_since, exact_histogram, micros};
use prometheus::{
    Counter, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// Buckets of the e2e histograms: every threshold of the documents the SLO defaults come from is a
/// bound (API suite 30/50/80/100 ms; WebSocket report 200/500 ms, 1/2 s).
pub const E2E_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.03, 0.05, 0.08, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0,
    10.0, 30.0,
];

/// The `backend` label of the API requests.
pub const CHAT_API: &str = "chat_api";

macro_rules! label_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $l:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every value, in label order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The label value.
            pub fn label(self) -> &'static str {
                match self { $($name::$v => $l),+ }
            }
        }
    };
}

label_enum!(
    /// What became of one expected delivery (a message to one recipient).
    Delivery {
        /// Received before the delivery timeout.
        Ok = "ok",
        /// Not received by the delivery timeout, the recipient still connected.
        Lost = "lost",
        /// Not received, and the recipient disconnected meanwhile (churn has its own SLO).
        Aborted = "aborted",
    }
);

label_enum!(
    /// What became of one message's fan-out.
    Fanout {
        /// Every expected recipient got it.
        Complete = "complete",
        /// Some did.
        Partial = "partial",
        /// None did.
        None = "none",
        /// The channel had no ready subscriber when it was posted.
        NoRecipients = "no_recipients",
    }
);

label_enum!(
    /// Deliveries that should not have happened, or not then.
    Anomaly {
        /// A second copy to the same recipient.
        Duplicate = "duplicate",
        /// Received after a message that was sent after this one was acknowledged.
        OutOfOrder = "out_of_order",
        /// Received after the delivery timeout (it was already counted lost).
        Late = "late",
        /// A delivery of a post the API refused.
        Ghost = "ghost",
        /// An id the canary never posted (or posted so long ago that it was forgotten).
        Unknown = "unknown",
        /// A post delivered to a subscriber of another channel: a cross-channel leak.
        Misrouted = "misrouted",
        /// A frame without a readable id.
        Unparseable = "unparseable",
    }
);

label_enum!(
    /// How a WebSocket connect ended.
    WsConnect {
        /// Upgraded (and, with an acknowledgement configured, subscribed).
        Ok = "ok",
        /// The TCP connection was refused.
        Refused = "refused",
        /// Not upgraded within the request timeout.
        Timeout = "timeout",
        /// The server answered the upgrade with something other than 101.
        Rejected = "rejected",
        /// Anything else (TLS, DNS, protocol).
        Error = "error",
    }
);

label_enum!(
    /// Why a subscriber's socket closed.
    WsDisconnect {
        /// The server sent a close frame.
        CloseFrame = "close_frame",
        /// The connection ended without one.
        Eof = "eof",
        /// The connection was reset.
        Reset = "reset",
        /// Two pings went unanswered.
        PingTimeout = "ping_timeout",
        /// A protocol error.
        Protocol = "protocol",
    }
);

label_enum!(
    /// How a database read-back ended.
    Visibility {
        /// The row was read within the deadline.
        Visible = "visible",
        /// It was not, by the deadline.
        NotVisible = "not_visible",
        /// The read itself kept failing.
        Error = "error",
    }
);

/// `code_class` of an HTTP response.
pub const CODE_CLASSES: [&str; 6] = ["2xx", "3xx", "4xx", "5xx", "1xx", "none"];

/// The e2e families and the exact histograms beside them.
pub struct E2eMetrics {
    http_responses: IntCounterVec,
    http_connects: IntCounterVec,
    delivery: Histogram,
    delivery_service: Histogram,
    fanout_seconds: Histogram,
    deliveries: Vec<IntCounter>,
    messages: Vec<IntCounter>,
    anomalies: Vec<IntCounter>,
    subscribers: IntGaugeVec,
    ready_seconds: Counter,
    target_seconds: Counter,
    ws_connect: Histogram,
    ws_ping: Histogram,
    ws_connects: Vec<IntCounter>,
    ws_disconnects: Vec<IntCounter>,
    visible: Histogram,
    visibility: Vec<IntCounter>,
    queue_depth: Gauge,
    queue_up: IntGauge,
    read_checks: IntCounterVec,
    pending: IntGauge,
    rx_lag: Histogram,
    exact: Mutex<Exact>,
    queue_max: AtomicI64,
    queue_seen: AtomicBool,
}

struct Exact {
    delivery: hdrhistogram::Histogram<u64>,
    ws_connect: hdrhistogram::Histogram<u64>,
    visible: hdrhistogram::Histogram<u64>,
    rx_lag: hdrhistogram::Histogram<u64>,
}

impl Exact {
    fn new() -> Self {
        Self {
            delivery: exact_histogram(),
            ws_connect: exact_histogram(),
            visible: exact_histogram(),
            rx_lag: exact_histogram(),
        }
    }
}

/// What the canary measured: counts since the start, and percentiles since the start or the last
/// [`E2eMetrics::begin_window`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct E2eSnapshot {
    /// Expected deliveries by outcome.
    pub deliveries: BTreeMap<&'static str, u64>,
    /// Messages by fan-out.
    pub messages: BTreeMap<&'static str, u64>,
    /// Anomalies by kind.
    pub anomalies: BTreeMap<&'static str, u64>,
    /// WebSocket connects by outcome.
    pub ws_connects: BTreeMap<&'static str, u64>,
    /// WebSocket disconnects by reason.
    pub ws_disconnects: BTreeMap<&'static str, u64>,
    /// Database read-backs by outcome.
    pub visibility: BTreeMap<&'static str, u64>,
    /// HTTP reads by freshness.
    pub reads: BTreeMap<&'static str, u64>,
    /// API connections dialled successfully, by op (over requests: keep-alive reuse).
    pub http_connects: BTreeMap<&'static str, u64>,
    /// Subscriber-seconds ready.
    pub ready_seconds: f64,
    /// Subscriber-seconds targeted.
    pub target_seconds: f64,
    /// Subscribers ready now.
    pub subscribers_ready: i64,
    /// Subscribers targeted.
    pub subscribers_target: i64,
    /// Messages awaiting their delivery timeout.
    pub pending: i64,
    /// The queue's depth at the last read (`None`: never read).
    pub queue_depth: Option<f64>,
    /// The deepest read since the window began (`None`: no read succeeded in it).
    pub queue_depth_max: Option<f64>,
    /// Whether the last queue read succeeded.
    pub queue_up: bool,
    /// Delivery latency from the scheduled start.
    pub delivery: Percentiles,
    /// WebSocket connect latency.
    pub ws_connect: Percentiles,
    /// Database visibility latency from the scheduled start.
    pub visible: Percentiles,
    /// API latency (posts and reads together) from the scheduled start: filled by the canary,
    /// which merges its two API recorders' exact histograms.
    pub api: Percentiles,
    /// How late the receiving thread handled frames.
    pub rx_lag: Percentiles,
    /// Bucket counts (cumulative since the start) of the delivery histogram.
    #[serde(skip)]
    pub delivery_buckets: BucketCounts,
    /// … of the WebSocket connect histogram.
    #[serde(skip)]
    pub ws_connect_buckets: BucketCounts,
    /// … of the visibility histogram.
    #[serde(skip)]
    pub visible_buckets: BucketCounts,
}

impl E2eSnapshot {
    /// Counts since `earlier` (percentiles, gauges and the window's maximum kept as they are).
    ///
    /// WebSocket connects are the exception: they stay counted since the start. The population
    /// connects before a window begins (`check` measures once 99 % are ready) and a healthy one
    /// never reconnects, so a window of its own would hold nothing to judge; the connect SLOs judge
    /// every connect of the run, the first ones included.
    pub fn minus_counts(&self, earlier: &E2eSnapshot) -> E2eSnapshot {
        E2eSnapshot {
            deliveries: counts_since(&self.deliveries, &earlier.deliveries),
            messages: counts_since(&self.messages, &earlier.messages),
            anomalies: counts_since(&self.anomalies, &earlier.anomalies),
            ws_disconnects: counts_since(&self.ws_disconnects, &earlier.ws_disconnects),
            visibility: counts_since(&self.visibility, &earlier.visibility),
            reads: counts_since(&self.reads, &earlier.reads),
            http_connects: counts_since(&self.http_connects, &earlier.http_connects),
            ready_seconds: self.ready_seconds - earlier.ready_seconds,
            target_seconds: self.target_seconds - earlier.target_seconds,
            delivery_buckets: self.delivery_buckets.minus(&earlier.delivery_buckets),
            visible_buckets: self.visible_buckets.minus(&earlier.visible_buckets),
            ..self.clone()
        }
    }

    /// Deliveries expected (every outcome).
    pub fn expected(&self) -> u64 {
        self.deliveries.values().sum()
    }

    /// One count of a map, 0 when absent.
    pub fn count(map: &BTreeMap<&'static str, u64>, key: &str) -> u64 {
        map.get(key).copied().unwrap_or(0)
    }
}

fn labelled<T: Copy>(
    vec: &IntCounterVec,
    all: &'static [T],
    label: impl Fn(T) -> &'static str,
) -> Vec<IntCounter> {
    all.iter()
        .map(|v| vec.with_label_values(&[label(*v)]))
        .collect()
}

fn read(
    counters: &[IntCounter],
    labels: impl Iterator<Item = &'static str>,
) -> BTreeMap<&'static str, u64> {
    labels.zip(counters).map(|(l, c)| (l, c.get())).collect()
}

impl E2eMetrics {
    /// Create every e2e family in `r`, with every label value at 0. `buckets`: [`E2E_BUCKETS`]
    /// plus every e2e latency threshold ([`crate::measure::slo::e2e_latency_buckets`]).
    pub fn register(r: &Registry, buckets: &[f64]) -> Self {
        Self::register_with(r, buckets, true)
    }

    /// [`E2eMetrics::register`]; the queue's gauges only when `queue` is watched (an unwatched
    /// queue exports nothing, rather than an "unknown" that would alert forever).
    pub fn register_with(r: &Registry, buckets: &[f64], queue: bool) -> Self {
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            r.register(c).expect("e2e metrics are registered once");
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(c.clone()));
            c
        };
        let histogram = |name: &str, help: &str, b: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(b.to_vec()))
                .expect("valid metric");
            reg(Box::new(h.clone()));
            h
        };
        let counter = |name: &str, help: &str| {
            let c = Counter::new(name, help).expect("valid metric");
            reg(Box::new(c.clone()));
            c
        };
        let deliveries = counter_vec(
            "chatload_e2e_deliveries_total",
            "Expected deliveries (a message to one subscriber that was ready when it was posted) by outcome: ok, lost (not received by e2e.delivery_timeout), aborted (the subscriber disconnected meanwhile).",
            &["outcome"],
        );
        let messages = counter_vec(
            "chatload_e2e_messages_total",
            "Acknowledged posts by fan-out, counted at their delivery timeout: complete, partial, none, no_recipients.",
            &["fanout"],
        );
        let anomalies = counter_vec(
            "chatload_e2e_anomalies_total",
            "Deliveries that should not have happened: duplicate, out_of_order (along happens-before), late, ghost (of a refused post), unknown (an id never posted), misrouted (to a subscriber of another channel), unparseable.",
            &["kind"],
        );
        let ws_connects = counter_vec(
            "chatload_e2e_ws_connects_total",
            "WebSocket connection attempts by outcome: ok, refused, timeout, rejected, error.",
            &["outcome"],
        );
        let ws_disconnects = counter_vec(
            "chatload_e2e_ws_disconnects_total",
            "Subscriber sockets closed, by reason: close_frame, eof, reset, ping_timeout, protocol.",
            &["reason"],
        );
        let visibility = counter_vec(
            "chatload_e2e_visibility_checks_total",
            "Database read-backs of acknowledged posts by outcome: visible, not_visible, error.",
            &["outcome"],
        );
        let m = Self {
            http_responses: counter_vec(
                "chatload_e2e_http_responses_total",
                "API responses by status class (none: no response).",
                &["op", "code_class"],
            ),
            http_connects: counter_vec(
                "chatload_e2e_http_connects_total",
                "API connections dialled (inline, inside a request's latency) by outcome; over requests it shows keep-alive reuse.",
                &["op", "outcome"],
            ),
            delivery: histogram(
                "chatload_e2e_delivery_seconds",
                "Per expected recipient, from the post's scheduled start to the first receipt; lost and aborted deliveries at e2e.delivery_timeout.",
                buckets,
            ),
            delivery_service: histogram(
                "chatload_e2e_delivery_service_seconds",
                "Per recipient, from the post's send to the first receipt (received ones only).",
                buckets,
            ),
            fanout_seconds: histogram(
                "chatload_e2e_fanout_seconds",
                "Per message, from the scheduled start to the receipt by its last expected recipient (complete fan-outs only).",
                buckets,
            ),
            deliveries: labelled(&deliveries, Delivery::ALL, Delivery::label),
            messages: labelled(&messages, Fanout::ALL, Fanout::label),
            anomalies: labelled(&anomalies, Anomaly::ALL, Anomaly::label),
            subscribers: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "chatload_e2e_subscribers",
                        "WebSocket subscribers by state: target, connecting, ready.",
                    ),
                    &["state"],
                )
                .expect("valid metric");
                reg(Box::new(g.clone()));
                g
            },
            ready_seconds: counter(
                "chatload_e2e_subscriber_ready_seconds_total",
                "Subscriber-seconds spent ready (over chatload_e2e_subscriber_target_seconds_total: the time-averaged ready share).",
            ),
            target_seconds: counter(
                "chatload_e2e_subscriber_target_seconds_total",
                "Subscriber-seconds targeted.",
            ),
            ws_connect: histogram(
                "chatload_e2e_ws_connect_seconds",
                "WebSocket connect latency: dial, TLS, upgrade and the subscribe acknowledgement; failed attempts at e2e.request_timeout.",
                buckets,
            ),
            ws_ping: histogram(
                "chatload_e2e_ws_ping_seconds",
                "Ping to pong on subscriber sockets: the transport's own latency.",
                buckets,
            ),
            ws_connects: labelled(&ws_connects, WsConnect::ALL, WsConnect::label),
            ws_disconnects: labelled(&ws_disconnects, WsDisconnect::ALL, WsDisconnect::label),
            visible: histogram(
                "chatload_e2e_visible_seconds",
                "From a sampled post's scheduled start until it was read back from the database; not visible ones at e2e.visibility.deadline.",
                buckets,
            ),
            visibility: labelled(&visibility, Visibility::ALL, Visibility::label),
            queue_depth: {
                let g = Gauge::new(
                    "chatload_e2e_queue_depth",
                    "Depth of the service's ingest queue at the last successful read (LLEN, or lag + pending); kept when a read fails.",
                )
                .expect("valid metric");
                if queue {
                    reg(Box::new(g.clone()));
                }
                g
            },
            queue_up: {
                let g = IntGauge::new(
                    "chatload_e2e_queue_up",
                    "1 when the last read of the queue's depth succeeded, else 0 (the depth is then unknown).",
                )
                .expect("valid metric");
                if queue {
                    reg(Box::new(g.clone()));
                }
                g
            },
            read_checks: counter_vec(
                "chatload_e2e_read_checks_total",
                "Successful API reads by result: fresh, or stale (missing the channel's newest post acknowledged more than 1 s before the read).",
                &["result"],
            ),
            pending: {
                let g = IntGauge::new(
                    "chatload_e2e_pending",
                    "Posts awaiting their delivery timeout in the canary's ledger.",
                )
                .expect("valid metric");
                reg(Box::new(g.clone()));
                g
            },
            rx_lag: histogram(
                "chatload_e2e_rx_lag_seconds",
                "How late the canary's receiving thread woke up (its own health: a high value means chatload, not the service, was slow).",
                super::metrics::SCHEDULE_LAG_BUCKETS,
            ),
            exact: Mutex::new(Exact::new()),
            queue_max: AtomicI64::new(-1),
            queue_seen: AtomicBool::new(false),
        };
        for op in ["api_post", "api_read"] {
            for class in CODE_CLASSES {
                m.http_responses.with_label_values(&[op, class]);
            }
            for outcome in ["ok", "error", "timeout"] {
                m.http_connects.with_label_values(&[op, outcome]);
            }
        }
        for state in ["target", "connecting", "ready"] {
            m.subscribers.with_label_values(&[state]);
        }
        for result in ["fresh", "stale"] {
            m.read_checks.with_label_values(&[result]);
        }
        m
    }

    fn exact(&self) -> std::sync::MutexGuard<'_, Exact> {
        self.exact.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A first receipt `from_schedule` after the post's scheduled start and `from_send` after its send.
    pub fn delivered(&self, from_schedule: Duration, from_send: Duration) {
        let mut e = self.exact();
        self.deliveries[Delivery::Ok as usize].inc();
        self.delivery.observe(from_schedule.as_secs_f64());
        self.delivery_service.observe(from_send.as_secs_f64());
        e.delivery.saturating_record(micros(from_schedule));
    }

    /// `n` expected deliveries that did not happen, observed at `timeout`.
    pub fn not_delivered(&self, outcome: Delivery, n: u64, timeout: Duration) {
        if n == 0 {
            return;
        }
        let mut e = self.exact();
        self.deliveries[outcome as usize].inc_by(n);
        for _ in 0..n {
            self.delivery.observe(timeout.as_secs_f64());
        }
        e.delivery.saturating_record_n(micros(timeout), n);
    }

    /// A message's fan-out ended; `last` is the last expected receipt of a complete one.
    pub fn fanout(&self, f: Fanout, last: Option<Duration>) {
        self.messages[f as usize].inc();
        if let Some(d) = last {
            self.fanout_seconds.observe(d.as_secs_f64());
        }
    }

    /// One anomaly.
    pub fn anomaly(&self, a: Anomaly) {
        self.anomalies[a as usize].inc();
    }

    /// A WebSocket connect ended; failures are observed at `timeout` or later.
    pub fn ws_connected(&self, outcome: WsConnect, took: Duration, timeout: Duration) {
        let took = if outcome == WsConnect::Ok {
            took
        } else {
            took.max(timeout)
        };
        let mut e = self.exact();
        self.ws_connects[outcome as usize].inc();
        self.ws_connect.observe(took.as_secs_f64());
        e.ws_connect.saturating_record(micros(took));
    }

    /// A subscriber's socket closed.
    pub fn ws_disconnected(&self, reason: WsDisconnect) {
        self.ws_disconnects[reason as usize].inc();
    }

    /// A pong came back.
    pub fn ws_ping(&self, d: Duration) {
        self.ws_ping.observe(d.as_secs_f64());
    }

    /// A read-back ended, `took` from the scheduled start (the deadline, when not visible).
    pub fn visible(&self, outcome: Visibility, took: Duration) {
        let mut e = self.exact();
        self.visibility[outcome as usize].inc();
        self.visible.observe(took.as_secs_f64());
        e.visible.saturating_record(micros(took));
    }

    /// The queue's depth was read (`None`: the read failed; the depth is kept, `queue_up` is 0).
    pub fn queue(&self, depth: Option<u64>) {
        match depth {
            Some(d) => {
                self.queue_depth.set(d as f64);
                self.queue_up.set(1);
                self.queue_seen.store(true, Ordering::Relaxed);
                self.queue_max
                    .fetch_max(i64::try_from(d).unwrap_or(i64::MAX), Ordering::Relaxed);
            }
            None => self.queue_up.set(0),
        }
    }

    /// An API read was fresh or stale.
    pub fn read_check(&self, fresh: bool) {
        self.read_checks
            .with_label_values(&[if fresh { "fresh" } else { "stale" }])
            .inc();
    }

    /// The subscriber population now.
    pub fn subscribers(&self, target: i64, connecting: i64, ready: i64) {
        self.subscribers.with_label_values(&["target"]).set(target);
        self.subscribers
            .with_label_values(&["connecting"])
            .set(connecting);
        self.subscribers.with_label_values(&["ready"]).set(ready);
    }

    /// `seconds` passed with `ready` of `target` subscribers ready.
    pub fn subscriber_time(&self, seconds: f64, ready: i64, target: i64) {
        self.ready_seconds.inc_by(seconds * ready.max(0) as f64);
        self.target_seconds.inc_by(seconds * target.max(0) as f64);
    }

    /// Posts awaiting their delivery timeout.
    pub fn set_pending(&self, n: usize) {
        self.pending.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The receiving thread woke up `lag` late.
    pub fn rx_lag(&self, lag: Duration) {
        self.rx_lag.observe(lag.as_secs_f64());
        self.exact().rx_lag.saturating_record(micros(lag));
    }

    /// An API response of `code_class` (`none`: no response).
    pub fn http_response(&self, op: &str, code_class: &str) {
        self.http_responses
            .with_label_values(&[op, code_class])
            .inc();
    }

    /// An API connection was dialled.
    pub fn http_connect(&self, op: &str, outcome: &str) {
        self.http_connects.with_label_values(&[op, outcome]).inc();
    }

    /// Counts so far; percentiles since the start or the last [`E2eMetrics::begin_window`].
    pub fn snapshot(&self) -> E2eSnapshot {
        let e = self.exact();
        self.snapshot_locked(&e)
    }

    /// Start a measuring window: the counts so far, the exact histograms emptied at the same
    /// instant (but the WebSocket connects', see [`E2eSnapshot::minus_counts`]), and the window's
    /// deepest queue forgotten.
    pub fn begin_window(&self) -> E2eSnapshot {
        let mut e = self.exact();
        let s = self.snapshot_locked(&e);
        let ws_connect = std::mem::replace(&mut e.ws_connect, exact_histogram());
        *e = Exact::new();
        e.ws_connect = ws_connect;
        self.queue_max.store(-1, Ordering::Relaxed);
        if self.queue_up.get() == 1 {
            self.queue_max
                .store(self.queue_depth.get() as i64, Ordering::Relaxed);
        }
        s
    }

    fn snapshot_locked(&self, e: &Exact) -> E2eSnapshot {
        let max = self.queue_max.load(Ordering::Relaxed);
        E2eSnapshot {
            deliveries: read(&self.deliveries, Delivery::ALL.iter().map(|d| d.label())),
            messages: read(&self.messages, Fanout::ALL.iter().map(|d| d.label())),
            anomalies: read(&self.anomalies, Anomaly::ALL.iter().map(|d| d.label())),
            ws_connects: read(&self.ws_connects, WsConnect::ALL.iter().map(|d| d.label())),
            ws_disconnects: read(
                &self.ws_disconnects,
                WsDisconnect::ALL.iter().map(|d| d.label()),
            ),
            visibility: read(&self.visibility, Visibility::ALL.iter().map(|d| d.label())),
            reads: ["fresh", "stale"]
                .into_iter()
                .map(|r| (r, self.read_checks.with_label_values(&[r]).get()))
                .collect(),
            http_connects: ["api_post", "api_read"]
                .into_iter()
                .map(|op| (op, self.http_connects.with_label_values(&[op, "ok"]).get()))
                .collect(),
            ready_seconds: self.ready_seconds.get(),
            target_seconds: self.target_seconds.get(),
            subscribers_ready: self.subscribers.with_label_values(&["ready"]).get(),
            subscribers_target: self.subscribers.with_label_values(&["target"]).get(),
            pending: self.pending.get(),
            queue_depth: self
                .queue_seen
                .load(Ordering::Relaxed)
                .then(|| self.queue_depth.get()),
            queue_depth_max: (max >= 0).then_some(max as f64),
            queue_up: self.queue_up.get() == 1,
            delivery: Percentiles::of(&e.delivery),
            ws_connect: Percentiles::of(&e.ws_connect),
            visible: Percentiles::of(&e.visible),
            api: Percentiles::default(),
            rx_lag: Percentiles::of(&e.rx_lag),
            delivery_buckets: BucketCounts::of(&self.delivery),
            ws_connect_buckets: BucketCounts::of(&self.ws_connect),
            visible_buckets: BucketCounts::of(&self.visible),
        }
    }
}

/// Everything the canary measured: its own families and its two API ops.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct E2eView {
    /// Deliveries, subscribers, visibility, the queue.
    pub canary: E2eSnapshot,
    /// `api_post`.
    pub post: super::record::OpSnapshot,
    /// `api_read`.
    pub read: super::record::OpSnapshot,
}

impl E2eView {
    /// Counts since `earlier`.
    pub fn minus_counts(&self, earlier: &E2eView) -> E2eView {
        E2eView {
            canary: self.canary.minus_counts(&earlier.canary),
            post: self.post.minus_counts(&earlier.post),
            read: self.read.minus_counts(&earlier.read),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_thresholds_are_exact_bucket_bounds() {
        for t in [0.03, 0.05, 0.08, 0.1, 0.2, 0.5, 1.0, 2.0] {
            assert!(E2E_BUCKETS.contains(&t), "{t}");
        }
        assert!(E2E_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn losses_weigh_in_the_latency_and_every_series_exists_at_zero() {
        let r = Registry::new();
        let m = E2eMetrics::register(&r, E2E_BUCKETS);
        let text = {
            let mut buf = Vec::new();
            prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), &mut buf)
                .unwrap();
            String::from_utf8(buf).unwrap()
        };
        for s in [
            r#"chatload_e2e_deliveries_total{outcome="lost"} 0"#,
            r#"chatload_e2e_anomalies_total{kind="out_of_order"} 0"#,
            r#"chatload_e2e_ws_disconnects_total{reason="ping_timeout"} 0"#,
            r#"chatload_e2e_http_responses_total{code_class="5xx",op="api_post"} 0"#,
            "chatload_e2e_queue_up 0",
        ] {
            assert!(text.contains(s), "{s} in\n{text}");
        }
        let before = m.begin_window();
        m.delivered(Duration::from_millis(10), Duration::from_millis(5));
        m.not_delivered(Delivery::Lost, 3, Duration::from_secs(5));
        let s = m.snapshot().minus_counts(&before);
        assert_eq!(s.expected(), 4);
        assert_eq!(s.delivery.count, 4);
        assert!(s.delivery.p50 >= 4.9, "losses are observed at the timeout");
        assert_eq!(s.delivery_buckets.above(0.2), Some(3));
    }

    #[test]
    fn connects_are_judged_over_the_whole_run() {
        let m = E2eMetrics::register(&Registry::new(), E2E_BUCKETS);
        m.ws_connected(
            WsConnect::Ok,
            Duration::from_millis(3),
            Duration::from_secs(2),
        );
        m.ws_connected(
            WsConnect::Refused,
            Duration::from_millis(1),
            Duration::from_secs(2),
        );
        let start = m.begin_window();
        m.delivered(Duration::from_millis(1), Duration::from_millis(1));
        let w = m.snapshot().minus_counts(&start);
        assert_eq!(E2eSnapshot::count(&w.ws_connects, "ok"), 1);
        assert_eq!(w.ws_connect_buckets.count, 2);
        assert_eq!(w.ws_connect.count, 2);
        assert!(
            w.ws_connect.max >= 1.99,
            "a refused connect counts at the timeout"
        );
        assert_eq!(w.expected(), 1);
    }

    #[test]
    fn an_unwatched_queue_exports_nothing() {
        let r = Registry::new();
        let _m = E2eMetrics::register_with(&r, E2E_BUCKETS, false);
        let names: Vec<String> = r.gather().iter().map(|f| f.name().to_string()).collect();
        assert!(
            !names.iter().any(|n| n.starts_with("chatload_e2e_queue")),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n == "chatload_e2e_deliveries_total"));
    }

    #[test]
    fn an_unread_queue_is_unknown_not_zero() {
        let m = E2eMetrics::register(&Registry::new(), E2E_BUCKETS);
        m.begin_window();
        m.queue(None);
        let s = m.snapshot();
        assert_eq!(
            (s.queue_depth, s.queue_depth_max, s.queue_up),
            (None, None, false)
        );
        m.queue(Some(7));
        m.queue(Some(3));
        m.queue(None);
        let s = m.snapshot();
        assert_eq!(
            (s.queue_depth, s.queue_depth_max, s.queue_up),
            (Some(3.0), Some(7.0), false)
        );
    }
}
