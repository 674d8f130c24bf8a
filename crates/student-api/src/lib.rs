//! student-api: a REST service for student records.
//!
//! The binary is a thin wrapper around this library; tests build the same
//! [`http::router`] and [`app::Application`] the binary serves. The module
//! graph has no cycle (docs/architecture.md draws it): `cli` fills in
//! `config`, plain data that imports nothing else; `credentials` hands
//! database credentials from `secrets` to `storage`; `http` serves `storage`
//! and `domain`; `server` serves HTTP/1.1; `app` alone knows everything.

pub mod app;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod http;
pub mod secrets;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod tls;

pub use app::Application;
