//! The process's open-file limit: the soft limit raised to the hard one at
//! start, and the connection cap fitted under it, so that client
//! connections can never take the descriptors the database pool and the
//! process itself need (an `accept` that fails with "too many open files").

/// Descriptors kept for everything but client and database connections:
/// standard streams, the runtime's poller and wakers, listeners, signal
/// handling, Vault and DNS sockets, secret files, `/proc` reads for metrics.
const BASE_RESERVE: u64 = 64;

/// Fewest client connections worth serving with.
const MIN_CONNECTIONS: u64 = 16;

/// The open-file limit leaves too little room for client connections.
#[derive(Debug, thiserror::Error)]
#[error(
    "the open-file limit ({limit}) leaves fewer than {MIN_CONNECTIONS} descriptors for client \
     connections once {reserved} are kept for the database pool and the process; raise it \
     (`ulimit -n`, LimitNOFILE, the container runtime's nofile) or lower DB_MAX_CONNECTIONS"
)]
pub struct TooFewDescriptors {
    limit: u64,
    reserved: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit now in force (`None` where it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    let (soft, hard) = match rlimit::Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the open-file limit");
            return None;
        }
    };
    if soft >= hard {
        return Some(soft);
    }
    match rlimit::increase_nofile_limit(hard) {
        Ok(raised) => {
            tracing::info!(
                from = soft,
                to = raised,
                hard,
                "raised the open-file limit to the hard limit"
            );
            Some(raised)
        }
        Err(err) => {
            tracing::warn!(error = %err, soft, hard, "cannot raise the open-file limit");
            Some(soft)
        }
    }
}

/// Descriptors to keep free of client connections on the API listener: an
/// SQLite connection holds up to three (database, WAL, shared memory), a
/// PostgreSQL one one (two while credentials rotate); `other_listeners` is
/// the cap of any other listener (metrics).
pub fn reserved_descriptors(db_max_connections: u32, other_listeners: usize) -> u64 {
    BASE_RESERVE
        + 3 * u64::from(db_max_connections)
        + u64::try_from(other_listeners).unwrap_or(u64::MAX)
}

/// The connection cap: `requested`, lowered (with a warning) to what the
/// open-file limit leaves once `reserved` descriptors are kept.
pub fn connection_cap(
    requested: usize,
    open_files: Option<u64>,
    reserved: u64,
) -> Result<usize, TooFewDescriptors> {
    let Some(limit) = open_files else {
        return Ok(requested);
    };
    let room = limit.saturating_sub(reserved);
    if room < MIN_CONNECTIONS {
        return Err(TooFewDescriptors { limit, reserved });
    }
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if requested > room {
        tracing::warn!(
            requested,
            max_connections = room,
            open_file_limit = limit,
            reserved,
            "HTTP_MAX_CONNECTIONS lowered to fit the open-file limit"
        );
        return Ok(room);
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_under_the_open_file_limit_with_room_for_the_pool() {
        let reserved = reserved_descriptors(10, 16);
        assert_eq!(reserved, 64 + 30 + 16);
        assert_eq!(
            connection_cap(1024, Some(1_048_576), reserved).unwrap(),
            1024
        );
        assert_eq!(
            connection_cap(1024, Some(1024), reserved).unwrap(),
            1024 - 110
        );
        assert_eq!(connection_cap(1024, None, reserved).unwrap(), 1024);
        let err = connection_cap(1024, Some(120), reserved).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("the open-file limit (120) leaves fewer than 16"));
    }
}
