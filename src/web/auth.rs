//! Basic authentication: the `Authorization` header checked against `basic_auth_users`, successful
//! logins cached by a SHA-256 of user, password and hash (never the password), bcrypt run one at a
//! time off the runtime, and an unknown user made to cost a bcrypt too.

use super::guard::WebGuard;
use aws_lc_rs::digest;
use base64::Engine;
use std::sync::OnceLock;

/// Successful logins remembered at most; the cache starts over when full.
const AUTH_CACHE_MAX: usize = 256;

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No basic auth configured, or the credentials match.
    Allowed,
    /// Credentials missing, malformed or wrong.
    Denied,
}

impl WebGuard {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::config::tests::file;

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
}
