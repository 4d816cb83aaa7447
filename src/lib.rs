//! # helios: the proxy
//!
//! The binary's crate: command line ([`cli`]), configuration ([`config`]),
//! the listener and shared state ([`server`]), the embedded demo database
//! served when no upstream is configured ([`embedded`]), each client's session
//! ([`session`]: startup, authentication, the relay), and the upstream
//! connections and their pool ([`upstream`]), the result cache's shared
//! state ([`cache`]) and natural language's ([`nl`]), and operations: the
//! client registry, pause and shutdown, metrics, the audit log, reload and
//! the admin commands ([`ops`]), served over HTTP by [`admin`].
//!
//! Protocol details (framing, startup packets, authentication exchanges, TLS
//! setup) live in `helios-wire`; this crate decides what to do with them.
//! See `ARCHITECTURE.md` in the shared docs for the path of a query.

pub mod admin;
pub mod advisor;
pub mod cache;
pub mod cli;
pub mod config;
pub mod embedded;
pub mod engine;
pub mod limits;
pub mod logging;
pub mod nl;
pub mod ops;
pub mod server;
pub mod session;
pub mod upstream;
