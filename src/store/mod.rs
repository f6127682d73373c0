//! The store: connections to the two backends, the health loops that keep `chatload_backend_up`
//! true to reality, and the chat table in the database ([`schema`]).
//!
//! Neither backend has to be reachable for chatload to start: the ScyllaDB session is (re)built in the
//! background with backoff and published through a watch channel, and the Redis connection manager
//! connects lazily. A backend that is down is a metric and a log line, never a reason to exit.

pub mod health;
pub mod redis;
pub mod schema;
pub mod scylla;

pub use self::health::{Backoff, monitor};
pub use self::redis::RedisBackend;
pub use self::scylla::ScyllaBackend;
