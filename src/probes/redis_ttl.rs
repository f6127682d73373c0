//! `redis_ttl`: Redis expiry as the cache relies on it.
//!
//! Each run: SET a key with `EX 60` and read its PTTL (`ttl_mismatch` when not within 1 s of 60 s;
//! exported as `chatload_ttl_observed_seconds{backend="redis"}`); SET a short-lived key (`PX 300`)
//! and check it is gone 800 ms later (`not_expired`). It also checks what the previous run left: its
//! long key must still have an expiry (`no_expiry`: someone ran PERSIST on it) and its short key
//! (`PX 1000`, left behind at the end of each run) must be gone (`not_expired`).

use super::probe::{Probe, ProbeContext, ProbeError, Verdict, timed};
use crate::store::redis::RedisBackend;
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Expiry of the long key, seconds.
pub const LONG_TTL_SECS: u64 = 60;

/// The probe.
#[derive(Default)]
pub struct RedisTtl {
    ran: AtomicBool,
}

/// `SET key probe <unit> <n>`: a value that expires (`unit` is `EX` for seconds, `PX` for ms).
async fn set_expiring(r: &RedisBackend, key: &str, unit: &str, n: u64) -> Result<(), ProbeError> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg("probe").arg(unit).arg(n);
    r.query::<()>("SET", &cmd).await?;
    Ok(())
}

/// The probe's two keys: (long-lived, short-lived).
pub fn keys(ctx: &ProbeContext) -> (String, String) {
    let base = format!(
        "{}:probe:{}:{:08x}:ttl",
        ctx.cfg().redis.key_prefix,
        ctx.cfg().instance.index,
        ctx.run_id
    );
    (format!("{base}:long"), format!("{base}:short"))
}

impl Probe for RedisTtl {
    fn name(&self) -> &'static str {
        "redis_ttl"
    }

    fn needs_scylla(&self) -> bool {
        false
    }

    fn checks(&self) -> &'static [&'static str] {
        &["ttl_mismatch", "no_expiry", "not_expired"]
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let r = &ctx.redis;
            let (long, short) = keys(ctx);
            let mut v = Verdict::default();
            if self.ran.load(Ordering::Relaxed) {
                let pttl: i64 = r.query("PTTL", redis::cmd("PTTL").arg(&long)).await?;
                // -1: the key exists without an expiry. (-2, gone, cannot happen within 60 s.)
                v.fail("no_expiry", u64::from(pttl == -1));
                let exists: i64 = r.query("EXISTS", redis::cmd("EXISTS").arg(&short)).await?;
                v.fail("not_expired", exists as u64);
            }
            set_expiring(r, &long, "EX", LONG_TTL_SECS).await?;
            let (pttl, took) = timed(r.query::<i64>("PTTL", redis::cmd("PTTL").arg(&long))).await;
            let pttl = pttl?;
            v.measured(took);
            let observed = pttl as f64 / 1000.0;
            ctx.metrics
                .ttl_observed
                .with_label_values(&["redis"])
                .set(observed);
            ctx.metrics
                .ttl_drift
                .with_label_values(&["redis"])
                .set(observed - LONG_TTL_SECS as f64);
            ctx.metrics
                .ttl_expected
                .with_label_values(&["redis"])
                .set(LONG_TTL_SECS as f64);
            v.fail(
                "ttl_mismatch",
                u64::from((pttl - LONG_TTL_SECS as i64 * 1000).abs() > 1000),
            );

            set_expiring(r, &short, "PX", 300).await?;
            tokio::time::sleep(Duration::from_millis(800)).await;
            let exists: i64 = r.query("EXISTS", redis::cmd("EXISTS").arg(&short)).await?;
            v.fail("not_expired", exists as u64);
            // Left for the next run to find gone.
            set_expiring(r, &short, "PX", 1000).await?;
            self.ran.store(true, Ordering::Relaxed);
            Ok(v)
        })
    }
}
