//! What happens when something goes wrong: the upstream is down or dies
//! mid-query, a client sends garbage (after startup or instead of a proper
//! startup), or a client never says anything. In every case the client gets a
//! clear PostgreSQL error, nothing it did not ask for reaches the upstream,
//! and Helios stays up for everyone else.

mod common;

use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use common::raw::{self, Msg, RawConn};
use common::{try_connect, Helios, PgServer};
use tokio_postgres::error::DbError;
use tokio_postgres::SimpleQueryMessage;

// ---------------------------------------------------------------- helpers

/// Await `f`, failing the test if it takes longer than `secs`.
async fn within<F: Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs}s"))
}

fn db_error(e: &tokio_postgres::Error) -> &DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("expected an error from the server, got: {e:?}"))
}

/// The first column of the first row of a simple query, as text.
async fn scalar(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    let msgs = within(20, sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
        _ => None,
    })?
}

/// `select 1` through Helios, on a new connection.
async fn helios_answers(h: &Helios) {
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
fn wait_for_direct(pg: &PgServer, sql: &str, want: &str, secs: u64) {
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
fn wait_no_upstream_sessions(pg: &PgServer) {
    wait_for_direct(
        pg,
        "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
        "0",
        10,
    );
}

/// The same, but idle (pooled) connections may stay.
fn wait_no_busy_upstream_sessions(pg: &PgServer) {
    wait_for_direct(
        pg,
        "select count(*) from pg_stat_activity where backend_type = 'client backend' and state <> 'idle' and pid <> pg_backend_pid()",
        "0",
        10,
    );
}

fn postgres_log(pg: &PgServer) -> String {
    std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default()
}

/// A raw connection through Helios, logged in as postgres.
fn raw_login(port: u16) -> RawConn {
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

fn raw_open(port: u16) -> RawConn {
    let c = RawConn::open(port);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    c
}

/// Split a byte stream into backend messages (a trailing partial one is kept as is).
fn parse_msgs(mut bytes: &[u8]) -> Vec<Msg> {
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
fn read_until_closed(c: &mut RawConn) -> Vec<Msg> {
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
fn the_fatal(msgs: &[Msg]) -> &Msg {
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

fn untagged(code: i32, rest: &[u8]) -> Vec<u8> {
    let mut v = ((rest.len() + 8) as i32).to_be_bytes().to_vec();
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(rest);
    v
}

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

fn read_byte(c: &mut RawConn) -> u8 {
    let mut b = [0u8; 1];
    c.stream
        .read_exact(&mut b)
        .expect("a one-byte answer to the request");
    b[0]
}

// ------------------------------------------------------- upstream failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_gives_08001_naming_it_and_helios_serves_once_it_is_back() {
    let pg = PgServer::start();
    pg.kill();
    let mut h = Helios::start(&pg, "");

    let e = within(
        20,
        "connect with the upstream down",
        try_connect(&h.conn_str("postgres")),
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("a client must not get in while the upstream is down"));
    let db = db_error(&e);
    assert_eq!(db.severity(), "FATAL", "{db:?}");
    assert_eq!(db.code().code(), "08001", "{db:?}");
    let prefix = format!("could not connect to upstream 127.0.0.1:{}: ", pg.port);
    assert!(
        db.message().starts_with(&prefix) && db.message().len() > prefix.len(),
        "message should be \"{prefix}<reason>\", got {:?}",
        db.message()
    );

    // Again (nothing cached about the failure), then the upstream comes back.
    let e = within(20, "second connect", try_connect(&h.conn_str("postgres")))
        .await
        .err()
        .unwrap_or_else(|| panic!("still down"));
    assert_eq!(db_error(&e).code().code(), "08001");
    assert!(h.is_alive(), "Helios exited after an unreachable upstream");

    pg.restart();
    helios_answers(&h).await;
    assert!(h.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_crash_mid_query_reports_an_error_and_helios_serves_after_restart() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    let client = h.connect().await;
    let idle = h.connect().await;
    assert_eq!(scalar(&idle, "select 1").await.as_deref(), Some("1"));
    let query = tokio::spawn(async move {
        let r = client.simple_query("select pg_sleep(10)").await;
        (client, r)
    });
    wait_for_direct(
        &pg,
        "select count(*) from pg_stat_activity where query = 'select pg_sleep(10)' and state = 'active'",
        "1",
        10,
    );
    let killed = Instant::now();
    pg.kill();

    let (client, r) = within(10, "the query on a crashed upstream", query)
        .await
        .unwrap();
    let e = r
        .err()
        .unwrap_or_else(|| panic!("the query cannot succeed: its server died"));
    assert!(
        killed.elapsed() < Duration::from_secs(8),
        "the error came only when pg_sleep would have ended anyway"
    );
    let db = db_error(&e);
    assert_eq!(db.severity(), "FATAL", "{db:?}");
    match db.code().code() {
        "57P01" => {}
        "08006" => {
            let prefix = format!("lost the connection to upstream 127.0.0.1:{}", pg.port);
            assert!(
                db.message().starts_with(&prefix),
                "08006 message should start {prefix:?}, got {:?}",
                db.message()
            );
        }
        other => panic!("expected 57P01 or 08006, got {other}: {db:?}"),
    }
    // The session is over.
    assert!(
        within(
            10,
            "query on a dead session",
            client.simple_query("select 1")
        )
        .await
        .is_err(),
        "the session whose upstream died must not go on"
    );
    // A client that was idle at the time finds its session gone, too.
    let r = within(
        10,
        "query on an idle session",
        idle.simple_query("select 1"),
    )
    .await;
    assert!(r.is_err(), "a session whose upstream died answered: {r:?}");
    assert!(h.is_alive(), "Helios exited when its upstream crashed");

    // While the upstream is down, new clients get a clear error ...
    let e = within(
        20,
        "connect while down",
        try_connect(&h.conn_str("postgres")),
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("upstream is down"));
    assert_eq!(db_error(&e).code().code(), "08001", "{e:?}");

    // ... and once it is back, they get in.
    pg.restart();
    helios_answers(&h).await;
    assert!(h.is_alive());
}

#[test]
fn terminated_backend_fatal_is_passed_through_and_other_clients_are_unaffected() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    let mut other = raw_login(h.port);

    let mut c = raw_login(h.port);
    c.send(&raw::query("select pg_backend_pid()"));
    let msgs = c.until_ready();
    let pid = msgs
        .iter()
        .find(|m| m.tag == b'D')
        .map(|m| String::from_utf8_lossy(&m.body[6..]).into_owned())
        .expect("a row with the backend pid");

    c.send(&raw::query("select pg_sleep(10)"));
    wait_for_direct(
        &pg,
        &format!("select state from pg_stat_activity where pid = {pid}"),
        "active",
        10,
    );
    let t0 = Instant::now();
    assert_eq!(
        pg.psql(&format!("select pg_terminate_backend({pid})"))
            .trim(),
        "t"
    );
    let msgs = read_until_closed(&mut c);
    assert!(t0.elapsed() < Duration::from_secs(8), "no prompt error");
    let e = the_fatal(&msgs);
    assert_eq!(e.sqlstate().as_deref(), Some("57P01"), "{msgs:?}");
    assert_eq!(
        e.field(b'M').as_deref(),
        Some("terminating connection due to administrator command"),
        "the upstream's own error must be passed through: {msgs:?}"
    );

    // The other session, on its own upstream connection, goes on.
    other.send(&raw::query("select 42"));
    let msgs = other.until_ready();
    assert!(
        msgs.iter()
            .any(|m| m.tag == b'D' && m.body.ends_with(b"42")),
        "{msgs:?}"
    );
    assert!(h.is_alive());

    // A new client does not get the dead connection.
    let mut n = raw_login(h.port);
    n.send(&raw::query("select 1"));
    let msgs = n.until_ready();
    assert!(msgs.iter().all(|m| m.tag != b'E'), "{msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_to_a_restarted_upstream_are_not_handed_out() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "[pool]\nmax_size = 2\n");
    // Two sessions leave two idle connections in the pool.
    let a = h.connect().await;
    let b = h.connect().await;
    scalar(&a, "select 1").await;
    scalar(&b, "select 1").await;
    drop(a);
    drop(b);
    wait_for_direct(
        &pg,
        "select count(*) from pg_stat_activity where backend_type = 'client backend' and state = 'idle' and pid <> pg_backend_pid()",
        "2",
        10,
    );

    pg.kill();
    pg.restart();

    // Each new client must get a working connection, not a dead pooled one.
    for i in 0..3 {
        let c = within(
            20,
            "connect after restart",
            try_connect(&h.conn_str("postgres")),
        )
        .await
        .unwrap_or_else(|e| panic!("client {i} after the restart: {e:?}"));
        let r = within(20, "query after restart", c.simple_query("select 1")).await;
        assert!(r.is_ok(), "client {i} got a dead pooled connection: {r:?}");
    }
    assert!(h.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_terminated_while_idle_is_not_handed_out() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"5s\"\n");
    let a = h.connect().await;
    let pid = scalar(&a, "select pg_backend_pid()").await.unwrap();
    drop(a);
    wait_for_direct(
        &pg,
        &format!("select state from pg_stat_activity where pid = {pid}"),
        "idle",
        10,
    );
    assert_eq!(
        pg.psql(&format!("select pg_terminate_backend({pid})"))
            .trim(),
        "t"
    );
    wait_for_direct(
        &pg,
        &format!("select count(*) from pg_stat_activity where pid = {pid}"),
        "0",
        10,
    );
    let b = within(20, "connect", try_connect(&h.conn_str("postgres")))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let r = within(20, "query", b.simple_query("select pg_backend_pid()")).await;
    assert!(
        r.is_ok(),
        "the next client got the terminated connection: {r:?}"
    );
    assert_ne!(scalar(&b, "select pg_backend_pid()").await.unwrap(), pid);
}

/// A TCP server on 127.0.0.1 that accepts connections and then either holds
/// them open saying nothing (`hold`) or closes them at once.
fn fake_upstream(hold: bool) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            if hold {
                held.push(s);
            }
        }
    });
    port
}

/// An upstream that accepts the connection and then hangs up at once, or
/// says nothing at all, must not keep the client waiting past
/// `connect_timeout`.
async fn check_fake_upstream(tls: &str) {
    for hold in [false, true] {
        let what = format!(
            "{} upstream, upstream.tls = {tls}",
            if hold { "silent" } else { "hanging-up" }
        );
        let port = fake_upstream(hold);
        let mut h = Helios::start_config(&format!(
            "[upstream]\nurl = \"postgres://postgres@127.0.0.1:{port}/postgres\"\nconnect_retries = 0\nconnect_timeout = \"1s\"\ntls = \"{tls}\"\n"
        ));
        let t0 = Instant::now();
        let e = within(10, &what, try_connect(&h.conn_str("postgres")))
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: a client got in"));
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{what}: the error took {:?} with connect_timeout = 1s",
            t0.elapsed()
        );
        let db = db_error(&e);
        assert_eq!(db.severity(), "FATAL", "{what}: {db:?}");
        assert!(
            matches!(db.code().code(), "08001" | "08006"),
            "{what}: {db:?}"
        );
        assert!(
            db.message().contains(&format!("127.0.0.1:{port}")),
            "{what}: the message should name the upstream: {db:?}"
        );
        assert!(h.is_alive(), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_or_hangs_up_gives_a_prompt_error_without_tls() {
    check_fake_upstream("disable").await;
}

/// With `prefer` (the default) Helios first sends SSLRequest and waits for
/// the one-byte answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_the_ssl_request_gives_a_prompt_error() {
    check_fake_upstream("prefer").await;
}

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

// ----------------------------------------------------------------- startup

#[test]
fn protocol_2_startup_is_refused_with_0a000() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    let mut c = raw_open(h.port);
    c.send(&untagged(
        2 << 16,
        b"user\0postgres\0database\0postgres\0\0",
    ));
    let msgs = read_until_closed(&mut c);
    let e = the_fatal(&msgs);
    assert_eq!(e.sqlstate().as_deref(), Some("0A000"), "{msgs:?}");
    assert!(
        e.field(b'M').unwrap_or_default().contains("2.0"),
        "the message should name the protocol asked for: {msgs:?}"
    );
    assert!(h.is_alive());
}

#[test]
fn startup_without_a_user_is_refused_with_28000() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    for params in [
        vec![("database", "postgres")],
        vec![("user", ""), ("database", "postgres")],
    ] {
        let mut c = raw_open(h.port);
        c.send(&raw::startup(&params));
        let msgs = read_until_closed(&mut c);
        let e = the_fatal(&msgs);
        assert_eq!(
            e.sqlstate().as_deref(),
            Some("28000"),
            "{params:?}: {msgs:?}"
        );
        assert_eq!(
            e.field(b'M').as_deref(),
            Some("no PostgreSQL user name specified in startup packet"),
            "{msgs:?}"
        );
    }
    assert!(h.is_alive());
}

#[test]
fn a_startup_packet_of_impossible_length_is_refused_with_08p01() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    for len in [4i32, -1, 10_001, 1 << 30] {
        let mut c = raw_open(h.port);
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend(196_608i32.to_be_bytes());
        c.send(&bytes);
        let msgs = read_until_closed(&mut c);
        let e = the_fatal(&msgs);
        assert_eq!(
            e.sqlstate().as_deref(),
            Some("08P01"),
            "length {len}: {msgs:?}"
        );
    }
    assert!(h.is_alive());
}

