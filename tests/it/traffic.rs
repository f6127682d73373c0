//! The steady traffic against the real stack: rate accuracy, what lands in Cassandra and Redis, and
//! the faults of the traffic issue (Redis killed, Cassandra paused). Each test is bounded in time and
//! holds the stack lock for writing, so no other test competes for the two cores while it measures.

use crate::common::{
    CASSANDRA, Chatload, REDIS, REDIS_UP, ResumeOnDrop, STACK_LOCK, assert_rss_bounded,
    cassandra_pid, closed_port, config_with, failures, fresh_keyspace, must, ops_series, rate_over,
    require_stack, signal, watch,
};
use chatload::measure::metrics::Metrics;
use chatload::store::scylla::query_first;
use chatload::{Daemon, config};
use redis::AsyncCommands;
use scylla::statement::Statement;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn redis_conn(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

async fn delete_keys(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = conn.del(&keys).await.unwrap();
    }
    keys
}

/// `chatload_operations_total{backend,op,outcome}` as a scrape reads it (summed over the
/// traffic's shards); 0 when the series does not exist yet.
fn counter(m: &Metrics, backend: &str, op: &str, outcome: &str) -> u64 {
    let want = [("backend", backend), ("op", op), ("outcome", outcome)];
    m.registry()
        .gather()
        .iter()
        .filter(|f| f.name() == "chatload_operations_total")
        .flat_map(|f| f.get_metric())
        .find(|s| {
            want.iter().all(|(k, v)| {
                s.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })
        .map_or(0, |s| s.get_counter().value() as u64)
}

/// 60 s at 1,000 messages/s (and 200 reads/s) on two traffic threads: the achieved rate is within
/// 1 % of the target (the two shards together keep the one timetable), the rows in Cassandra are
/// exactly the writes reported ok (no shard repeats another's messages), they carry the table's 30-day TTL, and every
/// stream's Redis cache holds at most 50 entries and expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_60s_at_1000_per_second() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let keyspace = "chatload_it_traffic";
    let session = fresh_keyspace(keyspace).await;
    let mut redis = redis_conn(REDIS).await;
    delete_keys(&mut redis, &format!("{keyspace}:*")).await;

    // Probes off: they write rows of their own into the same table.
    let probes_off = crate::common::probes_only(&[], "1s");
    let text = config_with(
        CASSANDRA,
        REDIS,
        keyspace,
        &format!(
            "[traffic]\nwrite_rate = 1000.0\nread_rate = 200.0\nseed = 42\nthreads = 2\n{probes_off}"
        ),
    );
    let cfg = config::load_str(
        &text,
        Path::new("t"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    let token = CancellationToken::new();
    let d = Daemon::start(cfg, token.clone()).await.unwrap();
    assert_eq!(d.traffic().threads(), 2);
    let m = d.metrics().clone();
    let start = Instant::now();
    while counter(&m, "scylla", "write", "ok") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no write succeeded within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let outcomes = [
        "ok",
        "error",
        "timeout",
        "overloaded",
        "unavailable",
        "dropped",
    ];
    // Every series read below is exported: a misspelled label would be a fresh series at 0 to the
    // typed reads, and "only ok outcomes" could never fail.
    let exposition = String::from_utf8(m.encode()).unwrap();
    for (backend, op) in [("scylla", "write"), ("scylla", "read"), ("redis", "write")] {
        for o in outcomes {
            let labels = [("backend", backend), ("op", op), ("outcome", o)];
            must(&exposition, "chatload_operations_total", &labels);
        }
    }
    let snapshot = |m: &Metrics| {
        let mut v = vec![];
        for (backend, op) in [("scylla", "write"), ("scylla", "read"), ("redis", "write")] {
            for o in outcomes {
                v.push(counter(m, backend, op, o));
            }
        }
        (Instant::now(), v)
    };
    let (t1, before) = snapshot(&m);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (t2, after) = snapshot(&m);
    // Pacing: requests leave close to their scheduled instants. A generous bound (the figures
    // themselves are the benchmark's): a pacer on a coarse timer, or one that waits for replies,
    // would be tens of milliseconds late at p99 under this load.
    let lag = d.traffic().snapshot().schedule_lag;
    eprintln!(
        "schedule lag (scheduled start to send): p50 {:.0} µs, p99 {:.0} µs, max {:.1} ms",
        lag.p50 * 1e6,
        lag.p99 * 1e6,
        lag.max * 1e3
    );
    assert!(
        lag.count > 60_000,
        "lag observed per request sent: {}",
        lag.count
    );
    assert!(lag.p99 < 0.02, "schedule lag p99 {} s", lag.p99);
    let secs = (t2 - t1).as_secs_f64();
    let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let rate = |i: usize| delta[i] as f64 / secs;
    let (write, read, redis_write) = (rate(0), rate(6), rate(12));
    eprintln!(
        "over {secs:.2} s: scylla writes {write:.1}/s, reads {read:.1}/s, redis writes {redis_write:.1}/s"
    );
    // The timetable is deterministic: over the window, exactly rate × seconds operations fall due.
    // What was counted ok can differ only by the operations that were late to leave or still in
    // flight at either snapshot: at most rate × (longest lag + longest service time) at each end,
    // plus one for rounding. The tolerance comes from those measured times, not a flat percentage.
    let snap = d.traffic().snapshot();
    for (what, counted, target, service_max) in [
        (
            "scylla writes",
            delta[0],
            1000.0,
            snap.scylla_write.service.max,
        ),
        (
            "scylla reads",
            delta[6],
            200.0,
            snap.scylla_read.service.max,
        ),
        (
            "redis writes",
            delta[12],
            1000.0,
            snap.redis_write.service.max,
        ),
    ] {
        let expected = target * secs;
        let slack = 2.0 * target * (lag.max + service_max) + 2.0;
        assert!(
            (counted as f64 - expected).abs() <= slack,
            "{what}: {counted} ok in {secs:.3} s, {expected:.0} due (± {slack:.0})"
        );
    }
    assert!(
        delta.iter().enumerate().all(|(i, n)| i % 6 == 0 || *n == 0),
        "a healthy stack shows only ok outcomes: {delta:?}"
    );

    token.cancel();
    d.wait().await;
    let ok_writes = counter(&m, "scylla", "write", "ok");
    let failed_writes: u64 = ["error", "timeout", "overloaded"]
        .iter()
        .map(|o| counter(&m, "scylla", "write", o))
        .sum();

    let mut count = Statement::new(format!("SELECT COUNT(*) FROM {keyspace}.chat_messages"));
    count.set_request_timeout(Some(Duration::from_secs(60)));
    let rows: i64 = session
        .query_unpaged(count, &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row::<(i64,)>()
        .unwrap()
        .0;
    eprintln!(
        "rows in Cassandra: {rows}; writes reported ok: {ok_writes}; failed: {failed_writes}"
    );
    // A write that failed client-side may still have landed; none failed on this healthy stack.
    assert!(
        rows as u64 >= ok_writes && rows as u64 <= ok_writes + failed_writes,
        "rows {rows} vs ok {ok_writes}"
    );
    assert_eq!(failed_writes, 0);

    let (ttl, _writetime) = query_first::<(Option<i32>, Option<i64>)>(
        &session,
        &format!("SELECT TTL(message_text), WRITETIME(message_text) FROM {keyspace}.chat_messages LIMIT 1"),
    )
    .await
    .unwrap()
    .unwrap();
    let ttl = ttl.expect("rows carry a TTL");
    eprintln!("TTL(message_text) of a row: {ttl}");
    assert!((2_592_000 - 300..=2_592_000).contains(&ttl), "{ttl}");

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{keyspace}:stream:*:recent"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(keys.len(), 100, "every stream has a cache");
    for key in &keys {
        let len: i64 = redis.llen(key).await.unwrap();
        let pttl: i64 = redis.pttl(key).await.unwrap();
        assert!((1..=50).contains(&len), "{key}: {len} entries");
        assert!(pttl > 0 && pttl <= 3_600_000, "{key}: PTTL {pttl}");
    }
    delete_keys(&mut redis, &format!("{keyspace}:*")).await;
    session
        .query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[])
        .await
        .unwrap();
}

/// Redis is killed (SIGKILL) mid-run: the ScyllaDB writes go on at the target rate, Redis failures are
/// counted, `backend_up{redis}` drops to 0, and once Redis is back its side recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_does_not_slow_scylla_writes() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let keyspace = "chatload_it_faults";
    let port = closed_port();
    let redis_addr = format!("127.0.0.1:{port}");
    let spawn_redis = || {
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server from Debian's package (scripts/stack.sh up installs it)")
    };
    let mut redis = spawn_redis();
    let t = Instant::now();
    while tokio::net::TcpStream::connect(&redis_addr).await.is_err() {
        assert!(t.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let c = Chatload::start(&config_with(
        CASSANDRA,
        &redis_addr,
        keyspace,
        "[traffic]\nwrite_rate = 1000.0\nread_rate = 0.0\n",
    ))
    .await;
    let write_ok = ops_series("scylla", "write", "ok");
    let redis_ok = ops_series("redis", "write", "ok");
    let t = Instant::now();
    while c.metric(&redis_ok).await < 1000.0 || c.metric(&write_ok).await < 1000.0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "traffic did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let rss_before = c.rss();
    let _ = redis.kill();
    let _ = redis.wait();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures_before = failures(&c, "redis", "write").await;
    let redis_ok_before = c.metric(&redis_ok).await;
    let (w1, t1) = (c.metric(&write_ok).await, Instant::now());
    let watched = watch(&c, Duration::from_secs(10)).await;
    let write = (c.metric(&write_ok).await - w1) / t1.elapsed().as_secs_f64();
    let failures = failures(&c, "redis", "write").await - failures_before;
    eprintln!(
        "with Redis dead: scylla writes {write:.1}/s, redis failures counted {failures}, {watched:?}"
    );
    assert_eq!(watched.unhealthy, 0, "/healthz stayed 200: {watched:?}");
    assert!(
        (write / 1000.0 - 1.0).abs() < 0.01,
        "scylla write rate {write:.1}/s"
    );
    assert!(failures > 1000.0, "redis failures {failures}");
    // Failures are logged at most once per 10 s per (backend, op), with the count suppressed:
    // thousands of failures in these 10 s give at most two lines (one may fall just before).
    let failure_lines = c
        .log_text()
        .lines()
        .filter(|l| l.contains("operation failed") && l.contains("backend=\"redis\""))
        .count();
    assert!(
        (1..=3).contains(&failure_lines),
        "{failure_lines} 'operation failed' lines for Redis writes"
    );
    assert_eq!(
        c.metric(&redis_ok).await,
        redis_ok_before,
        "nothing succeeds against a dead Redis"
    );
    assert_eq!(c.metric(REDIS_UP).await, 0.0);

    // Redis comes back on the same port: its side recovers by itself.
    let mut redis = spawn_redis();
    let t = Instant::now();
    let base = c.metric(&redis_ok).await;
    while c.metric(&redis_ok).await < base + 1000.0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "redis writes did not recover within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = t.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = c.rss();
    eprintln!(
        "FAULT redis-sigkill: recovered {:.2}s after the restart; RSS before {rss_before}, peak {}, after {rss_after}",
        recovered.as_secs_f64(),
        watched.max_rss
    );
    assert_rss_bounded(rss_before, rss_after);
    assert_eq!(c.stop(Duration::from_secs(10)).await.0, Some(0));
    let _ = redis.kill();
    let _ = redis.wait();
}

/// Cassandra is paused (SIGSTOP) for 10 s on two traffic threads: in-flight requests, summed over the
/// threads, never exceed the cap, the rest are counted as dropped, memory stays bounded, and the
/// write rate recovers by itself after SIGCONT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_paused_10s_caps_in_flight_and_recovers() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let keyspace = "chatload_it_faults";
    let cap = 64.0;
    let c = Chatload::start(&config_with(
        CASSANDRA,
        REDIS,
        keyspace,
        "[traffic]\nwrite_rate = 1000.0\nread_rate = 100.0\nmax_in_flight = 64\nthreads = 2\n",
    ))
    .await;
    let write_ok = ops_series("scylla", "write", "ok");
    let dropped = ops_series("scylla", "write", "dropped");
    let in_flight = r#"chatload_in_flight{backend="scylla"}"#;
    c.wait_at_least(
        &write_ok,
        2000.0,
        Duration::from_secs(30),
        "traffic did not start",
    )
    .await;
    let rss_before = c.rss();
    let dropped_before = c.metric(&dropped).await;

    let pid = cassandra_pid();
    signal(pid, "STOP");
    let resume = ResumeOnDrop(pid);
    let paused = Instant::now();
    let mut max_in_flight: f64 = 0.0;
    let mut max_rss = 0;
    while paused.elapsed() < Duration::from_secs(10) {
        max_in_flight = max_in_flight.max(c.metric(in_flight).await);
        max_rss = max_rss.max(c.rss());
        assert_eq!(c.healthz().await, 200, "/healthz while Cassandra is paused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(resume); // SIGCONT
    let resumed = Instant::now();
    let drops = c.metric(&dropped).await - dropped_before;
    eprintln!("during the pause: max in flight {max_in_flight}, drops {drops}, max RSS {max_rss}");
    assert!(
        max_in_flight <= cap,
        "in flight {max_in_flight} > cap {cap}"
    );
    assert_eq!(max_in_flight, cap, "the cap was reached");
    assert!(drops > 5000.0, "drops counted: {drops}");

    // Recovery: a full second at (nearly) the target rate again.
    let recovery = loop {
        let r = rate_over(&c, &write_ok, Duration::from_secs(1)).await;
        if r >= 990.0 {
            break resumed.elapsed();
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(60),
            "no recovery within 60 s (last {r:.0}/s)"
        );
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = c.rss();
    eprintln!(
        "FAULT cassandra-sigstop-10s: recovered to the target rate {:.2}s after SIGCONT; RSS before {rss_before}, peak {max_rss}, after {rss_after}",
        recovery.as_secs_f64()
    );
    assert_rss_bounded(rss_before, rss_after);
    // Memory stays bounded while the database stalls, not only after it.
    assert_rss_bounded(rss_before, max_rss);
    assert_eq!(c.stop(Duration::from_secs(10)).await.0, Some(0));
}

/// SIGTERM lets the requests in flight finish (up to `traffic.drain_timeout`): with Cassandra frozen,
/// chatload is still running 1 s after the first SIGTERM, and a second SIGTERM ends it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_a_second_signal_exits_at_once() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let c = Chatload::start(&config_with(
        CASSANDRA,
        REDIS,
        "chatload_it_drain",
        &format!(
            "[traffic]\nwrite_rate = 200.0\nread_rate = 0.0\ndrain_timeout = \"20s\"\n{}",
            crate::common::probes_only(&[], "1s")
        ),
    ))
    .await;
    let write_ok = ops_series("scylla", "write", "ok");
    c.wait_at_least(
        &write_ok,
        200.0,
        Duration::from_secs(30),
        "traffic did not start",
    )
    .await;
    let pid = cassandra_pid();
    signal(pid, "STOP");
    let resume = ResumeOnDrop(pid);
    tokio::time::sleep(Duration::from_millis(300)).await; // requests pile up in flight
    let in_flight = c.metric(r#"chatload_in_flight{backend="scylla"}"#).await;
    assert!(
        in_flight > 0.0,
        "requests in flight while Cassandra is frozen"
    );
    let mut c = c;
    signal(c.child.id(), "TERM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        c.running(),
        "the first SIGTERM waits for the requests in flight"
    );
    signal(c.child.id(), "TERM");
    let t = Instant::now();
    while c.running() {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a second SIGTERM did not end chatload at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(resume);
    eprintln!(
        "second SIGTERM: exit after {:?} ({in_flight} in flight)",
        t.elapsed()
    );
}
