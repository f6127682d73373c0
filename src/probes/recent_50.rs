//! `recent_50`: the newest 50 messages of a stream, as a chat client opening it reads them.
//!
//! Each run writes one message, then reads the newest 50: they must come newest first
//! (`wrong_order`), and the run's own message must be among them (`missing_write`). The first run
//! seeds the stream with 60 messages so that a full page of 50 is read from the start.

use super::probe::{PROBE_ROW_TTL, Probe, ProbeContext, ProbeError, Verdict, cql_error, timed};
use crate::chat::now_ms;
use crate::chat::table::{RECENT, StoredMessage};
use crate::config::{
    AlertSpec, HumanDuration, NoOptions, ProbeConfig, ProbeSpec, SloIndicator, SloSpec, SloValue,
    no_rules, options_table, parse_as,
};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};

/// The probe.
#[derive(Default)]
pub struct Recent50 {
    seeded: AtomicBool,
}

/// Timestamps out of newest-first order in `rows`.
pub fn order_violations(timestamps: &[i64]) -> u64 {
    timestamps.windows(2).filter(|w| w[0] < w[1]).count() as u64
}

/// `[probes.recent_50]`: what this probe is, its table, checks, SLOs, alerts and metrics.
pub const SPEC: ProbeSpec = ProbeSpec {
    name: "recent_50",
    checks: &["wrong_order", "missing_write"],
    needs_scylla: true,
    schedule: ProbeConfig::every(5, 1000),
    options: options_table::<NoOptions>,
    parse: parse_as::<NoOptions>,
    validate: no_rules,
    slos: &[SloSpec {
        key: "recent_50_p99",
        default: SloValue::Duration(HumanDuration::from_millis(10)),
        indicator: SloIndicator::Latency {
            quantile: 0.99,
            selector: r#"probe="recent_50""#,
        },
        alert: AlertSpec {
            name: "ChatloadRecent50Slow",
            for_: "10m",
            expr: "",
            summary: "{{ $value | humanizePercentage }} of \"newest 50\" reads are slower than the SLO",
            description: "More than 1 % of the recent_50 probe's queries took longer than {threshold} for 10 minutes (its p99 is over the SLO): opening a chat is slow.",
        },
    }],
    alerts: &[],
    metrics: &[],
};

/// The probe, as the registry makes it.
pub fn probe(_: &crate::config::Config) -> std::sync::Arc<dyn Probe> {
    std::sync::Arc::new(Recent50::default())
}

impl Probe for Recent50 {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let stream = ctx.stream("recent_50", 0);
            let now = now_ms();
            if !self.seeded.load(Ordering::Relaxed) {
                for i in (1..=60).rev() {
                    let m = ctx.message(stream, now - i * 10, format!("recent_50 seed {i}"));
                    ctx.write(&m, Some(PROBE_ROW_TTL)).await?;
                }
                self.seeded.store(true, Ordering::Relaxed);
            }
            let own = ctx.message(stream, now, "recent_50 probe".into());
            ctx.write(&own, Some(PROBE_ROW_TTL)).await?;

            let session = ctx.session()?;
            let st = ctx.statements().await?;
            let (result, took) = timed(session.execute_unpaged(&st.newest, (stream, RECENT))).await;
            let rows = result
                .map_err(|e| cql_error("SELECT … LIMIT 50", e))?
                .into_rows_result()
                .map_err(|e| ProbeError::Other(e.to_string()))?;
            let rows: Vec<StoredMessage> = rows
                .rows::<StoredMessage>()
                .map_err(|e| ProbeError::Other(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| ProbeError::Other(e.to_string()))?;
            let mut v = Verdict::default();
            v.measured(took);
            let timestamps: Vec<i64> = rows.iter().map(|r| r.timestamp.0).collect();
            v.fail("wrong_order", order_violations(&timestamps));
            v.fail(
                "missing_write",
                u64::from(!rows.iter().any(|r| r.message_id == own.message_id)),
            );
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn order_violations_count_increases() {
        assert_eq!(super::order_violations(&[5, 4, 4, 1]), 0);
        assert_eq!(super::order_violations(&[5, 6, 4, 7]), 2);
        assert_eq!(super::order_violations(&[]), 0);
    }
}
