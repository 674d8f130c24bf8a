//! HTTP-level tests of the real router, on both storage backends.

mod helpers;

mod cli;
mod constraints;
mod drills;
mod errors;
mod health;
mod list_plans;
mod metrics;
mod migrations;
mod openapi;
mod pool;
mod shutdown;
mod storage;
mod students_create;
mod students_cursor;
mod students_delete;
mod students_input;
mod students_list;
mod students_read;
mod students_update;
mod ui;
