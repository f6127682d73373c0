//! The WebSocket subscribers: a steady population of long-lived sockets, each on its channel, whose
//! every frame is matched against the ledger.
//!
//! Connects (first ones and reconnects alike) take turns on one timetable of `connect_rate` per
//! second, and a subscriber that failed backs off (jittered, up to 5 s) on top: never a storm.
//! Connect latency covers dial, TLS, the upgrade and the subscribe acknowledgement; a failed
//! attempt is observed at the request timeout. Sockets use 4 KiB buffers and a 64 KiB message cap.

use super::ledger::{Ledger, Population};
use super::net::{Dialer, Endpoint};
use crate::config::template::Template;
use crate::measure::e2e::{E2eMetrics, WsConnect, WsDisconnect};
use crate::store::health::Backoff;
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest backoff after failed connects (jittered, [`Backoff`]).
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What every subscriber shares.
pub struct Shared {
    /// Frames are matched here.
    pub ledger: Arc<Ledger>,
    /// Ready flags and disconnect times.
    pub population: Arc<Population>,
    /// Metrics.
    pub metrics: Arc<E2eMetrics>,
    /// Dials with TLS where needed.
    pub dialer: Dialer,
    /// One WebSocket URL per subscriber (rendered once).
    pub urls: Vec<String>,
    /// One subscribe frame per subscriber (`None`: none configured).
    pub subscribe: Option<Vec<String>>,
    /// `(header, value)` sent on the upgrade.
    pub auth: Option<(String, String)>,
    /// JSON pointer and value of the subscribe acknowledgement (`None`: ready after `settle`).
    pub ready: Option<(String, String)>,
    /// JSON pointer of the correlation id.
    pub id_pointer: String,
    /// Without an acknowledgement, ready this long after opening.
    pub settle: Duration,
    /// Connect timeout.
    pub timeout: Duration,
    /// Ping period.
    pub ping_interval: Duration,
    /// Seconds between two connects.
    pub connect_every: Duration,
    /// The next free connect instant.
    pub next_connect: std::sync::Mutex<Instant>,
    /// Subscribers connecting now.
    pub connecting: AtomicI64,
}

impl Shared {
    /// Render each subscriber's URL and subscribe frame.
    pub fn render(
        url: &Template,
        subscribe: Option<&Template>,
        channels: &[Uuid],
        count: usize,
        instance: u32,
    ) -> (Vec<String>, Option<Vec<String>>) {
        use crate::config::template::Placeholder as P;
        let value = |s: usize| {
            move |p: P, out: &mut String| match p {
                P::Channel => out.push_str(&channels[s % channels.len()].to_string()),
                P::Subscriber => out.push_str(&s.to_string()),
                P::Instance => out.push_str(&instance.to_string()),
                _ => {}
            }
        };
        let urls = (0..count).map(|s| url.render(value(s))).collect();
        let frames = subscribe.map(|t| (0..count).map(|s| t.render(value(s))).collect());
        (urls, frames)
    }

