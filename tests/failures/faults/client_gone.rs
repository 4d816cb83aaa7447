//! Clients that vanish mid-result, mid-transaction, mid-COPY or mid-pipeline.

use super::*;

/// A second client logs in through Helios (whose pool holds one connection)
/// and runs a statement; how long that took.
fn next_client_gets_in(h: &Helios) -> Duration {
    let t = Instant::now();
    let (mut c, msgs) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    assert_eq!(
        msgs.last().map(|m| m.tag),
        Some(b'Z'),
        "the next client did not get the upstream connection: {msgs:?}"
    );
    c.send(&raw::query("select 42"));
    let msgs = c.until_ready();
    assert!(
        msgs.iter()
            .any(|m| m.tag == b'D' && m.body.ends_with(b"42")),
        "{msgs:?}"
    );
    t.elapsed()
}

/// With one upstream connection, a client reads the start of a huge result
/// and hangs up: the connection is freed at once (the query does not run
/// on), and the next client gets it.
#[test]
fn a_client_gone_mid_result_frees_the_only_upstream_connection_at_once() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"8s\"\n");
    let mut a = raw_login(h.port);
    a.send(&raw::query(BIG));
    read_rows(&mut a, 100);
    wait_for_direct(&pg, BIG_RUNNING, "1", 10);
    drop(a);
    let waited = next_client_gets_in(&h);
    eprintln!(
        "client gone mid-result: next client in after {} ms",
        waited.as_millis()
    );
    assert!(
        waited < Duration::from_secs(3),
        "the next client waited {waited:?} for the only upstream connection"
    );
    wait_for_direct(&pg, BIG_RUNNING, "0", 3);
    assert!(h.is_alive());
}

/// Clients that vanish in the middle of a transaction — idle in it, or
/// reading a large result in it over the extended protocol — leave no
/// uncommitted write behind, and the next client (one upstream connection)
/// gets a fresh session, outside any transaction, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_transaction_leaves_no_uncommitted_write() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"8s\"\n");
    for (x, mid_result) in [(1, false), (2, true)] {
        let what = if mid_result {
            "reading a result in a transaction"
        } else {
            "idle in a transaction"
        };
        let (a, conn) = within(
            10,
            "connect",
            tokio_postgres::connect(&h.conn_str("postgres"), NoTls),
        )
        .await
        .unwrap();
        let conn = tokio::spawn(conn);
        within(
            10,
            "begin; insert",
            a.batch_execute(&format!("BEGIN; INSERT INTO t VALUES ({x})")),
        )
        .await
        .unwrap();
        let mut rows = None;
        if mid_result {
            let stream = within(10, "query_raw", a.query_raw(BIG, std::iter::empty::<i32>()))
                .await
                .unwrap();
            let mut stream = Box::pin(stream);
            for _ in 0..100 {
                within(10, "a row", stream.next())
                    .await
                    .expect("rows")
                    .unwrap();
            }
            rows = Some(stream);
            wait_for_direct(&pg, BIG_RUNNING, "1", 10);
        }
        // The client vanishes: its socket closes, no Terminate.
        conn.abort();
        let _ = conn.await;
        drop(rows);
        drop(a);

        let t = Instant::now();
        let b = within(10, what, try_connect(&h.conn_str("postgres")))
            .await
            .unwrap_or_else(|e| panic!("{what}: the next client did not get in: {e:?}"));
        assert_eq!(
            scalar(&b, "select count(*) from t").await.as_deref(),
            Some("0"),
            "{what}: the next client sees the vanished client's uncommitted row"
        );
        let waited = t.elapsed();
        eprintln!(
            "client gone {what}: next client in after {} ms",
            waited.as_millis()
        );
        assert!(waited < Duration::from_secs(3), "{what}: waited {waited:?}");
        // Its own write commits on its own (it is not inside the old transaction).
        within(10, "insert", b.execute("INSERT INTO t VALUES (-1)", &[]))
            .await
            .unwrap();
        assert_eq!(
            pg.psql("select array_agg(x) from t").trim(),
            "{-1}",
            "{what}"
        );
        wait_for_direct(&pg, BIG_RUNNING, "0", 3);
        pg.psql("delete from t");
    }
    assert!(h.is_alive());
}

