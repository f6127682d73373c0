//! Statistics, and nothing of execution: HDR histograms and the percentiles read from them, the
//! bucket counts of a Prometheus histogram (subtracted, and read above a bound or at a quantile as
//! PromQL does) and latencies written for people.
//!
//! Pure: no metric registered, no clock read, nothing of the rest of chatload imported.

use prometheus::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latency distributions in HDR histograms (microseconds, 3 significant digits: a reported value is
/// within 0.1 % of the true one) beside the Prometheus buckets: `chatload check` reports percentiles
/// from these; SLO verdicts come from the bucket counts (see [`crate::measure::slo`]).
pub struct ExactLatency {
    /// From the scheduled start.
    pub duration: hdrhistogram::Histogram<u64>,
    /// From the send.
    pub service: hdrhistogram::Histogram<u64>,
}

/// Significant digits of every HDR histogram: values are kept within 0.1 %.
pub const HDR_SIGNIFICANT_DIGITS: u8 = 3;

/// An HDR histogram for latencies in microseconds, 1 µs to 1 h, [`HDR_SIGNIFICANT_DIGITS`].
pub fn exact_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, HDR_SIGNIFICANT_DIGITS)
        .expect("valid HDR bounds")
}

/// `d` in whole microseconds, at least 1 (the histogram's lowest value).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl ExactLatency {
    pub(crate) fn new() -> Self {
        Self {
            duration: exact_histogram(),
            service: exact_histogram(),
        }
    }
}

/// Percentiles of one distribution, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Observations.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// The `q`-quantile among those kept (0.5, 0.9, 0.95, 0.99, 0.999, 1 for the maximum; the
    /// next one above otherwise).
    pub fn at(&self, q: f64) -> f64 {
        match q {
            q if q <= 0.5 => self.p50,
            q if q <= 0.9 => self.p90,
            q if q <= 0.95 => self.p95,
            q if q <= 0.99 => self.p99,
            q if q <= 0.999 => self.p999,
            _ => self.max,
        }
    }

    /// Read the percentiles of an HDR histogram recorded in microseconds.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let s = |us: u64| us as f64 / 1e6;
        Self {
            count: h.len(),
            mean: h.mean() / 1e6,
            p50: s(h.value_at_quantile(0.5)),
            p90: s(h.value_at_quantile(0.9)),
            p95: s(h.value_at_quantile(0.95)),
            p99: s(h.value_at_quantile(0.99)),
            p999: s(h.value_at_quantile(0.999)),
            max: s(h.max()),
        }
    }
}

/// Cumulative bucket counts of a histogram, as Prometheus scrapes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketCounts {
    /// Upper bounds (without +Inf).
    pub bounds: Vec<f64>,
    /// Observations at or below each bound.
    pub cumulative: Vec<u64>,
    /// All observations.
    pub count: u64,
}

impl BucketCounts {
    /// Read a histogram.
    pub fn of(h: &Histogram) -> Self {
        let proto = prometheus::core::Collector::collect(h);
        let hist = proto[0].get_metric()[0].get_histogram();
        let (bounds, cumulative) = hist
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .unzip();
        Self {
            bounds,
            cumulative,
            count: hist.get_sample_count(),
        }
    }

    /// The counts of `self` and `more` together (same bounds; an empty `self` takes `more`'s).
    pub fn plus(&self, more: &BucketCounts) -> BucketCounts {
        if self.bounds.is_empty() && self.count == 0 {
            return more.clone();
        }
        BucketCounts {
            bounds: self.bounds.clone(),
            cumulative: self
                .cumulative
                .iter()
                .zip(&more.cumulative)
                .map(|(a, b)| a + b)
                .collect(),
            count: self.count + more.count,
        }
    }

