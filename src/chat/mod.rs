//! The chat itself, owned once: what a message, a stream and a sender are and how the synthetic
//! workload makes them ([`workload`], their texts: [`text`]), the `chat_messages` table as CQL and
//! a message as its row ([`table`]), and the Redis key and channel layout of a stream ([`cache`]).
//! Nothing here talks to a server.

pub mod cache;
pub mod table;
pub mod text;
pub mod workload;

/// Wall-clock milliseconds since the Unix epoch (message timestamps, probe rows, chart times).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