/// Read messages up to and including the first with tag `want`, failing
/// on an error.
fn read_until_tag(c: &mut RawConn, want: u8) {
    loop {
        let m = c
            .read_msg()
            .unwrap_or_else(|| panic!("closed before {:?}", want as char));
        assert_ne!(m.tag, b'E', "{m:?}");
        if m.tag == want {
            return;
        }
    }
}

/// A way for a client to leave, by name.
type LeavingClient = (&'static str, fn(&PgServer, &mut RawConn));

/// Clients that leave with a write under way that only they could have
/// completed — vanishing in a COPY (half-way through a CopyData message),
/// after an extended-protocol INSERT with no Sync yet (an open implicit
/// transaction), or with half a Sync sent; saying Terminate inside a
/// transaction — leave nothing committed, and the next client (one
/// upstream connection) starts afresh.
#[test]
fn a_client_gone_mid_copy_or_mid_pipeline_commits_nothing() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"8s\"\n");
    let cases: [LeavingClient; 4] = [
        ("half-way through a COPY", |pg, a| {
            a.send(&raw::query("COPY t (x) FROM STDIN"));
            read_until_tag(a, b'G');
            for _ in 0..100 {
                a.send(&raw::copy_data(b"1\n2\n3\n"));
            }
            wait_for_direct(
                pg,
                "select coalesce(max(tuples_processed), 0) from pg_stat_progress_copy",
                "300",
                10,
            );
            // A CopyData message announcing 1000 bytes, with 10 of them.
            let mut partial = raw::copy_data(&[b'4'; 1000]);
            partial.truncate(15);
            a.send(&partial);
        }),
        ("after an INSERT with no Sync", |_, a| {
            a.send(&raw::parse("", "INSERT INTO t VALUES (7)", &[]));
            a.send(&raw::bind("", "", &[], &[], &[]));
            a.send(&raw::execute("", 0));
            a.send(&raw::flush());
            read_until_tag(a, b'C');
        }),
        ("after an INSERT and half a Sync", |_, a| {
            a.send(&raw::parse("", "INSERT INTO t VALUES (8)", &[]));
            a.send(&raw::bind("", "", &[], &[], &[]));
            a.send(&raw::execute("", 0));
            a.send(&raw::flush());
            read_until_tag(a, b'C');
            a.send(&raw::sync()[..3]);
        }),
        ("with Terminate inside a transaction", |_, a| {
            a.send(&raw::query("BEGIN; INSERT INTO t VALUES (9)"));
            a.until_ready();
            a.send(&raw::terminate());
        }),
    ];
    for (what, act) in cases {
        let mut a = raw_login(h.port);
        act(&pg, &mut a);
        // The write is under way, not visible.
        assert_eq!(pg.psql("select count(*) from t").trim(), "0", "{what}");
        drop(a);

        let (mut b, msgs) =
            RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
        assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{what}: {msgs:?}");
        b.send(&raw::query("select count(*) from t"));
        let msgs = b.until_ready();
        assert!(
            msgs.iter().any(|m| m.tag == b'D' && m.body.ends_with(b"0")),
            "{what}: the next client sees the vanished client's write: {msgs:?}"
        );
        assert_eq!(
            msgs.last().map(|m| m.body.as_slice()),
            Some(&b"I"[..]),
            "{what}: the next client is inside a transaction: {msgs:?}"
        );
        b.send(&raw::query("INSERT INTO t VALUES (-1)"));
        let msgs = b.until_ready();
        assert!(msgs.iter().all(|m| m.tag != b'E'), "{what}: {msgs:?}");
        drop(b);
        wait_no_busy_upstream_sessions(&pg);
        assert_eq!(
            pg.psql("select coalesce(array_agg(x), '{}') from t").trim(),
            "{-1}",
            "{what}: only the next client's write is in the table"
        );
        pg.psql("delete from t");
    }
    assert!(h.is_alive());
}

// ------------------------------------------------ upstream dies mid-result
