//! The Redis connection: a connection manager that connects lazily and reconnects by itself.

use super::health::HealthCheck;
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
    /// A TLS file or `redis.password_file` could not be read.
    #[error("failed to read {key}: {cause}")]
    File {
        /// The config key naming the file.
        key: &'static str,
        /// What went wrong.
        cause: String,
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

/// A client for `cfg`: the URL plus `username`/`password` (or `password_file`) and, for `rediss://`,
/// the TLS files. Connects nothing yet.
pub fn client(cfg: &RedisConfig) -> Result<redis::Client, RedisError> {
    use redis::IntoConnectionInfo;
    crate::tls::install_crypto_provider(); // the Redis client's TLS uses the process default
    let setup = |cause| RedisError::Setup {
        url: redact_url(&cfg.url),
        cause,
    };
    let mut info = cfg.url.as_str().into_connection_info().map_err(setup)?;
    let mut settings = info.redis_settings().clone();
    if !cfg.username.is_empty() {
        settings = settings.set_username(&cfg.username);
    }
    let password = cfg.password().map_err(|e| RedisError::File {
        key: "redis.password_file",
        cause: e.to_string(),
    })?;
    if let Some(p) = password {
        settings = settings.set_password(p);
    }
    info = info.set_redis_settings(settings);
    if !cfg.url.starts_with("rediss://") {
        return redis::Client::open(info).map_err(setup);
    }
    let read = |key: &'static str, path: &str| -> Result<Option<Vec<u8>>, RedisError> {
        if path.is_empty() {
            return Ok(None);
        }
        std::fs::read(path).map(Some).map_err(|e| RedisError::File {
            key,
            cause: format!("{path:?}: {e}"),
        })
    };
    let client_tls = match (
        read("redis.tls.cert_file", &cfg.tls.cert_file)?,
        read("redis.tls.key_file", &cfg.tls.key_file)?,
    ) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
            client_cert,
            client_key,
        }),
        _ => None,
    };
    let certs = redis::TlsCertificates {
        client_tls,
        root_cert: read("redis.tls.ca_file", &cfg.tls.ca_file)?,
    };
    redis::Client::build_with_tls(info, certs).map_err(setup)
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
        let client = client(cfg)?;
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
