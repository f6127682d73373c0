//! Live reload of the real binary: SIGHUP applies a valid config (rates, probe intervals, SLOs)
//! without a restart; `POST /-/reload` rejects an invalid one and the old one keeps running.

use crate::common::{
    CASSANDRA, Chatload, REDIS, STACK_LOCK, config_with, http, require_stack, signal,
};
use std::time::{Duration, Instant};

async fn wait_for(c: &Chatload, series: &str, value: f64) {
    let t = Instant::now();
    while c.metric(series).await != value {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{series} did not become {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sighup_applies_a_valid_config_and_an_invalid_one_is_rejected() {
    // It measures an achieved rate: alone on the stack, like the other rate tests.
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let c = Chatload::start(&config_with(
        CASSANDRA,
        REDIS,
        "chatload_it_reload",
        "[traffic]\nwrite_rate = 100.0\nread_rate = 10.0\n[slo]\nwrite_p99 = \"5ms\"\n",
    ))
    .await;
    let target = r#"chatload_target_rate{op="write"}"#;
    wait_for(&c, target, 100.0).await;
    let hash_before = c.metric("chatload_config_hash").await;
    assert!(hash_before > 0.0);

    // A valid change: applied live. The keyspace change needs a restart and is kept.
    let original = std::fs::read_to_string(c.config.path()).unwrap();
    let changed = original
        .replace("write_rate = 100.0", "write_rate = 300.0")
        .replace("write_p99 = \"5ms\"", "write_p99 = \"10ms\"")
        .replace(
            "keyspace = \"chatload_it_reload\"",
            "keyspace = \"chatload_it_reload_other\"",
        )
        + "[probes.recent_50]\ninterval = \"500ms\"\njitter = \"0s\"\n";
    std::fs::write(c.config.path(), &changed).unwrap();
    signal(c.child.id(), "HUP");
    wait_for(&c, target, 300.0).await;
    wait_for(&c, r#"chatload_config_reload_total{outcome="ok"}"#, 1.0).await;
    // Applied, not only announced: the achieved write rate and the probe's schedule follow. (±5 %:
    // the two scrapes' timing and the requests in flight; the old rate was a third of the new.)
    let ok = r#"chatload_operations_total{backend="scylla",op="write",outcome="ok"}"#;
    let recent_50_runs = |s: &str| -> f64 {
        ["ok", "failed", "error", "timeout"]
            .iter()
            .map(|o| {
                crate::common::metric(
                    s,
                    &format!(r#"chatload_probe_runs_total{{probe="recent_50",outcome="{o}"}}"#),
                )
                .expect("probe run series")
            })
            .sum()
    };
    // A run already scheduled on the old interval (5 s) keeps its time; the new one applies from
    // the run after it. Wait for that run, then count.
    let before = recent_50_runs(&c.scrape().await);
    let t = Instant::now();
    while recent_50_runs(&c.scrape().await) <= before {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no recent_50 run after the reload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s1, t1) = (c.scrape().await, Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (s2, t2) = (c.scrape().await, Instant::now());
    let secs = (t2 - t1).as_secs_f64();
    let value = |s: &str| crate::common::metric(s, ok).expect("write ok series");
    let achieved = (value(&s2) - value(&s1)) / secs;
    let runs = recent_50_runs(&s2) - recent_50_runs(&s1);
    eprintln!("after the reload: {achieved:.1} writes/s, {runs} recent_50 runs in {secs:.1} s");
    assert!(
        (achieved / 300.0 - 1.0).abs() < 0.05,
        "achieved {achieved:.1}/s"
    );
    assert!(
        runs >= 4.0,
        "recent_50 every 500 ms ran {runs} times in {secs:.1} s"
    );
    assert_ne!(c.metric("chatload_config_hash").await, hash_before);
    let (_, _, status) = http(c.addr, "GET", "/api/v1/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let p99 = status["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slo"] == "write_p99")
        .unwrap();
    assert_eq!(p99["target"], 0.01, "the new SLO is judged against");

    // The same through the endpoint, reporting what needs a restart.
    let (code, _, body) = http(c.addr, "POST", "/-/reload").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("need a restart") && body.contains("scylla"),
        "{body}"
    );

    // An invalid config: rejected with its key path, the running one stays.
    std::fs::write(
        c.config.path(),
        changed.replace("write_rate = 300.0", "write_rate = \"fast\""),
    )
    .unwrap();
    let (code, _, body) = http(c.addr, "POST", "/-/reload").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("traffic.write_rate"), "{body}");
    assert_eq!(
        c.metric(r#"chatload_config_reload_total{outcome="error"}"#)
            .await,
        1.0
    );
    signal(c.child.id(), "HUP"); // the same through SIGHUP
    wait_for(&c, r#"chatload_config_reload_total{outcome="error"}"#, 2.0).await;
    assert_eq!(
        c.metric(target).await,
        300.0,
        "the old config keeps running"
    );
    assert_eq!(http(c.addr, "GET", "/healthz").await.0, 200);
    assert_eq!(http(c.addr, "GET", "/-/reload").await.0, 405);

    let mut c = c;
    assert!(c.running());
    assert_eq!(c.stop(Duration::from_secs(10)).await.0, Some(0));
}
