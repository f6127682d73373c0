//! Probes against the real stack: all nine pass on a healthy stack, and every check of every probe
//! fails when its fault is real (an altered or removed table TTL, a row that never expires, a deleted
//! or stale cache entry, a Redis key whose expiry was removed, a short key rewritten without one, a
//! proxy that caps `SET … EX` at 30 s, PUBLISH denied to the probe's ACL user while its subscription
//! stays up, Zipf-skewed traffic, a deleted `range_5m` row, a table in ascending order, a tombstone
//! from the future, rows deleted or written again under the pagination probe); a PTTL held 1.5 s is
//! no `ttl_mismatch`; a run that outlasts its timeout is a `timeout`, and runs never overlap.
//!
//! The `runs` and `failures` helpers refuse a probe, outcome or check the daemon does not have, so an
//! assertion of 0 on a misspelled label fails instead of reading a fresh series at 0.

use crate::common::{
    CASSANDRA, PROBES as ALL, REDIS, STACK_LOCK, config_with, must, probes_only, require_stack,
};
use chatload::chat::table;
use chatload::probes::{redis_cache, redis_ttl, ttl_expiry};
use chatload::store::scylla::{connect, query_first};
use chatload::{Daemon, config};
use scylla::value::CqlTimestamp;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn start(keyspace: &str, rest: &str) -> (Daemon, CancellationToken) {
    start_with(&config_with(CASSANDRA, REDIS, keyspace, rest)).await
}

/// The daemon with a whole config text.
async fn start_with(text: &str) -> (Daemon, CancellationToken) {
    let cfg = config::load_str(
        text,
        Path::new("t"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    let token = CancellationToken::new();
    (Daemon::start(cfg, token.clone()).await.unwrap(), token)
}

async fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

/// Runs of `probe` that ended as `outcome`. The labels are checked first: `with_label_values` would
/// make a misspelled one a fresh series at 0, and an assertion of 0 on it could never fail.
fn runs(d: &Daemon, probe: &str, outcome: &str) -> u64 {
    assert!(
        d.probes().checks().contains_key(probe) && chatload::probes::OUTCOMES.contains(&outcome),
        "no probe {probe} or no run outcome {outcome}"
    );
    d.metrics()
        .probe_runs
        .with_label_values(&[probe, outcome])
        .get()
}

/// Violations of `probe`'s `check` counted so far; the check must be one the probe has (see [`runs`]).
fn failures(d: &Daemon, probe: &str, check: &str) -> u64 {
    assert!(
        d.probes()
            .checks()
            .get(probe)
            .is_some_and(|checks| checks.contains(&check)),
        "{probe} has no check {check}"
    );
    d.metrics()
        .probe_check_failures
        .with_label_values(&[probe, check])
        .get()
}

/// A series of the daemon's exposition; panics, naming it, when no series has those labels (a
/// `with_label_values` lookup would make a fresh one at 0 instead).
fn exported(d: &Daemon, name: &str, labels: &[(&str, &str)]) -> f64 {
    must(
        &String::from_utf8(d.metrics().encode()).unwrap(),
        name,
        labels,
    )
}

async fn session(keyspace: &str) -> scylla::client::session::Session {
    let text = config_with(CASSANDRA, REDIS, keyspace, "");
    let cfg = config::load_str(
        &text,
        Path::new("t"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    connect(&cfg.scylla, None).await.unwrap()
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{REDIS}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// 60 s of `chatload run` with all probes every 5 s: all nine pass every run. Prints each p99.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_nine_probes_pass_on_a_healthy_stack() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let rest = format!(
        "[traffic]\nwrite_rate = 1000.0\nread_rate = 200.0\n{}",
        probes_only(&ALL, "5s").replace(
            "[probes.ttl_expiry]\nenabled = true\ninterval = \"5s\"",
            "[probes.ttl_expiry]\nenabled = true\ninterval = \"5s\"\ntimeout = \"10s\""
        )
    );
    let (d, token) = start("chatload_it_probes", &rest).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let snapshot = d.probes().snapshot();
    for probe in ALL {
        let s = &snapshot[probe];
        let ok = runs(&d, probe, "ok");
        eprintln!(
            "{probe:<18} runs ok {ok:>3}  p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms  ({} measurements)",
            s.latency.p50 * 1e3,
            s.latency.p99 * 1e3,
            s.latency.max * 1e3,
            s.latency.count
        );
        for bad in ["failed", "error", "timeout"] {
            assert_eq!(
                runs(&d, probe, bad),
                0,
                "{probe}: {bad} runs; last problem: {:?}",
                s.last_problem
            );
        }
        assert!(ok >= 8, "{probe}: only {ok} runs in 60 s");
        assert_eq!(
            exported(&d, "chatload_probe_success", &[("probe", probe)]),
            1.0,
            "{probe}"
        );
    }
    // The skew CV: about 0 for the uniform traffic (often exactly 0).
    let cv = d.metrics().partition_balance_cv.get();
    assert!((0.0..0.1).contains(&cv), "partition balance skew CV {cv}");
    assert_eq!(d.metrics().redis_cache_consistent.get(), 1);
    token.cancel();
    d.wait().await;
}

/// The table's default TTL altered to 3600 s: `ttl_metadata` fails and shows the drift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_metadata_fails_when_the_table_ttl_is_altered() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_ttlmeta";
    let s = session(keyspace).await;
    s.query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await
        .unwrap();
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["ttl_metadata"], "1s")
    );
    let (d, token) = start(keyspace, &rest).await;
    wait_until(
        "a healthy ttl_metadata run",
        Duration::from_secs(30),
        || runs(&d, "ttl_metadata", "ok") > 0,
    )
    .await;
    let healthy_drift = exported(&d, "chatload_ttl_drift_seconds", &[("backend", "scylla")]);
    assert!(healthy_drift.abs() < 60.0, "{healthy_drift}");

    s.query_unpaged(
        format!("ALTER TABLE {keyspace}.chat_messages WITH default_time_to_live = 3600"),
        &[],
    )
    .await
    .unwrap();
    wait_until(
        "ttl_metadata to see the altered TTL",
        Duration::from_secs(20),
        || {
            failures(&d, "ttl_metadata", "ttl_drift") > 0
                && failures(&d, "ttl_metadata", "table_default_ttl") > 0
        },
    )
    .await;
    let drift = exported(&d, "chatload_ttl_drift_seconds", &[("backend", "scylla")]);
    eprintln!(
        "drift after ALTER: {drift} s; table default {}",
        d.metrics().ttl_table_default.get()
    );
    assert!((drift - (3600.0 - 2_592_000.0)).abs() < 60.0, "{drift}");
    assert_eq!(d.metrics().ttl_table_default.get(), 3600.0);
    assert_eq!(
        exported(&d, "chatload_probe_success", &[("probe", "ttl_metadata")]),
        0.0
    );
    // No default TTL at all: fresh rows carry none, `no_ttl`.
    s.query_unpaged(
        format!("ALTER TABLE {keyspace}.chat_messages WITH default_time_to_live = 0"),
        &[],
    )
    .await
    .unwrap();
    wait_until(
        "ttl_metadata to see rows without a TTL",
        Duration::from_secs(20),
        || failures(&d, "ttl_metadata", "no_ttl") > 0,
    )
    .await;
    token.cancel();
    d.wait().await;
    s.query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[])
        .await
        .unwrap();
}

