//! `[probes]`: one table per probe, with the keys every probe has and each probe's own.

use super::duration::HumanDuration;
use serde::{Deserialize, Serialize};

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
