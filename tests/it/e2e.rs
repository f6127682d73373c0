//! The end-to-end canary against the reference chat service, `chatsvc`: real processes on loopback
//! (each test starts its own chatsvc processes, with their own keyspace and Redis prefix, ports from
//! `--ready-file`), real Cassandra and Redis. Every test is bounded (≤ 40 s) and holds the stack
//! lock for writing; anything stopped is resumed when the test ends, whatever happens.

use crate::common::{
    CASSANDRA, Chatload, REDIS, ResumeOnDrop, STACK_LOCK, bin, config_file, config_with, metric,
    probes_only, require_stack, signal,
};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A chatsvc process; killed when dropped.
struct Svc {
    child: Child,
    addr: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl Svc {
    /// Start `chatsvc --role ROLE` with `args` on `listen` and wait (≤ 60 s) for its ready file.
    fn start(role: &str, listen: &str, args: &[&str]) -> Svc {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let log = tempfile::Builder::new().suffix(".log").tempfile().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chatsvc"))
            .args([
                "--role",
                role,
                "--listen",
                listen,
                "--admin",
                "--ready-file",
            ])
            .arg(&ready)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                break text.trim().parse().unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "chatsvc --role {role} not ready in 60 s: {}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Svc { child, addr, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference service in direct mode as two processes (api, gateway), or buffered as three.
struct Service {
    api: Svc,
    gateway: Svc,
    worker: Option<Svc>,
    keyspace: String,
    prefix: String,
}

impl Service {
    fn start(name: &str, buffered: bool) -> Service {
        Self::start_with(name, buffered, &[])
    }

    /// [`Service::start`] with more chatsvc flags for every process.
    fn start_with(name: &str, buffered: bool, more: &[&str]) -> Service {
        let keyspace = format!("chatsvc_it_{name}");
        let prefix = format!("chatsvcit{name}");
        let mode = if buffered { "buffered" } else { "direct" };
        let mut common = vec!["--mode", mode, "--keyspace", &keyspace, "--prefix", &prefix];
        common.extend_from_slice(more);
        let worker = buffered.then(|| Svc::start("worker", "127.0.0.1:0", &common));
        Service {
            api: Svc::start("api", "127.0.0.1:0", &common),
            gateway: Svc::start("gateway", "127.0.0.1:0", &common),
            worker,
            keyspace,
            prefix,
        }
    }

    /// chatload's config for this service: light database traffic, no probes, a generous write
    /// target; `channels`, `posts` per second, `subscribers`, more `[e2e.post]` lines and more
    /// `[slo]` lines.
    fn config(
        &self,
        (channels, posts, subscribers): (u32, f64, u32),
        post: &str,
        slo: &str,
    ) -> String {
        let queue = match &self.worker {
            Some(_) => format!(
                "[e2e.queue]\nenabled = true\nkey = \"{}:ingest\"\ninterval = \"250ms\"\n",
                self.prefix
            ),
            None => "[e2e.queue]\nenabled = false\n".to_string(),
        };
        config_with(
            CASSANDRA,
            REDIS,
            &format!("{}_load", self.keyspace),
            &format!(
                "[traffic]\nwrite_rate = 20.0\nread_rate = 0.0\n{probes}\
                 [slo]\nwrite_p99 = \"1s\"\n{slo}\n\
                 [e2e]\nenabled = true\nbase_url = \"http://{api}\"\nchannels = {channels}\n\
                 request_timeout = \"2s\"\ndelivery_timeout = \"3s\"\n\
                 [e2e.read]\nrate = 10.0\n\
                 [e2e.post]\nrate = {posts}\n{post}\n\
                 [e2e.subscribers]\ncount = {subscribers}\nconnect_rate = 200.0\n\
                 url = \"ws://{gw}/ws?channel={{channel}}&user={{subscriber}}\"\n\
                 [e2e.visibility]\nkeyspace = \"{ks}\"\nsample = 0.2\n{queue}",
                probes = probes_only(&[], "10s"),
                api = self.api.addr,
                gw = self.gateway.addr,
                ks = self.keyspace,
            ),
        )
    }
}

/// Run `chatload check` on `config` (JSON report), calling `during(elapsed)` every 100 ms while it
/// runs (to inject faults); returns the exit code, the report and the progress lines.
fn check(
    config: &str,
    duration: &str,
    warmup: &str,
    mut during: impl FnMut(Duration),
) -> (Option<i32>, serde_json::Value, String) {
    let f = config_file(config);
    let err = tempfile::NamedTempFile::new().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = bin()
        .args(["check", "--config", f.path().to_str().unwrap()])
        .args([
            "--duration",
            duration,
            "--warmup",
            warmup,
            "--format",
            "json",
        ])
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(t.elapsed() < Duration::from_secs(120), "check did not end");
        during(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    };
    let progress = std::fs::read_to_string(err.path()).unwrap();
    let text = std::fs::read_to_string(out.path()).unwrap();
    let report = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {text}\n{progress}"));
    (code, report, progress)
}

fn row<'a>(report: &'a serde_json::Value, slo: &str) -> &'a serde_json::Value {
    report["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slo"] == slo)
        .unwrap_or_else(|| panic!("no row {slo} in {report}"))
}

