//! A probe's declaration ([`ProbeSpec`]): its name, its table's defaults and rules, its checks, its
//! SLOs and their alerts, and the metrics it sets. Each probe declares itself in its own file (the
//! probes layer); these are the types it declares itself with.

use super::duration::HumanDuration;
use super::rules::Rules;
use super::schedule::{ProbeConfig, ProbeTable, parse_options};
use std::fmt;
use toml::{Table, Value};

/// A probe, as it declares itself.
#[derive(Debug)]
pub struct ProbeSpec {
    /// Its name: the `[probes.<name>]` table and the `probe` label.
    pub name: &'static str,
    /// Its checks: the `check` label of `chatload_probe_check_failures_total`.
    pub checks: &'static [&'static str],
    /// Whether it needs the database (Redis-only probes run while the database is down).
    pub needs_scylla: bool,
    /// The defaults of the keys every probe has.
    pub schedule: ProbeConfig,
    /// Its own keys with their defaults, as a TOML table.
    pub options: fn() -> Table,
    /// Deserializes its own keys (one problem's message, serde's, when they do not).
    pub parse: fn(&Table) -> Result<(), String>,
    /// The rules on its table that types cannot express, reported into `rules`.
    pub validate: fn(&ProbeTable, &mut Rules),
    /// The SLOs it measures; their thresholds are `[slo]` keys.
    pub slos: &'static [SloSpec],
    /// Its alerts beyond the SLOs' own.
    pub alerts: &'static [AlertSpec],
    /// The metrics it sets besides the ones every probe has.
    pub metrics: &'static [&'static str],
}

/// An SLO a probe measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloSpec {
    /// Its `[slo]` key and `slo` label.
    pub key: &'static str,
    /// The threshold unless the config sets one.
    pub default: SloValue,
    /// What it judges.
    pub indicator: SloIndicator,
    /// The alert that fires when it is breached over the alerts' window.
    pub alert: AlertSpec,
}

/// A threshold in `[slo]`: a duration (`"50ms"`) or a number (`0.2`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SloValue {
    /// A latency or tolerance.
    Duration(HumanDuration),
    /// A ratio or coefficient.
    Number(f64),
}

impl SloValue {
    /// The threshold as a number: seconds for a duration.
    pub fn get(self) -> f64 {
        match self {
            Self::Duration(d) => d.get().as_secs_f64(),
            Self::Number(n) => n,
        }
    }

    /// As a TOML value.
    pub fn to_toml(self) -> Value {
        match self {
            Self::Duration(d) => Value::String(d.to_string()),
            Self::Number(n) => Value::Float(n),
        }
    }

    /// The value of `v` in this value's kind.
    pub fn parse(self, v: &Value) -> Result<Self, String> {
        match (self, v) {
            (Self::Duration(_), Value::String(s)) => s.parse().map(Self::Duration),
            (Self::Duration(_), other) => Err(format!(
                "invalid type: {}, expected a duration such as \"250ms\"",
                other.type_str()
            )),
            (Self::Number(_), Value::Float(f)) => Ok(Self::Number(*f)),
            (Self::Number(_), Value::Integer(i)) => Ok(Self::Number(*i as f64)),
            (Self::Number(_), other) => Err(format!(
                "invalid type: {}, expected a number",
                other.type_str()
            )),
        }
    }
}

impl fmt::Display for SloValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duration(d) => d.fmt(f),
            Self::Number(n) => write!(f, "{n}"),
        }
    }
}

/// What a probe's SLO judges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SloIndicator {
    /// The `quantile` (1.0: the maximum) of the probe's `chatload_probe_duration_seconds` is at
    /// most the threshold.
    Latency {
        /// 0.99 for a p99, 1.0 for a maximum.
        quantile: f64,
        /// The histogram's label selector: `probe="<name>"`.
        selector: &'static str,
    },
    /// The absolute value of a gauge the probe sets is at most the threshold.
    Gauge {
        /// The gauge.
        metric: &'static str,
        /// Its label selector.
        selector: &'static str,
    },
    /// The probe's check (which compares a gauge with the threshold) never failed.
    Check {
        /// The `check` label.
        check: &'static str,
        /// The gauge shown as the measured value.
        metric: &'static str,
    },
}

/// An alerting rule a probe brings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertSpec {
    /// The alert's name.
    pub name: &'static str,
    /// How long the condition must hold (`10m`).
    pub for_: &'static str,
    /// The expression; empty for an SLO's alert, whose expression the SLO model writes.
    pub expr: &'static str,
    /// The summary annotation (Prometheus template).
    pub summary: &'static str,
    /// The description; `{threshold}` is replaced by the SLO's configured threshold.
    pub description: &'static str,
}

/// The own keys' defaults of a probe with options of type `T` (its `Default`), as a table.
pub fn options_table<T: serde::Serialize + Default>() -> Table {
    match Value::try_from(T::default()) {
        Ok(Value::Table(t)) => t,
        _ => Table::new(),
    }
}

/// Whether the own keys of a probe deserialize as its options type `T` (a [`ProbeSpec::parse`]).
pub fn parse_as<T: serde::de::DeserializeOwned>(own: &Table) -> Result<(), String> {
    parse_options::<T>(own).map(|_: T| ())
}

/// The options of a probe that has no keys beyond the ones every probe has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// A [`ProbeSpec::validate`] for a probe without rules of its own.
pub fn no_rules(_: &ProbeTable, _: &mut Rules) {}