#[test]
fn gssenc_request_is_declined_then_a_normal_startup_works() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let mut c = raw_open(h.port);
    c.send(&untagged(GSSENC_REQUEST, b""));
    assert_eq!(read_byte(&mut c), b'N');
    c.send(&raw::startup(&[
        ("user", "postgres"),
        ("database", "postgres"),
    ]));
    let msgs = c.until_ready();
    assert_eq!(msgs.first().map(|m| m.tag), Some(b'R'), "{msgs:?}");
    assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
    c.send(&raw::query("select 1"));
    let msgs = c.until_ready();
    assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
}

#[test]
fn ssl_request_without_tls_is_declined_then_a_normal_startup_works() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let mut c = raw_open(h.port);
    c.send(&untagged(SSL_REQUEST, b""));
    assert_eq!(read_byte(&mut c), b'N');
    c.send(&raw::startup(&[
        ("user", "postgres"),
        ("database", "postgres"),
    ]));
    let msgs = c.until_ready();
    assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
    c.send(&raw::query("select 1"));
    assert!(c.until_ready().iter().any(|m| m.tag == b'D'));
}

#[test]
fn newer_protocol_minor_and_options_get_the_same_negotiate_protocol_version_as_postgres() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let packet = untagged(
        (3 << 16) | 2,
        b"user\0postgres\0database\0postgres\0_pq_.frobnicate\0on\0\0",
    );
    let first = |port: u16| {
        let mut c = raw_open(port);
        c.send(&packet);
        let msgs = c.until_ready();
        assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
        msgs.into_iter().next().unwrap()
    };
    let direct = first(pg.port);
    assert_eq!(
        direct.tag, b'v',
        "control: PostgreSQL negotiates: {direct:?}"
    );
    let via = first(h.port);
    assert_eq!(
        via, direct,
        "NegotiateProtocolVersion differs from PostgreSQL's"
    );
}