fn passes(report: &serde_json::Value, slo: &str) -> bool {
    row(report, slo)["pass"] == true
}

fn count(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {key} in {v}"))
}

fn window(report: &serde_json::Value) -> &serde_json::Value {
    &report["e2e"]["window"]
}

fn op<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["backend"] == "chat_api" && o["op"] == name)
        .unwrap()
}

/// POST a JSON body; the status.
async fn post_json(addr: SocketAddr, path: &str, body: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn svc_metric(addr: SocketAddr, series: &str) -> f64 {
    let (_, _, body) = crate::common::http(addr, "GET", "/metrics").await;
    metric(&body, series).unwrap_or_else(|| panic!("chatsvc at {addr} has no {series}"))
}

fn injected(fault: &str) -> String {
    format!("chatsvc_injected_total{{fault=\"{fault}\"}}")
}

/// A healthy service passes every e2e row, with exact counts: each acknowledged post reaches every
/// subscriber of its channel once, nothing is lost, nothing anomalous, and keep-alive holds the
/// API connections to a handful.
#[test]
fn baseline_passes_every_row_with_exact_delivery_counts() {
    let _stack = STACK_LOCK.blocking_write();
    require_stack();
    let svc = Service::start("base", false);
    let config = svc.config((4, 50.0, 40), "", "");
    let (code, report, progress) = check(&config, "10s", "3s", |_| {});
    assert_eq!(code, Some(0), "{report:#}\n{progress}");
    let w = window(&report);
    let per_channel = 40 / 4;
    let (ok, complete) = (
        count(&w["deliveries"], "ok"),
        count(&w["messages"], "complete"),
    );
    assert!(complete >= 450, "≈ 50/s for 10 s: {complete}");
    assert_eq!(ok, complete * per_channel, "every recipient, once: {w:#}");
    assert_eq!(count(&w["deliveries"], "lost"), 0);
    assert_eq!(
        count(&w["messages"], "partial") + count(&w["messages"], "none"),
        0
    );
    for (kind, n) in w["anomalies"].as_object().unwrap() {
        assert_eq!(n, 0, "anomaly {kind}");
    }
    let posts_ok = count(&op(&report, "api_post")["outcomes"], "ok");
    assert!(
        complete.abs_diff(posts_ok) <= 5,
        "messages counted whole at their end ({complete}) ≈ posts acknowledged in the window ({posts_ok})"
    );
    assert!(
        count(&w["http_connects"], "api_post") <= 64,
        "keep-alive: {}",
        w["http_connects"]
    );
    for slo in [
        "e2e_delivery_p95",
        "e2e_delivery_success",
        "e2e_duplicates_max",
        "e2e_out_of_order_max",
        "e2e_ws_connect_p95",
        "e2e_ws_connect_success",
        "e2e_subscribers_ready",
        "e2e_api_p95",
        "e2e_api_success",
        "e2e_api_throughput_ratio",
        "e2e_visible_p95",
    ] {
        assert!(passes(&report, slo), "{slo}: {}", row(&report, slo));
    }
    assert!(
        progress.contains("delivered 100.00%") && progress.contains("ws 40/40"),
        "a progress line every 5 s: {progress}"
    );
    assert!(count(&w["visibility"], "visible") > 0);
    assert_eq!(count(&w["visibility"], "not_visible"), 0);
}

/// The gateway paused (its sockets stay open): deliveries are lost and the delivery SLOs fail,
/// while the API, the database read-back and the database writes pass. After it resumes, the
/// deliveries Redis buffered for it arrive late, and none twice.
#[test]
fn gateway_paused_fails_delivery_while_api_and_db_pass() {
    let _stack = STACK_LOCK.blocking_write();
    require_stack();
    let svc = Service::start("gwpause", false);
    let config = svc.config((4, 50.0, 20), "", "");
    let gateway = svc.gateway.pid();
    let _resume = ResumeOnDrop(gateway);
    let (mut stopped, mut resumed) = (false, false);
    // Warm-up 2 s (plus the subscribers), then the window: pause 3 s into it for 6 s.
    let (code, report, progress) = check(&config, "14s", "2s", |t| {
        if !stopped && t >= Duration::from_secs(6) {
            signal(gateway, "STOP");
            stopped = true;
        }
        if stopped && !resumed && t >= Duration::from_secs(12) {
            signal(gateway, "CONT");
            resumed = true;
        }
    });
    assert!(resumed, "the check outlived the pause");
    assert_eq!(code, Some(1), "{report:#}\n{progress}");
    for slo in ["e2e_delivery_success", "e2e_delivery_p95"] {
        assert!(!passes(&report, slo), "{slo} fails: {}", row(&report, slo));
    }
    for slo in [
        "e2e_api_p95",
        "e2e_api_success",
        "e2e_visible_p95",
        "write_p99",
        "write_success",
    ] {
        assert!(passes(&report, slo), "{slo} passes: {}", row(&report, slo));
    }
    let w = window(&report);
    let lost = count(&w["deliveries"], "lost");
    // 6 s paused, less the 3 s delivery timeout at its end: ≥ 0.8 × 50/s × 3 s × 5 recipients.
    assert!(lost as f64 >= 0.8 * 50.0 * 3.0 * 5.0, "lost {lost}");
    assert_eq!(count(&w["anomalies"], "duplicate"), 0);
    assert!(
        count(&w["anomalies"], "late") > 0,
        "what Redis held for the paused gateway arrives after the timeout: {}",
        w["anomalies"]
    );
}

/// Buffered mode (a Redis list) with the worker paused: posts are still accepted, the queue rises
/// and never falls while it is paused, and drains after it resumes; on the status page the
/// queue-depth SLO fails while the API's pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_paused_queue_rises_then_drains() {
    worker_paused(false).await;
}

