//! chatload keeps steady synthetic chat traffic flowing into a ScyllaDB + Redis chat backend, probes
//! TTL enforcement and query latency on a schedule, and exposes everything as Prometheus metrics.
//!
//! Layers, from the ground up; each imports only the ones below it (`tests/layers.rs` checks):
//! 1. [`tls`]: PEM files turned into rustls configurations;
//! 2. [`web`]: TLS and basic auth for chatload's endpoints, from a Prometheus-style web config file;
//! 3. [`config`]: the TOML config, `CHATLOAD_*` environment overrides, validation with key paths;
//! 4. [`chat`]: the domain: messages, streams, senders, the workload; the table's CQL and the Redis
//!    key layout, owned once;
//! 5. [`measure`]: metrics, operation recorders, histograms and percentiles, the snapshots of the
//!    traffic and the probes, the SLO model;
//! 6. [`report`] and [`alerts`]: judging a measured window into SLO rows and rendering them (text,
//!    JSON, the status page); Prometheus rules from the same SLO model (config and measure only);
//! 7. [`store`]: the ScyllaDB session and Redis connection, their health loops, the schema in the
//!    database (it reports health into `measure`, so it sits above it);
//! 8. [`traffic`], [`probes`] and [`e2e`]: the open-loop pacer, the scheduled checks and the
//!    end-to-end canary of a chat service; never each other;
//! 9. [`daemon`]: starts and stops everything; `/metrics`, `/healthz`, `/readyz`, the status page's
//!    sampler, reload;
//! 10. [`cli`]: the command line and `chatload check`; the only place that turns results into exit
//!     codes.

#![warn(missing_docs)]

pub mod alerts;
pub mod chat;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod e2e;
pub mod measure;
pub mod probes;
pub mod report;
pub mod store;
pub mod tls;
pub mod traffic;
pub mod web;

pub use config::Config;
pub use daemon::{Daemon, run};
