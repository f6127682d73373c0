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

/// A config for tests: HTTP on an ephemeral port, the given backends, fast probes off.
pub fn test_config(scylla: &str, redis: &str, keyspace: &str) -> String {
    format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\
         [scylla]\nhosts = [\"{scylla}\"]\nkeyspace = \"{keyspace}\"\nrequest_timeout = \"2s\"\nconnect_timeout = \"2s\"\n\
         [redis]\nurl = \"redis://{redis}\"\nconnect_timeout = \"1s\"\nrequest_timeout = \"1s\"\n"
    )
}

/// A tiny HTTP/1.1 GET (or other method): returns status, headers and body.
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

/// The value of a metric line (exact series text, e.g. `chatload_backend_up{backend="redis"}`).
pub fn metric(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
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
