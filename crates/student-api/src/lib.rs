//! student-api: a REST service for student records.
//!
//! The binary is a thin wrapper around this library; tests build the same
//! [`http::router`] and [`app::Application`] the binary serves.

pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod secrets;
pub mod server;
pub mod storage;
pub mod telemetry;

pub use app::Application;
