//! `chatsvc`: a small, real chat service for chatload's end-to-end checks.
//!
//! - [`api`]: `POST`/`GET /api/v1/channels/{id}/messages`: store directly (then publish) or queue;
//! - [`worker`]: takes queued messages in batches, stores them, then publishes them in order;
//! - [`gateway`]: WebSocket clients subscribed to channels, fed from one Redis `PSUBSCRIBE`;
//! - [`faults`]: what `/admin/faults` injects, counted as ground truth;
//! - [`server`]: the HTTP listener every role serves (`/healthz`, `/readyz`, `/metrics`);
//! - [`metrics`] and [`wire`]: every metric, and the payload and key names.
//!
//! This file parses the command line, connects the backends (retrying until they answer), keeps
//! readiness true to them, writes the ready file and stops everything on SIGTERM/SIGINT. It uses
//! only chatload's public API: the table's CQL, the session, the schema and the Redis client.

mod api;
mod faults;
mod gateway;
mod metrics;
mod server;
mod wire;
mod worker;

use chatload::config::{RedisConfig, ScyllaConfig};
use chatload::store::health::Backoff;
use clap::{Parser, ValueEnum};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Which parts of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// api + gateway + worker (when buffered), on one listener.
    All,
    /// The HTTP API.
    Api,
    /// The WebSocket gateway.
    Gateway,
    /// The queue worker (buffered mode).
    Worker,
}

/// How the api stores a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// INSERT, then PUBLISH, then 201.
    Direct,
    /// Push to the ingest queue, then 202; the worker stores and publishes.
    Buffered,
}

/// The ingest queue's Redis type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Queue {
    /// LPUSH / BRPOP + RPOP.
    List,
    /// XADD / XREADGROUP + XACK + XDEL.
    Stream,
}

/// The command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "chatsvc",
    version,
    about = "A small reference chat service (api, WebSocket gateway, queue worker)"
)]
pub struct Options {
    /// What this process runs.
    #[arg(long, value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// direct: the api writes to Cassandra itself; buffered: through the ingest queue and the worker.
    #[arg(long, value_enum, default_value_t = Mode::Direct)]
    pub mode: Mode,
    /// The ingest queue's type (buffered mode).
    #[arg(long, value_enum, default_value_t = Queue::List)]
    pub queue: Queue,
    /// Address of the HTTP listener (port 0: any free port, see --ready-file).
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub listen: SocketAddr,
    /// Once ready, write the bound `ip:port` here (atomically: temporary file, then rename).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Cassandra/ScyllaDB contact points, `host:port`, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:9042")]
    pub cassandra: Vec<String>,
    /// The keyspace (created with SimpleStrategy RF 1 when missing).
    #[arg(long, default_value = "chatsvc", value_parser = parse_keyspace)]
    pub keyspace: String,
    /// Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379", value_parser = parse_redis_url)]
    pub redis: String,
    /// Prefix of every Redis key and channel (`{prefix}:ingest`, `{prefix}:ch:{channel}`).
    #[arg(long, default_value = "chatsvc", value_parser = parse_prefix)]
    pub prefix: String,
    /// Serve GET/POST /admin/faults (to loopback clients only).
    #[arg(long)]
    pub admin: bool,
    /// Close an HTTP connection after it has been idle this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,
    /// Log filter (`info`, `debug`, `chatsvc=debug,scylla=warn`, …); RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

fn parse_keyspace(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 48
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.starts_with(|c: char| c.is_ascii_alphabetic());
    ok.then(|| s.to_string())
        .ok_or_else(|| "a keyspace is a letter then up to 47 letters, digits or _".into())
}

fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '*');
    ok.then(|| s.to_string())
        .ok_or_else(|| "the prefix must be non-empty, without spaces or *".into())
}

