//! The ScyllaDB (or Cassandra) session: built with backoff, shared as one `Arc`, health-checked.
//!
//! One execution profile carries the configured consistency, the client-side request timeout,
//! token-aware routing and *no* retries: a load generator that silently retries hides exactly the
//! failures it exists to measure.

use super::health::HealthCheck;
use crate::config::{Consistency, ScyllaConfig};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{ExecutionError, NewSessionError};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::FallthroughRetryPolicy;
use scylla::statement::prepared::PreparedStatement;
use std::sync::Arc;
use tokio::sync::watch;

/// Label value of the `backend` label.
pub const BACKEND: &str = "scylla";

/// Errors talking to ScyllaDB/Cassandra.
#[derive(Debug, thiserror::Error)]
pub enum ScyllaError {
    /// No session could be opened.
    #[error("failed to connect to ScyllaDB at {hosts}: {cause}")]
    Connect {
        /// The contact points.
        hosts: String,
        /// The driver's error.
        cause: NewSessionError,
    },
    /// A statement failed.
    #[error("failed to run `{cql}`: {cause}")]
    Query {
        /// The statement.
        cql: String,
        /// The driver's error.
        cause: ExecutionError,
    },
    /// A statement could not be prepared.
    #[error("failed to prepare `{cql}`: {cause}")]
    Prepare {
        /// The statement.
        cql: String,
        /// The driver's error.
        cause: String,
    },
    /// A statement's result did not have the expected shape.
    #[error("failed to read the result of `{cql}`: {message}")]
    Result {
        /// The statement.
        cql: String,
        /// What was wrong.
        message: String,
    },
    /// The keyspace exists but is not chatload's.
    #[error(
        "refusing to write into keyspace {keyspace}: it exists but was not created by chatload (it has no \
         chatload_owner table); choose another scylla.keyspace, or set scylla.allow_existing_keyspace = true"
    )]
    NotOurKeyspace {
        /// The keyspace.
        keyspace: String,
    },
    /// A `scylla.tls` file could not be used.
    #[error("failed to set up TLS (scylla.tls): {0}")]
    Tls(crate::tls::TlsFileError),
    /// `scylla.password_file` could not be read.
    #[error("failed to read scylla.password_file: {0}")]
    Password(std::io::Error),
}

impl From<Consistency> for scylla::statement::Consistency {
    fn from(c: Consistency) -> Self {
        use scylla::statement::Consistency as C;
        match c {
            Consistency::Any => C::Any,
            Consistency::One => C::One,
            Consistency::Two => C::Two,
            Consistency::Three => C::Three,
            Consistency::Quorum => C::Quorum,
            Consistency::All => C::All,
            Consistency::LocalQuorum => C::LocalQuorum,
            Consistency::EachQuorum => C::EachQuorum,
            Consistency::LocalOne => C::LocalOne,
        }
    }
}

/// Prepare `cql` once; the driver re-prepares it by itself on nodes that forgot it.
pub async fn prepare(session: &Session, cql: String) -> Result<PreparedStatement, ScyllaError> {
    session
        .prepare(cql.as_str())
        .await
        .map_err(|e| ScyllaError::Prepare {
            cql,
            cause: e.to_string(),
        })
}

/// Open a session with chatload's execution profile. Fails when no contact point answers.
pub async fn connect(cfg: &ScyllaConfig, password: Option<String>) -> Result<Session, ScyllaError> {
    let mut lb = DefaultPolicy::builder().token_aware(true);
    if !cfg.local_datacenter.is_empty() {
        lb = lb
            .prefer_datacenter(cfg.local_datacenter.clone())
            .permit_dc_failover(true);
    }
    let profile = ExecutionProfile::builder()
        .consistency(cfg.consistency.into())
        .request_timeout(Some(cfg.request_timeout.get()))
        .retry_policy(Arc::new(FallthroughRetryPolicy::new()))
        .load_balancing_policy(lb.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&cfg.hosts)
        .connection_timeout(cfg.connect_timeout.get())
        .default_execution_profile_handle(profile.into_handle());
    if !cfg.username.is_empty() {
        builder = builder.user(&cfg.username, password.unwrap_or_default());
    }
    if cfg.tls.enabled {
        let tls = crate::tls::client_config(&crate::tls::ClientTls {
            ca_file: &cfg.tls.ca_file,
            cert_file: &cfg.tls.cert_file,
            key_file: &cfg.tls.key_file,
            verify_hostname: cfg.tls.verify_hostname,
        })
        .map_err(ScyllaError::Tls)?;
        builder = builder.tls_context(Some(tls));
    }
    builder.build().await.map_err(|cause| ScyllaError::Connect {
        hosts: cfg.hosts.join(","),
        cause,
    })
}

