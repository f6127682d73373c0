//! TLS and authentication against real servers: Redis over TLS with an ACL user (the stack's
//! `redis-tls`), Cassandra with `PasswordAuthenticator` and client encryption requiring a client
//! certificate (`scripts/stack.sh restart cassandra secure`), and chatload's own endpoints over TLS with
//! basic auth. Every failing combination must leave the backend down (a metric and a log line, never
//! a crash) and no secret may appear in the log, `/metrics` or `config check`.
//! Each case prints a `MATRIX` line.

use crate::common::{
    CASSANDRA, Chatload, REDIS, REDIS_UP, SCYLLA_UP, STACK_LOCK, StackOnDrop, bin, closed_port,
    config_file, config_with, ops_series, require_stack, stack, tls_file, wait_for_metric,
};
use chatload::config::{Config, RedisConfig, ScyllaConfig};
use std::time::{Duration, Instant};

/// (name, config or `[redis]` lines, environment, what the log line must say: one of these).
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a [&'a str]);

const REDIS_TLS: &str = "127.0.0.1:6380";

/// Wait until the log says `backend` is down (the health loop's first failure); return the whole log
/// and that line.
async fn wait_for_down_log(c: &Chatload, backend: &str, within: Duration) -> (String, String) {
    let label = format!("backend=\"{backend}\"");
    let t = Instant::now();
    loop {
        let log = c.log_text();
        let line = log
            .lines()
            .find(|l| l.contains("backend is down") && l.contains(&label))
            .map(str::to_string);
        if let Some(line) = line {
            return (log, line);
        }
        assert!(
            t.elapsed() < within,
            "no 'backend is down' line for {backend} within {within:?}; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One wrong setting: `backend` is down, `/healthz` 200, and the log line says why (one of the
/// case's reasons) without any of `secrets`. Prints the `MATRIX` line.
async fn assert_down(c: &Chatload, backend: &str, case: &Case<'_>, secrets: &[&str]) {
    let (name, _, _, reasons) = case;
    let (log, line) = wait_for_down_log(c, backend, Duration::from_secs(20)).await;
    assert!(
        reasons.iter().any(|r| line.contains(r)),
        "{name}: the log line does not say why ({reasons:?}): {line}"
    );
    let up = if backend == "scylla" {
        SCYLLA_UP
    } else {
        REDIS_UP
    };
    assert_eq!(c.metric(up).await, 0.0, "{name}");
    assert_eq!(c.healthz().await, 200, "{name}");
    for secret in secrets {
        assert!(!log.contains(secret), "{name}: a secret is in the log");
    }
    let kind = if backend == "scylla" {
        "cassandra"
    } else {
        backend
    };
    eprintln!("MATRIX {kind} {name}: down; {line}");
}

/// A config whose Redis is the stack's TLS Redis; `redis_extra` goes into `[redis]`, `rest` after it.
fn redis_tls_config(keyspace: &str, redis_extra: &str, rest: &str) -> String {
    let text = config_with(CASSANDRA, REDIS_TLS, keyspace, rest)
        .replace("url = \"redis://127.0.0.1:6380\"", redis_extra)
        // The ACL user may only touch `chatload:*` keys and channels.
        .replace(
            &format!("key_prefix = \"{keyspace}\""),
            "key_prefix = \"chatload\"",
        )
        // Generous: on a loaded machine a TLS handshake that loads the system's CA bundle can take a
        // second, and the log line must show the real reason, not a timeout.
        .replace(
            "connect_timeout = \"1s\"\nrequest_timeout = \"1s\"\nkey_prefix",
            "connect_timeout = \"5s\"\nrequest_timeout = \"5s\"\nkey_prefix",
        );
    assert!(text.contains("request_timeout = \"5s\""), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_an_acl_user() {
    let _stack = STACK_LOCK.read().await;
    require_stack();
    let ca = tls_file("ca.pem");
    let other_ca = tls_file("other-ca.pem");
    let password_file = tls_file("redis-password");
    let password = std::fs::read_to_string(&password_file)
        .unwrap()
        .trim()
        .to_string();
    let keyspace = "chatload_it_redis_tls";
    let good = format!(
        "url = \"rediss://{REDIS_TLS}\"\nusername = \"chatload\"\npassword_file = \"{password_file}\"\ntls.ca_file = \"{ca}\""
    );
    let no_probes = crate::common::probes_only(&[], "10s");
    let c = Chatload::start(&redis_tls_config(keyspace, &good, &no_probes)).await;
    wait_for_metric(c.addr, REDIS_UP, 1.0, Duration::from_secs(10)).await;
    let redis_ok = ops_series("redis", "write", "ok");
    c.wait_at_least(
        &redis_ok,
        100.0,
        Duration::from_secs(15),
        "no Redis writes over TLS",
    )
    .await;
    assert_eq!(c.metric(&ops_series("redis", "write", "error")).await, 0.0);
    // What chatload wrote is there, read back over TLS as the same ACL user.
    let cfg = RedisConfig {
        url: format!("rediss://{REDIS_TLS}"),
        username: "chatload".into(),
        password_file: password_file.clone(),
        tls: chatload::config::RedisTlsConfig {
            ca_file: ca.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let client = chatload::store::redis::client(&cfg).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("chatload:stream:*:recent")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "cache keys written over TLS");
    let scrape = c.scrape().await;
    let log = c.log_text();
    assert!(
        !scrape.contains(&password) && !log.contains(&password),
        "the password leaked"
    );
    eprintln!(
        "MATRIX redis rediss:// + ACL user + CA: up, {} keys",
        keys.len()
    );
    assert_eq!(c.stop(Duration::from_secs(10)).await.0, Some(0));

    // Each wrong setting: Redis down, a log line saying why, no secret in it.
    let wrong_secret = "wrong-Secret-4711";
    let cases: [Case; 5] = [
        (
            "wrong password",
            format!(
                "url = \"rediss://{REDIS_TLS}\"\nusername = \"chatload\"\ntls.ca_file = \"{ca}\""
            ),
            vec![("CHATLOAD_REDIS__PASSWORD", wrong_secret)],
            &[
                "WRONGPASS",
                "invalid username-password",
                "AuthenticationFailed",
            ],
        ),
        (
            "no credentials",
            format!("url = \"rediss://{REDIS_TLS}\"\ntls.ca_file = \"{ca}\""),
            vec![],
            &["NOAUTH"],
        ),
        (
            "plain redis:// to the TLS port",
            format!(
                "url = \"redis://{REDIS_TLS}\"\nusername = \"chatload\"\npassword_file = \"{password_file}\""
            ),
            vec![],
            // The TLS port drops a plaintext client; a time-out would be another fault.
            &[
                "Connection reset",
                "connection closed",
                "Broken pipe",
                "broken pipe",
            ],
        ),
        (
            "server certificate from an unknown CA",
            format!(
                "url = \"rediss://{REDIS_TLS}\"\nusername = \"chatload\"\npassword_file = \"{password_file}\"\ntls.ca_file = \"{other_ca}\""
            ),
            vec![],
            &["UnknownIssuer"],
        ),
        (
            "system CA bundle only",
            format!(
                "url = \"rediss://{REDIS_TLS}\"\nusername = \"chatload\"\npassword_file = \"{password_file}\""
            ),
            vec![],
            &["UnknownIssuer"],
        ),
    ];
    let mut running = Vec::new();
    for (name, extra, env, _) in &cases {
        let cfg = redis_tls_config(keyspace, extra, &no_probes);
        running.push((name, Chatload::start_with_env(&cfg, env).await));
    }
    for ((name, c), case) in running.iter().zip(&cases) {
        assert_down(c, "redis", case, &[wrong_secret, &password]).await;
        assert!(
            !c.scrape().await.contains(wrong_secret),
            "{name}: secret in /metrics"
        );
    }
    drop(running);

    // The ACL user may not write outside its key pattern: writes fail (counted), PING still works.
    let c = Chatload::start(
        &redis_tls_config(keyspace, &good, &no_probes)
            .replace("key_prefix = \"chatload\"", "key_prefix = \"other\""),
    )
    .await;
    wait_for_metric(c.addr, REDIS_UP, 1.0, Duration::from_secs(10)).await;
    let errors = ops_series("redis", "write", "error");
    c.wait_at_least(
        &errors,
        50.0,
        Duration::from_secs(15),
        "NOPERM writes not counted as errors",
    )
    .await;
    assert_eq!(
        c.metric(&redis_ok).await,
        0.0,
        "the ACL refused every write"
    );
    eprintln!(
        "MATRIX redis ACL user writing outside ~chatload:*: writes refused (NOPERM), counted as errors"
    );
}

fn secure_scylla(username: &str, password: &str) -> ScyllaConfig {
    ScyllaConfig {
        hosts: vec![CASSANDRA.into()],
        username: username.into(),
        password: password.into(),
        tls: chatload::config::ScyllaTlsConfig {
            enabled: true,
            ca_file: tls_file("ca.pem"),
            cert_file: tls_file("client.pem"),
            key_file: tls_file("client.key"),
            verify_hostname: true,
        },
        ..Config::default().scylla
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_with_password_authenticator_and_client_encryption() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    // Cassandra back in plain mode afterwards, even when the test fails.
    let _plain = StackOnDrop(&["restart", "cassandra"]);
    let took = stack(&["restart", "cassandra", "secure"]);
    eprintln!(
        "Cassandra restarted in secure mode in {:.1}s",
        took.as_secs_f64()
    );

    // The default superuser creates chatload's role, over TLS with the client certificate.
    let admin_cfg = secure_scylla("cassandra", "cassandra");
    let t = Instant::now();
    let admin = loop {
        match chatload::store::scylla::connect(&admin_cfg, Some("cassandra".into())).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "superuser cannot connect: {e}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let secret = "it-Secret-0815";
    let create = format!(
        "CREATE ROLE IF NOT EXISTS chatload_it WITH PASSWORD = '{secret}' AND LOGIN = true"
    );
    let t = Instant::now();
    while let Err(e) = admin.query_unpaged(create.as_str(), &[]).await {
        // Right after a restart the auth tables may not take writes yet.
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "CREATE ROLE failed: {e}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut pw = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut pw, format!("{secret}\n").as_bytes()).unwrap();
    let pw_path = pw.path().to_str().unwrap().to_string();

    let keyspace = "chatload_it_secure";
    let tls_table = |ca: &str, client_cert: bool| {
        let mut t = format!(
            "[scylla.tls]\nenabled = true\nca_file = \"{}\"\n",
            tls_file(ca)
        );
        if client_cert {
            t += &format!(
                "cert_file = \"{}\"\nkey_file = \"{}\"\n",
                tls_file("client.pem"),
                tls_file("client.key")
            );
        }
        t
    };
    let base = |rest: &str| {
        config_with(
            CASSANDRA,
            REDIS,
            keyspace,
            &format!("[traffic]\nwrite_rate = 100.0\nread_rate = 10.0\n{rest}"),
        )
    };
    let user_env: [(&str, &str); 2] = [
        ("CHATLOAD_SCYLLA__USERNAME", "chatload_it"),
        ("CHATLOAD_SCYLLA__PASSWORD_FILE", &pw_path),
    ];

    // `schema apply` over TLS with the password from a file.
    let good = base(&tls_table("ca.pem", true));
    let f = config_file(&good);
    let out = bin()
        .args(["schema", "apply", "--config", f.path().to_str().unwrap()])
        .envs(user_env)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let c = Chatload::start_with_env(&good, &user_env).await;
    wait_for_metric(c.addr, SCYLLA_UP, 1.0, Duration::from_secs(20)).await;
    let write_ok = ops_series("scylla", "write", "ok");
    c.wait_at_least(
        &write_ok,
        100.0,
        Duration::from_secs(20),
        "no writes over TLS with auth",
    )
    .await;
    assert!(!c.log_text().contains(secret) && !c.scrape().await.contains(secret));
    eprintln!("MATRIX cassandra TLS + client cert + PasswordAuthenticator user: up, writes ok");
    drop(c);

    let wrong = "wrong-Secret-4711";
    let cases: Vec<Case> = vec![
        (
            "no TLS",
            base(""),
            user_env.to_vec(),
            // The TLS-only port drops a plaintext client; a time-out would be another fault.
            &[
                "reset by peer",
                "connection closed",
                "Connection closed",
                "Broken pipe",
            ],
        ),
        (
            "TLS without a client certificate",
            base(&tls_table("ca.pem", false)),
            user_env.to_vec(),
            // TLS 1.3: the server's alert, or, when it closes before the client reads the alert,
            // a reset on the client's next write (seen in a full run).
            &["CertificateRequired", "Connection reset by peer"],
        ),
        (
            "server certificate from an unknown CA",
            base(&tls_table("other-ca.pem", true)),
            user_env.to_vec(),
            &["UnknownIssuer"],
        ),
        (
            "wrong password",
            base(&tls_table("ca.pem", true)),
            vec![
                ("CHATLOAD_SCYLLA__USERNAME", "chatload_it"),
                ("CHATLOAD_SCYLLA__PASSWORD", wrong),
            ],
            &["bad credentials"],
        ),
        (
            "no credentials",
            base(&tls_table("ca.pem", true)),
            vec![],
            &["Authentication is required", "requires authentication"],
        ),
    ];
    let mut running = Vec::new();
    for (name, cfg, env, _) in &cases {
        running.push((name, Chatload::start_with_env(cfg, env).await));
    }
    for ((name, c), case) in running.iter().zip(&cases) {
        assert_down(c, "scylla", case, &[wrong, secret]).await;
        assert_eq!(c.metric(&write_ok).await, 0.0, "{name}");
    }
    drop(running);
    drop(pw);
}

/// `curl` status code of one request (`000` when no HTTP answer came back, e.g. a failed handshake).
fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()
        .expect("curl (scripts/stack.sh up installs it)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_endpoints_over_tls_with_basic_auth() {
    let (ca, other_ca) = (tls_file("ca.pem"), tls_file("other-ca.pem"));
    let (cert, key) = (tls_file("server.pem"), tls_file("server.key"));
    let (client_cert, client_key) = (tls_file("client.pem"), tls_file("client.key"));
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    // Low bcrypt cost: the test binary is unoptimized.
    let write_web = |password: &str, mtls: bool| {
        let hash = bcrypt::hash(password, 6).unwrap();
        let mut text = format!("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n");
        if mtls {
            text += &format!(
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca}\n"
            );
        }
        text += &format!("basic_auth_users:\n  prometheus: {hash}\n");
        std::fs::write(&web, text).unwrap();
    };
    write_web("scrape-Pass-1", false);
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nweb_config_file = \"{}\"\n\
         [scylla]\nhosts = [\"127.0.0.1:{}\"]\nconnect_timeout = \"1s\"\n\
         [redis]\nurl = \"redis://127.0.0.1:{}\"\n",
        web.display(),
        closed_port(),
        closed_port()
    );
    let c = Chatload::start(&config).await;
    let base = format!("https://{}", c.addr);
    let get = |path: &str, extra: &[&str]| {
        let url = format!("{base}{path}");
        let mut args = vec!["--cacert", &ca];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    };
    for path in [
        "/metrics",
        "/healthz",
        "/readyz",
        "/",
        "/api/v1/status",
        "/nope",
    ] {
        assert_eq!(get(path, &[]), "401", "{path} without credentials");
        assert_eq!(
            get(path, &["-u", "prometheus:wrong"]),
            "401",
            "{path} wrong password"
        );
        assert_eq!(
            get(path, &["-u", "nobody:scrape-Pass-1"]),
            "401",
            "{path} unknown user"
        );
        let want = if path == "/nope" { "404" } else { "200" };
        assert_eq!(
            get(path, &["-u", "prometheus:scrape-Pass-1"]),
            want,
            "{path} right password"
        );
    }
    assert_eq!(
        get("/-/reload", &["-X", "POST"]),
        "401",
        "reload needs credentials too"
    );
    // The 401 asks for basic auth.
    let head = std::process::Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--cacert",
            &ca,
            &format!("{base}/metrics"),
        ])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(
        head.contains("www-authenticate: basic realm=\"chatload\""),
        "{head}"
    );
    // Not over plain HTTP, not to a client that does not trust the certificate.
    assert_eq!(
        curl(&[&format!("http://{}/metrics", c.addr)]),
        "000",
        "plain HTTP"
    );
    assert_eq!(
        curl(&[
            "--cacert",
            &other_ca,
            "-u",
            "prometheus:scrape-Pass-1",
            &format!("{base}/metrics")
        ]),
        "000",
        "unknown CA"
    );
    eprintln!(
        "MATRIX http TLS + basic auth: 401 without/wrong credentials on every endpoint, 200 with; plain HTTP and unknown CA refused"
    );

    // A client that connects and never starts its TLS handshake is cut off after the same 10 s
    // as a slow request head, not held open for ever.
    {
        use tokio::io::AsyncReadExt;
        let mut silent = tokio::net::TcpStream::connect(c.addr).await.unwrap();
        let t = std::time::Instant::now();
        let mut sink = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(20), silent.read_to_end(&mut sink)).await;
        assert!(
            closed.is_ok(),
            "a silent TLS client was not cut off within 20 s"
        );
        assert!(
            t.elapsed() >= Duration::from_secs(9),
            "cut off too early: {:?}",
            t.elapsed()
        );
        eprintln!(
            "MATRIX http silent TLS client cut off after {:?}",
            t.elapsed()
        );
    }

    // A new password and client certificates required: a reload swaps the web config in.
    write_web("scrape-Pass-2", true);
    let reload = get(
        "/-/reload",
        &["-X", "POST", "-u", "prometheus:scrape-Pass-1"],
    );
    assert_eq!(reload, "200");
    let with_cert = ["--cert", client_cert.as_str(), "--key", client_key.as_str()];
    let creds2 = ["-u", "prometheus:scrape-Pass-2"];
    assert_eq!(
        get("/metrics", &creds2),
        "000",
        "a client certificate is required now"
    );
    let mut both: Vec<&str> = with_cert.to_vec();
    both.extend_from_slice(&creds2);
    assert_eq!(get("/metrics", &both), "200");
    let mut old: Vec<&str> = with_cert.to_vec();
    old.extend_from_slice(&["-u", "prometheus:scrape-Pass-1"]);
    assert_eq!(
        get("/metrics", &old),
        "401",
        "the old password is gone after the reload"
    );
    // A broken web config is rejected by a reload; the running one stays.
    std::fs::write(&web, "basic_auth_users:\n  prometheus: not-a-hash\n").unwrap();
    let mut reload_args: Vec<&str> = both.clone();
    reload_args.extend_from_slice(&["-X", "POST"]);
    assert_eq!(get("/-/reload", &reload_args), "400");
    assert_eq!(get("/metrics", &both), "200");
    eprintln!(
        "MATRIX http reload: new password and mTLS applied without a restart; a broken web config rejected (400), old one kept"
    );
    assert_eq!(c.stop(Duration::from_secs(10)).await.0, Some(0));
}

#[test]
fn secrets_from_env_never_show_in_config_check() {
    let f = config_file(&format!(
        "[redis]\nurl = \"rediss://{REDIS}\"\nusername = \"app\"\n[scylla]\nusername = \"app\"\n"
    ));
    let out = bin()
        .args(["config", "check", f.path().to_str().unwrap()])
        .env("CHATLOAD_REDIS__PASSWORD", "redis-Secret-1")
        .env("CHATLOAD_SCYLLA__PASSWORD", "scylla-Secret-2")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        !all.contains("Secret-1") && !all.contains("Secret-2"),
        "{all}"
    );
    assert_eq!(all.matches("<redacted>").count(), 2, "{all}");
}
