//! `ttl_expiry`: a row written `USING TTL <ttl>` must be gone after the TTL plus a grace period.
//!
//! Each run writes one such row, waits `ttl + grace`, then reads every row of its stream whose
//! timestamp is older than that: any row found is a violation (`not_expired`), the run's own row as
//! well as any other row that should have expired. The stream rotates every hour (and the previous
//! hour is read too), so the expired rows it scans stay few.

use super::probe::{Probe, ProbeContext, ProbeError, Verdict, cql_error, timed};
use crate::chat::now_ms;
use crate::config::{
    AlertSpec, HumanDuration, ProbeConfig, ProbeSpec, ProbeTable, Rules, options_table, parse_as,
};
use futures::future::BoxFuture;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};
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

/// `[probes.ttl_expiry]`'s own keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TtlExpiryOptions {
    /// TTL of the row the probe writes (whole seconds).
    pub ttl: HumanDuration,
    /// How long after its TTL a row may still be readable before that is a violation.
    pub grace: HumanDuration,
}

impl Default for TtlExpiryOptions {
    fn default() -> Self {
        Self {
            ttl: HumanDuration::from_secs(2),
            grace: HumanDuration::from_secs(3),
        }
    }
}

/// `ttl` is a TTL, `grace` is not zero, and a run outlasts them both (its `timeout`).
fn rules(table: &ProbeTable, r: &mut Rules) {
    let o: TtlExpiryOptions = table.options();
    r.ttl("probes.ttl_expiry.ttl", o.ttl);
    r.positive("probes.ttl_expiry.grace", o.grace);
    let timeout = table.schedule.timeout;
    if timeout.get() <= o.ttl.get() + o.grace.get() {
        r.fail(
            "probes.ttl_expiry.timeout",
            format!(
                "must be longer than ttl + grace ({} + {}), got {timeout}",
                o.ttl, o.grace
            ),
        );
    }
}

/// `[probes.ttl_expiry]`: what this probe is, its table, checks, SLOs, alerts and metrics.
pub const SPEC: ProbeSpec = ProbeSpec {
    name: "ttl_expiry",
    checks: &["not_expired"],
    needs_scylla: true,
    schedule: ProbeConfig::every(30, 20_000),
    options: options_table::<TtlExpiryOptions>,
    parse: parse_as::<TtlExpiryOptions>,
    validate: rules,
    slos: &[],
    alerts: &[AlertSpec {
        name: "ChatloadTtlExpiryViolated",
        for_: "0m",
        expr: r#"increase(chatload_probe_check_failures_total{probe="ttl_expiry",check="not_expired"}[15m]) > 0"#,
        summary: "Rows past their TTL are still readable",
        description: "The ttl_expiry probe read rows after their TTL plus grace: expired data is being served.",
    }],
    metrics: &[],
};

/// The probe, as the registry makes it.
pub fn probe(_: &crate::config::Config) -> std::sync::Arc<dyn Probe> {
    std::sync::Arc::new(TtlExpiry)
}

impl Probe for TtlExpiry {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let o: TtlExpiryOptions = ctx.cfg().probes.options("ttl_expiry");
            let (ttl, grace) = (o.ttl.get(), o.grace.get());
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
