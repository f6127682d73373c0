//! Tests of the SLO model: thresholds become bucket bounds, each indicator is judged as documented,
//! and nothing measured passes nothing.

use super::*;
use crate::config::HumanDuration;
use crate::config::SloConfig;
use crate::measure::stats::tests::histogram;

/// The default config with the config's two made-up probes (`echo`, `count`).
fn defaults() -> Config {
    crate::config::load_str(
        "",
        std::path::Path::new("t"),
        [],
        &crate::config::testing::catalog(),
    )
    .unwrap()
}

fn set(cfg: &mut Config, key: &str, value: &str) {
    cfg.slo.probes.insert(key.into(), value.into());
}

fn slo(cfg: &Config, name: &str) -> Slo {
    all(cfg).into_iter().find(|s| s.name == name).unwrap()
}

#[test]
fn every_latency_threshold_becomes_a_bucket_bound() {
    let mut cfg = defaults();
    cfg.slo.write_p99 = HumanDuration::from_millis(7);
    set(&mut cfg, "echo_max", "40ms");
    let b = latency_buckets(&cfg);
    assert!(has_bound(&b, 0.007) && has_bound(&b, 0.04), "{b:?}");
    assert!(b.windows(2).all(|w| w[0] < w[1]));
    assert!(thresholds_outside(&cfg, &b).is_empty());
    assert_eq!(
        thresholds_outside(&cfg, LATENCY_BUCKETS),
        ["slo.write_p99 = 7.00 ms", "slo.echo_max = 40.00 ms"]
    );
    // Defaults add nothing.
    assert_eq!(latency_buckets(&defaults()), LATENCY_BUCKETS);
}

/// The same observations judged against 7 ms and against 5 ms: the share above the threshold
/// decides, counted exactly at the bound.
#[test]
fn a_p99_is_judged_by_the_share_above_its_threshold() {
    let mut cfg = defaults();
    cfg.slo.write_p99 = HumanDuration::from_millis(7);
    let bounds = latency_buckets(&cfg);
    // 1000 writes: 980 at 1 ms, 15 at 6 ms, 5 at 20 ms: 0.5 % above 7 ms, 2 % above 5 ms.
    let mut values = vec![0.001; 980];
    values.extend([0.006; 15]);
    values.extend([0.02; 5]);
    let observed = Observed::Latency {
        buckets: histogram(&bounds, &values),
        value: None,
    };
    let j = slo(&cfg, "write_p99").judge(&observed);
    assert!(j.pass, "{j:?}");
    assert_eq!(
        j.note.as_deref(),
        Some("5 of 1000 above 7.00 ms (at most 10 allowed)")
    );
    let j = slo(&defaults(), "write_p99").judge(&observed);
    assert!(!j.pass, "{j:?}");
    // 11 above 7 ms: fails.
    let mut values2 = vec![0.001; 989];
    values2.extend([0.02; 11]);
    let j = slo(&cfg, "write_p99").judge(&Observed::Latency {
        buckets: histogram(&bounds, &values2),
        value: None,
    });
    assert!(!j.pass, "{j:?}");
}

#[test]
fn a_maximum_allows_nothing_above() {
    let mut cfg = defaults();
    set(&mut cfg, "echo_max", "40ms");
    let bounds = latency_buckets(&cfg);
    let s = slo(&cfg, "echo_max");
    let ok = histogram(&bounds, &[0.01, 0.039, 0.04]);
    assert!(
        s.judge(&Observed::Latency {
            buckets: ok,
            value: None
        })
        .pass
    );
    let bad = histogram(&bounds, &[0.01, 0.041]);
    assert!(
        !s.judge(&Observed::Latency {
            buckets: bad,
            value: None
        })
        .pass
    );
}

