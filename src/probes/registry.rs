//! The probes chatload has: one line each. Adding a probe is a new file beside this one and a line
//! here.

use super::probe::Probe;
use crate::config::{Catalog, Config, ProbeSpec};
use std::sync::Arc;

/// The declarations of every probe, in order: what a config is loaded with.
pub fn catalog() -> Catalog {
    Catalog::new(REGISTRY.iter().map(|(spec, _)| *spec).collect())
}

/// The default config: every key's default, every probe's table.
pub fn defaults() -> Config {
    crate::config::load_str("", std::path::Path::new("<defaults>"), [], &catalog())
        .expect("the defaults are a valid config")
}

/// Every probe, in `[probes]` order.
pub fn all(cfg: &Config) -> Vec<Arc<dyn Probe>> {
    REGISTRY.iter().map(|(_, new)| new(cfg)).collect()
}

/// Builds a probe for a config.
type New = fn(&Config) -> Arc<dyn Probe>;

/// One line per probe: its declaration (in its file) and how to make it.
const REGISTRY: &[(&ProbeSpec, New)] = &[
    (&super::ttl_metadata::SPEC, super::ttl_metadata::probe),
    (&super::ttl_expiry::SPEC, super::ttl_expiry::probe),
    (&super::recent_50::SPEC, super::recent_50::probe),
    (&super::range_5m::SPEC, super::range_5m::probe),
    (&super::pagination::SPEC, super::pagination::probe),
    (
        &super::partition_balance::SPEC,
        super::partition_balance::probe,
    ),
    (&super::redis_ttl::SPEC, super::redis_ttl::probe),
    (&super::redis_cache::SPEC, super::redis_cache::probe),
    (&super::redis_pubsub::SPEC, super::redis_pubsub::probe),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SloIndicator;
    use crate::config::load_str;
    use std::path::Path;

    const DOCUMENTED_DEFAULT: &str = include_str!("../../config/chatload.toml");

    #[test]
    fn the_documented_default_file_is_the_default_config() {
        let c = load_str(
            DOCUMENTED_DEFAULT,
            Path::new("config/chatload.toml"),
            [],
            &catalog(),
        )
        .unwrap();
        assert_eq!(c, defaults());
    }

    /// Every key of the default config (every probe's too) is written out (not just defaulted) in config/chatload.toml,
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
        keys("", &toml::Table::try_from(defaults()).unwrap(), &mut want);
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
    fn every_probe_has_a_config_table_and_unique_name() {
        let cfg = defaults();
        let names: Vec<&str> = all(&cfg).iter().map(|p| p.name()).collect();
        let tables: Vec<&str> = cfg.probes.iter().map(|(n, _)| n).collect();
        assert_eq!(names, tables);
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    /// The series of the probes' own metrics exist at 0 before any run (a dashboard or an alert
    /// on them has data from the first scrape).
    #[test]
    fn probes_create_their_own_series_at_zero() {
        let m = crate::measure::metrics::Metrics::new("t");
        for p in all(&defaults()) {
            p.init_series(&m);
        }
        let text = String::from_utf8(m.encode()).unwrap();
        for series in [
            r#"chatload_ttl_drift_seconds{backend="scylla"} 0"#,
            r#"chatload_ttl_drift_seconds{backend="redis"} 0"#,
            r#"chatload_ttl_observed_seconds{backend="scylla"} 0"#,
            r#"chatload_ttl_observed_seconds{backend="redis"} 0"#,
            r#"chatload_probe_writes_unknown_total{probe="range_5m"} 0"#,
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
    }

    const METRICS_RS: &str = include_str!("../measure/metrics.rs");

    /// Each declaration holds together: a latency SLO selects its own probe's histogram, a check
    /// SLO names one of its checks, every metric it says it sets exists, SLO keys and alert names are
    /// unique across probes.
    #[test]
    fn every_declaration_is_consistent() {
        let (mut keys, mut alerts) = (vec![], vec![]);
        for p in catalog().specs() {
            for s in p.slos {
                match s.indicator {
                    SloIndicator::Latency { selector, .. } => {
                        assert_eq!(selector, format!("probe=\"{}\"", p.name), "{}", s.key);
                    }
                    SloIndicator::Check { check, .. } => {
                        assert!(p.checks.contains(&check), "{}: {check}", s.key);
                    }
                    SloIndicator::Gauge { .. } => {}
                }
                keys.push(s.key);
                alerts.push(s.alert.name);
            }
            alerts.extend(p.alerts.iter().map(|a| a.name));
            assert!(
                (p.parse)(&(p.options)()).is_ok(),
                "{}: its defaults parse",
                p.name
            );
            for m in p.metrics {
                assert!(
                    METRICS_RS.contains(&format!("\"{m}\"")),
                    "{}: declares {m}, which measure/metrics.rs does not define",
                    p.name
                );
            }
        }
        for list in [&mut keys, &mut alerts] {
            let n = list.len();
            list.sort_unstable();
            list.dedup();
            assert_eq!(list.len(), n, "{list:?}");
        }
    }
}