/// The same with a Redis stream and a consumer group: the depth is lag + pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_paused_stream_lag_rises_then_drains() {
    worker_paused(true).await;
}

async fn worker_paused(stream: bool) {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let svc = if stream {
        Service::start_with("wpauses", true, &["--queue", "stream"])
    } else {
        Service::start("wpause", true)
    };
    let mut config = svc.config((4, 100.0, 8), "", "e2e_queue_depth_max = 500\n");
    if stream {
        config = config.replace(
            "[e2e.queue]\nenabled = true\n",
            "[e2e.queue]\nenabled = true\nkind = \"stream\"\ngroup = \"chatsvc-workers\"\n",
        );
    }
    let c = Chatload::start(&config).await;
    let depth = "chatload_e2e_queue_depth";
    c.wait_at_least(
        "chatload_e2e_queue_up",
        1.0,
        Duration::from_secs(15),
        "the queue is read",
    )
    .await;
    let worker = svc.worker.as_ref().unwrap().pid();
    let _resume = ResumeOnDrop(worker);
    signal(worker, "STOP");
    let paused = Instant::now();
    let mut last = 0.0;
    while paused.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let d = c.metric(depth).await;
        assert!(
            d >= last,
            "the depth never falls while the worker is paused: {last} → {d}"
        );
        last = d;
    }
    assert!(last >= 800.0, "100 posts/s for 10 s queue up: {last}");
    let scrape = c.scrape().await;
    let posts_failed: f64 = ["error", "timeout", "overloaded", "unavailable", "dropped"]
        .iter()
        .map(|o| {
            metric(
                &scrape,
                &format!("chatload_operations_total{{backend=\"chat_api\",op=\"api_post\",outcome=\"{o}\"}}"),
            )
            .expect("every outcome series exists")
        })
        .sum();
    assert_eq!(
        posts_failed, 0.0,
        "posts are accepted (202) while the worker is paused"
    );
    // The status page samples every 10 s, and at once when asked after a second without one:
    // asking now puts the paused queue's depth into its window.
    let _ = crate::common::http(c.addr, "GET", "/api/v1/status").await;
    signal(worker, "CONT");
    let resumed = Instant::now();
    loop {
        let d = c.metric(depth).await;
        if d < 50.0 {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(10),
            "the queue drains within 10 s of the resume: {d}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        c.metric("chatload_e2e_visibility_checks_total{outcome=\"not_visible\"}")
            .await
            > 0.0
    );
    let (_, _, body) = crate::common::http(c.addr, "GET", "/api/v1/status").await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let verdict = |slo: &str| {
        status["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["slo"] == slo)
            .unwrap_or_else(|| panic!("no {slo} row on the status page: {status}"))["pass"]
            .as_bool()
            .unwrap()
    };
    assert!(!verdict("e2e_queue_depth_max"), "{status}");
    assert!(verdict("e2e_api_success"), "{status}");
}

/// Faults the service counts itself: every dropped delivery is counted lost and every duplicated
/// one a duplicate, exactly; held deliveries come out of order (never more often than held).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_drops_and_duplicates_are_counted_exactly() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let svc = Service::start("truth", false);
    // 20 posts/s over 2 channels: each post is acknowledged long before the next on its channel.
    let config = svc.config((2, 20.0, 20), "", "");
    let c = Chatload::start(&config).await;
    c.wait_at_least(
        "chatload_e2e_subscribers{state=\"ready\"}",
        20.0,
        Duration::from_secs(15),
        "every subscriber ready before the faults",
    )
    .await;
    let gw = svc.gateway.addr;
    assert_eq!(
        post_json(
            gw,
            "/admin/faults",
            r#"{"drop_ratio":0.02,"duplicate_ratio":0.05,"hold_every":10,"hold_ms":300}"#
        )
        .await,
        200
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        post_json(
            gw,
            "/admin/faults",
            r#"{"drop_ratio":0,"duplicate_ratio":0,"hold_every":0,"hold_ms":0}"#
        )
        .await,
        200
    );
    // Every faulty post reaches its delivery timeout (3 s) and every held frame lands.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let drops = svc_metric(gw, &injected("drop")).await;
    let dups = svc_metric(gw, &injected("duplicate")).await;
    let holds = svc_metric(gw, &injected("hold")).await;
    assert!(
        drops > 0.0 && dups > 0.0 && holds > 0.0,
        "{drops} {dups} {holds}"
    );
    let lost = c
        .metric("chatload_e2e_deliveries_total{outcome=\"lost\"}")
        .await;
    let duplicate = c
        .metric("chatload_e2e_anomalies_total{kind=\"duplicate\"}")
        .await;
    let ooo = c
        .metric("chatload_e2e_anomalies_total{kind=\"out_of_order\"}")
        .await;
    assert_eq!(lost, drops, "lost = injected drops");
    assert_eq!(duplicate, dups, "duplicates = injected duplicates");
    assert!(
        ooo >= 0.95 * holds && ooo <= holds,
        "out of order {ooo} of {holds} holds"
    );
    assert_eq!(
        c.metric("chatload_e2e_anomalies_total{kind=\"late\"}")
            .await,
        0.0
    );
    drop(c);
}

