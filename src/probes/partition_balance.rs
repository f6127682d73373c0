//! `partition_balance`: rows per stream that the traffic wrote over the probe's window, judged against
//! what a uniform random choice of streams would give.
//!
//! It counts what landed in the database (`COUNT(*)` per stream of this instance), not what the
//! generator meant to write. Even a perfectly uniform choice spreads the counts: with counts cᵢ over
//! k streams, N = Σcᵢ rows and b rows per choice of stream (`traffic.batch_size` with
//! `write_mode = "batch"`, where a whole batch goes to one stream; 1 with `single`), the observed
//! CV² (population variance over mean²) is b(k−1)/N on average. So the probe exports the **skew CV**
//! as `chatload_partition_balance_cv`:
//!
//! ```text
//! skew CV = sqrt(max(0, CV²_observed − b(k−1)/N))
//! ```
//!
//! the coefficient of variation of the streams' underlying shares with the sampling noise removed
//! (about 0 for a uniform workload, whatever its size or batching).
//!
//! A run is an `imbalance` only when the skew CV exceeds `slo.partition_balance_cv` **and** the
//! dispersion statistic D = Σ(cᵢ − c̄)²/(b·c̄), which follows χ²(k−1) under uniform choice, exceeds the
//! 99.9 % quantile of χ²(k−1) (Wilson–Hilferty approximation): a uniform workload fails fewer than
//! 0.1 % of runs. Below `min_rows_per_stream` rows per stream on average the skew CV is exported but
//! not judged.

use super::probe::{Probe, ProbeContext, ProbeError, Verdict, cql_error, timed};
use crate::chat::now_ms;
use crate::chat::workload::{owned_streams, stream_id};
use crate::config::{
    AlertSpec, HumanDuration, ProbeConfig, ProbeSpec, ProbeTable, Rules, SloIndicator, SloSpec,
    SloValue, options_table, parse_as,
};
use crate::config::{TrafficConfig, WriteMode};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};

/// Count queries in flight at once.
const CONCURRENCY: usize = 8;

/// The standard normal's 99.9 % quantile: the dispersion test's false-alarm rate is 0.1 %.
const Z_999: f64 = 3.090;

/// The probe.
pub struct PartitionBalance;

/// What the rows per stream say about balance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Balance {
    /// Mean rows per stream, c̄.
    pub mean: f64,
    /// The skew CV: sqrt(max(0, CV²_observed − b(k−1)/N)).
    pub skew_cv: f64,
    /// The dispersion statistic D = Σ(cᵢ − c̄)²/(b·c̄); χ²(k−1) under uniform choice.
    pub dispersion: f64,
    /// The 99.9 % quantile of χ²(k−1): D above it is not sampling noise.
    pub critical: f64,
}

impl Balance {
    /// The balance of `counts`, written `rows_per_choice` rows per choice of stream.
    pub fn of(counts: &[u64], rows_per_choice: u32) -> Self {
        let k = counts.len() as f64;
        let total = counts.iter().sum::<u64>() as f64;
        if counts.len() < 2 || total == 0.0 {
            return Self {
                mean: if k > 0.0 { total / k } else { 0.0 },
                skew_cv: 0.0,
                dispersion: 0.0,
                critical: f64::INFINITY,
            };
        }
        let b = f64::from(rows_per_choice.max(1));
        let mean = total / k;
        let squares = counts
            .iter()
            .map(|c| (*c as f64 - mean).powi(2))
            .sum::<f64>();
        let cv_squared = squares / k / mean.powi(2);
        let noise = b * (k - 1.0) / total;
        Self {
            mean,
            skew_cv: (cv_squared - noise).max(0.0).sqrt(),
            dispersion: squares / (b * mean),
            critical: chi_squared_999(k - 1.0),
        }
    }

    /// Skewed beyond `max_cv`, and more dispersed than uniform choice plausibly gives.
    pub fn imbalanced(&self, max_cv: f64) -> bool {
        self.skew_cv > max_cv && self.dispersion > self.critical
    }
}

/// The 99.9 % quantile of χ² with `dof` degrees of freedom, by the Wilson–Hilferty approximation
/// ν(1 − 2/(9ν) + z·sqrt(2/(9ν)))³.
pub fn chi_squared_999(dof: f64) -> f64 {
    let a = 2.0 / (9.0 * dof);
    dof * (1.0 - a + Z_999 * a.sqrt()).powi(3)
}

