//! Applies the embedded PostgreSQL migrations over tokio-postgres.
//!
//! The bookkeeping is sqlx's, unchanged, so that databases migrated by
//! earlier releases (which ran sqlx's migrator) carry on: the same table
//! `_sqlx_migrations`, the same checksums (computed by `sqlx::migrate!` at
//! build time), and the same advisory lock, so that a replica of the
//! previous release migrating at the same moment waits for this one.
//!
//! Rules: one migrator at a time per database (the advisory lock); each
//! migration and its bookkeeping row commit together; a migration recorded
//! as failed, one whose file changed after it was applied, or one applied
//! by a newer release than this binary stops the run with an error naming
//! its version.
//!
//! Migrations that start with `-- no-transaction` (sqlx's marker) build
//! and drop indexes `concurrently`, which must run outside a
//! transaction and, on a large table, for longer than any statement of the
//! service. So:
//! - such a file is run one statement at a time (statements end with `;`
//!   at the end of a line; no dollar quoting), and is recorded once all
//!   have succeeded. A run that stops half-way is re-run whole, so each
//!   statement must be idempotent (`if not exists`, `if exists`, a
//!   statistics target, `analyze`; a unit test holds every embedded one to
//!   these forms);
//! - an interrupted concurrent build leaves an invalid index behind, which
//!   `if not exists` would take for done: before such a statement, an
//!   invalid index of that name is dropped, so it is built again;
//! - the migrator's session has no statement timeout;
//! - the advisory lock is taken by polling `pg_try_advisory_lock`, never by
//!   waiting in `pg_advisory_lock`: a waiting statement holds a snapshot,
//!   and a concurrent index build waits for every older snapshot to end, so
//!   a second replica waiting on the lock and the first one's build would
//!   wait for each other until the deadlock detector cancelled one of them.

use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use tokio_postgres::Client;

use crate::storage::MigrationError;

/// sqlx's bookkeeping table, as its PostgreSQL migrator creates it.
const CREATE_TABLE: &str = "
create table if not exists _sqlx_migrations (
    version bigint primary key,
    description text not null,
    installed_on timestamptz not null default now(),
    success boolean not null,
    checksum bytea not null,
    execution_time bigint not null
)";

/// The advisory lock key sqlx derives from the database name, so that this
/// migrator and sqlx's exclude each other.
fn lock_key(database: &str) -> i64 {
    0x3d32_ad9e * i64::from(crc32fast::hash(database.as_bytes()))
}

/// How often a migrator waiting for another one tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(250);

/// Applies every migration of `migrator` not yet applied; returns how many ran.
pub async fn run(client: &mut Client, migrator: &Migrator) -> Result<usize, MigrationError> {
    // An index build on a large table outlasts any request's timeout.
    client.batch_execute("set statement_timeout = 0").await?;
    let database: String = client
        .query_one("select current_database()", &[])
        .await?
        .try_get(0)?;
    let key = lock_key(&database);
    let mut waiting = false;
    // Between tries this session runs nothing, so holds no snapshot.
    while !client
        .query_one("select pg_try_advisory_lock($1)", &[&key])
        .await?
        .try_get::<_, bool>(0)?
    {
        if !waiting {
            tracing::info!("another migrator holds the migration lock; waiting for it");
            waiting = true;
        }
        tokio::time::sleep(LOCK_RETRY).await;
    }
    let result = apply(client, migrator).await;
    // The lock also ends with the session; an explicit unlock lets a
    // waiting migrator go on at once.
    let unlocked = client
        .execute("select pg_advisory_unlock($1)", &[&key])
        .await;
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply(client: &mut Client, migrator: &Migrator) -> Result<usize, MigrationError> {
    client.batch_execute(CREATE_TABLE).await?;
    let dirty = client
        .query_opt(
            "select version from _sqlx_migrations where success = false order by version limit 1",
            &[],
        )
        .await?;
    if let Some(row) = dirty {
        return Err(MigrationError::Dirty(row.try_get(0)?));
    }
    let rows = client
        .query(
            "select version, checksum from _sqlx_migrations order by version",
            &[],
        )
        .await?;
    let applied = rows
        .iter()
        .map(|row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, Vec<u8>>(1)?)))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let up = || {
        migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
    };
    if let Some((version, _)) = applied
        .iter()
        .find(|(version, _)| !up().any(|m| m.version == *version))
    {
        return Err(MigrationError::Unknown(*version));
    }
    let mut count = 0;
    for migration in up() {
        if let Some((_, checksum)) = applied.iter().find(|(v, _)| *v == migration.version) {
            if *checksum != *migration.checksum {
                return Err(MigrationError::Changed(migration.version));
            }
            continue;
        }
        let started = Instant::now();
        let record = "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
                      values ($1, $2, true, $3, -1)";
        let checksum: &[u8] = &migration.checksum;
        let description: &str = &migration.description;
        let failed = |source| MigrationError::Apply {
            version: migration.version,
            source,
        };
        if migration.no_tx {
            for statement in statements(migration.sql.as_str()) {
                if let Some(index) = concurrent_index_name(statement) {
                    drop_if_invalid(client, index).await.map_err(failed)?;
                }
                client.batch_execute(statement).await.map_err(failed)?;
            }
            client
                .execute(record, &[&migration.version, &description, &checksum])
                .await?;
        } else {
            let transaction = client.transaction().await?;
            transaction
                .batch_execute(migration.sql.as_str())
                .await
                .map_err(failed)?;
            transaction
                .execute(record, &[&migration.version, &description, &checksum])
                .await?;
            transaction.commit().await?;
        }
        let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        client
            .execute(
                "update _sqlx_migrations set execution_time = $1 where version = $2",
                &[&nanos, &migration.version],
            )
            .await?;
        tracing::info!(
            version = migration.version,
            description,
            "migration applied"
        );
        count += 1;
    }
    Ok(count)
}

