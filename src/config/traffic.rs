//! `[traffic]`: the synthetic chat traffic's rates, streams, message mix and write mode.

use super::duration::HumanDuration;
use serde::{Deserialize, Serialize};

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
    /// Requests in flight at most per backend (split evenly over the traffic threads); an operation
    /// that would exceed it is dropped and counted.
    pub max_in_flight: u32,
    /// Shortest time between two wake-ups of the pacer. "0s": it wakes for every due operation
    /// (each starts on time). Longer: each wake-up starts every operation due since the last one,
    /// so fewer wake-ups cost less CPU, and operations start up to this late. That lateness is
    /// measured (latency counts from the scheduled start; see chatload_schedule_lag_seconds), never
    /// hidden. At most 10ms.
    pub wake_interval: HumanDuration,
    /// Traffic threads (shards), each with its own share of the timetable (operation k goes to
    /// shard k mod threads), its own runtime, ScyllaDB session and Redis connection, and
    /// `max_in_flight / threads` of the in-flight slots. Unset: one per 25,000 database
    /// operations per second this instance starts, at most the number of cores.
    pub threads: Option<u32>,
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
            wake_interval: HumanDuration::from_secs(0),
            threads: None,
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
