//! `[limits]`, the upstream circuit breaker and lazy attach, against a real
//! PostgreSQL: what a client sees when it is over a limit (the SQLSTATE and
//! a message naming the setting), that nothing it was refused reached the
//! upstream, and that the session (or Helios) goes on afterwards.

#[path = "../common/mod.rs"]
mod common;

mod breaker;
mod lazy;
mod rates;
mod timeouts;

use std::future::Future;
use std::time::Duration;

use tokio_postgres::error::DbError;

pub(crate) async fn within<F: Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs}s"))
}

pub(crate) fn db_error(e: &tokio_postgres::Error) -> &DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("expected an error from the server, got: {e:?}"))
}
