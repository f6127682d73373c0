//! What the canary reads behind the service: a sample of acknowledged posts read back from the
//! database by primary key (how long until a post is visible), and the depth of the ingest queue.

use crate::config::{QueueConfig, QueueKind};
use crate::measure::e2e::{E2eMetrics, Visibility};
use crate::store::redis::RedisBackend;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// First pause between two reads of a post not yet visible; it doubles up to [`POLL_MAX`].
pub const POLL_MIN: Duration = Duration::from_millis(5);
/// Longest pause between two reads.
pub const POLL_MAX: Duration = Duration::from_millis(250);

/// Reads posts back from the service's table.
pub struct ReadBack {
    session: Arc<Session>,
    by_key: PreparedStatement,
    by_window: PreparedStatement,
    metrics: Arc<E2eMetrics>,
    deadline: Duration,
}

impl ReadBack {
    /// Prepare the reads of `keyspace.chat_messages` on `session`.
    pub async fn new(
        session: Arc<Session>,
        keyspace: &str,
        metrics: Arc<E2eMetrics>,
        deadline: Duration,
    ) -> Result<Self, String> {
        let table = crate::chat::table::TABLE;
        let prepare = |cql: String| {
            let session = session.clone();
            async move {
                crate::store::scylla::prepare(&session, cql)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let by_key = prepare(format!(
            "SELECT message_id FROM {keyspace}.{table} WHERE stream_id = ? AND timestamp = ? AND message_id = ?"
        ))
        .await?;
        let by_window = prepare(format!(
            "SELECT message_id FROM {keyspace}.{table} WHERE stream_id = ? AND timestamp >= ?"
        ))
        .await?;
        Ok(Self {
            session,
            by_key,
            by_window,
            metrics,
            deadline,
        })
    }

    /// Read post `id` of `channel` (stored at `timestamp_ms`, when the reply said) until it is
    /// there or `deadline` after `scheduled` has passed; record the outcome.
    pub async fn check(
        &self,
        channel: Uuid,
        id: Uuid,
        timestamp_ms: Option<i64>,
        scheduled: Instant,
        window_start_ms: i64,
    ) {
        let until = scheduled + self.deadline;
        let mut pause = POLL_MIN;
        loop {
            let found = match timestamp_ms {
                Some(ts) => self
                    .session
                    .execute_unpaged(&self.by_key, (channel, CqlTimestamp(ts), id))
                    .await
                    .map_err(|_| ())
                    .and_then(|r| r.into_rows_result().map_err(|_| ()))
                    .map(|rows| rows.rows_num() > 0),
                None => self
                    .session
                    .execute_unpaged(&self.by_window, (channel, CqlTimestamp(window_start_ms)))
                    .await
                    .map_err(|_| ())
                    .and_then(|r| r.into_rows_result().map_err(|_| ()))
                    .and_then(|rows| {
                        rows.rows::<(Uuid,)>()
                            .map_err(|_| ())
                            .map(|mut it| it.any(|r| r.is_ok_and(|(m,)| m == id)))
                    }),
            };
            let now = Instant::now();
            let last_error = match found {
                Ok(true) => {
                    self.metrics.visible(Visibility::Visible, now - scheduled);
                    return;
                }
                Ok(false) => false,
                Err(()) => true,
            };
            if now + pause >= until {
                tokio::time::sleep_until(until).await;
                let outcome = if last_error {
                    Visibility::Error
                } else {
                    Visibility::NotVisible
                };
                self.metrics.visible(outcome, self.deadline);
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }
}

/// Read the queue's depth every `interval` until `stop`; an unreadable queue is unknown, never 0.
pub async fn watch_queue(
    redis: RedisBackend,
    cfg: QueueConfig,
    metrics: Arc<E2eMetrics>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(cfg.interval.get());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        metrics.queue(depth(&redis, &cfg).await);
    }
}

async fn depth(redis: &RedisBackend, cfg: &QueueConfig) -> Option<u64> {
    match (cfg.kind, cfg.group.is_empty()) {
        (QueueKind::List, _) => redis
            .query::<u64>("LLEN", redis::cmd("LLEN").arg(&cfg.key))
            .await
            .ok(),
        (QueueKind::Stream, true) => redis
            .query::<u64>("XLEN", redis::cmd("XLEN").arg(&cfg.key))
            .await
            .ok(),
        (QueueKind::Stream, false) => {
            let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis
                .query("XINFO", redis::cmd("XINFO").arg("GROUPS").arg(&cfg.key))
                .await
                .ok()?;
            let g = groups.iter().find(|g| {
                g.get("name")
                    .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                    .as_deref()
                    == Some(cfg.group.as_str())
            })?;
            let num = |k: &str| {
                g.get(k)
                    .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
            };
            // `lag` is nil when Redis cannot tell (then the depth is unknown).
            Some(num("lag")? + num("pending")?)
        }
    }
}
