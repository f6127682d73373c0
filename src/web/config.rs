//! The web config file: the exporter-toolkit format read into a [`WebGuard`], with the TLS
//! acceptor it describes; every problem names the file and the key.

use super::guard::WebGuard;
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

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

impl WebGuard {
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
pub(crate) mod tests {
    use super::*;
    use crate::web::auth::Auth;
    use std::io::Write;

    /// A temporary file holding `text`.
    pub(crate) fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
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