/// Concurrent posts to one channel have no defined order: at 200 posts/s on one channel, many
/// posts overlap, and none may be called out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_never_make_a_false_out_of_order() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let svc = Service::start("concurrent", false);
    let config = svc.config((1, 200.0, 8), "", "");
    let c = Chatload::start(&config).await;
    c.wait_at_least(
        "chatload_e2e_deliveries_total{outcome=\"ok\"}",
        6_000.0,
        Duration::from_secs(20),
        "200 posts/s to 8 subscribers",
    )
    .await;
    assert_eq!(
        c.metric("chatload_e2e_anomalies_total{kind=\"out_of_order\"}")
            .await,
        0.0
    );
    assert_eq!(
        c.metric("chatload_e2e_deliveries_total{outcome=\"lost\"}")
            .await,
        0.0
    );
    drop(c);
}

/// The API stalls 2 s (its process paused). With 8 connections, 8 posts wait and the others due
/// meanwhile are dropped, each counted; with 256, the stalled posts are measured from their
/// schedule, spread over 0–2 s, where a closed-loop client would have recorded only its 8 waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_stall_shows_in_latency_from_the_schedule() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let svc = Service::start("stall", false);
    let api = svc.api.pid();
    let _resume = ResumeOnDrop(api);
    let series = |s: &str| {
        format!("chatload_operation_duration_seconds_{s}{{backend=\"chat_api\",op=\"api_post\"}}")
    };
    let slow = |scrape: &str| {
        let total = metric(scrape, &series("count")).unwrap();
        let under = metric(
            scrape,
            "chatload_operation_duration_seconds_bucket{backend=\"chat_api\",op=\"api_post\",le=\"1\"}",
        )
        .unwrap();
        total - under
    };
    for connections in [8, 256] {
        let config = svc.config((4, 100.0, 4), &format!("connections = {connections}\n"), "");
        let config = config.replace("request_timeout = \"2s\"", "request_timeout = \"5s\"");
        let c = Chatload::start(&config).await;
        c.wait_at_least(
            "chatload_e2e_subscribers{state=\"ready\"}",
            4.0,
            Duration::from_secs(15),
            "subscribers ready",
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = c.scrape().await;
        signal(api, "STOP");
        tokio::time::sleep(Duration::from_secs(2)).await;
        signal(api, "CONT");
        tokio::time::sleep(Duration::from_secs(4)).await;
        let after = c.scrape().await;
        let dropped = |s: &str| {
            metric(s, "chatload_operations_total{backend=\"chat_api\",op=\"api_post\",outcome=\"dropped\"}").unwrap()
        };
        let (slow_n, dropped_n) = (
            slow(&after) - slow(&before),
            dropped(&after) - dropped(&before),
        );
        if connections == 8 {
            assert!(
                dropped_n >= 150.0,
                "≈ 190 posts due while 8 wait are dropped: {dropped_n}"
            );
        } else {
            assert_eq!(dropped_n, 0.0);
            assert!(
                slow_n >= 90.0,
                "about half of the ≈ 200 stalled posts waited over 1 s from their schedule: {slow_n}\n{}",
                svc.api.log_text()
            );
        }
        drop(c);
    }
}

