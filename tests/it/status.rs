//! The status page: `/api/v1/status` carries the SLOs, probes and charts; `/` renders in a real
//! browser (headless Chromium from Debian's package) with its key text, and the screenshot is kept in
//! `test-artifacts/status-page.png`.

use crate::common::{CASSANDRA, REDIS, STACK_LOCK, config_with, http, repo, require_stack};
use chatload::{Daemon, config};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_in_headless_chromium() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new("which").arg(c).output().is_ok_and(|o| o.status.success()))
        .expect("Debian's chromium is needed for this test: scripts/test.sh installs it (apt-get install chromium)");

    let rest = "[traffic]\nwrite_rate = 200.0\nread_rate = 20.0\n\
                [probes.recent_50]\ninterval = \"2s\"\n[probes.redis_pubsub]\ninterval = \"2s\"\n";
    let keyspace = "chatload_it_status";
    // A fresh keyspace: the schema is created while the traffic and the probes start.
    let cfg0 = config::load_str(
        &config_with(CASSANDRA, REDIS, keyspace, ""),
        Path::new("t"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    let session = chatload::store::scylla::connect(&cfg0.scylla, None)
        .await
        .unwrap();
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await
        .unwrap();
    let text = config_with(CASSANDRA, REDIS, keyspace, rest);
    let cfg = config::load_str(
        &text,
        Path::new("t"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    let token = CancellationToken::new();
    let d = Daemon::start(cfg, token.clone()).await.unwrap();
    // Two samples 10 s apart make the first chart points.
    tokio::time::sleep(Duration::from_secs(22)).await;
    let addr = d.http_addr();

    let (status, head, body) = http(addr, "GET", "/api/v1/status").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("application/json"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    let slos: Vec<&str> = json["slos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slo"].as_str().unwrap())
        .collect();
    for slo in [
        "write_p99",
        "write_success",
        "throughput_ratio",
        "recent_50_p99",
        "probe:recent_50",
    ] {
        assert!(slos.contains(&slo), "{slo} missing from {slos:?}");
    }
    assert!(
        json["write_rate"].as_array().unwrap().len() >= 2,
        "{}",
        json["write_rate"]
    );
    assert_eq!(json["backends_up"]["scylla"], true);
    assert!(json["probes"]["recent_50"]["runs"]["ok"].as_u64().unwrap() >= 1);
    // A fresh start on a fresh keyspace is clean: every probe run in the window passed (no
    // failed, timed-out or errored run), and no write failed.
    for (probe, s) in json["probes"].as_object().unwrap() {
        for outcome in ["failed", "timeout", "error"] {
            assert!(
                s["runs"].get(outcome).is_none(),
                "{probe}: {outcome} runs {}; {}",
                s["runs"],
                s["last_problem"]
            );
        }
    }
    let write_success = json["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slo"] == "write_success")
        .unwrap();
    assert_eq!(write_success["pass"], true, "{write_success}");

    let artifacts = repo().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let run = |extra: &[String]| {
        Command::new(chromium)
            .args(flags)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium")
    };
    let dom = String::from_utf8_lossy(&run(&["--dump-dom".into()]).stdout).to_string();
    for text in [
        "chatload",
        "Backends",
        "SLOs",
        "write_p99",
        "Write rate",
        "Probes",
        "recent_50",
        "<svg",
        "PASS",
    ] {
        assert!(dom.contains(text), "{text:?} not rendered; DOM:\n{dom}");
    }
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = run(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1280,1800".into(),
    ]);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "no screenshot ({size} bytes): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("status page screenshot: {} ({size} bytes)", shot.display());
    token.cancel();
    d.wait().await;
}
