//! The second stage of loading: rules that types cannot express, each reported with its key path.

use super::backends::ReplicationStrategy;
use super::model::Config;
use super::rules::{FieldError, MAX_BATCH, Rules};
use super::spec::SloValue;
use std::time::Duration;

impl Config {
    /// Every semantic problem of this config, with its key path; empty when it is valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut v = Rules::default();
        let c = self;

        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log.level) {
            v.fail("log.level", format!("not a valid log filter: {e}"));
        }

        // [scylla]
        if c.scylla.hosts.is_empty() {
            v.fail("scylla.hosts", "must name at least one host:port");
        }
        for (i, h) in c.scylla.hosts.iter().enumerate() {
            if let Err(e) = check_host_port(h) {
                v.fail(format!("scylla.hosts[{i}]"), e);
            }
        }
        if let Err(e) = check_keyspace(&c.scylla.keyspace) {
            v.fail("scylla.keyspace", e);
        }
        v.positive("scylla.request_timeout", c.scylla.request_timeout);
        v.positive("scylla.connect_timeout", c.scylla.connect_timeout);
        v.secret(
            "scylla",
            c.scylla.password.expose(),
            &c.scylla.password_file,
        );
        if (!c.scylla.password.is_empty() || !c.scylla.password_file.is_empty())
            && c.scylla.username.is_empty()
        {
            v.fail(
                "scylla.username",
                "a password is set, so a username is needed too",
            );
        }
        let tls = &c.scylla.tls;
        let tls_files = [
            ("ca_file", &tls.ca_file),
            ("cert_file", &tls.cert_file),
            ("key_file", &tls.key_file),
        ];
        if tls.enabled {
            v.client_tls("scylla.tls", &tls.ca_file, &tls.cert_file, &tls.key_file);
        } else if let Some((key, _)) = tls_files.iter().find(|(_, f)| !f.is_empty()) {
            v.fail(
                format!("scylla.tls.{key}"),
                "is set but scylla.tls.enabled is false; enable TLS or remove it",
            );
        }
        let r = &c.scylla.replication;
        match r.strategy {
            ReplicationStrategy::Simple => {
                if r.replication_factor == 0 {
                    v.fail(
                        "scylla.replication.replication_factor",
                        "must be > 0, got 0",
                    );
                }
            }
            ReplicationStrategy::NetworkTopology => {
                if r.datacenters.is_empty() {
                    v.fail(
                        "scylla.replication.datacenters",
                        "network_topology needs at least one datacenter, e.g. { dc1 = 3 }",
                    );
                }
                for (dc, n) in &r.datacenters {
                    if *n == 0 {
                        v.fail(
                            format!("scylla.replication.datacenters.{dc}"),
                            "must be > 0, got 0",
                        );
                    }
                    if dc.is_empty() || dc.contains('\'') {
                        v.fail(
                            format!("scylla.replication.datacenters.{dc}"),
                            "not a datacenter name",
                        );
                    }
                }
            }
        }
        v.ttl("scylla.default_ttl", c.scylla.default_ttl);

        // [redis]
        if let Err(e) = redis::Client::open(c.redis.url.as_str()) {
            v.fail(
                "redis.url",
                format!("not a Redis URL: {e} (write it like \"redis://host:6379\")"),
            );
        }
        let rediss = c.redis.url.starts_with("rediss://");
        let rt = &c.redis.tls;
        if rediss {
            v.client_tls("redis.tls", &rt.ca_file, &rt.cert_file, &rt.key_file);
        } else if let Some(key) = [
            ("ca_file", &rt.ca_file),
            ("cert_file", &rt.cert_file),
            ("key_file", &rt.key_file),
        ]
        .iter()
        .find_map(|(k, f)| (!f.is_empty()).then_some(k))
        {
            v.fail(
                format!("redis.tls.{key}"),
                "is set but redis.url is not rediss://; TLS files apply to rediss:// URLs only",
            );
        }
        v.secret("redis", c.redis.password.expose(), &c.redis.password_file);
        if (!c.redis.password.is_empty() || !c.redis.password_file.is_empty())
            && let Ok(info) = redis::IntoConnectionInfo::into_connection_info(c.redis.url.as_str())
            && info.redis_settings().password().is_some()
        {
            v.fail(
                "redis.url",
                "has a password and redis.password/password_file is set too; keep one",
            );
        }
        if c.redis.cache_length == 0 {
            v.fail("redis.cache_length", "must be > 0, got 0");
        }
        v.at_least_a_second("redis.cache_ttl", c.redis.cache_ttl);
        if c.redis.key_prefix.is_empty() || c.redis.key_prefix.chars().any(char::is_whitespace) {
            v.fail(
                "redis.key_prefix",
                format!(
                    "must be non-empty without spaces, got {:?}",
                    c.redis.key_prefix
                ),
            );
        }
        v.positive("redis.request_timeout", c.redis.request_timeout);
        v.positive("redis.connect_timeout", c.redis.connect_timeout);

        // [http]
        if let Err(e) = crate::web::WebGuard::load(&c.http.web_config_file) {
            v.fail("http.web_config_file", e.to_string());
        }

        // [traffic]
        let t = &c.traffic;
        v.rate("traffic.write_rate", t.write_rate, false);
        v.rate("traffic.read_rate", t.read_rate, true);
        v.nonzero("traffic.streams", t.streams);
        v.nonzero("traffic.senders", t.senders);
        v.nonzero("traffic.max_in_flight", t.max_in_flight);
        if !(1..=MAX_BATCH).contains(&t.batch_size) {
            v.fail(
                "traffic.batch_size",
                format!("must be between 1 and {MAX_BATCH}, got {}", t.batch_size),
            );
        }
        if !t.zipf_exponent.is_finite() || t.zipf_exponent < 0.0 {
            v.fail(
                "traffic.zipf_exponent",
                format!("must be >= 0, got {}", t.zipf_exponent),
            );
        }
        let mix = &t.message_mix;
        let shares = [
            ("text", mix.text),
            ("mention", mix.mention),
            ("code", mix.code),
            ("file", mix.file),
        ];
        for (name, share) in shares {
            if !share.is_finite() || share < 0.0 {
                v.fail(
                    format!("traffic.message_mix.{name}"),
                    format!("must be >= 0, got {share}"),
                );
            }
        }
        if shares.iter().map(|(_, s)| s.max(0.0)).sum::<f64>() <= 0.0 {
            v.fail("traffic.message_mix", "at least one share must be > 0");
        }
        v.nonzero("traffic.text_length_mean", t.text_length_mean);
        if t.text_length_max < t.text_length_mean {
            v.fail(
                "traffic.text_length_max",
                format!(
                    "must be >= text_length_mean ({}), got {}",
                    t.text_length_mean, t.text_length_max
                ),
            );
        }
        if let Some(ttl) = t.ttl {
            v.ttl("traffic.ttl", ttl);
        }

        // [probes.*]: the keys every probe has, then each probe's own rules.
        for (name, p) in c.probes.iter() {
            if p.interval.get() < Duration::from_millis(100) {
                v.fail(
                    format!("probes.{name}.interval"),
                    format!("must be >= 100ms, got {}", p.interval),
                );
            } else if p.jitter.get() >= p.interval.get() {
                v.fail(
                    format!("probes.{name}.jitter"),
                    format!(
                        "must be shorter than the interval ({}), got {}",
                        p.interval, p.jitter
                    ),
                );
            }
            v.positive(&format!("probes.{name}.timeout"), p.timeout);
        }
        for spec in c.probes.catalog().specs() {
            if let Some(table) = c.probes.table(spec.name) {
                (spec.validate)(table, &mut v);
            }
        }

        // [slo]
        let s = &c.slo;
        v.positive("slo.write_p99", s.write_p99);
        for (_, spec) in c.probes.catalog().slos() {
            let key = format!("slo.{}", spec.key);
            match c.slo.threshold(spec) {
                SloValue::Duration(d) => v.positive(&key, d),
                SloValue::Number(n) if !n.is_finite() || n < 0.0 => {
                    v.fail(key, format!("must be >= 0, got {n}"));
                }
                SloValue::Number(_) => {}
            }
        }
        v.ratio("slo.write_success", s.write_success);
        if s.write_success == 1.0 {
            v.fail(
                "slo.write_success",
                "must be < 1: a 100 % target leaves no error budget, so its burn rate is \
                 undefined (use 0.9999 or the like)"
                    .to_string(),
            );
        }
        v.ratio("slo.throughput_ratio", s.throughput_ratio);

        // [instance]
        let i = &c.instance;
        if i.count == 0 {
            v.fail("instance.count", "must be > 0, got 0");
        } else if i.index >= i.count {
            v.fail(
                "instance.index",
                format!(
                    "must be less than instance.count ({}), got {}",
                    i.count, i.index
                ),
            );
        }
        if i.count > t.streams && t.streams > 0 {
            v.fail(
                "instance.count",
                format!(
                    "each instance needs a stream of its own: {} instances, traffic.streams = {}",
                    i.count, t.streams
                ),
            );
        }

        v.into_errors()
    }
}