/// A row without TTL in the probe's stream, older than TTL + grace: `ttl_expiry` fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_fails_when_a_row_does_not_expire() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_probes_ttl";
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["ttl_expiry"], "1s")
    );
    let (d, token) = start(keyspace, &rest).await;
    wait_until("a healthy ttl_expiry run", Duration::from_secs(30), || {
        runs(&d, "ttl_expiry", "ok") > 0
    })
    .await;

    let ctx = d.probes().context().clone();
    let written = chatload::chat::now_ms() - 60_000;
    let stream = ttl_expiry::streams(&ctx, chatload::chat::now_ms())[0];
    let s = session(keyspace).await;
    s.query_unpaged(
        format!(
            "INSERT INTO {keyspace}.chat_messages (stream_id, timestamp, message_id, message_text) \
             VALUES (?, ?, uuid(), 'never expires') USING TTL 0"
        ),
        (stream, CqlTimestamp(written)),
    )
    .await
    .unwrap();
    let (injected_ttl,) = query_first::<(Option<i32>,)>(
        &s,
        &format!(
            "SELECT TTL(message_text) FROM {keyspace}.chat_messages WHERE stream_id = {stream} AND timestamp = {written}"
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(injected_ttl, None, "the injected row has no TTL");
    wait_until(
        "ttl_expiry to find the row",
        Duration::from_secs(20),
        || failures(&d, "ttl_expiry", "not_expired") > 0,
    )
    .await;
    token.cancel();
    d.wait().await;
}

/// The probe's cache entry deleted, then replaced by a stale one: `redis_cache` fails both times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_fails_when_the_entry_is_deleted_or_stale() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_probes_cache";
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["redis_cache"], "1s")
    );
    let (d, token) = start(keyspace, &rest).await;
    wait_until(
        "two healthy redis_cache runs",
        Duration::from_secs(30),
        || runs(&d, "redis_cache", "ok") > 1,
    )
    .await;
    let ctx = d.probes().context().clone();
    let key = chatload::chat::cache::cache_key(keyspace, &redis_cache::stream(&ctx));
    let mut r = redis().await;

    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut r)
        .await
        .unwrap();
    wait_until(
        "redis_cache to see the deleted entry",
        Duration::from_secs(10),
        || failures(&d, "redis_cache", "missing") > 0,
    )
    .await;

    let ok_before = runs(&d, "redis_cache", "ok");
    wait_until("a healthy run again", Duration::from_secs(10), || {
        runs(&d, "redis_cache", "ok") > ok_before
    })
    .await;
    let stale = format!(
        r#"{{"message_id":"{}","stream_id":"{}","timestamp":1,"sender_id":"{}","sender_display_name":"x","message_type":"text","moderation_status":"approved","text":"stale"}}"#,
        uuid::Uuid::new_v4(),
        redis_cache::stream(&ctx),
        uuid::Uuid::nil()
    );
    let _: () = redis::cmd("LPUSH")
        .arg(&key)
        .arg(stale)
        .query_async(&mut r)
        .await
        .unwrap();
    wait_until(
        "redis_cache to see the stale entry",
        Duration::from_secs(10),
        || failures(&d, "redis_cache", "stale") > 0,
    )
    .await;
    token.cancel();
    d.wait().await;
}

