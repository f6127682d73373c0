//! The chat in Redis: each stream's recent-message cache and its fan-out channel.
//!
//! Names (with the default `redis.key_prefix = "chatload"`):
//! - cache: `chatload:stream:<stream_id>:recent`, a list, newest first (LPUSH), trimmed to
//!   `redis.cache_length` entries (LTRIM), expiring `redis.cache_ttl` after the last push (PEXPIRE);
//! - channel: `chatload:stream:<stream_id>`, one PUBLISH per message.
//!
//! Entries and published payloads are the same JSON document per message (see [`CachedMessage`]).
//! All commands of one write go in one pipeline (one round trip); a failure here never touches the
//! ScyllaDB side.

use super::workload::Message;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The cache list of a stream.
pub fn cache_key(prefix: &str, stream: &Uuid) -> String {
    format!("{prefix}:stream:{stream}:recent")
}

/// The pub/sub channel of a stream.
pub fn channel(prefix: &str, stream: &Uuid) -> String {
    format!("{prefix}:stream:{stream}")
}

/// A message as the cache stores it and the channel carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedMessage<'a> {
    /// `message_id`.
    pub message_id: Uuid,
    /// `stream_id`.
    pub stream_id: Uuid,
    /// `timestamp`, milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// `sender_id`.
    pub sender_id: Uuid,
    /// `sender_display_name`.
    #[serde(borrow)]
    pub sender_display_name: std::borrow::Cow<'a, str>,
    /// `message_type`.
    #[serde(borrow)]
    pub message_type: std::borrow::Cow<'a, str>,
    /// `moderation_status`.
    #[serde(borrow)]
    pub moderation_status: std::borrow::Cow<'a, str>,
    /// `message_text`.
    #[serde(borrow)]
    pub text: std::borrow::Cow<'a, str>,
}

/// The JSON payload of `m`.
pub fn payload(m: &Message) -> String {
    let c = CachedMessage {
        message_id: m.message_id,
        stream_id: m.stream_id,
        timestamp: m.timestamp_ms,
        sender_id: m.sender.id,
        sender_display_name: m.sender.display_name.as_str().into(),
        message_type: m.message_type.as_str().into(),
        moderation_status: m.moderation_status.into(),
        text: m.text.as_str().into(),
    };
    serde_json::to_string(&c).expect("a message always serializes")
}

/// What the Redis side of the traffic does.
#[derive(Debug, Clone)]
pub struct RedisSide {
    /// Push to the cache.
    pub cache: bool,
    /// Publish to the channel.
    pub pubsub: bool,
    /// Cache length.
    pub cache_length: u32,
    /// Cache expiry, milliseconds.
    pub cache_ttl_ms: u64,
    /// Key prefix.
    pub key_prefix: String,
}

impl RedisSide {
    /// What `[redis]` asks of the traffic.
    pub fn of(cfg: &crate::config::RedisConfig) -> Self {
        Self {
            cache: cfg.cache,
            pubsub: cfg.pubsub,
            cache_length: cfg.cache_length,
            cache_ttl_ms: u64::try_from(cfg.cache_ttl.get().as_millis()).unwrap_or(u64::MAX),
            key_prefix: cfg.key_prefix.clone(),
        }
    }

    /// Whether there is anything to do at all.
    pub fn enabled(&self) -> bool {
        self.cache || self.pubsub
    }

    /// The pipeline for `messages` (all of one stream).
    pub fn pipeline(&self, messages: &[Message]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        self.append(&mut pipe, messages);
        pipe
    }

    /// Add the commands of `messages` (all of one stream) to `pipe`.
    pub fn append(&self, pipe: &mut redis::Pipeline, messages: &[Message]) {
        let Some(first) = messages.first() else {
            return;
        };
        let payloads: Vec<String> = messages.iter().map(payload).collect();
        if self.cache {
            let key = cache_key(&self.key_prefix, &first.stream_id);
            pipe.cmd("LPUSH").arg(&key).arg(&payloads).ignore();
            pipe.cmd("LTRIM")
                .arg(&key)
                .arg(0)
                .arg(i64::from(self.cache_length) - 1)
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(self.cache_ttl_ms)
                .ignore();
        }
        if self.pubsub {
            let ch = channel(&self.key_prefix, &first.stream_id);
            for p in &payloads {
                pipe.cmd("PUBLISH").arg(&ch).arg(p).ignore();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::workload::Workload;
    use crate::config::{InstanceConfig, TrafficConfig};

    fn side() -> RedisSide {
        RedisSide {
            cache: true,
            pubsub: true,
            cache_length: 50,
            cache_ttl_ms: 3_600_000,
            key_prefix: "chatload".into(),
        }
    }

    #[test]
    fn payload_round_trips() {
        let mut w = Workload::new(&TrafficConfig::default(), &InstanceConfig::default(), 1);
        let m = w.messages(1, 1_700_000_000_000).remove(0);
        let p = payload(&m);
        let back: CachedMessage<'_> = serde_json::from_str(&p).unwrap();
        assert_eq!(back.message_id, m.message_id);
        assert_eq!(back.stream_id, m.stream_id);
        assert_eq!(back.timestamp, 1_700_000_000_000);
        assert_eq!(back.text, m.text);
    }

    #[test]
    fn pipeline_pushes_trims_expires_and_publishes() {
        let mut w = Workload::new(&TrafficConfig::default(), &InstanceConfig::default(), 1);
        let msgs = w.messages(3, 1);
        let packed =
            String::from_utf8_lossy(&side().pipeline(&msgs).get_packed_pipeline()).to_string();
        let key = cache_key("chatload", &msgs[0].stream_id);
        assert!(packed.contains("LPUSH") && packed.contains(&key));
        assert!(packed.contains("LTRIM") && packed.contains("\r\n49\r\n"));
        assert!(packed.contains("PEXPIRE") && packed.contains("3600000"));
        assert_eq!(packed.matches("PUBLISH").count(), 3);
        let mut only_cache = side();
        only_cache.pubsub = false;
        let packed =
            String::from_utf8_lossy(&only_cache.pipeline(&msgs).get_packed_pipeline()).to_string();
        assert_eq!(packed.matches("PUBLISH").count(), 0);
    }

    #[test]
    fn names_are_documented_ones() {
        let s = Uuid::nil();
        assert_eq!(
            cache_key("chatload", &s),
            "chatload:stream:00000000-0000-0000-0000-000000000000:recent"
        );
        assert_eq!(
            channel("p", &s),
            "p:stream:00000000-0000-0000-0000-000000000000"
        );
    }
}
