//! Faults while work is under way: the upstream restarted under load, killed
//! during a COPY or in the middle of a large result; clients that vanish
//! mid-result or mid-transaction; a cancel during a COPY. After each, the
//! upstream holds exactly what committed transactions wrote (checked on
//! PostgreSQL directly), and Helios stays up and serves.

use std::collections::BTreeSet;
use std::io::{Cursor, ErrorKind, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_postgres::NoTls;

use crate::common::raw::{self, Msg, RawConn};
use crate::common::{psql, try_connect, Helios, PgServer};
use crate::support::{
    helios_answers, raw_login, scalar, wait_for_direct, wait_no_busy_upstream_sessions, within,
};

/// A large result: about 1 GB of rows, far more than any buffer on the way.
const BIG: &str = "SELECT g, repeat('x', 500) FROM generate_series(1, 2000000) g";
/// Finds [`BIG`] in pg_stat_activity (but not the query asking).
const BIG_RUNNING: &str = "select count(*) from pg_stat_activity \
     where query like 'SELECT g, repeat(%' and state = 'active' and pid <> pg_backend_pid()";

/// Whether an error is the connection going away (or not being there):
/// closed, I/O, SQLSTATE class 08, or the server shutting down or starting.
fn connection_level(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(c) => c.code().starts_with("08") || matches!(c.code(), "57P01" | "57P02" | "57P03"),
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Poll PostgreSQL directly, a new connection each time, until it answers
/// `select 1`; the instant it first did.
async fn wait_direct_up(pg: &PgServer, secs: u64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = Duration::from_secs(2);
        if let Ok(Ok(c)) = tokio::time::timeout(t, try_connect(&pg.conn_str())).await {
            if let Ok(Ok(_)) = tokio::time::timeout(t, c.simple_query("select 1")).await {
                return Instant::now();
            }
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not accept connections within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Poll `cond` every 10 ms for up to `secs`.
async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "waited {secs}s for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Run a blocking harness call (pg_ctl) off the runtime's worker threads.
async fn blocking(pg: &Arc<PgServer>, f: fn(&PgServer)) {
    let pg = pg.clone();
    within(60, "pg_ctl", tokio::task::spawn_blocking(move || f(&pg)))
        .await
        .unwrap();
}

/// All `(a, b)` rows of a two-integer-column query, directly on PostgreSQL.
async fn direct_pairs(pg: &PgServer, sql: &str) -> BTreeSet<(i32, i32)> {
    let c = within(20, "connect directly", try_connect(&pg.conn_str()))
        .await
        .unwrap();
    within(20, sql, c.query(sql, &[]))
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

// ------------------------------------------------ restart under load

/// Read the first `n` rows of a result, checking nothing went wrong.
fn read_rows(c: &mut RawConn, n: usize) {
    let mut rows = 0;
    while rows < n {
        let m = c.read_msg().expect("the result ended early");
        assert_ne!(m.tag, b'E', "{m:?}");
        if m.tag == b'D' {
            rows += 1;
        }
    }
}

mod client_gone;
mod copy;
mod mid_result;
mod restart;