/// PERSIST on the probe's key (its expiry removed): `redis_ttl` fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ttl_fails_when_the_expiry_is_removed() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_probes_rttl";
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["redis_ttl"], "3s")
    );
    let (d, token) = start(keyspace, &rest).await;
    wait_until("a healthy redis_ttl run", Duration::from_secs(30), || {
        runs(&d, "redis_ttl", "ok") > 0
    })
    .await;
    let (long, _short) = redis_ttl::keys(&d.probes().context().clone());
    let mut r = redis().await;
    let removed: i64 = redis::cmd("PERSIST")
        .arg(&long)
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(removed, 1, "the probe's key had an expiry to remove");
    wait_until(
        "redis_ttl to see the missing expiry",
        Duration::from_secs(10),
        || failures(&d, "redis_ttl", "no_expiry") > 0,
    )
    .await;
    assert_eq!(
        exported(&d, "chatload_probe_success", &[("probe", "redis_ttl")]),
        0.0
    );
    token.cancel();
    d.wait().await;
}

async fn balance(keyspace: &str, distribution: &str, mode: &str) -> (Daemon, CancellationToken) {
    let rest = format!(
        "[traffic]\nwrite_rate = 2000.0\nread_rate = 0.0\nstreams = 20\nstream_distribution = \"{distribution}\"\nwrite_mode = \"{mode}\"\nbatch_size = 10\n{}",
        probes_only(&["partition_balance"], "2s").replace(
            "[probes.partition_balance]\nenabled = true\ninterval = \"2s\"",
            "[probes.partition_balance]\nenabled = true\ninterval = \"2s\"\nwindow = \"5s\"\nmin_rows_per_stream = 200"
        )
    );
    start(keyspace, &rest).await
}

/// Uniform traffic passes `partition_balance`, written one message at a time and in batches of 10
/// (where the raw CV of a uniform choice is about sqrt(10 · 19 / 10,000) ≈ 14 %, over the 10 % SLO);
/// Zipf-skewed traffic fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_balance_fails_on_zipf_traffic() {
    // 2,000 writes/s: a load test, alone on the stack.
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let mut uniform_cv = 0.0;
    for (keyspace, mode) in [
        ("chatload_it_balance_uniform", "single"),
        ("chatload_it_balance_batch", "batch"),
    ] {
        let (d, token) = balance(keyspace, "uniform", mode).await;
        tokio::time::sleep(Duration::from_secs(7)).await; // fill the 5 s window
        let ok_before = runs(&d, "partition_balance", "ok");
        wait_until("two judged uniform runs", Duration::from_secs(20), || {
            runs(&d, "partition_balance", "ok") >= ok_before + 2
        })
        .await;
        uniform_cv = d.metrics().partition_balance_cv.get();
        assert_eq!(
            failures(&d, "partition_balance", "imbalance"),
            0,
            "uniform traffic, write_mode {mode}: skew CV {uniform_cv}"
        );
        eprintln!("partition balance, uniform, write_mode {mode}: skew CV {uniform_cv:.3}");
        token.cancel();
        d.wait().await;
    }

    let (d, token) = balance("chatload_it_balance_zipf", "zipf", "single").await;
    wait_until(
        "partition_balance to flag the Zipf skew",
        Duration::from_secs(30),
        || failures(&d, "partition_balance", "imbalance") > 0,
    )
    .await;
    let zipf_cv = d.metrics().partition_balance_cv.get();
    eprintln!("partition balance CV: uniform {uniform_cv:.3}, zipf {zipf_cv:.3}");
    assert!(
        uniform_cv < 0.1 && zipf_cv > 0.5,
        "uniform {uniform_cv}, zipf {zipf_cv}"
    );
    token.cancel();
    d.wait().await;
}

