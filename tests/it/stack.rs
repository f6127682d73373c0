//! Tests against the real local stack (Cassandra 5 and Redis from `scripts/stack.sh up`).

use crate::common::{
    CASSANDRA, Chatload, REDIS, REDIS_UP, SCYLLA_UP, STACK_LOCK, closed_port, config_file,
    fresh_keyspace, http, metric, ops_series, require_stack, run, test_config, wait_for_metric,
};
use chatload::chat::table;
use chatload::store::schema;
use chatload::store::scylla;
use chatload::{Daemon, config};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn stack_config(keyspace: &str) -> config::Config {
    config::load_str(
        &test_config(CASSANDRA, REDIS, keyspace),
        Path::new("test"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap()
}

#[tokio::test]
async fn schema_apply_is_idempotent_and_matches_the_spec() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_schema";
    let cfg = stack_config(keyspace);
    let session = fresh_keyspace(keyspace).await; // start from nothing

    let f = config_file(&test_config(CASSANDRA, REDIS, keyspace));
    let path = f.path().to_str().unwrap();
    let first = run(&["schema", "apply", "--config", path]);
    let out1 = String::from_utf8_lossy(&first.stdout).to_string();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{out1}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        out1.contains(&format!("keyspace {keyspace}: created")),
        "{out1}"
    );
    assert!(
        out1.contains(&format!("table {keyspace}.chat_messages: created")),
        "{out1}"
    );

    let second = run(&["schema", "apply", "--config", path]);
    let out2 = String::from_utf8_lossy(&second.stdout).to_string();
    assert_eq!(second.status.code(), Some(0), "{out2}");
    assert!(
        out2.contains(&format!("keyspace {keyspace}: already exists")),
        "{out2}"
    );
    assert!(
        out2.contains("already exists") && !out2.contains("warning"),
        "{out2}"
    );

    // Read the table back from system_schema.
    let info = schema::describe_table(&session, keyspace)
        .await
        .unwrap()
        .expect("table exists");
    assert_eq!(info.default_ttl, 2_592_000);
    assert_eq!(info.compaction_class, "TimeWindowCompactionStrategy");
    assert_eq!(info.partition_key, ["stream_id"]);
    assert_eq!(
        info.clustering,
        [
            ("timestamp".to_string(), "desc".to_string()),
            ("message_id".to_string(), "asc".to_string())
        ]
    );
    assert_eq!(info, table::expected_table(&cfg.scylla));

    // A table that differs is reported, never altered.
    session
        .query_unpaged(
            format!("ALTER TABLE {keyspace}.chat_messages WITH default_time_to_live = 3600"),
            &[],
        )
        .await
        .unwrap();
    let third = run(&["schema", "apply", "--config", path]);
    let out3 = String::from_utf8_lossy(&third.stdout).to_string();
    assert_eq!(third.status.code(), Some(0));
    assert!(
        out3.contains("default_time_to_live is 3600 (expected 2592000)"),
        "{out3}"
    );
    let info = schema::describe_table(&session, keyspace)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        info.default_ttl, 3600,
        "apply must not alter an existing table"
    );
    session
        .query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[])
        .await
        .unwrap();
}

