//! A probe declared here, in a test, and nowhere else: the config gives it a table with its
//! defaults and checks its keys, `check`'s judge gives it its rows, and the generated rules give
//! it its alert — all from its declaration (the README's "Adding a probe"). No server needed.

use chatload::config::{
    AlertSpec, Catalog, Config, HumanDuration, ProbeConfig, ProbeSpec, ProbeTable, Rules,
    SloIndicator, SloSpec, SloValue, load_str, options_table, parse_as,
};
use chatload::measure::snapshot::ProbeSnapshot;
use chatload::probes::registry;
use chatload::report::{Measured, evaluate};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[probes.echo]`'s own keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EchoOptions {
    /// Bytes per echo.
    size: u32,
}

impl Default for EchoOptions {
    fn default() -> Self {
        Self { size: 64 }
    }
}

fn rules(table: &ProbeTable, r: &mut Rules) {
    r.nonzero("probes.echo.size", table.options::<EchoOptions>().size);
}

/// The whole declaration of the new probe.
static ECHO: ProbeSpec = ProbeSpec {
    name: "echo",
    checks: &["garbled"],
    needs_scylla: false,
    schedule: ProbeConfig::every(7, 1500),
    options: options_table::<EchoOptions>,
    parse: parse_as::<EchoOptions>,
    validate: rules,
    slos: &[SloSpec {
        key: "echo_p99",
        default: SloValue::Duration(HumanDuration::from_millis(25)),
        indicator: SloIndicator::Latency {
            quantile: 0.99,
            selector: r#"probe="echo""#,
        },
        alert: AlertSpec {
            name: "ChatloadEchoSlow",
            for_: "10m",
            expr: "",
            summary: "echoes are slow",
            description: "More than 1 % of echoes took longer than {threshold}.",
        },
    }],
    alerts: &[],
    metrics: &[],
};

fn catalog() -> Catalog {
    Catalog::new(registry::catalog().specs().chain([&ECHO]).collect())
}

fn load(text: &str) -> Result<Config, chatload::config::ConfigError> {
    load_str(text, Path::new("t.toml"), [], &catalog())
}

#[test]
fn the_config_gives_a_new_probe_its_table_defaults_and_rules() {
    let cfg = load("").unwrap();
    assert_eq!(cfg.probes.schedule("echo"), Some(ECHO.schedule.clone()));
    assert_eq!(cfg.probes.options::<EchoOptions>("echo").size, 64);
    assert_eq!(
        cfg.slo.threshold(&ECHO.slos[0]),
        SloValue::Duration(HumanDuration::from_millis(25))
    );
    let shown = toml::to_string(&cfg).unwrap();
    assert!(
        shown.contains("[probes.echo]") && shown.contains("size = 64"),
        "{shown}"
    );
    assert!(shown.contains("echo_p99 = \"25ms\""), "{shown}");

    let cfg = load("[probes.echo]\nsize = 8\n[slo]\necho_p99 = \"40ms\"\n").unwrap();
    assert_eq!(cfg.probes.options::<EchoOptions>("echo").size, 8);
    assert_eq!(cfg.slo.threshold(&ECHO.slos[0]).get(), 0.04);

    let err = load("[probes.echo]\nsize = 0\ncolour = 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("probes.echo.size: must be > 0"), "{err}");
    assert!(
        err.contains("probes.echo.colour: unknown field `colour`"),
        "{err}"
    );
    // Without it in the catalog, its table is an unknown one.
    let err = load_str("[probes.echo]\n", Path::new("t"), [], &registry::catalog())
        .unwrap_err()
        .to_string();
    assert!(err.contains("probes.echo: unknown field `echo`"), "{err}");
}

#[test]
fn check_judges_a_new_probe_by_its_declaration() {
    let cfg = load("").unwrap();
    let mut measured = Measured::default();
    let mut echo = ProbeSnapshot::default();
    echo.runs.insert("ok", 2);
    echo.runs.insert("failed", 1);
    echo.last_problem = Some("garbled: 1".into());
    measured.probes.insert("echo", echo);
    let rows = evaluate(&cfg, &measured);
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.slo == name)
            .unwrap_or_else(|| panic!("no row {name} in {rows:#?}"))
    };
    let probe = row("probe:echo");
    assert!(!probe.pass);
    assert_eq!(probe.measured, Some(2.0 / 3.0));
    assert_eq!(probe.note.as_deref(), Some("garbled: 1"));
    let slo = row("echo_p99");
    assert_eq!(slo.target, 0.025);
    assert!(!slo.pass, "no observation is no pass: {slo:?}");

    // Disabled, it has no rows at all.
    let cfg = load("[probes.echo]\nenabled = false\n").unwrap();
    assert!(
        evaluate(&cfg, &measured)
            .iter()
            .all(|r| !r.slo.contains("echo"))
    );
}

#[test]
fn the_generated_rules_alert_on_a_new_probes_slo() {
    let cfg = load("[slo]\necho_p99 = \"40ms\"\n").unwrap();
    let rules = chatload::alerts::generate(&cfg, "README.md");
    assert!(rules.contains("alert: ChatloadEchoSlow"), "{rules}");
    assert!(rules.contains("echo_p99 40ms"), "{rules}");
    assert!(
        rules.contains(r#"chatload_probe_duration_seconds_bucket{probe="echo",le="0.04"}"#),
        "{rules}"
    );
    assert!(
        rules.contains("More than 1 % of echoes took longer than 40ms."),
        "{rules}"
    );
    assert!(
        chatload::measure::slo::latency_buckets(&cfg)
            .iter()
            .any(|b| (b - 0.04).abs() < 1e-12)
    );
}