/// `redis_pubsub` with 200 messages a run: every message is timed exactly once (at its arrival,
/// while the later ones are still being published) and none is lost. Prints the latencies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_times_every_message_it_publishes() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["redis_pubsub"], "1s").replace(
            "[probes.redis_pubsub]\nenabled = true\n",
            "[probes.redis_pubsub]\nenabled = true\nmessages = 200\n"
        )
    );
    let (d, token) = start("chatload_it_probes_pubsub", &rest).await;
    wait_until("three redis_pubsub runs", Duration::from_secs(20), || {
        runs(&d, "redis_pubsub", "ok") >= 3
    })
    .await;
    // One snapshot: runs, checks and latencies of the same runs.
    let s = d.probes().snapshot()["redis_pubsub"].clone();
    // Read after the snapshot: the counter only grows, so 0 now was 0 then.
    let lost = failures(&d, "redis_pubsub", "lost");
    token.cancel();
    d.wait().await;
    let ok = s.runs.get("ok").copied().unwrap_or(0);
    eprintln!(
        "redis_pubsub: {ok} runs, {} messages timed: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        s.latency.count,
        s.latency.p50 * 1e3,
        s.latency.p99 * 1e3,
        s.latency.max * 1e3
    );
    assert_eq!(s.runs.values().sum::<u64>(), ok, "{:?}", s.last_problem);
    assert_eq!(lost, 0);
    assert_eq!(s.latency.count, 200 * ok);
}

/// `range_5m` on a healthy stack matches, with no write of unknown outcome; a probe row deleted
/// inside the window is real loss, and `count_mismatch` still fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_5m_fails_when_a_written_row_is_lost() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_probes_range";
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["range_5m"], "1s")
    );
    let (d, token) = start(keyspace, &rest).await;
    wait_until(
        "three healthy range_5m runs",
        Duration::from_secs(30),
        || runs(&d, "range_5m", "ok") >= 3,
    )
    .await;
    assert_eq!(failures(&d, "range_5m", "count_mismatch"), 0);
    let exposition = String::from_utf8(d.metrics().encode()).unwrap();
    assert!(
        exposition.contains(r#"chatload_probe_writes_unknown_total{probe="range_5m"} 0"#),
        "{exposition}"
    );

    let stream = d.probes().context().stream("range_5m", 0);
    let s = session(keyspace).await;
    let (newest,) = query_first::<(CqlTimestamp,)>(
        &s,
        &format!(
            "SELECT timestamp FROM {keyspace}.chat_messages WHERE stream_id = {stream} LIMIT 1"
        ),
    )
    .await
    .unwrap()
    .expect("the probe has written rows");
    s.query_unpaged(
        format!("DELETE FROM {keyspace}.chat_messages WHERE stream_id = ? AND timestamp = ?"),
        (stream, newest),
    )
    .await
    .unwrap();
    wait_until(
        "range_5m to see the lost row",
        Duration::from_secs(10),
        || failures(&d, "range_5m", "count_mismatch") > 0,
    )
    .await;
    let snapshot = d.probes().snapshot()["range_5m"].clone();
    let mismatched = snapshot.check_failures["count_mismatch"];
    let failed_runs = snapshot.runs["failed"];
    eprintln!("range_5m after the delete: {failed_runs} failed runs, {mismatched} rows missing");
    assert_eq!(mismatched, failed_runs, "one row missing per failed run");
    token.cancel();
    d.wait().await;
}

/// A keyspace of chatload's whose table someone made with the clustering order reversed (oldest
/// first): `recent_50` and `pagination` both see `wrong_order`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_50_and_pagination_fail_on_a_table_in_ascending_order() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_ascending";
    let s = session(keyspace).await;
    let text = config_with(CASSANDRA, REDIS, keyspace, "");
    let cfg = config::load_str(
        &text,
        Path::new("t"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    for cql in [
        format!("DROP KEYSPACE IF EXISTS {keyspace}"),
        table::keyspace_cql(&cfg.scylla),
        table::owner_table_cql(keyspace),
        table::table_cql(&cfg.scylla).replace("timestamp DESC", "timestamp ASC"),
    ] {
        s.query_unpaged(cql, &[]).await.unwrap();
    }
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["recent_50", "pagination"], "1s")
    );
    let (d, token) = start(keyspace, &rest).await;
    wait_until(
        "both probes to see the order",
        Duration::from_secs(30),
        || {
            failures(&d, "recent_50", "wrong_order") > 0
                && failures(&d, "pagination", "wrong_order") > 0
        },
    )
    .await;
    assert_eq!(runs(&d, "recent_50", "ok"), 0);
    assert_eq!(runs(&d, "pagination", "ok"), 0);
    token.cancel();
    d.wait().await;
}

