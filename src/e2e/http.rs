//! HTTP/1.1 requests to the chat API over keep-alive connections chatload owns.
//!
//! Each op has a pool of at most `connections` connections, one request on each at a time. At a due
//! instant a request takes the most recently used idle connection; else, if the pool has room, it
//! dials one inline (the dial inside its latency, counted in `chatload_e2e_http_connects_total`);
//! else it is `dropped`. It never waits for a connection: a hidden wait for a pooled connection is
//! where a fixed-worker client loses coordinated omission. A connection that is closed, or idle
//! longer than [`IDLE_TIMEOUT`] (below the common 60–75 s server keep-alive), is discarded before
//! use; dialling anew is not a retry, since nothing was sent. There are no retries.

use super::net::{Dialer, Endpoint};
use crate::measure::e2e::E2eMetrics;
use crate::measure::record::Outcome;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A connection idle this long is not reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read.
pub const MAX_BODY: usize = 1 << 20;

type Conn = SendRequest<Full<Bytes>>;

struct State {
    idle: Vec<(Conn, Instant)>,
    open: usize,
}

/// One op's connections.
pub struct Pool {
    op: &'static str,
    cap: usize,
    endpoint: Endpoint,
    authority: String,
    dialer: Dialer,
    metrics: Arc<E2eMetrics>,
    state: Mutex<State>,
}

/// How a request ended without a usable response.
#[derive(Debug)]
pub struct Failure {
    /// The outcome to count.
    pub outcome: Outcome,
    /// When the request was handed to the connection (`None`: never sent).
    pub sent: Option<Instant>,
    /// What went wrong.
    pub error: String,
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its body (at most [`MAX_BODY`]).
    pub body: Bytes,
    /// When the request was handed to the connection.
    pub sent: Instant,
}

impl Reply {
    /// The outcome of this status: 2xx ok; 429 and 503 overloaded; anything else an error.
    pub fn outcome(&self) -> Outcome {
        match self.status.as_u16() {
            200..=299 => Outcome::Ok,
            429 | 503 => Outcome::Overloaded,
            _ => Outcome::Error,
        }
    }
}

enum Checkout {
    Reuse(Conn),
    Dial,
    Full,
}

