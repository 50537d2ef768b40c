//! The end-to-end tests, as one test binary.
//!
//! Each module was a test binary of its own. Every one of them linked sqlx,
//! axum, reqwest and the whole server, so each change to the workspace
//! relinked them all; one binary links once. The modules share the helpers
//! in `tests/common/` (a real `custody serve`, or the server's library in
//! this process on a test clock; the tamper and crash-load harnesses).
//!
//! Sharing one process means sharing its global state. No test sets an
//! environment variable, changes the working directory or installs a
//! signal handler: what a child process needs is set on its `Command`. See
//! `tests/README.md`.

// Test code unwraps, and casts the numbers of its fixtures (log indexes,
// sizes, sequence numbers) into SQL integers and back.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

#[path = "../common/mod.rs"]
mod common;

mod admin_record;
mod bad_input;
mod break_glass;
mod bundle;
mod change_set;
mod chat;
mod checkpoints;
mod cli_hygiene;
mod cli_usage;
mod connectors;
mod console;
mod console_browser;
mod crash;
mod delegation;
mod drill;
mod drill_cases;
mod durability;
mod evidence;
mod export;
mod findings;
mod first_run;
mod http_edge;
mod identities;
mod late_records;
mod ledger_timer;
mod lifecycle;
mod log;
mod log_tamper;
mod merge;
mod monitor;
mod notify;
mod notify_channels;
mod obligations;
mod observe;
mod oidc;
mod openapi;
mod policy;
mod postgres;
mod power_loss;
mod problems;
mod report;
mod review;
mod scenarios;
mod sinks;
mod tamper;
mod text_safety;
mod tls;
mod tokens;
mod two_servers;
mod witness;
