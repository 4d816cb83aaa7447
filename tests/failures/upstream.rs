//! Upstream failures: unreachable, crashed, terminated or silent upstreams and stale pooled connections.

use std::time::{Duration, Instant};

use crate::common::raw;
use crate::common::{try_connect, Helios, PgServer};
use crate::support::{
    db_error, helios_answers, raw_login, read_until_closed, scalar, the_fatal, wait_for_direct,
    within,
};

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
