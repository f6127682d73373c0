//! `ttl_metadata`: a fresh row's `TTL(message_text)` and `WRITETIME`, against the TTL chatload expects
//! (`scylla.default_ttl`, 30 days) and the table's `default_time_to_live` from `system_schema`.
//!
//! The observed TTL is the remaining `TTL(message_text)` plus the row's age, so it estimates the TTL
//! the row was written with. The age is measured on the server's clock only: the same SELECT reads
//! `toUnixTimestamp(now())`, and the age is that minus `WRITETIME` (both set by the database), so a
//! skewed clock on chatload's host never reads as drift. Checks: `ttl_drift` (|observed − expected| > `slo.ttl_tolerance`),
//! `table_default_ttl` (the table's default differs from the expectation), `no_ttl` (no TTL at all).
//! Its rows use the table's default TTL, so its stream rotates daily to stay small.

use super::probe::{Probe, ProbeContext, ProbeError, Verdict, cql_error, timed};
use crate::chat::now_ms;
use crate::config::{
    AlertSpec, HumanDuration, NoOptions, ProbeConfig, ProbeSpec, SloIndicator, SloSpec, SloValue,
    no_rules, options_table, parse_as,
};
use crate::measure::metrics::Metrics;
use crate::store::scylla::ScyllaError;
use futures::future::BoxFuture;
use scylla::value::CqlTimestamp;

/// The probe.
pub struct TtlMetadata;

/// What one read of a fresh row says about its TTL, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TtlReading {
    /// Remaining TTL plus the row's age: the TTL it was written with.
    pub observed: f64,
    /// Observed minus expected.
    pub drift: f64,
}

impl TtlReading {
    /// From the row's remaining `ttl_s`, its `writetime_us` and the server's clock at the read
    /// (`server_now_ms`), all on the server's clock, against the `expected_s` TTL.
    pub fn on_server_clock(
        ttl_s: i32,
        writetime_us: i64,
        server_now_ms: i64,
        expected_s: f64,
    ) -> Self {
        let age_s = (server_now_ms as f64 * 1000.0 - writetime_us as f64) / 1e6;
        let observed = f64::from(ttl_s) + age_s;
        Self {
            observed,
            drift: observed - expected_s,
        }
    }
}

/// `[probes.ttl_metadata]`: what this probe is, its table, checks, SLOs, alerts and metrics.
pub const SPEC: ProbeSpec = ProbeSpec {
    name: "ttl_metadata",
    checks: &["ttl_drift", "table_default_ttl", "no_ttl"],
    needs_scylla: true,
    schedule: ProbeConfig::every(30, 2000),
    options: options_table::<NoOptions>,
    parse: parse_as::<NoOptions>,
    validate: no_rules,
    slos: &[SloSpec {
        key: "ttl_tolerance",
        default: SloValue::Duration(HumanDuration::from_secs(60)),
        indicator: SloIndicator::Gauge {
            metric: "chatload_ttl_drift_seconds",
            selector: r#"backend="scylla""#,
        },
        alert: AlertSpec {
            name: "ChatloadTtlDrift",
            for_: "5m",
            expr: "",
            summary: "New messages get a TTL {{ $value | humanizeDuration }} off the expected one",
            description: "The TTL of fresh rows differs from scylla.default_ttl by more than {threshold}: messages will be kept too long or deleted too early. Compare chatload_ttl_table_default_seconds.",
        },
    }],
    alerts: &[],
    metrics: &[
        "chatload_ttl_observed_seconds",
        "chatload_ttl_drift_seconds",
        "chatload_ttl_expected_seconds",
        "chatload_ttl_table_default_seconds",
    ],
};

/// The probe, as the registry makes it.
pub fn probe(_: &crate::config::Config) -> std::sync::Arc<dyn Probe> {
    std::sync::Arc::new(TtlMetadata)
}

