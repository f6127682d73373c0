//! Backend health: a loop per backend that keeps `chatload_backend_up` (and `chatload_backend_info`)
//! true to reality, and the backoff every reconnect uses.

use crate::measure::metrics::Metrics;
use rand::Rng;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often a healthy backend is checked.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Exponential backoff with jitter, for reconnecting to a backend that is down.
///
/// Each delay is drawn from `[d/2, d]` ("equal jitter") so that many replicas that lost the same
/// backend do not reconnect in lockstep, and `d` doubles up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Start at `min`, never exceed `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = d / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// After a success: start again from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// What [`monitor`] needs of a backend.
pub trait HealthCheck {
    /// The error of a failed check.
    type Error: Display;
    /// The `backend` label value.
    fn backend(&self) -> &'static str;
    /// One cheap round trip; `Ok` means the backend serves requests.
    fn check(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// What the server says it is: `(kind, version)`, asked after each (re)connection.
    fn identify(&self) -> impl Future<Output = Result<(&'static str, String), Self::Error>> + Send;
}

/// Check `target` every [`HEALTH_INTERVAL`] (with backoff while it is down) until `shutdown`,
/// keeping `chatload_backend_up` and `chatload_backend_info` current and logging each transition once.
pub async fn monitor<H: HealthCheck>(
    target: &H,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let backend = target.backend();
    let up_gauge = metrics.backend_up.with_label_values(&[backend]);
    let mut backoff = Backoff::new(Duration::from_millis(250), HEALTH_INTERVAL);
    let mut was_up = false;
    let mut failures: u64 = 0;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = target.check() => r,
        };
        let up = match result {
            Ok(()) => {
                if !was_up {
                    // (Re)connected: the server may have been upgraded meanwhile.
                    match target.identify().await {
                        Ok((kind, version)) => {
                            metrics.set_backend_info(backend, kind, &version);
                            info!(backend, kind, version = %version, "backend is up");
                        }
                        Err(e) => {
                            warn!(backend, error = %e, "backend is up but did not say what it is")
                        }
                    }
                }
                failures = 0;
                true
            }
            Err(e) => {
                failures += 1;
                // Once on the transition, then every 12th failure: a log line, not a flood.
                if was_up || failures % 12 == 1 {
                    warn!(backend, error = %e, consecutive_failures = failures, "backend is down");
                }
                false
            }
        };
        up_gauge.set(i64::from(up));
        was_up = up;
        let wait = if up {
            backoff.reset();
            HEALTH_INTERVAL
        } else {
            backoff.next_delay()
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let bounds = [100, 200, 400, 800, 800, 800];
        for upper in bounds {
            let d = b.next_delay();
            let upper = Duration::from_millis(upper);
            assert!(
                d >= upper / 2 && d <= upper,
                "{d:?} not in [{:?}, {upper:?}]",
                upper / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
