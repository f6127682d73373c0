//! Tests of loading: the file and the environment merged, and every problem reported at its key
//! path (and variable) at once.

use super::*;
use crate::config::catalog::testing;
use crate::config::{HumanDuration, WriteMode};

fn load(text: &str) -> Result<Config, ConfigError> {
    load_env(text, &[])
}

fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_str(
        text,
        Path::new("test.toml"),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        &testing::catalog(),
    )
}

fn errors(text: &str, env: &[(&str, &str)]) -> Vec<String> {
    match load_env(text, env) {
        Err(ConfigError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
        other => panic!("expected invalid config, got {other:?}"),
    }
}

#[test]
fn empty_file_is_the_default_config_with_each_probes_defaults() {
    let c = load("").unwrap();
    let mut plain = c.clone();
    plain.probes = Config::default().probes;
    plain.slo.probes.clear();
    assert_eq!(plain, Config::default());
    assert_eq!(
        c.probes.iter().collect::<Vec<_>>(),
        [
            ("echo", testing::ECHO.schedule),
            ("count", testing::COUNT.schedule)
        ]
    );
    assert_eq!(c.probes.options::<testing::Rounds>("count").rounds, 3);
    assert_eq!(
        c.slo.threshold(&testing::ECHO.slos[0]),
        testing::ECHO.slos[0].default
    );
}

#[test]
fn default_config_round_trips_through_toml() {
    let defaults = load("").unwrap();
    let text = toml::to_string_pretty(&defaults).unwrap();
    assert!(
        text.contains("[probes.count]") && text.contains("rounds = 3"),
        "{text}"
    );
    assert!(text.contains("echo_p99 = \"10ms\""), "{text}");
    assert_eq!(load(&text).unwrap(), defaults);
}

/// A probe table that sets some keys keeps the probe's own defaults for the others (not the
/// defaults of a probe in general).
#[test]
fn a_partial_probe_table_keeps_that_probes_defaults() {
    let c = load("[probes.count]\njitter = \"100ms\"\n[slo]\ncount_cv = 0.5\n").unwrap();
    let s = c.probes.schedule("count").unwrap();
    assert_eq!(s.jitter, HumanDuration::from_millis(100));
    assert_eq!(s.interval, testing::COUNT.schedule.interval);
    assert_eq!(s.timeout, testing::COUNT.schedule.timeout);
    assert_eq!(
        c.probes.options::<testing::Rounds>("count"),
        testing::Rounds::default()
    );
    assert_eq!(c.slo.threshold(&testing::COUNT.slos[0]).get(), 0.5);
}

#[test]
fn a_probes_own_keys_and_slo_are_checked_by_its_declaration() {
    let errs = errors(
        "[probes.count]\nrounds = 0\nwait = \"10s\"\nspeed = 3\n[probes.echo]\nrounds = 1\n[slo]\ncount_cv = \"fast\"\necho_p99 = 3\nnope_p99 = \"1s\"\n",
        &[],
    );
    let want = [
        "probes.count.rounds: must be > 0",
        "probes.count.speed: unknown field `speed`",
        "probes.count.timeout: must be longer than wait",
        "probes.echo.rounds: unknown field `rounds`",
        "slo.count_cv: invalid type: string, expected a number",
        "slo.echo_p99: invalid type: integer, expected a duration",
        "slo.nope_p99: unknown field `nope_p99`",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want) {
        assert!(e.starts_with(w), "{e:?} does not start with {w:?}");
    }
}

#[test]
fn values_from_the_file_are_used() {
    let c = load(
        "[traffic]\nwrite_rate = 250.5\nwrite_mode = \"batch\"\nttl = \"7d\"\n[probes.echo]\ninterval = \"2s\"\n",
    )
    .unwrap();
    assert_eq!(c.traffic.write_rate, 250.5);
    assert_eq!(c.traffic.write_mode, WriteMode::Batch);
    assert_eq!(c.traffic.ttl, Some(HumanDuration::from_secs(7 * 86400)));
    assert_eq!(
        c.probes.schedule("echo").unwrap().interval,
        HumanDuration::from_secs(2)
    );
    // Untouched keys keep their defaults.
    assert_eq!(c.traffic.read_rate, Config::default().traffic.read_rate);
}

#[test]
fn unknown_section_and_key_are_named() {
    let errs = errors(
        "[bogus]\nx = 1\n[http]\nlisten = \"127.0.0.1:1\"\nport = 3\n",
        &[],
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("bogus: unknown field `bogus`"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("http.port: unknown field `port`"),
        "{errs:?}"
    );
}

#[test]
fn unknown_probe_table_is_named() {
    let errs = errors("[probes.echo_500]\ninterval = \"1s\"\n", &[]);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("probes.echo_500: unknown field"),
        "{errs:?}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let errs = errors("[traffic]\nwrite_rate = \"fast\"\n", &[]);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0],
        "traffic.write_rate: invalid type: string \"fast\", expected a number"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors(
        "[traffic]\nwrite_rate = \"fast\"\nstreams = 0\nwrite_mode = \"bulk\"\n\
         [scylla]\nkeyspace = \"system\"\nrequest_timeout = \"soon\"\n[probes.count]\nenabled = 3\ninterval = \"x\"\n",
        &[],
    );
    let keys: Vec<&str> = errs.iter().map(|e| e.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "probes.count.enabled",
            "probes.count.interval",
            "scylla.keyspace",
            "scylla.request_timeout",
            "traffic.streams",
            "traffic.write_mode",
            "traffic.write_rate",
        ],
        "{errs:#?}"
    );
}