#[test]
fn a_client_that_sends_nothing_is_dropped_after_startup_timeout() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "[server]\nstartup_timeout = \"1s\"\n");
    let t0 = Instant::now();
    let mut silent = raw_open(h.port);
    let mut partial = raw_open(h.port);
    // Half a startup packet: the length, then nothing.
    partial.send(&64i32.to_be_bytes());

    for (what, c) in [("silent", &mut silent), ("partial", &mut partial)] {
        let msgs = read_until_closed(c);
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "{what} client dropped too early ({waited:?})"
        );
        assert!(
            waited < Duration::from_secs(5),
            "{what} client dropped only after {waited:?}"
        );
        assert!(
            msgs.iter().all(|m| m.tag == b'E'),
            "{what}: nothing but an error may be sent: {msgs:?}"
        );
    }
    assert!(h.is_alive());
    let mut n = raw_login(h.port);
    n.send(&raw::query("select 1"));
    assert!(n.until_ready().iter().all(|m| m.tag != b'E'));
}

#[test]
fn cancel_with_a_wrong_key_does_nothing_and_the_right_key_cancels() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    let (mut c, msgs) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let k = msgs
        .iter()
        .find(|m| m.tag == b'K')
        .unwrap_or_else(|| panic!("no BackendKeyData: {msgs:?}"));
    let pid = i32::from_be_bytes(k.body[0..4].try_into().unwrap());
    let secret = i32::from_be_bytes(k.body[4..8].try_into().unwrap());

    let send_cancel = |pid: i32, secret: i32| {
        let mut cc = raw_open(h.port);
        let mut body = pid.to_be_bytes().to_vec();
        body.extend(secret.to_be_bytes());
        cc.send(&untagged(CANCEL_REQUEST, &body));
        // Helios answers nothing and closes.
        let msgs = read_until_closed(&mut cc);
        assert!(msgs.is_empty(), "a cancel request gets no answer: {msgs:?}");
    };

    c.send(&raw::query("select pg_sleep(1.5)"));
    std::thread::sleep(Duration::from_millis(200));
    send_cancel(pid, secret ^ 0x5a5a);
    send_cancel(pid.wrapping_add(1), secret);
    send_cancel(0, 0);
    let msgs = c.until_ready();
    assert!(
        msgs.iter().all(|m| m.tag != b'E'),
        "a cancel with a wrong key interrupted the query: {msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.tag == b'C'), "{msgs:?}");

    // Control: the right key does cancel.
    c.send(&raw::query("select pg_sleep(10)"));
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    send_cancel(pid, secret);
    let msgs = c.until_ready();
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "cancel took too long"
    );
    let e = msgs
        .iter()
        .find(|m| m.tag == b'E')
        .unwrap_or_else(|| panic!("the right key did not cancel: {msgs:?}"));
    assert_eq!(e.sqlstate().as_deref(), Some("57014"), "{msgs:?}");

    // The session goes on.
    c.send(&raw::query("select 1"));
    assert!(c.until_ready().iter().all(|m| m.tag != b'E'));
    assert!(h.is_alive());
}

