//! Numbers that stay true under real faults: every operation the timetable made due is measured,
//! failures never make latency look better, and one SLO model gives one answer in `check`, the
//! stack's Prometheus (rules and dashboard queries) and the status page. Each test holds the stack
//! lock for writing, is bounded in time and resumes what it paused even when it fails. Figures are
//! printed on `TRUTH` lines.

use crate::common::{
    CASSANDRA, Chatload, REDIS, ResumeOnDrop, STACK_LOCK, bin, cassandra_pid, config_file,
    config_with, must, probes_only, prometheus_query, prometheus_value, repo, require_stack,
    series, signal,
};
use chatload::measure::record::Outcome;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Thresholds that are not default bucket bounds, so each consumer shows which one it judged.
const SLO_7_40: &str = "[slo]\nwrite_p99 = \"7ms\"\nrange_5m_max = \"40ms\"\n";

/// `chatload check` started in the background, with its config file (keep it until the end).
fn spawn_check(
    config: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, tempfile::NamedTempFile) {
    let f = config_file(config);
    let child = bin()
        .args([
            "check",
            "--config",
            f.path().to_str().unwrap(),
            "--format",
            "json",
        ])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, f)
}

fn report(
    (child, _config): (std::process::Child, tempfile::NamedTempFile),
) -> (Option<i32>, serde_json::Value, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check printed no JSON ({e}); stderr:\n{stderr}"));
    (out.status.code(), doc, stderr)
}

fn row<'a>(doc: &'a serde_json::Value, slo: &str) -> &'a serde_json::Value {
    doc["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slo"] == slo)
        .unwrap_or_else(|| panic!("no {slo} row in {doc:#}"))
}

fn operation<'a>(doc: &'a serde_json::Value, backend: &str, op: &str) -> &'a serde_json::Value {
    doc["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["backend"] == backend && o["op"] == op)
        .unwrap()
}

