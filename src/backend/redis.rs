//! The Redis connection: a connection manager that connects lazily and reconnects by itself.

use super::HealthCheck;
use crate::config::{RedisConfig, redact_url};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// Label value of the `backend` label.
pub const BACKEND: &str = "redis";

/// Errors talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL could not be used.
    #[error("failed to set up a Redis client for {url}: {cause}")]
    Setup {
        /// The URL, password redacted.
        url: String,
        /// The client's error.
        cause: redis::RedisError,
    },
    /// A command failed.
    #[error("failed to run Redis {command}: {cause}")]
    Command {
        /// The command name.
        command: &'static str,
        /// The client's error.
        cause: redis::RedisError,
    },
    /// A command did not answer in time.
    #[error("Redis {command} timed out after {timeout:?}")]
    Timeout {
        /// The command name.
        command: &'static str,
        /// The limit.
        timeout: Duration,
    },
}

/// A lazily connected Redis connection manager plus its health loop.
#[derive(Clone)]
pub struct RedisBackend {
    manager: ConnectionManager,
    request_timeout: Duration,
}

impl RedisBackend {
    /// Set up the client without connecting: chatload starts even when Redis is down.
    pub fn new(cfg: &RedisConfig) -> Result<Self, RedisError> {
        let setup = |cause| RedisError::Setup {
            url: redact_url(&cfg.url),
            cause,
        };
        let client = redis::Client::open(cfg.url.as_str()).map_err(setup)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout.get()))
            .set_response_timeout(Some(cfg.request_timeout.get()))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(setup)?;
        Ok(Self {
            manager,
            request_timeout: cfg.request_timeout.get(),
        })
    }

    /// A handle to the shared multiplexed connection (cheap to clone).
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Run one command with the configured timeout.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        command: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut conn = self.manager.clone();
        match tokio::time::timeout(self.request_timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(r) => r.map_err(|cause| RedisError::Command { command, cause }),
            Err(_) => Err(RedisError::Timeout {
                command,
                timeout: self.request_timeout,
            }),
        }
    }

    /// The server's version from `INFO server` (`redis_version`).
    pub async fn server_version(&self) -> Result<String, RedisError> {
        let info: String = self.query("INFO", redis::cmd("INFO").arg("server")).await?;
        Ok(parse_info_field(&info, "redis_version")
            .unwrap_or_default()
            .to_string())
    }
}

impl HealthCheck for RedisBackend {
    type Error = RedisError;

    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn check(&self) -> Result<(), RedisError> {
        self.query::<String>("PING", &redis::cmd("PING"))
            .await
            .map(drop)
    }

    async fn identify(&self) -> Result<(&'static str, String), RedisError> {
        Ok(("redis", self.server_version().await?))
    }
}

/// The value of `field` in an `INFO` reply (`field:value` lines).
pub fn parse_info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .find(|(k, _)| *k == field)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_parsed() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(parse_info_field(info, "redis_version"), Some("7.0.15"));
        assert_eq!(parse_info_field(info, "redis_mode"), Some("standalone"));
        assert_eq!(parse_info_field(info, "nope"), None);
    }
}
