//! Configuration: one TOML file, environment overrides, and validation.
//!
//! Loading happens in two stages (see [`load`]):
//! 1. the file is parsed into a TOML tree, `CHATLOAD_<SECTION>__<KEY>` environment variables are merged
//!    into it, and every key is deserialized into the structs below (`deny_unknown_fields` everywhere);
//! 2. [`Config::validate`] checks what types cannot (rates > 0, a CQL identifier for the keyspace, …).
//!
//! Both stages report *every* problem at once, each with its key path, so a user fixes a config in one go.
//! The doc comment on each field is the documentation of that key; `config/chatload.toml` repeats them
//! and a test keeps that file equal to [`Config::default`].

mod backends;
mod catalog;
mod duration;
mod e2e;
mod live;
mod load;
mod model;
mod probes;
mod rules;
mod schedule;
mod spec;
pub mod template;
mod traffic;
mod validate;

pub use backends::{
    Consistency, REDACTED, RedisConfig, RedisTlsConfig, ReplicationConfig, ReplicationStrategy,
    ScyllaConfig, ScyllaTlsConfig, Secret, redact_url,
};
pub use catalog::Catalog;
#[cfg(test)]
pub(crate) use catalog::testing;
pub use duration::HumanDuration;
pub use e2e::{
    E2eConfig, E2eTemplates, E2eTlsConfig, PostConfig, QueueConfig, QueueKind, ReadConfig,
    SubscribersConfig, VisibilityConfig, raise_nofile_limit,
};
pub use live::LiveConfig;
pub use load::{ConfigError, load, load_str};
pub use model::{
    Config, HttpConfig, InstanceConfig, LogConfig, LogFormat, SloConfig, instance_rate,
};
pub use probes::ProbesConfig;
pub use rules::{FieldError, Rules};
pub use schedule::{ProbeConfig, ProbeTable, parse_options};
pub use spec::{
    AlertSpec, NoOptions, ProbeSpec, SloIndicator, SloSpec, SloValue, no_rules, options_table,
    parse_as,
};
pub use traffic::{MessageMix, StreamDistribution, TrafficConfig, WriteMode};
