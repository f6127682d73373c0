//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The built `chatload` binary.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chatload"));
    // The tests decide every setting themselves.
    for (k, _) in std::env::vars() {
        if k.starts_with("CHATLOAD_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

/// Run the binary with `args`, returning its output.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run chatload")
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Write `text` to a temporary config file.
pub fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

/// The local stack's addresses.
pub const CASSANDRA: &str = "127.0.0.1:9042";
/// Redis of the local stack.
pub const REDIS: &str = "127.0.0.1:6379";
/// `chatload_backend_up` of ScyllaDB.
pub const SCYLLA_UP: &str = r#"chatload_backend_up{backend="scylla"}"#;
/// `chatload_backend_up` of Redis.
pub const REDIS_UP: &str = r#"chatload_backend_up{backend="redis"}"#;

/// Panic with instructions unless Cassandra and Redis of the local stack answer.
pub fn require_stack() {
    for (name, addr) in [("Cassandra", CASSANDRA), ("Redis", REDIS)] {
        let ok = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_ok();
        assert!(
            ok,
            "{name} is not answering on {addr}: run `scripts/stack.sh up` first"
        );
    }
}

/// A config for tests: HTTP on an ephemeral port, the given backends, light traffic.
pub fn test_config(scylla: &str, redis: &str, keyspace: &str) -> String {
    config_with(
        scylla,
        redis,
        keyspace,
        "[traffic]\nwrite_rate = 50.0\nread_rate = 10.0\n",
    )
}

/// Like [`test_config`], with `rest` (more TOML tables, e.g. a `[traffic]` of its own) appended.
/// Redis keys are prefixed with the keyspace name, so tests do not see each other's keys.
pub fn config_with(scylla: &str, redis: &str, keyspace: &str, rest: &str) -> String {
    format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\
         [scylla]\nhosts = [\"{scylla}\"]\nkeyspace = \"{keyspace}\"\nrequest_timeout = \"2s\"\nconnect_timeout = \"2s\"\n\
         [redis]\nurl = \"redis://{redis}\"\nconnect_timeout = \"1s\"\nrequest_timeout = \"1s\"\nkey_prefix = \"{keyspace}\"\n{rest}"
    )
}

/// Every probe's `[probes.<name>]` table.
pub const PROBES: [&str; 9] = [
    "ttl_metadata",
    "ttl_expiry",
    "recent_50",
    "range_5m",
    "pagination",
    "partition_balance",
    "redis_ttl",
    "redis_cache",
    "redis_pubsub",
];

/// `[probes.*]` tables: `enabled` ones every `interval` (no jitter), the others off.
pub fn probes_only(enabled: &[&str], interval: &str) -> String {
    PROBES
        .iter()
        .map(|p| {
            if enabled.contains(p) {
                format!(
                    "[probes.{p}]\nenabled = true\ninterval = \"{interval}\"\njitter = \"0s\"\n"
                )
            } else {
                format!("[probes.{p}]\nenabled = false\n")
            }
        })
        .collect()
}

/// A tiny HTTP/1.1 request with any method: returns status, headers and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

/// The value of a series written as `name{k="v",…}` (labels in any order, as the exposition may
/// sort them), or `None` when no series has exactly that name and label set.
pub fn metric(exposition: &str, series_text: &str) -> Option<f64> {
    let (name, labels) = parse_series(series_text);
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    series(exposition, &name, &pairs)
}

/// `name{k="v",…}` as its name and label pairs.
fn parse_series(text: &str) -> (String, Vec<(String, String)>) {
    let Some((name, rest)) = text.split_once('{') else {
        return (text.to_string(), vec![]);
    };
    let labels = rest
        .trim_end_matches('}')
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').expect("label=\"value\"");
            (k.trim().to_string(), v.trim().trim_matches('"').to_string())
        })
        .collect();
    (name.to_string(), labels)
}