/// A partition tombstone with a timestamp an hour ahead (a writer whose clock runs fast deleted the
/// stream) shadows every later write: `recent_50` does not find its own message, `missing_write`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_50_misses_its_write_behind_a_tombstone_from_the_future() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_recent50";
    let s = session(keyspace).await;
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["recent_50"], "1s")
    );
    let (d, token) = start(keyspace, &rest).await;
    wait_until("a healthy recent_50 run", Duration::from_secs(30), || {
        runs(&d, "recent_50", "ok") > 0
    })
    .await;
    assert_eq!(failures(&d, "recent_50", "missing_write"), 0);
    let stream = d.probes().context().stream("recent_50", 0);
    let an_hour_ahead_us = (chatload::chat::now_ms() + 3_600_000) * 1000;
    s.query_unpaged(
        format!(
            "DELETE FROM {keyspace}.chat_messages USING TIMESTAMP {an_hour_ahead_us} WHERE stream_id = ?"
        ),
        (stream,),
    )
    .await
    .unwrap();
    wait_until(
        "recent_50 to miss its own write",
        Duration::from_secs(15),
        || failures(&d, "recent_50", "missing_write") > 0,
    )
    .await;
    token.cancel();
    d.wait().await;
}

/// The seeded stream of `pagination`, changed under it: a row deleted in the middle is a `gap`, a
/// message written again under a newer timestamp a `duplicate`, and the older rows deleted a `short`
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_names_a_gap_a_duplicate_and_a_short_read() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_pagination";
    let s = session(keyspace).await;
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["pagination"], "1s")
    );
    let (d, token) = start(keyspace, &rest).await;
    wait_until("a healthy pagination run", Duration::from_secs(30), || {
        runs(&d, "pagination", "ok") > 0
    })
    .await;
    let stream = d.probes().context().stream("pagination", 1);
    let seeded: Vec<(CqlTimestamp, uuid::Uuid)> = s
        .query_unpaged(
            format!(
                "SELECT timestamp, message_id FROM {keyspace}.chat_messages WHERE stream_id = ?"
            ),
            (stream,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(CqlTimestamp, uuid::Uuid)>()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(seeded.len(), 520, "the seeded stream");
    let table = format!("{keyspace}.chat_messages");

    let (t, id) = seeded[10];
    s.query_unpaged(
        format!("DELETE FROM {table} WHERE stream_id = ? AND timestamp = ? AND message_id = ?"),
        (stream, t, id),
    )
    .await
    .unwrap();
    wait_until("a gap", Duration::from_secs(15), || {
        failures(&d, "pagination", "gap") > 0
    })
    .await;

    let (_, id) = seeded[20];
    let newer = CqlTimestamp(seeded[0].0.0 + 1);
    s.query_unpaged(
        format!("INSERT INTO {table} (stream_id, timestamp, message_id) VALUES (?, ?, ?)"),
        (stream, newer, id),
    )
    .await
    .unwrap();
    wait_until("a duplicate", Duration::from_secs(15), || {
        failures(&d, "pagination", "duplicate") > 0
    })
    .await;

    let short_before = failures(&d, "pagination", "short");
    s.query_unpaged(
        format!("DELETE FROM {table} WHERE stream_id = ? AND timestamp <= ?"),
        (stream, seeded[100].0),
    )
    .await
    .unwrap();
    wait_until("a short read", Duration::from_secs(15), || {
        failures(&d, "pagination", "short") > short_before + 300
    })
    .await;
    token.cancel();
    d.wait().await;
}

/// Cassandra frozen for 3 s under `recent_50` every 200 ms with a 1 s timeout: runs end as
/// `timeout`, each observed at its 1 s deadline, and they never overlap (one at a time, so at most
/// about one per second of the freeze, not one per 200 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_timeout_is_a_timeout_and_runs_never_overlap() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["recent_50"], "200ms")
    )
    .replace(
        "[probes.recent_50]\nenabled = true\n",
        "[probes.recent_50]\nenabled = true\ntimeout = \"1s\"\n",
    );
    let (d, token) = start("chatload_it_probe_timeout", &rest).await;
    wait_until("healthy recent_50 runs", Duration::from_secs(30), || {
        runs(&d, "recent_50", "ok") >= 3
    })
    .await;
    let histogram = d.metrics().probe_duration.with_label_values(&["recent_50"]);
    let (timeouts_before, sum_before) =
        (runs(&d, "recent_50", "timeout"), histogram.get_sample_sum());
    let all = |d: &Daemon| -> u64 {
        ["ok", "failed", "error", "timeout"]
            .iter()
            .map(|o| runs(d, "recent_50", o))
            .sum()
    };
    let all_before = all(&d);
    let pid = crate::common::cassandra_pid();
    crate::common::signal(pid, "STOP");
    let resume = crate::common::ResumeOnDrop(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = all(&d) - all_before;
    let timeouts = runs(&d, "recent_50", "timeout") - timeouts_before;
    drop(resume);
    let observed = histogram.get_sample_sum() - sum_before;
    eprintln!("3 s frozen: {during} runs ended, {timeouts} timeouts, {observed:.2} s observed");
    assert!(
        timeouts >= 2,
        "runs past their 1 s timeout are counted timeout: {timeouts}"
    );
    assert!(during <= 4, "one run at a time: {during} runs ended in 3 s");
    assert!(
        observed >= timeouts as f64 * 0.999,
        "each timed-out run is observed at its 1 s deadline: {observed} s for {timeouts}"
    );
    token.cancel();
    d.wait().await;
}

