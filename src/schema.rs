//! The CQL schema chatload uses: its own keyspace and the `chat_messages` table.
//!
//! `schema apply` only ever runs `CREATE … IF NOT EXISTS` inside chatload's keyspace: it never alters or
//! drops anything, so running it against a cluster that already has the table is safe. When the existing
//! table differs from what chatload would create (another default TTL, say), apply reports it and leaves
//! the table as it is.

use crate::backend::scylla::{ScyllaError, query_first};
use crate::config::{ReplicationStrategy, ScyllaConfig};
use scylla::client::session::Session;
use std::fmt::Write as _;

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

async fn table_exists(session: &Session, keyspace: &str, table: &str) -> Result<bool, ScyllaError> {
    let cql = format!(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = '{keyspace}' AND table_name = '{table}'"
    );
    Ok(query_first::<(String,)>(session, &cql).await?.is_some())
}

/// How long [`guard`] waits for the marker of a keyspace that another chatload (the traffic of this
/// process, another replica) is creating right now: its `CREATE KEYSPACE` is already visible, its
/// marker table follows within milliseconds.
pub const MARKER_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether `keyspace` holds no table at all (nobody's data).
async fn has_no_tables(session: &Session, keyspace: &str) -> Result<bool, ScyllaError> {
    let cql = format!(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = '{keyspace}' LIMIT 1"
    );
    Ok(query_first::<(String,)>(session, &cql).await?.is_none())
}

/// Refuse a keyspace that exists without chatload's marker, unless `allow_existing_keyspace`.
/// A keyspace that does not exist (yet) passes: chatload will create it, with the marker. So does
/// one without any table: it holds nobody's data, and it is what a chatload leaves behind when it is
/// killed between its `CREATE KEYSPACE` and its marker (refusing it would need a hand to drop it).
pub async fn guard(session: &Session, cfg: &ScyllaConfig) -> Result<(), ScyllaError> {
    if cfg.allow_existing_keyspace || !keyspace_exists(session, &cfg.keyspace).await? {
        return Ok(());
    }
    let waited = std::time::Instant::now();
    loop {
        if table_exists(session, &cfg.keyspace, OWNER_TABLE).await?
            || has_no_tables(session, &cfg.keyspace).await?
        {
            return Ok(());
        }
        if waited.elapsed() >= MARKER_GRACE {
            return Err(ScyllaError::NotOurKeyspace {
                keyspace: cfg.keyspace.clone(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
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

/// Read the table's definition back from `system_schema`; `None` when it does not exist.
pub async fn describe_table(
    session: &Session,
    keyspace: &str,
) -> Result<Option<TableInfo>, ScyllaError> {
    type Compaction = std::collections::HashMap<String, String>;
    let cql = format!(
        "SELECT default_time_to_live, compaction FROM system_schema.tables \
         WHERE keyspace_name = '{keyspace}' AND table_name = '{TABLE}'"
    );
    let Some((default_ttl, compaction)) = query_first::<(i32, Compaction)>(session, &cql).await?
    else {
        return Ok(None);
    };
    let class = compaction.get("class").cloned().unwrap_or_default();
    let compaction_class = class.rsplit('.').next().unwrap_or_default().to_string();

    let cql = format!(
        "SELECT column_name, kind, position, clustering_order FROM system_schema.columns \
         WHERE keyspace_name = '{keyspace}' AND table_name = '{TABLE}'"
    );
    let result = session
        .query_unpaged(cql.as_str(), &[])
        .await
        .map_err(|cause| ScyllaError::Query {
            cql: cql.clone(),
            cause,
        })?;
    let bad = |message: String| ScyllaError::Result {
        cql: cql.clone(),
        message,
    };
    let rows = result.into_rows_result().map_err(|e| bad(e.to_string()))?;
    let mut columns: Vec<(String, String, i32, String)> = rows
        .rows::<(String, String, i32, String)>()
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    columns.sort_by_key(|c| c.2);
    let mut partition_key = Vec::new();
    let mut clustering = Vec::new();
    for (name, kind, _, order) in columns {
        match kind.as_str() {
            "partition_key" => partition_key.push(name),
            "clustering" => clustering.push((name, order)),
            _ => {}
        }
    }
    Ok(Some(TableInfo {
        default_ttl,
        compaction_class,
        partition_key,
        clustering,
    }))
}

/// Whether a keyspace exists.
pub async fn keyspace_exists(session: &Session, keyspace: &str) -> Result<bool, ScyllaError> {
    let cql = format!(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = '{keyspace}'"
    );
    Ok(query_first::<(String,)>(session, &cql).await?.is_some())
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

/// What `schema apply` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// The keyspace was created now (else it existed).
    pub created_keyspace: bool,
    /// The table was created now (else it existed).
    pub created_table: bool,
    /// Differences between the existing table and what chatload expects (empty when it matches).
    pub differences: Vec<String>,
}

/// Create the keyspace and table if missing; never alter or drop. Idempotent.
pub async fn apply(session: &Session, cfg: &ScyllaConfig) -> Result<ApplyReport, ScyllaError> {
    let had_keyspace = keyspace_exists(session, &cfg.keyspace).await?;
    if had_keyspace {
        guard(session, cfg).await?;
    }
    let had_table = had_keyspace && describe_table(session, &cfg.keyspace).await?.is_some();
    // A keyspace we create, or an empty one the guard let us claim, is marked as ours before
    // anything else goes in (an empty one left unmarked would be refused once it has a table).
    let claim = !had_keyspace || has_no_tables(session, &cfg.keyspace).await?;
    let mut statements = vec![keyspace_cql(cfg)];
    if claim {
        statements.push(owner_table_cql(&cfg.keyspace));
        statements.push(format!(
            "INSERT INTO {}.{OWNER_TABLE} (owner, created_at, version) VALUES ('chatload', toTimestamp(now()), '{}')",
            cfg.keyspace,
            env!("CARGO_PKG_VERSION")
        ));
    }
    statements.push(table_cql(cfg));
    for cql in statements {
        session
            .query_unpaged(cql.as_str(), &[])
            .await
            .map_err(|cause| ScyllaError::Query { cql, cause })?;
    }
    let info = describe_table(session, &cfg.keyspace)
        .await?
        .ok_or_else(|| ScyllaError::Result {
            cql: table_cql(cfg),
            message: "the table is still missing after CREATE TABLE".into(),
        })?;
    Ok(ApplyReport {
        created_keyspace: !had_keyspace,
        created_table: !had_table,
        differences: differences(&expected_table(cfg), &info),
    })
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
}
