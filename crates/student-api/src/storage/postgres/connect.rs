//! Turns a [`PostgresTarget`] into a tokio-postgres configuration and the
//! TLS connector (rustls, the one TLS stack to PostgreSQL) its `sslmode`
//! asks for.
//!
//! Rules: `sslmode` keeps libpq's meaning. `disable` never uses TLS;
//! `allow`/`prefer` use it when the server offers it and `require` insists on
//! it, all three without checking the certificate (as libpq does when no root
//! certificate is configured); `verify-ca` checks the chain against
//! `sslrootcert` (or the public web roots) and `verify-full` also the host
//! name. rustls verifies the chain and the name together only, so the two
//! other behaviours (chain only; encrypted but unchecked) are the small
//! verifiers below. The password only ever moves from one configuration to
//! the other.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use secrecy::ExposeSecret;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{PostgresHost, PostgresTarget, SslMode};

/// Why a target could not become a connection configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConnectConfigError {
    #[error("cannot read the root certificate in sslrootcert")]
    RootCertificate(#[source] rustls::pki_types::pem::Error),
    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),
}

/// How one connection is made: where, as whom, and over what.
pub struct ConnectPlan {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
}

/// Builds the plan for `target`, with the service's session settings.
pub fn plan(
    target: &PostgresTarget,
    statement_timeout: Duration,
    connect_timeout: Duration,
) -> Result<ConnectPlan, ConnectConfigError> {
    let mut config = tokio_postgres::Config::new();
    match &target.host {
        PostgresHost::Socket(directory) => config.host_path(directory),
        PostgresHost::Tcp(host) => config.host(host),
    };
    config
        .port(target.port)
        .user(&target.user)
        .dbname(target.database())
        .application_name(target.application_name.as_deref().unwrap_or("student-api"))
        // student_api.email_key tells the database that this session
        // computes email_key itself (see the email_key migration).
        .options(format!(
            "-c statement_timeout={} -c student_api.email_key=computed",
            statement_timeout.as_millis()
        ))
        .connect_timeout(connect_timeout);
    if let Some(password) = &target.password {
        config.password(password.expose_secret());
    }
    config.ssl_mode(match target.ssl_mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    });
    let tls = tls_config(target.ssl_mode, target.ssl_root_cert.as_deref())?;
    Ok(ConnectPlan {
        config,
        tls: MakeRustlsConnect::new(tls),
    })
}

/// Builds what can be built without credentials (the TLS configuration and
/// its root certificates), so that unusable settings are found at start.
pub fn check_settings(target: &PostgresTarget) -> Result<(), ConnectConfigError> {
    tls_config(target.ssl_mode, target.ssl_root_cert.as_deref()).map(drop)
}

fn provider() -> Arc<CryptoProvider> {
    crate::tls::provider()
}

fn tls_config(mode: SslMode, root_cert: Option<&str>) -> Result<ClientConfig, ConnectConfigError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(ConnectConfigError::Tls)?;
    let verify_name = matches!(mode, SslMode::VerifyFull);
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(root_cert)?),
                provider(),
            )
            .build()
            .map_err(|e| ConnectConfigError::Tls(rustls::Error::General(e.to_string())))?;
            if verify_name {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
        _ => Arc::new(Unverified(provider())),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The roots in `sslrootcert` (a PEM file, or PEM text given inline), or the
/// public web roots when none is set.
fn root_store(root_cert: Option<&str>) -> Result<RootCertStore, ConnectConfigError> {
    let mut store = RootCertStore::empty();
    let Some(root_cert) = root_cert else {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(store);
    };
    let certs: Vec<CertificateDer<'static>> = if root_cert.trim_start().starts_with("-----BEGIN") {
        CertificateDer::pem_slice_iter(root_cert.as_bytes()).collect::<Result<_, _>>()
    } else {
        CertificateDer::pem_file_iter(root_cert).and_then(Iterator::collect::<Result<_, _>>)
    }
    .map_err(ConnectConfigError::RootCertificate)?;
    let (_, ignored) = store.add_parsable_certificates(certs);
    if store.is_empty() || ignored > 0 {
        return Err(ConnectConfigError::Tls(rustls::Error::General(
            "sslrootcert holds no usable certificate".into(),
        )));
    }
    Ok(store)
}

