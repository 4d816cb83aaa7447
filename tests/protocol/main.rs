//! The PostgreSQL protocol through Helios: a real driver (tokio-postgres) and
//! the raw protocol client, compared where it matters with a direct
//! connection to the same upstream.

#[path = "../common/mod.rs"]
mod common;

mod copy;
mod extended;
mod notify_cancel;
mod pooling;
mod simple;
mod startup;
mod support;
mod transactions_errors;
