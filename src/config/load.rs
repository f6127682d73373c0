//! Reading a config file, merging environment overrides, and collecting every problem with its key path.
//!
//! Serde stops at the first error, but a user wants them all. So each leaf key of the user's tree is
//! tried on its own, set into the default tree, and deserialized: every key that fails is reported at its
//! own path ("unknown field" for keys that do not exist, a type error for wrong values). The keys that pass
//! are then deserialized together and [`Config::validate`] adds the semantic problems.

use super::catalog::Catalog;
use super::model::{Config, SloConfig};
use super::rules::FieldError;
use super::schedule::ProbeTable;
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
        check_probes(catalog, &t, key_path).map_err(|e| plain_types(&e))?;
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

/// Serde's complaint about what the leaf at `key_path` sets in the probes' part of `tree`, if
/// anything: the table of a probe `catalog` does not have, a key its probe does not have or a value
/// of the wrong type, an `[slo]` key no probe declares or a threshold of the wrong kind. Other
/// leaves are left to `Config`'s own deserialization.
fn check_probes(catalog: &Catalog, tree: &Table, key_path: &[String]) -> Result<(), String> {
    let unknown = |key: &str, known: Vec<&str>| {
        let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        format!(
            "unknown field `{key}`, expected one of {}",
            known.join(", ")
        )
    };
    match key_path {
        [section, name, ..] if section == "probes" => {
            let Some(spec) = catalog.get(name) else {
                return Err(unknown(name, catalog.specs().map(|s| s.name).collect()));
            };
            let table = tree
                .get("probes")
                .and_then(|p| p.get(name.as_str()))
                .cloned()
                .unwrap_or_else(|| Value::Table(Table::new()));
            // The keys every probe has are the schedule's; what is left is the probe's own.
            let table: ProbeTable = table
                .try_into()
                .map_err(|e: toml::de::Error| e.message().to_string())?;
            (spec.parse)(&table.own)
        }
        [section, key, ..] if section == "slo" => {
            if SloConfig::TRAFFIC_KEYS.contains(&key.as_str())
                || SloConfig::E2E_KEYS.contains(&key.as_str())
            {
                return Ok(());
            }
            let Some((_, spec)) = catalog.slos().find(|(_, s)| s.key == key) else {
                let keys = SloConfig::TRAFFIC_KEYS
                    .into_iter()
                    .chain(SloConfig::E2E_KEYS)
                    .chain(catalog.slos().map(|(_, s)| s.key))
                    .collect();
                return Err(unknown(key, keys));
            };
            let value = tree
                .get("slo")
                .and_then(|t| t.get(key.as_str()))
                .expect("the leaf was just set");
            spec.default.parse(value).map(drop)
        }
        _ => Ok(()),
    }
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
mod tests;