/// `host:port` with a non-empty host and a port in 1..=65535; an IP must be a valid one.
pub fn check_host_port(s: &str) -> Result<(), String> {
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("port must be 1-65535, got 0 in {s:?}"));
        }
        return Ok(());
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("must be host:port, got {s:?}"));
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("port must be 1-65535, got {port:?} in {s:?}")),
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !host.starts_with(['-', '.'])
        && !host.ends_with('-');
    // All digits and dots is an IPv4 address attempt; it must be a valid one.
    let looks_ipv4 = host.chars().all(|c| c.is_ascii_digit() || c == '.');
    if !host_ok || (looks_ipv4 && host.parse::<std::net::Ipv4Addr>().is_err()) {
        return Err(format!(
            "not a valid host name or IP address: {host:?} in {s:?}"
        ));
    }
    Ok(())
}

/// A keyspace chatload may own: a lowercase CQL identifier, not a system keyspace.
pub fn check_keyspace(ks: &str) -> Result<(), String> {
    let mut chars = ks.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || ks.len() > 48 {
        return Err(format!(
            "must be a lowercase CQL identifier (a-z first, then a-z, 0-9, _; at most 48), got {ks:?}"
        ));
    }
    if ks.starts_with("system") {
        return Err(format!(
            "{ks:?} is a system keyspace name; chatload only writes to a keyspace of its own"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    /// The default config with the two made-up probes of the config's tests.
    fn with_probes() -> Config {
        crate::config::load_str(
            "",
            std::path::Path::new("t"),
            [],
            &crate::config::catalog::testing::catalog(),
        )
        .unwrap()
    }

    fn probe<'a>(c: &'a mut Config, name: &str) -> &'a mut crate::config::ProbeConfig {
        c.probes.schedule_mut(name).unwrap()
    }

    fn keys(c: &Config) -> Vec<String> {
        c.validate().into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn the_default_config_is_valid() {
        assert_eq!(Config::default().validate(), vec![]);
    }

    /// Each rule, table-driven: a change to the default config and the key that must be reported.
    #[test]
    fn every_rule_reports_its_key() {
        type Change = fn(&mut Config);
        let cases: &[(Change, &str)] = &[
            (|c| c.log.level = "info,=[".into(), "log.level"),
            (|c| c.scylla.hosts.clear(), "scylla.hosts"),
            (
                |c| c.scylla.hosts = vec!["nohost".into()],
                "scylla.hosts[0]",
            ),
            (|c| c.scylla.hosts = vec!["h:0".into()], "scylla.hosts[0]"),
            (
                |c| c.scylla.hosts = vec!["h:99999".into()],
                "scylla.hosts[0]",
            ),
            (
                |c| c.scylla.hosts = vec!["a:1".into(), "1.2.3.400:9042".into()],
                "scylla.hosts[1]",
            ),
            (|c| c.scylla.hosts = vec![":9042".into()], "scylla.hosts[0]"),
            (|c| c.scylla.keyspace = "system".into(), "scylla.keyspace"),
            (
                |c| c.scylla.keyspace = "system_auth".into(),
                "scylla.keyspace",
            ),
            (|c| c.scylla.keyspace = "Chat".into(), "scylla.keyspace"),
            (|c| c.scylla.keyspace = "1chat".into(), "scylla.keyspace"),
            (
                |c| c.scylla.keyspace = "chat-load".into(),
                "scylla.keyspace",
            ),
            (|c| c.scylla.keyspace = "".into(), "scylla.keyspace"),
            (|c| c.scylla.keyspace = "a".repeat(49), "scylla.keyspace"),
            (
                |c| c.scylla.request_timeout = HumanDuration::from_secs(0),
                "scylla.request_timeout",
            ),
            (
                |c| c.scylla.connect_timeout = HumanDuration::from_secs(0),
                "scylla.connect_timeout",
            ),
            (|c| c.scylla.password = "x".into(), "scylla.username"),
            (
                |c| {
                    c.scylla.username = "u".into();
                    c.scylla.password_file = "/nonexistent/secret".into();
                },
                "scylla.password_file",
            ),
            (
                |c| c.scylla.replication.replication_factor = 0,
                "scylla.replication.replication_factor",
            ),
            (
                |c| c.scylla.tls.ca_file = "/etc/hostname".into(),
                "scylla.tls.ca_file",
            ),
            (
                |c| {
                    c.scylla.tls.enabled = true;
                    c.scylla.tls.ca_file = "/nonexistent/ca.pem".into();
                },
                "scylla.tls.ca_file",
            ),
            (
                |c| {
                    c.scylla.tls.enabled = true;
                    c.scylla.tls.cert_file = "/nonexistent/client.pem".into();
                },
                "scylla.tls.key_file",
            ),
            (
                |c| c.redis.tls.ca_file = "/nonexistent/ca.pem".into(),
                "redis.tls.ca_file",
            ),
            (
                |c| {
                    c.redis.url = "rediss://127.0.0.1:6380".into();
                    c.redis.tls.key_file = "/nonexistent/client.key".into();
                },
                "redis.tls.cert_file",
            ),
            (
                |c| {
                    c.redis.password = "a".into();
                    c.redis.password_file = "/etc/hostname".into();
                },
                "redis.password_file",
            ),
            (
                |c| {
                    c.redis.url = "redis://u:pw@127.0.0.1:6379".into();
                    c.redis.password = "other".into();
                },
                "redis.url",
            ),
            (
                |c| c.http.web_config_file = "/nonexistent/web.yml".into(),
                "http.web_config_file",
            ),
            (
                |c| c.scylla.replication.strategy = ReplicationStrategy::NetworkTopology,
                "scylla.replication.datacenters",
            ),
            (
                |c| c.scylla.default_ttl = HumanDuration::from_secs(0),
                "scylla.default_ttl",
            ),
            (
                |c| c.scylla.default_ttl = HumanDuration::from_millis(1500),
                "scylla.default_ttl",
            ),
            (
                |c| c.scylla.default_ttl = HumanDuration::from_secs(700_000_000),
                "scylla.default_ttl",
            ),
            (|c| c.redis.url = "http://x".into(), "redis.url"),
            (|c| c.redis.cache_length = 0, "redis.cache_length"),
            (
                |c| c.redis.cache_ttl = HumanDuration::from_millis(10),
                "redis.cache_ttl",
            ),
            (|c| c.redis.key_prefix = "a b".into(), "redis.key_prefix"),
            (
                |c| c.redis.request_timeout = HumanDuration::from_secs(0),
                "redis.request_timeout",
            ),
            (|c| c.traffic.write_rate = 0.0, "traffic.write_rate"),
            (|c| c.traffic.write_rate = -5.0, "traffic.write_rate"),
            (|c| c.traffic.write_rate = f64::NAN, "traffic.write_rate"),
            (|c| c.traffic.write_rate = 2e6, "traffic.write_rate"),
            (|c| c.traffic.read_rate = -1.0, "traffic.read_rate"),
            (|c| c.traffic.streams = 0, "traffic.streams"),
            (|c| c.traffic.senders = 0, "traffic.senders"),
            (|c| c.traffic.max_in_flight = 0, "traffic.max_in_flight"),
            (|c| c.traffic.batch_size = 0, "traffic.batch_size"),
            (|c| c.traffic.batch_size = 101, "traffic.batch_size"),
            (|c| c.traffic.zipf_exponent = -1.0, "traffic.zipf_exponent"),
            (
                |c| c.traffic.message_mix.code = -0.1,
                "traffic.message_mix.code",
            ),
            (
                |c| {
                    c.traffic.message_mix = crate::config::MessageMix {
                        text: 0.0,
                        mention: 0.0,
                        code: 0.0,
                        file: 0.0,
                    }
                },
                "traffic.message_mix",
            ),
            (
                |c| c.traffic.text_length_mean = 0,
                "traffic.text_length_mean",
            ),
            (
                |c| c.traffic.text_length_max = 10,
                "traffic.text_length_max",
            ),
            (
                |c| c.traffic.ttl = Some(HumanDuration::from_millis(10)),
                "traffic.ttl",
            ),
            (
                |c| probe(c, "echo").interval = HumanDuration::from_millis(10),
                "probes.echo.interval",
            ),
            (
                |c| probe(c, "echo").timeout = HumanDuration::from_secs(0),
                "probes.echo.timeout",
            ),
            (
                |c| probe(c, "echo").jitter = HumanDuration::from_secs(60),
                "probes.echo.jitter",
            ),
            (
                |c| probe(c, "count").timeout = HumanDuration::from_millis(500),
                "probes.count.timeout",
            ),
            (
                |c| c.slo.write_p99 = HumanDuration::from_secs(0),
                "slo.write_p99",
            ),
            (|c| c.slo.write_success = 1.5, "slo.write_success"),
            (|c| c.slo.write_success = 1.0, "slo.write_success"),
            (|c| c.slo.throughput_ratio = 0.0, "slo.throughput_ratio"),
            (
                |c| {
                    c.slo.probes.insert("echo_p99".into(), "0s".into());
                },
                "slo.echo_p99",
            ),
            (
                |c| {
                    c.slo.probes.insert("count_cv".into(), (-0.1).into());
                },
                "slo.count_cv",
            ),
            (|c| c.instance.count = 0, "instance.count"),
            (|c| c.instance.index = 1, "instance.index"),
            (
                |c| {
                    c.instance.count = 5;
                    c.traffic.streams = 4;
                },
                "instance.count",
            ),
        ];
        for (i, (change, key)) in cases.iter().enumerate() {
            let mut c = with_probes();
            change(&mut c);
            assert_eq!(keys(&c), [*key], "case {i}: expected exactly {key}");
        }
    }

    #[test]
    fn reasonable_values_pass() {
        let mut c = Config::default();
        c.scylla.hosts = vec![
            "scylla-0.scylla.svc:9042".into(),
            "[::1]:9042".into(),
            "10.1.2.3:19042".into(),
        ];
        c.scylla.keyspace = "chat_staging_2".into();
        c.traffic.read_rate = 0.0;
        c.traffic.write_rate = 0.1;
        c.scylla.replication.strategy = ReplicationStrategy::NetworkTopology;
        c.scylla.replication.datacenters.insert("dc1".into(), 3);
        c.redis.url = "rediss://user:pw@cache.internal:6380/2".into();
        c.log.level = "info,chatload=debug".into();
        assert_eq!(c.validate(), vec![]);
    }
}
