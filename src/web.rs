//! TLS and basic authentication for chatload's own endpoints, configured with a file in the format of
//! Prometheus' `--web.config.file` (the exporter-toolkit format), so one file serves both:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.pem
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: ca.pem                         # optional
//!   min_version: TLS12                             # optional
//! basic_auth_users:
//!   prometheus: $2y$10$...                         # bcrypt hash (`htpasswd -nBC 10 "" | tr -d ':\n'`)
//! ```
//!
//! Both parts are optional and apply to every endpoint. Paths are relative to the file. Keys chatload
//! does not implement are rejected rather than ignored, so that a setting never silently does nothing.
//! Successful logins are cached (by a SHA-256 of user, password and hash, never the password) so a
//! scrape every few seconds does not pay for bcrypt each time; bcrypt runs one at a time off the runtime.

use aws_lc_rs::digest;
use base64::Engine;
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Successful logins remembered at most; the cache starts over when full.
const AUTH_CACHE_MAX: usize = 256;

/// A web configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct WebConfigError {
    /// The file.
    pub path: String,
    /// What is wrong, with the key inside the file when there is one.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: String,
    key_file: String,
    #[serde(default)]
    client_auth_type: ClientAuthType,
    #[serde(default)]
    client_ca_file: String,
    #[serde(default)]
    min_version: Option<TlsVersion>,
    #[serde(default)]
    max_version: Option<TlsVersion>,
}

/// The exporter-toolkit names; the two that accept unverified certificates are refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
enum ClientAuthType {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

/// What guards the endpoints: nothing, TLS, basic auth, or both.
pub struct WebGuard {
    tls: Option<TlsAcceptor>,
    users: BTreeMap<String, String>,
    ok_cache: Mutex<HashSet<[u8; 32]>>,
    bcrypt_slot: Semaphore,
}

impl std::fmt::Debug for WebGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebGuard")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No basic auth configured, or the credentials match.
    Allowed,
    /// Credentials missing, malformed or wrong.
    Denied,
}

impl WebGuard {
    /// No TLS, no auth.
    pub fn open() -> Self {
        Self::new(None, BTreeMap::new())
    }

    fn new(tls: Option<TlsAcceptor>, users: BTreeMap<String, String>) -> Self {
        Self {
            tls,
            users,
            ok_cache: Mutex::new(HashSet::new()),
            bcrypt_slot: Semaphore::new(1),
        }
    }

    /// Read `path` (empty: [`WebGuard::open`]); every problem names the file and the key.
    pub fn load(path: &str) -> Result<Self, WebConfigError> {
        if path.is_empty() {
            return Ok(Self::open());
        }
        let fail = |message: String| WebConfigError {
            path: path.to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let file: WebConfigFile = if text.trim().is_empty() {
            WebConfigFile {
                tls_server_config: None,
                basic_auth_users: None,
            }
        } else {
            serde_norway::from_str(&text).map_err(|e| fail(e.to_string()))?
        };
        let base = Path::new(path).parent().unwrap_or(Path::new("."));
        let tls = match file.tls_server_config {
            Some(t) => Some(tls_acceptor(&t, base).map_err(fail)?),
            None => None,
        };
        let users = file.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            if user.is_empty() || user.contains(':') {
                return Err(fail(format!(
                    "basic_auth_users: {user:?} is not a usable user name (empty or contains ':')"
                )));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(fail(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
                )));
            }
        }
        Ok(Self::new(tls, users))
    }

    /// The TLS acceptor, when TLS is configured.
    pub fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    /// Whether basic auth is required.
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Check an `Authorization` header value against `basic_auth_users`.
    pub async fn authorize(&self, header: Option<&[u8]>) -> Auth {
        if self.users.is_empty() {
            return Auth::Allowed;
        }
        let Some((user, password)) = header.and_then(parse_basic) else {
            return Auth::Denied;
        };
        let hash = self.users.get(&user).cloned();
        let key = cache_key(&user, &password, hash.as_deref().unwrap_or(""));
        if hash.is_some()
            && self
                .ok_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&key)
        {
            return Auth::Allowed;
        }
        // An unknown user costs a bcrypt too, so that timing does not tell which users exist.
        let hash = hash.unwrap_or_else(|| dummy_hash().to_string());
        let _slot = self.bcrypt_slot.acquire().await.expect("never closed");
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
                && self.users.contains_key(&user);
        if !ok {
            return Auth::Denied;
        }
        let mut cache = self.ok_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= AUTH_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key);
        Auth::Allowed
    }
}

/// The guard in effect, swapped whole on reload.
#[derive(Debug)]
pub struct WebCell(RwLock<Arc<WebGuard>>);

impl WebCell {
    /// A cell holding `guard`.
    pub fn new(guard: WebGuard) -> Self {
        Self(RwLock::new(Arc::new(guard)))
    }

