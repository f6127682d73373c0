//! `redis_pubsub`: real-time fan-out. A subscriber (its own connection, kept across runs) receives
//! what the probe publishes on its channel, while the probe is still publishing: each message's send
//! instant is noted just before its PUBLISH goes out, and its publish-to-receive latency is taken the
//! moment it arrives.
//!
//! A message not received by the run's deadline (80 % of the probe's `timeout` after the run's start)
//! is `lost`, and so is one whose PUBLISH failed or timed out before it arrived; each lost message is
//! observed at the deadline (the time from its publish to the deadline; from the start of publishing
//! for one the run never got to publish), so losses never make the latency look better. Only a
//! subscription that ended makes the run an `error` (it subscribes again on the next run).

use super::probe::{Probe, ProbeContext, ProbeError, Verdict};
use crate::config::{
    AlertSpec, Config, HumanDuration, ProbeConfig, ProbeSpec, ProbeTable, Rules, SloIndicator,
    SloSpec, SloValue, options_table, parse_as,
};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// Share of the run's `timeout` given to the exchange; the rest is left for the bookkeeping.
const DEADLINE_SHARE: f64 = 0.8;

/// The probe.
pub struct RedisPubsub {
    client: Option<redis::Client>,
    subscriber: tokio::sync::Mutex<Option<redis::aio::PubSubStream>>,
}

impl RedisPubsub {
    /// A probe for `cfg.redis.url`.
    pub fn new(cfg: &Config) -> Self {
        Self {
            client: crate::store::redis::client(&cfg.redis).ok(),
            subscriber: tokio::sync::Mutex::new(None),
        }
    }

    /// A subscription to `channel`.
    async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSubStream, ProbeError> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| ProbeError::Other("redis.url cannot be used".into()))?;
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .map_err(|e| redis_error("SUBSCRIBE", e))?;
        pubsub
            .subscribe(channel)
            .await
            .map_err(|e| redis_error("SUBSCRIBE", e))?;
        Ok(pubsub.into_on_message())
    }
}

/// The probe's channel.
pub fn channel(ctx: &ProbeContext) -> String {
    format!(
        "{}:probe:{}:{:08x}:pubsub",
        ctx.cfg().redis.key_prefix,
        ctx.cfg().instance.index,
        ctx.run_id
    )
}

fn redis_error(command: &'static str, cause: redis::RedisError) -> ProbeError {
    ProbeError::Redis(crate::store::redis::RedisError::Command { command, cause })
}

/// How the messages of one run fared.
#[derive(Debug, Default, PartialEq)]
pub struct Exchange {
    /// Each received message's publish-to-receive latency, and each lost one's wait until the deadline.
    pub latencies: Vec<Duration>,
    /// Messages not received by the deadline: their PUBLISH failed, was never sent, or they never came.
    pub lost: u64,
    /// The first PUBLISH error, if any.
    pub publish_error: Option<String>,
}

/// The subscription ended during the exchange.
#[derive(Debug, PartialEq)]
pub struct SubscriptionClosed;

/// What the publisher and the receiver of one exchange know, shared within one task.
#[derive(Default)]
struct Ledger {
    /// Messages published (or being published) and not received yet: when their PUBLISH was sent.
    in_flight: HashMap<String, Instant>,
    /// Messages whose PUBLISH failed before they arrived: when it was sent.
    failed: Vec<Instant>,
    /// Messages the publisher has started to publish.
    started: usize,
    /// Publish-to-receive latencies of the messages received.
    latencies: Vec<Duration>,
    /// The first PUBLISH error.
    publish_error: Option<String>,
}

impl Ledger {
    /// Note `payload`'s send instant; called before its PUBLISH goes out.
    fn sending(&mut self, payload: &str) {
        self.started += 1;
        self.in_flight.insert(payload.to_owned(), Instant::now());
    }

    /// `payload` arrived now. Messages of earlier runs (counted lost then) are ignored.
    fn arrived(&mut self, payload: &str) {
        if let Some(sent) = self.in_flight.remove(payload) {
            self.latencies.push(sent.elapsed());
        }
    }

    /// `payload`'s PUBLISH failed: lost, unless it arrived all the same.
    fn publish_failed(&mut self, payload: &str, error: &ProbeError) {
        if let Some(sent) = self.in_flight.remove(payload) {
            self.failed.push(sent);
        }
        self.publish_error.get_or_insert_with(|| error.to_string());
    }

