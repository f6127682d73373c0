//! The api role: `POST` and `GET /api/v1/channels/{channel}/messages`.
//!
//! POST takes `{"client_msg_id","sender_id","text"}` (≤ 4 KiB; other keys ignored) and stamps it
//! with its receipt time (ms). Direct mode: INSERT, then PUBLISH the delivery payload, then 201;
//! a failed INSERT is a 503, a failed PUBLISH is counted and still a 201 (the database is the
//! truth). Buffered mode: LPUSH (or XADD) the payload to the ingest queue, then 202. Both answer
//! `{"message_id","channel_id","timestamp"}`. GET `?limit=1..=200` (default 50) reads the newest
//! messages from Cassandra.

use crate::metrics::Route;
use crate::server::{Reply, json, json_error, read_body, text};
use crate::wire::{Delivery, OP_MESSAGE, channel_key, ingest_key, now_ms};
use crate::{Cassandra, Mode, Queue, REDIS_TIMEOUT, Shared};
use chatload::chat::table::{MessageRow, StoredMessage};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tracing::warn;
use uuid::Uuid;

/// The path prefix of the api's routes.
pub const CHANNELS: &str = "/api/v1/channels/";
/// Largest POST body.
const MAX_BODY: usize = 4096;
/// Default and largest `limit` of a read.
const DEFAULT_LIMIT: i32 = 50;
const MAX_LIMIT: i32 = 200;

static PUBLISH_FAILED: crate::LogLimiter = crate::LogLimiter::new(Duration::from_secs(5));

/// A posted message.
#[derive(Debug, Deserialize)]
struct NewMessage {
    client_msg_id: Uuid,
    sender_id: Uuid,
    text: String,
}

/// `rest` is the path after [`CHANNELS`].
pub async fn handle(rest: String, req: Request<Incoming>, shared: &Shared) -> (Route, Reply) {
    let Some(id) = rest.strip_suffix("/messages") else {
        return (Route::Other, text(StatusCode::NOT_FOUND, "not found\n"));
    };
    let route = match *req.method() {
        Method::POST => Route::Post,
        Method::GET => Route::Read,
        _ => {
            let r = json_error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST");
            return (Route::Other, r);
        }
    };
    let received = now_ms();
    let stall = shared.faults.get().stall_ms;
    if stall > 0 {
        shared.metrics.injected.stall.inc();
        tokio::time::sleep(Duration::from_millis(stall)).await;
    }
    let Ok(channel) = Uuid::try_parse(id) else {
        return (
            route,
            json_error(StatusCode::BAD_REQUEST, "invalid channel id"),
        );
    };
    let Some(backends) = shared.backends.get() else {
        return (
            route,
            json_error(StatusCode::SERVICE_UNAVAILABLE, "not connected yet"),
        );
    };
    let cassandra = backends
        .cassandra
        .as_ref()
        .expect("the api connects Cassandra");
    let reply = match route {
        Route::Post => match read_body(req, MAX_BODY).await {
            Ok(body) => post(channel, received, &body, cassandra, shared).await,
            Err(reply) => reply,
        },
        _ => read(channel, req.uri().query(), cassandra).await,
    };
    (route, reply)
}

async fn post(
    channel: Uuid,
    received: i64,
    body: &[u8],
    cassandra: &Cassandra,
    shared: &Shared,
) -> Reply {
    let m: NewMessage = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("invalid message: {e}")),
    };
    let d = Delivery {
        op: OP_MESSAGE.into(),
        client_msg_id: m.client_msg_id,
        channel_id: channel,
        sender_id: m.sender_id,
        text: m.text,
        timestamp: received,
    };
    let redis = &shared.backends.get().expect("connected").redis;
    let prefix = &shared.opts.prefix;
    let status = match shared.opts.mode {
        Mode::Direct => {
            if let Err(e) = insert(cassandra, &d).await {
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("failed to store the message: {e}"),
                );
            }
            let publish = redis::cmd("PUBLISH")
                .arg(channel_key(prefix, &channel))
                .arg(d.to_json())
                .clone();
            if let Err(error) = query::<i64>(redis, &publish).await {
                shared.metrics.publish_failures.inc();
                if let Some(suppressed) = PUBLISH_FAILED.allow() {
                    warn!(%error, suppressed, "PUBLISH failed (the message is stored)");
                }
            }
            StatusCode::CREATED
        }
        Mode::Buffered => {
            let key = ingest_key(prefix);
            let push = match shared.opts.queue {
                Queue::List => redis::cmd("LPUSH").arg(key).arg(d.to_json()).clone(),
                Queue::Stream => redis::cmd("XADD")
                    .arg(key)
                    .arg("*")
                    .arg("m")
                    .arg(d.to_json())
                    .clone(),
            };
            if let Err(e) = query::<redis::Value>(redis, &push).await {
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("failed to queue the message: {e}"),
                );
            }
            StatusCode::ACCEPTED
        }
    };
    json(
        status,
        &Accepted {
            message_id: d.client_msg_id,
            channel_id: channel,
            timestamp: received,
        },
    )
}

