//! The gateway role: WebSocket clients subscribed to chat channels, fed from one Redis pub/sub
//! connection (`PSUBSCRIBE {prefix}:ch:*`).
//!
//! `GET /ws?channel={uuid}&user=…` upgrades to a WebSocket; with `channel` the socket is
//! subscribed at once. A client subscribes (also) with `{"op":"subscribe","channel":"<uuid>"}`;
//! each subscription is acknowledged with `{"op":"subscribed","channel":"<uuid>"}`, a frame the
//! gateway does not understand is answered with `{"op":"error","error":"…"}`. Each published
//! message is forwarded unchanged (the delivery payload, one text frame) to every socket of its
//! channel through the socket's bounded queue ([`QUEUE`]); a socket whose queue is full is closed
//! with 1008 and counted. The faults of [`crate::faults`] are applied per (message, socket) here.

use crate::faults::{Fate, FaultSettings};
use crate::metrics::Metrics;
use crate::server::{Reply, json_error};
use crate::wire::{channel_of, channel_pattern};
use crate::{LogLimiter, Shared};
use bytes::Bytes;
use chatload::store::health::Backoff;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

/// Frames a socket may have waiting before it counts as too slow.
pub const QUEUE: usize = 1024;
/// Frames written per flush.
const WRITE_BATCH: usize = 64;
/// How long a control frame (ack, close) may take to go out.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a socket closed as too slow has to take its close frame (it is behind the frames the
/// kernel still buffers for it).
const SLOW_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// One socket as the fan-out sees it.
struct Link {
    id: u64,
    tx: mpsc::Sender<Utf8Bytes>,
    /// Messages routed to this socket so far (the `hold_every` counter).
    received: AtomicU64,
    /// Set once, when the socket is found too slow.
    slow: AtomicBool,
    kicked: CancellationToken,
}

impl Link {
    /// Queue one frame; a full queue kicks the socket. True if queued.
    fn offer(&self, frame: Utf8Bytes, m: &Metrics) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.slow.swap(true, Ordering::Relaxed) {
                    m.ws_slow_closed.inc();
                    self.kicked.cancel();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Channel → subscribed sockets.
#[derive(Default)]
pub struct Registry {
    channels: Mutex<HashMap<Uuid, Vec<Arc<Link>>>>,
    next_id: AtomicU64,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Arc<Link>>>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn subscribe(&self, channel: Uuid, link: &Arc<Link>) {
        let mut map = self.lock();
        let links = map.entry(channel).or_default();
        if !links.iter().any(|l| l.id == link.id) {
            links.push(link.clone());
        }
    }

    fn unsubscribe(&self, channel: Uuid, id: u64) {
        let mut map = self.lock();
        if let Some(links) = map.get_mut(&channel) {
            links.retain(|l| l.id != id);
            if links.is_empty() {
                map.remove(&channel);
            }
        }
    }

    /// Hand `frame` to every socket of `channel`, applying `faults` per socket.
    fn dispatch(
        &self,
        channel: Uuid,
        frame: &Utf8Bytes,
        faults: &FaultSettings,
        rng: &mut SmallRng,
        shared: &Arc<Shared>,
    ) {
        let map = self.lock();
        let Some(links) = map.get(&channel) else {
            return;
        };
        let metrics = &shared.metrics;
        for link in links.iter().filter(|l| !l.slow.load(Ordering::Relaxed)) {
            let nth = if faults.fanout_enabled {
                link.received.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                0
            };
            let r = if faults.draws() { rng.random() } else { 0.0 };
            match faults.fate(nth, r) {
                Fate::FanoutOff => metrics.injected.fanout_off.inc(),
                Fate::Drop => metrics.injected.drop.inc(),
                Fate::Deliver { copies, hold: None } => {
                    if link.offer(frame.clone(), metrics) && copies == 2 {
                        deliver_copy(link, frame, metrics);
                    }
                }
                Fate::Deliver {
                    copies,
                    hold: Some(delay),
                } => {
                    let (link, frame, shared) = (link.clone(), frame.clone(), shared.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let metrics = &shared.metrics;
                        if link.offer(frame.clone(), metrics) {
                            metrics.injected.hold.inc();
                            if copies == 2 {
                                deliver_copy(&link, &frame, metrics);
                            }
                        }
                    });
                }
            }
        }
    }
}

/// The extra copy of a duplicate, counted once queued.
fn deliver_copy(link: &Link, frame: &Utf8Bytes, m: &Metrics) {
    if link.offer(frame.clone(), m) {
        m.injected.duplicate.inc();
    }
}

/// `GET /ws`: answer 101 and run the session once hyper hands the connection over.
pub fn upgrade(mut req: Request<Incoming>, shared: &Arc<Shared>) -> Reply {
    if req.method() != Method::GET {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "GET to upgrade");
    }
    let wants_ws = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).filter(|_| wants_ws) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key)",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let channel = match query_channel(req.uri().query()) {
        Ok(c) => c,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_shared = shared.clone();
    shared.tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let cfg = WebSocketConfig::default()
                    .read_buffer_size(4096)
                    .write_buffer_size(4096)
                    .max_message_size(Some(64 << 10))
                    .max_frame_size(Some(64 << 10));
                let io = TokioIo::new(upgraded);
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(cfg)).await;
                session(ws, channel, task_shared).await;
            }
            Err(e) => debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header"),
    );
    r
}

