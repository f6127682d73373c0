//! Config fixtures: every file in `tests/config/invalid/` is refused with the error it names, every
//! file in `tests/config/valid/` (and the shipped `config/chatload.toml`) loads. Needs no server.
//!
//! An invalid fixture is one bad case, a small TOML file whose first line is `# error: <text>`. Loading
//! it must fail, and the error message must contain `<text>` (for more than one, add more `# error:`
//! lines to the comment block at the top). The fixture's own path is replaced by `<file>` in the
//! message before comparing, so a file name never satisfies an expectation. Other header lines:
//! `# env: CHATLOAD_…=value` gives that fixture an environment override (in either set); any other
//! comment is free text. Paths inside fixtures (`tests/config/files/…`) are relative to the package
//! root, which is where cargo runs integration tests.
//!
//! A fixture without `# env:` lines is loaded with `chatload::config::load(path, &catalog())`, as the binary loads
//! a file. One with them goes through `load_str` with exactly those variables: setting the process
//! environment from a test is unsound while other test threads run.
//!
//! Adding a case is adding a file; the test reports every fixture that loads when it should not,
//! fails with a message that lacks its text, or panics.

use chatload::config::{Config, ConfigError, load, load_str};
use chatload::probes::registry::catalog;
use std::path::{Path, PathBuf};

const INVALID: &str = "tests/config/invalid";
const VALID: &str = "tests/config/valid";
/// A data file some fixtures name; its presence shows relative paths resolve from the package root.
const DATA_FILE: &str = "tests/config/files/not-a-cert.pem";
const ERROR: &str = "# error:";
const ENV: &str = "# env:";

/// One fixture file and the directives of its header (the comment lines it starts with).
struct Fixture {
    path: PathBuf,
    errors: Vec<String>,
    env: Vec<(String, String)>,
}

/// Every `.toml` file of `dir`, sorted, with its header parsed; a malformed header or a file that is
/// not `.toml` (a typo would be skipped silently otherwise) is added to `problems`.
fn fixtures(dir: &str, problems: &mut Vec<String>) -> Vec<Fixture> {
    assert!(
        Path::new(DATA_FILE).is_file(),
        "{DATA_FILE} not found: run from the package root (cargo test does)"
    );
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        if path.extension().is_none_or(|e| e != "toml") {
            problems.push(format!("{name}: not a .toml file; fixtures are *.toml"));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut fixture = Fixture {
            path,
            errors: Vec::new(),
            env: Vec::new(),
        };
        let mut in_header = true;
        for (n, line) in text.lines().enumerate() {
            in_header &= line.starts_with('#');
            let directive = line.starts_with(ERROR) || line.starts_with(ENV);
            if !in_header {
                if directive {
                    problems.push(format!(
                        "{name}:{}: `{line}` is below the header and would be ignored",
                        n + 1
                    ));
                }
                continue;
            }
            if let Some(want) = line.strip_prefix(ERROR) {
                let want = want.trim();
                if want.is_empty() {
                    problems.push(format!("{name}:{}: empty `{ERROR}` line", n + 1));
                }
                fixture.errors.push(want.to_string());
            } else if let Some(var) = line.strip_prefix(ENV) {
                match var.trim().split_once('=') {
                    Some((k, v)) if k.starts_with("CHATLOAD_") => {
                        fixture.env.push((k.to_string(), v.to_string()));
                    }
                    _ => problems.push(format!(
                        "{name}:{}: expected `{ENV} CHATLOAD_<SECTION>__<KEY>=value`",
                        n + 1
                    )),
                }
            }
        }
        out.push(fixture);
    }
    out
}

/// Load a fixture the way its header says; a panic is turned into an error message.
fn load_fixture(f: &Fixture) -> Result<Result<Config, ConfigError>, String> {
    std::panic::catch_unwind(|| {
        if f.env.is_empty() {
            load(&f.path, &catalog())
        } else {
            let text = std::fs::read_to_string(&f.path).unwrap();
            load_str(&text, &f.path, f.env.clone(), &catalog())
        }
    })
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// `CHATLOAD_*` variables of this process: they reach fixtures loaded with `load` and can explain a
/// surprise.
fn stray_env_hint() -> String {
    let vars: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CHATLOAD_"))
        .collect();
    if vars.is_empty() {
        String::new()
    } else {
        format!("\n(note: the test runs with {vars:?} set, and `load` applies them)")
    }
}

#[test]
fn every_invalid_fixture_is_refused_with_its_error() {
    let mut problems = Vec::new();
    let all = fixtures(INVALID, &mut problems);
    assert!(
        all.len() >= 25,
        "only {} fixtures in {INVALID}: was the directory moved?",
        all.len()
    );
    for f in &all {
        let name = f.path.display().to_string();
        if !std::fs::read_to_string(&f.path).is_ok_and(|t| t.starts_with(ERROR)) {
            problems.push(format!("{name}: the first line must be `{ERROR} <text>`"));
        }
        match load_fixture(f) {
            Err(panic) => problems.push(format!("{name}: loading panicked: {panic}")),
            Ok(Ok(_)) => problems.push(format!(
                "{name}: loaded, but should fail with {:?}",
                f.errors
            )),
            Ok(Err(e)) => {
                let message = e.to_string().replace(&name, "<file>");
                for want in &f.errors {
                    if !message.contains(want.as_str()) {
                        problems.push(format!(
                            "{name}: the error lacks {want:?}; it was:\n{message}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with the {} fixtures in {INVALID}:\n\n{}{}",
        problems.len(),
        all.len(),
        problems.join("\n\n"),
        stray_env_hint()
    );
}

#[test]
fn every_valid_fixture_loads() {
    let mut problems = Vec::new();
    let mut all = fixtures(VALID, &mut problems);
    // The shipped, documented default is loaded where it lives rather than copied here.
    all.push(Fixture {
        path: PathBuf::from("config/chatload.toml"),
        errors: Vec::new(),
        env: Vec::new(),
    });
    assert!(all.len() >= 2, "no fixtures in {VALID}: was it moved?");
    for f in &all {
        let name = f.path.display().to_string();
        if !f.errors.is_empty() {
            problems.push(format!(
                "{name}: a valid fixture has `{ERROR}` lines; invalid ones go in {INVALID}"
            ));
        }
        match load_fixture(f) {
            Err(panic) => problems.push(format!("{name}: loading panicked: {panic}")),
            Ok(Err(e)) => problems.push(format!("{name}: should load, but: {e}")),
            Ok(Ok(_)) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with the fixtures in {VALID}:\n\n{}{}",
        problems.len(),
        problems.join("\n\n"),
        stray_env_hint()
    );
}

/// The README's example of pointing the canary at one's own service ("Canary a chat service") is a
/// config that loads and means what the README says of it.
#[test]
fn the_readmes_own_service_example_loads() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let at = readme
        .find("**Point it at your service.**")
        .expect("the README section");
    let block = readme[at..]
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block after it");
    // The secret file it names exists on the machine it is written for; here, any readable file.
    let text = block.replace("/run/secrets/chat-token", DATA_FILE);
    let cfg = load_str(&text, Path::new("README.md"), [], &catalog())
        .unwrap_or_else(|e| panic!("the README's example does not load: {e}\n{text}"));
    assert!(cfg.e2e.enabled);
    assert_eq!(cfg.e2e.subscribers.id_pointer, "/message/idempotency_key");
    assert_eq!(cfg.e2e.queue.kind, chatload::config::QueueKind::Stream);
    assert!(cfg.e2e.auth_value().unwrap().is_some());
    let t = cfg.e2e.templates().unwrap();
    assert!(t.subscribe.is_some());
}
