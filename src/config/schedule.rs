//! The keys every probe has ([`ProbeConfig`]) and one probe's table ([`ProbeTable`]): those keys
//! and the probe's own.

use super::duration::HumanDuration;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// `[probes.<name>]`: when and how long one probe runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Enabled, every `interval_secs` with 250 ms of jitter, `timeout_ms` at most.
    pub const fn every(interval_secs: u64, timeout_ms: u64) -> Self {
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

/// One probe's table: the keys every probe has, then its own.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProbeTable {
    /// `enabled`, `interval`, `timeout`, `jitter`.
    #[serde(flatten)]
    pub schedule: ProbeConfig,
    /// The probe's own keys (checked against its declaration when the config is loaded).
    #[serde(flatten)]
    pub own: Table,
}

impl ProbeTable {
    /// The probe's own keys as its options type `T` (the loader checked that they deserialize;
    /// `T::default()` when they do not, e.g. for a config built in code).
    pub fn options<T: DeserializeOwned + Default>(&self) -> T {
        parse_options(&self.own).unwrap_or_default()
    }
}

/// A probe's own keys as its type `T` (serde's message when they do not deserialize).
pub fn parse_options<T: DeserializeOwned>(own: &Table) -> Result<T, String> {
    Value::Table(own.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}