/// The short-lived key that a `redis_ttl` run leaves behind (PX 1000) rewritten without an expiry,
/// as a client that overwrites cache keys with a plain SET would: the next run finds it still there,
/// `not_expired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ttl_fails_when_a_short_key_does_not_expire() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["redis_ttl"], "3s")
    );
    let (d, token) = start("chatload_it_probes_rttl_short", &rest).await;
    wait_until("a healthy redis_ttl run", Duration::from_secs(30), || {
        runs(&d, "redis_ttl", "ok") > 0
    })
    .await;
    assert_eq!(failures(&d, "redis_ttl", "not_expired"), 0);
    let (_long, short) = redis_ttl::keys(&d.probes().context().clone());
    let mut r = redis().await;
    let _: () = redis::cmd("SET")
        .arg(&short)
        .arg("no expiry")
        .query_async(&mut r)
        .await
        .unwrap();
    wait_until(
        "redis_ttl to find the short key still there",
        Duration::from_secs(10),
        || failures(&d, "redis_ttl", "not_expired") > 0,
    )
    .await;
    let _: () = redis::cmd("DEL")
        .arg(&short)
        .query_async(&mut r)
        .await
        .unwrap();
    token.cancel();
    d.wait().await;
}

/// A Redis ACL user of the test's own on the stack's Redis (all keys, channels and commands),
/// deleted when dropped, also when the test fails.
struct AclUser(&'static str);

impl AclUser {
    async fn create(name: &'static str, password: &str) -> Self {
        let user = Self(name);
        let mut r = redis().await;
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(name)
            .arg("reset")
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query_async(&mut r)
            .await
            .unwrap();
        user
    }

    /// `ACL SETUSER <name> <rule>`.
    async fn set(&self, rule: &str) {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(self.0)
            .arg(rule)
            .query_async(&mut redis().await)
            .await
            .unwrap();
    }

    /// Ids of this user's connections with a channel subscription (`CLIENT LIST`).
    async fn subscribers(&self) -> Vec<String> {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut redis().await)
            .await
            .unwrap();
        let user = format!(" user={} ", self.0);
        list.lines()
            .filter(|l| l.contains(&user) && !l.contains(" sub=0 "))
            .filter_map(|l| l.strip_prefix("id=")?.split(' ').next().map(String::from))
            .collect()
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        let deleted = redis::Client::open(format!("redis://{REDIS}"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut c| {
                redis::cmd("ACL")
                    .arg("DELUSER")
                    .arg(self.0)
                    .query::<i64>(&mut c)
            });
        if let Err(e) = deleted {
            eprintln!("ACL DELUSER {} failed: {e}", self.0);
        }
    }
}

/// `redis_pubsub` run as an ACL user that loses the right to PUBLISH while its subscription stays up
/// (Redis disconnects subscribers only when channel permissions shrink, not commands): every PUBLISH
/// is refused with NOPERM and its message counted `lost`, the runs are `failed`, not `error`, and
/// the same subscriber connection serves the runs after the right is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_counts_lost_messages_when_publish_is_denied() {
    // It changes an ACL user on the shared Redis: alone on the stack.
    let _stack = STACK_LOCK.write().await;
    require_stack();
    const MESSAGES: u64 = 20;
    let (name, password) = ("chatload_it_pubsub", "it-pubsub-Secret-31");
    let user = AclUser::create(name, password).await;
    let keyspace = "chatload_it_probes_pubsub_acl";
    let text = config_with(
        CASSANDRA,
        REDIS,
        keyspace,
        &format!(
            "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
            probes_only(&["redis_pubsub"], "1s").replace(
                "[probes.redis_pubsub]\nenabled = true\n",
                &format!("[probes.redis_pubsub]\nenabled = true\nmessages = {MESSAGES}\n")
            )
        ),
    )
    // Only the probe publishes: the traffic's own PUBLISH and cache writes are off.
    .replace(
        "[redis]\n",
        &format!(
            "[redis]\nusername = \"{name}\"\npassword = \"{password}\"\npubsub = false\ncache = false\n"
        ),
    );
    let (d, token) = start_with(&text).await;
    wait_until(
        "a healthy redis_pubsub run",
        Duration::from_secs(20),
        || runs(&d, "redis_pubsub", "ok") > 0,
    )
    .await;
    assert_eq!(failures(&d, "redis_pubsub", "lost"), 0);
    assert_eq!(runs(&d, "redis_pubsub", "failed"), 0);
    let subscriber = user.subscribers().await;
    assert_eq!(subscriber.len(), 1, "the probe's subscriber connection");

    user.set("-publish").await;
    let took = wait_until(
        "redis_pubsub to count lost messages",
        Duration::from_secs(15),
        || {
            runs(&d, "redis_pubsub", "failed") >= 2
                && failures(&d, "redis_pubsub", "lost") >= 2 * MESSAGES
        },
    )
    .await;
    // Runs and losses of the same runs (one snapshot), then the exposition, which has counted them
    // before the snapshot did.
    let s = d.probes().snapshot()["redis_pubsub"].clone();
    let (failed, lost) = (s.runs["failed"], s.check_failures["lost"]);
    let counted = exported(
        &d,
        "chatload_probe_check_failures_total",
        &[("probe", "redis_pubsub"), ("check", "lost")],
    );
    eprintln!(
        "PUBLISH denied: {failed} failed runs, {lost} messages lost ({counted} exported), seen after {:.1} s; last problem {:?}",
        took.as_secs_f64(),
        s.last_problem
    );
    assert!(counted >= lost as f64, "{counted} exported, {lost} lost");
    // Every message of a run after the denial is lost; the first one may have straddled it.
    assert!(
        lost <= failed * MESSAGES && lost > (failed - 1) * MESSAGES,
        "{lost} lost in {failed} failed runs of {MESSAGES} messages"
    );
    for outcome in ["error", "timeout"] {
        assert_eq!(runs(&d, "redis_pubsub", outcome), 0, "{outcome} runs");
    }
    assert_eq!(
        exported(&d, "chatload_probe_success", &[("probe", "redis_pubsub")]),
        0.0
    );
    // Redis itself logged the refusals: this user, the PUBLISH command.
    let log: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .arg(100)
        .query_async(&mut redis().await)
        .await
        .unwrap();
    let text_of = |v: Option<&redis::Value>| match v {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).to_string(),
        other => format!("{other:?}"),
    };
    assert!(
        log.iter().any(|e| text_of(e.get("username")) == name
            && text_of(e.get("reason")) == "command"
            && text_of(e.get("object")) == "publish"),
        "no ACL LOG entry for {name}'s PUBLISH: {log:?}"
    );
    assert_eq!(
        user.subscribers().await,
        subscriber,
        "the subscription stayed up through the ACL change"
    );

    // The right given back: the same subscription receives again.
    user.set("+publish").await;
    let ok_before = runs(&d, "redis_pubsub", "ok");
    wait_until("a healthy run again", Duration::from_secs(10), || {
        runs(&d, "redis_pubsub", "ok") > ok_before
    })
    .await;
    assert_eq!(runs(&d, "redis_pubsub", "error"), 0);
    assert_eq!(user.subscribers().await, subscriber);
    token.cancel();
    d.wait().await;
    drop(user);
}

