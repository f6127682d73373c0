//! Problems with keys: [`FieldError`] (one problem at one key path) and [`Rules`], which collects
//! them with the checks that many keys share. Each probe's declaration reports its own keys here.

use super::duration::HumanDuration;
use std::fmt;
use std::time::Duration;

/// Highest rate (operations per second) one key accepts.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Cassandra's and ScyllaDB's largest TTL: 20 years.
pub const MAX_TTL: Duration = Duration::from_secs(630_720_000);
/// Most messages in one UNLOGGED BATCH; more trips the servers' batch size warnings and limits.
pub const MAX_BATCH: u32 = 100;
/// Most traffic threads (`traffic.threads`).
pub const MAX_TRAFFIC_THREADS: u32 = 64;

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted key path, `traffic.write_rate`.
    pub key: String,
    /// What is wrong, in words.
    pub message: String,
    /// The environment variable the value came from, if it did not come from the file.
    pub env: Option<String>,
}

impl FieldError {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            env: None,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env {
            Some(var) => write!(f, "{} (from ${var}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// The problems found so far; each probe's declaration reports its own keys' problems here.
#[derive(Default)]
pub struct Rules {
    errors: Vec<FieldError>,
}

impl Rules {
    /// A problem at `key`.
    pub fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(key, message));
    }

    /// `<section>.password` and `<section>.password_file`: one or the other, and a readable file.
    pub(super) fn secret(&mut self, section: &str, inline: &str, file: &str) {
        self.secret_named(section, ("password", "password_file"), inline, file);
    }

    /// A secret given inline (key `names.0`) or as a file (key `names.1`) of `section`: one or
    /// the other, and a readable file.
    pub(super) fn secret_named(
        &mut self,
        section: &str,
        (inline_key, file_key): (&str, &str),
        inline: &str,
        file: &str,
    ) {
        if !inline.is_empty() && !file.is_empty() {
            self.fail(
                format!("{section}.{file_key}"),
                format!("set either {inline_key} or {file_key}, not both"),
            );
        }
        if !file.is_empty()
            && let Err(e) = std::fs::read_to_string(file)
        {
            self.fail(
                format!("{section}.{file_key}"),
                format!("cannot read {file:?}: {e}"),
            );
        }
    }

    /// A TLS client's files: each readable and well-formed, the key with its certificate.
    pub(super) fn client_tls(
        &mut self,
        section: &str,
        ca_file: &str,
        cert_file: &str,
        key_file: &str,
    ) {
        use crate::tls::{load_certs, load_key};
        use std::path::Path;
        if !ca_file.is_empty()
            && let Err(e) = crate::tls::root_store(ca_file)
        {
            self.fail(format!("{section}.ca_file"), e.to_string());
        }
        match (cert_file.is_empty(), key_file.is_empty()) {
            (true, true) => {}
            (false, true) => self.fail(
                format!("{section}.key_file"),
                "cert_file is set, so the key_file of that certificate is needed too",
            ),
            (true, false) => self.fail(
                format!("{section}.cert_file"),
                "key_file is set, so the cert_file it belongs to is needed too",
            ),
            (false, false) => {
                if let Err(e) = load_certs(Path::new(cert_file)) {
                    self.fail(format!("{section}.cert_file"), e.to_string());
                }
                if let Err(e) = load_key(Path::new(key_file)) {
                    self.fail(format!("{section}.key_file"), e.to_string());
                }
            }
        }
    }

    /// A duration that must not be zero.
    pub fn positive(&mut self, key: &str, d: HumanDuration) {
        if d.get().is_zero() {
            self.fail(key, "must be > 0, got 0s");
        }
    }

    /// A duration of at least a second.
    pub fn at_least_a_second(&mut self, key: &str, d: HumanDuration) {
        if d.get() < Duration::from_secs(1) {
            self.fail(key, format!("must be at least 1s, got {d}"));
        }
    }

    /// A TTL: whole seconds, 1 s to 20 years.
    pub fn ttl(&mut self, key: &str, d: HumanDuration) {
        let d = d.get();
        if d < Duration::from_secs(1) || d > MAX_TTL || d.subsec_nanos() != 0 {
            self.fail(
                key,
                format!(
                    "must be whole seconds between 1s and 20 years (630720000s), got {}",
                    humantime::format_duration(d)
                ),
            );
        }
    }

    /// A count that must not be zero.
    pub fn nonzero(&mut self, key: &str, n: u32) {
        if n == 0 {
            self.fail(key, "must be > 0, got 0");
        }
    }

    pub(super) fn rate(&mut self, key: &str, r: f64, zero_ok: bool) {
        let low_ok = if zero_ok { r >= 0.0 } else { r > 0.0 };
        if !r.is_finite() || !low_ok || r > MAX_RATE {
            let low = if zero_ok { ">= 0" } else { "> 0" };
            self.fail(
                key,
                format!("must be {low} and <= {MAX_RATE} per second, got {r}"),
            );
        }
    }

    pub(super) fn ratio(&mut self, key: &str, r: f64) {
        if !(r > 0.0 && r <= 1.0) {
            self.fail(key, format!("must be a ratio in (0, 1], got {r}"));
        }
    }
}

impl Rules {
    /// Every problem found, in the order found.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }
}

/// A lowercase CQL identifier (a keyspace chatload only reads may be any).
pub fn check_identifier(ks: &str) -> Result<(), String> {
    let mut chars = ks.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || ks.len() > 48 {
        return Err(format!(
            "must be a lowercase CQL identifier (a-z first, then a-z, 0-9, _; at most 48), got {ks:?}"
        ));
    }
    Ok(())
}
