//! The chat's table: `chat_messages` (and chatload's ownership marker) as CQL, the column order every
//! statement binds, and a message as the row it becomes. Written once here; the store creates it,
//! the traffic and the probes write and read it.

use super::workload::Message;
use crate::config::{ReplicationStrategy, ScyllaConfig};
use scylla::value::CqlTimestamp;
use std::fmt::Write as _;
use uuid::Uuid;

/// The table's name inside the keyspace.
pub const TABLE: &str = "chat_messages";

/// The marker table chatload creates with a keyspace of its own: its presence says "chatload's".
pub const OWNER_TABLE: &str = "chatload_owner";

/// `CREATE TABLE IF NOT EXISTS <keyspace>.chatload_owner …`.
pub fn owner_table_cql(keyspace: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.{OWNER_TABLE} (owner text PRIMARY KEY, created_at timestamp, version text)"
    )
}

/// `CREATE KEYSPACE IF NOT EXISTS …` with the configured replication.
pub fn keyspace_cql(cfg: &ScyllaConfig) -> String {
    let r = &cfg.replication;
    let replication = match r.strategy {
        ReplicationStrategy::Simple => format!(
            "{{'class': 'SimpleStrategy', 'replication_factor': {}}}",
            r.replication_factor
        ),
        ReplicationStrategy::NetworkTopology => {
            let mut s = String::from("{'class': 'NetworkTopologyStrategy'");
            for (dc, n) in &r.datacenters {
                let _ = write!(s, ", '{dc}': {n}");
            }
            s.push('}');
            s
        }
    };
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {replication} AND durable_writes = true",
        cfg.keyspace
    )
}

/// `CREATE TABLE IF NOT EXISTS <keyspace>.chat_messages …`, as the spec defines it.
pub fn table_cql(cfg: &ScyllaConfig) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {ks}.{TABLE} (
    stream_id uuid, timestamp timestamp, message_id uuid,
    sender_id uuid, sender_display_name text, message_text text,
    moderation_status text, message_type text,
    PRIMARY KEY ((stream_id), timestamp, message_id)
) WITH CLUSTERING ORDER BY (timestamp DESC, message_id ASC)
  AND default_time_to_live = {ttl}
  AND compaction = {{'class': 'TimeWindowCompactionStrategy'}}",
        ks = cfg.keyspace,
        ttl = cfg.default_ttl.get().as_secs()
    )
}

/// Both statements, each ended by `;`, as `chatload schema print` shows them.
pub fn script(cfg: &ScyllaConfig) -> String {
    format!("{};\n\n{};\n", keyspace_cql(cfg), table_cql(cfg))
}

/// What `system_schema` says about the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// `default_time_to_live`, seconds.
    pub default_ttl: i32,
    /// Compaction class, short name (`TimeWindowCompactionStrategy`).
    pub compaction_class: String,
    /// Partition key columns in order.
    pub partition_key: Vec<String>,
    /// Clustering columns in order, with their order (`desc`/`asc`).
    pub clustering: Vec<(String, String)>,
}

/// The table chatload expects for `cfg`.
pub fn expected_table(cfg: &ScyllaConfig) -> TableInfo {
    TableInfo {
        default_ttl: i32::try_from(cfg.default_ttl.get().as_secs()).unwrap_or(i32::MAX),
        compaction_class: "TimeWindowCompactionStrategy".into(),
        partition_key: vec!["stream_id".into()],
        clustering: vec![
            ("timestamp".into(), "desc".into()),
            ("message_id".into(), "asc".into()),
        ],
    }
}

/// Human-readable differences between the expected and the actual table.
pub fn differences(expected: &TableInfo, actual: &TableInfo) -> Vec<String> {
    let mut d = Vec::new();
    if expected.default_ttl != actual.default_ttl {
        d.push(format!(
            "default_time_to_live is {} (expected {})",
            actual.default_ttl, expected.default_ttl
        ));
    }
    if expected.compaction_class != actual.compaction_class {
        d.push(format!(
            "compaction is {} (expected {})",
            actual.compaction_class, expected.compaction_class
        ));
    }
    if expected.partition_key != actual.partition_key {
        d.push(format!(
            "partition key is {:?} (expected {:?})",
            actual.partition_key, expected.partition_key
        ));
    }
    if expected.clustering != actual.clustering {
        d.push(format!(
            "clustering is {:?} (expected {:?})",
            actual.clustering, expected.clustering
        ));
    }
    d
}

