//! Every metric chatsvc exports: names, help texts and buckets defined here once, handles created
//! at start so that no request looks a metric up by name. All names start with `chatsvc_`; the
//! process collector adds the usual `process_*` families.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `route` label of the HTTP metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/v1/channels/{id}/messages`.
    Post,
    /// `GET /api/v1/channels/{id}/messages`.
    Read,
    /// Everything else (health, metrics, admin, the WebSocket upgrade, 404s).
    Other,
}

const ROUTES: [&str; 3] = ["post", "read", "other"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// What `chatsvc_injected_total{fault}` counts: one handle per fault.
pub struct Injected {
    /// A (message, socket) delivery left out.
    pub drop: IntCounter,
    /// An extra copy of a message sent to a socket.
    pub duplicate: IntCounter,
    /// A delivery sent `hold_ms` late.
    pub hold: IntCounter,
    /// An API request held `stall_ms` before being handled.
    pub stall: IntCounter,
    /// A (message, socket) delivery left out because fan-out is off.
    pub fanout_off: IntCounter,
}

/// What `chatsvc_worker_messages_total{outcome}` counts.
pub struct WorkerOutcomes {
    /// Stored in Cassandra (and then published).
    pub stored: IntCounter,
    /// The INSERT failed: not published.
    pub failed: IntCounter,
    /// The queue entry was not a delivery payload: dropped.
    pub invalid: IntCounter,
}

/// The metrics of one chatsvc process (all roles register all of them).
pub struct Metrics {
    registry: Registry,
    /// `chatsvc_http_requests_total{route,code}`, indexed `[route][status class - 1]`.
    http_requests: [[IntCounter; 5]; 3],
    /// `chatsvc_http_request_seconds{route}`.
    http_seconds: [Histogram; 3],
    /// `chatsvc_publish_failures_total`.
    pub publish_failures: IntCounter,
    /// `chatsvc_injected_total{fault}`.
    pub injected: Injected,
    /// `chatsvc_worker_messages_total{outcome}`.
    pub worker_messages: WorkerOutcomes,
    /// `chatsvc_worker_insert_failures_total`.
    pub worker_insert_failures: IntCounter,
    /// `chatsvc_worker_batch_size`.
    pub worker_batch_size: Histogram,
    /// `chatsvc_worker_commit_seconds`.
    pub worker_commit_seconds: Histogram,
    /// `chatsvc_ws_connections`.
    pub ws_connections: IntGauge,
    /// `chatsvc_ws_connects_total`.
    pub ws_connects: IntCounter,
    /// `chatsvc_ws_deliveries_total`.
    pub ws_deliveries: IntCounter,
    /// `chatsvc_ws_slow_closed_total`.
    pub ws_slow_closed: IntCounter,
    /// `chatsvc_pubsub_reconnects_total`.
    pub pubsub_reconnects: IntCounter,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help).expect("valid metric"))
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    register(r, Histogram::with_opts(opts).expect("valid metric"))
}

impl Metrics {
    /// Register everything, every label value present at 0.
    pub fn new() -> Self {
        let r = Registry::new();
        let requests = counter_vec(
            &r,
            "chatsvc_http_requests_total",
            "HTTP requests answered, by route (post, read, other) and status class.",
            &["route", "code"],
        );
        let seconds = register(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "chatsvc_http_request_seconds",
                    "Time from a request's head being read to its response being ready, by route \
                     (includes an injected stall).",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ]),
                &["route"],
            )
            .expect("valid metric"),
        );
        let injected = counter_vec(
            &r,
            "chatsvc_injected_total",
            "Faults injected through /admin/faults: drop, duplicate and hold per (message, socket) \
             delivery, fanout_off per delivery not made, stall per API request held.",
            &["fault"],
        );
        let outcomes = counter_vec(
            &r,
            "chatsvc_worker_messages_total",
            "Queue entries the worker took, by outcome: stored (then published), failed (INSERT \
             failed, not published), invalid (not a delivery payload).",
            &["outcome"],
        );
        let m = Self {
            http_requests: ROUTES
                .map(|route| CLASSES.map(|class| requests.with_label_values(&[route, class]))),
            http_seconds: ROUTES.map(|route| seconds.with_label_values(&[route])),
            publish_failures: counter(
                &r,
                "chatsvc_publish_failures_total",
                "Messages stored in Cassandra whose PUBLISH to their channel failed (api direct \
                 mode and worker).",
            ),
            injected: Injected {
                drop: injected.with_label_values(&["drop"]),
                duplicate: injected.with_label_values(&["duplicate"]),
                hold: injected.with_label_values(&["hold"]),
                stall: injected.with_label_values(&["stall"]),
                fanout_off: injected.with_label_values(&["fanout_off"]),
            },
            worker_messages: WorkerOutcomes {
                stored: outcomes.with_label_values(&["stored"]),
                failed: outcomes.with_label_values(&["failed"]),
                invalid: outcomes.with_label_values(&["invalid"]),
            },
            worker_insert_failures: counter(
                &r,
                "chatsvc_worker_insert_failures_total",
                "INSERTs of the worker that failed (the message is not published).",
            ),
            worker_batch_size: histogram(
                &r,
                "chatsvc_worker_batch_size",
                "Entries per batch the worker took off the queue.",
                vec![1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0],
            ),
            worker_commit_seconds: histogram(
                &r,
                "chatsvc_worker_commit_seconds",
                "Queue-to-database latency: from the message's timestamp (receipt by the api) to its \
                 INSERT completing, for stored messages.",
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0,
                ],
            ),
            ws_connections: register(
                &r,
                IntGauge::new("chatsvc_ws_connections", "Open WebSocket connections.")
                    .expect("valid metric"),
            ),
            ws_connects: counter(
                &r,
                "chatsvc_ws_connects_total",
                "WebSocket connections accepted (upgrades completed).",
            ),
            ws_deliveries: counter(
                &r,
                "chatsvc_ws_deliveries_total",
                "Message frames written to WebSocket clients (acks and pongs not included).",
            ),
            ws_slow_closed: counter(
                &r,
                "chatsvc_ws_slow_closed_total",
                "WebSocket connections closed with 1008 because their send queue was full.",
            ),
            pubsub_reconnects: counter(
                &r,
                "chatsvc_pubsub_reconnects_total",
                "Times the gateway's Redis pub/sub connection broke and was reopened.",
            ),
            registry: r,
        };
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registers once");
        m
    }

    /// Count one answered request.
    pub fn observe_request(&self, route: Route, status: u16, seconds: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.http_requests[route as usize][class].inc();
        self.http_seconds[route as usize].observe(seconds);
    }

    /// The Prometheus text format of everything.
    pub fn encode(&self) -> Vec<u8> {
        chatload::measure::metrics::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_and_outcome_is_exported_at_zero() {
        let text = String::from_utf8(Metrics::new().encode()).unwrap();
        for fault in ["drop", "duplicate", "hold", "stall", "fanout_off"] {
            let line = format!("chatsvc_injected_total{{fault=\"{fault}\"}} 0");
            assert!(text.contains(&line), "missing {line}");
        }
        for outcome in ["stored", "failed", "invalid"] {
            assert!(text.contains(&format!("outcome=\"{outcome}\"")));
        }
        assert!(text.contains("chatsvc_http_requests_total{code=\"5xx\",route=\"post\"} 0"));
    }
}
