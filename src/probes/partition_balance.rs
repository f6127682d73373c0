//! `partition_balance`: rows per stream that the traffic wrote over the probe's window, and their
//! coefficient of variation (standard deviation over mean), exported as
//! `chatload_partition_balance_cv`. Above `slo.partition_balance_cv` is an `imbalance`.
//!
//! It counts what landed in the database (`COUNT(*)` per stream of this instance), not what the
//! generator meant to write. With too few rows per stream the CV of even a perfectly uniform choice
//! exceeds 10 % (it is about 1/sqrt(mean)), so below `min_rows_per_stream` the CV is exported but
//! not judged.

use super::{Probe, ProbeContext, ProbeError, Verdict, cql_error, now_ms, timed};
use crate::traffic::workload::{owned_streams, stream_id};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use scylla::value::CqlTimestamp;

/// Count queries in flight at once.
const CONCURRENCY: usize = 8;

/// The probe.
pub struct PartitionBalance;

/// Coefficient of variation (population standard deviation over mean) and mean of `counts`.
pub fn coefficient_of_variation(counts: &[u64]) -> (f64, f64) {
    if counts.is_empty() {
        return (0.0, 0.0);
    }
    let n = counts.len() as f64;
    let mean = counts.iter().sum::<u64>() as f64 / n;
    if mean == 0.0 {
        return (0.0, 0.0);
    }
    let var = counts
        .iter()
        .map(|c| (*c as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (var.sqrt() / mean, mean)
}

impl Probe for PartitionBalance {
    fn name(&self) -> &'static str {
        "partition_balance"
    }

    fn checks(&self) -> &'static [&'static str] {
        &["imbalance"]
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let cfg = &ctx.cfg().probes.partition_balance;
            let session = ctx.session()?;
            let st = ctx.statements().await?;
            let since = CqlTimestamp(now_ms() - cfg.window.get().as_millis() as i64);
            let streams = owned_streams(ctx.cfg().traffic.streams, &ctx.cfg().instance);
            let (counts, took) = timed(
                futures::stream::iter(streams)
                    .map(|s| {
                        let (session, st) = (session.clone(), st.clone());
                        async move {
                            let result = session
                                .execute_unpaged(&st.count_since, (stream_id(s), since))
                                .await;
                            let rows = result
                                .map_err(|e| {
                                    cql_error("SELECT COUNT(*) … WHERE timestamp >= ?", e)
                                })?
                                .into_rows_result()
                                .map_err(|e| ProbeError::Other(e.to_string()))?;
                            let (n,) = rows
                                .single_row::<(i64,)>()
                                .map_err(|e| ProbeError::Other(e.to_string()))?;
                            Ok::<u64, ProbeError>(n.max(0) as u64)
                        }
                    })
                    .buffer_unordered(CONCURRENCY)
                    .try_collect::<Vec<u64>>(),
            )
            .await;
            let counts = counts?;
            let (cv, mean) = coefficient_of_variation(&counts);
            ctx.metrics.partition_balance_cv.set(cv);
            let mut v = Verdict::default();
            v.measured(took);
            if mean >= f64::from(cfg.min_rows_per_stream) {
                v.fail(
                    "imbalance",
                    u64::from(cv > ctx.cfg().slo.partition_balance_cv),
                );
            }
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::coefficient_of_variation as cv;

    #[test]
    fn cv_of_known_sets() {
        assert_eq!(cv(&[10, 10, 10]), (0.0, 10.0));
        let (c, m) = cv(&[5, 15]);
        assert!((c - 0.5).abs() < 1e-12 && m == 10.0);
        assert_eq!(cv(&[]), (0.0, 0.0));
        assert_eq!(cv(&[0, 0]), (0.0, 0.0));
    }
}
