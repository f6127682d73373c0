//! `[scylla]` and `[redis]`: where the backends are and how to talk to them, and the secrets
//! (passwords) that must never be shown.

use super::duration::HumanDuration;
use serde::{Deserialize, Serialize};

/// `[scylla]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`. The driver discovers the rest of the cluster from them.
    pub hosts: Vec<String>,
    /// chatload's own keyspace. chatload never writes outside it; system keyspaces are refused.
    pub keyspace: String,
    /// Consistency level of traffic and probes: `one`, `local_one`, `quorum`, `local_quorum`, `all`, …
    pub consistency: Consistency,
    /// Client-side timeout of one request; a request that takes longer counts as `outcome="timeout"`.
    pub request_timeout: HumanDuration,
    /// Timeout for opening a connection to a node.
    pub connect_timeout: HumanDuration,
    /// Datacenter whose nodes are preferred for requests; empty means no preference.
    pub local_datacenter: String,
    /// Username for `PasswordAuthenticator`; empty means no authentication.
    pub username: String,
    /// Password (secret: never printed). Prefer `password_file` or `CHATLOAD_SCYLLA__PASSWORD`.
    pub password: Secret,
    /// File whose first line is the password (a mounted Kubernetes Secret, for example).
    pub password_file: String,
    /// TLS to the nodes (client encryption).
    pub tls: ScyllaTlsConfig,
    /// How `chatload schema apply` replicates the keyspace it creates.
    pub replication: ReplicationConfig,
    /// `default_time_to_live` of the `chat_messages` table that `schema apply` creates (the spec: 30 days).
    pub default_ttl: HumanDuration,
    /// Create the keyspace and table when chatload connects and they are missing (`CREATE … IF NOT
    /// EXISTS`, as `chatload schema apply` does; never alters or drops). Off: they must exist already.
    pub create_schema: bool,
    /// Write into a keyspace that exists but was not created by chatload (it has no `chatload_owner`
    /// table). Off by default, so that a typo in `keyspace` never writes into someone else's data.
    pub allow_existing_keyspace: bool,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        Self {
            hosts: vec!["127.0.0.1:9042".into()],
            keyspace: "chatload".into(),
            consistency: Consistency::LocalQuorum,
            request_timeout: HumanDuration::from_millis(2000),
            connect_timeout: HumanDuration::from_secs(5),
            local_datacenter: String::new(),
            username: String::new(),
            password: Secret::default(),
            password_file: String::new(),
            tls: ScyllaTlsConfig::default(),
            replication: ReplicationConfig::default(),
            default_ttl: HumanDuration::from_secs(2_592_000),
            create_schema: true,
            allow_existing_keyspace: false,
        }
    }
}

/// `[scylla.tls]`: client encryption to the nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaTlsConfig {
    /// Connect to the nodes over TLS.
    pub enabled: bool,
    /// PEM file of the CA(s) that sign the nodes' certificates; empty: the system's CA bundle.
    pub ca_file: String,
    /// PEM client certificate, for nodes that require client authentication; empty: none.
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
    /// Check that a node's certificate names the address chatload connects to (the driver connects
    /// to node IPs, so the certificates need IP SANs). Off: the chain is still verified, names are not.
    pub verify_hostname: bool,
}

impl Default for ScyllaTlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            verify_hostname: true,
        }
    }
}

/// `[redis.tls]`: files for `rediss://` URLs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedisTlsConfig {
    /// PEM file of the CA(s) that sign the server's certificate; empty: the system's CA bundle.
    pub ca_file: String,
    /// PEM client certificate, for servers with `tls-auth-clients yes`; empty: none.
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
}

/// CQL consistency levels that make sense for chat traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Consistency {
    Any,
    One,
    Two,
    Three,
    Quorum,
    All,
    LocalQuorum,
    EachQuorum,
    LocalOne,
}

/// `[scylla.replication]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// `simple` (SimpleStrategy, for a local single node) or `network_topology` (real clusters).
    pub strategy: ReplicationStrategy,
    /// Replicas with `strategy = "simple"`.
    pub replication_factor: u32,
    /// Replicas per datacenter with `strategy = "network_topology"`, e.g. `{ dc1 = 3, dc2 = 3 }`.
    pub datacenters: std::collections::BTreeMap<String, u32>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            strategy: ReplicationStrategy::Simple,
            replication_factor: 1,
            datacenters: Default::default(),
        }
    }
}

