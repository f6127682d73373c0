//! The probes chatload has: one line each. Adding a probe is a new file beside this one and a line
//! here.

use super::probe::Probe;
use crate::config::Config;
use std::sync::Arc;

/// Every probe, in `[probes]` order.
pub fn all(cfg: &Config) -> Vec<Arc<dyn Probe>> {
    vec![
        Arc::new(super::ttl_metadata::TtlMetadata),
        Arc::new(super::ttl_expiry::TtlExpiry),
        Arc::new(super::recent_50::Recent50::default()),
        Arc::new(super::range_5m::Range5m::default()),
        Arc::new(super::pagination::Pagination::default()),
        Arc::new(super::partition_balance::PartitionBalance),
        Arc::new(super::redis_ttl::RedisTtl::default()),
        Arc::new(super::redis_cache::RedisCache::default()),
        Arc::new(super::redis_pubsub::RedisPubsub::new(cfg)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn every_probe_has_a_config_table_and_unique_name() {
        let cfg = Config::default();
        let names: Vec<&str> = all(&cfg).iter().map(|p| p.name()).collect();
        let tables: Vec<&str> = cfg.probes.iter().map(|(n, _)| n).collect();
        assert_eq!(names, tables);
    }
}
