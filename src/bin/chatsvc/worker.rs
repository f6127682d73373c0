//! The worker role (buffered mode): takes the ingest queue in batches, stores them, then publishes.
//!
//! List queue: `BRPOP {prefix}:ingest 1`, then `RPOP {prefix}:ingest 49` (LPUSH + RPOP: first in,
//! first out). Stream queue: consumer group `chatsvc-workers` (created with MKSTREAM from the
//! stream's start when missing), `XREADGROUP … COUNT 50 BLOCK 1000 STREAMS {prefix}:ingest >`, and
//! `XACK` + `XDEL` of what was stored (or could never be: not a payload). A batch's INSERTs run
//! concurrently (≤ [`MAX_INSERTS`]); only once all of them finished are the stored ones published,
//! in pop order, in one pipeline: fan-out always follows the database write and a channel's order
//! holds. A message whose INSERT failed is counted and not published (a list entry is lost; a
//! stream entry stays pending in the group, unacknowledged).

use crate::api::insert;
use crate::wire::{Delivery, channel_key, ingest_key, now_ms};
use crate::{LogLimiter, Queue, Shared, redis_manager};
use chatload::store::health::Backoff;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Most INSERTs of a batch in flight at once.
pub const MAX_INSERTS: usize = 64;
/// Most entries per batch.
const BATCH: usize = 50;
/// The stream queue's consumer group.
pub const GROUP: &str = "chatsvc-workers";
/// Response timeout of the popping connection (its commands block for up to 1 s).
const POP_TIMEOUT: Duration = Duration::from_secs(5);

static INSERT_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(5));
static POP_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(5));
static PUBLISH_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(5));

/// One queue entry: its stream id (stream queue) and its payload.
struct Entry {
    id: Option<String>,
    payload: String,
}

/// Take batches until shutdown. A batch once taken is finished (stored, published, acknowledged)
/// before the loop looks at the shutdown again.
pub async fn run(shared: Arc<Shared>) {
    let Some(backends) = shared.connected().await else {
        return;
    };
    let cassandra = backends
        .cassandra
        .as_ref()
        .expect("the worker connects Cassandra");
    let popper = redis_manager(&shared.redis_client, POP_TIMEOUT).expect("the client is valid");
    let key = ingest_key(&shared.opts.prefix);
    let consumer = format!("chatsvc-{}", std::process::id());
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut group_ready = false;
    info!(queue = ?shared.opts.queue, %key, "worker started");
    while !shared.shutdown.is_cancelled() {
        let popped = match shared.opts.queue {
            Queue::List => pop_list(&popper, &key).await,
            Queue::Stream => {
                if !group_ready {
                    group_ready = create_group(&popper, &key).await.is_ok();
                }
                read_stream(&popper, &key, &consumer).await
            }
        };
        let entries = match popped {
            Ok(e) => e,
            Err(error) => {
                if error.contains("NOGROUP") {
                    group_ready = false;
                }
                if let Some(suppressed) = POP_FAILED.allow() {
                    warn!(%error, suppressed, "failed to take from the ingest queue");
                }
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => continue,
                }
            }
        };
        backoff.reset();
        if !entries.is_empty() {
            store_and_publish(entries, cassandra, &backends.redis, &key, &shared).await;
        }
    }
}

async fn pop_list(redis: &ConnectionManager, key: &str) -> Result<Vec<Entry>, String> {
    let mut conn = redis.clone();
    let first: Option<(String, String)> = redis::cmd("BRPOP")
        .arg(key)
        .arg(1)
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("BRPOP {key}: {e}"))?;
    let Some((_, payload)) = first else {
        return Ok(vec![]);
    };
    let rest: Option<Vec<String>> = redis::cmd("RPOP")
        .arg(key)
        .arg(BATCH - 1)
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("RPOP {key}: {e}"))?;
    Ok(std::iter::once(payload)
        .chain(rest.unwrap_or_default())
        .map(|payload| Entry { id: None, payload })
        .collect())
}

async fn create_group(redis: &ConnectionManager, key: &str) -> Result<(), String> {
    let mut conn = redis.clone();
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(format!("XGROUP CREATE {key} {GROUP}: {e}")),
    }
}

