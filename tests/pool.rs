//! Limits and pooling: `server.max_client_conn`, `pool.max_size` with
//! `pool.acquire_timeout`, what a pooled connection may carry over from one
//! client to the next (nothing), and `pool.idle_timeout`.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::raw::{self, RawConn};
use common::{try_connect, Helios, PgServer};
use tokio_postgres::error::DbError;
use tokio_postgres::{Client, SimpleQueryMessage};

// ---------------------------------------------------------------- helpers

async fn within<F: Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs}s"))
}

fn db_error(e: &tokio_postgres::Error) -> &DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("expected an error from the server, got: {e:?}"))
}

async fn connect(conn_str: &str) -> Client {
    within(20, "connect", try_connect(conn_str))
        .await
        .unwrap_or_else(|e| panic!("connect {conn_str}: {e:?}"))
}

/// The first column of the first row of a simple query (`None` for NULL).
async fn scalar(client: &Client, sql: &str) -> Option<String> {
    let msgs = within(20, sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
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

// ------------------------------------------------------- max_client_conn

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_over_max_client_conn_gets_53300_and_a_freed_place_is_reused() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "[server]\nmax_client_conn = 2\n");
    let a = connect(&h.conn_str("postgres")).await;
    let b = connect(&h.conn_str("postgres")).await;
    assert_eq!(scalar(&a, "select 1").await.as_deref(), Some("1"));

    let e = within(20, "third client", try_connect(&h.conn_str("postgres")))
        .await
        .err()
        .unwrap_or_else(|| panic!("a third client must be refused with max_client_conn = 2"));
    let db = db_error(&e);
    assert_eq!(db.severity(), "FATAL", "{db:?}");
    assert_eq!(db.code().code(), "53300", "{db:?}");
    assert_eq!(db.message(), "sorry, too many clients already");
    // Refused clients do not take a place either.
    let e = within(20, "fourth client", try_connect(&h.conn_str("postgres")))
        .await
        .err()
        .unwrap_or_else(|| panic!("still full"));
    assert_eq!(db_error(&e).code().code(), "53300");

    // The two inside are unaffected.
    assert_eq!(scalar(&b, "select 2").await.as_deref(), Some("2"));

    // One leaves; a new client gets in (once Helios has seen it go).
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    let c = loop {
        match within(
            20,
            "client after one left",
            try_connect(&h.conn_str("postgres")),
        )
        .await
        {
            Ok(c) => break c,
            Err(e) => {
                assert_eq!(db_error(&e).code().code(), "53300", "{e:?}");
                assert!(
                    Instant::now() < deadline,
                    "a place freed by a leaving client was not given to a new one"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(scalar(&c, "select 3").await.as_deref(), Some("3"));
    // And it is full again.
    let e = within(
        20,
        "over the limit again",
        try_connect(&h.conn_str("postgres")),
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("full again"));
    assert_eq!(db_error(&e).code().code(), "53300");
    assert!(h.is_alive());
}

// ------------------------------------------------- max_size / acquire_timeout

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_on_a_full_pool_gets_53300_after_acquire_timeout() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"1s\"\n");
    let a = connect(&h.conn_str("postgres")).await;
    assert_eq!(scalar(&a, "select 1").await.as_deref(), Some("1"));

    let t0 = Instant::now();
    let e = within(10, "second client", try_connect(&h.conn_str("postgres")))
        .await
        .err()
        .unwrap_or_else(|| panic!("the pool holds one connection and it is in use"));
    let waited = t0.elapsed();
    let db = db_error(&e);
    assert_eq!(db.severity(), "FATAL", "{db:?}");
    assert_eq!(db.code().code(), "53300", "{db:?}");
    assert!(
        waited >= Duration::from_millis(900),
        "gave up after {waited:?}, before acquire_timeout (1s)"
    );
    assert!(
        waited < Duration::from_secs(4),
        "waited {waited:?} with acquire_timeout = 1s"
    );
    // Only one upstream connection was ever opened.
    assert_eq!(
        pg.psql("select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()")
            .trim(),
        "1"
    );
    // The first client is unaffected.
    assert_eq!(scalar(&a, "select 2").await.as_deref(), Some("2"));

    // Another database or user has a pool of its own.
    pg.psql("create role other login");
    let o = connect(&h.conn_str("other")).await;
    assert_eq!(
        scalar(&o, "select current_user").await.as_deref(),
        Some("other")
    );
    assert!(h.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_client_gets_the_connection_when_its_holder_leaves() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"3s\"\n");
    let a = connect(&h.conn_str("postgres")).await;
    let a_pid = scalar(&a, "select pg_backend_pid()").await;

    let conn_str = h.conn_str("postgres");
    let b = tokio::spawn(async move { try_connect(&conn_str).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !b.is_finished(),
        "the second client did not wait for the pool"
    );

    let t0 = Instant::now();
    drop(a);
    let b = within(10, "waiting client", b)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the waiting client did not get the freed connection: {e:?}"));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the waiting client got in only after {:?}",
        t0.elapsed()
    );
    assert_eq!(
        scalar(&b, "select pg_backend_pid()").await,
        a_pid,
        "the pooled connection should have been reused"
    );
}

// ------------------------------------------------------------ reuse hygiene

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_left_in_a_transaction_is_not_reused() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"5s\"\n");

    // A leaves (Terminate) in the middle of a transaction that wrote a row.
    let a = connect(&h.conn_str("postgres")).await;
    within(
        20,
        "A's transaction",
        a.batch_execute("begin; insert into t values (1)"),
    )
    .await
    .unwrap();
    let a_pid = scalar(&a, "select pg_backend_pid()").await.unwrap();
    assert!(scalar(&a, "select txid_current_if_assigned()")
        .await
        .is_some());
    drop(a);

    let b = connect(&h.conn_str("postgres")).await;
    assert_eq!(
        scalar(&b, "select txid_current_if_assigned()::text").await,
        None,
        "the next client was handed a connection inside the previous client's transaction"
    );
    // B does not see the row A wrote and never committed.
    assert_eq!(
        scalar(&b, "select count(*) from t").await.as_deref(),
        Some("0"),
        "the previous client's uncommitted row is visible"
    );
    let b_pid = scalar(&b, "select pg_backend_pid()").await.unwrap();
    assert_ne!(
        b_pid, a_pid,
        "the connection left in a transaction was reused"
    );
    wait_for_direct(
        &pg,
        &format!("select count(*) from pg_stat_activity where pid = {a_pid}"),
        "0",
        10,
    );
    assert_eq!(
        pg.psql("select count(*) from t").trim(),
        "0",
        "nothing was committed"
    );
    drop(b);

    // The same when the client just vanishes (no Terminate) mid-transaction,
    // and when its transaction failed.
    for (what, sql) in [
        ("open", "begin; insert into t values (2);"),
        ("failed", "begin; insert into t values (3); select 1/0;"),
    ] {
        let port = h.port;
        tokio::task::spawn_blocking(move || {
            let (mut c, _) =
                RawConn::connect(port, &[("user", "postgres"), ("database", "postgres")]);
            c.send(&raw::query(sql));
            let msgs = c.until_ready();
            assert!(
                matches!(msgs.last(), Some(m) if m.tag == b'Z' && (m.body == b"T" || m.body == b"E")),
                "{msgs:?}"
            );
            // Dropped: the socket closes without a Terminate.
        })
        .await
        .unwrap();
        let next = connect(&h.conn_str("postgres")).await;
        assert_eq!(
            scalar(&next, "select txid_current_if_assigned()::text").await,
            None,
            "{what} transaction: the next client got the abandoned transaction"
        );
        assert_eq!(
            scalar(&next, "select count(*) from t").await.as_deref(),
            Some("0"),
            "{what} transaction: uncommitted rows leaked"
        );
    }
    assert_eq!(pg.psql("select count(*) from t").trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_connection_carries_no_session_state_over() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"5s\"\n");
    let a = connect(&h.conn_str("postgres")).await;
    let default_work_mem = scalar(&a, "show work_mem").await;
    within(
        20,
        "A's session state",
        a.batch_execute(
            "set work_mem = '7MB'; prepare p as select 1; create temp table tt (x int); \
             listen chan; select set_config('my.var', 'x', false)",
        ),
    )
    .await
    .unwrap();
    let a_pid = scalar(&a, "select pg_backend_pid()").await;
    drop(a);

    let b = connect(&h.conn_str("postgres")).await;
    assert_eq!(
        scalar(&b, "select pg_backend_pid()").await,
        a_pid,
        "an idle connection should be reused (session pooling)"
    );
    assert_eq!(scalar(&b, "show work_mem").await, default_work_mem);
    assert_eq!(
        scalar(&b, "select current_setting('my.var', true)")
            .await
            .unwrap_or_default(),
        "",
        "a custom setting leaked"
    );
    let e = within(20, "execute p", b.simple_query("execute p"))
        .await
        .err()
        .unwrap_or_else(|| panic!("the previous client's prepared statement leaked"));
    assert_eq!(db_error(&e).code().code(), "26000", "{e:?}");
    let e = within(20, "temp table", b.simple_query("select * from tt"))
        .await
        .err()
        .unwrap_or_else(|| panic!("the previous client's temp table leaked"));
    assert_eq!(db_error(&e).code().code(), "42P01", "{e:?}");
    assert_eq!(
        scalar(&b, "select count(*) from pg_listening_channels()")
            .await
            .as_deref(),
        Some("0"),
        "the previous client's LISTEN leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_idle_timeout() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[pool]\nidle_timeout = \"2s\"\n");
    let count = "select count(*) from pg_stat_activity where application_name = 'helios_idle_test'";
    let conn_str = format!(
        "{} application_name=helios_idle_test",
        h.conn_str("postgres")
    );
    let a = connect(&conn_str).await;
    let b = connect(&conn_str).await;
    scalar(&a, "select 1").await;
    scalar(&b, "select 1").await;
    drop(a);
    drop(b);
    let left = Instant::now();
    // Pooled, not closed, right after the clients left ...
    wait_for_direct(&pg, &format!("{count} and state = 'idle'"), "2", 1);
    // ... and closed once idle for idle_timeout.
    wait_for_direct(&pg, count, "0", 8);
    let after = left.elapsed();
    assert!(
        after >= Duration::from_millis(1500),
        "idle connections were closed after {after:?}, before idle_timeout (2s)"
    );

    // A client afterwards gets a fresh connection that works.
    let c = connect(&conn_str).await;
    assert_eq!(scalar(&c, "select 1").await.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_only_reused_for_the_same_startup_parameters_and_roles_are_reset() {
    let pg = PgServer::start();
    pg.psql("create role other login");
    let h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"5s\"\n");
    let base = h.conn_str("postgres");

    // A asked for work_mem = 7MB at startup; B did not.
    let a = connect(&format!("{base} options='-c work_mem=7MB'")).await;
    assert_eq!(scalar(&a, "show work_mem").await.as_deref(), Some("7MB"));
    drop(a);
    let b = connect(&base).await;
    assert_eq!(
        scalar(&b, "show work_mem").await.as_deref(),
        Some("4MB"),
        "B was handed a connection opened with another client's startup options"
    );

    // B becomes someone else for the rest of its session, then leaves.
    within(
        20,
        "set role",
        b.batch_execute("set session authorization other; set role other"),
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(&b, "select current_user").await.as_deref(),
        Some("other")
    );
    let b_pid = scalar(&b, "select pg_backend_pid()").await;
    drop(b);
    let c = connect(&base).await;
    assert_eq!(scalar(&c, "select pg_backend_pid()").await, b_pid);
    assert_eq!(
        scalar(&c, "select current_user").await.as_deref(),
        Some("postgres"),
        "the previous client's role carried over"
    );
    assert_eq!(
        scalar(&c, "select session_user").await.as_deref(),
        Some("postgres"),
        "the previous client's session authorization carried over"
    );
}

/// Parse/Bind/Execute of an INSERT with no Sync: PostgreSQL keeps it in an
/// implicit transaction that only a Sync would commit. A client that leaves
/// there did not commit it.
fn leave_mid_pipeline(port: u16, x: i32) {
    let (mut c, _) = RawConn::connect(port, &[("user", "postgres"), ("database", "postgres")]);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut bytes = raw::parse("", &format!("insert into t values ({x})"), &[]);
    bytes.extend(raw::bind("", "", &[], &[], &[]));
    bytes.extend(raw::execute("", 0));
    bytes.extend(raw::flush());
    c.send(&bytes);
    let mut tags = Vec::new();
    while tags.last() != Some(&b'C') {
        let m = c.read_msg().expect("an answer to Parse/Bind/Execute");
        assert_ne!(m.tag, b'E', "{m:?}");
        tags.push(m.tag);
    }
    assert_eq!(tags, b"12C");
    c.send(&raw::terminate());
}

/// The first column of each row a raw simple query returns (`None`: NULL).
fn raw_column(c: &mut RawConn, sql: &str) -> Vec<Option<String>> {
    c.send(&raw::query(sql));
    let msgs = c.until_ready();
    assert!(msgs.iter().all(|m| m.tag != b'E'), "{sql}: {msgs:?}");
    msgs.iter()
        .filter(|m| m.tag == b'D')
        .map(|m| {
            let len = i32::from_be_bytes(m.body[2..6].try_into().unwrap());
            (len >= 0).then(|| String::from_utf8_lossy(&m.body[6..6 + len as usize]).into_owned())
        })
        .collect()
}

fn check_mid_pipeline(reset_query: &str) {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let h = Helios::start(
        &pg,
        &format!(
            "[pool]\nmax_size = 1\nacquire_timeout = \"5s\"\nreset_query = \"{reset_query}\"\n"
        ),
    );
    leave_mid_pipeline(h.port, 1);
    // The next client, with the very same startup parameters.
    let (mut b, _) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    b.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        raw_column(&mut b, "select count(*) from t"),
        [Some("0".to_string())],
        "reset_query = {reset_query:?}: the next client sees the previous client's unsynced INSERT"
    );
    assert_eq!(
        raw_column(&mut b, "select txid_current_if_assigned()"),
        [None],
        "reset_query = {reset_query:?}: the next client is inside the previous client's transaction"
    );
    b.send(&raw::terminate());
    drop(b);
    wait_for_direct(
        &pg,
        "select count(*) from pg_stat_activity where backend_type = 'client backend' and state <> 'idle' and pid <> pg_backend_pid()",
        "0",
        10,
    );
    assert_eq!(
        pg.psql("select count(*) from t").trim(),
        "0",
        "reset_query = {reset_query:?}: an INSERT the client never synced was committed"
    );
}

