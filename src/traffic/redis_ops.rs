//! The traffic's Redis side: the sorting of Redis errors into `outcome` labels (the pipeline each
//! message becomes is the chat's: [`crate::chat::cache::RedisSide`]).

use crate::measure::record::Outcome;

/// Sort a Redis error into an `outcome`.
pub fn classify(e: &redis::RedisError) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_io_error()
        || e.is_unrecoverable_error()
    {
        Outcome::Unavailable
    } else {
        Outcome::Error
    }
}