/// `[[key, [[id, [field, value, …]], …]]]`, or nil when nothing came within the block.
type StreamReply = Option<Vec<(String, Vec<(String, Vec<String>)>)>>;

async fn read_stream(
    redis: &ConnectionManager,
    key: &str,
    consumer: &str,
) -> Result<Vec<Entry>, String> {
    let mut conn = redis.clone();
    let reply: StreamReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(BATCH)
        .arg("BLOCK")
        .arg(1000)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("XREADGROUP {key}: {e}"))?;
    Ok(reply
        .into_iter()
        .flatten()
        .flat_map(|(_, entries)| entries)
        .map(|(id, fields)| Entry {
            payload: field_m(fields).unwrap_or_default(),
            id: Some(id),
        })
        .collect())
}

/// The value of field `m` of a stream entry.
fn field_m(fields: Vec<String>) -> Option<String> {
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if k == "m" {
            return Some(v);
        }
    }
    None
}

async fn store_and_publish(
    entries: Vec<Entry>,
    cassandra: &crate::Cassandra,
    redis: &ConnectionManager,
    key: &str,
    shared: &Shared,
) {
    let m = &shared.metrics;
    m.worker_batch_size.observe(entries.len() as f64);
    let mut done_ids = vec![];
    let mut valid = vec![];
    for e in entries {
        match serde_json::from_str::<Delivery>(&e.payload) {
            Ok(d) => valid.push((e.id, d)),
            Err(error) => {
                m.worker_messages.invalid.inc();
                warn!(%error, "dropping a queue entry that is not a delivery payload");
                done_ids.extend(e.id);
            }
        }
    }
    // Indices, not references, as the stream's items: with `&(id, Delivery)` items the closure is
    // not general enough over their lifetime for a spawned future.
    let valid_ref = &valid;
    let results: Vec<_> = futures::stream::iter(0..valid.len())
        .map(|i| async move { (insert(cassandra, &valid_ref[i].1).await, now_ms()) })
        .buffered(MAX_INSERTS)
        .collect()
        .await;
    let mut publish = redis::pipe();
    let mut published = 0;
    for ((id, d), (stored, done_ms)) in valid.iter().zip(results) {
        match stored {
            Ok(()) => {
                m.worker_messages.stored.inc();
                let latency = (done_ms - d.timestamp).max(0) as f64 / 1000.0;
                m.worker_commit_seconds.observe(latency);
                publish
                    .cmd("PUBLISH")
                    .arg(channel_key(&shared.opts.prefix, &d.channel_id))
                    .arg(d.to_json())
                    .ignore();
                published += 1;
                done_ids.extend(id.clone());
            }
            Err(error) => {
                m.worker_messages.failed.inc();
                m.worker_insert_failures.inc();
                if let Some(suppressed) = INSERT_FAILED.allow() {
                    warn!(%error, suppressed, message = %d.client_msg_id, "INSERT failed; not published");
                }
            }
        }
    }
    if published > 0
        && let Err(error) = run_pipeline(redis, &publish).await
    {
        m.publish_failures.inc_by(published);
        if let Some(suppressed) = PUBLISH_FAILED.allow() {
            warn!(%error, suppressed, published, "PUBLISH of a stored batch failed");
        }
    }
    if !done_ids.is_empty() {
        let mut ack = redis::pipe();
        ack.cmd("XACK").arg(key).arg(GROUP).arg(&done_ids).ignore();
        ack.cmd("XDEL").arg(key).arg(&done_ids).ignore();
        if let Err(error) = run_pipeline(redis, &ack).await {
            warn!(%error, entries = done_ids.len(), "XACK/XDEL failed; the entries stay pending");
        }
    }
}

async fn run_pipeline(redis: &ConnectionManager, pipe: &redis::Pipeline) -> Result<(), String> {
    let mut conn = redis.clone();
    match tokio::time::timeout(crate::REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("timed out after {:?}", crate::REDIS_TIMEOUT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_field_is_found() {
        let f = |v: &[&str]| field_m(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(f(&["m", "x"]).as_deref(), Some("x"));
        assert_eq!(f(&["a", "1", "m", "y"]).as_deref(), Some("y"));
        assert_eq!(f(&["a", "1"]), None);
        assert_eq!(f(&["m"]), None);
    }
}