/// The gateway killed: every subscriber is disconnected at once and counted so, posts find no
/// recipients, reconnects are refused; restarted on its port, the population comes back on its
/// connect timetable (paced, never a storm).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_then_restarted_brings_the_population_back_paced() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let mut svc = Service::start("gwkill", false);
    let config = svc
        .config((4, 20.0, 40), "", "")
        .replace("connect_rate = 200.0", "connect_rate = 20.0");
    let c = Chatload::start(&config).await;
    let ready = "chatload_e2e_subscribers{state=\"ready\"}";
    c.wait_at_least(ready, 40.0, Duration::from_secs(15), "all ready")
        .await;
    let before = c.scrape().await;
    let gw_addr = svc.gateway.addr;
    let _ = svc.gateway.child.kill();
    let _ = svc.gateway.child.wait();
    let killed = Instant::now();
    loop {
        if c.metric(ready).await == 0.0 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "every socket noticed within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = c.scrape().await;
    let delta = |s: &str| metric(&after, s).unwrap() - metric(&before, s).unwrap();
    let closed = delta("chatload_e2e_ws_disconnects_total{reason=\"eof\"}")
        + delta("chatload_e2e_ws_disconnects_total{reason=\"reset\"}")
        + delta("chatload_e2e_ws_disconnects_total{reason=\"close_frame\"}");
    assert_eq!(closed, 40.0, "each socket's end counted once");
    let refused = delta("chatload_e2e_ws_connects_total{outcome=\"refused\"}");
    assert!(refused > 0.0, "reconnects are refused while it is down");
    assert!(
        refused <= 20.0 * 3.5,
        "reconnects keep to the connect timetable (20/s), never a storm: {refused} in ~3 s"
    );
    assert!(delta("chatload_e2e_messages_total{fanout=\"no_recipients\"}") > 0.0);
    svc.gateway = Svc::start(
        "gateway",
        &gw_addr.to_string(),
        &[
            "--mode",
            "direct",
            "--keyspace",
            &svc.keyspace,
            "--prefix",
            &svc.prefix,
        ],
    );
    let back = Instant::now();
    // 40 at 20/s is 2 s, plus the backoff a refused subscriber sits out (at most 5 s), plus 2 s.
    c.wait_at_least(ready, 40.0, Duration::from_secs(9), "all back")
        .await;
    assert!(
        back.elapsed() >= Duration::from_millis(1500),
        "paced: {:?}",
        back.elapsed()
    );
    // A delivery missing because its subscriber left is aborted (churn), never lost.
    let lost = c
        .metric("chatload_e2e_deliveries_total{outcome=\"lost\"}")
        .await;
    assert_eq!(lost, 0.0);
}

