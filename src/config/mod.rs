//! Configuration: one TOML file, environment overrides, and validation.
//!
//! Loading happens in two stages (see [`load`]):
//! 1. the file is parsed into a TOML tree, `CHATLOAD_<SECTION>__<KEY>` environment variables are merged
//!    into it, and every key is deserialized into the structs below (`deny_unknown_fields` everywhere);
//! 2. [`Config::validate`] checks what types cannot (rates > 0, a CQL identifier for the keyspace, …).
//!
//! Both stages report *every* problem at once, each with its key path, so a user fixes a config in one go.
//! The doc comment on each field is the documentation of that key; `config/chatload.toml` repeats them
//! and a test keeps that file equal to [`Config::default`].

mod duration;
mod load;
mod validate;

pub use duration::HumanDuration;
pub use load::{ConfigError, FieldError, load, load_str};

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

/// `[scylla]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`. The driver discovers the rest of the cluster from them.
    pub hosts: Vec<String>,
    /// chatload's own keyspace. chatload never writes outside it; system keyspaces are refused.
    pub keyspace: String,
    /// Consistency level of traffic and probes: `one`, `local_one`, `quorum`, `local_quorum`, `all`, …
    pub consistency: Consistency,
    /// Client-side timeout of one request; a request that takes longer counts as `outcome="timeout"`.
    pub request_timeout: HumanDuration,
    /// Timeout for opening a connection to a node.
    pub connect_timeout: HumanDuration,
    /// Datacenter whose nodes are preferred for requests; empty means no preference.
    pub local_datacenter: String,
    /// Username for `PasswordAuthenticator`; empty means no authentication.
    pub username: String,
    /// Password (secret: never printed). Prefer `password_file` or `CHATLOAD_SCYLLA__PASSWORD`.
    pub password: Secret,
    /// File whose first line is the password (a mounted Kubernetes Secret, for example).
    pub password_file: String,
    /// TLS to the nodes (client encryption).
    pub tls: ScyllaTlsConfig,
    /// How `chatload schema apply` replicates the keyspace it creates.
    pub replication: ReplicationConfig,
    /// `default_time_to_live` of the `chat_messages` table that `schema apply` creates (the spec: 30 days).
    pub default_ttl: HumanDuration,
    /// Create the keyspace and table when chatload connects and they are missing (`CREATE … IF NOT
    /// EXISTS`, as `chatload schema apply` does; never alters or drops). Off: they must exist already.
    pub create_schema: bool,
    /// Write into a keyspace that exists but was not created by chatload (it has no `chatload_owner`
    /// table). Off by default, so that a typo in `keyspace` never writes into someone else's data.
    pub allow_existing_keyspace: bool,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        Self {
            hosts: vec!["127.0.0.1:9042".into()],
            keyspace: "chatload".into(),
            consistency: Consistency::LocalQuorum,
            request_timeout: HumanDuration::from_millis(2000),
            connect_timeout: HumanDuration::from_secs(5),
            local_datacenter: String::new(),
            username: String::new(),
            password: Secret::default(),
            password_file: String::new(),
            tls: ScyllaTlsConfig::default(),
            replication: ReplicationConfig::default(),
            default_ttl: HumanDuration::from_secs(2_592_000),
            create_schema: true,
            allow_existing_keyspace: false,
        }
    }
}

/// `[scylla.tls]`: client encryption to the nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaTlsConfig {
    /// Connect to the nodes over TLS.
    pub enabled: bool,
    /// PEM file of the CA(s) that sign the nodes' certificates; empty: the system's CA bundle.
    pub ca_file: String,
    /// PEM client certificate, for nodes that require client authentication; empty: none.
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
    /// Check that a node's certificate names the address chatload connects to (the driver connects
    /// to node IPs, so the certificates need IP SANs). Off: the chain is still verified, names are not.
    pub verify_hostname: bool,
}

impl Default for ScyllaTlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            verify_hostname: true,
        }
    }
}