/// Run `cql` (unprepared, no values) and return its first row, if any.
pub async fn query_first<R>(session: &Session, cql: &str) -> Result<Option<R>, ScyllaError>
where
    R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    Ok(query_rows(session, cql).await?.into_iter().next())
}

/// Run `cql` (unprepared, no values) and return its rows.
pub async fn query_rows<R>(session: &Session, cql: &str) -> Result<Vec<R>, ScyllaError>
where
    R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    let result = session
        .query_unpaged(cql, &[])
        .await
        .map_err(|cause| ScyllaError::Query {
            cql: cql.into(),
            cause,
        })?;
    let bad = |message: String| ScyllaError::Result {
        cql: cql.into(),
        message,
    };
    let rows = result.into_rows_result().map_err(|e| bad(e.to_string()))?;
    rows.rows::<R>()
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))
}

/// Which server it is: `("scylla", version)` or `("cassandra", version)`.
///
/// ScyllaDB has a `system.versions` table with its own version (its `release_version` in
/// `system.local` is a Cassandra compatibility number); Cassandra has no such table.
pub async fn detect_kind(session: &Session) -> Result<(&'static str, String), ScyllaError> {
    if let Ok(Some((version,))) = query_first::<(String,)>(
        session,
        "SELECT version FROM system.versions WHERE key = 'local'",
    )
    .await
    {
        return Ok(("scylla", version));
    }
    let version = query_first::<(String,)>(session, "SELECT release_version FROM system.local")
        .await?
        .map(|(v,)| v)
        .unwrap_or_default();
    Ok(("cassandra", version))
}

/// The shared session, once there is one, and the loop that builds and checks it.
///
/// Its [`HealthCheck`] builds the session when there is none, so running [`super::monitor`] on it
/// is what connects chatload to the database, retrying with backoff until it answers.
pub struct ScyllaBackend {
    cfg: ScyllaConfig,
    session: watch::Sender<Option<Arc<Session>>>,
}

impl ScyllaBackend {
    /// No session yet; the health check builds one.
    pub fn new(cfg: ScyllaConfig) -> Self {
        Self {
            cfg,
            session: watch::channel(None).0,
        }
    }

    /// The session, if one has been built.
    pub fn session(&self) -> Option<Arc<Session>> {
        self.session.borrow().clone()
    }

    /// A receiver that sees the session appear.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Session>>> {
        self.session.subscribe()
    }

    /// One health check: build the session if there is none, else ask `system.local`.
    async fn check_with(&self, cfg: &ScyllaConfig) -> Result<(), ScyllaError> {
        let session = match self.session() {
            Some(s) => s,
            None => {
                let password = cfg.password().map_err(ScyllaError::Password)?;
                let s = Arc::new(connect(cfg, password).await?);
                self.session.send_replace(Some(s.clone()));
                s
            }
        };
        query_first::<(String,)>(&session, "SELECT release_version FROM system.local").await?;
        Ok(())
    }
}

impl HealthCheck for ScyllaBackend {
    type Error = ScyllaError;

    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn check(&self) -> Result<(), ScyllaError> {
        self.check_with(&self.cfg).await
    }

    async fn identify(&self) -> Result<(&'static str, String), ScyllaError> {
        match self.session() {
            Some(s) => detect_kind(&s).await,
            None => Err(ScyllaError::Result {
                cql: String::new(),
                message: "no session".into(),
            }),
        }
    }
}
