//! The daemon: HTTP endpoints, backend connections and health loops, the traffic (whose pacer thread
//! is the scheduler `/healthz` watches), and an orderly shutdown when the token given to
//! [`Daemon::start`] is cancelled.

pub mod http;
pub mod reload;
pub mod status;

use self::http::HttpState;
use self::reload::{ConfigSource, Reloader};
use self::status::StatusBoard;
use crate::config::{Config, LiveConfig};
use crate::e2e::Canary;
use crate::measure::health::Health;
use crate::measure::metrics::Metrics;
use crate::probes::{ProbeContext, ProbeScheduler};
use crate::store::{self, RedisBackend, ScyllaBackend};
use crate::traffic::Traffic;
use crate::web::{WebCell, WebGuard};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Why the daemon could not start. Nothing is left running when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `http.listen` could not be bound.
    #[error("failed to listen on http.listen = {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        cause: std::io::Error,
    },
    /// The Redis client could not be set up from `redis.url`.
    #[error("{0}")]
    Redis(#[from] store::redis::RedisError),
    /// `http.web_config_file` could not be used.
    #[error("http.web_config_file: {0}")]
    Web(#[from] crate::web::WebConfigError),
    /// The pacer thread could not be started.
    #[error("failed to start the pacer thread: {0}")]
    Pacer(std::io::Error),
    /// The end-to-end canary could not be started.
    #[error("{0}")]
    E2e(#[from] crate::e2e::CanaryError),
}

/// A running daemon.
pub struct Daemon {
    http_addr: SocketAddr,
    metrics: Arc<Metrics>,
    scylla: Arc<ScyllaBackend>,
    redis: RedisBackend,
    traffic: Arc<Traffic>,
    probes: Arc<ProbeScheduler>,
    e2e: Option<Arc<Canary>>,
    reloader: Arc<Reloader>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    drain_timeout: Duration,
}

impl Daemon {
    /// Bind the HTTP listener, start every task, and return once chatload is ready.
    /// Backends need not be reachable. Cancelling `shutdown` stops everything; see [`Daemon::wait`].
    pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Self, StartError> {
        Self::start_with_source(config, ConfigSource::Fixed, shutdown).await
    }

    /// [`Daemon::start`], with where a reload (SIGHUP, `POST /-/reload`) reads the config from.
    pub async fn start_with_source(
        config: Config,
        source: ConfigSource,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::with_latency_buckets(
            env!("CARGO_PKG_VERSION"),
            crate::measure::slo::latency_buckets(&config),
        ));
        crate::measure::slo::export_objectives(&config, &metrics);
        let health = Arc::new(Health::default());
        let web = Arc::new(WebCell::new(WebGuard::load(&config.http.web_config_file)?));
        let addr = config.http.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|cause| StartError::Bind { addr, cause })?;
        let http_addr = listener
            .local_addr()
            .map_err(|cause| StartError::Bind { addr, cause })?;
        let redis = RedisBackend::new(&config.redis)?;
        let scylla = Arc::new(ScyllaBackend::new(config.scylla.clone()));

        let tracker = TaskTracker::new();
        {
            let (scylla, metrics, token) =
                (scylla.clone(), metrics.clone(), shutdown.child_token());
            tracker.spawn(async move { store::monitor(scylla.as_ref(), metrics, token).await });
        }
        {
            let (redis, metrics, token) = (redis.clone(), metrics.clone(), shutdown.child_token());
            tracker.spawn(async move { store::monitor(&redis, metrics, token).await });
        }
        let traffic = Traffic::start(
            &config,
            metrics.clone(),
            health.clone(),
            &tracker,
            shutdown.clone(),
        )
        .map_err(StartError::Pacer)?;
        let traffic = Arc::new(traffic);
        let e2e = if config.e2e.enabled {
            let canary = Arc::new(Canary::start(
                &config,
                &metrics,
                scylla.clone(),
                redis.clone(),
            )?);
            let (c, token) = (canary.clone(), shutdown.clone());
            tracker.spawn(async move {
                token.cancelled().await;
                c.halt();
            });
            Some(canary)
        } else {
            None
        };
        let live = LiveConfig::new(config.clone());
        let probe_context =
            ProbeContext::new(live.clone(), scylla.clone(), redis.clone(), metrics.clone());
        let probes = Arc::new(ProbeScheduler::start(
            Arc::new(probe_context),
            &tracker,
            shutdown.clone(),
        ));
        let board = Arc::new(StatusBoard::new(
            live.clone(),
            metrics.clone(),
            traffic.clone(),
            probes.clone(),
            e2e.clone(),
        ));
        tracker.spawn(board.clone().run_sampler(shutdown.child_token()));
        let reloader = Arc::new(Reloader::new(
            source,
            live,
            traffic.clone(),
            metrics.clone(),
            web.clone(),
        ));
        let state = Arc::new(HttpState {
            metrics: metrics.clone(),
            health: health.clone(),
            status: board,
            reloader: reloader.clone(),
            web,
        });
        tracker.spawn(http::serve(listener, state, shutdown.child_token()));
        tracker.close();
        health.beat();
        health.set_ready(true);
        info!(http = %http_addr, scylla = ?config.scylla.hosts, keyspace = %config.scylla.keyspace,
              redis = %crate::config::redact_url(&config.redis.url), "chatload started");
        Ok(Self {
            http_addr,
            metrics,
            scylla,
            redis,
            traffic,
            probes,
            e2e,
            reloader,
            tracker,
            shutdown,
            drain_timeout: config.traffic.drain_timeout.get(),
        })
    }

    /// Where the HTTP endpoints listen (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The metrics this daemon exports.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The ScyllaDB backend (its session appears once the database answers).
    pub fn scylla(&self) -> &Arc<ScyllaBackend> {
        &self.scylla
    }

    /// The Redis backend.
    pub fn redis(&self) -> &RedisBackend {
        &self.redis
    }

    /// The running traffic.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The end-to-end canary, when `[e2e]` is enabled.
    pub fn e2e(&self) -> Option<&Arc<Canary>> {
        self.e2e.as_ref()
    }

    /// Reloads the configuration.
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.reloader
    }

    /// The probes.
    pub fn probes(&self) -> &ProbeScheduler {
        &self.probes
    }

    /// Wait for the shutdown token, then for every task to finish (in-flight work gets
    /// `traffic.drain_timeout` plus the HTTP grace period).
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        info!("shutting down");
        let limit = self.drain_timeout + http::SHUTDOWN_GRACE + Duration::from_secs(1);
        if tokio::time::timeout(limit, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(timeout = ?limit, "tasks still running at the end of the drain period; exiting anyway");
        }
        info!("stopped");
    }
}

/// Run the daemon until `shutdown` is cancelled; SIGHUP reloads the configuration from `source`.
pub async fn run(
    config: Config,
    source: ConfigSource,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let daemon = Daemon::start_with_source(config, source, shutdown.clone()).await?;
    let reloader = daemon.reloader().clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            warn!("could not install the SIGHUP handler; use POST /-/reload");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the configuration");
                    let _ = reloader.reload();
                }
            }
        }
    });
    daemon.wait().await;
    Ok(())
}
