//! `range_5m`: the messages of the last five minutes of a stream; the count must match what the
//! probe wrote there in that window (`count_mismatch`, counting the difference).
//!
//! A write whose INSERT failed or timed out after it was sent (or was still in flight when the run
//! hit its timeout) may or may not have landed. Such a write is of unknown outcome: it is counted in
//! `chatload_probe_writes_unknown_total{probe="range_5m"}` and accepted as present or absent. So a
//! run is a mismatch only when it finds fewer rows than the confirmed writes in the window, or more
//! than the confirmed plus the unknown ones; real loss of a confirmed write still fails.

use super::probe::{PROBE_ROW_TTL, Probe, ProbeContext, ProbeError, Verdict, cql_error, timed};
use crate::chat::now_ms;
use crate::config::{
    AlertSpec, HumanDuration, NoOptions, ProbeConfig, ProbeSpec, SloIndicator, SloSpec, SloValue,
    no_rules, options_table, parse_as,
};
use crate::measure::metrics::Metrics;
use crate::store::scylla::ScyllaError;
use futures::future::BoxFuture;
use prometheus::IntCounter;
use scylla::errors::ExecutionError;
use scylla::value::CqlTimestamp;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// The probe's name.
pub const NAME: &str = "range_5m";

/// The window.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;

/// The probe.
#[derive(Default)]
pub struct Range5m {
    written: Mutex<Written>,
}

/// Timestamps of the rows this process wrote, oldest first, by what is known of their outcome.
#[derive(Debug, Default)]
struct Written {
    /// The INSERT succeeded.
    confirmed: VecDeque<i64>,
    /// The INSERT was sent but its outcome is unknown.
    unknown: VecDeque<i64>,
}

impl Written {
    /// Forget writes before `since`; the confirmed and unknown writes left.
    fn in_window(&mut self, since: i64) -> (u64, u64) {
        for w in [&mut self.confirmed, &mut self.unknown] {
            while w.front().is_some_and(|t| *t < since) {
                w.pop_front();
            }
        }
        (self.confirmed.len() as u64, self.unknown.len() as u64)
    }
}

fn lock(written: &Mutex<Written>) -> MutexGuard<'_, Written> {
    written.lock().unwrap_or_else(|e| e.into_inner())
}

/// Rows found beyond what the writes allow: fewer than the `confirmed` writes, or more than the
/// `confirmed` plus the `unknown` ones.
pub fn mismatch(found: u64, confirmed: u64, unknown: u64) -> u64 {
    if found < confirmed {
        confirmed - found
    } else {
        found.saturating_sub(confirmed + unknown)
    }
}

/// Whether a failed probe write may have reached the database: every driver error but those raised
/// before anything is sent (a rejected statement, no node to send to, no connection).
fn may_have_landed(e: &ProbeError) -> bool {
    let ProbeError::Scylla(e) = e else {
        return false;
    };
    let ScyllaError::Query { cause, .. } = e.as_ref() else {
        return false;
    };
    !matches!(
        cause,
        ExecutionError::BadQuery(_)
            | ExecutionError::EmptyPlan
            | ExecutionError::PrepareError(_)
            | ExecutionError::ConnectionPoolError(_)
    )
}

/// A probe write in flight. Unless it is settled as confirmed or as never sent, it ends as of
/// unknown outcome, also when the run is abandoned at its timeout while the INSERT is in flight.
struct InFlightWrite<'a> {
    written: &'a Mutex<Written>,
    timestamp_ms: i64,
    unknown_total: IntCounter,
    settled: bool,
}

impl<'a> InFlightWrite<'a> {
    fn new(written: &'a Mutex<Written>, timestamp_ms: i64, unknown_total: IntCounter) -> Self {
        Self {
            written,
            timestamp_ms,
            unknown_total,
            settled: false,
        }
    }

    /// Record what the INSERT returned.
    fn settle(mut self, result: &Result<(), ProbeError>) {
        match result {
            Ok(()) => {
                lock(self.written).confirmed.push_back(self.timestamp_ms);
                self.settled = true;
            }
            Err(e) if !may_have_landed(e) => self.settled = true,
            Err(_) => {} // of unknown outcome, when dropped
        }
    }
}

impl Drop for InFlightWrite<'_> {
    fn drop(&mut self) {
        if !self.settled {
            lock(self.written).unknown.push_back(self.timestamp_ms);
            self.unknown_total.inc();
        }
    }
}

