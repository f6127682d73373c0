//! The command line: parsing (clap) and dispatch of each subcommand to the library.
//!
//! Exit codes: 0 ok, 1 SLO breach or failure, 2 bad usage or config, 3 could not reach a backend
//! when asked to fail fast (`schema apply`) or when `check` cannot reach the database. This is the
//! only module that turns results into exit codes.

pub mod check;
pub mod logging;

use crate::config::{self, Config, HumanDuration};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Success.
pub const EXIT_OK: u8 = 0;
/// An SLO was breached, or a command failed.
pub const EXIT_FAILURE: u8 = 1;
/// Bad usage or a bad configuration.
pub const EXIT_USAGE: u8 = 2;
/// A backend could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Steady synthetic chat traffic into ScyllaDB + Redis, SLO probes, and Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "chatload", version, propagate_version = true)]
#[command(
    after_help = "Every config key can be overridden by an environment variable: \
    CHATLOAD_<SECTION>__<KEY>, e.g. CHATLOAD_TRAFFIC__WRITE_RATE=500.\n\
    Exit codes: 0 ok, 1 SLO breach or failure, 2 bad usage or config, 3 backend unreachable."
)]
pub struct Cli {
    /// Config file (TOML). Without one, built-in defaults plus CHATLOAD_* environment variables are used.
    #[arg(
        short,
        long,
        global = true,
        env = "CHATLOAD_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// What to do; `run` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: steady traffic, probes and /metrics until SIGTERM or SIGINT.
    Run,
    /// Run traffic for a bounded time and judge it against `[slo]`: exit 0 on pass, 1 on any breach,
    /// 3 when the database cannot be reached. Progress every 5 s on stderr, the report on stdout.
    Check {
        /// How long to measure, after the warm-up ("60s", "5m").
        #[arg(long, default_value = "60s")]
        duration: HumanDuration,
        /// Traffic before the measurement starts, excluded from the report.
        #[arg(long, default_value = "5s")]
        warmup: HumanDuration,
        /// Report format.
        #[arg(long, value_enum, default_value_t = check::Format::Text)]
        format: check::Format,
    },
    /// Print or create the CQL schema (keyspace and chat_messages table).
    Schema {
        /// `print` or `apply`.
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Generate monitoring artefacts from the config.
    Generate {
        /// `alerts`.
        #[command(subcommand)]
        what: GenerateWhat,
    },
    /// Validate a config file.
    Config {
        /// `check`.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `chatload schema …`
#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Print the CQL that `apply` runs.
    Print,
    /// Create the keyspace and table if missing (never alters or drops anything). Exit 3 if unreachable.
    Apply,
}

/// `chatload generate …`
#[derive(Debug, Subcommand)]
pub enum GenerateWhat {
    /// Prometheus recording and alerting rules derived from `[slo]`, on stdout.
    Alerts {
        /// Where each alert's runbook_url points (the README's URL in your repository or wiki);
        /// the alert's name is appended as an anchor.
        #[arg(long, default_value = crate::alerts::DEFAULT_RUNBOOK_BASE)]
        runbook_base: String,
    },
}

/// `chatload config …`
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate FILE (with environment overrides) and print the effective config, secrets redacted.
    /// Exit 2 with every problem and its key path when it is invalid.
    Check {
        /// The file to check (defaults to --config).
        file: Option<PathBuf>,
    },
}

/// Run the parsed command line; returns the process exit code.
pub fn execute(cli: Cli) -> ExitCode {
    crate::tls::install_crypto_provider();
    let code = match cli.command.unwrap_or(Command::Run) {
        Command::Config {
            action: ConfigAction::Check { file },
        } => config_check(file.as_deref().or(cli.config.as_deref())),
        Command::Generate {
            what: GenerateWhat::Alerts { runbook_base },
        } => match load(cli.config.as_deref()) {
            Ok(c) => {
                print!("{}", crate::alerts::generate(&c, &runbook_base));
                EXIT_OK
            }
            Err(code) => code,
        },
        Command::Schema { action } => match load(cli.config.as_deref()) {
            Ok(c) => match action {
                SchemaAction::Print => {
                    print!("{}", crate::chat::table::script(&c.scylla));
                    EXIT_OK
                }
                SchemaAction::Apply => with_runtime(&c, schema_apply(&c)),
            },
            Err(code) => code,
        },
        Command::Run => match load(cli.config.as_deref()) {
            Ok(c) => {
                let source = match &cli.config {
                    Some(p) => crate::daemon::reload::ConfigSource::File(p.clone()),
                    None => crate::daemon::reload::ConfigSource::Defaults,
                };
                with_runtime(&c, run_daemon(c.clone(), source))
            }
            Err(code) => code,
        },
        Command::Check {
            duration,
            warmup,
            format,
        } => match load(cli.config.as_deref()) {
            Ok(mut c) => {
                if duration.get().is_zero() {
                    eprintln!("error: --duration must be > 0");
                    return ExitCode::from(EXIT_USAGE);
                }
                // Only warnings on stderr, between the progress lines (RUST_LOG still wins).
                if c.log.level == "info" {
                    c.log.level = "warn".into();
                }
                let run = check::run(c.clone(), duration.get(), warmup.get(), format);
                with_runtime(&c, async {
                    match run.await {
                        check::Verdict::Pass => EXIT_OK,
                        check::Verdict::Fail => EXIT_FAILURE,
                        check::Verdict::Unreachable => EXIT_UNREACHABLE,
                        check::Verdict::CannotStart => EXIT_USAGE,
                    }
                })
            }
            Err(code) => code,
        },
    };
    ExitCode::from(code)
}

fn load(path: Option<&Path>) -> Result<Config, u8> {
    let result = match path {
        Some(p) => config::load(p, &crate::probes::registry::catalog()),
        None => config::load_str(
            "",
            Path::new("<defaults>"),
            std::env::vars(),
            &crate::probes::registry::catalog(),
        ),
    };
    result.map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })
}

