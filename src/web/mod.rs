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

mod auth;
mod config;
mod guard;

pub use auth::Auth;
pub use config::WebConfigError;
pub use guard::{WebCell, WebGuard};