    /// The counts since `earlier` (same bounds).
    pub fn minus(&self, earlier: &BucketCounts) -> BucketCounts {
        if earlier.bounds != self.bounds {
            return self.clone();
        }
        BucketCounts {
            bounds: self.bounds.clone(),
            cumulative: self
                .cumulative
                .iter()
                .zip(&earlier.cumulative)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            count: self.count.saturating_sub(earlier.count),
        }
    }

    /// Observations above `t`, when `t` is a bound (exact); `None` otherwise.
    pub fn above(&self, t: f64) -> Option<u64> {
        let i = self.bounds.iter().position(|b| same_bound(*b, t))?;
        Some(self.count.saturating_sub(self.cumulative[i]))
    }

    /// The `q`-quantile interpolated within buckets as PromQL's `histogram_quantile` does; `None`
    /// without observations. Above the last finite bound it is that bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let mut lower = (0.0, 0u64);
        for (bound, cum) in self.bounds.iter().zip(&self.cumulative) {
            if *cum as f64 >= rank {
                let (lb, lc) = lower;
                let in_bucket = (*cum - lc) as f64;
                if in_bucket == 0.0 {
                    return Some(*bound);
                }
                return Some(lb + (bound - lb) * (rank - lc as f64) / in_bucket);
            }
            lower = (*bound, *cum);
        }
        self.bounds.last().copied()
    }
}

/// Each count of `now` less the same key's count in `earlier` (never below 0): counters read
/// twice, what happened between.
pub fn counts_since(
    now: &BTreeMap<&'static str, u64>,
    earlier: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    now.iter()
        .map(|(k, v)| (*k, v.saturating_sub(earlier.get(k).copied().unwrap_or(0))))
        .collect()
}

/// Two bucket bounds are the same when they differ by float rounding only.
pub(crate) fn same_bound(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

/// `0.00123` → `1.23 ms`.
pub fn human_seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bucket counts of `values` observed in a histogram with `bounds`.
    pub(crate) fn histogram(bounds: &[f64], values: &[f64]) -> BucketCounts {
        let h =
            Histogram::with_opts(prometheus::HistogramOpts::new("h", "h").buckets(bounds.to_vec()))
                .unwrap();
        for v in values {
            h.observe(*v);
        }
        BucketCounts::of(&h)
    }

    #[test]
    fn counts_since_an_earlier_reading() {
        let bounds = [0.001, 0.01];
        let h =
            Histogram::with_opts(prometheus::HistogramOpts::new("h", "h").buckets(bounds.to_vec()))
                .unwrap();
        h.observe(0.0005);
        let earlier = BucketCounts::of(&h);
        h.observe(0.005);
        h.observe(0.5);
        let since = BucketCounts::of(&h).minus(&earlier);
        assert_eq!(since.count, 2);
        assert_eq!(since.cumulative, [0, 1]);
        assert_eq!(since.above(0.01), Some(1));
        // Readings of different layouts are not subtracted.
        let other = histogram(&[0.002], &[0.001]);
        assert_eq!(BucketCounts::of(&h).minus(&other), BucketCounts::of(&h));
    }

    #[test]
    fn quantile_interpolates_like_promql() {
        let c = histogram(&[0.001, 0.002, 0.004], &[0.0015; 100]);
        assert!((c.quantile(0.5).unwrap() - 0.0015).abs() < 1e-12);
        assert_eq!(c.above(0.002), Some(0));
        assert_eq!(c.above(0.003), None);
        // Interpolated inside a bucket that has observations below it.
        let mut two = vec![0.0005; 50];
        two.extend([0.0015; 50]);
        let c = histogram(&[0.001, 0.002], &two);
        assert!((c.quantile(0.75).unwrap() - 0.0015).abs() < 1e-12);
        assert!((c.quantile(0.9).unwrap() - 0.0018).abs() < 1e-12);
        let over = histogram(&[0.001], &[5.0; 3]);
        assert_eq!(over.quantile(0.99), Some(0.001));
        assert_eq!(histogram(&[0.001], &[]).quantile(0.5), None);
    }
}