/// The answer to a POST (201 or 202).
#[derive(Serialize)]
struct Accepted {
    message_id: Uuid,
    channel_id: Uuid,
    timestamp: i64,
}

/// One message of a read.
#[derive(Serialize)]
struct Listed {
    message_id: Uuid,
    sender_id: Uuid,
    text: String,
    timestamp: i64,
}

async fn read(channel: Uuid, query: Option<&str>, cassandra: &Cassandra) -> Reply {
    let limit = match parse_limit(query) {
        Ok(l) => l,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    let rows = match cassandra
        .session
        .execute_unpaged(&cassandra.newest, (channel, limit))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let e = format!("failed to read the messages: {e}");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, &e);
        }
    };
    let messages: Result<Vec<StoredMessage>, String> = rows
        .into_rows_result()
        .map_err(|e| e.to_string())
        .and_then(|r| {
            r.rows::<StoredMessage>()
                .map_err(|e| e.to_string())?
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())
        });
    let messages = match messages {
        Ok(m) => m,
        Err(e) => {
            let e = format!("failed to decode the messages: {e}");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, &e);
        }
    };
    let messages: Vec<_> = messages
        .into_iter()
        .map(|m| Listed {
            message_id: m.message_id,
            sender_id: m.sender_id,
            text: m.message_text,
            timestamp: m.timestamp.0,
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "messages": messages }))
}

/// `limit` from the query string: 1..=200, 50 when absent.
fn parse_limit(query: Option<&str>) -> Result<i32, String> {
    let raw = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .find(|(k, _)| *k == "limit")
        .map(|(_, v)| v);
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| format!("limit must be an integer in 1..={MAX_LIMIT}, got {v:?}")),
    }
}

/// INSERT the row of `d` (shared with the worker).
pub async fn insert(c: &Cassandra, d: &Delivery) -> Result<(), scylla::errors::ExecutionError> {
    let row = MessageRow {
        stream_id: d.channel_id,
        timestamp: CqlTimestamp(d.timestamp),
        message_id: d.client_msg_id,
        sender_id: d.sender_id,
        sender_display_name: "",
        message_text: &d.text,
        moderation_status: "approved",
        message_type: "text",
    };
    c.session.execute_unpaged(&c.insert, row).await.map(drop)
}

/// Run `cmd` on the shared connection with [`REDIS_TIMEOUT`].
pub async fn query<T: redis::FromRedisValue>(
    redis: &redis::aio::ConnectionManager,
    cmd: &redis::Cmd,
) -> Result<T, String> {
    let mut conn = redis.clone();
    match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("timed out after {REDIS_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(parse_limit(None), Ok(50));
        assert_eq!(parse_limit(Some("x=1")), Ok(50));
        assert_eq!(parse_limit(Some("x=1&limit=200")), Ok(200));
        assert_eq!(parse_limit(Some("limit=1")), Ok(1));
        for bad in ["limit=0", "limit=201", "limit=", "limit", "limit=ten"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_message_ignores_extra_keys_and_needs_uuids() {
        let id = Uuid::new_v4();
        let ok = format!(r#"{{"client_msg_id":"{id}","sender_id":"{id}","text":"hi","x":1}}"#);
        assert_eq!(serde_json::from_str::<NewMessage>(&ok).unwrap().text, "hi");
        let bad = format!(r#"{{"client_msg_id":"nope","sender_id":"{id}","text":"hi"}}"#);
        assert!(serde_json::from_str::<NewMessage>(&bad).is_err());
        assert!(serde_json::from_str::<NewMessage>(r#"{"text":"hi"}"#).is_err());
    }
}