/// Rows the traffic writes to one stream per choice of stream.
fn rows_per_choice(traffic: &TrafficConfig) -> u32 {
    match traffic.write_mode {
        WriteMode::Single => 1,
        WriteMode::Batch => traffic.batch_size,
    }
}

/// `[probes.partition_balance]`'s own keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionBalanceOptions {
    /// Rows written by the traffic in this window are counted per stream.
    pub window: HumanDuration,
    /// Below this many rows per stream on average the CV is reported but not judged: random noise
    /// alone gives a CV of about 1/sqrt(mean), 10 % at 100 rows, 5 % at 400.
    pub min_rows_per_stream: u32,
}

impl Default for PartitionBalanceOptions {
    fn default() -> Self {
        Self {
            window: HumanDuration::from_secs(60),
            min_rows_per_stream: 400,
        }
    }
}

/// A window of at least a second, and some rows per stream.
fn rules(table: &ProbeTable, r: &mut Rules) {
    let o: PartitionBalanceOptions = table.options();
    r.at_least_a_second("probes.partition_balance.window", o.window);
    r.nonzero(
        "probes.partition_balance.min_rows_per_stream",
        o.min_rows_per_stream,
    );
}

/// `[probes.partition_balance]`: what this probe is, its table, checks, SLOs, alerts and metrics.
pub const SPEC: ProbeSpec = ProbeSpec {
    name: "partition_balance",
    checks: &["imbalance"],
    needs_scylla: true,
    schedule: ProbeConfig::every(60, 10_000),
    options: options_table::<PartitionBalanceOptions>,
    parse: parse_as::<PartitionBalanceOptions>,
    validate: rules,
    slos: &[SloSpec {
        key: "partition_balance_cv",
        default: SloValue::Number(0.10),
        indicator: SloIndicator::Check {
            check: "imbalance",
            metric: "chatload_partition_balance_cv",
        },
        alert: AlertSpec {
            name: "ChatloadPartitionImbalance",
            for_: "0m",
            expr: "",
            summary: r#"Rows per stream vary by {{ with printf "chatload_partition_balance_cv{job=%q,instance=%q}" $labels.job $labels.instance | query }}{{ . | first | value | humanizePercentage }}{{ end }}"#,
            description: "The skew CV of rows per stream (the coefficient of variation beyond what uniform random choice gives, significant at 99.9 %) exceeded {threshold}: some partitions are hot.",
        },
    }],
    alerts: &[],
    metrics: &["chatload_partition_balance_cv"],
};

/// The probe, as the registry makes it.
pub fn probe(_: &crate::config::Config) -> std::sync::Arc<dyn Probe> {
    std::sync::Arc::new(PartitionBalance)
}

