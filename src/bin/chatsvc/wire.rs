//! What goes over Redis and the WebSocket: the delivery payload, and the key and channel names.
//!
//! One JSON document per message, the same bytes in the ingest queue, on the pub/sub channel and in
//! the WebSocket text frame: `{"op":"message","client_msg_id","channel_id","sender_id","text",
//! "timestamp"}` (timestamp: milliseconds since the Unix epoch, the api's receipt time).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The `op` of a delivery.
pub const OP_MESSAGE: &str = "message";

/// One message as delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Always `"message"`.
    pub op: String,
    /// The client's id of the message, also its `message_id` in Cassandra.
    pub client_msg_id: Uuid,
    /// The channel (`stream_id`).
    pub channel_id: Uuid,
    /// Who sent it.
    pub sender_id: Uuid,
    /// The text.
    pub text: String,
    /// Receipt time by the api, ms since the Unix epoch.
    pub timestamp: i64,
}

impl Delivery {
    /// The JSON text of the payload.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a delivery always serializes")
    }
}

/// The pub/sub channel of a chat channel: `{prefix}:ch:{channel}`.
pub fn channel_key(prefix: &str, channel: &Uuid) -> String {
    format!("{prefix}:ch:{channel}")
}

/// The pattern the gateway subscribes to: `{prefix}:ch:*`.
pub fn channel_pattern(prefix: &str) -> String {
    format!("{prefix}:ch:*")
}

/// The chat channel of a pub/sub channel name, if it is one of `prefix`'s.
pub fn channel_of(prefix: &str, name: &str) -> Option<Uuid> {
    let id = name.strip_prefix(prefix)?.strip_prefix(":ch:")?;
    Uuid::try_parse(id).ok()
}

/// The ingest queue (a list, or a stream with `--queue stream`): `{prefix}:ingest`.
pub fn ingest_key(prefix: &str) -> String {
    format!("{prefix}:ingest")
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_the_documented_shape_and_order() {
        let d = Delivery {
            op: OP_MESSAGE.into(),
            client_msg_id: Uuid::nil(),
            channel_id: Uuid::max(),
            sender_id: Uuid::nil(),
            text: "hi \"you\"".into(),
            timestamp: 1_700_000_000_123,
        };
        let json = d.to_json();
        assert!(
            json.starts_with(r#"{"op":"message","client_msg_id":"00000000-"#),
            "{json}"
        );
        assert!(
            json.ends_with(r#","text":"hi \"you\"","timestamp":1700000000123}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Delivery>(&json).unwrap(), d);
    }

    #[test]
    fn channel_names_round_trip() {
        let id = Uuid::max();
        assert_eq!(channel_of("p", &channel_key("p", &id)), Some(id));
        assert_eq!(channel_of("q", &channel_key("p", &id)), None);
        assert_eq!(channel_of("p", "p:ch:nope"), None);
        assert_eq!(channel_pattern("p"), "p:ch:*");
        assert_eq!(ingest_key("p"), "p:ingest");
    }
}
