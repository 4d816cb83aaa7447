//! The engine over the upstream, end to end: a real PostgreSQL, Helios in
//! front of it, real clients. Statements routed to DataFusion read the
//! upstream with parallel binary COPY in one exported snapshot.
//!
//! - `routing`: hints, `SET helios.engine`, rules, what is always relayed,
//!   the fallback and its NOTICE, partitions and pushdown;
//! - `results`: the engine's text output equals PostgreSQL's over a corpus
//!   of column types, and local files joined with upstream tables;
//! - `security`: privileges, row-level security, roles;
//! - `concurrency`: one snapshot for all partitions under concurrent
//!   writes, cancelling;
//! - `accelerate`: accelerated tables: lifecycle, `engine.auto`, the
//!   memory limit, configured accelerations;
//! - `stale`: writes through Helios make a copy stale at once;
//! - `differences`: where DataFusion and PostgreSQL differ, the answer is
//!   still PostgreSQL's (computed alike, or relayed);
//! - `extended`: the extended protocol (parameters, binary results).
//!
//! Where a statement ran is read from Helios's debug log (`support`).

#[path = "../common/mod.rs"]
mod common;

mod accelerate;
mod concurrency;
mod differences;
mod extended;
mod results;
mod routing;
mod security;
mod stale;
mod support;
