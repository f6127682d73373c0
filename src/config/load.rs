//! Reading a config file, merging environment overrides, and collecting every problem with its key path.
//!
//! Serde stops at the first error, but a user wants them all. So each leaf key of the user's tree is
//! tried on its own, set into the default tree, and deserialized: every key that fails is reported at its
//! own path ("unknown field" for keys that do not exist, a type error for wrong values). The keys that pass
//! are then deserialized together and [`Config::validate`] adds the semantic problems.

use super::catalog::Catalog;
use super::model::{Config, SloConfig};
use super::rules::FieldError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Prefix of the environment variables that override config keys: `CHATLOAD_<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "CHATLOAD_";
/// Separator between the parts of a key path in an environment variable name.
pub const ENV_SEPARATOR: &str = "__";
/// The pod's name (set from the Downward API in a StatefulSet); when `instance.index` is set neither
/// in the file nor in the environment, its trailing ordinal (`chatload-2` → 2) is the index.
pub const POD_NAME_ENV: &str = "CHATLOAD_POD_NAME";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("failed to parse config file {path} as TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
    /// One or more keys are wrong.
    #[error("invalid configuration in {path}: {} problem(s)\n{}", .errors.len(), list(.errors))]
    Invalid {
        /// The file (or `<env>` when no file was given).
        path: PathBuf,
        /// Every problem, in key order.
        errors: Vec<FieldError>,
    },
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Load `path` for the probes of `catalog`, apply `CHATLOAD_*__*` variables of this process's
/// environment, and validate.
pub fn load(path: &Path, catalog: &Catalog) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path, std::env::vars(), catalog)
}

/// Load config `text` (named `path` in messages) for the probes of `catalog` with the given
/// environment, and validate.
pub fn load_str(
    text: &str,
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    catalog: &Catalog,
) -> Result<Config, ConfigError> {
    let mut tree: Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let env: Vec<(String, String)> = env.into_iter().collect();
    let mut env_keys = apply_env(&mut tree, env.iter().cloned());
    index_from_pod_name(&mut tree, &env, &mut env_keys);

    let mut defaults = Value::try_from(Config::default()).expect("default config serializes");
    let probe_defaults = probe_defaults(catalog);
    merge(
        defaults.as_table_mut().expect("a config is a table"),
        &probe_defaults,
    );
    let mut leaves = Vec::new();
    collect_leaves(&tree, &defaults, &mut Vec::new(), &mut leaves);

    let mut errors = Vec::new();
    // The probes' tables and `[slo]` keys are maps to serde: their defaults come from the catalog.
    let mut good = probe_defaults;
    for (key_path, value) in leaves {
        let raw_env = env_keys.get(&key_path).map(|(_, raw)| raw.as_str());
        // An unknown table is one leaf; name the variable that put a key below it.
        let env_var = env_keys
            .iter()
            .find(|(k, _)| k.starts_with(&key_path))
            .map(|(_, (var, _))| var.clone());
        match check_leaf(&defaults, catalog, &key_path, &value, raw_env) {
            Ok(accepted) => set_path(&mut good, &key_path, accepted),
            Err(message) => errors.push(FieldError {
                key: key_path.join("."),
                message,
                env: env_var,
            }),
        }
    }

    let mut config: Config = Value::Table(good)
        .try_into()
        .expect("keys that pass one by one deserialize together");
    config.probes.set_catalog(catalog.clone());
    let failed: Vec<String> = errors.iter().map(|e| e.key.clone()).collect();
    for mut e in config.validate() {
        // A key that failed to parse was replaced by its default; don't report that default too.
        if failed.iter().any(|k| k == &e.key) {
            continue;
        }
        e.env = env_keys
            .iter()
            .find(|(k, _)| k.join(".") == e.key)
            .map(|(_, (var, _))| var.clone());
        errors.push(e);
    }

    if errors.is_empty() {
        Ok(config)
    } else {
        errors.sort_by(|a, b| a.key.cmp(&b.key));
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            errors,
        })
    }
}

/// Merge `CHATLOAD_A__B=value` into `tree` at `a.b`; returns which key paths came from which variable.
///
/// The value is read as a TOML value (`500`, `true`, `["h:9042"]`) when it parses as one, else as a string.
fn apply_env(
    tree: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<Vec<String>, (String, String)> {
    let mut origins = BTreeMap::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains(ENV_SEPARATOR))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let key_path: Vec<String> = name[ENV_PREFIX.len()..]
            .split(ENV_SEPARATOR)
            .map(str::to_ascii_lowercase)
            .collect();
        if key_path.iter().any(String::is_empty) {
            continue;
        }
        set_path(tree, &key_path, parse_env_value(&raw));
        origins.insert(key_path, (name, raw));
    }
    origins
}

/// Set `instance.index` from the ordinal of [`POD_NAME_ENV`] when nothing else sets it.
fn index_from_pod_name(
    tree: &mut Table,
    env: &[(String, String)],
    origins: &mut BTreeMap<Vec<String>, (String, String)>,
) {
    let set = tree
        .get("instance")
        .and_then(Value::as_table)
        .is_some_and(|t| t.contains_key("index"));
    if set {
        return;
    }
    let Some((_, pod)) = env.iter().find(|(k, _)| k == POD_NAME_ENV) else {
        return;
    };
    let ordinal = pod.rsplit_once('-').map_or(pod.as_str(), |(_, n)| n);
    let key = vec!["instance".to_string(), "index".to_string()];
    // Not a number: leave it to validation to name the variable.
    let value = ordinal
        .parse::<i64>()
        .map_or_else(|_| Value::String(pod.clone()), Value::Integer);
    set_path(tree, &key, value);
    origins.insert(key, (POD_NAME_ENV.to_string(), pod.clone()));
}

fn parse_env_value(raw: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

/// Every leaf of `tree`: a non-table value, or a table where the defaults have no table to descend into.
fn collect_leaves(
    tree: &Table,
    defaults: &Value,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Value)>,
) {
    for (key, value) in tree {
        prefix.push(key.clone());
        let default_child = defaults.get(key);
        match (value, default_child) {
            (Value::Table(t), Some(d @ Value::Table(_))) => collect_leaves(t, d, prefix, out),
            _ => out.push((prefix.clone(), value.clone())),
        }
        prefix.pop();
    }
}

/// Try one leaf set into the defaults; returns the value to keep, or serde's complaint.
fn check_leaf(
    defaults: &Value,
    catalog: &Catalog,
    key_path: &[String],
    value: &Value,
    raw_env: Option<&str>,
) -> Result<Value, String> {
    let attempt = |v: &Value| {
        let Value::Table(mut t) = defaults.clone() else {
            unreachable!("config serializes to a table")
        };
        set_path(&mut t, key_path, v.clone());
        check_probes(catalog, &t).map_err(|e| plain_types(&e))?;
        Value::Table(t)
            .try_into::<Config>()
            .map(|_| ())
            .map_err(|e| plain_types(e.message()))
    };
    match attempt(value) {
        Ok(()) => Ok(value.clone()),
        Err(first) => {
            // `CHATLOAD_SCYLLA__PASSWORD=0x1F` means the string "0x1F", not 31: retry an environment
            // value that parsed as another type with its text exactly as given.
            if let Some(raw) = raw_env.filter(|_| !value.is_str()) {
                let as_string = Value::String(raw.to_string());
                if attempt(&as_string).is_ok() {
                    return Ok(as_string);
                }
            }
            Err(first)
        }
    }
}

/// serde names Rust types ("expected f64"); users think in TOML values.
fn plain_types(message: &str) -> String {
    message
        .replace("expected f64", "expected a number")
        .replace("expected u32", "expected a whole number >= 0")
        .replace("expected u64", "expected a whole number >= 0")
        .replace("expected a boolean", "expected true or false")
}

/// The defaults `catalog` adds to a config tree: each probe's table and its `[slo]` keys.
fn probe_defaults(catalog: &Catalog) -> Table {
    let mut probes = Table::new();
    let mut slo = Table::new();
    for p in catalog.specs() {
        let Value::Table(mut t) = Value::try_from(&p.schedule).expect("a schedule serializes")
        else {
            unreachable!("a struct serializes to a table")
        };
        t.extend((p.options)());
        probes.insert(p.name.into(), Value::Table(t));
        for s in p.slos {
            slo.insert(s.key.into(), s.default.to_toml());
        }
    }
    Table::from_iter([
        ("probes".to_string(), Value::Table(probes)),
        ("slo".to_string(), Value::Table(slo)),
    ])
}

/// Serde's complaint about the probe tables and `[slo]` keys of `tree`, if any: tables of probes
/// `catalog` does not have, keys a probe does not have, values of the wrong type.
fn check_probes(catalog: &Catalog, tree: &Table) -> Result<(), String> {
    let names = || {
        catalog
            .specs()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(probes) = tree.get("probes").and_then(Value::as_table) {
        for (name, table) in probes {
            let Some(spec) = catalog.get(name) else {
                return Err(format!(
                    "unknown field `{name}`, expected one of {}",
                    names()
                ));
            };
            let mut own = table.as_table().cloned().unwrap_or_default();
            for key in ["enabled", "interval", "timeout", "jitter"] {
                own.remove(key);
            }
            (spec.parse)(&own)?;
        }
    }
    if let Some(slo) = tree.get("slo").and_then(Value::as_table) {
        for (key, value) in slo {
            if SloConfig::TRAFFIC_KEYS.contains(&key.as_str()) {
                continue;
            }
            let Some((_, spec)) = catalog.slos().find(|(_, s)| s.key == key) else {
                let keys: Vec<String> = SloConfig::TRAFFIC_KEYS
                    .iter()
                    .copied()
                    .chain(catalog.slos().map(|(_, s)| s.key))
                    .map(|k| format!("`{k}`"))
                    .collect();
                return Err(format!(
                    "unknown field `{key}`, expected one of {}",
                    keys.join(", ")
                ));
            };
            spec.default.parse(value)?;
        }
    }
    Ok(())
}

/// Merge `from` into `into`, tables key by key (`from` wins on other values).
fn merge(into: &mut Table, from: &Table) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

fn set_path(table: &mut Table, key_path: &[String], value: Value) {
    let (last, parents) = key_path.split_last().expect("key paths are never empty");
    let mut t = table;
    for k in parents {
        let entry = t
            .entry(k.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        t = entry.as_table_mut().expect("just made a table");
    }
    t.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
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
            Err(ConfigError::Invalid { errors, .. }) => {
                errors.iter().map(|e| e.to_string()).collect()
            }
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
            errs[2].starts_with(
                "traffic.write_rate (from $CHATLOAD_TRAFFIC__WRITE_RATE): invalid type"
            ),
            "{errs:?}"
        );
    }
}
