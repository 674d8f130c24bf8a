//! Entry point: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use student_api::cli::{Cli, Command};
use student_api::telemetry::{self, Tracing};
use student_api::{app, Application};

/// Every request allocates a little (headers, JSON, rows); mimalloc serves
/// those small, short-lived allocations with less work than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // Every TLS client of the process (Vault, and reqwest's for the
    // healthcheck) uses ring, the provider the PostgreSQL connections use.
    student_api::tls::install_default();
    let cli = Cli::parse();
    if let Some(Command::Healthcheck(args)) = cli.command {
        // No logging and no database settings: only the listen address matters.
        return match app::healthcheck(cli.server.listen_addr, args.timeout).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("student-api healthcheck: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(err) = telemetry::init(&cli.log()) {
        eprintln!("student-api: invalid configuration: {err}");
        return ExitCode::from(2);
    }
    // Traces only for serving: `migrate` answers no request.
    let tracing = match cli.command {
        None | Some(Command::Serve) => match cli.tracing().and_then(|settings| {
            settings
                .map(|settings| Tracing::start(&settings).map(|tracing| (settings, tracing)))
                .transpose()
        }) {
            Ok(tracing) => tracing,
            Err(err) => {
                tracing::error!(error = %err, "invalid configuration");
                eprintln!("student-api: invalid configuration: {err}");
                return ExitCode::from(2);
            }
        },
        Some(_) => None,
    };
    let config = match cli.config() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "invalid configuration");
            eprintln!("student-api: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match Application::build(config).await {
            Ok(mut application) => {
                if let Some((settings, tracing)) = tracing {
                    tracing::info!(
                        endpoint = %settings.endpoint,
                        parent_based = settings.sampler.parent_based,
                        ratio = settings.sampler.ratio,
                        "tracing requests: spans go over OTLP/HTTP"
                    );
                    application = application.with_tracing(tracing);
                }
                application.run(app::shutdown_signal()).await
            }
            Err(err) => Err(err),
        },
        Command::Migrate(args) => app::migrate(&config, args.wait).await.map(|applied| {
            tracing::info!(applied, "migrations are up to date");
        }),
        Command::Healthcheck(_) => unreachable!("handled before logging starts"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "student-api failed");
            ExitCode::FAILURE
        }
    }
}
