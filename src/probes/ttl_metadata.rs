//! `ttl_metadata`: a fresh row's `TTL(message_text)` and `WRITETIME`, against the TTL chatload expects
//! (`scylla.default_ttl`, 30 days) and the table's `default_time_to_live` from `system_schema`.
//!
//! The observed TTL is corrected by the row's age (now − WRITETIME), so it estimates the TTL the row
//! was written with. Checks: `ttl_drift` (|observed − expected| > `slo.ttl_tolerance`),
//! `table_default_ttl` (the table's default differs from the expectation), `no_ttl` (no TTL at all).
//! Its rows use the table's default TTL, so its stream rotates daily to stay small.

use super::{Probe, ProbeContext, ProbeError, Verdict, cql_error, now_ms, timed};
use crate::backend::scylla::ScyllaError;
use futures::future::BoxFuture;
use scylla::value::CqlTimestamp;

/// The probe.
pub struct TtlMetadata;

impl Probe for TtlMetadata {
    fn name(&self) -> &'static str {
        "ttl_metadata"
    }

    fn checks(&self) -> &'static [&'static str] {
        &["ttl_drift", "table_default_ttl", "no_ttl"]
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let session = ctx.session()?;
            let st = ctx.statements().await?;
            let ks = &ctx.cfg().scylla.keyspace;
            let expected = ctx.cfg().scylla.default_ttl.get().as_secs_f64();
            let tolerance = ctx.cfg().slo.ttl_tolerance.get().as_secs_f64();
            let mut v = Verdict::default();

            let table = crate::schema::describe_table(&session, ks)
                .await?
                .ok_or_else(|| {
                    ProbeError::Other(format!("table {ks}.chat_messages does not exist"))
                })?;
            let table_default = f64::from(table.default_ttl);
            ctx.metrics.ttl_table_default.set(table_default);
            ctx.metrics
                .ttl_expected
                .with_label_values(&["scylla"])
                .set(expected);
            v.fail(
                "table_default_ttl",
                u64::from((table_default - expected).abs() > tolerance),
            );

            let day = (now_ms() / 86_400_000) as u32;
            let m = ctx.message(
                ctx.stream("ttl_metadata", day),
                now_ms(),
                "ttl_metadata probe".into(),
            );
            ctx.write(&m, None).await?;
            let key = (m.stream_id, CqlTimestamp(m.timestamp_ms), m.message_id);
            let (result, took) = timed(session.execute_unpaged(&st.ttl_of, key)).await;
            v.measured(took);
            let cql = "SELECT TTL(message_text), WRITETIME(message_text) …";
            let rows = result
                .map_err(|e| cql_error(cql, e))?
                .into_rows_result()
                .map_err(|e| {
                    ProbeError::from(ScyllaError::Result {
                        cql: cql.into(),
                        message: e.to_string(),
                    })
                })?;
            let (ttl, writetime) = rows
                .maybe_first_row::<(Option<i32>, Option<i64>)>()
                .map_err(|e| ProbeError::Other(e.to_string()))?
                .ok_or_else(|| {
                    ProbeError::Other("the probe row just written is not there".into())
                })?;
            match (ttl, writetime) {
                (Some(ttl), Some(writetime_us)) => {
                    let age = (now_ms() as f64 * 1000.0 - writetime_us as f64).max(0.0) / 1e6;
                    let observed = f64::from(ttl) + age;
                    let drift = observed - expected;
                    ctx.metrics
                        .ttl_observed
                        .with_label_values(&["scylla"])
                        .set(observed);
                    ctx.metrics
                        .ttl_drift
                        .with_label_values(&["scylla"])
                        .set(drift);
                    v.fail("ttl_drift", u64::from(drift.abs() > tolerance));
                }
                _ => {
                    ctx.metrics
                        .ttl_observed
                        .with_label_values(&["scylla"])
                        .set(0.0);
                    ctx.metrics
                        .ttl_drift
                        .with_label_values(&["scylla"])
                        .set(-expected);
                    v.fail("no_ttl", 1);
                }
            }
            Ok(v)
        })
    }
}
