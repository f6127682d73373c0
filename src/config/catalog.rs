//! The probes a config is loaded with ([`Catalog`]): their declarations, in order. The loader takes
//! each probe's table defaults and `[slo]` keys from it, and the SLO model, the alert rules, `check`
//! and the status page take each probe's SLOs and alerts from it.

use super::spec::{ProbeSpec, SloSpec};
use std::fmt;
use std::sync::Arc;

/// The probes a config is loaded with, in their order.
#[derive(Clone, Default)]
pub struct Catalog(Arc<[&'static ProbeSpec]>);

impl Catalog {
    /// A catalog of `specs`.
    pub fn new(specs: Vec<&'static ProbeSpec>) -> Self {
        Self(specs.into())
    }

    /// Every probe, in order.
    pub fn specs(&self) -> impl Iterator<Item = &'static ProbeSpec> + '_ {
        self.0.iter().copied()
    }

    /// The probe called `name`.
    pub fn get(&self, name: &str) -> Option<&'static ProbeSpec> {
        self.specs().find(|s| s.name == name)
    }

    /// Every probe's SLOs, with the probe.
    pub fn slos(&self) -> impl Iterator<Item = (&'static ProbeSpec, &'static SloSpec)> + '_ {
        self.specs()
            .flat_map(|p| p.slos.iter().map(move |s| (p, s)))
    }
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.specs().map(|s| s.name))
            .finish()
    }
}

impl PartialEq for Catalog {
    fn eq(&self, other: &Self) -> bool {
        self.specs()
            .map(|s| s.name)
            .eq(other.specs().map(|s| s.name))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Two made-up probes for the config's own tests (the real ones are declared in the layers
    //! above): `echo` has no keys of its own and two latency SLOs, `count` has keys, rules, a check
    //! SLO and a gauge SLO.

    use super::*;
    use crate::config::{
        AlertSpec, HumanDuration, NoOptions, ProbeConfig, ProbeTable, Rules, SloIndicator,
        SloValue, no_rules, options_table, parse_as,
    };
    use serde::{Deserialize, Serialize};

    /// `echo`: no options, SLOs `echo_p99` and `echo_max`.
    pub const ECHO: ProbeSpec = ProbeSpec {
        name: "echo",
        checks: &["silent"],
        needs_scylla: false,
        schedule: ProbeConfig::every(5, 1000),
        options: options_table::<NoOptions>,
        parse: parse_as::<NoOptions>,
        validate: no_rules,
        slos: &[
            SloSpec {
                key: "echo_p99",
                default: SloValue::Duration(HumanDuration::from_millis(10)),
                indicator: SloIndicator::Latency {
                    quantile: 0.99,
                    selector: r#"probe="echo""#,
                },
                alert: AlertSpec {
                    name: "EchoSlow",
                    for_: "10m",
                    expr: "",
                    summary: "slow",
                    description: "slower than {threshold}",
                },
            },
            SloSpec {
                key: "echo_max",
                default: SloValue::Duration(HumanDuration::from_millis(50)),
                indicator: SloIndicator::Latency {
                    quantile: 1.0,
                    selector: r#"probe="echo""#,
                },
                alert: AlertSpec {
                    name: "EchoVerySlow",
                    for_: "10m",
                    expr: "",
                    summary: "slow",
                    description: "one slower than {threshold}",
                },
            },
        ],
        alerts: &[],
        metrics: &[],
    };

    /// `count`'s own keys.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Rounds {
        /// How many.
        pub rounds: u32,
        /// Between two.
        pub wait: HumanDuration,
    }

    impl Default for Rounds {
        fn default() -> Self {
            Self {
                rounds: 3,
                wait: HumanDuration::from_secs(1),
            }
        }
    }

    fn rules(table: &ProbeTable, r: &mut Rules) {
        let o: Rounds = table.options();
        r.nonzero("probes.count.rounds", o.rounds);
        if table.schedule.timeout <= o.wait {
            r.fail("probes.count.timeout", "must be longer than wait");
        }
    }

    /// `count`: keys `rounds` and `wait`, SLOs `count_cv` (a number) and `count_drift` (a gauge).
    pub const COUNT: ProbeSpec = ProbeSpec {
        name: "count",
        checks: &["short"],
        needs_scylla: true,
        schedule: ProbeConfig::every(30, 5000),
        options: options_table::<Rounds>,
        parse: parse_as::<Rounds>,
        validate: rules,
        slos: &[
            SloSpec {
                key: "count_cv",
                default: SloValue::Number(0.1),
                indicator: SloIndicator::Check {
                    check: "short",
                    metric: "count_cv",
                },
                alert: AlertSpec {
                    name: "CountShort",
                    for_: "0m",
                    expr: "",
                    summary: "short",
                    description: "beyond {threshold}",
                },
            },
            SloSpec {
                key: "count_drift",
                default: SloValue::Duration(HumanDuration::from_secs(60)),
                indicator: SloIndicator::Gauge {
                    metric: "count_drift_seconds",
                    selector: r#"side="x""#,
                },
                alert: AlertSpec {
                    name: "CountDrift",
                    for_: "5m",
                    expr: "",
                    summary: "drift",
                    description: "off by more than {threshold}",
                },
            },
        ],
        alerts: &[],
        metrics: &[],
    };

    /// Both.
    pub fn catalog() -> Catalog {
        Catalog::new(vec![&ECHO, &COUNT])
    }
}