fn config_check(path: Option<&Path>) -> u8 {
    let Some(path) = path else {
        eprintln!("error: chatload config check needs a FILE (or --config FILE)");
        return EXIT_USAGE;
    };
    match load(Some(path)) {
        Ok(c) => {
            println!(
                "# {}: valid. Effective configuration (secrets redacted):\n",
                path.display()
            );
            print!("{}", c.to_redacted_toml());
            EXIT_OK
        }
        Err(code) => code,
    }
}

fn with_runtime(cfg: &Config, fut: impl Future<Output = u8>) -> u8 {
    logging::init(&cfg.log);
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            EXIT_FAILURE
        }
    }
}

async fn run_daemon(cfg: Config, source: crate::daemon::reload::ConfigSource) -> u8 {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signals(shutdown.clone()));
    match crate::daemon::run(cfg, source, shutdown).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            error!(error = %e, "chatload could not start");
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

/// SIGTERM or SIGINT starts a graceful shutdown; a second one exits at once.
async fn cancel_on_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("could not install signal handlers; stop chatload with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(signal = name, "stopping: finishing in-flight work");
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    warn!("second signal: exiting now");
    std::process::exit(130);
}

async fn schema_apply(cfg: &Config) -> u8 {
    let password = match cfg.scylla.password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: failed to read scylla.password_file: {e}");
            return EXIT_USAGE;
        }
    };
    let session = match crate::store::scylla::connect(&cfg.scylla, password).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_UNREACHABLE;
        }
    };
    match crate::store::schema::apply(&session, &cfg.scylla).await {
        Ok(report) => {
            let ks = &cfg.scylla.keyspace;
            let verb = |created| if created { "created" } else { "already exists" };
            println!("keyspace {ks}: {}", verb(report.created_keyspace));
            println!(
                "table {ks}.{}: {}",
                crate::chat::table::TABLE,
                verb(report.created_table)
            );
            for d in &report.differences {
                println!("warning: existing table differs, left unchanged: {d}");
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}