/// `[redis.tls]`: files for `rediss://` URLs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedisTlsConfig {
    /// PEM file of the CA(s) that sign the server's certificate; empty: the system's CA bundle.
    pub ca_file: String,
    /// PEM client certificate, for servers with `tls-auth-clients yes`; empty: none.
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
}

/// CQL consistency levels that make sense for chat traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Consistency {
    Any,
    One,
    Two,
    Three,
    Quorum,
    All,
    LocalQuorum,
    EachQuorum,
    LocalOne,
}

/// `[scylla.replication]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// `simple` (SimpleStrategy, for a local single node) or `network_topology` (real clusters).
    pub strategy: ReplicationStrategy,
    /// Replicas with `strategy = "simple"`.
    pub replication_factor: u32,
    /// Replicas per datacenter with `strategy = "network_topology"`, e.g. `{ dc1 = 3, dc2 = 3 }`.
    pub datacenters: std::collections::BTreeMap<String, u32>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            strategy: ReplicationStrategy::Simple,
            replication_factor: 1,
            datacenters: Default::default(),
        }
    }
}

/// Keyspace replication strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationStrategy {
    /// `SimpleStrategy`: one replication factor for the whole cluster.
    Simple,
    /// `NetworkTopologyStrategy`: a replication factor per datacenter.
    NetworkTopology,
}

/// `[redis]` (its `Debug` redacts the URL's password)
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS. A password in the URL is
    /// redacted whenever it is shown; prefer `password_file` or `CHATLOAD_REDIS__PASSWORD`.
    pub url: String,
    /// ACL user (Redis 6+); empty: the URL's user, else `default`.
    pub username: String,
    /// Password (secret: never printed); empty: the URL's password, if any.
    pub password: Secret,
    /// File whose first line is the password.
    pub password_file: String,
    /// TLS files for `rediss://` URLs.
    pub tls: RedisTlsConfig,
    /// Push each message to its stream's recent-message cache (a list capped at `cache_length`).
    pub cache: bool,
    /// PUBLISH each message to its stream's channel for real-time fan-out.
    pub pubsub: bool,
    /// How many recent messages a stream's cache keeps.
    pub cache_length: u32,
    /// Expiry of a stream's cache list, renewed on every push.
    pub cache_ttl: HumanDuration,
    /// Prefix of every key and channel chatload uses (`<prefix>:stream:<id>:recent`, `<prefix>:stream:<id>`).
    pub key_prefix: String,
    /// Client-side timeout of one Redis command.
    pub request_timeout: HumanDuration,
    /// Timeout for opening the connection.
    pub connect_timeout: HumanDuration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            username: String::new(),
            password: Secret::default(),
            password_file: String::new(),
            tls: RedisTlsConfig::default(),
            cache: true,
            pubsub: true,
            cache_length: 50,
            cache_ttl: HumanDuration::from_secs(3600),
            key_prefix: "chatload".into(),
            request_timeout: HumanDuration::from_millis(1000),
            connect_timeout: HumanDuration::from_secs(5),
        }
    }
}