impl Pool {
    /// A pool of at most `cap` connections to the endpoint of `base_url`.
    pub fn new(
        op: &'static str,
        cap: usize,
        base_url: &str,
        dialer: Dialer,
        metrics: Arc<E2eMetrics>,
    ) -> Result<Self, String> {
        let endpoint = Endpoint::of(base_url)?;
        let uri: hyper::Uri = base_url.parse().map_err(|e| format!("{e}"))?;
        Ok(Self {
            op,
            cap: cap.max(1),
            authority: uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_else(|| endpoint.host.clone()),
            endpoint,
            dialer,
            metrics,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections open (idle or busy).
    pub fn open(&self) -> usize {
        self.lock().open
    }

    fn checkout(&self) -> Checkout {
        let mut s = self.lock();
        while let Some((conn, used)) = s.idle.pop() {
            if conn.is_closed() || !conn.is_ready() || used.elapsed() > IDLE_TIMEOUT {
                s.open -= 1;
                continue;
            }
            return Checkout::Reuse(conn);
        }
        if s.open < self.cap {
            s.open += 1;
            Checkout::Dial
        } else {
            Checkout::Full
        }
    }

    fn checkin(&self, conn: Conn) {
        let mut s = self.lock();
        if conn.is_closed() {
            s.open -= 1;
        } else {
            s.idle.push((conn, Instant::now()));
        }
    }

    fn discard(&self) {
        self.lock().open -= 1;
    }

    /// Send one request (`target`: a full URL of this pool's endpoint), bounded by `timeout` from
    /// now, dial included. `Err` with `Dropped` when no connection is free and the pool is full.
    pub async fn request(
        &self,
        method: Method,
        target: &str,
        body: Option<Bytes>,
        headers: &[(hyper::header::HeaderName, hyper::header::HeaderValue)],
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        let deadline = Instant::now() + timeout;
        let mut conn = match self.checkout() {
            Checkout::Reuse(c) => c,
            Checkout::Full => {
                return Err(Failure {
                    outcome: Outcome::Dropped,
                    sent: None,
                    error: "every connection is busy".into(),
                });
            }
            Checkout::Dial => match tokio::time::timeout_at(deadline, self.dial()).await {
                Ok(Ok(c)) => {
                    self.metrics.http_connect(self.op, "ok");
                    c
                }
                Ok(Err(e)) => {
                    self.discard();
                    self.metrics.http_connect(self.op, "error");
                    self.metrics.http_response(self.op, "none");
                    let outcome = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        Outcome::Unavailable
                    } else {
                        Outcome::Error
                    };
                    return Err(Failure {
                        outcome,
                        sent: None,
                        error: format!("connect to {}: {e}", self.authority),
                    });
                }
                Err(_) => {
                    self.discard();
                    self.metrics.http_connect(self.op, "timeout");
                    self.metrics.http_response(self.op, "none");
                    return Err(Failure {
                        outcome: Outcome::Timeout,
                        sent: None,
                        error: format!("connect to {} timed out", self.authority),
                    });
                }
            },
        };
        let path = target
            .parse::<hyper::Uri>()
            .ok()
            .and_then(|u| u.path_and_query().map(|p| p.as_str().to_string()))
            .unwrap_or_else(|| "/".into());
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .expect("a request of valid parts");
        let sent = Instant::now();
        let exchange = async {
            let resp = conn.send_request(req).await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .map(|c| c.to_bytes());
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok((status, Ok(body)))) => {
                self.metrics
                    .http_response(self.op, code_class(status.as_u16()));
                self.checkin(conn);
                Ok(Reply { status, body, sent })
            }
            Ok(Ok((status, Err(e)))) => {
                self.metrics
                    .http_response(self.op, code_class(status.as_u16()));
                self.discard();
                Err(Failure {
                    outcome: Outcome::Error,
                    sent: Some(sent),
                    error: format!("reading the response body: {e}"),
                })
            }
            Ok(Err(e)) => {
                self.metrics.http_response(self.op, "none");
                self.discard();
                Err(Failure {
                    outcome: Outcome::Error,
                    sent: Some(sent),
                    error: e.to_string(),
                })
            }
            Err(_) => {
                self.metrics.http_response(self.op, "none");
                self.discard();
                Err(Failure {
                    outcome: Outcome::Timeout,
                    sent: Some(sent),
                    error: format!("no response within {timeout:?}"),
                })
            }
        }
    }

    async fn dial(&self) -> std::io::Result<Conn> {
        let stream = self.dialer.dial(&self.endpoint).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// `2xx` for 204, and so on.
pub fn code_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::e2e::E2E_BUCKETS;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pool(addr: std::net::SocketAddr, cap: usize) -> (Pool, Arc<E2eMetrics>) {
        let m = Arc::new(E2eMetrics::register(
            &prometheus::Registry::new(),
            E2E_BUCKETS,
        ));
        let p = Pool::new(
            "api_post",
            cap,
            &format!("http://{addr}"),
            Dialer::new(None),
            m.clone(),
        )
        .unwrap();
        (p, m)
    }

    /// A server that answers every request on a connection with 201 after `delay`, and counts
    /// connections.
    async fn server(
        delay: Duration,
    ) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        let _ = s
                            .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                    }
                });
            }
        });
        (addr, conns)
    }

    #[tokio::test]
    async fn connections_are_reused_and_a_full_pool_drops_instead_of_waiting() {
        let (addr, conns) = server(Duration::from_secs(2)).await;
        let (p, _) = pool(addr, 2);
        let p = Arc::new(p);
        let url = format!("http://{addr}/x");
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (p, url) = (p.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                p.request(Method::GET, &url, None, &[], Duration::from_secs(5))
                    .await
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let third = tasks.pop().unwrap().await.unwrap();
        assert_eq!(third.unwrap_err().outcome, Outcome::Dropped);
        assert!(
            tasks.iter().all(|t| !t.is_finished()),
            "the third request did not wait for a busy connection to come free"
        );
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().status, StatusCode::CREATED);
        }
        let r = p
            .request(Method::GET, &url, None, &[], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(&r.body[..], b"ok");
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2, "reused");
        assert_eq!(p.open(), 2);
    }

    #[tokio::test]
    async fn a_refused_dial_is_unavailable_and_frees_its_slot() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let (p, _) = pool(addr, 1);
        let e = p
            .request(
                Method::GET,
                &format!("http://{addr}/"),
                None,
                &[],
                Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert_eq!((e.outcome, e.sent), (Outcome::Unavailable, None));
        assert_eq!(p.open(), 0);
    }

    #[tokio::test]
    async fn a_slow_reply_times_out_after_being_sent() {
        let (addr, _) = server(Duration::from_secs(3)).await;
        let (p, _) = pool(addr, 1);
        let e = p
            .request(
                Method::GET,
                &format!("http://{addr}/"),
                None,
                &[],
                Duration::from_millis(200),
            )
            .await
            .unwrap_err();
        assert_eq!(e.outcome, Outcome::Timeout);
        assert!(e.sent.is_some());
        assert_eq!(p.open(), 0, "a timed-out connection is not reused");
    }
}