/// The columns of `chat_messages`, in the order the statements bind them.
pub const COLUMNS: &str = "stream_id, timestamp, message_id, sender_id, sender_display_name, message_text, moderation_status, message_type";

/// The INSERT's CQL; `ttl_secs` adds `USING TTL` (else the table's default TTL applies).
pub fn insert_cql(keyspace: &str, ttl_secs: Option<u64>) -> String {
    let using = ttl_secs
        .map(|t| format!(" USING TTL {t}"))
        .unwrap_or_default();
    format!("INSERT INTO {keyspace}.{TABLE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?){using}")
}

/// The read: the newest 50 messages of a stream, as a chat client opening it does.
pub fn recent_cql(keyspace: &str) -> String {
    format!("SELECT {COLUMNS} FROM {keyspace}.{TABLE} WHERE stream_id = ? LIMIT 50")
}

/// The bind values of one message, in [`COLUMNS`] order.
pub type Row<'a> = (
    Uuid,
    CqlTimestamp,
    Uuid,
    Uuid,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

/// The bind values of `m`.
pub fn row(m: &Message) -> Row<'_> {
    (
        m.stream_id,
        CqlTimestamp(m.timestamp_ms),
        m.message_id,
        m.sender.id,
        &m.sender.display_name,
        &m.text,
        m.moderation_status,
        m.message_type.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    #[test]
    fn table_cql_is_the_spec_table() {
        let cql = table_cql(&ScyllaConfig::default());
        for part in [
            "CREATE TABLE IF NOT EXISTS chatload.chat_messages",
            "PRIMARY KEY ((stream_id), timestamp, message_id)",
            "CLUSTERING ORDER BY (timestamp DESC, message_id ASC)",
            "default_time_to_live = 2592000",
            "'class': 'TimeWindowCompactionStrategy'",
            "moderation_status text, message_type text",
        ] {
            assert!(cql.contains(part), "missing {part:?} in\n{cql}");
        }
    }

    #[test]
    fn keyspace_cql_follows_the_replication_config() {
        let mut cfg = ScyllaConfig::default();
        assert_eq!(
            keyspace_cql(&cfg),
            "CREATE KEYSPACE IF NOT EXISTS chatload WITH replication = \
             {'class': 'SimpleStrategy', 'replication_factor': 1} AND durable_writes = true"
        );
        cfg.keyspace = "chat_stage".into();
        cfg.replication.strategy = ReplicationStrategy::NetworkTopology;
        cfg.replication.datacenters.insert("eu1".into(), 3);
        cfg.replication.datacenters.insert("us1".into(), 2);
        cfg.default_ttl = HumanDuration::from_secs(3600);
        assert!(
            keyspace_cql(&cfg).contains("{'class': 'NetworkTopologyStrategy', 'eu1': 3, 'us1': 2}")
        );
        assert!(table_cql(&cfg).contains("chat_stage.chat_messages"));
        assert!(table_cql(&cfg).contains("default_time_to_live = 3600"));
    }

    #[test]
    fn differences_name_what_differs() {
        let cfg = ScyllaConfig::default();
        let expected = expected_table(&cfg);
        assert!(differences(&expected, &expected).is_empty());
        let mut actual = expected.clone();
        actual.default_ttl = 3600;
        actual.compaction_class = "SizeTieredCompactionStrategy".into();
        let d = differences(&expected, &actual);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("3600") && d[1].contains("SizeTiered"));
    }

    #[test]
    fn cql_has_the_columns_and_optional_ttl() {
        assert_eq!(
            insert_cql("ks", None),
            "INSERT INTO ks.chat_messages (stream_id, timestamp, message_id, sender_id, sender_display_name, \
             message_text, moderation_status, message_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        assert!(insert_cql("ks", Some(3600)).ends_with(" USING TTL 3600"));
        assert!(recent_cql("ks").ends_with("FROM ks.chat_messages WHERE stream_id = ? LIMIT 50"));
    }
}