#[test]
fn schema_apply_exits_3_when_the_database_is_unreachable() {
    let f = config_file(&test_config(
        &format!("127.0.0.1:{}", closed_port()),
        REDIS,
        "chatload_it",
    ));
    let out = run(&["schema", "apply", "--config", f.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed to connect to ScyllaDB"));
}

#[tokio::test]
async fn backends_up_with_the_stack_and_kind_detected() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let token = CancellationToken::new();
    let d = Daemon::start(stack_config("chatload_it"), token.clone())
        .await
        .unwrap();
    let addr = d.http_addr();
    let scylla_after = wait_for_metric(addr, SCYLLA_UP, 1.0, Duration::from_secs(30)).await;
    let redis_after = wait_for_metric(addr, REDIS_UP, 1.0, Duration::from_secs(30)).await;
    eprintln!("backend_up turned 1 after: scylla {scylla_after:?}, redis {redis_after:?}");
    let (_, _, body) = http(addr, "GET", "/metrics").await;
    assert!(
        body.contains(r#"chatload_backend_info{backend="scylla",kind="cassandra",version="5.0."#),
        "Cassandra 5.0 must be detected as cassandra:\n{}",
        body.lines()
            .filter(|l| l.contains("backend_info"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(body.contains(r#"chatload_backend_info{backend="redis",kind="redis",version=""#));
    token.cancel();
    d.wait().await;
}

/// The whole binary: with the stack it reports backends up; SIGTERM ends it with exit 0 within 5 s.
#[tokio::test]
async fn the_binary_runs_and_stops_on_sigterm() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let chatload = Chatload::start(&test_config(CASSANDRA, REDIS, "chatload_it")).await;
    wait_for_metric(chatload.addr, SCYLLA_UP, 1.0, Duration::from_secs(30)).await;
    wait_for_metric(chatload.addr, REDIS_UP, 1.0, Duration::from_secs(30)).await;
    assert_eq!(http(chatload.addr, "GET", "/healthz").await.0, 200);
    let (code, took) = chatload.stop(Duration::from_secs(5)).await;
    eprintln!("exit after SIGTERM took {took:?}");
    assert_eq!(code, Some(0));
}

/// The binary with both backends unreachable still serves everything; backend_up stays 0.
#[tokio::test]
async fn the_binary_serves_with_backends_down() {
    let text = test_config(
        &format!("127.0.0.1:{}", closed_port()),
        &format!("127.0.0.1:{}", closed_port()),
        "chatload_it",
    );
    let mut chatload = Chatload::start(&text).await;
    // Give the health loops a few rounds, and the traffic its wait for a session
    // (scylla.connect_timeout = 2 s) before it counts writes as unavailable.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let addr = chatload.addr;
    let (status, _, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&body, SCYLLA_UP), Some(0.0));
    assert_eq!(metric(&body, REDIS_UP), Some(0.0));
    // Writes are scheduled and counted as unavailable, never queued.
    assert!(metric(&body, &ops_series("scylla", "write", "unavailable")).unwrap() > 0.0);
    assert_eq!(http(addr, "GET", "/healthz").await.0, 200);
    assert_eq!(http(addr, "GET", "/readyz").await.0, 200);
    assert_eq!(http(addr, "GET", "/x").await.0, 404);
    assert!(chatload.running(), "still running");
    assert_eq!(chatload.stop(Duration::from_secs(5)).await.0, Some(0));
}

/// A keyspace chatload did not create is refused (exit 1, the way out named), unless explicitly
/// allowed; a keyspace chatload created carries its marker and is accepted again.
#[tokio::test]
async fn a_foreign_keyspace_is_refused_unless_allowed() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_foreign";
    let cfg = stack_config(keyspace);
    let session = scylla::connect(&cfg.scylla, None).await.unwrap();
    let mut drop =
        ::scylla::statement::Statement::new(format!("DROP KEYSPACE IF EXISTS {keyspace}"));
    drop.set_request_timeout(Some(Duration::from_secs(60)));
    session.query_unpaged(drop.clone(), &[]).await.unwrap();
    // An empty keyspace (a chatload killed between CREATE KEYSPACE and its marker leaves one):
    // nobody's data, so it is claimed.
    session
        .query_unpaged(table::keyspace_cql(&cfg.scylla), &[])
        .await
        .unwrap();
    let f = config_file(&test_config(CASSANDRA, REDIS, keyspace));
    let out = run(&["schema", "apply", "--config", f.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "an empty keyspace is claimed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // …and marked, so that it stays ours once it holds the table.
    let again = run(&["schema", "apply", "--config", f.path().to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "a claimed keyspace is accepted again: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    session.query_unpaged(drop.clone(), &[]).await.unwrap();
    // Someone else's keyspace, with a table of the same shape.
    session
        .query_unpaged(table::keyspace_cql(&cfg.scylla), &[])
        .await
        .unwrap();
    session
        .query_unpaged(table::table_cql(&cfg.scylla), &[])
        .await
        .unwrap();

    let f = config_file(&test_config(CASSANDRA, REDIS, keyspace));
    let path = f.path().to_str().unwrap();
    let out = run(&["schema", "apply", "--config", path]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("was not created by chatload") && err.contains("allow_existing_keyspace"),
        "{err}"
    );

    // `chatload run` refuses it too: the traffic says why, counts its writes unavailable, and
    // writes nothing into the foreign table.
    let c = Chatload::start(&crate::common::config_with(
        CASSANDRA,
        REDIS,
        keyspace,
        &format!(
            "[traffic]\nwrite_rate = 100.0\nread_rate = 0.0\n{}",
            crate::common::probes_only(&[], "1s")
        ),
    ))
    .await;
    c.wait_at_least(
        &ops_series("scylla", "write", "unavailable"),
        100.0,
        Duration::from_secs(30),
        "writes into a foreign keyspace were not counted unavailable",
    )
    .await;
    let t = std::time::Instant::now();
    while !c.log_text().contains("was not created by chatload") {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the traffic never said why: {}",
            c.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(c.metric(&ops_series("scylla", "write", "ok")).await, 0.0);
    std::mem::drop(c);
    let rows = scylla::query_first::<(i64,)>(
        &session,
        &format!("SELECT COUNT(*) FROM {keyspace}.{}", table::TABLE),
    )
    .await
    .unwrap();
    assert_eq!(
        rows,
        Some((0,)),
        "nothing written into the foreign keyspace"
    );

    let allowed = crate::common::bin()
        .args(["schema", "apply", "--config", path])
        .env("CHATLOAD_SCYLLA__ALLOW_EXISTING_KEYSPACE", "true")
        .output()
        .unwrap();
    assert_eq!(
        allowed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );

    // Created by chatload: marked, and accepted on the next apply.
    session.query_unpaged(drop, &[]).await.unwrap();
    assert_eq!(
        run(&["schema", "apply", "--config", path]).status.code(),
        Some(0)
    );
    let again = run(&["schema", "apply", "--config", path]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let owner = chatload::store::scylla::query_first::<(String,)>(
        &session,
        &format!("SELECT owner FROM {keyspace}.{}", table::OWNER_TABLE),
    )
    .await
    .unwrap();
    assert_eq!(owner, Some(("chatload".to_string(),)));
}

/// A probe run in progress (ttl_expiry waits ttl + grace, 5 s) does not hold up a SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_does_not_wait_for_a_probe_run() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let keyspace = "chatload_it_sigterm";
    let session = crate::common::fresh_keyspace(keyspace).await;
    let probes = crate::common::probes_only(&["ttl_expiry"], "30s");
    let chatload = Chatload::start(&crate::common::config_with(
        CASSANDRA,
        REDIS,
        keyspace,
        &format!("[traffic]\nwrite_rate = 1.0\nread_rate = 0.0\n{probes}"),
    ))
    .await;
    wait_for_metric(chatload.addr, SCYLLA_UP, 1.0, Duration::from_secs(30)).await;
    // The first run starts at once (no jitter), writes its row (TTL 2 s), then sleeps through the
    // TTL and the grace (5 s in all). Wait until its row is there: the run has begun.
    let started = std::time::Instant::now();
    let written = format!(
        "SELECT message_id FROM {keyspace}.chat_messages WHERE message_text = 'ttl_expiry probe' ALLOW FILTERING"
    );
    // (An error is "not yet": chatload may not have created the keyspace.)
    while chatload::store::scylla::query_first::<(uuid::Uuid,)>(&session, &written)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the ttl_expiry run never wrote its row"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …and it has not ended: no outcome is counted yet (every outcome series exists at 0).
    for outcome in ["ok", "failed", "error", "timeout"] {
        let runs = chatload
            .metric(&format!(
                r#"chatload_probe_runs_total{{probe="ttl_expiry",outcome="{outcome}"}}"#
            ))
            .await;
        assert_eq!(runs, 0.0, "the run is still in progress ({outcome})");
    }
    let (code, took) = chatload.stop(Duration::from_secs(3)).await;
    eprintln!("exit during a ttl_expiry run took {took:?}");
    assert_eq!(code, Some(0));
}