fn parse_redis_url(s: &str) -> Result<String, String> {
    redis::IntoConnectionInfo::into_connection_info(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

impl Options {
    fn serves_api(&self) -> bool {
        matches!(self.role, Role::All | Role::Api)
    }
    fn serves_gateway(&self) -> bool {
        matches!(self.role, Role::All | Role::Gateway)
    }
    fn runs_worker(&self) -> bool {
        matches!(self.role, Role::All | Role::Worker) && self.mode == Mode::Buffered
    }
    /// The api reads and (direct) writes Cassandra; the worker writes it; the gateway never.
    fn needs_cassandra(&self) -> bool {
        self.serves_api() || self.runs_worker()
    }
    fn scylla_config(&self) -> ScyllaConfig {
        ScyllaConfig {
            hosts: self.cassandra.clone(),
            keyspace: self.keyspace.clone(),
            ..ScyllaConfig::default()
        }
    }
}

/// Cassandra, once connected: the session and the statements prepared on it.
pub struct Cassandra {
    /// The shared session.
    pub session: Arc<Session>,
    /// [`chatload::chat::table::insert_cql`].
    pub insert: PreparedStatement,
    /// [`chatload::chat::table::newest_cql`].
    pub newest: PreparedStatement,
}

/// The backends, once the first connection succeeded.
pub struct Backends {
    /// `None` for the gateway role.
    pub cassandra: Option<Cassandra>,
    /// Commands (PUBLISH, LPUSH, XADD, XACK…); reconnects by itself.
    pub redis: ConnectionManager,
}

/// Whether each backend answered its last check.
#[derive(Default)]
pub struct Health {
    cassandra_up: AtomicBool,
    redis_up: AtomicBool,
    /// The gateway's PSUBSCRIBE is in place.
    pub pubsub_up: AtomicBool,
    /// Why the last attempt to connect failed (until connected).
    connect_error: Mutex<String>,
    /// Wakes the health loop (the pub/sub state changed).
    pub changed: Notify,
}

/// What every part of the process shares.
pub struct Shared {
    /// The command line.
    pub opts: Options,
    /// The metrics.
    pub metrics: metrics::Metrics,
    /// The fault settings.
    pub faults: faults::Faults,
    /// Set once connected.
    pub backends: OnceLock<Backends>,
    /// The backends' health.
    pub health: Health,
    /// The gateway's subscriptions.
    pub gateway: gateway::Registry,
    /// The Redis client (for the connections that are not the shared one).
    pub redis_client: redis::Client,
    /// Cancelled on SIGTERM/SIGINT.
    pub shutdown: CancellationToken,
    /// Tasks to wait for at shutdown (WebSocket sessions included).
    pub tasks: TaskTracker,
}

impl Shared {
    /// Ready: connected, and every backend this role needs answers.
    pub fn ready(&self) -> bool {
        self.backends.get().is_some()
            && (!self.opts.needs_cassandra() || self.health.cassandra_up.load(Ordering::Relaxed))
            && self.health.redis_up.load(Ordering::Relaxed)
            && (!self.opts.serves_gateway() || self.health.pubsub_up.load(Ordering::Relaxed))
    }

    /// Why not ready, for `/readyz`.
    pub fn not_ready_reason(&self) -> String {
        let mut down = vec![];
        if self.backends.get().is_none() {
            let error = self.health.connect_error.lock();
            let error = error.unwrap_or_else(|e| e.into_inner()).clone();
            down.push(format!("not connected yet ({error})"));
        } else {
            if self.opts.needs_cassandra() && !self.health.cassandra_up.load(Ordering::Relaxed) {
                down.push("cassandra down".into());
            }
            if !self.health.redis_up.load(Ordering::Relaxed) {
                down.push("redis down".into());
            }
        }
        if self.opts.serves_gateway() && !self.health.pubsub_up.load(Ordering::Relaxed) {
            down.push("pub/sub not subscribed".into());
        }
        down.join(", ")
    }

    /// Wait until connected; `None` at shutdown.
    pub async fn connected(&self) -> Option<&Backends> {
        loop {
            if let Some(b) = self.backends.get() {
                return Some(b);
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}

/// A timeout for one Redis command on the shared connection.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a connected backend is checked.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// How long open requests and WebSocket sessions may take to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A Redis connection manager with its own response timeout (the worker's blocking pops need more
/// than a command's [`REDIS_TIMEOUT`]).
pub fn redis_manager(
    client: &redis::Client,
    response_timeout: Duration,
) -> Result<ConnectionManager, redis::RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// Connect what the role needs: Redis (a PING), and Cassandra with the schema created and the
/// statements prepared.
async fn connect(shared: &Shared) -> Result<Backends, String> {
    let redis = redis_manager(&shared.redis_client, REDIS_TIMEOUT)
        .map_err(|e| format!("failed to set up Redis: {e}"))?;
    ping_redis(&redis).await?;
    let cassandra = if shared.opts.needs_cassandra() {
        let cfg = shared.opts.scylla_config();
        let session = chatload::store::scylla::connect(&cfg, None)
            .await
            .map_err(|e| e.to_string())?;
        let report = chatload::store::schema::apply(&session, &cfg)
            .await
            .map_err(|e| e.to_string())?;
        for d in &report.differences {
            warn!(difference = %d, "the existing chat_messages table differs; left unchanged");
        }
        let ks = &cfg.keyspace;
        let prepare = |cql| chatload::store::scylla::prepare(&session, cql);
        let insert = prepare(chatload::chat::table::insert_cql(
            ks,
            chatload::chat::table::Ttl::TableDefault,
        ))
        .await
        .map_err(|e| e.to_string())?;
        let newest = prepare(chatload::chat::table::newest_cql(ks))
            .await
            .map_err(|e| e.to_string())?;
        Some(Cassandra {
            session: Arc::new(session),
            insert,
            newest,
        })
    } else {
        None
    };
    Ok(Backends { cassandra, redis })
}

async fn ping_redis(redis: &ConnectionManager) -> Result<(), String> {
    let mut conn = redis.clone();
    match tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("failed to run Redis PING: {e}")),
        Err(_) => Err(format!("Redis PING timed out after {REDIS_TIMEOUT:?}")),
    }
}

async fn check_cassandra(c: &Cassandra) -> Result<(), String> {
    let q = c
        .session
        .query_unpaged("SELECT release_version FROM system.local", &[]);
    match tokio::time::timeout(Duration::from_secs(2), q).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

fn set_up(flag: &AtomicBool, name: &str, result: Result<(), String>) {
    let up = result.is_ok();
    if flag.swap(up, Ordering::Relaxed) != up {
        match result {
            Ok(()) => info!(backend = name, "backend up"),
            Err(error) => warn!(backend = name, %error, "backend down"),
        }
    }
}

/// Connect (with backoff), then check the backends every [`HEALTH_INTERVAL`]; write the ready file
/// the first time the process is ready.
async fn health_loop(shared: Arc<Shared>, listening: SocketAddr) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    let mut ready_written = false;
    loop {
        if shared.backends.get().is_none() {
            match connect(&shared).await {
                Ok(b) => {
                    let _ = shared.backends.set(b);
                    info!("backends connected");
                }
                Err(error) => {
                    warn!(%error, "backends not reachable yet; retrying");
                    *shared
                        .health
                        .connect_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = error;
                    tokio::select! {
                        _ = shared.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => continue,
                    }
                }
            }
        }
        let backends = shared.backends.get().expect("connected above");
        if let Some(c) = &backends.cassandra {
            set_up(
                &shared.health.cassandra_up,
                "cassandra",
                check_cassandra(c).await,
            );
        }
        set_up(
            &shared.health.redis_up,
            "redis",
            ping_redis(&backends.redis).await,
        );
        if !ready_written && shared.ready() {
            ready_written = true;
            info!(listen = %listening, role = ?shared.opts.role, mode = ?shared.opts.mode, "ready");
            if let Some(path) = &shared.opts.ready_file
                && let Err(error) = write_ready_file(path, listening)
            {
                warn!(%error, path = %path.display(), "failed to write the ready file");
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = shared.health.changed.notified() => {}
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
        }
    }
}

/// Write `addr` to `path` atomically: a temporary file beside it, then a rename.
fn write_ready_file(path: &std::path::Path, addr: SocketAddr) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Logs a recurring warning at most once per interval, with how many were left out.
pub struct LogLimiter {
    state: Mutex<(Option<Instant>, u64)>,
    every: Duration,
}

impl LogLimiter {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Self {
        Self {
            state: Mutex::new((None, 0)),
            every,
        }
    }

    /// `Some(suppressed since the last line)` when this one should be logged.
    pub fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.0 {
            Some(at) if at.elapsed() < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                let suppressed = s.1;
                *s = (Some(Instant::now()), 0);
                Some(suppressed)
            }
        }
    }
}

/// Raise the soft limit of open files to the hard one (the gateway holds one per socket).
fn raise_nofile_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                warn!("failed to raise RLIMIT_NOFILE");
            }
        }
    }
}

