//! The whole configuration ([`Config`]) and its small sections: `[http]`, `[log]`, `[slo]`,
//! `[instance]`.

use super::backends::{REDACTED, RedisConfig, ScyllaConfig, redact_url};
use super::duration::HumanDuration;
use super::probes::ProbesConfig;
use super::traffic::TrafficConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The whole configuration of one chatload instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// chatload's own HTTP endpoints (`/metrics`, `/healthz`, `/readyz`, status page).
    pub http: HttpConfig,
    /// Log output.
    pub log: LogConfig,
    /// The ScyllaDB (or Cassandra) cluster that stores messages.
    pub scylla: ScyllaConfig,
    /// The Redis server that caches recent messages and fans them out.
    pub redis: RedisConfig,
    /// The steady synthetic traffic.
    pub traffic: TrafficConfig,
    /// Scheduled probes, one table per probe.
    pub probes: ProbesConfig,
    /// Service level objectives: the targets `chatload check` and the alert rules judge against.
    pub slo: SloConfig,
    /// Position of this instance among replicas that share one total rate.
    pub instance: InstanceConfig,
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port to serve `/metrics`, `/healthz`, `/readyz` and the status page on.
    pub listen: SocketAddr,
    /// A web configuration file in the format of Prometheus' `--web.config.file` (YAML with
    /// `tls_server_config` and `basic_auth_users` holding bcrypt hashes), applied to every endpoint.
    /// Relative paths inside it are relative to the file. Re-read on reload. Empty: plain HTTP, no auth.
    pub web_config_file: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9742)),
            web_config_file: String::new(),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Filter in `RUST_LOG` syntax (`info`, `chatload=debug,scylla=warn`). `RUST_LOG`, when set, wins.
    pub level: String,
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[slo]`: targets. Latency targets should be histogram bucket bounds (see `metrics`) to be exact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SloConfig {
    /// 99th percentile of write latency, measured from the scheduled start.
    pub write_p99: HumanDuration,
    /// Share of writes that succeed (0–1).
    pub write_success: f64,
    /// Achieved write rate over target write rate (0–1).
    pub throughput_ratio: f64,
    /// 99th percentile of the `recent_50` probe's query.
    pub recent_50_p99: HumanDuration,
    /// Slowest acceptable `range_5m` query.
    pub range_5m_max: HumanDuration,
    /// 99th percentile of one page of the `pagination` probe.
    pub pagination_page_p99: HumanDuration,
    /// Largest acceptable difference between observed and expected TTL.
    pub ttl_tolerance: HumanDuration,
    /// Largest acceptable coefficient of variation of rows per stream (0.10 = 10 %).
    pub partition_balance_cv: f64,
    /// 99th percentile of Redis publish-to-receive latency.
    pub redis_pubsub_p99: HumanDuration,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            write_p99: HumanDuration::from_millis(5),
            write_success: 0.999,
            throughput_ratio: 0.95,
            recent_50_p99: HumanDuration::from_millis(10),
            range_5m_max: HumanDuration::from_millis(50),
            pagination_page_p99: HumanDuration::from_millis(10),
            ttl_tolerance: HumanDuration::from_secs(60),
            partition_balance_cv: 0.10,
            redis_pubsub_p99: HumanDuration::from_millis(50),
        }
    }
}

/// `[instance]`: several instances share one total rate and split the stream space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceConfig {
    /// This instance's index, `0 ..= count - 1`. Unset: the trailing ordinal of `$CHATLOAD_POD_NAME`
    /// (a StatefulSet pod `chatload-2` is index 2), else 0.
    pub index: u32,
    /// Number of instances sharing the traffic.
    pub count: u32,
}

impl Default for InstanceConfig {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Config {
    /// A copy safe to print or log: passwords and URL credentials replaced by [`REDACTED`].
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        if !c.scylla.password.is_empty() {
            c.scylla.password = REDACTED.into();
        }
        if !c.redis.password.is_empty() {
            c.redis.password = REDACTED.into();
        }
        c.redis.url = redact_url(&c.redis.url);
        c
    }

    /// A stable 48-bit hash of the effective configuration (secrets redacted, so the hash reveals
    /// nothing about them), for `chatload_config_hash`.
    pub fn hash(&self) -> u64 {
        let text = self.to_redacted_toml();
        let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        h & 0xffff_ffff_ffff // exact in a float gauge
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted()).expect("config always serializes to TOML")
    }
}

/// This instance's share of a total rate (`instance.count` instances share the traffic).
pub fn instance_rate(total: f64, cfg: &Config) -> f64 {
    total / f64::from(cfg.instance.count.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, load_str};

    const DOCUMENTED_DEFAULT: &str = include_str!("../../config/chatload.toml");

    #[test]
    fn the_documented_default_file_is_the_default_config() {
        let c = load_str(
            DOCUMENTED_DEFAULT,
            std::path::Path::new("config/chatload.toml"),
            [],
        )
        .unwrap();
        assert_eq!(c, Config::default());
    }

    /// Every key of the default config is written out (not just defaulted) in config/chatload.toml,
    /// so the file documents them all.
    #[test]
    fn the_documented_default_file_shows_every_key() {
        fn keys(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(inner) if !inner.is_empty() => keys(&path, inner, out),
                    _ => out.push(path),
                }
            }
        }
        let (mut want, mut have) = (Vec::new(), Vec::new());
        keys(
            "",
            &toml::Table::try_from(Config::default()).unwrap(),
            &mut want,
        );
        keys("", &toml::from_str(DOCUMENTED_DEFAULT).unwrap(), &mut have);
        want.sort();
        have.sort();
        assert_eq!(want, have);
        // Optional keys are shown commented out.
        for optional in ["# ttl = ", "# seed = "] {
            assert!(DOCUMENTED_DEFAULT.contains(optional), "{optional}");
        }
    }

    #[test]
    fn redact_url_hides_passwords_only() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://app:s3cret@cache:6379/0"),
            "redis://app:<redacted>@cache:6379/0"
        );
        assert_eq!(
            redact_url("rediss://:s3cret@cache:6379"),
            "rediss://:<redacted>@cache:6379"
        );
        assert_eq!(
            redact_url("redis://s3cret@cache"),
            "redis://:<redacted>@cache"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn redacted_config_never_contains_the_password() {
        let mut c = Config::default();
        c.scylla.password = "hunter2".into();
        c.redis.url = "redis://u:hunter2@h:1".into();
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        c.redis.url = "rediss://h:1".into();
        c.redis.password = "hunter2".into();
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        c.redis.url = "rediss://u:hunter3@h:1".into();
        c.redis.password = Secret::default();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("hunter3"),
            "Debug of the unredacted config shows no secret: {debug}"
        );
        assert!(shown.contains(REDACTED));
    }
}
