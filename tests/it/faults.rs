//! Cassandra taken away through `scripts/stack.sh` (the SIGKILLed Redis and the SIGSTOPped Cassandra
//! are in `traffic`): stopped and restarted under traffic, and down when chatload starts. For each,
//! the daemon stays up with `/healthz` 200, failures are counted, Redis traffic goes on, RSS at the end
//! is within 1.5× of before, and traffic recovers by itself; the recovery time is printed (`FAULT`).
//! Each test holds the stack lock for writing and leaves Cassandra running, even when it fails.

use crate::common::{
    CASSANDRA, Chatload, REDIS, SCYLLA_UP, STACK_LOCK, StackOnDrop, assert_rss_bounded,
    config_with, failures, ops_series, recovery, require_stack, stack, wait_for_metric, watch,
};
use std::time::Duration;

const RATE: f64 = 500.0;
/// Starts Cassandra again when dropped, so that a failing test does not take the stack down with it.
fn cassandra_back() -> StackOnDrop {
    StackOnDrop(&["start", "cassandra"])
}

fn config(keyspace: &str) -> String {
    config_with(
        CASSANDRA,
        REDIS,
        keyspace,
        &format!("[traffic]\nwrite_rate = {RATE:.1}\nread_rate = 50.0\nmax_in_flight = 64\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_stopped_and_restarted_through_stack_sh() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let c = Chatload::start(&config("chatload_it_faults")).await;
    let write_ok = ops_series("scylla", "write", "ok");
    let redis_ok = ops_series("redis", "write", "ok");
    c.wait_at_least(
        &write_ok,
        1000.0,
        Duration::from_secs(30),
        "traffic did not start",
    )
    .await;
    let rss_before = c.rss();
    let failed_before = failures(&c, "scylla", "write").await;

    let _back = cassandra_back();
    let stop = stack(&["stop", "cassandra"]);
    let (redis_before, t_redis) = (c.metric(&redis_ok).await, std::time::Instant::now());
    let watched = watch(&c, Duration::from_secs(10)).await;
    // Divided by the time that really passed between the two reads (the scrapes take time too).
    let redis_rate = (c.metric(&redis_ok).await - redis_before) / t_redis.elapsed().as_secs_f64();
    let failed = failures(&c, "scylla", "write").await - failed_before;
    assert_eq!(
        c.metric(SCYLLA_UP).await,
        0.0,
        "backend_up says Cassandra is down"
    );
    assert_eq!(watched.unhealthy, 0, "/healthz stayed 200: {watched:?}");
    assert!(
        failed > 0.8 * RATE * 10.0,
        "failed writes counted: {failed}"
    );
    assert!(
        redis_rate > 0.95 * RATE,
        "Redis traffic went on without Cassandra: {redis_rate:.0}/s"
    );

    let boot = stack(&["start", "cassandra"]);
    let recovered = recovery(&c, &write_ok, RATE, Duration::from_secs(60)).await;
    wait_for_metric(c.addr, SCYLLA_UP, 1.0, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = c.rss();
    eprintln!(
        "FAULT cassandra-stop-start: stop took {:.1}s, down 10s, {failed} writes failed, Redis {redis_rate:.0}/s meanwhile; \
         start took {:.1}s; traffic at rate {:.2}s after CQL answered; RSS before {rss_before}, peak {}, after {rss_after}",
        stop.as_secs_f64(),
        boot.as_secs_f64(),
        recovered.as_secs_f64(),
        watched.max_rss
    );
    assert_rss_bounded(rss_before, rss_after);
    assert_eq!(c.stop(Duration::from_secs(10)).await.0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatload_started_while_cassandra_is_down() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let _back = cassandra_back();
    stack(&["stop", "cassandra"]);
    let keyspace = "chatload_it_cold_start";
    let c = Chatload::start(&config(keyspace)).await;
    let write_ok = ops_series("scylla", "write", "ok");
    let redis_ok = ops_series("redis", "write", "ok");
    let watched_early = watch(&c, Duration::from_secs(3)).await;
    let rss_before = c.rss();
    let watched = watch(&c, Duration::from_secs(5)).await;
    let failed = failures(&c, "scylla", "write").await;
    assert_eq!(
        watched_early.unhealthy + watched.unhealthy,
        0,
        "/healthz stayed 200"
    );
    assert_eq!(
        crate::common::http(c.addr, "GET", "/readyz").await.0,
        200,
        "ready without Cassandra"
    );
    assert_eq!(c.metric(SCYLLA_UP).await, 0.0);
    assert_eq!(c.metric(&write_ok).await, 0.0);
    assert!(failed > RATE * 4.0, "writes counted as failed: {failed}");
    assert!(
        c.metric(&redis_ok).await > RATE * 4.0,
        "Redis traffic runs without Cassandra"
    );

    let boot = stack(&["start", "cassandra"]);
    // The schema is created and the statements prepared once Cassandra answers, by the retry loop.
    let recovered = recovery(&c, &write_ok, RATE, Duration::from_secs(60)).await;
    wait_for_metric(c.addr, SCYLLA_UP, 1.0, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = c.rss();
    eprintln!(
        "FAULT cassandra-down-at-start: {failed} writes failed in the first 8s; start took {:.1}s; traffic at rate {:.2}s \
         after CQL answered; RSS before {rss_before}, peak {}, after {rss_after}",
        boot.as_secs_f64(),
        recovered.as_secs_f64(),
        watched.max_rss.max(watched_early.max_rss)
    );
    assert_rss_bounded(rss_before, rss_after);
    assert!(
        c.log_text().contains("statements prepared"),
        "the log says when traffic reaches the database"
    );
    assert_eq!(c.stop(Duration::from_secs(10)).await.0, Some(0));
}
