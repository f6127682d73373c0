//! The whole configuration ([`Config`]) and its small sections: `[http]`, `[log]`, `[slo]`,
//! `[instance]`.

use super::backends::{REDACTED, RedisConfig, ScyllaConfig, redact_url};
use super::duration::HumanDuration;
use super::probes::ProbesConfig;
use super::spec::{SloSpec, SloValue};
use super::traffic::TrafficConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
/// The traffic's three are here; each probe declares its own (`recent_50_p99`, …) with its default,
/// and the loader checks them against the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SloConfig {
    /// 99th percentile of write latency, measured from the scheduled start.
    pub write_p99: HumanDuration,
    /// Share of writes that succeed (0–1).
    pub write_success: f64,
    /// Achieved write rate over target write rate (0–1).
    pub throughput_ratio: f64,
    /// The probes' SLO thresholds, by key (see each probe's declaration).
    #[serde(flatten)]
    pub probes: BTreeMap<String, toml::Value>,
}

impl SloConfig {
    /// The keys of the traffic's SLOs.
    pub const TRAFFIC_KEYS: [&'static str; 3] = ["write_p99", "write_success", "throughput_ratio"];

    /// The threshold set for the probe SLO `spec` (its default when `[slo]` does not set it).
    pub fn threshold(&self, spec: &SloSpec) -> SloValue {
        self.probes
            .get(spec.key)
            .and_then(|v| spec.default.parse(v).ok())
            .unwrap_or(spec.default)
    }
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            write_p99: HumanDuration::from_millis(5),
            write_success: 0.999,
            throughput_ratio: 0.95,
            probes: BTreeMap::new(),
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
    use crate::config::Secret;

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
