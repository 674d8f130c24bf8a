//! The migration sets embedded in the binary, one per backend, and the rule
//! for "migrations are current".

use std::collections::HashMap;

use sqlx::migrate::Migrator;

pub(super) static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
pub(super) static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Lists applied migrations (version, checksum) from sqlx's bookkeeping table.
pub(super) const APPLIED_SQL: &str = "select version, checksum from _sqlx_migrations where success";

/// True when every migration of `migrator` appears in `applied` with the same
/// checksum. Extra applied versions (from a newer release) are fine.
pub(super) fn is_current(migrator: &Migrator, applied: &[(i64, Vec<u8>)]) -> bool {
    let applied: HashMap<i64, &[u8]> = applied.iter().map(|(v, c)| (*v, c.as_slice())).collect();
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .all(|m| applied.get(&m.version).is_some_and(|c| *c == &*m.checksum))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied_all(migrator: &Migrator) -> Vec<(i64, Vec<u8>)> {
        migrator
            .iter()
            .map(|m| (m.version, m.checksum.to_vec()))
            .collect()
    }

    #[test]
    fn nothing_applied_is_not_current() {
        assert!(!is_current(&POSTGRES, &[]));
    }

    #[test]
    fn all_applied_is_current_even_with_newer_versions() {
        let mut applied = applied_all(&SQLITE);
        assert!(is_current(&SQLITE, &applied));
        applied.push((99_991_231_000_000, vec![1, 2, 3]));
        assert!(is_current(&SQLITE, &applied));
    }

    #[test]
    fn a_changed_checksum_is_not_current() {
        let mut applied = applied_all(&POSTGRES);
        applied[0].1 = vec![0; 48];
        assert!(!is_current(&POSTGRES, &applied));
    }
}
