//! Tests of validation: each rule names exactly its key, and reasonable values pass.

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