/// Serve until `shutdown`, then let open work finish (up to [`SHUTDOWN_GRACE`]).
async fn run(opts: Options, shutdown: CancellationToken) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("failed to listen on {}: {e}", opts.listen))?;
    let listening = listener
        .local_addr()
        .map_err(|e| format!("failed to read the bound address: {e}"))?;
    let redis_client = chatload::store::redis::client(&RedisConfig {
        url: opts.redis.clone(),
        ..RedisConfig::default()
    })
    .map_err(|e| e.to_string())?;
    if opts.role == Role::Worker && opts.mode == Mode::Direct {
        warn!(
            "--role worker with --mode direct has nothing to do: serving health and metrics only"
        );
    }
    let shared = Arc::new(Shared {
        metrics: metrics::Metrics::new(),
        faults: faults::Faults::default(),
        backends: OnceLock::new(),
        health: Health::default(),
        gateway: gateway::Registry::default(),
        redis_client,
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
        opts,
    });
    info!(listen = %listening, role = ?shared.opts.role, "listening");
    shared.tasks.spawn(health_loop(shared.clone(), listening));
    if shared.opts.serves_gateway() {
        shared.tasks.spawn(gateway::pubsub_loop(shared.clone()));
    }
    if shared.opts.runs_worker() {
        shared.tasks.spawn(worker::run(shared.clone()));
    }
    server::serve(listener, shared.clone()).await;
    shared.tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, shared.tasks.wait())
        .await
        .is_err()
    {
        info!("tasks still running after the grace period; exiting");
    }
    info!("stopped");
    Ok(())
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let opts = Options::parse(); // bad flags: clap prints the problem and exits 2
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&opts.log_level) {
        eprintln!("chatsvc: invalid --log-level {:?}: {e}", opts.log_level);
        return ExitCode::from(2);
    }
    init_logging(&opts.log_level);
    raise_nofile_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chatsvc: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler installs");
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: stopping"),
                _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
            }
            on_signal.cancel();
        });
        run(opts, shutdown).await
    });
    // Tasks still blocked in a driver call must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatsvc: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_their_defaults_and_bad_ones_are_refused() {
        let o = Options::try_parse_from(["chatsvc"]).unwrap();
        assert_eq!(
            (o.role, o.mode, o.queue),
            (Role::All, Mode::Direct, Queue::List)
        );
        assert_eq!(o.listen.to_string(), "127.0.0.1:8088");
        assert_eq!(
            (o.keyspace.as_str(), o.prefix.as_str()),
            ("chatsvc", "chatsvc")
        );
        assert_eq!(o.keepalive_timeout, Duration::from_secs(30));
        assert!(!o.admin && o.ready_file.is_none());
        assert!(o.needs_cassandra() && o.serves_gateway() && !o.runs_worker());
        let o = Options::try_parse_from(["chatsvc", "--role", "gateway", "--mode", "buffered"])
            .unwrap();
        assert!(!o.needs_cassandra() && !o.runs_worker());
        for bad in [
            &["--role", "proxy"][..],
            &["--keyspace", "drop table"],
            &["--listen", "nowhere"],
            &["--keepalive-timeout", "0s"],
            &["--redis", "http://x"],
            &["--prefix", ""],
        ] {
            let err =
                Options::try_parse_from(std::iter::once("chatsvc").chain(bad.iter().copied()))
                    .unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn the_ready_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready");
        write_ready_file(&path, "127.0.0.1:4242".parse().unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "127.0.0.1:4242\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_limiter_lets_one_line_through_per_interval() {
        let l = LogLimiter::new(Duration::from_secs(60));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
    }
}