/// Keyspace replication strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationStrategy {
    /// `SimpleStrategy`: one replication factor for the whole cluster.
    Simple,
    /// `NetworkTopologyStrategy`: a replication factor per datacenter.
    NetworkTopology,
}

/// `[redis]` (its `Debug` redacts the URL's password)
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS. A password in the URL is
    /// redacted whenever it is shown; prefer `password_file` or `CHATLOAD_REDIS__PASSWORD`.
    pub url: String,
    /// ACL user (Redis 6+); empty: the URL's user, else `default`.
    pub username: String,
    /// Password (secret: never printed); empty: the URL's password, if any.
    pub password: Secret,
    /// File whose first line is the password.
    pub password_file: String,
    /// TLS files for `rediss://` URLs.
    pub tls: RedisTlsConfig,
    /// Push each message to its stream's recent-message cache (a list capped at `cache_length`).
    pub cache: bool,
    /// PUBLISH each message to its stream's channel for real-time fan-out.
    pub pubsub: bool,
    /// How many recent messages a stream's cache keeps.
    pub cache_length: u32,
    /// Expiry of a stream's cache list, renewed on every push.
    pub cache_ttl: HumanDuration,
    /// Prefix of every key and channel chatload uses (`<prefix>:stream:<id>:recent`, `<prefix>:stream:<id>`).
    pub key_prefix: String,
    /// Client-side timeout of one Redis command.
    pub request_timeout: HumanDuration,
    /// Timeout for opening the connection.
    pub connect_timeout: HumanDuration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            username: String::new(),
            password: Secret::default(),
            password_file: String::new(),
            tls: RedisTlsConfig::default(),
            cache: true,
            pubsub: true,
            cache_length: 50,
            cache_ttl: HumanDuration::from_secs(3600),
            key_prefix: "chatload".into(),
            request_timeout: HumanDuration::from_millis(1000),
            connect_timeout: HumanDuration::from_secs(5),
        }
    }
}

/// What replaces a secret whenever configuration is shown.
pub const REDACTED: &str = "<redacted>";

/// A password: (de)serialized as a plain string, so a config file round-trips, but its `Debug` never
/// shows it, so no log line, error or panic message that prints a config can leak it.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it (the driver's login).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str(REDACTED)
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            url,
            username,
            password,
            password_file,
            tls,
            cache,
            pubsub,
            cache_length,
            cache_ttl,
            key_prefix,
            request_timeout,
            connect_timeout,
        } = self;
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(url))
            .field("username", username)
            .field("password", password)
            .field("password_file", password_file)
            .field("tls", tls)
            .field("cache", cache)
            .field("pubsub", pubsub)
            .field("cache_length", cache_length)
            .field("cache_ttl", cache_ttl)
            .field("key_prefix", key_prefix)
            .field("request_timeout", request_timeout)
            .field("connect_timeout", connect_timeout)
            .finish()
    }
}

impl ScyllaConfig {
    /// The password from `password` or `password_file` (its first line), if any.
    pub fn password(&self) -> std::io::Result<Option<String>> {
        secret(self.password.expose(), &self.password_file)
    }
}

impl RedisConfig {
    /// The password from `password` or `password_file` (its first line), if any (the URL's
    /// password is not included).
    pub fn password(&self) -> std::io::Result<Option<String>> {
        secret(self.password.expose(), &self.password_file)
    }
}

/// A secret given inline or as the first line of a file.
pub(super) fn secret(inline: &str, file: &str) -> std::io::Result<Option<String>> {
    if !inline.is_empty() {
        return Ok(Some(inline.to_string()));
    }
    if file.is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(file)?;
    Ok(Some(text.lines().next().unwrap_or_default().to_string()))
}

/// Replace the password of `scheme://user:password@host` with [`REDACTED`].
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or_default();
    if !userinfo.contains(':') && user.is_empty() {
        return url.to_string();
    }
    // `redis://:pw@host` and `redis://pw@host` (password only) both hide the secret.
    let shown_user = if userinfo.contains(':') { user } else { "" };
    format!(
        "{}://{}:{}@{}",
        &url[..scheme_end],
        shown_user,
        REDACTED,
        &rest[at + 1..]
    )
}