/// Every operation made due is counted under one outcome and observed once: after the drain at the
/// end of the check, the operations counted are exactly those made due in the window plus those in
/// flight when it began, and the latency histogram holds one observation per operation counted.
fn assert_counts_add_up(doc: &serde_json::Value) {
    for o in doc["operations"].as_array().unwrap() {
        let slack = o["in_flight_at_start"].as_u64().unwrap();
        let (due, total) = (o["due"].as_u64().unwrap(), o["total"].as_u64().unwrap());
        let outcomes: u64 = o["outcomes"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let what = format!("{} {}", o["backend"], o["op"]);
        assert_eq!(outcomes, total, "{what}");
        assert_eq!(
            due + slack,
            total,
            "{what}: due {due} + in flight at start {slack} vs counted {total}"
        );
        assert_eq!(
            o["latency"]["count"].as_u64().unwrap(),
            total,
            "{what}: one latency observation per operation counted"
        );
        eprintln!(
            "TRUTH counts {what}: due {due}, counted {total}, outcomes {}",
            o["outcomes"]
        );
    }
}

/// The first query of a dashboard panel, with the dashboard's variables filled in.
fn dashboard_query(title: &str, instance: &str) -> String {
    dashboard_target(title, 0, instance)
}

/// Query `index` of a dashboard panel, with the dashboard's variables filled in.
fn dashboard_target(title: &str, index: usize, instance: &str) -> String {
    let path = repo().join("grafana/dashboards/chatload-overview.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    fn find(panels: &serde_json::Value, title: &str, index: usize) -> Option<String> {
        panels.as_array()?.iter().find_map(|p| {
            if p["title"] == title {
                return p["targets"][index]["expr"].as_str().map(str::to_string);
            }
            find(&p["panels"], title, index)
        })
    }
    find(&d["panels"], title, index)
        .unwrap_or_else(|| panic!("no panel {title:?}"))
        .replace("$job", "chatload")
        .replace("$instance", instance)
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
}

/// Cassandra frozen (SIGSTOP) for 10 s at 1,000 writes/s, inside a 60 s `chatload check` and under a
/// `chatload run` that the stack's Prometheus scrapes on 9742: the check fails write_p99 with a p99
/// of at least the 2 s request timeout; the p99 Prometheus computes over 1 m reaches the timeout;
/// the generated write-latency alert goes pending; and the counts add up. Both instances run with
/// write_p99 = 7 ms and range_5m_max = 40 ms, and the dashboard's "within the SLO" query and
/// Prometheus' objective series judge at 7 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassandra_stall_fails_check_and_shows_in_prometheus() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let rest = format!(
        "[traffic]\nwrite_rate = 1000.0\nread_rate = 100.0\nmax_in_flight = 64\n{SLO_7_40}{}",
        probes_only(&["range_5m"], "2s")
    );
    let started = Instant::now();
    let check = spawn_check(
        &config_with(CASSANDRA, REDIS, "chatload_it_truth_check", &rest),
        &["--duration", "60s", "--warmup", "5s"],
        &[],
    );
    let daemon = Chatload::start_on(
        &config_with(CASSANDRA, REDIS, "chatload_it_truth_run", &rest)
            .replace("127.0.0.1:0", "127.0.0.1:9742"),
        &[],
        9742,
    )
    .await;
    let instance = "127.0.0.1:9742";
    let p99 = format!(
        "histogram_quantile(0.99, sum by (le) (rate(chatload_operation_duration_seconds_bucket{{job=\"chatload\",instance=\"{instance}\",backend=\"scylla\",op=\"write\"}}[1m])))"
    );
    // The stall begins 30 s in: 25 s of the check's window and of Prometheus' samples before it.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(started.elapsed())).await;
    let before = prometheus_value(&p99).await.unwrap_or(f64::NAN);
    let pid = cassandra_pid();
    signal(pid, "STOP");
    let resume = ResumeOnDrop(pid);
    let stalled = Instant::now();
    let (mut max_p99, mut alert_state) = (0.0_f64, String::new());
    while stalled.elapsed() < Duration::from_secs(25) {
        if stalled.elapsed() >= Duration::from_secs(10) {
            signal(pid, "CONT");
        }
        if let Some(v) = prometheus_value(&p99).await {
            max_p99 = max_p99.max(v);
        }
        for a in prometheus_query("ALERTS{alertname=\"ChatloadWriteLatencyHigh\"}").await {
            alert_state = a["metric"]["alertstate"].as_str().unwrap_or("").to_string();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(resume);
    // The dashboard's "within the SLO" panel joins the bucket at the exported objective.
    let objective = prometheus_value(&format!(
        "chatload_slo_objective{{instance=\"{instance}\",slo=\"write_p99\"}}"
    ))
    .await;
    let within = prometheus_value(&dashboard_query(
        "Writes within the write_p99 SLO",
        instance,
    ))
    .await;
    // The probe latency panel's SLO lines: one per probe SLO, from the same gauge.
    let lines = prometheus_query(&dashboard_target(
        "Probe query latency p99 (recent_50, range_5m, pagination)",
        1,
        instance,
    ))
    .await;
    let range_line = lines
        .iter()
        .find(|l| l["metric"]["slo"] == "range_5m_max")
        .and_then(|l| l["value"][1].as_str()?.parse::<f64>().ok());
    let scrape = daemon.scrape().await;
    drop(daemon);
    let (code, doc, stderr) = report(check);
    eprintln!(
        "TRUTH cassandra stall: Prometheus p99[1m] before {before:.4} s, max during/after {max_p99:.3} s; \
         alert {alert_state:?}; dashboard within-SLO share {within:?}; check write_p99 {} (exit {code:?})",
        row(&doc, "write_p99")
    );
    assert!(
        max_p99 >= 2.0,
        "Prometheus p99 over 1 m reached only {max_p99} s"
    );
    assert!(
        alert_state == "pending" || alert_state == "firing",
        "ChatloadWriteLatencyHigh was {alert_state:?}"
    );
    assert_eq!(objective, Some(0.007));
    assert_eq!(
        range_line,
        Some(0.04),
        "the dashboard's range_5m SLO line: {lines:?}"
    );
    let within = within.expect("the dashboard's within-SLO query returns data");
    assert!(
        within < 0.99,
        "the stall shows in the within-7 ms share: {within}"
    );
    assert!(
        series(
            &scrape,
            "chatload_operation_duration_seconds_bucket",
            &[("backend", "scylla"), ("op", "write"), ("le", "0.007")]
        )
        .is_some(),
        "7 ms is a bucket bound"
    );
    assert_eq!(code, Some(1), "{stderr}");
    let w = row(&doc, "write_p99");
    assert_eq!(w["target"], 0.007);
    assert_eq!(w["pass"], false);
    assert!(w["measured"].as_f64().unwrap() >= 2.0, "{w}");
    assert_eq!(row(&doc, "range_5m_max")["target"], 0.04);
    assert_counts_add_up(&doc);
}

/// Redis frozen for 3.2 s under a `chatload check` whose Redis requests may take 5 s: the Redis
/// write latency and the redis_pubsub probe's publish-to-receive latency both show the stall.
#[test]
fn a_redis_stall_shows_in_write_and_pubsub_latency() {
    let _stack = STACK_LOCK.blocking_write();
    require_stack();
    let rest = format!(
        "[traffic]\nwrite_rate = 200.0\nread_rate = 0.0\n{}",
        probes_only(&["redis_pubsub"], "100ms")
    );
    let check = spawn_check(
        &config_with(CASSANDRA, REDIS, "chatload_it_truth_redis", &rest),
        &["--duration", "14s", "--warmup", "2s"],
        &[
            ("CHATLOAD_REDIS__REQUEST_TIMEOUT", "5s"),
            ("CHATLOAD_PROBES__REDIS_PUBSUB__TIMEOUT", "8s"),
        ],
    );
    std::thread::sleep(Duration::from_secs(7));
    let pid: u32 = std::fs::read_to_string(repo().join(".stack/redis/redis.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(pid, "STOP");
    let resume = ResumeOnDrop(pid);
    std::thread::sleep(Duration::from_millis(3200));
    drop(resume);
    let (_, doc, stderr) = report(check);
    let write_max = operation(&doc, "redis", "write")["latency"]["max"]
        .as_f64()
        .unwrap();
    let pubsub_max = doc["probes"]["redis_pubsub"]["latency"]["max"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!("TRUTH redis stall 3.2 s: write max {write_max:.3} s, pub/sub max {pubsub_max:.3} s");
    assert!(write_max >= 3.0, "Redis write max {write_max} s\n{stderr}");
    assert!(pubsub_max >= 3.0, "pub/sub max {pubsub_max} s\n{doc:#}");
    assert_counts_add_up(&doc);
}

/// chatload itself frozen for 1 s (SIGSTOP of the process) at 1,000 writes/s with an in-flight cap
/// of 100: the ~1,000 operations due meanwhile are either sent late, with their latency counted from
/// the schedule, or dropped and observed at their deadline; none vanish, and no more than the cap
/// are sent in the burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_chatload_sends_late_or_observes_at_the_deadline() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    let cap = 100.0;
    let c = Chatload::start_with_env(
        &config_with(
            CASSANDRA,
            REDIS,
            "chatload_it_truth_pause",
            &format!(
                "[traffic]\nwrite_rate = 1000.0\nread_rate = 0.0\nmax_in_flight = {cap}\n{}",
                probes_only(&[], "1s")
            ),
        ),
        &[
            ("CHATLOAD_REDIS__CACHE", "false"),
            ("CHATLOAD_REDIS__PUBSUB", "false"),
        ],
    )
    .await;
    let write = [("backend", "scylla"), ("op", "write")];
    let ok = |s: &str| {
        must(
            s,
            "chatload_operations_total",
            &[write[0], write[1], ("outcome", "ok")],
        )
    };
    let t = Instant::now();
    while ok(&c.scrape().await) < 3000.0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "traffic did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let read = |s: &str| {
        let counted: f64 = Outcome::ALL
            .iter()
            .map(|o| o.label())
            .map(|o| {
                must(
                    s,
                    "chatload_operations_total",
                    &[write[0], write[1], ("outcome", o)],
                )
            })
            .sum();
        let bucket = |le: &str| {
            must(
                s,
                "chatload_operation_duration_seconds_bucket",
                &[write[0], write[1], ("le", le)],
            )
        };
        Reading {
            due: must(s, "chatload_operations_due_total", &write),
            counted,
            observed: must(s, "chatload_operation_duration_seconds_count", &write),
            dropped: must(
                s,
                "chatload_operations_total",
                &[write[0], write[1], ("outcome", "dropped")],
            ),
            slower_than_half_a_second: must(s, "chatload_operation_duration_seconds_count", &write)
                - bucket("0.5"),
            in_flight: must(s, "chatload_in_flight", &[("backend", "scylla")]),
        }
    };
    let a = read(&c.scrape().await);
    let t_a = Instant::now();
    signal(c.child.id(), "STOP");
    let resume = ResumeOnDrop(c.child.id());
    std::thread::sleep(Duration::from_secs(1));
    drop(resume);
    // Let the burst and the drops' deadlines pass.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let b = read(&c.scrape().await);
    let elapsed = t_a.elapsed().as_secs_f64();
    let due = b.due - a.due;
    let dropped = b.dropped - a.dropped;
    let late = (b.slower_than_half_a_second - a.slower_than_half_a_second) - dropped;
    eprintln!(
        "TRUTH chatload paused 1 s: due {due}, dropped {dropped}, sent late {late}, \
         due - counted - in flight = {}",
        b.due - b.counted - b.in_flight
    );
    assert!(
        due >= 0.97 * 1000.0 * elapsed,
        "the timetable kept running: {due} due in {elapsed:.1} s"
    );
    assert!(
        (b.due - b.counted - b.in_flight).abs() <= 20.0,
        "none vanish: due {} = counted {} + in flight {}",
        b.due,
        b.counted,
        b.in_flight
    );
    assert!(
        (b.observed - b.counted).abs() <= 20.0,
        "one observation per operation: {b:?}"
    );
    assert!(
        dropped >= 600.0,
        "the burst beyond the cap was dropped: {dropped}"
    );
    // Late: the burst sent after the stall (at most the cap) plus the few requests that were in
    // flight at the instant of the SIGSTOP (their replies are read after it).
    assert!(
        (1.0..=cap + 5.0).contains(&late),
        "sent late within the cap: {late}"
    );
}

#[derive(Debug)]
struct Reading {
    due: f64,
    counted: f64,
    observed: f64,
    dropped: f64,
    slower_than_half_a_second: f64,
    in_flight: f64,
}

/// write_p99 = 7 ms and range_5m_max = 40 ms: the status page judges against them and shows them,
/// `/metrics` exports them as objectives and bucket bounds, the generated rules count slow writes
/// at 7 ms and slow range reads at 40 ms, and `promtool test rules` shows the alerts turn exactly
/// there (a share above 5 ms that would fire the default rules does not fire these).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_thresholds_are_judged_alike_everywhere() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let cfg = config_with(
        CASSANDRA,
        REDIS,
        "chatload_it_truth_slo",
        &format!(
            "[traffic]\nwrite_rate = 100.0\nread_rate = 0.0\n{SLO_7_40}{}",
            probes_only(&["range_5m"], "1s")
        ),
    );
    crate::common::fresh_keyspace("chatload_it_truth_slo").await;
    let c = Chatload::start(&cfg).await;
    let range_runs = [("probe", "range_5m"), ("outcome", "ok")];
    let t = Instant::now();
    loop {
        let scrape = c.scrape().await;
        if series(&scrape, "chatload_probe_runs_total", &range_runs).unwrap_or(0.0) >= 2.0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "range_5m did not run twice: {}\n{}",
            scrape
                .lines()
                .filter(|l| l.contains("range_5m") && !l.contains("bucket"))
                .collect::<Vec<_>>()
                .join("\n"),
            c.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let scrape = c.scrape().await;
    assert_eq!(
        must(&scrape, "chatload_slo_objective", &[("slo", "write_p99")]),
        0.007
    );
    assert_eq!(
        must(
            &scrape,
            "chatload_slo_objective",
            &[("slo", "range_5m_max")]
        ),
        0.04
    );
    assert!(
        series(
            &scrape,
            "chatload_probe_duration_seconds_bucket",
            &[("probe", "range_5m"), ("le", "0.04")]
        )
        .is_some()
    );
    let (_, _, body) = crate::common::http(c.addr, "GET", "/api/v1/status").await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    // Judged, not only shown: the status page counts the observations above each threshold.
    for (slo, target, at) in [
        ("write_p99", 0.007, "above 7.00 ms"),
        ("range_5m_max", 0.04, "above 40.00 ms"),
    ] {
        let r = row(&status, slo);
        assert_eq!(r["target"], target, "{r}");
        assert!(r["note"].as_str().is_some_and(|n| n.contains(at)), "{r}");
    }
    drop(c);

    let f = config_file(&cfg);
    let rules = bin()
        .args(["generate", "alerts", "--config", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(rules.status.success());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), &rules.stdout).unwrap();
    std::fs::write(dir.path().join("test.yml"), PROMTOOL_7_40).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "test.yml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool (scripts/stack.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 1,000 writes a minute: 2 % take 6 ms (over 5 ms, under 7 ms) and 0.5 % take 20 ms, so the
/// default rules would page and these must not; then 2 % take 20 ms, and they must. range_5m: 6
/// runs a minute, one at 45 ms (over 40 ms, under 50 ms) fires.
const PROMTOOL_7_40: &str = r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'chatload_operation_duration_seconds_bucket{job="chatload",instance="a",backend="scylla",op="write",le="0.005"}'
        values: '0+975x30'
      - series: 'chatload_operation_duration_seconds_bucket{job="chatload",instance="a",backend="scylla",op="write",le="0.007"}'
        values: '0+995x30'
      - series: 'chatload_operation_duration_seconds_bucket{job="chatload",instance="a",backend="scylla",op="write",le="+Inf"}'
        values: '0+1000x30'
      - series: 'chatload_operation_duration_seconds_count{job="chatload",instance="a",backend="scylla",op="write"}'
        values: '0+1000x30'
      - series: 'chatload_probe_duration_seconds_bucket{job="chatload",instance="a",probe="range_5m",le="0.04"}'
        values: '0+5x30'
      - series: 'chatload_probe_duration_seconds_bucket{job="chatload",instance="a",probe="range_5m",le="+Inf"}'
        values: '0+6x30'
      - series: 'chatload_probe_duration_seconds_count{job="chatload",instance="a",probe="range_5m"}'
        values: '0+6x30'
    alert_rule_test:
      - eval_time: 15m
        alertname: ChatloadWriteLatencyHigh
        exp_alerts: []
      - eval_time: 15m
        alertname: ChatloadRange5mSlow
        exp_alerts:
          - exp_labels: {severity: warning, job: chatload, probe: range_5m}
            exp_annotations:
              summary: "16.67% of five-minute range reads are slower than the SLO"
              description: "Some range_5m probe query took longer than 40ms (the SLO is a maximum) in every 5-minute window for 10 minutes."
              runbook_url: "README.md#chatloadrange5mslow"
  - interval: 1m
    input_series:
      - series: 'chatload_operation_duration_seconds_bucket{job="chatload",instance="a",backend="scylla",op="write",le="0.007"}'
        values: '0+980x30'
      - series: 'chatload_operation_duration_seconds_count{job="chatload",instance="a",backend="scylla",op="write"}'
        values: '0+1000x30'
    alert_rule_test:
      - eval_time: 15m
        alertname: ChatloadWriteLatencyHigh
        exp_alerts:
          - exp_labels: {severity: warning, job: chatload}
            exp_annotations:
              summary: "2% of writes are slower than the SLO"
              description: "More than 1 % of writes (from the scheduled start; failed and dropped ones count as slower than every threshold) took longer than 7ms for 10 minutes: the write p99 is over the SLO."
              runbook_url: "README.md#chatloadwritelatencyhigh"
"#;