/// Poll `/metrics` until `series` has `value`, or panic after `within`.
pub async fn wait_for_metric(
    addr: SocketAddr,
    series: &str,
    value: f64,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let (_, _, body) = http(addr, "GET", "/metrics").await;
        if metric(&body, series) == Some(value) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{series} did not become {value} within {within:?}; last scrape:\n{}",
            body.lines()
                .filter(|l| l.starts_with("chatload_backend"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A session to the stack's Cassandra, with `keyspace` dropped first (a test may drop its own
/// keyspace; chatload itself never drops anything).
pub async fn fresh_keyspace(keyspace: &str) -> scylla::client::session::Session {
    let cfg = chatload::config::load_str(
        &config_with(CASSANDRA, REDIS, keyspace, ""),
        std::path::Path::new("t"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    let session = chatload::store::scylla::connect(&cfg.scylla, None)
        .await
        .expect("connect to the local Cassandra");
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await
        .unwrap();
    session
}

/// Tests that use the shared stack take this lock: `read` to use it, `write` to disturb it (pause
/// Cassandra) or to measure rates without other tests competing for the two cores.
pub static STACK_LOCK: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A `chatload run` child process with its HTTP address. Killed when dropped.
pub struct Chatload {
    /// The process.
    pub child: std::process::Child,
    /// Its HTTP endpoints.
    pub addr: SocketAddr,
    /// Its config file (rewrite it, then reload).
    pub config: tempfile::NamedTempFile,
    /// Where its stderr (the log) goes.
    pub log: tempfile::NamedTempFile,
}

impl Chatload {
    /// Start `chatload run` with `config` (its `127.0.0.1:0` listen address is replaced by a free port)
    /// and wait until it serves HTTP.
    pub async fn start(config: &str) -> Self {
        Self::start_with_env(config, &[]).await
    }

    /// [`Chatload::start`] with extra environment variables.
    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_on(config, env, closed_port()).await
    }

    /// [`Chatload::start_with_env`] on a given port (the stack's Prometheus scrapes 9742).
    pub async fn start_on(config: &str, env: &[(&str, &str)], port: u16) -> Self {
        let text = config.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
        let f = config_file(&text);
        let log = tempfile::Builder::new().suffix(".log").tempfile().unwrap();
        let child = bin()
            .args(["run", "--config", f.path().to_str().unwrap()])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let start = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "chatload did not listen within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            addr,
            config: f,
            log,
        }
    }

    /// Everything it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Poll `/metrics` until `series` is at least `value`; panics with `what` after `within`.
    pub async fn wait_at_least(&self, series: &str, value: f64, within: Duration, what: &str) {
        let t = Instant::now();
        while self.metric(series).await < value {
            assert!(
                t.elapsed() < within,
                "{what} ({series} < {value} after {within:?})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Status of `GET /healthz`.
    pub async fn healthz(&self) -> u16 {
        http(self.addr, "GET", "/healthz").await.0
    }

    /// One scrape of `/metrics`.
    pub async fn scrape(&self) -> String {
        http(self.addr, "GET", "/metrics").await.2
    }

    /// The value of one series; panics, naming it, when it is absent (a renamed or mislabelled
    /// series must fail the test, never read as 0).
    pub async fn metric(&self, series: &str) -> f64 {
        let scrape = self.scrape().await;
        metric(&scrape, series).unwrap_or_else(|| {
            let name = series.split('{').next().unwrap_or(series);
            panic!(
                "no series {series} in /metrics; series of that name:\n{}",
                scrape
                    .lines()
                    .filter(|l| l.starts_with(name))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
    }

    /// Resident memory of the process, bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kb * 1024
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then wait (at most `within`) for the exit code.
    pub async fn stop(mut self, within: Duration) -> (Option<i32>, Duration) {
        signal(self.child.id(), "TERM");
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s.code(), t.elapsed());
            }
            assert!(
                t.elapsed() < within,
                "no exit within {within:?} of SIGTERM; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Chatload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `SIG<name>` to `pid`.
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// The `chatload_operations_total` series of (backend, op, outcome).
pub fn ops_series(backend: &str, op: &str, outcome: &str) -> String {
    format!("chatload_operations_total{{backend=\"{backend}\",op=\"{op}\",outcome=\"{outcome}\"}}")
}

/// The pid of the stack's Cassandra.
pub fn cassandra_pid() -> u32 {
    let path = repo().join(".stack/cassandra/cassandra.pid");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/stack.sh up", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// Run `scripts/stack.sh` with `args` and panic with its output unless it succeeds.
pub fn stack(args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(repo().join("scripts/stack.sh"))
        .args(args)
        .output()
        .expect("run scripts/stack.sh");
    assert!(
        out.status.success(),
        "scripts/stack.sh {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// Runs `scripts/stack.sh` with these arguments when dropped (ignoring its result), so that a test
/// that takes a service away puts it back even when it fails.
pub struct StackOnDrop(pub &'static [&'static str]);

impl Drop for StackOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/stack.sh"))
            .args(self.0)
            .status();
    }
}

/// A file of the stack's test TLS material (`.stack/tls/`), which `scripts/stack.sh up` creates.
pub fn tls_file(name: &str) -> String {
    let path = repo().join(".stack/tls").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/stack.sh up` first",
        path.display()
    );
    path.to_str().unwrap().to_string()
}

/// Sends SIGCONT to a stopped process when dropped, so a failing test never leaves Cassandra paused.
pub struct ResumeOnDrop(pub u32);

impl Drop for ResumeOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// What [`watch`] saw.
#[derive(Debug, Default)]
pub struct Watched {
    /// `/healthz` polls.
    pub polls: u32,
    /// Polls that did not answer 200.
    pub unhealthy: u32,
    /// Highest RSS seen, bytes.
    pub max_rss: u64,
}

/// For `d`, poll `/healthz` and the RSS every 200 ms.
pub async fn watch(c: &Chatload, d: Duration) -> Watched {
    let mut w = Watched::default();
    let t = Instant::now();
    while t.elapsed() < d {
        w.polls += 1;
        if c.healthz().await != 200 {
            w.unhealthy += 1;
        }
        w.max_rss = w.max_rss.max(c.rss());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w
}

/// Operations per second of `series` over `window`.
pub async fn rate_over(c: &Chatload, series: &str, window: Duration) -> f64 {
    let (v1, t1) = (c.metric(series).await, Instant::now());
    tokio::time::sleep(window).await;
    let (v2, t2) = (c.metric(series).await, Instant::now());
    (v2 - v1) / (t2 - t1).as_secs_f64()
}

/// The failed operations (error, timeout, unavailable, dropped) of `backend`'s `op`.
pub async fn failures(c: &Chatload, backend: &str, op: &str) -> f64 {
    let mut sum = 0.0;
    for o in ["error", "timeout", "overloaded", "unavailable", "dropped"] {
        sum += c.metric(&ops_series(backend, op, o)).await;
    }
    sum
}

/// Seconds until `series` runs at ≥ 99 % of `rate` over a whole second (counted to the end of that
/// second), polling `/healthz` meanwhile; panics after `within`.
pub async fn recovery(c: &Chatload, series: &str, rate: f64, within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        assert_eq!(c.healthz().await, 200, "/healthz during recovery");
        let r = rate_over(c, series, Duration::from_secs(1)).await;
        if r >= 0.99 * rate {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < within,
            "{series} did not recover within {within:?} (last {r:.0}/s)"
        );
    }
}

/// The fault tests' memory bound: RSS at the end within 1.5× of before the fault.
pub fn assert_rss_bounded(before: u64, after: u64) {
    assert!(
        after as f64 <= before as f64 * 1.5,
        "RSS grew from {before} to {after} bytes (more than 1.5×)"
    );
}

/// The value of the series `name{labels}` in an exposition, whatever the order of its labels, or
/// `None` when no series has exactly those labels.
pub fn series(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    exposition.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let (labels_text, value) = if let Some(r) = rest.strip_prefix('{') {
            let (inside, after) = r.split_once('}')?;
            (inside, after)
        } else {
            ("", rest)
        };
        let value = value.strip_prefix(' ')?;
        let mut got: Vec<String> = if labels_text.is_empty() {
            vec![]
        } else {
            labels_text.split(',').map(str::to_string).collect()
        };
        got.sort();
        (got == want).then(|| value.trim().parse().ok())?
    })
}

/// [`series`] that must exist: panics naming the series when it is absent.
pub fn must(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    series(exposition, name, labels)
        .unwrap_or_else(|| panic!("no series {name}{labels:?} in the exposition"))
}

/// The stack's Prometheus.
pub const PROMETHEUS: &str = "127.0.0.1:9090";

/// An instant query to the stack's Prometheus: the `data.result` array.
pub async fn prometheus_query(query: &str) -> Vec<serde_json::Value> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, _, body) = http(
        PROMETHEUS.parse().unwrap(),
        "GET",
        &format!("/api/v1/query?query={encoded}"),
    )
    .await;
    assert_eq!(status, 200, "{query}: {body}");
    let doc: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| {
        // A chunked reply: take the JSON object inside.
        let start = body.find('{').unwrap_or(0);
        let end = body.rfind('}').map_or(body.len(), |e| e + 1);
        serde_json::from_str(&body[start..end]).unwrap_or_else(|_| panic!("{e}: {body}"))
    });
    doc["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The first value of an instant query, if any.
pub async fn prometheus_value(query: &str) -> Option<f64> {
    prometheus_query(query)
        .await
        .first()
        .and_then(|r| r["value"][1].as_str()?.parse().ok())
}
