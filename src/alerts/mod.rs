//! `chatload generate alerts`: Prometheus recording and alerting rules derived from `[slo]`.
//!
//! Every SLO comes from the SLO model ([`crate::measure::slo`]): a latency SLO alerts on the share of
//! observations above its threshold (counted at the bucket bound that every threshold is), the same
//! judgement `chatload check` and the status page make.
//!
//! - Recording rules for the SLIs (`sli.rs`: write error ratio, share of slow writes, write p99,
//!   throughput ratio, probe p99s), aggregated per `job` so that replicas add up.
//! - Threshold alerts (`threshold.rs`): write p99, probe latencies, throughput, failing probes, TTL
//!   drift and expiry violations, a backend down, chatload down or absent, drops, schedule lag,
//!   partition balance, Redis cache consistency.
//! - Multi-window, multi-burn-rate alerts (`burn.rs`; Google SRE workbook, ch. 5) for the
//!   write-success and the write-latency SLOs over 30 days: burn rate 14.4 over 1 h (and 5 m) and 6
//!   over 6 h (and 30 m) page; 3 over 1 d (and 2 h) and 1 over 3 d (and 6 h) open a ticket.
//!
//! Every alert carries `severity` (`critical` pages, `warning` is a ticket), a `summary`, a
//! `description` and a `runbook_url` into the README's Runbook. The rules are built as data
//! (`RuleFile`) and serialized with `serde_norway` under a comment header, so the output is
//! stable: `deploy/prometheus/rules/chatload-rules.yml` is exactly the output for
//! `config/chatload.toml`.

mod burn;
mod e2e;
mod rules;
mod sli;
mod threshold;

use rules::{Alerts, Rule, RuleFile, RuleGroup, num};
pub use rules::{DEFAULT_RUNBOOK_BASE, JOB, SCHEDULE_LAG_TARGET};

use crate::config::Config;
use crate::measure::slo;

/// The rules file for `cfg`; runbook links start with `runbook_base`.
pub fn generate(cfg: &Config, runbook_base: &str) -> String {
    let s = &cfg.slo;
    let catalog = cfg.probes.catalog();
    let targets: Vec<String> = [
        format!("write_p99 {}", s.write_p99),
        format!("write_success {}", num(s.write_success)),
        format!("throughput_ratio {}", num(s.throughput_ratio)),
    ]
    .into_iter()
    .chain(
        catalog
            .slos()
            .map(|(_, slo)| format!("{} {}", slo.key, cfg.slo.threshold(slo))),
    )
    .chain(
        slo::all(cfg)
            .into_iter()
            .filter(|x| x.e2e)
            .map(|x| match x.unit() {
                "seconds" => format!(
                    "{} {}",
                    x.name,
                    crate::config::HumanDuration(std::time::Duration::from_secs_f64(x.threshold))
                ),
                _ => format!("{} {}", x.name, num(x.threshold)),
            }),
    )
    .collect();
    let mut header = String::from(
        "# Prometheus rules for chatload, generated from the [slo] section of its config by\n\
         #   chatload generate alerts --config FILE\n\
         # Do not edit by hand: regenerate. Targets:",
    );
    let mut line = header.len() - header.rfind('\n').map_or(0, |i| i + 1);
    for (i, t) in targets.iter().enumerate() {
        let item = if i + 1 < targets.len() {
            format!(" {t},")
        } else {
            format!(" {t}.")
        };
        if line + item.len() > 100 {
            header.push_str("\n#");
            line = 1;
        }
        header.push_str(&item);
        line += item.len();
    }
    header.push('\n');
    let rules = serde_norway::to_string(&rule_file(cfg, runbook_base))
        .expect("strings and lists serialize to YAML");
    header + &rules
}

/// Every alert name `generate` produces, for docs and tests.
pub fn alert_names(cfg: &Config) -> Vec<String> {
    let file = rule_file(cfg, DEFAULT_RUNBOOK_BASE);
    file.rules()
        .filter_map(Rule::alert)
        .map(str::to_string)
        .collect()
}

