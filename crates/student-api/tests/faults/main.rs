//! Storage faults that need the real binary: files deleted under the
//! running service, a file system that fills up and frees space again. Each
//! test drives the binary over loopback and checks what a client and an
//! operator get: no write acknowledged that is not durable, an answer a
//! client can act on, one log line for the operator, and recovery without a
//! restart where the fault is gone.
//!
//! The tmpfs test mounts a file system and needs root; without it, it says
//! so and passes.

mod deleted;
mod full;
mod service;
mod writes;