#[test]
fn a_connection_left_mid_pipeline_without_sync_commits_nothing() {
    check_mid_pipeline("DISCARD ALL");
}

#[test]
fn a_connection_left_mid_pipeline_without_sync_commits_nothing_with_no_reset_query() {
    check_mid_pipeline("");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_client_gets_in_when_the_holder_vanishes_mid_transaction() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"3s\"\n");
    let port = h.port;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let (mut c, _) = RawConn::connect(port, &[("user", "postgres"), ("database", "postgres")]);
        c.send(&raw::query("begin; select 1;"));
        c.until_ready();
        rx.recv().unwrap();
        // Dropped: the socket closes, no Terminate, inside a transaction.
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let conn_str = h.conn_str("postgres");
    let b = tokio::spawn(async move { try_connect(&conn_str).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !b.is_finished(),
        "the second client did not wait for the pool"
    );
    let t0 = Instant::now();
    tx.send(()).unwrap();
    holder.join().unwrap();
    let b = within(10, "waiting client", b)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the waiting client did not get in: {e:?}"));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(
        scalar(&b, "select txid_current_if_assigned()::text").await,
        None
    );
}

#[test]
fn a_connection_left_mid_pipeline_without_sync_commits_nothing_with_reset_all() {
    check_mid_pipeline("RESET ALL");
}