/// `[probes.range_5m]`: what this probe is, its table, checks, SLOs, alerts and metrics.
pub const SPEC: ProbeSpec = ProbeSpec {
    name: "range_5m",
    checks: &["count_mismatch"],
    needs_scylla: true,
    schedule: ProbeConfig::every(10, 2000),
    options: options_table::<NoOptions>,
    parse: parse_as::<NoOptions>,
    validate: no_rules,
    slos: &[SloSpec {
        key: "range_5m_max",
        default: SloValue::Duration(HumanDuration::from_millis(50)),
        indicator: SloIndicator::Latency {
            quantile: 1.0,
            selector: r#"probe="range_5m""#,
        },
        alert: AlertSpec {
            name: "ChatloadRange5mSlow",
            for_: "10m",
            expr: "",
            summary: "{{ $value | humanizePercentage }} of five-minute range reads are slower than the SLO",
            description: "Some range_5m probe query took longer than {threshold} (the SLO is a maximum) in every 5-minute window for 10 minutes.",
        },
    }],
    alerts: &[],
    metrics: &["chatload_probe_writes_unknown_total"],
};

/// The probe, as the registry makes it.
pub fn probe(_: &crate::config::Config) -> std::sync::Arc<dyn Probe> {
    std::sync::Arc::new(Range5m::default())
}

impl Probe for Range5m {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn init_series(&self, m: &Metrics) {
        m.probe_writes_unknown.with_label_values(&[NAME]);
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            // Session and statements first: a failure there has sent nothing.
            let session = ctx.session()?;
            let st = ctx.statements().await?;
            let stream = ctx.stream(NAME, 0);
            let m = ctx.message(stream, now_ms(), "range_5m probe".into());
            let unknown_total = ctx.metrics.probe_writes_unknown.with_label_values(&[NAME]);
            let write = InFlightWrite::new(&self.written, m.timestamp_ms, unknown_total);
            let result = ctx.write(&m, Some(PROBE_ROW_TTL)).await;
            write.settle(&result);
            result?;
            let since = now_ms() - WINDOW_MS;
            let (confirmed, unknown) = lock(&self.written).in_window(since);
            let (result, took) =
                timed(session.execute_unpaged(&st.since, (stream, CqlTimestamp(since)))).await;
            let found = result
                .map_err(|e| cql_error("SELECT … WHERE timestamp >= now - 5m", e))?
                .into_rows_result()
                .map(|r| r.rows_num() as u64)
                .unwrap_or(0);
            let mut v = Verdict::default();
            v.measured(took);
            v.fail("count_mismatch", mismatch(found, confirmed, unknown));
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_counts_outside_confirmed_to_confirmed_plus_unknown_mismatch() {
        // (found, confirmed, unknown, mismatch)
        let cases = [
            (5, 5, 0, 0),
            (4, 5, 0, 1),
            (6, 5, 0, 1),
            (5, 5, 2, 0),
            (6, 5, 2, 0),
            (7, 5, 2, 0),
            (9, 5, 2, 2),
            (3, 5, 2, 2),
            (0, 0, 0, 0),
            (1, 0, 1, 0),
        ];
        for (found, confirmed, unknown, want) in cases {
            assert_eq!(
                mismatch(found, confirmed, unknown),
                want,
                "found {found}, confirmed {confirmed}, unknown {unknown}"
            );
        }
    }

    fn query_error(cause: ExecutionError) -> ProbeError {
        cql_error("probe INSERT", cause)
    }

    /// Settle one write at timestamp 1 with `result` (`None`: abandoned in flight); the confirmed and
    /// unknown writes and the unknown counter afterwards.
    fn after_write(result: Option<Result<(), ProbeError>>) -> (u64, u64, u64) {
        let written = Mutex::new(Written::default());
        let counter = IntCounter::new("unknown", "test").unwrap();
        let write = InFlightWrite::new(&written, 1, counter.clone());
        match result {
            Some(r) => write.settle(&r),
            None => drop(write),
        }
        let (confirmed, unknown) = lock(&written).in_window(0);
        (confirmed, unknown, counter.get())
    }

    #[test]
    fn writes_are_sorted_by_what_is_known_of_their_outcome() {
        assert_eq!(after_write(Some(Ok(()))), (1, 0, 0));
        let timeout = query_error(ExecutionError::RequestTimeout(Duration::from_secs(2)));
        assert_eq!(after_write(Some(Err(timeout))), (0, 1, 1));
        assert_eq!(
            after_write(None),
            (0, 1, 1),
            "abandoned at the run's timeout"
        );
        assert_eq!(after_write(Some(Err(ProbeError::NoSession))), (0, 0, 0));
        let unsent = query_error(ExecutionError::EmptyPlan);
        assert_eq!(after_write(Some(Err(unsent))), (0, 0, 0));
    }

    #[test]
    fn the_window_forgets_old_writes_of_both_kinds() {
        let mut w = Written {
            confirmed: [10, 20, 30].into(),
            unknown: [15, 25].into(),
        };
        assert_eq!(w.in_window(0), (3, 2));
        assert_eq!(w.in_window(20), (2, 1));
        assert_eq!(w.in_window(31), (0, 0));
    }
}