/// `verify-ca`: the chain must lead to a trusted root; the name may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `allow`, `prefer`, `require`: encrypted, but whoever answers is trusted.
/// The handshake signatures are still checked, so the session key is bound
/// to the certificate presented.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn target() -> PostgresTarget {
        PostgresTarget {
            host: PostgresHost::Tcp("db.internal".to_owned()),
            port: 6543,
            user: "app".to_owned(),
            password: Some(SecretString::from("p@ss:w/rd%")),
            database: Some("students".to_owned()),
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
            application_name: None,
        }
    }

    fn with_mode(mode: SslMode, root_cert: Option<&str>) -> PostgresTarget {
        PostgresTarget {
            ssl_mode: mode,
            ssl_root_cert: root_cert.map(str::to_owned),
            ..target()
        }
    }

    #[test]
    fn every_setting_reaches_the_connection_configuration() {
        let plan = plan(&target(), Duration::from_secs(5), Duration::from_secs(3)).unwrap();
        let config = &plan.config;
        assert_eq!(config.get_user(), Some("app"));
        assert_eq!(config.get_password(), Some("p@ss:w/rd%".as_bytes()));
        assert_eq!(config.get_dbname(), Some("students"));
        assert_eq!(config.get_ports(), [6543]);
        assert_eq!(config.get_application_name(), Some("student-api"));
        assert_eq!(
            config.get_options(),
            Some("-c statement_timeout=5000 -c student_api.email_key=computed")
        );
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        // libpq's default.
        assert_eq!(config.get_ssl_mode(), PgSslMode::Prefer);
    }

    #[test]
    fn sslmode_keeps_its_libpq_meaning() {
        let mode = |m: SslMode| {
            plan(
                &with_mode(m, None),
                Duration::from_secs(5),
                Duration::from_secs(3),
            )
            .unwrap()
            .config
            .get_ssl_mode()
        };
        assert_eq!(mode(SslMode::Disable), PgSslMode::Disable);
        assert_eq!(mode(SslMode::Prefer), PgSslMode::Prefer);
        assert_eq!(mode(SslMode::Require), PgSslMode::Require);
        assert_eq!(mode(SslMode::VerifyFull), PgSslMode::Require);
    }

    #[test]
    fn an_unreadable_root_certificate_is_an_error_not_a_silent_downgrade() {
        let target = with_mode(SslMode::VerifyCa, Some("/nonexistent/root.crt"));
        assert!(matches!(
            plan(&target, Duration::from_secs(5), Duration::from_secs(3)),
            Err(ConnectConfigError::RootCertificate(_))
        ));
    }

    #[test]
    fn the_settings_check_reads_the_root_certificate_of_verifying_modes_only() {
        let missing = Some("/nonexistent/root.crt");
        assert!(matches!(
            check_settings(&with_mode(SslMode::VerifyFull, missing)),
            Err(ConnectConfigError::RootCertificate(_))
        ));
        assert!(check_settings(&with_mode(SslMode::Require, missing)).is_ok());
        assert!(check_settings(&target()).is_ok());
    }

    #[test]
    fn a_unix_socket_directory_is_kept() {
        let target = PostgresTarget {
            host: PostgresHost::Socket("/run/postgresql".into()),
            ..target()
        };
        let plan = plan(&target, Duration::from_secs(5), Duration::from_secs(3)).unwrap();
        assert_eq!(
            plan.config.get_hosts(),
            [tokio_postgres::config::Host::Unix("/run/postgresql".into())]
        );
    }
}
