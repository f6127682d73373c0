//! The guard of the endpoints, as a web config file (`config.rs`) describes it, and the cell that
//! swaps it whole on reload.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// What guards the endpoints: nothing, TLS, basic auth, or both.
pub struct WebGuard {
    tls: Option<TlsAcceptor>,
    pub(super) users: BTreeMap<String, String>,
    pub(super) ok_cache: Mutex<HashSet<[u8; 32]>>,
    pub(super) bcrypt_slot: Semaphore,
}

impl std::fmt::Debug for WebGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebGuard")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebGuard {
    /// No TLS, no auth.
    pub fn open() -> Self {
        Self::new(None, BTreeMap::new())
    }

    pub(super) fn new(tls: Option<TlsAcceptor>, users: BTreeMap<String, String>) -> Self {
        Self {
            tls,
            users,
            ok_cache: Mutex::new(HashSet::new()),
            bcrypt_slot: Semaphore::new(1),
        }
    }

    /// The TLS acceptor, when TLS is configured.
    pub fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    /// Whether basic auth is required.
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
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
