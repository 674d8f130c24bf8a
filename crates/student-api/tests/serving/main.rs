//! The real binary over loopback, where the behaviour lives in how
//! connections are served: limits and timeouts that keep clients from
//! exhausting the service, the drain at SIGTERM, what a request over the
//! size limits gets back, and the traces the process exports (its global
//! log subscriber and tracer provider are per process). Each test starts
//! its own process on a fresh SQLite database.

mod support;

mod capacity;
mod limits;
mod shutdown;
mod timeouts;
mod tracing;