    /// The guard in effect now.
    pub fn current(&self) -> Arc<WebGuard> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Put `guard` in effect for new connections and requests.
    pub fn set(&self, guard: WebGuard) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(guard);
    }
}

fn parse_basic(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn cache_key(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [user, password, hash] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("chatload-no-such-user", 10).expect("bcrypt hashes"))
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn tls_acceptor(t: &TlsServerConfig, base: &Path) -> Result<TlsAcceptor, String> {
    use crate::tls::{load_certs, load_key, root_store};
    if t.cert_file.is_empty() || t.key_file.is_empty() {
        return Err("tls_server_config: cert_file and key_file are both required".into());
    }
    let certs = load_certs(&resolve(base, &t.cert_file))
        .map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    let key = load_key(&resolve(base, &t.key_file))
        .map_err(|e| format!("tls_server_config.key_file: {e}"))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = {
        let min = t.min_version.unwrap_or(TlsVersion::TLS12);
        let max = t.max_version.unwrap_or(TlsVersion::TLS13);
        if min < TlsVersion::TLS12 {
            return Err(format!(
                "tls_server_config.min_version: {min:?} is not supported (TLS12 or TLS13)"
            ));
        }
        if max < min {
            return Err("tls_server_config.max_version: lower than min_version".into());
        }
        [
            (TlsVersion::TLS12, &rustls::version::TLS12),
            (TlsVersion::TLS13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect()
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let ca = || -> Result<Arc<rustls::RootCertStore>, String> {
        if t.client_ca_file.is_empty() {
            return Err(format!(
                "tls_server_config.client_ca_file: required with client_auth_type {:?}",
                t.client_auth_type
            ));
        }
        root_store(&resolve(base, &t.client_ca_file).to_string_lossy())
            .map(Arc::new)
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
    };
    let builder = match t.client_auth_type {
        ClientAuthType::NoClientCert => builder.with_no_client_auth(),
        ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert => {
            let mut v = WebPkiClientVerifier::builder_with_provider(ca()?, provider);
            if t.client_auth_type == ClientAuthType::VerifyClientCertIfGiven {
                v = v.allow_unauthenticated();
            }
            let verifier = v
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: {other:?} accepts unverified certificates and \
                 is not supported; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config.key_file: does not match cert_file: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn header(user: &str, password: &str) -> Vec<u8> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}").into_bytes()
    }

    #[tokio::test]
    async fn basic_auth_accepts_only_the_right_password() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let f = file(&format!("basic_auth_users:\n  prom: {hash}\n"));
        let g = WebGuard::load(f.path().to_str().unwrap()).unwrap();
        assert!(g.requires_auth() && g.tls().is_none());
        assert_eq!(g.authorize(None).await, Auth::Denied);
        assert_eq!(
            g.authorize(Some(&header("prom", "nope"))).await,
            Auth::Denied
        );
        assert_eq!(
            g.authorize(Some(&header("other", "s3cret"))).await,
            Auth::Denied
        );
        assert_eq!(g.authorize(Some(b"Bearer abc")).await, Auth::Denied);
        assert_eq!(g.authorize(Some(b"Basic !!!")).await, Auth::Denied);
        assert_eq!(
            g.authorize(Some(&header("prom", "s3cret"))).await,
            Auth::Allowed
        );
        // Cached now, and still right.
        assert_eq!(
            g.authorize(Some(&header("prom", "s3cret"))).await,
            Auth::Allowed
        );
        assert_eq!(
            g.authorize(Some(&header("prom", "s3cret2"))).await,
            Auth::Denied
        );
    }

    #[tokio::test]
    async fn no_file_means_open() {
        let g = WebGuard::load("").unwrap();
        assert_eq!(g.authorize(None).await, Auth::Allowed);
        assert!(g.tls().is_none());
    }

    #[test]
    fn bad_files_name_the_key() {
        for (text, want) in [
            (
                "basic_auth_users:\n  prom: plaintext\n",
                "basic_auth_users.prom: not a bcrypt hash",
            ),
            ("tls_server_config:\n  cert_file: a.pem\n", "key_file"),
            (
                "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n",
                "tls_server_config.cert_file",
            ),
            (
                "http_server_config:\n  http2: true\n",
                "unknown field `http_server_config`",
            ),
            ("basic_auth_users: [1, 2]\n", "basic_auth_users"),
            (": : :\n", "did not find expected key"),
        ] {
            let f = file(text);
            let e = WebGuard::load(f.path().to_str().unwrap()).unwrap_err();
            assert!(e.to_string().contains(want), "{text:?}: {e}");
            assert!(e.to_string().starts_with(f.path().to_str().unwrap()), "{e}");
        }
        let e = WebGuard::load("/nonexistent/web.yml").unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }
}