/// `[traffic]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrafficConfig {
    /// Messages written per second, summed over all instances (`instance.count` splits it).
    pub write_rate: f64,
    /// "Newest 50 of a stream" reads per second, summed over all instances; 0 turns reads off.
    pub read_rate: f64,
    /// Number of chat streams (partitions) traffic is spread over.
    pub streams: u32,
    /// How a message picks its stream: `uniform` or `zipf` (a few hot streams, a long tail).
    pub stream_distribution: StreamDistribution,
    /// Skew of `zipf`: 0 is uniform, 1 is classic Zipf, larger is hotter.
    pub zipf_exponent: f64,
    /// Size of the sender pool.
    pub senders: u32,
    /// Requests in flight at most per backend; an operation that would exceed it is dropped and counted.
    pub max_in_flight: u32,
    /// `single` (one INSERT per message) or `batch` (UNLOGGED BATCH of `batch_size` messages of one stream).
    pub write_mode: WriteMode,
    /// Messages per batch with `write_mode = "batch"`.
    pub batch_size: u32,
    /// Share of each `message_type`; normalized, so only the proportions matter.
    pub message_mix: MessageMix,
    /// Mean length of a text message, characters (log-normal; code messages are 3× longer).
    pub text_length_mean: u32,
    /// Longest message text, characters.
    pub text_length_max: u32,
    /// Per-message TTL (`USING TTL`); unset keeps the table's `default_time_to_live`.
    pub ttl: Option<HumanDuration>,
    /// Seed of the workload's random choices, for reproducible runs; unset draws one at start.
    pub seed: Option<u64>,
    /// On shutdown, how long in-flight requests may take to finish before they are abandoned.
    pub drain_timeout: HumanDuration,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        Self {
            write_rate: 1000.0,
            read_rate: 200.0,
            streams: 100,
            stream_distribution: StreamDistribution::Uniform,
            zipf_exponent: 1.0,
            senders: 1000,
            max_in_flight: 512,
            write_mode: WriteMode::Single,
            batch_size: 10,
            message_mix: MessageMix::default(),
            text_length_mean: 80,
            text_length_max: 1000,
            ttl: None,
            seed: None,
            drain_timeout: HumanDuration::from_secs(5),
        }
    }
}

/// `[traffic.message_mix]`: how often each `message_type` occurs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessageMix {
    /// Plain text.
    pub text: f64,
    /// Text starting with an `@mention` of another sender.
    pub mention: f64,
    /// A code snippet (longer text).
    pub code: f64,
    /// A file share (name and size).
    pub file: f64,
}

impl Default for MessageMix {
    fn default() -> Self {
        Self {
            text: 0.6,
            mention: 0.2,
            code: 0.1,
            file: 0.1,
        }
    }
}

/// How traffic picks a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamDistribution {
    /// Every stream equally likely.
    Uniform,
    /// Zipf-skewed: stream `k` has weight `1 / k^zipf_exponent`.
    Zipf,
}

/// How messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// One INSERT per message.
    Single,
    /// UNLOGGED BATCH of `batch_size` messages of one stream.
    Batch,
}

/// `[probes.<name>]`: when and how long one probe runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Run this probe at all.
    pub enabled: bool,
    /// Time between the starts of two runs (plus up to `jitter` at random).
    pub interval: HumanDuration,
    /// A run that takes longer fails with `outcome="timeout"`.
    pub timeout: HumanDuration,
    /// Random delay added to each interval so that probes of many instances do not line up.
    pub jitter: HumanDuration,
}

impl ProbeConfig {
    fn every(interval_secs: u64, timeout_ms: u64) -> Self {
        Self {
            enabled: true,
            interval: HumanDuration::from_secs(interval_secs),
            timeout: HumanDuration::from_millis(timeout_ms),
            jitter: HumanDuration::from_millis(250),
        }
    }
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self::every(10, 2000)
    }
}

/// `[probes.ttl_expiry]`: the common probe keys plus the short TTL it writes and the grace it allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TtlExpiryProbeConfig {
    /// Run this probe at all.
    pub enabled: bool,
    /// Time between the starts of two runs (plus up to `jitter` at random).
    pub interval: HumanDuration,
    /// A run that takes longer fails with `outcome="timeout"`; must exceed `ttl + grace`.
    pub timeout: HumanDuration,
    /// Random delay added to each interval.
    pub jitter: HumanDuration,
    /// TTL of the row the probe writes (whole seconds).
    pub ttl: HumanDuration,
    /// How long after its TTL a row may still be readable before that is a violation.
    pub grace: HumanDuration,
}

impl Default for TtlExpiryProbeConfig {
    fn default() -> Self {
        let s = ProbeConfig::every(30, 20_000);
        Self {
            enabled: s.enabled,
            interval: s.interval,
            timeout: s.timeout,
            jitter: s.jitter,
            ttl: HumanDuration::from_secs(2),
            grace: HumanDuration::from_secs(3),
        }
    }
}