impl Probe for TtlMetadata {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn init_series(&self, m: &Metrics) {
        m.ttl_observed.with_label_values(&["scylla"]);
        m.ttl_drift.with_label_values(&["scylla"]);
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let session = ctx.session()?;
            let st = ctx.statements().await?;
            let ks = &ctx.cfg().scylla.keyspace;
            let expected = ctx.cfg().scylla.default_ttl.get().as_secs_f64();
            let tolerance = ctx.cfg().slo.threshold(&SPEC.slos[0]).get();
            let mut v = Verdict::default();

            let table = crate::store::schema::describe_table(&session, ks)
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
            let cql = "SELECT TTL(message_text), WRITETIME(message_text), toUnixTimestamp(now()) …";
            let rows = result
                .map_err(|e| cql_error(cql, e))?
                .into_rows_result()
                .map_err(|e| {
                    ProbeError::from(ScyllaError::Result {
                        cql: cql.into(),
                        message: e.to_string(),
                    })
                })?;
            let (ttl, writetime, server_now_ms) = rows
                .maybe_first_row::<(Option<i32>, Option<i64>, i64)>()
                .map_err(|e| ProbeError::Other(e.to_string()))?
                .ok_or_else(|| {
                    ProbeError::Other("the probe row just written is not there".into())
                })?;
            match (ttl, writetime) {
                (Some(ttl), Some(writetime_us)) => {
                    let r = TtlReading::on_server_clock(ttl, writetime_us, server_now_ms, expected);
                    ctx.metrics
                        .ttl_observed
                        .with_label_values(&["scylla"])
                        .set(r.observed);
                    ctx.metrics
                        .ttl_drift
                        .with_label_values(&["scylla"])
                        .set(r.drift);
                    v.gauge("chatload_ttl_drift_seconds", r.drift);
                    v.fail("ttl_drift", u64::from(r.drift.abs() > tolerance));
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
                    v.gauge("chatload_ttl_drift_seconds", -expected);
                    v.fail("no_ttl", 1);
                }
            }
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::TtlReading;

    const TTL: i32 = 2_592_000;

    /// A row written at `written_ms` with `TTL` and read `after_ms` later, both on the server's clock:
    /// (remaining TTL as the server reports it, WRITETIME, the server's clock at the read).
    fn server_read(written_ms: i64, after_ms: i64) -> (i32, i64, i64) {
        let read_ms = written_ms + after_ms;
        let expires_s = written_ms / 1000 + i64::from(TTL);
        (
            (expires_s - read_ms / 1000) as i32,
            written_ms * 1000,
            read_ms,
        )
    }

    /// The former estimate: the row's age taken on the client's clock.
    fn on_client_clock(ttl_s: i32, writetime_us: i64, client_now_ms: i64) -> f64 {
        let age = (client_now_ms as f64 * 1000.0 - writetime_us as f64).max(0.0) / 1e6;
        f64::from(ttl_s) + age - f64::from(TTL)
    }

    #[test]
    fn a_client_clock_30_s_ahead_is_not_drift() {
        let written_ms = 1_700_000_000_250;
        for after_ms in [0, 400, 2_500, 59_999] {
            let (ttl, writetime_us, server_now_ms) = server_read(written_ms, after_ms);
            let client_now_ms = server_now_ms + 30_000;
            let r = TtlReading::on_server_clock(ttl, writetime_us, server_now_ms, f64::from(TTL));
            // Whole-second TTLs leave at most a second of rounding.
            assert!(r.drift.abs() <= 1.0, "after {after_ms} ms: {r:?}");
            assert!((r.observed - f64::from(TTL)).abs() <= 1.0, "{r:?}");
            let old = on_client_clock(ttl, writetime_us, client_now_ms);
            assert!((old - 30.0).abs() <= 1.0, "after {after_ms} ms: {old}");
        }
    }

    #[test]
    fn a_shorter_ttl_reads_as_negative_drift() {
        let (ttl, writetime_us, server_now_ms) = server_read(1_700_000_000_000, 1_500);
        let r =
            TtlReading::on_server_clock(ttl - 3_600, writetime_us, server_now_ms, f64::from(TTL));
        assert!((r.drift + 3_600.0).abs() <= 1.0, "{r:?}");
    }
}