/// What [`RespProxy`] does to the commands it forwards.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Holds each PTTL this long before forwarding it (a slow link: what follows waits too).
    SlowPttl(Duration),
    /// Rewrites the seconds of `SET … EX n` to at most this many (a middlebox that caps TTLs).
    CapEx(u64),
}

/// A loopback TCP proxy in front of the stack's Redis: each RESP command from the client is parsed
/// and forwarded as its [`Fault`] says; replies pass through untouched. Dropping it stops the listener
/// and every connection.
struct RespProxy {
    addr: std::net::SocketAddr,
    fault: Arc<Mutex<Fault>>,
    rewritten: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RespProxy {
    async fn start(fault: Fault) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(fault));
        let rewritten = Arc::new(AtomicU64::new(0));
        let (f, n) = (fault.clone(), rewritten.clone());
        let task = tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (client, _) = listener.accept().await.unwrap();
                while connections.try_join_next().is_some() {}
                connections.spawn(proxy_connection(client, f.clone(), n.clone()));
            }
        });
        Self {
            addr,
            fault,
            rewritten,
            task,
        }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// SET commands whose expiry it has changed.
    fn rewritten(&self) -> u64 {
        self.rewritten.load(Ordering::Relaxed)
    }
}

impl Drop for RespProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_connection(
    client: tokio::net::TcpStream,
    fault: Arc<Mutex<Fault>>,
    rewritten: Arc<AtomicU64>,
) {
    let Ok(server) = tokio::net::TcpStream::connect(REDIS).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let upstream = async {
        let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 16 * 1024]);
        loop {
            let n = from_client.read(&mut chunk).await?;
            if n == 0 {
                return std::io::Result::Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Some((mut args, used)) = resp_command(&buf) {
                buf.drain(..used);
                let fault = *fault.lock().unwrap();
                let is = |i: usize, name: &str| {
                    args.get(i)
                        .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
                };
                match fault {
                    Fault::SlowPttl(hold) if is(0, "PTTL") => tokio::time::sleep(hold).await,
                    Fault::CapEx(cap) if is(0, "SET") => {
                        if let Some(i) = (1..args.len()).find(|&i| is(i, "EX")) {
                            let secs = args
                                .get(i + 1)
                                .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u64>().ok());
                            if secs.is_some_and(|s| s > cap) {
                                args[i + 1] = cap.to_string().into_bytes();
                                rewritten.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    _ => {}
                }
                to_server.write_all(&resp_encode(&args)).await?;
            }
        }
    };
    let downstream = tokio::io::copy(&mut from_server, &mut to_client);
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

/// The first complete RESP command (an array of bulk strings, as clients send them) in `buf`: its
/// arguments and its length in bytes; `None` while part of it has not arrived.
fn resp_command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    // `<marker><number>\r\n` at `at`: the number and where the next line starts.
    let header = |at: usize, marker: u8| -> Option<(usize, usize)> {
        let end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        assert_eq!(buf[at], marker, "not a RESP command: {buf:?}");
        let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
        Some((n, end + 2))
    };
    let (count, mut at) = header(0, b'*')?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, start) = header(at, b'$')?;
        let end = start + len;
        if buf.len() < end + 2 {
            return None;
        }
        args.push(buf[start..end].to_vec());
        at = end + 2;
    }
    Some((args, at))
}

