//! `ttl_expiry`: a row written `USING TTL <ttl>` must be gone after the TTL plus a grace period.
//!
//! Each run writes one such row, waits `ttl + grace`, then reads every row of its stream whose
//! timestamp is older than that: any row found is a violation (`not_expired`), the run's own row as
//! well as any other row that should have expired. The stream rotates every hour (and the previous
//! hour is read too), so the expired rows it scans stay few.

use super::probe::{Probe, ProbeContext, ProbeError, Verdict, cql_error, timed};
use crate::chat::now_ms;
use futures::future::BoxFuture;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

/// The probe.
pub struct TtlExpiry;

/// The hour number a stream generation is named after.
pub fn hour(timestamp_ms: i64) -> u32 {
    (timestamp_ms / 3_600_000) as u32
}

/// The streams a run reads: this hour's and the previous hour's.
pub fn streams(ctx: &ProbeContext, timestamp_ms: i64) -> [Uuid; 2] {
    let h = hour(timestamp_ms);
    [
        ctx.stream("ttl_expiry", h),
        ctx.stream("ttl_expiry", h.wrapping_sub(1)),
    ]
}

impl Probe for TtlExpiry {
    fn name(&self) -> &'static str {
        "ttl_expiry"
    }

    fn checks(&self) -> &'static [&'static str] {
        &["not_expired"]
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let cfg = &ctx.cfg().probes.ttl_expiry;
            let (ttl, grace) = (cfg.ttl.get(), cfg.grace.get());
            let written_at = now_ms();
            let m = ctx.message(
                streams(ctx, written_at)[0],
                written_at,
                "ttl_expiry probe".into(),
            );
            ctx.write(&m, Some(ttl.as_secs() as u32)).await?;
            tokio::time::sleep(ttl + grace).await;

            let session = ctx.session()?;
            let st = ctx.statements().await?;
            let cutoff = CqlTimestamp(now_ms() - (ttl + grace).as_millis() as i64);
            let mut v = Verdict::default();
            let mut survivors = 0;
            for stream in streams(ctx, written_at) {
                let (result, took) =
                    timed(session.execute_unpaged(&st.until, (stream, cutoff))).await;
                v.measured(took);
                let rows = result
                    .map_err(|e| cql_error("SELECT … WHERE timestamp <= ?", e))?
                    .into_rows_result()
                    .map(|r| r.rows_num())
                    .unwrap_or(0);
                survivors += rows as u64;
            }
            v.fail("not_expired", survivors);
            Ok(v)
        })
    }
}
