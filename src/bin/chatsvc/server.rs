//! The HTTP listener every role serves: hyper 1, HTTP/1.1 with keep-alive, a `match` router.
//!
//! Every role: `/healthz` (200 while the process runs), `/readyz` (200 once connected and while
//! the backends the role needs answer), `/metrics`; with `--admin`, `/admin/faults` (loopback
//! peers only). The api adds `/api/v1/channels/{id}/messages`, the gateway `/ws`.
//!
//! A connection with no request in flight for `--keepalive-timeout` is closed (hyper's
//! `header_read_timeout` only bounds reading a head once one has started). At shutdown the
//! listener closes and each connection finishes its request in flight, then closes.

use crate::Shared;
use crate::metrics::{CONTENT_TYPE, Route};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE as CONTENT_TYPE_HEADER, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info};

/// HTTP connections served at once (a WebSocket leaves this count once upgraded).
pub const MAX_CONNECTIONS: usize = 4096;

/// A response with a small in-memory body.
pub type Reply = Response<Full<Bytes>>;

/// When a connection last finished a request, and how many it has in flight.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    /// When the connection becomes idle-expired if nothing happens; `None` while busy.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        Some(self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout)
    }
}

/// Marks a request in flight until dropped (also when hyper drops the handler).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept connections until shutdown; each is served in its own task of `shared.tasks`.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let builder = chatload::daemon::http::http1_builder();
    loop {
        let next = chatload::daemon::http::next_connection(&listener, &slots, &shared.shutdown);
        let Some((permit, stream, peer)) = next.await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        });
        let service = {
            let (shared, activity) = (shared.clone(), activity.clone());
            service_fn(move |req| {
                let shared = shared.clone();
                let in_flight = InFlight::begin(&activity);
                async move {
                    let reply = handle(req, peer, &shared).await;
                    drop(in_flight);
                    Ok::<_, Infallible>(reply)
                }
            })
        };
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (shutdown, idle) = (shared.shutdown.clone(), shared.opts.keepalive_timeout);
        shared.tasks.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut closing = false;
            loop {
                let deadline = activity
                    .deadline(idle)
                    .unwrap_or_else(|| Instant::now() + idle);
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            debug!(%peer, error = %e, "HTTP connection ended with an error");
                        }
                        break;
                    }
                    _ = shutdown.cancelled(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = tokio::time::sleep_until(deadline.into()), if !closing => {
                        if activity.deadline(idle).is_some_and(|d| d <= Instant::now()) {
                            debug!(%peer, "closing an idle HTTP connection");
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(permit);
        });
    }
}

async fn handle(req: Request<Incoming>, peer: SocketAddr, shared: &Arc<Shared>) -> Reply {
    let started = Instant::now();
    let (route, reply) = route(req, peer, shared).await;
    shared.metrics.observe_request(
        route,
        reply.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    reply
}

async fn route(req: Request<Incoming>, peer: SocketAddr, shared: &Arc<Shared>) -> (Route, Reply) {
    let path = req.uri().path();
    if shared.opts.serves_api()
        && let Some(rest) = path.strip_prefix(crate::api::CHANNELS)
    {
        return crate::api::handle(rest.to_string(), req, shared).await;
    }
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let reply = match path {
        "/healthz" if get => text(StatusCode::OK, "ok\n"),
        "/readyz" if get => {
            if shared.ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                let why = shared.not_ready_reason();
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                )
            }
        }
        "/metrics" if get => response(StatusCode::OK, CONTENT_TYPE, shared.metrics.encode()),
        "/ws" if shared.opts.serves_gateway() => crate::gateway::upgrade(req, shared),
        "/admin/faults" if shared.opts.admin => admin_faults(req, peer, shared).await,
        "/healthz" | "/readyz" | "/metrics" => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    (Route::Other, reply)
}

async fn admin_faults(req: Request<Incoming>, peer: SocketAddr, shared: &Shared) -> Reply {
    if !peer.ip().to_canonical().is_loopback() {
        return json_error(StatusCode::FORBIDDEN, "fault settings are loopback-only");
    }
    let update = req.method() == Method::POST;
    let settings = match *req.method() {
        Method::GET => Ok(shared.faults.get()),
        Method::POST => match read_body(req, 4096).await {
            Ok(body) => shared.faults.update(&body),
            Err(reply) => return reply,
        },
        _ => return json_error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST"),
    };
    match settings {
        Ok(s) => {
            if update {
                info!(settings = ?s, "fault settings changed");
            }
            json(StatusCode::OK, &s)
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e),
    }
}

/// The body of `req`, at most `limit` bytes: 413 beyond it, 400 when it cannot be read.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Reply> {
    let too_large = || json_error(StatusCode::PAYLOAD_TOO_LARGE, "body over 4 KiB");
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(json_error(
            StatusCode::BAD_REQUEST,
            &format!("failed to read the body: {e}"),
        )),
    }
}

/// A JSON reply.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    let body = serde_json::to_vec(value).expect("replies serialize");
    response(status, "application/json", body)
}

/// `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Reply {
    json(status, &serde_json::json!({ "error": message }))
}

/// A plain-text reply.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    response(status, "text/plain; charset=utf-8", body)
}

fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(content_type));
    r
}
