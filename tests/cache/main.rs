//! The result cache, end to end: a real PostgreSQL, Helios in front of it,
//! real clients (tokio-postgres, raw protocol messages).
//!
//! A hit is recognised the way a user would notice one: a row changed
//! directly on the upstream (behind Helios's back, in `writes` mode) still
//! reads as it was — and `SHOW HELIOS CACHES` counts it.
//!
//! - `basics`: hits, identical bytes, modes, hints, rules, commands;
//! - `invalidation`: writes through Helios, DDL, views and partitions,
//!   notify mode, a writer racing 50 readers;
//! - `isolation`: roles and row-level security, search_path, TimeZone,
//!   volatile functions, transactions, opting out;
//! - `reach`: writes that do not name what they change (cascades,
//!   triggers, functions), text Helios cannot parse, renamed statements,
//!   clients that leave early;
//! - `extended`: binary parameters, named statements, `max_rows`, large results.

#[path = "../common/mod.rs"]
mod common;

mod basics;
mod extended;
mod invalidation;
mod isolation;
mod reach;
mod support;
