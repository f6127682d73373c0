//! Connections to the chat service: TCP, optionally TLS (through [`crate::tls`]), as one stream
//! type for the HTTP client and the WebSocket subscribers.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A plain or TLS connection.
pub enum Stream {
    /// `http://`, `ws://`.
    Plain(TcpStream),
    /// `https://`, `wss://`.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Where to connect: host, port, TLS or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS.
    pub tls: bool,
}

impl Endpoint {
    /// The endpoint of a URL (`http`, `https`, `ws`, `wss`); default ports 80/443.
    pub fn of(url: &str) -> Result<Self, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("not a URL: {e} in {url:?}"))?;
        let tls = match uri.scheme_str() {
            Some("http" | "ws") => false,
            Some("https" | "wss") => true,
            other => return Err(format!("unsupported scheme {other:?} in {url:?}")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("no host in {url:?}"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Self {
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            host,
            tls,
        })
    }
}

/// Dials endpoints, with TLS where they ask for it.
#[derive(Clone)]
pub struct Dialer {
    tls: Option<TlsConnector>,
}

impl Dialer {
    /// A dialer; `tls` is used for TLS endpoints.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self {
            tls: tls.map(TlsConnector::from),
        }
    }

    /// Connect to `to` (no timeout here: the caller bounds it).
    pub async fn dial(&self, to: &Endpoint) -> io::Result<Stream> {
        let tcp = TcpStream::connect((to.host.as_str(), to.port)).await?;
        let _ = tcp.set_nodelay(true);
        if !to.tls {
            return Ok(Stream::Plain(tcp));
        }
        let Some(connector) = &self.tls else {
            return Err(io::Error::other("TLS endpoint without a TLS configuration"));
        };
        let name = rustls_pki_types::ServerName::try_from(to.host.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = connector.connect(name, tcp).await?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_urls() {
        assert_eq!(
            Endpoint::of("http://127.0.0.1:8088/api/x?y=1").unwrap(),
            Endpoint {
                host: "127.0.0.1".into(),
                port: 8088,
                tls: false
            }
        );
        let e = Endpoint::of("wss://chat.example/ws").unwrap();
        assert_eq!((e.port, e.tls), (443, true));
        assert!(Endpoint::of("ftp://x/").is_err());
    }
}
