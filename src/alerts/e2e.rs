//! The end-to-end canary's alerts. Its series exist only where `[e2e]` runs, so elsewhere these
//! rules match nothing.

use super::rules::Severity::{Critical, Warning};
use super::rules::{Alerts, bad_ratio, budget, num, pct};
use crate::config::Config;
use crate::measure::slo::{Slo, WINDOW_PROMQL};

/// The canary's threshold alerts, added to `a` (its delivery-success burn rates are in `burn.rs`).
pub(super) fn alerts(cfg: &Config, model: &[Slo], a: &mut Alerts) {
    let s = &cfg.slo;
    let slow = |key: &str| {
        format!(
            "({}) > {}",
            bad_ratio(model, key, WINDOW_PROMQL),
            num(budget(model, key))
        )
    };
    a.add(
        ("ChatloadE2EDeliverySlow", "10m", Warning),
        slow("e2e_delivery_p95"),
        "Chat messages reach subscribers slower than the SLO",
        format!("More than {} of expected deliveries (from the post's scheduled start; lost ones count at e2e.delivery_timeout) took longer than {} for 10 minutes.", pct(budget(model, "e2e_delivery_p95")), s.e2e_delivery_p95),
    );
    a.add(
        ("ChatloadE2EFanoutAnomalies", "0m", Critical),
        "sum by (job, instance, kind) (increase(chatload_e2e_anomalies_total{kind=~\"duplicate|out_of_order|ghost|misrouted\"}[5m])) > 0",
        "The chat service delivered {{ $labels.kind }} messages",
        "Subscribers received duplicate messages, messages out of order (after one sent only once the first was acknowledged), messages the API had refused, or messages of another channel. chatload counts each exactly; none is expected.",
    );
    a.add(
        ("ChatloadE2EWsConnectSlow", "10m", Warning),
        slow("e2e_ws_connect_p95"),
        "WebSocket connects are slower than the SLO",
        format!("More than {} of WebSocket connects (dial, TLS, upgrade, subscribe acknowledgement; failed ones at e2e.request_timeout) took longer than {} for 10 minutes.", pct(budget(model, "e2e_ws_connect_p95")), s.e2e_ws_connect_p95),
    );
    a.add(
        ("ChatloadE2ESubscribersDown", "5m", Critical),
        format!(
            "sum by (job, instance) (rate(chatload_e2e_subscriber_ready_seconds_total[{WINDOW_PROMQL}])) / sum by (job, instance) (rate(chatload_e2e_subscriber_target_seconds_total[{WINDOW_PROMQL}])) < {}",
            num(s.e2e_subscribers_ready)
        ),
        "Only {{ $value | humanizePercentage }} of the canary's WebSocket subscribers are connected",
        format!("Fewer than {} of the subscribers were ready over 5 minutes: the gateway refuses, drops or never acknowledges sockets.", pct(s.e2e_subscribers_ready)),
    );
    a.add(
        ("ChatloadE2EApiErrors", "5m", Critical),
        format!("({}) > {}", bad_ratio(model, "e2e_api_success", WINDOW_PROMQL), num(budget(model, "e2e_api_success"))),
        "{{ $value | humanizePercentage }} of chat API requests fail",
        format!("More than {} of the canary's posts and reads got no 2xx (errors, overload, timeouts, refused or dropped connections) for 5 minutes.", pct(budget(model, "e2e_api_success"))),
    );
    a.add(
        ("ChatloadE2EApiSlow", "10m", Warning),
        slow("e2e_api_p95"),
        "Chat API requests are slower than the SLO",
        format!("More than {} of API requests (from the scheduled start: a stalled API shows here, never hidden in a client queue) took longer than {} for 10 minutes.", pct(budget(model, "e2e_api_p95")), s.e2e_api_p95),
    );
    a.add(
        ("ChatloadE2EVisibilitySlow", "10m", Warning),
        slow("e2e_visible_p95"),
        "Posted messages take too long to become readable from the database",
        format!("More than {} of sampled posts were not readable by primary key within {} of their scheduled start for 10 minutes: the ingest path (queue, worker) lags.", pct(budget(model, "e2e_visible_p95")), s.e2e_visible_p95),
    );
    a.add(
        ("ChatloadE2EQueueUnknown", "2m", Warning),
        "chatload_e2e_queue_up == 0",
        "The depth of the chat service's ingest queue is unknown",
        "chatload cannot read the queue's depth from Redis: Redis is down or slow, or the key or group is wrong. The depth gauge keeps its last value, which may be stale.",
    );
    // The depth comes first: `and` keeps its left side's value, which the summary quotes.
    a.add(
        ("ChatloadE2EQueueGrowing", "5m", Warning),
        format!(
            "chatload_e2e_queue_depth > {} and deriv(chatload_e2e_queue_depth[5m]) > 0",
            num(s.e2e_queue_depth_max)
        ),
        "The chat service's ingest queue holds {{ $value }} messages and grows",
        format!("The queue is deeper than {} and still growing: the workers do not keep up with the posts.", num(s.e2e_queue_depth_max)),
    );
}
