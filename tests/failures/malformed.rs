//! Malformed client messages after startup: unknown types, bad lengths, oversized messages.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use crate::common::raw::{self, Msg, RawConn};
use crate::common::{Helios, PgServer};
use crate::support::{
    parse_msgs, postgres_log, raw_login, raw_open, read_until_closed, the_fatal,
    wait_no_busy_upstream_sessions, wait_no_upstream_sessions,
};

// ------------------------------------------------- malformed client messages

fn setup_table(pg: &PgServer) {
    pg.psql("create table t (x int)");
}

fn row_count(pg: &PgServer, x: i32) -> String {
    pg.psql(&format!("select count(*) from t where x = {x}"))
        .trim()
        .to_string()
}

#[test]
fn unknown_message_type_is_fatal_08p01_and_never_reaches_the_upstream() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    let mut c = raw_login(h.port);
    c.send(&raw::msg(b'!', b"insert into t values (1)\0"));
    let msgs = read_until_closed(&mut c);
    let e = the_fatal(&msgs);
    assert_eq!(e.sqlstate().as_deref(), Some("08P01"), "{msgs:?}");
    assert_eq!(
        e.field(b'M').as_deref(),
        Some("invalid frontend message type 33"),
        "{msgs:?}"
    );

    wait_no_upstream_sessions(&pg);
    let log = postgres_log(&pg);
    assert!(
        !log.contains("invalid frontend message type"),
        "the bad message reached the upstream:\n{log}"
    );
    assert!(h.is_alive());
    let mut n = raw_login(h.port);
    n.send(&raw::query("select 1"));
    assert!(n.until_ready().iter().all(|m| m.tag != b'E'));

    // Control: had it reached PostgreSQL, its log would say so.
    let mut direct = raw_open(pg.port);
    direct.send(&raw::startup(&[
        ("user", "postgres"),
        ("database", "postgres"),
    ]));
    direct.until_ready();
    direct.send(&raw::msg(b'!', b"x\0"));
    let msgs = read_until_closed(&mut direct);
    assert_eq!(the_fatal(&msgs).sqlstate().as_deref(), Some("08P01"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !postgres_log(&pg).contains("invalid frontend message type 33") {
        assert!(
            Instant::now() < deadline,
            "control: PostgreSQL did not log the bad message"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn message_length_below_four_is_fatal_08p01() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    for (what, bytes) in [
        ("length 3", vec![b'Q', 0, 0, 0, 3]),
        ("length 0", vec![b'Q', 0, 0, 0, 0]),
        ("length -1", vec![b'Q', 0xff, 0xff, 0xff, 0xff]),
    ] {
        let mut c = raw_login(h.port);
        c.send(&bytes);
        let msgs = read_until_closed(&mut c);
        let e = the_fatal(&msgs);
        assert_eq!(e.sqlstate().as_deref(), Some("08P01"), "{what}: {msgs:?}");
    }
    wait_no_upstream_sessions(&pg);
    let log = postgres_log(&pg);
    assert!(
        !log.contains("invalid message length") && !log.contains("unexpected EOF"),
        "the bad message reached the upstream:\n{log}"
    );
    assert!(h.is_alive());
    let mut n = raw_login(h.port);
    n.send(&raw::query("select 1"));
    assert!(n.until_ready().iter().all(|m| m.tag != b'E'));
}

/// A Query of about `size` bytes: `insert into t values (x)` and a comment.
fn big_insert(x: i32, size: usize) -> Vec<u8> {
    let mut sql = format!("insert into t values ({x}) /* ");
    sql.push_str(&"x".repeat(size - sql.len() - 3));
    sql.push_str(" */");
    raw::query(&sql)
}

/// Send `bytes` from another thread (the server may stop reading half way)
/// while reading everything the server answers until it closes.
fn send_and_read_until_closed(c: &mut RawConn, bytes: Vec<u8>) -> Vec<Msg> {
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
    });
    let msgs = read_until_closed(c);
    writer.join().unwrap();
    msgs
}

#[test]
fn oversized_message_is_fatal_08p01_and_does_not_run() {
    let pg = PgServer::start();
    setup_table(&pg);
    let mut h = Helios::start(&pg, "[server]\nmax_message_size = \"1MB\"\n");

    // Just under the limit runs.
    let mut c = raw_login(h.port);
    c.send(&big_insert(1, 1000 * 1024));
    let msgs = c.until_ready();
    assert!(
        msgs.iter()
            .any(|m| m.tag == b'C' && m.body.starts_with(b"INSERT 0 1")),
        "a message under max_message_size must go through: {msgs:?}"
    );
    drop(c);

    let mut c = raw_login(h.port);
    let t0 = Instant::now();
    let msgs = send_and_read_until_closed(&mut c, big_insert(2, 2 << 20));
    let e = the_fatal(&msgs);
    assert_eq!(e.sqlstate().as_deref(), Some("08P01"), "{msgs:?}");
    assert!(t0.elapsed() < Duration::from_secs(8));

    wait_no_busy_upstream_sessions(&pg);
    assert_eq!(row_count(&pg, 2), "0", "the oversized statement ran");
    assert_eq!(row_count(&pg, 1), "1");
    assert!(h.is_alive());
    let mut n = raw_login(h.port);
    n.send(&raw::query("select 1"));
    assert!(n.until_ready().iter().all(|m| m.tag != b'E'));
}

/// As PostgreSQL does: the valid Query is answered (INSERT, ReadyForQuery)
/// before the FATAL error for the bad message.
fn assert_answered_then_fatal(msgs: &[Msg]) {
    let tags: Vec<u8> = msgs.iter().map(|m| m.tag).collect();
    assert_eq!(
        tags, b"CZE",
        "expected CommandComplete, ReadyForQuery, then the FATAL: {msgs:?}"
    );
    assert!(msgs[0].body.starts_with(b"INSERT 0 1"), "{msgs:?}");
}

#[test]
fn a_valid_query_before_an_unknown_message_in_the_same_write_runs() {
    let pg = PgServer::start();
    setup_table(&pg);
    let mut h = Helios::start(&pg, "");
    let mut c = raw_login(h.port);
    let mut bytes = raw::query("insert into t values (7)");
    bytes.extend(raw::msg(b'!', b"x\0"));
    c.send(&bytes);
    let msgs = read_until_closed(&mut c);
    let e = the_fatal(&msgs);
    assert_eq!(e.sqlstate().as_deref(), Some("08P01"), "{msgs:?}");
    assert_answered_then_fatal(&msgs);
    wait_no_upstream_sessions(&pg);
    assert_eq!(
        row_count(&pg, 7),
        "1",
        "the valid Query sent before the bad message did not run (client got {msgs:?})"
    );
    assert!(h.is_alive());
}

#[test]
fn a_valid_query_before_an_oversized_message_in_the_same_write_runs() {
    let pg = PgServer::start();
    setup_table(&pg);
    let mut h = Helios::start(&pg, "[server]\nmax_message_size = \"1MB\"\n");
    let mut c = raw_login(h.port);
    let mut bytes = raw::query("insert into t values (8)");
    bytes.extend(big_insert(9, 2 << 20));
    let msgs = send_and_read_until_closed(&mut c, bytes);
    let e = the_fatal(&msgs);
    assert_eq!(e.sqlstate().as_deref(), Some("08P01"), "{msgs:?}");
    assert_answered_then_fatal(&msgs);
    wait_no_upstream_sessions(&pg);
    assert_eq!(row_count(&pg, 9), "0", "the oversized statement ran");
    assert_eq!(
        row_count(&pg, 8),
        "1",
        "the valid Query sent before the oversized one did not run (client got {msgs:?})"
    );
    assert!(h.is_alive());
}

#[test]
fn a_bad_message_during_copy_in_ends_the_session_promptly_and_copies_nothing() {
    let pg = PgServer::start();
    setup_table(&pg);
    let mut h = Helios::start(&pg, "");
    let mut c = raw_login(h.port);
    c.send(&raw::query("copy t from stdin"));
    let m = c.read_msg().expect("an answer to COPY FROM STDIN");
    assert_eq!(m.tag, b'G', "expected CopyInResponse: {m:?}");
    c.send(&raw::copy_data(b"1\n2\n"));
    c.send(&raw::msg(b'!', b"x\0"));

    // Within 5s the client should have its FATAL and be disconnected.
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match c.stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let msgs = parse_msgs(&bytes);
    // Whatever happened, once the client has gone its upstream session must end.
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    let count = "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()";
    let upstream_left = loop {
        if pg.psql(count).trim() == "0" {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        closed,
        "5s after the bad message the session is still open; the client got {msgs:?}; \
         after the client left, the upstream session {}",
        if upstream_left {
            "ended"
        } else {
            "stayed (still in COPY) for 5s more"
        }
    );
    let e = the_fatal(&msgs);
    assert_eq!(e.sqlstate().as_deref(), Some("08P01"), "{msgs:?}");
    assert!(
        upstream_left,
        "the upstream session (still in COPY) outlived its client"
    );
    assert_eq!(
        pg.psql("select count(*) from t").trim(),
        "0",
        "an unfinished COPY was committed"
    );
    assert!(h.is_alive());
}
