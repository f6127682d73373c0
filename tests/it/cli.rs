//! The command line: exit codes and messages for good and bad configs.
//!
//! The bad-config cases themselves are fixtures, one file each in `tests/config/invalid/`, loaded
//! through the library by `tests/config_fixtures.rs`. These tests check what the binary adds: exit
//! code 2 for each kind of config error, nothing on stdout, and `run` starting nothing.

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
