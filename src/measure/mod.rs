//! Measuring, and nothing of execution: every metric (the Prometheus registry), the recorders that
//! count each operation and observe its latency ([`record`]), the statistics they are read with
//! (HDR percentiles, bucket counts: [`stats`]), the SLO model that judges them ([`slo`]) and the
//! heartbeat `/healthz` reads ([`health`]).

pub mod e2e;
pub mod health;
pub mod metrics;
pub mod record;
pub mod sharded;
pub mod slo;
pub mod snapshot;
pub mod stats;