/// `[probes.partition_balance]`: the common probe keys plus its window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionBalanceProbeConfig {
    /// Run this probe at all.
    pub enabled: bool,
    /// Time between the starts of two runs (plus up to `jitter` at random).
    pub interval: HumanDuration,
    /// A run that takes longer fails with `outcome="timeout"`.
    pub timeout: HumanDuration,
    /// Random delay added to each interval.
    pub jitter: HumanDuration,
    /// Rows written by the traffic in this window are counted per stream.
    pub window: HumanDuration,
    /// Below this many rows per stream on average the CV is reported but not judged: random noise
    /// alone gives a CV of about 1/sqrt(mean), 10 % at 100 rows, 5 % at 400.
    pub min_rows_per_stream: u32,
}

impl Default for PartitionBalanceProbeConfig {
    fn default() -> Self {
        let s = ProbeConfig::every(60, 10_000);
        Self {
            enabled: s.enabled,
            interval: s.interval,
            timeout: s.timeout,
            jitter: s.jitter,
            window: HumanDuration::from_secs(60),
            min_rows_per_stream: 400,
        }
    }
}

/// `[probes.redis_pubsub]`: the common probe keys plus how many messages a run publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisPubsubProbeConfig {
    /// Run this probe at all.
    pub enabled: bool,
    /// Time between the starts of two runs (plus up to `jitter` at random).
    pub interval: HumanDuration,
    /// A run that takes longer fails with `outcome="timeout"`; unreceived messages are losses.
    pub timeout: HumanDuration,
    /// Random delay added to each interval.
    pub jitter: HumanDuration,
    /// Messages published per run.
    pub messages: u32,
}

impl Default for RedisPubsubProbeConfig {
    fn default() -> Self {
        let s = ProbeConfig::every(5, 2000);
        Self {
            enabled: s.enabled,
            interval: s.interval,
            timeout: s.timeout,
            jitter: s.jitter,
            messages: 20,
        }
    }
}

/// `schedule()` for the probe tables that add keys of their own to the common four (serde cannot
/// flatten a [`ProbeConfig`] into them and still reject unknown keys).
macro_rules! impl_schedule {
    ($($table:ty),+) => {$(
        impl $table {
            /// The keys every probe has.
            pub fn schedule(&self) -> ProbeConfig {
                ProbeConfig {
                    enabled: self.enabled,
                    interval: self.interval,
                    timeout: self.timeout,
                    jitter: self.jitter,
                }
            }
        }
    )+};
}

impl_schedule!(
    TtlExpiryProbeConfig,
    PartitionBalanceProbeConfig,
    RedisPubsubProbeConfig
);

/// `[probes]`: one table per probe; a table left out keeps its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbesConfig {
    /// `TTL(message_text)` and `WRITETIME` of a fresh row against the table's default TTL.
    pub ttl_metadata: ProbeConfig,
    /// A row written `USING TTL` of a few seconds must be gone after TTL plus grace.
    pub ttl_expiry: TtlExpiryProbeConfig,
    /// Newest 50 messages of a stream: DESC order, contains the probe's own last write.
    pub recent_50: ProbeConfig,
    /// Messages of the last five minutes of a stream: the count matches what the probe wrote.
    pub range_5m: ProbeConfig,
    /// 10 pages of 50 through the driver's paging state: no gap, no duplicate.
    pub pagination: ProbeConfig,
    /// Rows per stream written by the traffic over the window: coefficient of variation.
    pub partition_balance: PartitionBalanceProbeConfig,
    /// SET with EX, PTTL, and a short-TTL key that must really expire.
    pub redis_ttl: ProbeConfig,
    /// The newest entry of a stream's Redis cache equals the newest row in ScyllaDB.
    pub redis_cache: ProbeConfig,
    /// Publish-to-receive latency and losses of Redis pub/sub.
    pub redis_pubsub: RedisPubsubProbeConfig,
}