fn resp_encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `redis_ttl` through a proxy. First a link that holds each PTTL 1.5 s: the key's PTTL reads about
/// 58.5 s, and that is the time the exchange took, not a wrong expiry (no `ttl_mismatch`). Then a
/// middlebox that caps `SET … EX` at 30 s: Redis really keeps the key 30 s, `ttl_mismatch` fails and
/// `chatload_ttl_observed_seconds{backend="redis"}` reads about 30.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ttl_mismatch_through_a_proxy_that_caps_the_expiry() {
    // Alone on the stack: the slow phase expects the PTTL to run 1.5 s (not much more) after the SET.
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let hold = Duration::from_millis(1500);
    let proxy = RespProxy::start(Fault::SlowPttl(hold)).await;
    let keyspace = "chatload_it_probes_rttl_proxy";
    let rest = format!(
        "[traffic]\nwrite_rate = 10.0\nread_rate = 0.0\n{}",
        probes_only(&["redis_ttl"], "2s").replace(
            "[probes.redis_ttl]\nenabled = true\n",
            "[probes.redis_ttl]\nenabled = true\ntimeout = \"10s\"\n"
        )
    );
    let text = config_with(CASSANDRA, &proxy.addr.to_string(), keyspace, &rest)
        // Only the probe talks to Redis, and a held PTTL is slow, not timed out.
        .replace("[redis]\n", "[redis]\npubsub = false\ncache = false\n")
        .replace(
            "connect_timeout = \"1s\"\nrequest_timeout = \"1s\"\nkey_prefix",
            "connect_timeout = \"1s\"\nrequest_timeout = \"5s\"\nkey_prefix",
        );
    assert!(text.contains("request_timeout = \"5s\""), "{text}");
    let (d, token) = start_with(&text).await;
    let observed = || exported(&d, "chatload_ttl_observed_seconds", &[("backend", "redis")]);

    wait_until("two slow redis_ttl runs", Duration::from_secs(25), || {
        runs(&d, "redis_ttl", "ok") + runs(&d, "redis_ttl", "failed") >= 2
    })
    .await;
    let slow = observed();
    let mismatches = failures(&d, "redis_ttl", "ttl_mismatch");
    eprintln!("PTTL held {hold:?}: observed {slow:.3} s, {mismatches} ttl_mismatch");
    assert!(
        (57.0..59.0).contains(&slow),
        "the held PTTL reads the expiry less the hold: {slow}"
    );
    assert_eq!(mismatches, 0, "a slow PTTL is not a wrong expiry");
    assert_eq!(runs(&d, "redis_ttl", "failed"), 0);

    proxy.set(Fault::CapEx(30));
    let took = wait_until(
        "redis_ttl to see the capped expiry",
        Duration::from_secs(15),
        || failures(&d, "redis_ttl", "ttl_mismatch") > 0,
    )
    .await;
    let capped = observed();
    eprintln!(
        "EX capped at 30 s: observed {capped:.3} s, ttl_mismatch after {:.1} s, {} SETs rewritten",
        took.as_secs_f64(),
        proxy.rewritten()
    );
    assert!((29.0..=30.0).contains(&capped), "{capped}");
    assert!(proxy.rewritten() > 0);
    assert!(runs(&d, "redis_ttl", "failed") > 0);
    // Redis itself, read directly, holds the probe's key for at most 30 s.
    let (long, _) = redis_ttl::keys(&d.probes().context().clone());
    let mut r = redis().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&long)
        .query_async(&mut r)
        .await
        .unwrap();
    assert!((0..=30_000).contains(&pttl), "PTTL {pttl} ms in Redis");
    token.cancel();
    d.wait().await;
    drop(proxy);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{keyspace}:*"))
        .query_async(&mut r)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut r)
            .await
            .unwrap();
    }
}
