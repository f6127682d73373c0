//! `range_5m`: the messages of the last five minutes of a stream; the count must match what the
//! probe wrote there in that window (`count_mismatch`, counting the difference).

use super::{PROBE_ROW_TTL, Probe, ProbeContext, ProbeError, Verdict, cql_error, now_ms, timed};
use futures::future::BoxFuture;
use scylla::value::CqlTimestamp;
use std::collections::VecDeque;
use std::sync::Mutex;

/// The window.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;

/// The probe.
#[derive(Default)]
pub struct Range5m {
    /// Timestamps this process wrote, oldest first.
    written: Mutex<VecDeque<i64>>,
}

impl Probe for Range5m {
    fn name(&self) -> &'static str {
        "range_5m"
    }

    fn checks(&self) -> &'static [&'static str] {
        &["count_mismatch"]
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Result<Verdict, ProbeError>> {
        Box::pin(async move {
            let stream = ctx.stream("range_5m", 0);
            let m = ctx.message(stream, now_ms(), "range_5m probe".into());
            ctx.write(&m, Some(PROBE_ROW_TTL)).await?;
            let since = now_ms() - WINDOW_MS;
            let expected = {
                let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
                w.push_back(m.timestamp_ms);
                while w.front().is_some_and(|t| *t < since) {
                    w.pop_front();
                }
                w.len() as u64
            };
            let session = ctx.session()?;
            let st = ctx.statements().await?;
            let (result, took) =
                timed(session.execute_unpaged(&st.since, (stream, CqlTimestamp(since)))).await;
            let found = result
                .map_err(|e| cql_error("SELECT … WHERE timestamp >= now - 5m", e))?
                .into_rows_result()
                .map(|r| r.rows_num() as u64)
                .unwrap_or(0);
            let mut v = Verdict::default();
            v.measured(took);
            v.fail("count_mismatch", found.abs_diff(expected));
            Ok(v)
        })
    }
}
