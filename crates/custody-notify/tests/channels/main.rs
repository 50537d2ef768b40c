//! Every channel against a real receiver started by the test: an axum HTTP
//! server for webhooks and chat, Python's aiosmtpd for mail, and NATS
//! JetStream (the local server, or a `nats-server` the test starts).

#![allow(clippy::unwrap_used)]

mod chat;
mod common;
mod email;
mod nats;
#[path = "../support/mod.rs"]
mod support;
mod webhook;
