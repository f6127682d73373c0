//! `redis_ttl`: Redis expiry as the cache relies on it.
//!
//! Each run: SET a key with `EX 60` and read its PTTL (exported as
//! `chatload_ttl_observed_seconds{backend="redis"}`). Redis counts the expiry down from the moment it
//! ran the SET, and it ran the PTTL at most the exchange's span later (from sending the SET to
//! receiving the PTTL's reply, measured here), so a right expiry reads between 60 s less that span and
//! 60 s: `ttl_mismatch` when the PTTL is more than 1 s outside that range (a slow round trip reads
//! lower by the time it took, and is no mismatch). SET a short-lived key (`PX 300`)
//! and check it is gone 800 ms later (`not_expired`). It also checks what the previous run left: its
//! long key must still have an expiry (`no_expiry`: someone ran PERSIST on it) and its short key
//! (`PX 1000`, left behind at the end of each run) must be gone (`not_expired`).

use super::probe::{Probe, ProbeContext, ProbeError, Verdict, timed};
use crate::config::{NoOptions, ProbeConfig, ProbeSpec, no_rules, options_table, parse_as};
use crate::measure::metrics::Metrics;
use crate::store::redis::RedisBackend;
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Expiry of the long key, seconds.
pub const LONG_TTL_SECS: u64 = 60;

/// How far the PTTL may be outside the range a right expiry gives (see the module doc).
pub const TOLERANCE: Duration = Duration::from_secs(1);

/// Whether `pttl_ms`, read by a PTTL right after `SET … EX` of `requested`, is not that expiry:
/// outside [`requested` − `span`, `requested`] by more than [`TOLERANCE`], where `span` is the time
/// from sending the SET to receiving the PTTL's reply. No expiry (-1) or no key (-2) is a mismatch.
pub fn ttl_mismatch(pttl_ms: i64, requested: Duration, span: Duration) -> bool {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (requested, tolerance) = (ms(requested), ms(TOLERANCE));
    // Rounded up: the span is an upper bound on the time between the two commands.
    let span = ms(span + Duration::from_nanos(999_999));
    pttl_ms < requested.saturating_sub(span).saturating_sub(tolerance)
        || pttl_ms > requested.saturating_add(tolerance)
}

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

/// `[probes.redis_ttl]`: what this probe is, its table, checks, SLOs, alerts and metrics.
pub const SPEC: ProbeSpec = ProbeSpec {
    name: "redis_ttl",
    checks: &["ttl_mismatch", "no_expiry", "not_expired"],
    needs_scylla: false,
    schedule: ProbeConfig::every(15, 5000),
    options: options_table::<NoOptions>,
    parse: parse_as::<NoOptions>,
    validate: no_rules,
    slos: &[],
    alerts: &[],
    metrics: &[
        "chatload_ttl_observed_seconds",
        "chatload_ttl_drift_seconds",
        "chatload_ttl_expected_seconds",
    ],
};

/// The probe, as the registry makes it.
pub fn probe(_: &crate::config::Config) -> std::sync::Arc<dyn Probe> {
    std::sync::Arc::new(RedisTtl::default())
}

impl Probe for RedisTtl {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn init_series(&self, m: &Metrics) {
        m.ttl_observed.with_label_values(&["redis"]);
        m.ttl_drift.with_label_values(&["redis"]);
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
            let sent = Instant::now();
            set_expiring(r, &long, "EX", LONG_TTL_SECS).await?;
            let (pttl, took) = timed(r.query::<i64>("PTTL", redis::cmd("PTTL").arg(&long))).await;
            let pttl = pttl?;
            let span = sent.elapsed();
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
            let requested = Duration::from_secs(LONG_TTL_SECS);
            v.fail(
                "ttl_mismatch",
                u64::from(ttl_mismatch(pttl, requested, span)),
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_fast_exchange_must_read_within_a_second_of_the_expiry() {
        assert!(!ttl_mismatch(59_999, MINUTE, 2 * MS));
        assert!(!ttl_mismatch(60_000, MINUTE, 2 * MS));
        assert!(!ttl_mismatch(58_998, MINUTE, 2 * MS));
        assert!(ttl_mismatch(58_997, MINUTE, 2 * MS));
        assert!(!ttl_mismatch(61_000, MINUTE, 2 * MS));
        assert!(ttl_mismatch(61_001, MINUTE, 2 * MS));
    }

    #[test]
    fn a_slow_exchange_reads_lower_by_its_span_and_is_no_mismatch() {
        // PTTL ran 1.6 s after the SET: the old check (within 1 s of 60 s) called this a mismatch.
        assert!(!ttl_mismatch(58_400, MINUTE, 1600 * MS));
        assert!(!ttl_mismatch(57_400, MINUTE, 1600 * MS));
        assert!(ttl_mismatch(57_399, MINUTE, 1600 * MS));
        // A span of a fraction of a millisecond counts as a whole one.
        assert!(!ttl_mismatch(58_999, MINUTE, Duration::from_micros(1)));
    }

    #[test]
    fn a_capped_missing_or_removed_expiry_is_a_mismatch() {
        assert!(ttl_mismatch(30_000, MINUTE, 10 * MS));
        assert!(ttl_mismatch(30_000, MINUTE, 1600 * MS));
        assert!(ttl_mismatch(-1, MINUTE, 10 * MS));
        assert!(ttl_mismatch(-2, MINUTE, 10 * MS));
    }
}
