//! The traffic's CQL: a prepared INSERT (or UNLOGGED BATCH of them) and the "newest 50" read,
//! and the sorting of driver errors into `outcome` label values.

use crate::chat::table::{MessageRow, RECENT, Ttl, insert_cql, newest_cql};
use crate::chat::workload::Message;
use crate::measure::record::Outcome;
use crate::store::scylla::{ScyllaError, prepare};
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

/// The traffic's prepared statements.
pub struct Statements {
    insert: PreparedStatement,
    batch: Option<Batch>,
    recent: PreparedStatement,
}

impl Statements {
    /// Prepare the statements once; the driver re-prepares them by itself on nodes that forgot them.
    pub async fn prepare(
        session: &Session,
        keyspace: &str,
        ttl_secs: Option<u64>,
        batch_size: Option<usize>,
    ) -> Result<Self, ScyllaError> {
        let ttl = ttl_secs.map_or(Ttl::TableDefault, Ttl::Fixed);
        let insert = prepare(session, insert_cql(keyspace, ttl)).await?;
        let recent = prepare(session, newest_cql(keyspace)).await?;
        let batch = batch_size.map(|n| {
            let mut b = Batch::new(BatchType::Unlogged);
            for _ in 0..n {
                b.append_statement(insert.clone());
            }
            b
        });
        Ok(Self {
            insert,
            batch,
            recent,
        })
    }
}

/// Write `messages`: one INSERT, or one UNLOGGED BATCH when there are several (all of one stream).
pub async fn write(
    session: &Session,
    st: &Statements,
    messages: &[Message],
) -> Result<(), ExecutionError> {
    match (messages, &st.batch) {
        ([one], _) => session
            .execute_unpaged(&st.insert, MessageRow::of(one))
            .await
            .map(drop),
        (many, Some(batch)) if many.len() == batch.statements.len() => {
            let values: Vec<MessageRow<'_>> = many.iter().map(MessageRow::of).collect();
            session.batch(batch, values).await.map(drop)
        }
        (many, _) => {
            // A batch of another size than prepared (not produced by the traffic): build it here.
            let mut b = Batch::new(BatchType::Unlogged);
            for _ in many {
                b.append_statement(st.insert.clone());
            }
            let values: Vec<MessageRow<'_>> = many.iter().map(MessageRow::of).collect();
            session.batch(&b, values).await.map(drop)
        }
    }
}

/// Read the newest 50 messages of `stream`; returns how many rows came back.
pub async fn read_recent(
    session: &Session,
    st: &Statements,
    stream: Uuid,
) -> Result<usize, ExecutionError> {
    let result = session
        .execute_unpaged(&st.recent, (stream, RECENT))
        .await?;
    Ok(result.into_rows_result().map(|r| r.rows_num()).unwrap_or(0))
}

/// Sort a driver error into an `outcome`: timeouts (client or server side), overload (including
/// ScyllaDB's rate limit), unavailability (replicas, connections, bootstrapping), or anything else.
pub fn classify(e: &ExecutionError) -> Outcome {
    match e {
        ExecutionError::RequestTimeout(_) => Outcome::Timeout,
        ExecutionError::ConnectionPoolError(_) | ExecutionError::EmptyPlan => Outcome::Unavailable,
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::DbError(db, _) => match db {
                DbError::ReadTimeout { .. } | DbError::WriteTimeout { .. } => Outcome::Timeout,
                DbError::Overloaded | DbError::RateLimitReached { .. } => Outcome::Overloaded,
                DbError::Unavailable { .. } | DbError::IsBootstrapping => Outcome::Unavailable,
                _ => Outcome::Error,
            },
            RequestAttemptError::BrokenConnectionError(_)
            | RequestAttemptError::UnableToAllocStreamId => Outcome::Unavailable,
            _ => Outcome::Error,
        },
        _ => Outcome::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scylla::errors::{OperationType, WriteType};
    use scylla::statement::Consistency;
    use std::time::Duration;

    fn db(e: DbError) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, "msg".into()))
    }

    #[test]
    fn driver_errors_sort_into_outcomes() {
        let cases = [
            (
                ExecutionError::RequestTimeout(Duration::from_secs(2)),
                Outcome::Timeout,
            ),
            (
                db(DbError::WriteTimeout {
                    consistency: Consistency::One,
                    received: 0,
                    required: 1,
                    write_type: WriteType::Simple,
                }),
                Outcome::Timeout,
            ),
            (
                db(DbError::ReadTimeout {
                    consistency: Consistency::One,
                    received: 0,
                    required: 1,
                    data_present: false,
                }),
                Outcome::Timeout,
            ),
            (db(DbError::Overloaded), Outcome::Overloaded),
            (
                db(DbError::RateLimitReached {
                    op_type: OperationType::Write,
                    rejected_by_coordinator: true,
                }),
                Outcome::Overloaded,
            ),
            (
                db(DbError::Unavailable {
                    consistency: Consistency::Quorum,
                    required: 2,
                    alive: 1,
                }),
                Outcome::Unavailable,
            ),
            (db(DbError::IsBootstrapping), Outcome::Unavailable),
            (ExecutionError::EmptyPlan, Outcome::Unavailable),
            (db(DbError::Invalid), Outcome::Error),
            (db(DbError::SyntaxError), Outcome::Error),
        ];
        for (err, want) in cases {
            assert_eq!(classify(&err), want, "{err}");
        }
    }
}