/// The service closes idle keep-alive connections after 1 s and chatload posts every 2 s: each post
/// finds its connection closed, discards it before use and dials anew: no error, only connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closed_are_redialled_not_failed() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let svc = Service::start_with("keepalive", false, &["--keepalive-timeout", "1s"]);
    let config = svc
        .config((1, 0.5, 2), "", "")
        .replace("[e2e.read]\nrate = 10.0", "[e2e.read]\nrate = 0.0");
    let c = Chatload::start(&config).await;
    let ok = "chatload_operations_total{backend=\"chat_api\",op=\"api_post\",outcome=\"ok\"}";
    c.wait_at_least(ok, 6.0, Duration::from_secs(20), "six posts, 2 s apart")
        .await;
    let scrape = c.scrape().await;
    for outcome in ["error", "timeout", "unavailable", "dropped"] {
        let s = format!(
            "chatload_operations_total{{backend=\"chat_api\",op=\"api_post\",outcome=\"{outcome}\"}}"
        );
        assert_eq!(metric(&scrape, &s), Some(0.0), "{outcome}");
    }
    let connects = metric(
        &scrape,
        "chatload_e2e_http_connects_total{op=\"api_post\",outcome=\"ok\"}",
    )
    .unwrap();
    assert!(connects >= 5.0, "each post dialled anew: {connects}");
}

/// `check` exits 3 when the chat service does not answer at all within 30 s.
#[test]
fn check_exits_3_when_the_service_does_not_answer() {
    let _stack = STACK_LOCK.blocking_write();
    require_stack();
    let svc = Service::start("absent", false);
    let port = crate::common::closed_port();
    let config = svc.config((2, 10.0, 2), "", "").replace(
        &format!("http://{}", svc.api.addr),
        &format!("http://127.0.0.1:{port}"),
    );
    drop(svc);
    let f = config_file(&config);
    let out = bin()
        .args([
            "check",
            "--config",
            f.path().to_str().unwrap(),
            "--duration",
            "5s",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("did not answer within 30s"), "{stderr}");
}

/// A TLS chat API that answers 201 only with the right `Authorization` header (401 without): the
/// canary posts over `https://`, verified against the stack's test CA, with the header's value
/// read from a file; against a CA that did not sign the server, every post fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_go_over_tls_with_the_auth_header_from_a_file() {
    use crate::common::tls_file;
    use chatload::tls::{load_certs, load_key};
    let _stack = STACK_LOCK.write().await;
    require_stack();
    chatload::tls::install_crypto_provider();
    let certs = load_certs(std::path::Path::new(&tls_file("server.pem"))).unwrap();
    let key = load_key(std::path::Path::new(&tls_file("server.key"))).unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (authorized, refused) = (
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
    );
    let (a, r) = (authorized.clone(), refused.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, a, r) = (acceptor.clone(), a.clone(), r.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                // One request per read is enough for these small posts.
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                    let reply: &[u8] = if head.contains("\r\nauthorization: bearer s3cret\r\n") {
                        a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"
                    } else {
                        r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
                    };
                    if tls.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "Bearer s3cret\n").unwrap();
    let config = |ca: &str| {
        config_with(
            CASSANDRA,
            REDIS,
            "chatload_it_e2e_tls",
            &format!(
                "[traffic]\nwrite_rate = 5.0\nread_rate = 0.0\n{probes}\
                 [e2e]\nenabled = true\nbase_url = \"https://127.0.0.1:{port}\"\nchannels = 2\n\
                 auth_header = \"Authorization\"\nauth_value_file = \"{secret}\"\n\
                 [e2e.tls]\nca_file = \"{ca}\"\n\
                 [e2e.post]\nrate = 20.0\ntimestamp_pointer = \"\"\n[e2e.read]\nrate = 0.0\n\
                 [e2e.subscribers]\ncount = 0\n[e2e.visibility]\nenabled = false\n\
                 [e2e.queue]\nenabled = false\n",
                probes = probes_only(&[], "10s"),
                port = addr.port(),
                secret = secret.path().display(),
            ),
        )
    };
    let post = |outcome: &str| {
        format!(
            "chatload_operations_total{{backend=\"chat_api\",op=\"api_post\",outcome=\"{outcome}\"}}"
        )
    };
    let c = Chatload::start(&config(&tls_file("ca.pem"))).await;
    c.wait_at_least(&post("ok"), 20.0, Duration::from_secs(10), "posts over TLS")
        .await;
    assert_eq!(c.metric(&post("error")).await, 0.0);
    assert_eq!(
        refused.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the header was always sent"
    );
    assert!(authorized.load(std::sync::atomic::Ordering::SeqCst) >= 20);
    assert!(
        !c.log_text().contains("s3cret"),
        "the secret is never logged"
    );
    drop(c);
    let c = Chatload::start(&config(&tls_file("other-ca.pem"))).await;
    c.wait_at_least(
        &post("error"),
        10.0,
        Duration::from_secs(10),
        "an untrusted server fails",
    )
    .await;
    assert_eq!(c.metric(&post("ok")).await, 0.0);
}

