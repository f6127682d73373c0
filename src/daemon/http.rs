//! chatload's own HTTP endpoints, served with hyper 1.
//!
//! - `/metrics`: every metric in the Prometheus text format;
//! - `/healthz`: 200 while the process is alive and the scheduler's heartbeat is fresh (liveness);
//! - `/readyz`: 200 once the config is loaded and the scheduler runs (readiness). Backends being down
//!   does *not* make chatload unready: that is what `chatload_backend_up` says, and restarting the
//!   sidecar would not bring a database back;
//! - `/`: a small human status page.
//!
//! Anything else is 404, a known path with another method than GET or HEAD is 405. Connections get a
//! header-read timeout (and a TLS handshake timeout) and a header size limit, and their number is
//! capped, so a slow or hostile client cannot pin the daemon. On shutdown the listener closes and open
//! requests are allowed to finish.
//!
//! With `http.web_config_file` (see [`crate::web`]) every endpoint is served over TLS and/or needs
//! basic auth: 401 with `WWW-Authenticate` otherwise. The file is re-read on reload; new connections
//! and requests use the new settings.

use crate::measure::health::Health;
use crate::measure::metrics::{CONTENT_TYPE, Metrics};
use crate::web::{Auth, WebCell};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ALLOW, AUTHORIZATION, CONTENT_TYPE as CONTENT_TYPE_HEADER, HeaderValue, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 256;
/// A client must send its request headers within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted (hyper answers 431 beyond it).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long open requests may take to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// `/healthz` fails when the scheduler has not beaten for this long.
pub const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(10);

/// What the handlers need.
pub struct HttpState {
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Liveness and readiness.
    pub health: Arc<Health>,
    /// The status page's data.
    pub status: Arc<crate::daemon::status::StatusBoard>,
    /// Reloads the configuration (`POST /-/reload`).
    pub reloader: Arc<crate::daemon::reload::Reloader>,
    /// TLS and basic auth in effect.
    pub web: Arc<WebCell>,
}

/// An HTTP/1.1 server connection builder with keep-alive, a [`HEADER_READ_TIMEOUT`] and at most
/// [`MAX_HEADER_BYTES`] of headers (also what the reference chat service serves with).
pub fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
}

/// The next connection of `listener` with its slot of `slots` (held while it is served), or
/// `None` once `shutdown` is cancelled. A failed accept (EMFILE and friends) is logged and retried
/// after 100 ms instead of spinning. Also what the reference chat service accepts with.
pub async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return None,
            p = slots.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => return Some((permit, stream, peer)),
            Err(e) => {
                warn!(error = %e, "failed to accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Accept connections on `listener` until `shutdown`, then let open requests finish
/// (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let builder = http1_builder();
    loop {
        let Some((permit, stream, peer)) = next_connection(&listener, &slots, &shutdown).await
        else {
            break;
        };
        let tls = state.web.current().tls().cloned();
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move {
                let guard = state.web.current();
                let header = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
                if guard.authorize(header).await == Auth::Denied {
                    return Ok::<_, Infallible>(unauthorized());
                }
                Ok(route(&req, &state))
            }
        });
        let Some(acceptor) = tls else {
            let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    debug!(peer = %peer, error = %e, "HTTP connection ended with an error");
                }
                drop(permit);
            });
            continue;
        };
        // The handshake runs in the connection's task, with the same limit as reading headers.
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        debug!(peer = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(peer = %peer, "TLS handshake timed out");
                        return;
                    }
                };
            let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
            if let Err(e) = conn.await {
                debug!(peer = %peer, error = %e, "HTTPS connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => debug!("HTTP connections closed"),
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => info!("HTTP connections still open after the grace period; closing"),
    }
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"chatload\", charset=\"UTF-8\""),
    );
    r
}

fn route(req: &Request<Incoming>, state: &HttpState) -> Response<Full<Bytes>> {
    if req.uri().path() == "/-/reload" {
        if req.method() != Method::POST {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: POST to reload\n",
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        return match state.reloader.reload() {
            Ok(applied) if applied.need_restart.is_empty() => text(StatusCode::OK, "reloaded\n"),
            Ok(applied) => text(
                StatusCode::OK,
                format!(
                    "reloaded; these keys changed but need a restart (running values kept): {}\n",
                    applied.need_restart.join(", ")
                ),
            ),
            Err(e) => text(
                StatusCode::BAD_REQUEST,
                format!("rejected; the running configuration stays\n{e}\n"),
            ),
        };
    }
    let handler: fn(&HttpState) -> Response<Full<Bytes>> = match req.uri().path() {
        "/metrics" => metrics,
        "/healthz" => healthz,
        "/readyz" => readyz,
        "/" => index,
        "/api/v1/status" => status_json,
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    handler(state)
}

fn metrics(state: &HttpState) -> Response<Full<Bytes>> {
    response(StatusCode::OK, CONTENT_TYPE, state.metrics.encode())
}

fn healthz(state: &HttpState) -> Response<Full<Bytes>> {
    let (status, body) = liveness(&state.health);
    text(status, body)
}

/// `/healthz`'s answer: 200 while the scheduler's heartbeat is fresh, 503 once it is older than
/// [`HEARTBEAT_MAX_AGE`] (a stuck pacer thread: restart me).
fn liveness(health: &Health) -> (StatusCode, String) {
    let age = health.heartbeat_age();
    if age <= HEARTBEAT_MAX_AGE {
        (StatusCode::OK, "ok\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("scheduler heartbeat is {:.1}s old\n", age.as_secs_f64()),
        )
    }
}

fn readyz(state: &HttpState) -> Response<Full<Bytes>> {
    if state.health.is_ready() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

fn index(state: &HttpState) -> Response<Full<Bytes>> {
    let body = crate::report::status_page::render_html(&state.status.status());
    response(StatusCode::OK, "text/html; charset=utf-8", body)
}

fn status_json(state: &HttpState) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(&state.status.status()).expect("status serializes");
    response(StatusCode::OK, "application/json", body)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    response(status, "text/plain; charset=utf-8", body)
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A scheduler that stopped beating 20 s ago fails `/healthz`; one that beats passes.
    #[test]
    fn a_stale_heartbeat_fails_liveness() {
        let started_long_ago = Instant::now()
            .checked_sub(Duration::from_secs(20))
            .expect("the clock is past 20 s");
        let h = Health::since(started_long_ago);
        h.set_ready(true);
        let (status, body) = liveness(&h);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.starts_with("scheduler heartbeat is 20."), "{body}");
        h.beat();
        assert_eq!(liveness(&h).0, StatusCode::OK);
    }

    #[test]
    fn heartbeat_age_tracks_beats() {
        let h = Health::default();
        h.beat();
        assert!(h.heartbeat_age() < Duration::from_secs(1));
        assert!(!h.is_ready());
        h.set_ready(true);
        assert!(h.is_ready());
    }
}
