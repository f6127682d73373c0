//! `redis_cache`: the newest entry of a stream's Redis cache must be the newest message in ScyllaDB.
//!
//! The probe has a stream of its own, written the way the traffic writes: the row to ScyllaDB, then
//! the same message pushed to the stream's cache list. Each run first compares what the previous run
//! left (an entry deleted or evicted since is `missing`; a different newest entry is `stale`), then
//! writes a new message and compares again. `chatload_redis_cache_consistent` is 1 when both agree.

use super::probe::{PROBE_ROW_TTL, Probe, ProbeContext, ProbeError, Verdict, cql_error, timed};
use crate::chat::cache::{CachedMessage, RedisSide, cache_key};
use crate::chat::now_ms;
use crate::chat::table::StoredMessage;
use crate::config::{
    AlertSpec, NoOptions, ProbeConfig, ProbeSpec, no_rules, options_table, parse_as,
};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

/// The probe.
#[derive(Default)]
pub struct RedisCache {
    wrote: AtomicBool,
}

/// The probe's stream.
pub fn stream(ctx: &ProbeContext) -> Uuid {
    ctx.stream("redis_cache", 0)
}

/// (missing, stale) between the newest cache entry and the newest row.
async fn compare(ctx: &ProbeContext, v: &mut Verdict) -> Result<(), ProbeError> {
    let stream = stream(ctx);
    let key = cache_key(&ctx.cfg().redis.key_prefix, &stream);
    let (found, took) = timed(async {
        let entry: Option<String> = ctx
            .redis
            .query("LINDEX", redis::cmd("LINDEX").arg(&key).arg(0))
            .await?;
        let session = ctx.session()?;
        let st = ctx.statements().await?;
        let result = session.execute_unpaged(&st.newest, (stream, 1i32)).await;
        let rows = result
            .map_err(|e| cql_error("SELECT … LIMIT 1", e))?
            .into_rows_result()
            .map_err(|e| ProbeError::Other(e.to_string()))?;
        let row = rows
            .maybe_first_row::<StoredMessage>()
            .map_err(|e| ProbeError::Other(e.to_string()))?;
        Ok::<_, ProbeError>((entry, row))
    })
    .await;
    let (entry, row) = found?;
    v.measured(took);
    let Some(StoredMessage {
        message_id: newest_id,
        ..
    }) = row
    else {
        return Ok(()); // nothing written yet
    };
    match entry {
        None => v.fail("missing", 1),
        Some(json) => {
            let same = serde_json::from_str::<CachedMessage<'_>>(&json)
                .is_ok_and(|c| c.message_id == newest_id);
            v.fail("stale", u64::from(!same));
        }
    }
    Ok(())
}

/// `[probes.redis_cache]`: what this probe is, its table, checks, SLOs, alerts and metrics.
pub const SPEC: ProbeSpec = ProbeSpec {
    name: "redis_cache",
    checks: &["missing", "stale"],
    needs_scylla: true,
    schedule: ProbeConfig::every(10, 2000),
    options: options_table::<NoOptions>,
    parse: parse_as::<NoOptions>,
    validate: no_rules,
    slos: &[],
    alerts: &[AlertSpec {
        name: "ChatloadRedisCacheInconsistent",
        for_: "5m",
        // Only while the probe runs: its gauge starts at 0 and a disabled probe never sets it.
        expr: r#"chatload_redis_cache_consistent == 0 and on (job, instance) (sum by (job, instance) (increase(chatload_probe_runs_total{probe="redis_cache"}[15m])) > 0)"#,
        summary: "Redis cache disagrees with ScyllaDB on {{ $labels.instance }}",
        description: "The newest entry of the probe stream's Redis cache is not the newest row in ScyllaDB: clients reading the cache see missing or stale messages.",
    }],
    metrics: &["chatload_redis_cache_consistent"],
};

/// The probe, as the registry makes it.
pub fn probe(_: &crate::config::Config) -> std::sync::Arc<dyn Probe> {
    std::sync::Arc::new(RedisCache::default())
}

impl Probe for RedisCache {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let mut v = Verdict::default();
            if self.wrote.load(Ordering::Relaxed) {
                compare(ctx, &mut v).await?;
            }
            let m = ctx.message(stream(ctx), now_ms(), "redis_cache probe".into());
            ctx.write(&m, Some(PROBE_ROW_TTL)).await?;
            let side = RedisSide {
                cache: true,
                pubsub: false,
                cache_length: ctx.cfg().redis.cache_length,
                cache_ttl_ms: u64::from(PROBE_ROW_TTL) * 1000,
                key_prefix: ctx.cfg().redis.key_prefix.clone(),
            };
            let mut conn = ctx.redis.connection();
            side.pipeline(std::slice::from_ref(&m))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|cause| {
                    ProbeError::Redis(crate::store::redis::RedisError::Command {
                        command: "LPUSH",
                        cause,
                    })
                })?;
            self.wrote.store(true, Ordering::Relaxed);
            compare(ctx, &mut v).await?;
            ctx.metrics
                .redis_cache_consistent
                .set(i64::from(v.passed()));
            Ok(v)
        })
    }
}
