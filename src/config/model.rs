//! The whole configuration ([`Config`]) and its small sections: `[http]`, `[log]`, `[slo]`,
//! `[instance]`.

use super::backends::{REDACTED, RedisConfig, ScyllaConfig, redact_url};
use super::duration::HumanDuration;
use super::e2e::E2eConfig;
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
    /// The end-to-end canary of a chat service (off by default).
    pub e2e: E2eConfig,
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
    /// `[e2e]`: 95th percentile of message delivery latency per recipient, from the post's
    /// scheduled start (lost deliveries count at `e2e.delivery_timeout`).
    pub e2e_delivery_p95: HumanDuration,
    /// `[e2e]`: 99th percentile of delivery latency.
    pub e2e_delivery_p99: HumanDuration,
    /// `[e2e]`: slowest delivery.
    pub e2e_delivery_max: HumanDuration,
    /// `[e2e]`: deliveries received over deliveries expected (0–1).
    pub e2e_delivery_success: f64,
    /// `[e2e]`: duplicate deliveries allowed in the window.
    pub e2e_duplicates_max: f64,
    /// `[e2e]`: out-of-order deliveries allowed in the window (along happens-before).
    pub e2e_out_of_order_max: f64,
    /// `[e2e]`: 95th percentile of WebSocket connect latency (dial, TLS, upgrade).
    pub e2e_ws_connect_p95: HumanDuration,
    /// `[e2e]`: 99th percentile of WebSocket connect latency.
    pub e2e_ws_connect_p99: HumanDuration,
    /// `[e2e]`: WebSocket connects that succeed (0–1).
    pub e2e_ws_connect_success: f64,
    /// `[e2e]`: time-averaged ready subscribers over the target count (0–1).
    pub e2e_subscribers_ready: f64,
    /// `[e2e]`: 95th percentile of API request latency (posts and reads), from the scheduled start.
    pub e2e_api_p95: HumanDuration,
    /// `[e2e]`: 99th percentile of API request latency.
    pub e2e_api_p99: HumanDuration,
    /// `[e2e]`: API requests that succeed (0–1).
    pub e2e_api_success: f64,
    /// `[e2e]`: acknowledged posts per second over the target post rate (0–1).
    pub e2e_api_throughput_ratio: f64,
    /// `[e2e]`: 95th percentile of the time from a post's scheduled start until it is readable
    /// from the database.
    pub e2e_visible_p95: HumanDuration,
    /// `[e2e]`: deepest acceptable ingest queue.
    pub e2e_queue_depth_max: f64,
    /// The probes' SLO thresholds, by key (see each probe's declaration).
    #[serde(flatten)]
    pub probes: BTreeMap<String, toml::Value>,
}

impl SloConfig {
    /// The keys of the traffic's SLOs.
    pub const TRAFFIC_KEYS: [&'static str; 3] = ["write_p99", "write_success", "throughput_ratio"];

    /// The keys of the end-to-end canary's SLOs.
    pub const E2E_KEYS: [&'static str; 16] = [
        "e2e_delivery_p95",
        "e2e_delivery_p99",
        "e2e_delivery_max",
        "e2e_delivery_success",
        "e2e_duplicates_max",
        "e2e_out_of_order_max",
        "e2e_ws_connect_p95",
        "e2e_ws_connect_p99",
        "e2e_ws_connect_success",
        "e2e_subscribers_ready",
        "e2e_api_p95",
        "e2e_api_p99",
        "e2e_api_success",
        "e2e_api_throughput_ratio",
        "e2e_visible_p95",
        "e2e_queue_depth_max",
    ];

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
            e2e_delivery_p95: HumanDuration::from_millis(200),
            e2e_delivery_p99: HumanDuration::from_millis(500),
            e2e_delivery_max: HumanDuration::from_secs(2),
            e2e_delivery_success: 0.99,
            e2e_duplicates_max: 0.0,
            e2e_out_of_order_max: 0.0,
            e2e_ws_connect_p95: HumanDuration::from_secs(1),
            e2e_ws_connect_p99: HumanDuration::from_secs(2),
            e2e_ws_connect_success: 0.99,
            e2e_subscribers_ready: 0.99,
            e2e_api_p95: HumanDuration::from_millis(500),
            e2e_api_p99: HumanDuration::from_secs(1),
            e2e_api_success: 0.99,
            e2e_api_throughput_ratio: 0.95,
            e2e_visible_p95: HumanDuration::from_millis(500),
            e2e_queue_depth_max: 1000.0,
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
        if !c.e2e.auth_value.is_empty() {
            c.e2e.auth_value = REDACTED.into();
        }
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