impl Probe for PartitionBalance {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let cfg: PartitionBalanceOptions = ctx.cfg().probes.options("partition_balance");
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
            let balance = Balance::of(&counts?, rows_per_choice(&ctx.cfg().traffic));
            ctx.metrics.partition_balance_cv.set(balance.skew_cv);
            let mut v = Verdict::default();
            v.gauge("chatload_partition_balance_cv", balance.skew_cv);
            v.measured(took);
            if balance.mean >= f64::from(cfg.min_rows_per_stream) {
                v.fail(
                    "imbalance",
                    u64::from(balance.imbalanced(ctx.cfg().slo.threshold(&SPEC.slos[0]).get())),
                );
            }
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Zipf};

    const STREAMS: usize = 100;
    const ROWS: u64 = 60_000;
    const SLO: f64 = 0.10;

    /// Rows per stream after `ROWS` rows in choices of `batch` rows, each stream chosen by `pick`.
    fn counts(batch: u64, mut pick: impl FnMut() -> usize) -> Vec<u64> {
        let mut c = vec![0; STREAMS];
        for _ in 0..ROWS / batch {
            c[pick()] += batch;
        }
        c
    }

    fn uniform(seed: u64, batch: u64) -> Vec<u64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        counts(batch, || rng.random_range(0..STREAMS))
    }

    /// The plain coefficient of variation, as the probe judged before.
    fn raw_cv(c: &[u64]) -> f64 {
        let mean = c.iter().sum::<u64>() as f64 / c.len() as f64;
        let var = c.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / c.len() as f64;
        var.sqrt() / mean
    }

    #[test]
    fn known_case() {
        // Mean 10, CV² 0.25, noise b(k−1)/N = 1/20: skew CV sqrt(0.2); D = (25 + 25)/10 = 5.
        let b = Balance::of(&[5, 15], 1);
        assert_eq!(b.mean, 10.0);
        assert!((b.skew_cv - 0.2f64.sqrt()).abs() < 1e-12, "{b:?}");
        assert!((b.dispersion - 5.0).abs() < 1e-12, "{b:?}");
        // The same shares in batches of 2: noise 2/40, D = (100 + 100)/(2·20) = 5.
        let b2 = Balance::of(&[10, 30], 2);
        assert!((b2.skew_cv - 0.2f64.sqrt()).abs() < 1e-12, "{b2:?}");
        assert!((b2.dispersion - 5.0).abs() < 1e-12, "{b2:?}");
        // Noise only: CV² equal to b(k−1)/N gives a skew CV of 0.
        assert_eq!(Balance::of(&[9, 11], 1).skew_cv, 0.0);
        assert_eq!(Balance::of(&[7, 7, 7], 1).skew_cv, 0.0);
        for degenerate in [&[][..], &[0, 0], &[42]] {
            assert!(
                !Balance::of(degenerate, 1).imbalanced(0.0),
                "{degenerate:?}"
            );
        }
    }

    #[test]
    fn wilson_hilferty_is_close_to_the_exact_quantile() {
        // Exact 99.9 % quantiles of χ²(ν).
        for (dof, exact) in [(9.0, 27.877), (19.0, 43.820), (99.0, 148.230)] {
            let q = chi_squared_999(dof);
            assert!((q / exact - 1.0).abs() < 0.01, "ν = {dof}: {q} vs {exact}");
        }
    }

    /// 200 seeded uniform workloads in choices of `batch` rows: none is judged imbalanced. Returns
    /// the mean skew CV and the mean plain CV.
    fn judge_uniform(batch: u64) -> (f64, f64) {
        let (mut skew, mut raw) = (0.0, 0.0);
        for seed in 0..200 {
            let c = uniform(seed, batch);
            let b = Balance::of(&c, batch as u32);
            assert!(!b.imbalanced(SLO), "seed {seed}: {b:?}");
            skew += b.skew_cv / 200.0;
            raw += raw_cv(&c) / 200.0;
        }
        (skew, raw)
    }

    #[test]
    fn uniform_single_writes_are_never_judged_imbalanced() {
        let (skew, raw) = judge_uniform(1);
        // The plain CV is sqrt(99/60,000) ≈ 0.04 on average; the skew CV removes that noise.
        assert!(skew < 0.015 && raw > 0.035, "skew {skew}, plain {raw}");
    }

    #[test]
    fn uniform_batches_are_never_judged_imbalanced() {
        let (skew, raw) = judge_uniform(10);
        // The plain CV, sqrt(10·99/60,000) ≈ 0.13 on average, would break the SLO; the skew CV
        // removes that noise.
        assert!(skew < 0.05 && raw > SLO, "skew {skew}, plain {raw}");
    }

    #[test]
    fn the_dispersion_test_fails_uniform_choice_rarely() {
        // With 20 rows per stream, skew CVs above 0.1 are common; D alone must hold them off.
        let mut false_alarms = 0;
        for seed in 0..2000 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut c = vec![0; STREAMS];
            for _ in 0..2000 {
                c[rng.random_range(0..STREAMS)] += 1;
            }
            false_alarms += u32::from(Balance::of(&c, 1).imbalanced(SLO));
        }
        // 0.1 % of 2000 is 2.
        assert!(false_alarms <= 5, "{false_alarms} of 2000");
    }

    #[test]
    fn zipf_skew_is_judged_imbalanced() {
        let zipf = Zipf::new(STREAMS as f64, 1.0).unwrap();
        for (seed, batch) in [(1, 1), (2, 10)] {
            let mut rng = SmallRng::seed_from_u64(seed);
            let c = counts(batch, || zipf.sample(&mut rng) as usize - 1);
            let b = Balance::of(&c, batch as u32);
            assert!(b.imbalanced(SLO), "batch {batch}: {b:?}");
            assert!(b.skew_cv > 1.0, "batch {batch}: {b:?}");
        }
    }
}