/// The service's Redis (a server of this test's own) paused 5 s under buffered posts: chatload
/// cannot read the queue, so its depth is unknown (`queue_up` 0, the gauge never drops to 0), and
/// the posts time out. Once Redis resumes, the LPUSHes already sent land: the queue is readable
/// again and drains below 50 within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_makes_the_queue_unknown_never_zero() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let port = crate::common::closed_port();
    let redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Killed however the test ends (after `resume` below lets it go on, if it was stopped).
    let redis = KillOnDrop(redis);
    let own = format!("127.0.0.1:{port}");
    let t = Instant::now();
    while std::net::TcpStream::connect(&own).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("redis://{own}");
    let svc = Service::start_with("rpause", true, &["--redis", &url]);
    // chatload's own Redis (its traffic's and the queue's) is this one too.
    let config = svc
        .config((4, 100.0, 8), "", "")
        .replace(&format!("redis://{REDIS}"), &url);
    let c = Chatload::start(&config).await;
    let up = "chatload_e2e_queue_up";
    let depth = "chatload_e2e_queue_depth";
    c.wait_at_least(up, 1.0, Duration::from_secs(15), "the queue is read")
        .await;
    // The worker paused first, so the queue holds something: its depth while unknown must stay
    // what was last read, not fall to 0.
    let worker = svc.worker.as_ref().unwrap().pid();
    let resume_worker = ResumeOnDrop(worker);
    signal(worker, "STOP");
    c.wait_at_least(depth, 100.0, Duration::from_secs(5), "the queue fills")
        .await;
    let resume = ResumeOnDrop(redis.0.id());
    let mut last_known = c.metric(depth).await;
    signal(redis.0.id(), "STOP");
    let paused = Instant::now();
    let mut saw_unknown = false;
    while paused.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let scrape = c.scrape().await;
        let d = metric(&scrape, depth).expect("the depth series stays");
        if metric(&scrape, up) == Some(0.0) {
            saw_unknown = true;
            assert_eq!(
                d, last_known,
                "an unreadable queue keeps its last known depth (with queue_up 0), never a made-up one"
            );
        } else {
            last_known = d;
        }
    }
    assert!(saw_unknown, "a paused Redis makes the queue unknown");
    assert!(last_known >= 100.0);
    let timeouts =
        "chatload_operations_total{backend=\"chat_api\",op=\"api_post\",outcome=\"timeout\"}";
    signal(redis.0.id(), "CONT");
    drop(resume_worker);
    c.wait_at_least(
        timeouts,
        1.0,
        Duration::from_secs(5),
        "posts held by the paused Redis time out",
    )
    .await;
    c.wait_at_least(up, 1.0, Duration::from_secs(5), "readable again")
        .await;
    let resumed = Instant::now();
    loop {
        let d = c.metric(depth).await;
        if d < 50.0 {
            break;
        }
        assert!(resumed.elapsed() < Duration::from_secs(10), "drains: {d}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(c);
    drop(svc);
    drop(resume);
}

/// A child process killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
