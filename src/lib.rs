//! chatload keeps steady synthetic chat traffic flowing into a ScyllaDB + Redis chat backend, probes
//! TTL enforcement and query latency on a schedule, and exposes everything as Prometheus metrics.
//!
//! Modules:
//! - [`cli`]: the command line (`run`, `check`, `schema`, `config check`) and exit codes;
//! - [`check`]: the bounded run that judges the traffic against the SLOs (a pipeline gate);
//! - [`alerts`]: Prometheus recording and alerting rules generated from the SLOs;
//! - [`config`]: the TOML config, `CHATLOAD_*` environment overrides, validation with key paths;
//! - [`daemon`]: starts and stops everything; [`daemon::run`] takes a shutdown token;
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` and the status page (hyper 1);
//! - [`web`]: TLS and basic auth on those endpoints, from a Prometheus-style web config file;
//! - [`tls`]: the crypto provider and PEM files turned into rustls configurations;
//! - [`status`]: the status page and `/api/v1/status`: SLOs, probes, backends, 15-minute charts;
//! - [`metrics`]: every metric name, help text and bucket layout;
//! - [`slo`]: the SLO model: every SLO once, judged the same in `check`, rules, status page;
//! - [`backend`]: the ScyllaDB session and Redis connection, and their health loops;
//! - [`schema`]: the keyspace and `chat_messages` table, printed or applied;
//! - [`traffic`]: the open-loop pacer and the chat workload it drives into ScyllaDB and Redis;
//! - [`probes`]: scheduled TTL, query, pagination, balance and Redis checks, each an SLI;
//! - [`reload`]: SIGHUP and `POST /-/reload` swap in a new configuration;
//! - [`logging`]: `tracing` output as text or JSON.

#![warn(missing_docs)]

pub mod alerts;
pub mod backend;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod probes;
pub mod reload;
pub mod schema;
pub mod slo;
pub mod status;
pub mod tls;
pub mod traffic;
pub mod web;

pub use config::Config;
pub use daemon::{Daemon, run};
