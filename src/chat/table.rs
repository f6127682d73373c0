//! The chat's table: `chat_messages` (and chatload's ownership marker) as CQL, the column order every
//! statement binds, and a message as the row it becomes. Written once here; the store creates it,
//! the traffic and the probes write and read it.

use super::workload::Message;
use crate::config::{ReplicationStrategy, ScyllaConfig};
use scylla::value::CqlTimestamp;
use scylla::{DeserializeRow, SerializeRow};
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

/// How an INSERT sets the row's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The table's `default_time_to_live`.
    TableDefault,
    /// `USING TTL <seconds>`, fixed in the statement.
    Fixed(u64),
    /// `USING TTL ?`, bound with each row ([`MessageRowWithTtl`]).
    Bound,
}

/// The INSERT of one message.
pub fn insert_cql(keyspace: &str, ttl: Ttl) -> String {
    let using = match ttl {
        Ttl::TableDefault => String::new(),
        Ttl::Fixed(t) => format!(" USING TTL {t}"),
        Ttl::Bound => " USING TTL ?".into(),
    };
    format!("INSERT INTO {keyspace}.{TABLE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?){using}")
}

/// How many messages a chat client opening a stream reads: the traffic's read and `recent_50`.
pub const RECENT: i32 = 50;

/// The newest messages of a stream, newest first, as many as bound (`LIMIT ?`; [`RECENT`] when a
/// chat client opens it).
pub fn newest_cql(keyspace: &str) -> String {
    format!("SELECT {COLUMNS} FROM {keyspace}.{TABLE} WHERE stream_id = ? LIMIT ?")
}

/// A message as the row it becomes: the bind values of [`insert_cql`], by column name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, SerializeRow)]
pub struct MessageRow<'a> {
    /// The stream (partition key).
    pub stream_id: Uuid,
    /// When it was sent (clustering key, newest first).
    pub timestamp: CqlTimestamp,
    /// Its id (clustering key).
    pub message_id: Uuid,
    /// Who sent it.
    pub sender_id: Uuid,
    /// Their display name.
    pub sender_display_name: &'a str,
    /// The text.
    pub message_text: &'a str,
    /// `approved`, `pending`, …
    pub moderation_status: &'a str,
    /// `text`, `mention`, `code`, `file`.
    pub message_type: &'a str,
}

impl<'a> MessageRow<'a> {
    /// The row of `m`.
    pub fn of(m: &'a Message) -> Self {
        Self {
            stream_id: m.stream_id,
            timestamp: CqlTimestamp(m.timestamp_ms),
            message_id: m.message_id,
            sender_id: m.sender.id,
            sender_display_name: &m.sender.display_name,
            message_text: &m.text,
            moderation_status: m.moderation_status,
            message_type: m.message_type.as_str(),
        }
    }
}

/// A row and its own TTL, for [`Ttl::Bound`] (the TTL's bind marker is named `[ttl]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, SerializeRow)]
pub struct MessageRowWithTtl<'a> {
    /// The row.
    #[scylla(flatten)]
    pub row: MessageRow<'a>,
    /// Seconds.
    #[scylla(rename = "[ttl]")]
    pub ttl: i32,
}

/// A message as read back with [`COLUMNS`].
#[derive(Debug, Clone, PartialEq, Eq, DeserializeRow)]
pub struct StoredMessage {
    /// The stream.
    pub stream_id: Uuid,
    /// When it was sent.
    pub timestamp: CqlTimestamp,
    /// Its id.
    pub message_id: Uuid,
    /// Who sent it.
    pub sender_id: Uuid,
    /// Their display name.
    pub sender_display_name: String,
    /// The text.
    pub message_text: String,
    /// Its moderation status.
    pub moderation_status: String,
    /// Its type.
    pub message_type: String,
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
            insert_cql("ks", Ttl::TableDefault),
            "INSERT INTO ks.chat_messages (stream_id, timestamp, message_id, sender_id, sender_display_name, \
             message_text, moderation_status, message_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        assert!(insert_cql("ks", Ttl::Fixed(3600)).ends_with(" USING TTL 3600"));
        assert!(insert_cql("ks", Ttl::Bound).ends_with(" USING TTL ?"));
        assert!(newest_cql("ks").ends_with("FROM ks.chat_messages WHERE stream_id = ? LIMIT ?"));
    }
}