impl ProbesConfig {
    /// Every probe's name (its `[probes.<name>]` table and its `probe` label) with its settings.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, ProbeConfig)> {
        [
            ("ttl_metadata", self.ttl_metadata.clone()),
            ("ttl_expiry", self.ttl_expiry.schedule()),
            ("recent_50", self.recent_50.clone()),
            ("range_5m", self.range_5m.clone()),
            ("pagination", self.pagination.clone()),
            ("partition_balance", self.partition_balance.schedule()),
            ("redis_ttl", self.redis_ttl.clone()),
            ("redis_cache", self.redis_cache.clone()),
            ("redis_pubsub", self.redis_pubsub.schedule()),
        ]
        .into_iter()
    }
}

impl Default for ProbesConfig {
    fn default() -> Self {
        Self {
            ttl_metadata: ProbeConfig::every(30, 2000),
            ttl_expiry: TtlExpiryProbeConfig::default(),
            recent_50: ProbeConfig::every(5, 1000),
            range_5m: ProbeConfig::every(10, 2000),
            pagination: ProbeConfig::every(30, 5000),
            partition_balance: PartitionBalanceProbeConfig::default(),
            redis_ttl: ProbeConfig::every(15, 5000),
            redis_cache: ProbeConfig::every(10, 2000),
            redis_pubsub: RedisPubsubProbeConfig::default(),
        }
    }
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

/// What replaces a secret whenever configuration is shown.
pub const REDACTED: &str = "<redacted>";

/// A password: (de)serialized as a plain string, so a config file round-trips, but its `Debug` never
/// shows it, so no log line, error or panic message that prints a config can leak it.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it (the driver's login).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str(REDACTED)
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            url,
            username,
            password,
            password_file,
            tls,
            cache,
            pubsub,
            cache_length,
            cache_ttl,
            key_prefix,
            request_timeout,
            connect_timeout,
        } = self;
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(url))
            .field("username", username)
            .field("password", password)
            .field("password_file", password_file)
            .field("tls", tls)
            .field("cache", cache)
            .field("pubsub", pubsub)
            .field("cache_length", cache_length)
            .field("cache_ttl", cache_ttl)
            .field("key_prefix", key_prefix)
            .field("request_timeout", request_timeout)
            .field("connect_timeout", connect_timeout)
            .finish()
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

impl ScyllaConfig {
    /// The password from `password` or `password_file` (its first line), if any.
    pub fn password(&self) -> std::io::Result<Option<String>> {
        secret(self.password.expose(), &self.password_file)
    }
}

impl RedisConfig {
    /// The password from `password` or `password_file` (its first line), if any (the URL's
    /// password is not included).
    pub fn password(&self) -> std::io::Result<Option<String>> {
        secret(self.password.expose(), &self.password_file)
    }
}

/// A secret given inline or as the first line of a file.
fn secret(inline: &str, file: &str) -> std::io::Result<Option<String>> {
    if !inline.is_empty() {
        return Ok(Some(inline.to_string()));
    }
    if file.is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(file)?;
    Ok(Some(text.lines().next().unwrap_or_default().to_string()))
}

/// Replace the password of `scheme://user:password@host` with [`REDACTED`].
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or_default();
    if !userinfo.contains(':') && user.is_empty() {
        return url.to_string();
    }
    // `redis://:pw@host` and `redis://pw@host` (password only) both hide the secret.
    let shown_user = if userinfo.contains(':') { user } else { "" };
    format!(
        "{}://{}:{}@{}",
        &url[..scheme_end],
        shown_user,
        REDACTED,
        &rest[at + 1..]
    )
}

/// This instance's share of a total rate (`instance.count` instances share the traffic).
pub fn instance_rate(total: f64, cfg: &Config) -> f64 {
    total / f64::from(cfg.instance.count.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

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