/// `channel` of the query string, if present.
fn query_channel(query: Option<&str>) -> Result<Option<Uuid>, String> {
    let raw = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|p| p.strip_prefix("channel="));
    raw.map(|c| Uuid::try_parse(c).map_err(|_| format!("invalid channel {c:?}")))
        .transpose()
}

/// What a client frame asks: the channel of a `subscribe`.
fn client_op(text: &str) -> Result<Uuid, String> {
    #[derive(serde::Deserialize)]
    struct Op {
        op: String,
        channel: Option<String>,
    }
    let op: Op = serde_json::from_str(text).map_err(|e| format!("invalid frame: {e}"))?;
    if op.op != "subscribe" {
        return Err(format!("unknown op {:?}", op.op));
    }
    let channel = op.channel.ok_or("subscribe needs a channel")?;
    Uuid::try_parse(&channel).map_err(|_| format!("invalid channel {channel:?}"))
}

/// A frame of the gateway's own (`op` first, like the deliveries).
#[derive(serde::Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Control<'a> {
    Subscribed { channel: Uuid },
    Error { error: &'a str },
}

fn subscribed_frame(channel: Uuid) -> String {
    serde_json::to_string(&Control::Subscribed { channel }).expect("serializes")
}

fn error_frame(error: &str) -> String {
    serde_json::to_string(&Control::Error { error }).expect("serializes")
}

/// Send one control frame (an ack, an error) with [`CONTROL_TIMEOUT`]; false if the socket is gone.
async fn send_control(ws: &mut Socket, text: String) -> bool {
    matches!(
        tokio::time::timeout(CONTROL_TIMEOUT, ws.send(Message::text(text))).await,
        Ok(Ok(()))
    )
}

/// One WebSocket client, from the upgrade to the close.
async fn session(mut ws: Socket, first: Option<Uuid>, shared: Arc<Shared>) {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let link = Arc::new(Link {
        id: shared.gateway.next_id.fetch_add(1, Ordering::Relaxed),
        tx,
        received: AtomicU64::new(0),
        slow: AtomicBool::new(false),
        kicked: CancellationToken::new(),
    });
    let m = &shared.metrics;
    m.ws_connects.inc();
    m.ws_connections.inc();
    let mut channels: Vec<Uuid> = vec![];
    let mut subscribe = |channel: Uuid| {
        shared.gateway.subscribe(channel, &link);
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    };
    let mut open = match first {
        Some(channel) => {
            subscribe(channel);
            send_control(&mut ws, subscribed_frame(channel)).await
        }
        None => true,
    };
    let mut close = None;
    while open {
        // (Not biased: a socket that always has frames to send still gets its reads, and pings.)
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                close = Some((CloseCode::Away, "server shutting down"));
                break;
            }
            _ = link.kicked.cancelled() => {
                close = Some((CloseCode::Policy, "too slow: send queue full"));
                break;
            }
            Some(frame) = rx.recv() => {
                let write = async {
                    let mut n = 1;
                    ws.feed(Message::Text(frame)).await?;
                    while n < WRITE_BATCH
                        && let Ok(f) = rx.try_recv()
                    {
                        ws.feed(Message::Text(f)).await?;
                        n += 1;
                    }
                    ws.flush().await.map(|()| n)
                };
                tokio::select! {
                    written = write => match written {
                        Ok(n) => m.ws_deliveries.inc_by(n as u64),
                        Err(_) => open = false,
                    },
                    _ = link.kicked.cancelled() => {
                        close = Some((CloseCode::Policy, "too slow: send queue full"));
                        break;
                    }
                    _ = shared.shutdown.cancelled() => {
                        close = Some((CloseCode::Away, "server shutting down"));
                        break;
                    }
                }
            }
            read = ws.next() => match read {
                Some(Ok(Message::Text(t))) => {
                    let reply = match client_op(&t) {
                        Ok(channel) => {
                            subscribe(channel);
                            subscribed_frame(channel)
                        }
                        Err(e) => error_frame(&e),
                    };
                    open = send_control(&mut ws, reply).await;
                }
                // tungstenite queued the pong (or the close reply) while reading: send it now.
                Some(Ok(Message::Ping(_) | Message::Close(_))) => {
                    let flushed = tokio::time::timeout(CONTROL_TIMEOUT, ws.flush()).await;
                    open = matches!(flushed, Ok(Ok(())));
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => open = false,
            },
        }
    }
    for channel in channels {
        shared.gateway.unsubscribe(channel, link.id);
    }
    m.ws_connections.dec();
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let wait = if code == CloseCode::Policy {
            SLOW_CLOSE_TIMEOUT
        } else {
            CONTROL_TIMEOUT
        };
        let _ = tokio::time::timeout(wait, async {
            ws.close(Some(frame)).await?;
            while ws.next().await.is_some_and(|r| r.is_ok()) {}
            Ok::<_, tokio_tungstenite::tungstenite::Error>(())
        })
        .await;
    }
}

