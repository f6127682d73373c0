//! Probes: scheduled checks that turn "the backend seems fine" into numbers an alert can stand on.
//!
//! Each probe is one module implementing [`Probe`]: it runs, measures one or more latencies, and runs
//! correctness checks whose failures are counted per check. [`ProbeScheduler`] runs every enabled
//! probe in a task of its own: on its `interval` plus random `jitter`, bounded by its `timeout`, never
//! two runs of one probe at once. A run that times out or cannot run (`error`) has measured nothing,
//! so it is observed once at its `timeout` in `chatload_probe_duration_seconds` and in the probe's
//! percentiles: a failing probe never looks fast. Probes write only to streams of their own (derived
//! from a random id of this process, the instance and the probe), so each knows exactly what it wrote
//! and can check what it reads; their rows carry a TTL so the streams stay small.
//!
//! - [`probe`]: the trait, verdicts, errors and the shared context;
//! - [`registry`]: every probe, one line each (adding a probe: a new file and a line there);
//! - [`scheduler`]: runs them.

pub mod pagination;
pub mod partition_balance;
pub mod probe;
pub mod range_5m;
pub mod recent_50;
pub mod redis_cache;
pub mod redis_pubsub;
pub mod redis_ttl;
pub mod registry;
pub mod scheduler;
pub mod ttl_expiry;
pub mod ttl_metadata;

pub use probe::{Probe, ProbeContext};
pub use registry::all;
pub use scheduler::{OUTCOMES, ProbeScheduler};
