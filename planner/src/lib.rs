//! # helios-planner: what Helios knows about SQL and the upstream's schema
//!
//! - [`catalog`]: a snapshot of the upstream's tables, columns, keys, comments
//!   and value statistics, loaded through any text-query runner.
//! - [`sql`]: parsing (PostgreSQL dialect, DataFusion's sqlparser) and analysis
//!   of a statement: its kind, the relations and functions it uses, whether it
//!   can write or lock.
//! - [`check`]: planning a statement in DataFusion against the catalog (tables
//!   registered with their schemas, no data) to find unknown relations and
//!   columns before the upstream sees it.
//! - [`cacheable`]: what the result cache may keep (candidates, writes,
//!   hints, fingerprints) and the catalog query that settles a candidate.
//! - [`engine`]: DataFusion — the embedded demo database, and upstream
//!   tables as DataFusion tables read in parallel binary-COPY partitions
//!   (`engine::upstream`), with the check that keeps the engine to what it
//!   computes exactly as PostgreSQL does (`engine::upstream::faithful`) and
//!   PostgreSQL's `avg` (`engine::pg_avg`).
//! - [`pg_compat`]: the PostgreSQL catalog and functions psql and drivers
//!   expect, emulated over DataFusion's tables, and PostgreSQL-isms rewritten.
//!
//! It owns no sockets and no policy: callers decide what to refuse.

pub mod cacheable;
pub mod catalog;
pub mod check;
pub mod engine;
pub mod pg_compat;
pub mod sql;

pub use catalog::{Catalog, Column, ForeignKey, QualifiedName, RelationKind, Table};
pub use datafusion::sql::sqlparser;
