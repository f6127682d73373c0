//! The rules file as data: [`RuleFile`] → [`RuleGroup`] → [`Rule`] (recording or alerting), serialized
//! with serde_norway in the field order of Prometheus' documentation, and the small helpers the
//! recording, threshold and burn-rate rules are written with.

use crate::measure::slo::Slo;
use serde::Serialize;

/// The `job` label chatload is scraped under (the bundled scrape configs use it).
pub const JOB: &str = "chatload";
/// Where runbook links point by default: the README, relative (set `--runbook-base` to its URL).
pub const DEFAULT_RUNBOOK_BASE: &str = "README.md";
/// Target of the pacer's p99 schedule lag (the spec's 200 µs).
pub const SCHEDULE_LAG_TARGET: f64 = 0.0002;

/// A Prometheus rules file.
#[derive(Serialize)]
pub(super) struct RuleFile {
    pub(super) groups: Vec<RuleGroup>,
}

#[derive(Serialize)]
pub(super) struct RuleGroup {
    pub(super) name: &'static str,
    pub(super) rules: Vec<Rule>,
}

/// A recording or an alerting rule, its fields in the order the Prometheus docs show them.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Rule {
    Record {
        record: String,
        expr: String,
    },
    Alert {
        alert: String,
        expr: String,
        #[serde(rename = "for")]
        for_: &'static str,
        labels: Labels,
        annotations: Annotations,
    },
}

#[derive(Serialize)]
pub(super) struct Labels {
    pub(super) severity: Severity,
}

/// `critical` pages, `warning` is a ticket.
#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Severity {
    Critical,
    Warning,
}

#[derive(Serialize)]
pub(super) struct Annotations {
    pub(super) summary: String,
    pub(super) description: String,
    pub(super) runbook_url: String,
}

impl RuleFile {
    pub(super) fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.groups.iter().flat_map(|g| &g.rules)
    }
}

impl Rule {
    /// The alert's name; `None` for a recording rule.
    pub(super) fn alert(&self) -> Option<&str> {
        match self {
            Rule::Alert { alert, .. } => Some(alert),
            Rule::Record { .. } => None,
        }
    }
}

/// Collects alerting rules; each one's `runbook_url` is its README section under `runbook_base`.
pub(super) struct Alerts<'a> {
    pub(super) runbook_base: &'a str,
    pub(super) rules: Vec<Rule>,
}

impl Alerts<'_> {
    /// An alert `(name, for, severity)` firing on `expr`, with its `summary` and `description`.
    pub(super) fn add(
        &mut self,
        (alert, for_, severity): (impl Into<String>, &'static str, Severity),
        expr: impl Into<String>,
        summary: impl Into<String>,
        description: impl Into<String>,
    ) {
        let alert = alert.into();
        let runbook_url = format!("{}#{}", self.runbook_base, alert.to_lowercase());
        self.rules.push(Rule::Alert {
            alert,
            expr: expr.into(),
            for_,
            labels: Labels { severity },
            annotations: Annotations {
                summary: summary.into(),
                description: description.into(),
                runbook_url,
            },
        });
    }
}

/// The SLO called `name` in the model.
pub(super) fn named<'a>(model: &'a [Slo], name: &str) -> &'a Slo {
    model
        .iter()
        .find(|x| x.name == name)
        .expect("every SLO is in the model")
}

/// The share of bad events of a latency or success SLO over `window`, as PromQL.
pub(super) fn bad_ratio(model: &[Slo], name: &str, window: &str) -> String {
    named(model, name)
        .bad_ratio_promql(window)
        .expect("latency and success SLOs have a bad-event ratio")
}

/// The share of bad events a latency or success SLO allows.
pub(super) fn budget(model: &[Slo], name: &str) -> f64 {
    named(model, name)
        .budget()
        .expect("latency and success SLOs have a budget")
}

/// A number as PromQL and the exposition format write it (`0.005`, `1`, `2592000`).
pub(super) fn num(v: f64) -> String {
    format!("{v}")
}

pub(super) fn pct(r: f64) -> String {
    format!("{} %", num((r * 1e6).round() / 1e4))
}