/// The statements of a no-transaction migration: text up to each `;` that
/// ends a line, comment lines left out.
fn statements(sql: &str) -> Vec<&str> {
    let mut statements = Vec::new();
    let mut start = None;
    let mut offset = 0;
    for line in sql.split_inclusive('\n') {
        let trimmed = line.trim();
        if start.is_none() && !trimmed.is_empty() && !trimmed.starts_with("--") {
            start = Some(offset);
        }
        offset += line.len();
        if let Some(from) = start.filter(|_| trimmed.ends_with(';')) {
            statements.push(sql[from..offset].trim());
            start = None;
        }
    }
    if let Some(from) = start {
        statements.push(sql[from..].trim());
    }
    statements
}

/// The index a `create [unique] index concurrently if not exists <name>`
/// statement builds.
fn concurrent_index_name(statement: &str) -> Option<&str> {
    let words: Vec<&str> = statement.split_whitespace().take(8).collect();
    let (["create", "unique", words @ ..] | ["create", words @ ..]) = words.as_slice() else {
        return None;
    };
    match words {
        ["index", "concurrently", "if", "not", "exists", name, ..] => Some(name),
        _ => None,
    }
}

/// Drops index `name` (in the search path) if a concurrent build that did
/// not finish left it invalid.
async fn drop_if_invalid(client: &Client, name: &str) -> Result<(), tokio_postgres::Error> {
    let invalid = client
        .query_opt(
            "select 1 from pg_index where indexrelid = to_regclass($1) and not indisvalid",
            &[&name],
        )
        .await?;
    if invalid.is_some() {
        tracing::warn!(
            index = name,
            "dropping an index that an interrupted build left invalid, to build it again"
        );
        // The name comes from a migration embedded in the binary.
        client
            .batch_execute(&format!("drop index concurrently if exists {name}"))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_key_is_sqlx_s() {
        // sqlx 0.8's generate_lock_id("postgres"): the CRC-32 (ISO-HDLC)
        // of the name, 0x156a8775, times 0x3d32ad9e.
        assert_eq!(lock_key("postgres"), 368_907_709_894_077_238);
        assert_ne!(lock_key("students"), lock_key("postgres"));
    }

    #[test]
    fn a_no_transaction_migration_runs_statement_by_statement() {
        let sql =
            "-- no-transaction\n-- why\ncreate index concurrently if not exists a on t (x);\n\n\
                   create unique index concurrently if not exists b\n    on t (y);\nselect 1";
        let statements = statements(sql);
        assert_eq!(
            statements,
            vec![
                "create index concurrently if not exists a on t (x);",
                "create unique index concurrently if not exists b\n    on t (y);",
                "select 1",
            ]
        );
        let names: Vec<_> = statements
            .iter()
            .map(|s| concurrent_index_name(s))
            .collect();
        assert_eq!(names, vec![Some("a"), Some("b"), None]);
    }

    /// Whether a no-transaction statement may run again after a run that
    /// stopped anywhere: an index build (an invalid leftover is dropped
    /// first), or a statement that is idempotent by its form.
    fn can_run_again(statement: &str) -> bool {
        let words: Vec<&str> = statement.split_whitespace().collect();
        concurrent_index_name(statement).is_some()
            || words.starts_with(&["drop", "index", "concurrently", "if", "exists"])
            || (words.first() == Some(&"alter") && words.contains(&"statistics"))
            || words.first() == Some(&"analyze")
    }

    #[test]
    fn every_embedded_no_transaction_statement_can_run_again() {
        for migration in crate::storage::migrations::POSTGRES.iter() {
            if migration.no_tx {
                for statement in statements(migration.sql.as_str()) {
                    assert!(
                        can_run_again(statement),
                        "{}: {statement}",
                        migration.version
                    );
                }
            }
        }
        assert!(!can_run_again("drop index concurrently students_name_id;"));
        assert!(!can_run_again("create index concurrently a on t (x);"));
    }
}