/// The rules for `cfg` as data: the recording rules, then the alerting rules.
fn rule_file(cfg: &Config, runbook_base: &str) -> RuleFile {
    let model = slo::all(cfg);
    let mut alerts = Alerts {
        runbook_base,
        rules: Vec::new(),
    };
    threshold::alerts(cfg, &model, &mut alerts);
    burn::alerts(cfg, &model, &mut alerts);
    e2e::alerts(cfg, &model, &mut alerts);
    RuleFile {
        groups: vec![
            RuleGroup {
                name: "chatload-sli",
                rules: sli::recording_rules(&model),
            },
            RuleGroup {
                name: "chatload-alerts",
                rules: alerts.rules,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::rules::Annotations;
    use super::*;
    use crate::config::HumanDuration;
    use std::collections::BTreeSet;

    impl Rule {
        fn expr(&self) -> &str {
            match self {
                Rule::Record { expr, .. } | Rule::Alert { expr, .. } => expr,
            }
        }
    }

    fn annotations<'a>(file: &'a RuleFile, name: &str) -> &'a Annotations {
        file.rules()
            .find_map(|r| match r {
                Rule::Alert {
                    alert, annotations, ..
                } if alert == name => Some(annotations),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn slo_targets_appear_in_the_rules() {
        let mut cfg = crate::probes::registry::defaults();
        cfg.slo.write_p99 = HumanDuration::from_millis(10);
        cfg.slo.write_success = 0.995;
        let file = rule_file(&cfg, "https://example.org/README.md");
        let exprs: Vec<&str> = file.rules().map(Rule::expr).collect();
        assert!(exprs.contains(&"chatload:write_slow:ratio_rate5m > 0.01"));
        assert!(
            exprs.iter().any(|e| e.contains(r#"le="0.01""#)),
            "slow writes counted at the SLO bucket"
        );
        assert!(exprs.iter().any(|e| e.contains("> (14.4 * 0.005) and")));
        assert_eq!(
            annotations(&file, "ChatloadWriteLatencyHigh").runbook_url,
            "https://example.org/README.md#chatloadwritelatencyhigh"
        );
    }

    #[test]
    fn a_threshold_between_default_buckets_is_counted_at_its_own_bound() {
        let mut cfg = crate::probes::registry::defaults();
        cfg.slo.write_p99 = HumanDuration::from_millis(7);
        cfg.slo.probes.insert("range_5m_max".into(), "40ms".into());
        let file = rule_file(&cfg, DEFAULT_RUNBOOK_BASE);
        let any = |s: &str| file.rules().any(|r| r.expr().contains(s));
        assert!(any(r#"le="0.007""#));
        assert!(any(r#"probe="range_5m",le="0.04""#));
        assert!(!any(r#"le="0.005""#));
    }

    /// The committed rules are exactly what the documented default config generates.
    #[test]
    fn committed_rules_match_the_default_config() {
        let cfg = crate::config::load_str(
            include_str!("../../config/chatload.toml"),
            std::path::Path::new("config/chatload.toml"),
            [],
            &crate::probes::registry::catalog(),
        )
        .unwrap();
        let committed = include_str!("../../deploy/prometheus/rules/chatload-rules.yml");
        assert!(
            generate(&cfg, DEFAULT_RUNBOOK_BASE) == committed,
            "deploy/prometheus/rules/chatload-rules.yml is stale: run \
             `chatload generate alerts --config config/chatload.toml > deploy/prometheus/rules/chatload-rules.yml`"
        );
    }

    /// Every recording rule has a `promql_expr_test` of its own in the committed promtool tests.
    #[test]
    fn every_recording_rule_has_its_own_expression_test() {
        let tests: serde_norway::Value = serde_norway::from_str(include_str!(
            "../../deploy/prometheus/rules/chatload-rules.test.yml"
        ))
        .unwrap();
        let tested: Vec<&str> = (tests["tests"].as_sequence().unwrap().iter())
            .filter_map(|t| t["promql_expr_test"].as_sequence())
            .flatten()
            .filter_map(|t| t["expr"].as_str())
            .collect();
        let file = rule_file(&crate::probes::registry::defaults(), DEFAULT_RUNBOOK_BASE);
        let records: Vec<&str> = (file.rules())
            .filter_map(|r| match r {
                Rule::Record { record, .. } => Some(record.as_str()),
                Rule::Alert { .. } => None,
            })
            .collect();
        assert_eq!(records.len(), 26);
        for r in records {
            assert!(
                tested.iter().any(|e| e.contains(&format!("({r},"))),
                "no promql_expr_test for {r}"
            );
        }
    }

    #[test]
    fn every_alert_has_a_unique_name_texts_and_its_runbook_section() {
        let file = rule_file(&crate::probes::registry::defaults(), DEFAULT_RUNBOOK_BASE);
        let names = alert_names(&crate::probes::registry::defaults());
        assert!(names.len() >= 20, "{}", names.len());
        assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), names.len());
        for name in &names {
            let a = annotations(&file, name);
            assert!(!a.summary.is_empty() && !a.description.is_empty(), "{name}");
            let anchor = name.to_lowercase();
            assert_eq!(a.runbook_url, format!("README.md#{anchor}"));
            assert!(
                README.contains(&format!("\n### {name}\n")),
                "README.md has no Runbook section `### {name}`"
            );
        }
    }

    const README: &str = include_str!("../../README.md");

    /// The output is the comment header, then YAML that reads back as the rules.
    #[test]
    fn generated_yaml_reads_back_as_the_rules() {
        let text = generate(&crate::probes::registry::defaults(), DEFAULT_RUNBOOK_BASE);
        assert!(text.starts_with("# Prometheus rules for chatload"));
        let parsed: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let file = rule_file(&crate::probes::registry::defaults(), DEFAULT_RUNBOOK_BASE);
        assert_eq!(parsed, serde_norway::to_value(&file).unwrap());
        let down = &parsed["groups"][1]["rules"][0];
        assert_eq!(down["for"].as_str(), Some("2m"));
        assert_eq!(down["labels"]["severity"].as_str(), Some("critical"));
    }
}
