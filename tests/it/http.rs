//! The HTTP endpoints of an in-process daemon on port 0, with both backends unreachable.

use crate::common::{REDIS_UP, SCYLLA_UP, closed_port, http, metric, test_config};
use chatload::{Daemon, config};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn start_unreachable() -> (Daemon, CancellationToken) {
    let text = test_config(
        &format!("127.0.0.1:{}", closed_port()),
        &format!("127.0.0.1:{}", closed_port()),
        "chatload_it",
    );
    let cfg = config::load_str(
        &text,
        Path::new("test"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    let token = CancellationToken::new();
    let d = Daemon::start(cfg, token.clone())
        .await
        .expect("daemon starts with backends down");
    (d, token)
}

#[tokio::test]
async fn endpoints_answer_with_backends_down() {
    let (d, token) = start_unreachable().await;
    let addr = d.http_addr();

    let (status, head, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(metric(&body, SCYLLA_UP), Some(0.0));
    assert_eq!(metric(&body, REDIS_UP), Some(0.0));
    assert!(body.contains(&format!(
        "chatload_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    for process_metric in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(body.contains(process_metric), "{process_metric} missing");
    }

    assert_eq!(http(addr, "GET", "/healthz").await.0, 200);
    assert_eq!(http(addr, "GET", "/readyz").await.0, 200);
    assert_eq!(http(addr, "GET", "/").await.0, 200);
    assert_eq!(http(addr, "GET", "/nope").await.0, 404);
    assert_eq!(http(addr, "GET", "/metrics/extra").await.0, 404);
    let (status, head, _) = http(addr, "POST", "/metrics").await;
    assert_eq!(status, 405);
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );

    token.cancel();
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), d.wait())
        .await
        .expect("shutdown within 10 s");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test]
async fn metrics_scrape_is_parseable_text_format() {
    let (d, token) = start_unreachable().await;
    let (_, _, body) = http(d.http_addr(), "GET", "/metrics").await;
    // Every non-comment line is `name{labels} value` with a numeric value.
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
        assert!(
            line.starts_with("chatload_") || line.starts_with("process_"),
            "unexpected metric: {line}"
        );
    }
    token.cancel();
    d.wait().await;
}

/// Oversized request heads are refused (431), a client that never finishes its headers is cut off
/// after the header timeout, and a burst of malformed requests leaves the server serving.
#[tokio::test]
async fn hostile_clients_do_not_hurt_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (d, token) = start_unreachable().await;
    let addr = d.http_addr();

    // 64 KiB of headers (the limit is 16 KiB).
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 431"), "{head:?}");

    // Malformed requests of every kind: the server answers 400 or closes, and keeps serving.
    let garbage: [&[u8]; 6] = [
        b"\x00\x01\x02\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /%%%% HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\nabc",
        b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    for g in garbage {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(g).await;
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
        // Answered with a 4xx (the connection may stay open for the next request), or closed:
        // never a 5xx, never left hanging without either. (The chunked GET has a valid head and
        // is answered; its broken body then closes the connection.)
        let answer = String::from_utf8_lossy(&sink);
        assert!(
            answer.starts_with("HTTP/1.1 4")
                || (closed.is_ok() && !answer.starts_with("HTTP/1.1 5")),
            "{:?}: answered {answer:?}, closed: {}",
            String::from_utf8_lossy(g),
            closed.is_ok()
        );
    }
    assert_eq!(http(addr, "GET", "/healthz").await.0, 200);

    // A slow client: connects, sends half a request line, then nothing. Cut off by the header timeout.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metr").await.unwrap();
    let t = Instant::now();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "the slow client was not disconnected within 20 s"
    );
    assert!(
        t.elapsed() >= Duration::from_secs(9),
        "closed too early: {:?}",
        t.elapsed()
    );
    eprintln!("slow client disconnected after {:?}", t.elapsed());
    assert_eq!(http(addr, "GET", "/healthz").await.0, 200);
    token.cancel();
    d.wait().await;
}

/// At most `MAX_CONNECTIONS` connections are served at once: with that many idle clients holding
/// their connections, the next request waits (in the kernel's accept queue), and is answered as soon
/// as one of them goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (d, token) = start_unreachable().await;
    let addr = d.http_addr();
    let mut idle = Vec::new();
    for _ in 0..chatload::daemon::http::MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept all of them (and so take every slot).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut waiting = tokio::net::TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_secs(2), waiting.read_to_end(&mut answer)).await;
    assert!(
        early.is_err() && answer.is_empty(),
        "a connection beyond the cap was served at once: {:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(idle.pop()); // one slot frees
    tokio::time::timeout(Duration::from_secs(5), waiting.read_to_end(&mut answer))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(idle);
    token.cancel();
    d.wait().await;
}
