//! TLS plumbing shared by the ScyllaDB client, the Redis client and chatload's own HTTP server:
//! one crypto provider for the process, and PEM files turned into rustls configurations.
//!
//! Every error names the file it came from, so a config error points at the key whose file is wrong.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// Install the process-wide rustls crypto provider (aws-lc-rs). The Redis client builds its TLS
/// configurations with the process default, so this must run before any connection is made.
/// Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A TLS file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TlsFileError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

fn file_error(path: &Path, message: impl Into<String>) -> TlsFileError {
    TlsFileError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Every certificate in a PEM file; at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "contains no PEM certificate"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| file_error(path, format!("no usable PEM private key: {e}")))
}

/// A root store of the CA certificates in `ca_file`, or of the system's roots when it is empty.
pub fn root_store(ca_file: &str) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    if ca_file.is_empty() {
        // The same system roots the Redis client uses for `rediss://` without a CA file
        // (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured); unreadable ones are skipped.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        return Ok(roots);
    }
    let path = Path::new(ca_file);
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| file_error(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// What a TLS client needs: where to find trust and, optionally, its own certificate.
#[derive(Debug, Clone, Default)]
pub struct ClientTls<'a> {
    /// PEM CA bundle; empty: the system's roots.
    pub ca_file: &'a str,
    /// PEM client certificate (chain) for mutual TLS; empty: none.
    pub cert_file: &'a str,
    /// PEM private key of `cert_file`.
    pub key_file: &'a str,
    /// Check that the server's certificate names the address connected to.
    pub verify_hostname: bool,
}

/// A rustls client configuration, or the first file that is wrong.
pub fn client_config(tls: &ClientTls<'_>) -> Result<Arc<rustls::ClientConfig>, TlsFileError> {
    let roots = Arc::new(root_store(tls.ca_file)?);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default protocol versions");
    let builder = if tls.verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| file_error(Path::new(tls.ca_file), e.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier { inner }))
    };
    let config = if tls.cert_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs = load_certs(Path::new(tls.cert_file))?;
        let key = load_key(Path::new(tls.key_file))?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| file_error(Path::new(tls.key_file), e.to_string()))?
    };
    Ok(Arc::new(config))
}

/// Verifies the server's chain against the roots but accepts any name in it: ScyllaDB drivers
/// connect to node IP addresses, which many cluster certificates do not list.
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
