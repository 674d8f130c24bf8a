//! Logging: one subscriber for the process, JSON lines in production.
//!
//! Rules: request fields (request id, method, route, status, latency) are
//! recorded on the access-log event itself so each JSON line stands alone;
//! secrets never reach a log field (configuration types redact themselves).
//! May import `config` only.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::{ConfigError, LogFormat, LogSettings};

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(settings: &LogSettings) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(&settings.filter).map_err(|e| ConfigError::Invalid {
        var: "RUST_LOG",
        reason: e.to_string(),
    })?;
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_target(true),
            )
            .init();
    } else {
        registry.with(fmt::layer().with_target(false)).init();
    }
    Ok(())
}
