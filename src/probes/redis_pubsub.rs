//! `redis_pubsub`: real-time fan-out. A subscriber (its own connection, kept across runs) receives
//! what the probe publishes on its channel; each message's publish-to-receive latency is measured,
//! and messages not received before the run's timeout are `lost`.

use super::{Probe, ProbeContext, ProbeError, Verdict};
use crate::config::Config;
use futures::StreamExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The probe.
pub struct RedisPubsub {
    client: Option<redis::Client>,
    subscriber: Mutex<Option<redis::aio::PubSubStream>>,
}

impl RedisPubsub {
    /// A probe for `cfg.redis.url`.
    pub fn new(cfg: &Config) -> Self {
        Self {
            client: crate::backend::redis::client(&cfg.redis).ok(),
            subscriber: Mutex::new(None),
        }
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
    ProbeError::Redis(crate::backend::redis::RedisError::Command { command, cause })
}

impl Probe for RedisPubsub {
    fn name(&self) -> &'static str {
        "redis_pubsub"
    }

    fn needs_scylla(&self) -> bool {
        false
    }

    fn checks(&self) -> &'static [&'static str] {
        &["lost"]
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let channel = channel(ctx);
            let mut guard = self.subscriber.lock().await;
            if guard.is_none() {
                let client = self
                    .client
                    .as_ref()
                    .ok_or_else(|| ProbeError::Other("redis.url cannot be used".into()))?;
                let mut pubsub = client
                    .get_async_pubsub()
                    .await
                    .map_err(|e| redis_error("SUBSCRIBE", e))?;
                pubsub
                    .subscribe(&channel)
                    .await
                    .map_err(|e| redis_error("SUBSCRIBE", e))?;
                *guard = Some(pubsub.into_on_message());
            }
            let stream = guard.as_mut().expect("just subscribed");

            let n = ctx.cfg().probes.redis_pubsub.messages;
            let run = rand::random::<u32>();
            let mut sent: HashMap<String, Instant> = HashMap::with_capacity(n as usize);
            for seq in 0..n {
                let payload = format!("{run}:{seq}");
                sent.insert(payload.clone(), Instant::now());
                let _: i64 = ctx
                    .redis
                    .query("PUBLISH", redis::cmd("PUBLISH").arg(&channel).arg(&payload))
                    .await?;
            }
            let mut v = Verdict::default();
            // Leave a little of the run's timeout for the bookkeeping.
            let deadline =
                Instant::now() + ctx.cfg().probes.redis_pubsub.timeout.get().mul_f64(0.8);
            while !sent.is_empty() {
                let msg = tokio::select! {
                    m = stream.next() => m,
                    _ = tokio::time::sleep_until(deadline) => break,
                };
                let Some(msg) = msg else {
                    // The subscription ended (connection lost): subscribe again next run.
                    *guard = None;
                    return Err(ProbeError::Other(
                        "the pub/sub subscription was closed".into(),
                    ));
                };
                let payload: String = msg.get_payload().unwrap_or_default();
                // Messages of earlier runs that arrived late are ignored: they were counted lost.
                if let Some(at) = sent.remove(&payload) {
                    v.measured(at.elapsed());
                }
            }
            v.fail("lost", sent.len() as u64);
            Ok(v)
        })
    }
}