#[test]
fn a_bad_key_is_not_reported_twice() {
    // write_rate fails to parse; validation must not then complain about its default.
    let errs = errors("[traffic]\nwrite_rate = true\n", &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn syntax_errors_say_where() {
    let err = load("[traffic\nwrite_rate = 1").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert!(
        text.contains("test.toml") && text.contains("line 1"),
        "{text}"
    );
}

#[test]
fn env_overrides_apply_with_toml_values() {
    let c = load_env(
        "[traffic]\nwrite_rate = 10\n",
        &[
            ("CHATLOAD_TRAFFIC__WRITE_RATE", "500"),
            (
                "CHATLOAD_SCYLLA__HOSTS",
                r#"["10.0.0.1:9042","10.0.0.2:9042"]"#,
            ),
            ("CHATLOAD_PROBES__ECHO__ENABLED", "false"),
            ("CHATLOAD_SLO__WRITE_P99", "1us"),
            ("CHATLOAD_SCYLLA__KEYSPACE", "chat_2"),
            ("CHATLOAD_REDIS__URL", "redis://cache:6380"),
            ("CHATLOAD_CONFIG", "ignored: no double underscore"),
            ("OTHER__THING", "ignored: no prefix"),
        ],
    )
    .unwrap();
    assert_eq!(c.traffic.write_rate, 500.0);
    assert_eq!(c.scylla.hosts, ["10.0.0.1:9042", "10.0.0.2:9042"]);
    assert!(!c.probes.schedule("echo").unwrap().enabled);
    assert_eq!(c.slo.write_p99.get(), std::time::Duration::from_micros(1));
    assert_eq!(c.scylla.keyspace, "chat_2");
    assert_eq!(c.redis.url, "redis://cache:6380");
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Values of every TOML type, including ones no key accepts.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:?}")),
            any::<bool>().prop_map(|v| v.to_string()),
            "[a-z0-9 ._:/@-]{0,24}".prop_map(|s| format!("{s:?}")),
            Just("[]".to_string()),
            Just("[\"127.0.0.1:9042\", 5]".to_string()),
            Just("{ a = 1 }".to_string()),
            Just("\"-5s\"".to_string()),
            Just("1e400".to_string()),
            Just("nan".to_string()),
            Just("-inf".to_string()),
        ]
    }

    /// Real key paths (and a few that are not) with arbitrary values.
    fn document() -> impl Strategy<Value = String> {
        let defaults = toml::to_string(&load("").unwrap()).unwrap();
        let mut keys: Vec<(String, String)> = vec![];
        let mut section = String::new();
        for line in defaults.lines() {
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_string();
            } else if let Some((k, _)) = line.split_once(" = ") {
                keys.push((section.clone(), k.to_string()));
            }
        }
        keys.push(("bogus".into(), "x".into()));
        keys.push(("probes.nope".into(), "interval".into()));
        let keys = Just(keys);
        (
            keys,
            proptest::collection::vec((any::<prop::sample::Index>(), value()), 0..12),
        )
            .prop_map(|(keys, picks)| {
                let mut doc = String::new();
                for (i, v) in picks {
                    let (section, key) = i.get(&keys);
                    doc.push_str(&format!("[{section}]\n{key} = {v}\n"));
                }
                doc
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any mix of real keys and wrong values: an Ok config that validates, or errors with
        /// key paths — never a panic.
        #[test]
        fn structured_garbage(doc in document()) {
            match load_str(&doc, Path::new("fuzz.toml"), [], &testing::catalog()) {
                Ok(c) => prop_assert!(c.validate().is_empty()),
                Err(ConfigError::Invalid { errors, .. }) => {
                    prop_assert!(!errors.is_empty());
                    prop_assert!(errors.iter().all(|e| !e.key.is_empty() && !e.message.is_empty()));
                }
                Err(ConfigError::Syntax { .. }) => {} // e.g. a table given twice
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }

        /// Arbitrary bytes (as text) and arbitrary environment overrides never panic either.
        #[test]
        fn arbitrary_text_and_env(text in "\\PC{0,200}", key in "[A-Z_]{1,20}", val in "\\PC{0,20}") {
            let env = [(format!("CHATLOAD_TRAFFIC__{key}"), val), ("CHATLOAD_A__B__C".into(), "1".into())];
            let _ = load_str(&text, Path::new("fuzz.toml"), env, &testing::catalog());
        }
    }
}

#[test]
fn instance_index_comes_from_the_pod_ordinal_unless_set() {
    fn pod(name: &'static str) -> (&'static str, &'static str) {
        ("CHATLOAD_POD_NAME", name)
    }
    let c = load_env("[instance]\ncount = 3\n", &[pod("chatload-2")]).unwrap();
    assert_eq!(c.instance.index, 2);
    // The file wins, and so does CHATLOAD_INSTANCE__INDEX.
    let c = load_env("[instance]\ncount = 3\nindex = 1\n", &[pod("chatload-2")]).unwrap();
    assert_eq!(c.instance.index, 1);
    let c = load_env(
        "[instance]\ncount = 3\n",
        &[pod("chatload-2"), ("CHATLOAD_INSTANCE__INDEX", "0")],
    )
    .unwrap();
    assert_eq!(c.instance.index, 0);
    // An ordinal beyond the count, or no ordinal at all, names the variable.
    let errs = errors("[instance]\ncount = 2\n", &[pod("chatload-5")]);
    assert!(
        errs[0].starts_with("instance.index (from $CHATLOAD_POD_NAME): must be less"),
        "{errs:?}"
    );
    let errs = errors("", &[pod("chatload-web")]);
    assert!(
        errs[0].starts_with("instance.index (from $CHATLOAD_POD_NAME): invalid type"),
        "{errs:?}"
    );
    // Without the variable: the default, 0.
    assert_eq!(load_env("", &[]).unwrap().instance.index, 0);
}

#[test]
fn env_value_that_looks_like_a_number_can_be_a_string() {
    let c = load_env("", &[("CHATLOAD_SCYLLA__USERNAME", "1234")]).unwrap();
    assert_eq!(c.scylla.username, "1234");
    // Kept exactly as written, not as the number TOML would read (31, 1000, 1000.0, true).
    for raw in ["0x1F", "1_000", "1e3", "true", "[1]", "007"] {
        let c = load_env(
            "",
            &[
                ("CHATLOAD_SCYLLA__USERNAME", "app"),
                ("CHATLOAD_SCYLLA__PASSWORD", raw),
            ],
        )
        .unwrap();
        assert_eq!(c.scylla.password.expose(), raw);
    }
}

#[test]
fn env_errors_name_the_variable() {
    let errs = errors(
        "",
        &[
            ("CHATLOAD_TRAFFIC__WRITE_RATE", "fast"),
            ("CHATLOAD_TRAFFIC__STREAMS", "0"),
            ("CHATLOAD_NOPE__X", "1"),
        ],
    );
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].starts_with("nope (from $CHATLOAD_NOPE__X): unknown field"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("traffic.streams (from $CHATLOAD_TRAFFIC__STREAMS): must be"),
        "{errs:?}"
    );
    assert!(
        errs[2]
            .starts_with("traffic.write_rate (from $CHATLOAD_TRAFFIC__WRITE_RATE): invalid type"),
        "{errs:?}"
    );
}