    /// Wait for this subscriber's turn on the connect timetable.
    async fn turn(&self, cancel: &CancellationToken) -> bool {
        let at = {
            let mut next = self.next_connect.lock().unwrap_or_else(|e| e.into_inner());
            let at = (*next).max(Instant::now());
            *next = at + self.connect_every;
            at
        };
        tokio::select! {
            _ = tokio::time::sleep_until(at) => true,
            _ = cancel.cancelled() => false,
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<super::net::Stream>;

/// Subscriber `s`: connect, listen, reconnect, until cancelled.
pub async fn run(s: usize, shared: Arc<Shared>, cancel: CancellationToken) {
    // After a failed connect, on top of the connect timetable: from 100–200 ms, doubling.
    let mut backoff = Backoff::new(Duration::from_millis(200), MAX_BACKOFF);
    loop {
        if !shared.turn(&cancel).await {
            return;
        }
        shared.connecting.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let attempt = tokio::time::timeout(shared.timeout, connect(s, &shared))
            .await
            .unwrap_or(Err(WsConnect::Timeout));
        shared.connecting.fetch_sub(1, Ordering::Relaxed);
        let outcome = attempt.as_ref().err().copied().unwrap_or(WsConnect::Ok);
        shared
            .metrics
            .ws_connected(outcome, started.elapsed(), shared.timeout);
        let Ok(socket) = attempt else {
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => continue,
                _ = cancel.cancelled() => return,
            }
        };
        backoff.reset();
        shared.ledger.reconnected(s);
        shared.population.set_ready(s);
        let reason = listen(s, socket, &shared, &cancel).await;
        shared
            .population
            .set_disconnected(s, std::time::Instant::now());
        match reason {
            Some(r) => shared.metrics.ws_disconnected(r),
            None => return,
        }
    }
}

/// Dial, upgrade, subscribe and wait for the acknowledgement (or `settle`).
async fn connect(s: usize, shared: &Shared) -> Result<Socket, WsConnect> {
    let url = &shared.urls[s];
    let endpoint = Endpoint::of(url).map_err(|_| WsConnect::Error)?;
    let stream = shared.dialer.dial(&endpoint).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            WsConnect::Refused
        } else {
            WsConnect::Error
        }
    })?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|_| WsConnect::Error)?;
    if let Some((k, v)) = &shared.auth
        && let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        )
    {
        request.headers_mut().insert(k, v);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .map_err(|e| match e {
                WsError::Http(_) => WsConnect::Rejected,
                _ => WsConnect::Error,
            })?;
    if let Some(frames) = &shared.subscribe
        && socket.send(Message::text(frames[s].clone())).await.is_err()
    {
        return Err(WsConnect::Error);
    }
    match &shared.ready {
        None => {
            tokio::time::sleep(shared.settle).await;
            Ok(socket)
        }
        Some((pointer, value)) => loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str())
                        && v.pointer(pointer).and_then(|x| x.as_str()) == Some(value.as_str())
                    {
                        return Ok(socket);
                    }
                }
                Some(Ok(_)) => {}
                _ => return Err(WsConnect::Error),
            }
        },
    }
}

/// Read frames until the socket ends (its reason) or the canary stops (`None`).
async fn listen(
    s: usize,
    mut socket: Socket,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Option<WsDisconnect> {
    let mut ping =
        tokio::time::interval_at(Instant::now() + shared.ping_interval, shared.ping_interval);
    let mut unanswered: u32 = 0;
    let mut ping_sent: Option<Instant> = None;
    loop {
        tokio::select! {
            frame = socket.next() => {
                let now = std::time::Instant::now();
                match frame {
                    Some(Ok(Message::Text(t))) => receive(s, t.as_bytes(), shared, now),
                    Some(Ok(Message::Binary(b))) => receive(s, &b, shared, now),
                    Some(Ok(Message::Pong(_))) => {
                        unanswered = 0;
                        if let Some(at) = ping_sent.take() {
                            shared.metrics.ws_ping(at.elapsed());
                        }
                    }
                    Some(Ok(Message::Close(_))) => return Some(WsDisconnect::CloseFrame),
                    Some(Ok(_)) => {}
                    Some(Err(WsError::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        return Some(WsDisconnect::Reset);
                    }
                    Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => {
                        return Some(WsDisconnect::Eof);
                    }
                    Some(Err(WsError::Protocol(
                        tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ))) => return Some(WsDisconnect::Eof),
                    Some(Err(_)) => return Some(WsDisconnect::Protocol),
                }
            }
            _ = ping.tick() => {
                if unanswered >= 2 {
                    return Some(WsDisconnect::PingTimeout);
                }
                unanswered += 1;
                ping_sent = Some(Instant::now());
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return Some(WsDisconnect::Reset);
                }
            }
            _ = cancel.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_millis(200), socket.close(None)).await;
                return None;
            }
        }
    }
}

fn receive(s: usize, frame: &[u8], shared: &Shared, now: std::time::Instant) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(frame) else {
        shared.ledger.unparseable();
        return;
    };
    // A frame without the pointer is another kind of event (an acknowledgement, presence): not a
    // message.
    if let Some(id) = v.pointer(&shared.id_pointer) {
        match id.as_str().and_then(|t| Uuid::parse_str(t).ok()) {
            Some(id) => shared.ledger.arrived(id, s, now),
            None => shared.ledger.unparseable(),
        }
    }
}
