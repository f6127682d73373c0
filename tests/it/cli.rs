//! The command line: exit codes and messages for good and bad configs.

use crate::common::{config_file, repo, run};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn config_check_accepts_the_documented_default() {
    let path = repo().join("config/chatload.toml");
    let out = run(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("write_rate = 1000.0") && shown.contains("[probes.recent_50]"),
        "{shown}"
    );
}

#[test]
fn config_check_names_an_unknown_table_and_key() {
    let f =
        config_file("[trafic]\nwrite_rate = 5\n[redis]\nurl = \"redis://h:1\"\ncache_size = 3\n");
    let out = run(&["config", "check", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("trafic: unknown field `trafic`"), "{err}");
    assert!(
        err.contains("redis.cache_size: unknown field `cache_size`"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing printed on stdout for an invalid config"
    );
}

#[test]
fn config_check_names_a_wrongly_typed_value() {
    let f = config_file("[traffic]\nwrite_rate = \"fast\"\n");
    let out = run(&["config", "check", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("traffic.write_rate: invalid type: string \"fast\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_check_redacts_secrets() {
    let f = config_file(
        "[scylla]\nusername = \"app\"\npassword = \"hunter2\"\n[redis]\nurl = \"redis://u:hunter3@h:6379\"\n",
    );
    let out = run(&["config", "check", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        !all.contains("hunter2") && !all.contains("hunter3"),
        "{all}"
    );
    assert!(all.contains("<redacted>"));
}

#[test]
fn env_overrides_reach_the_binary() {
    let path = repo().join("config/chatload.toml");
    let out = crate::common::bin()
        .args(["config", "check", path.to_str().unwrap()])
        .env("CHATLOAD_TRAFFIC__WRITE_RATE", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("traffic.write_rate (from $CHATLOAD_TRAFFIC__WRITE_RATE): must be > 0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn broken_toml_and_missing_files_exit_2() {
    let f = config_file("[traffic\n");
    let out = run(&["config", "check", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("failed to parse config file"),
        "{}",
        stderr(&out)
    );
    let out = run(&["config", "check", "/nonexistent/chatload.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("failed to read config file /nonexistent/chatload.toml"));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["run", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(run(&["config", "check"]).status.code(), Some(2));
}

#[test]
fn run_with_a_bad_config_starts_nothing() {
    let f = config_file("[traffic]\nstreams = 0\n[http]\nlisten = \"127.0.0.1:0\"\n");
    let out = run(&["run", "--config", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("traffic.streams: must be > 0, got 0"));
}

#[test]
fn schema_print_shows_the_spec_table() {
    let out = run(&["schema", "print"]);
    assert_eq!(out.status.code(), Some(0));
    let cql = String::from_utf8_lossy(&out.stdout);
    assert!(
        cql.contains("CREATE KEYSPACE IF NOT EXISTS chatload"),
        "{cql}"
    );
    assert!(cql.contains("CLUSTERING ORDER BY (timestamp DESC, message_id ASC)"));
    assert!(cql.contains("default_time_to_live = 2592000"));
}

#[test]
fn help_explains_the_commands() {
    let out = run(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "run",
        "schema",
        "config",
        "CHATLOAD_<SECTION>__<KEY>",
        "Exit codes",
    ] {
        assert!(help.contains(word), "{word} missing from --help:\n{help}");
    }
}

/// Every class of bad input the staging issue names, several cases each, through the real binary:
/// each exits 2, names the key (or flag / file position) that is wrong, and never panics. Prints a
/// `BADINPUT` line per class with its count.
#[test]
fn bad_input_of_every_class_exits_2_with_the_key_path() {
    let garbage = config_file("this is not a certificate\n");
    let g = garbage.path().to_str().unwrap().to_string();
    let web_plain = config_file("basic_auth_users:\n  prom: hunter2\n");
    let web = web_plain.path().to_str().unwrap().to_string();
    let web_unknown =
        config_file("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n");
    let webu = web_unknown.path().to_str().unwrap().to_string();
    // (class, file text, environment, what stderr must name)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "wrong type",
            "[traffic]\nwrite_rate = \"fast\"\n".into(),
            vec![],
            "traffic.write_rate",
        ),
        (
            "wrong type",
            "[traffic]\nstreams = 1.5\n".into(),
            vec![],
            "traffic.streams",
        ),
        (
            "wrong type",
            "[scylla]\nhosts = \"127.0.0.1:9042\"\n".into(),
            vec![],
            "scylla.hosts",
        ),
        (
            "wrong type",
            "[redis]\ncache = \"yes\"\n".into(),
            vec![],
            "redis.cache",
        ),
        (
            "wrong type",
            "[probes.recent_50]\ninterval = 5\n".into(),
            vec![],
            "probes.recent_50.interval",
        ),
        (
            "wrong type",
            "[slo]\nwrite_p99 = \"fast\"\n".into(),
            vec![],
            "slo.write_p99",
        ),
        (
            "wrong type",
            String::new(),
            vec![("CHATLOAD_TRAFFIC__WRITE_RATE", "lots")],
            "CHATLOAD_TRAFFIC__WRITE_RATE",
        ),
        (
            "negative or zero rate",
            "[traffic]\nwrite_rate = 0\n".into(),
            vec![],
            "traffic.write_rate",
        ),
        (
            "negative or zero rate",
            "[traffic]\nwrite_rate = -5\n".into(),
            vec![],
            "traffic.write_rate",
        ),
        (
            "negative or zero rate",
            "[traffic]\nread_rate = -1\n".into(),
            vec![],
            "traffic.read_rate",
        ),
        (
            "negative or zero rate",
            "[traffic]\nwrite_rate = nan\n".into(),
            vec![],
            "traffic.write_rate",
        ),
        (
            "negative or zero rate",
            "[traffic]\nwrite_rate = inf\n".into(),
            vec![],
            "traffic.write_rate",
        ),
        (
            "negative or zero rate",
            "[traffic]\nmax_in_flight = 0\n".into(),
            vec![],
            "traffic.max_in_flight",
        ),
        (
            "negative or zero rate",
            "[traffic]\nstreams = -3\n".into(),
            vec![],
            "traffic.streams",
        ),
        (
            "negative or zero rate",
            "[probes.recent_50]\ninterval = \"0s\"\n".into(),
            vec![],
            "probes.recent_50.interval",
        ),
        (
            "negative or zero rate",
            String::new(),
            vec![("CHATLOAD_TRAFFIC__WRITE_RATE", "0")],
            "CHATLOAD_TRAFFIC__WRITE_RATE",
        ),
        (
            "impossible address",
            "[http]\nlisten = \"localhost\"\n".into(),
            vec![],
            "http.listen",
        ),
        (
            "impossible address",
            "[http]\nlisten = \"127.0.0.1:99999\"\n".into(),
            vec![],
            "http.listen",
        ),
        (
            "impossible address",
            "[scylla]\nhosts = []\n".into(),
            vec![],
            "scylla.hosts",
        ),
        (
            "impossible address",
            "[scylla]\nhosts = [\"127.0.0.1\"]\n".into(),
            vec![],
            "scylla.hosts[0]",
        ),
        (
            "impossible address",
            "[scylla]\nhosts = [\"127.0.0.1:0\"]\n".into(),
            vec![],
            "scylla.hosts[0]",
        ),
        (
            "impossible address",
            "[scylla]\nhosts = [\"h:9042\", \":9042\"]\n".into(),
            vec![],
            "scylla.hosts[1]",
        ),
        (
            "impossible address",
            "[redis]\nurl = \"http://127.0.0.1:6379\"\n".into(),
            vec![],
            "redis.url",
        ),
        (
            "impossible address",
            "[redis]\nurl = \"127.0.0.1:6379\"\n".into(),
            vec![],
            "redis.url",
        ),
        (
            "system keyspace",
            "[scylla]\nkeyspace = \"system\"\n".into(),
            vec![],
            "scylla.keyspace",
        ),
        (
            "system keyspace",
            "[scylla]\nkeyspace = \"system_auth\"\n".into(),
            vec![],
            "scylla.keyspace",
        ),
        (
            "system keyspace",
            "[scylla]\nkeyspace = \"system_schema\"\n".into(),
            vec![],
            "scylla.keyspace",
        ),
        (
            "system keyspace",
            "[scylla]\nkeyspace = \"system_distributed\"\n".into(),
            vec![],
            "scylla.keyspace",
        ),
        (
            "system keyspace",
            String::new(),
            vec![("CHATLOAD_SCYLLA__KEYSPACE", "system_traces")],
            "scylla.keyspace",
        ),
        (
            "keyspace not a CQL identifier",
            "[scylla]\nkeyspace = \"\"\n".into(),
            vec![],
            "scylla.keyspace",
        ),
        (
            "keyspace not a CQL identifier",
            "[scylla]\nkeyspace = \"chat-load\"\n".into(),
            vec![],
            "scylla.keyspace",
        ),
        (
            "keyspace not a CQL identifier",
            "[scylla]\nkeyspace = \"1chat\"\n".into(),
            vec![],
            "scylla.keyspace",
        ),
        (
            "keyspace not a CQL identifier",
            "[scylla]\nkeyspace = \"chat;DROP\"\n".into(),
            vec![],
            "scylla.keyspace",
        ),
        (
            "keyspace not a CQL identifier",
            "[scylla]\nkeyspace = \"Chat\"\n".into(),
            vec![],
            "scylla.keyspace",
        ),
        (
            "keyspace not a CQL identifier",
            format!("[scylla]\nkeyspace = \"{}\"\n", "k".repeat(49)),
            vec![],
            "scylla.keyspace",
        ),
        (
            "unknown enum value",
            "[scylla]\nconsistency = \"most\"\n".into(),
            vec![],
            "scylla.consistency",
        ),
        (
            "unknown enum value",
            "[traffic]\nwrite_mode = \"bulk\"\n".into(),
            vec![],
            "traffic.write_mode",
        ),
        (
            "unknown enum value",
            "[traffic]\nstream_distribution = \"pareto\"\n".into(),
            vec![],
            "traffic.stream_distribution",
        ),
        (
            "unknown enum value",
            "[log]\nformat = \"xml\"\n".into(),
            vec![],
            "log.format",
        ),
        (
            "unknown enum value",
            "[scylla.replication]\nstrategy = \"everywhere\"\n".into(),
            vec![],
            "scylla.replication.strategy",
        ),
        (
            "unknown key",
            "[trafic]\nwrite_rate = 5\n".into(),
            vec![],
            "trafic",
        ),
        (
            "unknown key",
            "[redis]\ncache_size = 3\n".into(),
            vec![],
            "redis.cache_size",
        ),
        (
            "unknown key",
            "[scylla.tls]\nverify = false\n".into(),
            vec![],
            "scylla.tls.verify",
        ),
        (
            "broken TOML",
            "[traffic\nwrite_rate = 5\n".into(),
            vec![],
            "line 1",
        ),
        (
            "broken TOML",
            "[traffic]\nwrite_rate = \n".into(),
            vec![],
            "line 2",
        ),
        (
            "broken TOML",
            "[traffic]\nwrite_rate = 5\nwrite_rate = 6\n".into(),
            vec![],
            "line 3",
        ),
        ("broken TOML", "\u{0}\u{1}binary".into(), vec![], "line 1"),
        (
            "broken TOML",
            "[scylla]\nhosts = [\"a:1\",\n".into(),
            vec![],
            "line 2",
        ),
        (
            "secrets and TLS files",
            "[scylla]\npassword = \"x\"\n".into(),
            vec![],
            "scylla.username",
        ),
        (
            "secrets and TLS files",
            "[scylla]\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n".into(),
            vec![],
            "scylla.password_file",
        ),
        (
            "secrets and TLS files",
            "[redis]\npassword_file = \"/nonexistent/pw\"\n".into(),
            vec![],
            "redis.password_file",
        ),
        (
            "secrets and TLS files",
            format!("[scylla.tls]\nenabled = true\nca_file = \"{g}\"\n"),
            vec![],
            "scylla.tls.ca_file",
        ),
        (
            "secrets and TLS files",
            format!("[scylla.tls]\nenabled = true\ncert_file = \"{g}\"\nkey_file = \"{g}\"\n"),
            vec![],
            "scylla.tls.cert_file",
        ),
        (
            "secrets and TLS files",
            format!("[redis]\nurl = \"rediss://127.0.0.1:6380\"\n[redis.tls]\nca_file = \"{g}\"\n"),
            vec![],
            "redis.tls.ca_file",
        ),
        (
            "secrets and TLS files",
            format!("[redis.tls]\nca_file = \"{g}\"\n"),
            vec![],
            "redis.tls.ca_file",
        ),
        (
            "secrets and TLS files",
            format!("[http]\nweb_config_file = \"{web}\"\n"),
            vec![],
            "basic_auth_users.prom",
        ),
        (
            "secrets and TLS files",
            format!("[http]\nweb_config_file = \"{webu}\"\n"),
            vec![],
            "cipher_suites",
        ),
        (
            "secrets and TLS files",
            "[http]\nweb_config_file = \"/nonexistent/web.yml\"\n".into(),
            vec![],
            "http.web_config_file",
        ),
    ];
    let mut per_class: std::collections::BTreeMap<&str, usize> = Default::default();
    for (class, text, env, want) in &cases {
        let f = config_file(text);
        let out = crate::common::bin()
            .args(["config", "check", f.path().to_str().unwrap()])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{class}: {text:?} {env:?}\n{err}"
        );
        assert!(
            err.contains(want),
            "{class}: {text:?}: stderr does not name {want:?}:\n{err}"
        );
        assert!(
            !err.contains("panicked"),
            "{class}: {text:?} panicked:\n{err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{class}: nothing printed for an invalid config"
        );
        *per_class.entry(class).or_default() += 1;
    }
    // `run` refuses the same way, before binding anything.
    let f = config_file("[traffic]\nwrite_rate = -1\n[http]\nlisten = \"127.0.0.1:0\"\n");
    let out = run(&["run", "--config", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    for (class, n) in per_class {
        eprintln!("BADINPUT {class}: {n} cases, all exit 2 naming the key, no panic");
    }
}
