//! The second stage of loading: rules that types cannot express, each reported with its key path.

use super::backends::ReplicationStrategy;
use super::model::Config;
use super::rules::{FieldError, MAX_BATCH, MAX_TRAFFIC_THREADS, Rules, check_identifier};
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
        if let Some(threads) = t.threads
            && !(1..=MAX_TRAFFIC_THREADS).contains(&threads)
        {
            v.fail(
                "traffic.threads",
                format!("must be 1 to {MAX_TRAFFIC_THREADS} (or unset: automatic), got {threads}"),
            );
        }
        if t.wake_interval.get() > Duration::from_millis(10) {
            v.fail(
                "traffic.wake_interval",
                format!("must be at most 10ms, got {}", t.wake_interval),
            );
        }
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
        for (key, d) in [
            ("e2e_delivery_p95", s.e2e_delivery_p95),
            ("e2e_delivery_p99", s.e2e_delivery_p99),
            ("e2e_delivery_max", s.e2e_delivery_max),
            ("e2e_ws_connect_p95", s.e2e_ws_connect_p95),
            ("e2e_ws_connect_p99", s.e2e_ws_connect_p99),
            ("e2e_api_p95", s.e2e_api_p95),
            ("e2e_api_p99", s.e2e_api_p99),
            ("e2e_visible_p95", s.e2e_visible_p95),
        ] {
            v.positive(&format!("slo.{key}"), d);
        }
        for (key, r) in [
            ("e2e_delivery_success", s.e2e_delivery_success),
            ("e2e_ws_connect_success", s.e2e_ws_connect_success),
            ("e2e_subscribers_ready", s.e2e_subscribers_ready),
            ("e2e_api_success", s.e2e_api_success),
            ("e2e_api_throughput_ratio", s.e2e_api_throughput_ratio),
        ] {
            v.ratio(&format!("slo.{key}"), r);
        }
        for (key, n) in [
            ("e2e_duplicates_max", s.e2e_duplicates_max),
            ("e2e_out_of_order_max", s.e2e_out_of_order_max),
            ("e2e_queue_depth_max", s.e2e_queue_depth_max),
        ] {
            if !n.is_finite() || n < 0.0 || n.fract() != 0.0 {
                v.fail(
                    format!("slo.{key}"),
                    format!("must be a whole number >= 0, got {n}"),
                );
            }
        }

        // [e2e]
        c.e2e.validate(&mut v, super::e2e::nofile_hard_limit());

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
    check_identifier(ks)?;
    if ks.starts_with("system") {
        return Err(format!(
            "{ks:?} is a system keyspace name; chatload only writes to a keyspace of its own"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
