//! Integration tests of the server: the real server on a loopback port, real websockets,
//! real SQLite files in temp dirs. One test binary for the crate.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod abuse;
mod authorization;
mod bad_input;
mod common;
mod consent;
mod links;
mod media;
mod rooms;
mod tls;
