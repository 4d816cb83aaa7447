//! Natural language through the PostgreSQL protocol, end to end: a real
//! PostgreSQL, Helios in front of it, real clients (tokio-postgres, psql,
//! raw protocol messages), and a scripted fake LLM (the only fake).
//!
//! - `asking`: the ways a client asks (nl(), nl($1), the comment form,
//!   nl_sql, nl_reset, history) and what comes back;
//! - `safety`: destructive or locking SQL from the model is refused and
//!   nothing changes; NL inside a transaction block is refused;
//! - `pipeline`: corrections, provider fallback, the breaker, caching,
//!   follow-ups, schema pruning;
//! - `gold`: execution accuracy against a gold question set (also used by
//!   `benches/nl_builtin.rs`).

#[path = "../common/mod.rs"]
mod common;

mod asking;
mod builtin;
mod gold;
mod pipeline;
mod protocol;
mod safety;
mod support;
