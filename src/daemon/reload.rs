//! Live reload: SIGHUP and `POST /-/reload` re-read the configuration.
//!
//! A valid configuration is applied whole to what can change while running: the traffic's rates
//! (from the next due operation on), every probe's `enabled`/`interval`/`timeout`/`jitter` and
//! specific keys, the SLOs (probes, status page), and `http.web_config_file`, which is read again
//! (certificates, users). Keys that need a restart (`http.listen`, `log`,
//! `scylla`, `redis`, `instance`, the shape of the traffic: streams, senders, mix, write mode,
//! in-flight cap, TTL, seed; and the whole `[e2e]` canary) keep their running values, and the reload says which of them differ.
//! An invalid configuration is rejected with every problem, and the running one stays.
//! `chatload_config_reload_total{outcome}` counts both, `chatload_config_hash` follows the
//! effective configuration.

use crate::config::{self, Config, LiveConfig};
use crate::measure::metrics::Metrics;
use crate::traffic::Traffic;
use crate::web::{WebCell, WebGuard};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// Where a reload reads the configuration from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file (plus `CHATLOAD_*` environment variables), as `--config FILE`.
    File(PathBuf),
    /// Built-in defaults plus environment variables (no `--config`).
    Defaults,
    /// A configuration given in code: only [`Reloader::apply`] can change it.
    Fixed,
}

/// Re-reads and applies the configuration.
pub struct Reloader {
    source: ConfigSource,
    config: LiveConfig,
    /// One reload at a time: each merges into the value the previous one left.
    applying: Mutex<()>,
    traffic: Arc<Traffic>,
    metrics: Arc<Metrics>,
    web: Arc<WebCell>,
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Whether anything live changed.
    pub changed: bool,
    /// Keys that differ but need a restart (kept at their running values).
    pub need_restart: Vec<&'static str>,
}

impl Reloader {
    /// A reloader for the running `config`.
    pub fn new(
        source: ConfigSource,
        config: LiveConfig,
        traffic: Arc<Traffic>,
        metrics: Arc<Metrics>,
        web: Arc<WebCell>,
    ) -> Self {
        metrics.config_hash.set(config.get().hash() as f64);
        Self {
            source,
            config,
            applying: Mutex::new(()),
            traffic,
            metrics,
            web,
        }
    }

    /// The configuration in effect.
    pub fn current(&self) -> Config {
        (*self.config.get()).clone()
    }

    /// Re-read the source and apply it; `Err` carries every problem (the running config stays).
    pub fn reload(&self) -> Result<Applied, String> {
        // The probes a process has do not change: the new config is loaded for the running one's.
        let catalog = self.current().probes.catalog().clone();
        let loaded = match &self.source {
            ConfigSource::File(path) => config::load(path, &catalog),
            ConfigSource::Defaults => config::load_str(
                "",
                std::path::Path::new("<defaults>"),
                std::env::vars(),
                &catalog,
            ),
            ConfigSource::Fixed => {
                self.metrics
                    .config_reload
                    .with_label_values(&["error"])
                    .inc();
                return Err(
                    "this chatload was started without a config file or environment to reload"
                        .into(),
                );
            }
        };
        // The web config file is read again even when its path did not change: rotating a
        // certificate or a password is the point of reloading it.
        let loaded = loaded.map_err(|e| e.to_string()).and_then(|new| {
            // Histogram buckets are fixed when the process starts; a latency threshold that is not
            // one of them could not be judged exactly, so it waits for a restart (rejected whole).
            let outside =
                crate::measure::slo::thresholds_outside(&new, self.metrics.latency_buckets());
            if !outside.is_empty() {
                return Err(format!(
                    "{}: not a latency bucket bound of the running process (the bounds are set \
                     at start from the [slo] thresholds); restart chatload to apply it",
                    outside.join(", ")
                ));
            }
            WebGuard::load(&new.http.web_config_file)
                .map(|guard| (new, guard))
                .map_err(|e| format!("http.web_config_file: {e}"))
        });
        match loaded {
            Ok((new, guard)) => {
                self.web.set(guard);
                Ok(self.apply(new))
            }
            Err(e) => {
                self.metrics
                    .config_reload
                    .with_label_values(&["error"])
                    .inc();
                warn!(error = %e, "configuration reload rejected; the running configuration stays");
                Err(e.to_string())
            }
        }
    }

