//! In-flight slots: a pool per backend, so that a slow or dead backend never holds back the other,
//! with the `chatload_in_flight` gauge kept as slots are taken and returned.

use prometheus::IntGauge;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A slot pool of one backend with its `chatload_in_flight` gauge.
pub struct Slots {
    semaphore: Arc<Semaphore>,
    capacity: u32,
    gauge: IntGauge,
}

/// An in-flight slot; returns itself and updates the gauge when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Slots {
    /// `capacity` slots, reported through `gauge`.
    pub fn new(capacity: u32, gauge: IntGauge) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            gauge,
        }
    }

    /// A slot, or `None` when `capacity` requests are already in flight.
    pub fn try_take(&self) -> Option<Slot> {
        let permit = self.semaphore.clone().try_acquire_owned().ok()?;
        self.gauge.inc();
        Some(Slot {
            _permit: permit,
            gauge: self.gauge.clone(),
        })
    }

    /// Wait until every slot is free again (all in-flight requests finished), at most `limit`.
    pub async fn drained(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.semaphore.acquire_many(self.capacity))
            .await
            .is_ok()
    }
}