#[test]
fn nothing_is_judged_pass_without_data() {
    let cfg = defaults();
    for s in all(&cfg) {
        let j = s.judge(&Observed::Nothing);
        assert!(!j.pass && j.measured.is_none(), "{}: {j:?}", s.name);
    }
    let empty = Observed::Latency {
        buckets: histogram(LATENCY_BUCKETS, &[]),
        value: None,
    };
    assert!(!slo(&cfg, "write_p99").judge(&empty).pass);
    assert!(
        !slo(&cfg, "write_success")
            .judge(&Observed::Ratio { good: 0, total: 0 })
            .pass
    );
    assert!(!slo(&cfg, "count_drift").judge(&Observed::Gauge(None)).pass);
    let unmeasured = Observed::Check {
        value: None,
        failures: 0,
    };
    assert!(!slo(&cfg, "count_cv").judge(&unmeasured).pass);
}

/// Each SLO says its unit and which way it binds, as `check` and the status page print them.
#[test]
fn units_and_bounds() {
    let got: Vec<(&str, &str, &str)> = all(&defaults())
        .iter()
        .filter(|s| !s.e2e)
        .map(|s| (s.name, s.unit(), s.bound()))
        .collect();
    assert_eq!(
        got,
        [
            ("write_p99", "seconds", "max"),
            ("write_success", "ratio", "min"),
            ("throughput_ratio", "ratio", "min"),
            ("echo_p99", "seconds", "max"),
            ("echo_max", "seconds", "max"),
            ("count_cv", "ratio", "max"),
            ("count_drift", "seconds", "max"),
        ]
    );
}

#[test]
fn throughput_needs_both_a_time_and_a_target() {
    let s = slo(&defaults(), "throughput_ratio");
    let judge = |seconds, target_rate| {
        s.judge(&Observed::Throughput {
            ok: 600,
            seconds,
            target_rate,
        })
    };
    assert!(judge(60.0, 10.0).pass);
    for (secs, target) in [(0.0, 10.0), (60.0, 0.0)] {
        let j = judge(secs, target);
        assert!(
            !j.pass && j.measured.is_none(),
            "{secs} s, {target}/s: {j:?}"
        );
    }
}

/// The probe's own check decides; the note says why, or why a high value was not judged.
#[test]
fn a_probe_check_passes_on_no_failure_and_says_why_otherwise() {
    let s = slo(&defaults(), "count_cv");
    let judge = |value, failures| {
        s.judge(&Observed::Check {
            value: Some(value),
            failures,
        })
    };
    let failed = judge(0.3, 2);
    assert!(!failed.pass);
    assert_eq!(failed.note.as_deref(), Some("short failed 2 times"));
    let unjudged = judge(0.3, 0);
    assert!(unjudged.pass);
    assert!(
        unjudged
            .note
            .unwrap()
            .starts_with("not judged by the probe")
    );
    let fine = judge(0.1, 0);
    assert!(fine.pass && fine.note.is_none(), "{fine:?}");
}

#[test]
fn objectives_are_exported_as_configured() {
    let mut cfg = defaults();
    cfg.slo.write_p99 = HumanDuration::from_millis(7);
    let m = crate::measure::metrics::Metrics::new("t");
    export_objectives(&cfg, &m);
    let text = String::from_utf8(m.encode()).unwrap();
    for line in [
        r#"chatload_slo_objective{slo="write_p99"} 0.007"#,
        r#"chatload_slo_objective{slo="write_success"} 0.999"#,
        r#"chatload_slo_objective{slo="echo_max"} 0.05"#,
    ] {
        assert!(text.contains(line), "{line}");
    }
    assert_eq!(text.matches("chatload_slo_objective{").count(), 7 + 16);
}

