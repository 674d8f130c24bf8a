//! The crypto provider of every TLS connection the service makes (to
//! PostgreSQL, to Vault, and reqwest's for the healthcheck): ring.
//!
//! rustls 0.23.48 deprecates ring's provider in favour of aws-lc-rs, whose
//! post-quantum key exchange ring lacks. Moving to aws-lc-rs means a C and
//! assembler build of aws-lc in every build of the service and its image;
//! until that is decided on its own, the one place that names ring is here.
//! Imports nothing from the crate.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The provider to build a rustls configuration with.
#[allow(deprecated)] // see the module docs
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process default, for clients (reqwest) that take
/// the default instead of a configuration. Later calls change nothing.
pub fn install_default() {
    let _ = CryptoProvider::install_default((*provider()).clone());
}