static SUBSCRIBE_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// Keep one `PSUBSCRIBE {prefix}:ch:*` connection open (reconnecting with backoff) and fan each
/// message out to the subscribed sockets.
pub async fn pubsub_loop(shared: Arc<Shared>) {
    let pattern = channel_pattern(&shared.opts.prefix);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    loop {
        let subscribed = tokio::time::timeout(Duration::from_secs(5), async {
            let mut pubsub = shared.redis_client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        })
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        });
        match subscribed {
            Ok(mut messages) => {
                backoff.reset();
                shared.health.pubsub_up.store(true, Ordering::Relaxed);
                shared.health.changed.notify_one();
                info!(%pattern, "subscribed to the channels");
                loop {
                    tokio::select! {
                        _ = shared.shutdown.cancelled() => return,
                        msg = messages.next() => match msg {
                            Some(msg) => fan_out(&msg, &mut rng, &shared),
                            None => break,
                        },
                    }
                }
                shared.health.pubsub_up.store(false, Ordering::Relaxed);
                shared.health.changed.notify_one();
                shared.metrics.pubsub_reconnects.inc();
                warn!("the Redis pub/sub connection broke; reconnecting");
            }
            Err(error) => {
                if let Some(suppressed) = SUBSCRIBE_FAILED.allow() {
                    warn!(%error, suppressed, "failed to PSUBSCRIBE; retrying");
                }
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

fn fan_out(msg: &redis::Msg, rng: &mut SmallRng, shared: &Arc<Shared>) {
    let Some(channel) = channel_of(&shared.opts.prefix, msg.get_channel_name()) else {
        return;
    };
    let Ok(frame) = Utf8Bytes::try_from(Bytes::copy_from_slice(msg.get_payload_bytes())) else {
        debug!(%channel, "ignoring a payload that is not UTF-8");
        return;
    };
    let faults = shared.faults.get();
    shared
        .gateway
        .dispatch(channel, &frame, &faults, rng, shared);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_and_queries_are_parsed() {
        let id = Uuid::new_v4();
        assert_eq!(
            client_op(&format!(r#"{{"op":"subscribe","channel":"{id}"}}"#)),
            Ok(id)
        );
        assert!(client_op(r#"{"op":"subscribe"}"#).is_err());
        assert!(client_op(r#"{"op":"leave","channel":"x"}"#).is_err());
        assert!(client_op("not json").is_err());
        assert_eq!(
            query_channel(Some(&format!("user=u&channel={id}"))),
            Ok(Some(id))
        );
        assert_eq!(query_channel(Some("user=u")), Ok(None));
        assert_eq!(query_channel(None), Ok(None));
        assert!(query_channel(Some("channel=nope")).is_err());
        assert_eq!(
            subscribed_frame(Uuid::nil()),
            r#"{"op":"subscribed","channel":"00000000-0000-0000-0000-000000000000"}"#
        );
        assert_eq!(error_frame("x"), r#"{"op":"error","error":"x"}"#);
    }

    #[test]
    fn a_full_queue_kicks_the_socket_once() {
        let m = Metrics::new();
        let (tx, _rx) = mpsc::channel(1);
        let link = Link {
            id: 1,
            tx,
            received: AtomicU64::new(0),
            slow: AtomicBool::new(false),
            kicked: CancellationToken::new(),
        };
        assert!(link.offer(Utf8Bytes::from_static("a"), &m));
        assert!(!link.offer(Utf8Bytes::from_static("b"), &m));
        assert!(!link.offer(Utf8Bytes::from_static("c"), &m));
        assert!(link.kicked.is_cancelled());
        assert_eq!(m.ws_slow_closed.get(), 1);
    }
}