    /// Apply a valid configuration: its live parts now, the rest at the next restart.
    pub fn apply(&self, new: Config) -> Applied {
        let _one_at_a_time = self.applying.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.config.get();
        let (effective, need_restart) = merge(&current, new);
        let changed = effective != *current;
        self.traffic.set_rates(&effective);
        crate::measure::slo::export_objectives(&effective, &self.metrics);
        self.metrics.config_hash.set(effective.hash() as f64);
        self.metrics.config_reload.with_label_values(&["ok"]).inc();
        info!(
            changed,
            write_rate = effective.traffic.write_rate,
            read_rate = effective.traffic.read_rate,
            need_restart = ?need_restart,
            "configuration reloaded"
        );
        self.config.set(effective);
        Applied {
            changed,
            need_restart,
        }
    }
}

/// The configuration to run with after a reload to `new`, and the keys that need a restart.
pub fn merge(current: &Config, new: Config) -> (Config, Vec<&'static str>) {
    let mut effective = new.clone();
    let mut need_restart = Vec::new();
    macro_rules! keep {
        ($($path:ident).+, $name:literal) => {
            if current.$($path).+ != new.$($path).+ {
                need_restart.push($name);
                effective.$($path).+ = current.$($path).+.clone();
            }
        };
    }
    keep!(http.listen, "http.listen");
    keep!(log, "log");
    keep!(scylla, "scylla");
    keep!(redis, "redis");
    keep!(instance, "instance");
    keep!(traffic.streams, "traffic.streams");
    keep!(traffic.stream_distribution, "traffic.stream_distribution");
    keep!(traffic.zipf_exponent, "traffic.zipf_exponent");
    keep!(traffic.senders, "traffic.senders");
    keep!(traffic.max_in_flight, "traffic.max_in_flight");
    keep!(traffic.wake_interval, "traffic.wake_interval");
    keep!(traffic.threads, "traffic.threads");
    keep!(traffic.write_mode, "traffic.write_mode");
    keep!(traffic.batch_size, "traffic.batch_size");
    keep!(traffic.message_mix, "traffic.message_mix");
    keep!(traffic.text_length_mean, "traffic.text_length_mean");
    keep!(traffic.text_length_max, "traffic.text_length_max");
    keep!(traffic.ttl, "traffic.ttl");
    keep!(traffic.seed, "traffic.seed");
    keep!(traffic.drain_timeout, "traffic.drain_timeout");
    // The canary's threads, sockets and metric families are made at start.
    keep!(e2e, "e2e");
    (effective, need_restart)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    #[test]
    fn live_keys_apply_and_the_rest_waits_for_a_restart() {
        let current = crate::probes::registry::defaults();
        let mut new = current.clone();
        new.traffic.write_rate = 300.0;
        new.probes.schedule_mut("recent_50").unwrap().interval = HumanDuration::from_secs(2);
        new.slo.write_p99 = HumanDuration::from_millis(10);
        new.scylla.keyspace = "other".into();
        new.traffic.streams = 7;
        new.e2e.post.rate = 5.0;
        let (effective, need_restart) = merge(&current, new);
        assert_eq!(effective.traffic.write_rate, 300.0);
        assert_eq!(
            effective.probes.schedule("recent_50").unwrap().interval,
            HumanDuration::from_secs(2)
        );
        assert_eq!(effective.slo.write_p99, HumanDuration::from_millis(10));
        assert_eq!(
            effective.scylla.keyspace, "chatload",
            "kept until a restart"
        );
        assert_eq!(effective.traffic.streams, 100);
        assert_eq!(
            effective.e2e.post.rate, 100.0,
            "the canary is made at start"
        );
        assert_eq!(need_restart, ["scylla", "traffic.streams", "e2e"]);
    }

    #[test]
    fn the_hash_follows_the_effective_config_and_hides_secrets() {
        let a = crate::probes::registry::defaults();
        let mut b = a.clone();
        b.traffic.write_rate = 5.0;
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), crate::probes::registry::defaults().hash());
        let mut c = a.clone();
        c.scylla.username = "u".into();
        let mut d = c.clone();
        c.scylla.password = "one".into();
        d.scylla.password = "two".into();
        assert_eq!(c.hash(), d.hash(), "passwords are redacted before hashing");
        assert!(a.hash() < 1 << 48);
    }
}
