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

use std::time::Instant;

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

/// Applies every migration of `migrator` not yet applied; returns how many ran.
pub async fn run(client: &mut Client, migrator: &Migrator) -> Result<usize, MigrationError> {
    let database: String = client
        .query_one("select current_database()", &[])
        .await?
        .try_get(0)?;
    let key = lock_key(&database);
    client
        .execute("select pg_advisory_lock($1)", &[&key])
        .await?;
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
            client
                .batch_execute(migration.sql.as_str())
                .await
                .map_err(failed)?;
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
}