#[test]
fn a_cancel_key_of_a_session_that_ended_does_not_cancel_the_next_session_on_its_connection() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"5s\"\n");
    let key_and_pid = |c: &mut RawConn, msgs: &[Msg]| {
        let k = msgs.iter().find(|m| m.tag == b'K').expect("BackendKeyData");
        c.send(&raw::query("select pg_backend_pid()"));
        let rows = c.until_ready();
        let pid = rows
            .iter()
            .find(|m| m.tag == b'D')
            .map(|m| m.body[6..].to_vec())
            .expect("a pid");
        (k.body.clone(), pid)
    };
    let (mut a, msgs) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    let (a_key, a_pid) = key_and_pid(&mut a, &msgs);
    a.send(&raw::terminate());
    read_until_closed(&mut a);

    let (mut b, msgs) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    b.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (b_key, b_pid) = key_and_pid(&mut b, &msgs);
    assert_eq!(
        b_pid, a_pid,
        "B should reuse A's upstream connection (max_size = 1)"
    );
    assert_ne!(b_key, a_key, "each session gets a key of its own");

    b.send(&raw::query("select pg_sleep(1.5)"));
    std::thread::sleep(Duration::from_millis(200));
    let mut cc = raw_open(h.port);
    cc.send(&untagged(CANCEL_REQUEST, &a_key));
    read_until_closed(&mut cc);
    let msgs = b.until_ready();
    assert!(
        msgs.iter().all(|m| m.tag != b'E'),
        "the ended session's key cancelled the next session's query: {msgs:?}"
    );
}
