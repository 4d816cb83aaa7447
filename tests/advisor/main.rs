//! The query advisor, end to end: a real PostgreSQL with a seeded schema
//! (HypoPG where a test wants it), Helios in front, real clients.
//!
//! - `advise`: `ADVISE`, `helios_advise()`, `ADVISE ANALYZE`, index
//!   recommendations verified with HypoPG and from `pg_stats`, findings
//!   and the score, the extended protocol;
//! - `workload`: `SHOW HELIOS QUERIES`, `ADVISE WORKLOAD`, `SET
//!   helios.advise` notices.

#[path = "../common/mod.rs"]
mod common;

mod advise;
mod support;
mod workload;
