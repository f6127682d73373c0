//! `pagination`: 10 pages of 50 through the driver's paging state, as a client scrolling back.
//!
//! The probe seeds a stream with 520 messages of known timestamps and ids (reseeded into a fresh
//! stream every 12 hours, before the seed's 1-day TTL runs out), then pages through it. The rows must
//! be exactly the newest 500 seeded, in order: a seeded row skipped is a `gap`, a row seen twice a
//! `duplicate`, a timestamp going up a `wrong_order`, fewer than 10 full pages `short`. Each page's
//! latency is measured.

use super::probe::{Probe, ProbeContext, ProbeError, Verdict, cql_error, timed};
use crate::chat::now_ms;
use crate::config::{
    AlertSpec, HumanDuration, NoOptions, ProbeConfig, ProbeSpec, SloIndicator, SloSpec, SloValue,
    no_rules, options_table, parse_as,
};
use futures::future::BoxFuture;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::value::CqlTimestamp;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Mutex;
use uuid::Uuid;

/// Pages read per run.
pub const PAGES: usize = 10;
/// Rows per page.
pub const PAGE_SIZE: usize = 50;
/// Rows seeded (more than read, so the last page is full).
pub const SEEDED: usize = 520;
const SEED_TTL: u32 = 86_400;
const RESEED_AFTER_MS: i64 = 12 * 3_600_000;

#[derive(Clone)]
struct Seed {
    generation: u32,
    at_ms: i64,
    /// (timestamp, message_id), newest first: the order the table returns them in.
    rows: Vec<(i64, Uuid)>,
}

/// The probe.
#[derive(Default)]
pub struct Pagination {
    seed: Mutex<Option<Seed>>,
}

/// Compare what the pages returned with the newest `expected` rows; returns (gap, duplicate,
/// wrong_order, short) counts.
pub fn compare(expected: &[(i64, Uuid)], got: &[(i64, Uuid)]) -> (u64, u64, u64, u64) {
    let mut seen = HashSet::new();
    let duplicates = got.iter().filter(|(_, id)| !seen.insert(*id)).count() as u64;
    let wrong_order = got.windows(2).filter(|w| w[0].0 < w[1].0).count() as u64;
    let want = &expected[..expected.len().min(PAGES * PAGE_SIZE)];
    // A gap: an expected row missing although a later (older) one was returned.
    let oldest_got = got.iter().map(|(t, _)| *t).min();
    let gaps = want
        .iter()
        .filter(|(t, id)| oldest_got.is_some_and(|o| *t >= o) && !seen.contains(id))
        .count() as u64;
    let short = (want.len() as u64).saturating_sub(seen.len() as u64);
    (gaps, duplicates, wrong_order, short)
}

impl Pagination {
    async fn seeded(&self, ctx: &ProbeContext) -> Result<Seed, ProbeError> {
        let current = self.seed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(s) = current.filter(|s| now_ms() - s.at_ms < RESEED_AFTER_MS) {
            return Ok(s);
        }
        let generation = current_generation(&self.seed) + 1;
        let stream = ctx.stream("pagination", generation);
        let base = now_ms();
        let mut rows = Vec::with_capacity(SEEDED);
        for i in 0..SEEDED as i64 {
            let m = ctx.message(stream, base - i, format!("pagination seed {i}"));
            ctx.write(&m, Some(SEED_TTL)).await?;
            rows.push((m.timestamp_ms, m.message_id));
        }
        let seed = Seed {
            generation,
            at_ms: base,
            rows,
        };
        *self.seed.lock().unwrap_or_else(|e| e.into_inner()) = Some(seed.clone());
        Ok(seed)
    }
}

fn current_generation(seed: &Mutex<Option<Seed>>) -> u32 {
    seed.lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, |s| s.generation)
}

/// `[probes.pagination]`: what this probe is, its table, checks, SLOs, alerts and metrics.
pub const SPEC: ProbeSpec = ProbeSpec {
    name: "pagination",
    checks: &["gap", "duplicate", "wrong_order", "short"],
    needs_scylla: true,
    schedule: ProbeConfig::every(30, 5000),
    options: options_table::<NoOptions>,
    parse: parse_as::<NoOptions>,
    validate: no_rules,
    slos: &[SloSpec {
        key: "pagination_page_p99",
        default: SloValue::Duration(HumanDuration::from_millis(10)),
        indicator: SloIndicator::Latency {
            quantile: 0.99,
            selector: r#"probe="pagination""#,
        },
        alert: AlertSpec {
            name: "ChatloadPaginationSlow",
            for_: "10m",
            expr: "",
            summary: "{{ $value | humanizePercentage }} of history pages are slower than the SLO",
            description: "More than 1 % of the pagination probe's pages took longer than {threshold} for 10 minutes (its per-page p99 is over the SLO): scrolling back is slow.",
        },
    }],
    alerts: &[],
    metrics: &[],
};

/// The probe, as the registry makes it.
pub fn probe(_: &crate::config::Config) -> std::sync::Arc<dyn Probe> {
    std::sync::Arc::new(Pagination::default())
}

impl Probe for Pagination {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let seed = self.seeded(ctx).await?;
            let stream = ctx.stream("pagination", seed.generation);
            let session = ctx.session()?;
            let st = ctx.statements().await?;
            let mut v = Verdict::default();
            let mut got: Vec<(i64, Uuid)> = Vec::with_capacity(PAGES * PAGE_SIZE);
            let mut paging = PagingState::start();
            for _ in 0..PAGES {
                let (result, took) =
                    timed(session.execute_single_page(&st.pages, (stream,), paging)).await;
                v.measured(took);
                let (page, next): (_, PagingStateResponse) =
                    result.map_err(|e| cql_error("SELECT … (paged, 50 per page)", e))?;
                let rows = page
                    .into_rows_result()
                    .map_err(|e| ProbeError::Other(e.to_string()))?;
                for row in rows
                    .rows::<(Uuid, CqlTimestamp)>()
                    .map_err(|e| ProbeError::Other(e.to_string()))?
                {
                    let (id, ts) = row.map_err(|e| ProbeError::Other(e.to_string()))?;
                    got.push((ts.0, id));
                }
                match next.into_paging_control_flow() {
                    ControlFlow::Continue(state) => paging = state,
                    ControlFlow::Break(()) => break,
                }
            }
            let (gap, duplicate, wrong_order, short) = compare(&seed.rows, &got);
            v.fail("gap", gap);
            v.fail("duplicate", duplicate);
            v.fail("wrong_order", wrong_order);
            v.fail("short", short);
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<(i64, Uuid)> {
        (0..n)
            .map(|i| (1000 - i as i64, Uuid::from_u128(i as u128)))
            .collect()
    }

    #[test]
    fn exact_pages_pass() {
        let r = rows(520);
        assert_eq!(compare(&r, &r[..500]), (0, 0, 0, 0));
    }

    #[test]
    fn each_fault_is_named() {
        let r = rows(520);
        let mut gap = r[..500].to_vec();
        gap.remove(10);
        assert_eq!(compare(&r, &gap), (1, 0, 0, 1));
        let mut dup = r[..499].to_vec();
        dup.insert(60, r[59]);
        assert_eq!(compare(&r, &dup).1, 1);
        let mut swapped = r[..500].to_vec();
        swapped.swap(3, 4);
        assert_eq!(compare(&r, &swapped), (0, 0, 1, 0));
        assert_eq!(compare(&r, &r[..450]), (0, 0, 0, 50));
    }
}