    /// The outcome at the end of the exchange: every message not received is lost and observed at
    /// the deadline, from its send instant (from `start` for those never published).
    fn settle(self, messages: usize, start: Instant, deadline: Instant) -> Exchange {
        let unsent = messages.saturating_sub(self.started);
        let sent_and_lost = self.in_flight.values().chain(&self.failed);
        let lost = sent_and_lost.clone().count() + unsent;
        let mut latencies = self.latencies;
        latencies.extend(sent_and_lost.map(|sent| deadline.saturating_duration_since(*sent)));
        latencies.extend(std::iter::repeat_n(
            deadline.saturating_duration_since(start),
            unsent,
        ));
        Exchange {
            latencies,
            lost: lost as u64,
            publish_error: self.publish_error,
        }
    }
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publish each payload in turn, noting its send instant first; a failed PUBLISH does not stop the
/// others.
async fn publish_all<P, F>(payloads: Vec<String>, mut publish: P, ledger: &Mutex<Ledger>)
where
    P: FnMut(String) -> F,
    F: Future<Output = Result<(), ProbeError>>,
{
    for payload in payloads {
        lock(ledger).sending(&payload);
        if let Err(e) = publish(payload.clone()).await {
            lock(ledger).publish_failed(&payload, &e);
        }
    }
}

/// Publish `payloads` with `publish` while receiving `arrivals`, until every published message has
/// arrived or `deadline` has come. Both run on the calling task, so a message is timed the moment
/// it is read, even while later ones are still being published.
pub async fn exchange<P, F, S>(
    payloads: Vec<String>,
    publish: P,
    arrivals: &mut S,
    deadline: Instant,
) -> Result<Exchange, SubscriptionClosed>
where
    P: FnMut(String) -> F,
    F: Future<Output = Result<(), ProbeError>>,
    S: Stream<Item = String> + Unpin,
{
    let start = Instant::now();
    let messages = payloads.len();
    let ledger = Mutex::new(Ledger::default());
    {
        let publishing = publish_all(payloads, publish, &ledger);
        tokio::pin!(publishing);
        let mut published = false;
        while !(published && lock(&ledger).in_flight.is_empty()) {
            tokio::select! {
                () = &mut publishing, if !published => published = true,
                payload = arrivals.next() => lock(&ledger).arrived(&payload.ok_or(SubscriptionClosed)?),
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    let ledger = ledger.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(ledger.settle(messages, start, deadline))
}

/// `[probes.redis_pubsub]`'s own keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisPubsubOptions {
    /// Messages published per run.
    pub messages: u32,
}

impl Default for RedisPubsubOptions {
    fn default() -> Self {
        Self { messages: 20 }
    }
}

/// 1 to 1000 messages a run.
fn rules(table: &ProbeTable, r: &mut Rules) {
    let messages = table.options::<RedisPubsubOptions>().messages;
    if !(1..=1000).contains(&messages) {
        r.fail(
            "probes.redis_pubsub.messages",
            format!("must be between 1 and 1000, got {messages}"),
        );
    }
}

/// `[probes.redis_pubsub]`: what this probe is, its table, checks, SLOs, alerts and metrics.
pub const SPEC: ProbeSpec = ProbeSpec {
    name: "redis_pubsub",
    checks: &["lost"],
    needs_scylla: false,
    schedule: ProbeConfig::every(5, 2000),
    options: options_table::<RedisPubsubOptions>,
    parse: parse_as::<RedisPubsubOptions>,
    validate: rules,
    slos: &[SloSpec {
        key: "redis_pubsub_p99",
        default: SloValue::Duration(HumanDuration::from_millis(50)),
        indicator: SloIndicator::Latency {
            quantile: 0.99,
            selector: r#"probe="redis_pubsub""#,
        },
        alert: AlertSpec {
            name: "ChatloadRedisPubsubSlow",
            for_: "10m",
            expr: "",
            summary: "{{ $value | humanizePercentage }} of Redis fan-out messages are later than the SLO",
            description: "More than 1 % of the redis_pubsub probe's messages (lost ones count at the run's deadline) took longer than {threshold} from publish to receive for 10 minutes: real-time delivery is late.",
        },
    }],
    alerts: &[],
    metrics: &[],
};

/// The probe, as the registry makes it.
pub fn probe(cfg: &crate::config::Config) -> std::sync::Arc<dyn Probe> {
    std::sync::Arc::new(RedisPubsub::new(cfg))
}

impl Probe for RedisPubsub {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let cfg = ctx.cfg();
            let timeout = cfg
                .probes
                .schedule("redis_pubsub")
                .unwrap_or_else(|| SPEC.schedule.clone())
                .timeout;
            let messages = cfg
                .probes
                .options::<RedisPubsubOptions>("redis_pubsub")
                .messages;
            let deadline = Instant::now() + timeout.get().mul_f64(DEADLINE_SHARE);
            let channel = channel(ctx);
            let mut guard = self.subscriber.lock().await;
            if guard.is_none() {
                *guard = Some(self.subscribe(&channel).await?);
            }
            let stream = guard.as_mut().expect("just subscribed");
            let mut arrivals = stream.map(|msg| msg.get_payload::<String>().unwrap_or_default());

            let run = rand::random::<u32>();
            let payloads = (0..messages).map(|seq| format!("{run}:{seq}")).collect();
            let publish = |payload: String| {
                let channel = &channel;
                async move {
                    let mut cmd = redis::cmd("PUBLISH");
                    cmd.arg(channel).arg(payload);
                    ctx.redis.query::<i64>("PUBLISH", &cmd).await?;
                    Ok(())
                }
            };
            let Ok(exchange) = exchange(payloads, publish, &mut arrivals, deadline).await else {
                // The subscription ended (connection lost): subscribe again next run.
                *guard = None;
                return Err(ProbeError::Other(
                    "the pub/sub subscription was closed".into(),
                ));
            };
            if let Some(error) = &exchange.publish_error {
                warn!(probe = "redis_pubsub", %error, "PUBLISH failed: its messages count as lost");
            }
            let mut v = Verdict::default();
            exchange.latencies.into_iter().for_each(|d| v.measured(d));
            v.fail("lost", exchange.lost);
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc;

    const MS: Duration = Duration::from_millis(1);
    const ZERO: Duration = Duration::ZERO;

    fn payloads(n: u32) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    /// A fake Redis: PUBLISH delivers the message to the subscriber at once (unless `dropped`), then
    /// replies after `reply` (or fails, if `fails`).
    fn fake_publish(
        tx: &mpsc::UnboundedSender<String>,
        reply: Duration,
        dropped: &'static [&'static str],
        fails: &'static [&'static str],
    ) -> impl FnMut(String) -> BoxFuture<'static, Result<(), ProbeError>> {
        let tx = tx.clone();
        move |payload| {
            let tx = tx.clone();
            Box::pin(async move {
                if !dropped.contains(&payload.as_str()) {
                    tx.unbounded_send(payload.clone()).unwrap();
                }
                tokio::time::sleep(reply).await;
                if fails.contains(&payload.as_str()) {
                    return Err(ProbeError::Other("PUBLISH timed out".into()));
                }
                Ok(())
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_taken_at_arrival_while_later_messages_are_published() {
        let (tx, mut rx) = mpsc::unbounded();
        let deadline = Instant::now() + 10_000 * MS;
        // Each PUBLISH reply takes 100 ms, but the message is there at once.
        let publish = fake_publish(&tx, 100 * MS, &[], &[]);
        let e = exchange(payloads(5), publish, &mut rx, deadline)
            .await
            .unwrap();
        assert_eq!(e.latencies, [ZERO; 5]);
        assert_eq!(e.lost, 0);
        assert_eq!(e.publish_error, None);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_and_failed_messages_are_observed_at_the_deadline() {
        let (tx, mut rx) = mpsc::unbounded();
        let start = Instant::now();
        // PUBLISH takes 10 ms: "1" goes out at 10 ms and never arrives, "2" goes out at 20 ms and
        // its PUBLISH fails; the others arrive at once.
        let publish = fake_publish(&tx, 10 * MS, &["1", "2"], &["2"]);
        let e = exchange(payloads(4), publish, &mut rx, start + 1000 * MS)
            .await
            .unwrap();
        assert_eq!(e.lost, 2);
        let mut latencies = e.latencies;
        latencies.sort();
        assert_eq!(latencies, [ZERO, ZERO, 980 * MS, 990 * MS]);
        assert_eq!(e.publish_error.as_deref(), Some("PUBLISH timed out"));
        // It waited for "1" until the deadline.
        assert_eq!(Instant::now(), start + 1000 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_that_arrives_although_its_publish_failed_is_not_lost() {
        let (tx, mut rx) = mpsc::unbounded();
        let publish = fake_publish(&tx, 10 * MS, &[], &["0"]);
        let e = exchange(payloads(2), publish, &mut rx, Instant::now() + 1000 * MS)
            .await
            .unwrap();
        assert_eq!(e.lost, 0);
        assert_eq!(e.latencies, [ZERO; 2]);
        assert!(e.publish_error.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn messages_never_published_by_the_deadline_are_lost_from_the_start() {
        let (tx, mut rx) = mpsc::unbounded();
        let start = Instant::now();
        // 400 ms per PUBLISH: "0" and "1" by 800 ms, "2" is being published at the deadline.
        let publish = fake_publish(&tx, 400 * MS, &[], &[]);
        let e = exchange(payloads(5), publish, &mut rx, start + 1000 * MS)
            .await
            .unwrap();
        assert_eq!(e.lost, 2);
        assert_eq!(e.latencies, [ZERO, ZERO, ZERO, 1000 * MS, 1000 * MS]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_subscription_ends_the_exchange() {
        let (tx, mut rx) = mpsc::unbounded();
        drop(tx);
        let publish = |_: String| async { Ok::<(), ProbeError>(()) };
        let e = exchange(payloads(3), publish, &mut rx, Instant::now() + 1000 * MS).await;
        assert_eq!(e, Err(SubscriptionClosed));
    }
}
