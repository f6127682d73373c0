//! The configuration in force, shared: one value that every part reads and a reload swaps whole
//! ([`LiveConfig`]). Readers take an `Arc` of the current value; nobody keeps a copy of their own.

use super::model::Config;
use std::sync::Arc;
use tokio::sync::watch;

/// The configuration in force (cheap to clone: every clone reads the same value).
#[derive(Debug, Clone)]
pub struct LiveConfig(Arc<watch::Sender<Arc<Config>>>);

impl LiveConfig {
    /// `config` in force.
    pub fn new(config: Config) -> Self {
        Self(Arc::new(watch::Sender::new(Arc::new(config))))
    }

    /// The value in force now.
    pub fn get(&self) -> Arc<Config> {
        self.0.borrow().clone()
    }

    /// Put `config` in force; every reader sees it from its next [`LiveConfig::get`].
    pub fn set(&self, config: Config) {
        self.0.send_replace(Arc::new(config));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_reads_the_value_in_force() {
        let live = LiveConfig::new(Config::default());
        let reader = live.clone();
        let mut next = Config::default();
        next.traffic.write_rate = 7.0;
        live.set(next);
        assert_eq!(reader.get().traffic.write_rate, 7.0);
    }
}
