//! Tests against the real local stack (Cassandra 5 and Redis from `scripts/stack.sh up`).

use crate::common::{
    CASSANDRA, REDIS, bin, closed_port, config_file, http, require_stack, run, test_config,
    wait_for_metric,
};
use chatload::backend::scylla;
use chatload::{Daemon, config, schema};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn stack_config(keyspace: &str) -> config::Config {
    config::load_str(
        &test_config(CASSANDRA, REDIS, keyspace),
        Path::new("test"),
        [],
    )
    .unwrap()
}

#[tokio::test]
async fn schema_apply_is_idempotent_and_matches_the_spec() {
    require_stack();
    let keyspace = "chatload_it_schema";
    let cfg = stack_config(keyspace);
    let session = scylla::connect(&cfg.scylla, None)
        .await
        .expect("connect to the local Cassandra");
    // Start from nothing (the test may drop its own keyspace; chatload itself never drops anything).
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await
        .unwrap();

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
    assert_eq!(info, schema::expected_table(&cfg.scylla));

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
    require_stack();
    let token = CancellationToken::new();
    let d = Daemon::start(stack_config("chatload_it"), token.clone())
        .await
        .unwrap();
    let addr = d.http_addr();
    let scylla_after = wait_for_metric(
        addr,
        r#"chatload_backend_up{backend="scylla"}"#,
        1.0,
        Duration::from_secs(30),
    )
    .await;
    let redis_after = wait_for_metric(
        addr,
        r#"chatload_backend_up{backend="redis"}"#,
        1.0,
        Duration::from_secs(30),
    )
    .await;
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
    require_stack();
    let port = closed_port();
    let text = test_config(CASSANDRA, REDIS, "chatload_it")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let f = config_file(&text);
    let mut child = bin()
        .args(["run", "--config", f.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let start = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "chatload did not listen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_metric(
        addr,
        r#"chatload_backend_up{backend="scylla"}"#,
        1.0,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(http(addr, "GET", "/healthz").await.0, 200);

    let t = Instant::now();
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no exit within 5 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("exit after SIGTERM took {:?}", t.elapsed());
    assert_eq!(status.code(), Some(0));
}

/// The binary with both backends unreachable still serves everything; backend_up stays 0.
#[tokio::test]
async fn the_binary_serves_with_backends_down() {
    let port = closed_port();
    let text = test_config(
        &format!("127.0.0.1:{}", closed_port()),
        &format!("127.0.0.1:{}", closed_port()),
        "chatload_it",
    )
    .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let f = config_file(&text);
    let mut child = bin()
        .args(["run", "--config", f.path().to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let start = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "chatload did not listen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the health loops a few rounds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        crate::common::metric(&body, r#"chatload_backend_up{backend="scylla"}"#),
        Some(0.0)
    );
    assert_eq!(
        crate::common::metric(&body, r#"chatload_backend_up{backend="redis"}"#),
        Some(0.0)
    );
    assert_eq!(http(addr, "GET", "/healthz").await.0, 200);
    assert_eq!(http(addr, "GET", "/readyz").await.0, 200);
    assert_eq!(http(addr, "GET", "/x").await.0, 404);
    assert!(child.try_wait().unwrap().is_none(), "still running");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
