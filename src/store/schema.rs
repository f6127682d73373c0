//! The chat table in the database: `schema apply` creates it, the keyspace guard refuses a keyspace
//! that is not chatload's, and the table's definition is read back from `system_schema`. The CQL
//! itself is the chat's ([`crate::chat::table`]).
//!
//! `schema apply` only ever runs `CREATE … IF NOT EXISTS` inside chatload's keyspace: it never alters or
//! drops anything, so running it against a cluster that already has the table is safe. When the existing
//! table differs from what chatload would create (another default TTL, say), apply reports it and leaves
//! the table as it is.

use super::scylla::{ScyllaError, query_first, query_rows};
use crate::chat::table::{
    OWNER_TABLE, TABLE, TableInfo, differences, expected_table, keyspace_cql, owner_table_cql,
    table_cql,
};
use crate::config::ScyllaConfig;
use scylla::client::session::Session;

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
    let mut columns: Vec<(String, String, i32, String)> = query_rows(session, &cql).await?;
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

/// What the traffic and the probes do before they prepare statements: refuse a keyspace that is
/// not chatload's, then create the keyspace and table when `scylla.create_schema` (an existing
/// table that differs is reported and left as it is).
pub async fn ensure(session: &Session, cfg: &ScyllaConfig) -> Result<(), ScyllaError> {
    guard(session, cfg).await?;
    if cfg.create_schema {
        let report = apply(session, cfg).await?;
        for d in &report.differences {
            tracing::warn!(difference = %d, "the existing chat_messages table differs from chatload's; left unchanged");
        }
    }
    Ok(())
}