#[test]
fn disabled_probes_have_no_slos() {
    let mut cfg = defaults();
    cfg.probes.schedule_mut("echo").unwrap().enabled = false;
    let names: Vec<_> = slos(&cfg).iter().map(|s| s.name).collect();
    assert!(!names.contains(&"echo_max") && !names.contains(&"echo_p99"));
    assert!(names.contains(&"write_p99") && names.contains(&"count_cv"));
    assert_eq!(all(&cfg).len(), 7 + 16);
    assert!(
        names.iter().all(|n| !n.starts_with("e2e_")),
        "the canary's SLOs are judged only when it runs: {names:?}"
    );
    cfg.e2e.enabled = true;
    cfg.e2e.queue.enabled = false;
    let names: Vec<_> = slos(&cfg).iter().map(|s| s.name).collect();
    assert_eq!(names.iter().filter(|n| n.starts_with("e2e_")).count(), 15);
    assert!(!names.contains(&"e2e_queue_depth_max"));
}

#[test]
fn the_canarys_slos_have_their_units_and_promql() {
    let cfg = defaults();
    let got: Vec<(&str, &str, &str)> = all(&cfg)
        .iter()
        .filter(|s| s.e2e)
        .map(|s| (s.name, s.unit(), s.bound()))
        .collect();
    assert_eq!(got.len(), SloConfig::E2E_KEYS.len());
    for (key, (name, _, _)) in SloConfig::E2E_KEYS.iter().zip(&got) {
        assert_eq!(key, name, "E2E_KEYS lists the model's keys in order");
    }
    assert!(got.contains(&("e2e_delivery_success", "ratio", "min")));
    assert!(got.contains(&("e2e_duplicates_max", "count", "max")));
    assert!(got.contains(&("e2e_delivery_p95", "seconds", "max")));
    let q = slo(&cfg, "e2e_delivery_p95")
        .bad_ratio_promql("5m")
        .unwrap();
    assert_eq!(
        q,
        r#"1 - sum by (job) (rate(chatload_e2e_delivery_seconds_bucket{le="0.2"}[5m])) / sum by (job) (rate(chatload_e2e_delivery_seconds_count{}[5m]))"#
    );
    let q = slo(&cfg, "e2e_delivery_success")
        .bad_ratio_promql("5m")
        .unwrap();
    assert!(
        q.contains(r#"chatload_e2e_deliveries_total{outcome!="ok"}"#),
        "{q}"
    );
    // Each threshold is a bound of the histograms it is judged on, and only of those.
    let mut custom = defaults();
    custom.slo.e2e_delivery_p95 = HumanDuration::from_millis(300);
    custom.slo.e2e_api_p95 = HumanDuration::from_millis(300);
    let e2e = e2e_latency_buckets(&custom);
    assert_eq!(e2e.len(), crate::measure::e2e::E2E_BUCKETS.len() + 1);
    assert!(e2e.contains(&0.3) && latency_buckets(&custom).contains(&0.3));
    assert_eq!(
        e2e_latency_buckets(&defaults()),
        crate::measure::e2e::E2E_BUCKETS
    );
    // The canary's thresholds do not change the operations' bucket layout.
    assert_eq!(
        latency_buckets(&cfg).len(),
        latency_buckets(&defaults_without_e2e_slos()).len()
    );
}

fn defaults_without_e2e_slos() -> crate::config::Config {
    let mut cfg = defaults();
    cfg.slo.e2e_delivery_p95 = cfg.slo.write_p99;
    cfg.slo.e2e_delivery_max = cfg.slo.write_p99;
    cfg
}

#[test]
fn bad_ratio_promql_counts_at_the_threshold_bound() {
    let mut cfg = defaults();
    cfg.slo.write_p99 = HumanDuration::from_millis(7);
    let q = slo(&cfg, "write_p99").bad_ratio_promql("5m").unwrap();
    assert!(q.contains(r#"le="0.007""#), "{q}");
    assert_eq!(slo(&cfg, "write_p99").budget(), Some(0.01));
    assert_eq!(slo(&cfg, "echo_max").budget(), Some(0.0));
    assert_eq!(slo(&cfg, "write_success").budget(), Some(0.001));
}
