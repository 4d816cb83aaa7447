//! Shared helpers: bounded waits, raw connections, reading messages until close.

use std::future::Future;
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use crate::common::raw::{Msg, RawConn};
use crate::common::{try_connect, Helios, PgServer};
use tokio_postgres::error::DbError;
use tokio_postgres::SimpleQueryMessage;

/// Await `f`, failing the test if it takes longer than `secs`.
pub(crate) async fn within<F: Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs}s"))
}

pub(crate) fn db_error(e: &tokio_postgres::Error) -> &DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("expected an error from the server, got: {e:?}"))
}

/// The first column of the first row of a simple query, as text.
pub(crate) async fn scalar(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    let msgs = within(20, sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
        _ => None,
    })?
}

/// `select 1` through Helios, on a new connection.
pub(crate) async fn helios_answers(h: &Helios) {
    let c = within(
        20,
        "connecting through Helios",
        try_connect(&h.conn_str("postgres")),
    )
    .await
    .unwrap_or_else(|e| panic!("a new client cannot get in through Helios: {e:?}"));
    assert_eq!(scalar(&c, "select 1").await.as_deref(), Some("1"));
}

/// Poll (psql, directly) until `sql` prints `want`, for up to `secs`.
pub(crate) fn wait_for_direct(pg: &PgServer, sql: &str, want: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = pg.psql(sql);
        if got.trim() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {secs}s for `{sql}` to give {want:?}; last got {:?}",
            got.trim()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the upstream has no client sessions but the one asking: those
/// of closed clients have ended, so what they sent has run or never will.
pub(crate) fn wait_no_upstream_sessions(pg: &PgServer) {
    wait_for_direct(
        pg,
        "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
        "0",
        10,
    );
}

/// The same, but idle (pooled) connections may stay.
pub(crate) fn wait_no_busy_upstream_sessions(pg: &PgServer) {
    wait_for_direct(
        pg,
        "select count(*) from pg_stat_activity where backend_type = 'client backend' and state <> 'idle' and pid <> pg_backend_pid()",
        "0",
        10,
    );
}

pub(crate) fn postgres_log(pg: &PgServer) -> String {
    std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default()
}

/// A raw connection through Helios, logged in as postgres.
pub(crate) fn raw_login(port: u16) -> RawConn {
    let (c, msgs) = RawConn::connect(port, &[("user", "postgres"), ("database", "postgres")]);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        msgs.last().map(|m| m.tag),
        Some(b'Z'),
        "login did not end with ReadyForQuery: {msgs:?}"
    );
    c
}

pub(crate) fn raw_open(port: u16) -> RawConn {
    let c = RawConn::open(port);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    c
}

/// Split a byte stream into backend messages (a trailing partial one is kept as is).
pub(crate) fn parse_msgs(mut bytes: &[u8]) -> Vec<Msg> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let end = (1 + len).min(bytes.len());
        out.push(Msg {
            tag: bytes[0],
            body: bytes[5..end].to_vec(),
        });
        bytes = &bytes[end..];
    }
    out
}

/// Everything the server sends until it closes the connection. Fails the
/// test if it does not close within the read timeout.
pub(crate) fn read_until_closed(c: &mut RawConn) -> Vec<Msg> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break
            }
            Err(e) => panic!(
                "the connection was not closed ({e}); received so far: {:?}",
                parse_msgs(&bytes)
            ),
        }
    }
    parse_msgs(&bytes)
}

/// The one FATAL ErrorResponse in `msgs`, checked to be the last message.
pub(crate) fn the_fatal(msgs: &[Msg]) -> &Msg {
    let errors: Vec<&Msg> = msgs.iter().filter(|m| m.tag == b'E').collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one ErrorResponse: {msgs:?}"
    );
    let e = errors[0];
    assert_eq!(e.field(b'S').as_deref(), Some("FATAL"), "{e:?}");
    assert_eq!(
        msgs.last(),
        Some(e),
        "the FATAL error must be the last message: {msgs:?}"
    );
    e
}

/// `[limits]` turning off the per-address limit on failed logins, for a
/// Helios that has one (tests that fail logins on purpose, many times);
/// empty for one that has not (an unknown key would stop it starting).
pub(crate) fn no_auth_failure_limit() -> &'static str {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/config/limits.rs");
    match std::fs::read_to_string(src) {
        Ok(s) if s.contains("pub auth_failures_per_minute") => {
            "[limits]\nauth_failures_per_minute = 0\n"
        }
        _ => "",
    }
}
