//! SIGTERM/SIGINT: Helios stops accepting clients, ends idle sessions at
//! once with FATAL 57P01, lets a transaction under way finish (up to
//! `server.shutdown_timeout`), then exits with status 0.

use std::time::{Duration, Instant};

use crate::common;
use crate::support::{signal, start, try_http, value, wait_exit, Session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_transaction_finish_and_ends_idle_sessions() {
    let (pg, mut h) = start("");
    pg.psql("CREATE TABLE t (id int)");
    let a = Session::open(&h.conn_str("postgres")).await;
    let b = Session::open(&h.conn_str("postgres")).await;
    a.client
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    assert_eq!(value(&b.client, "SELECT 1").await, "1");

    signal(h.child.id(), "TERM");

    // The idle session is ended at once, as PostgreSQL's fast shutdown does.
    let code = b.wait_ended("the idle session to be ended").await;
    assert_eq!(
        code.as_deref(),
        Some("57P01"),
        "idle session ended with {code:?}"
    );
    assert!(b.client.simple_query("SELECT 1").await.is_err());
    // No new clients.
    assert!(
        common::try_connect(&h.conn_str("postgres")).await.is_err(),
        "a new connection was accepted while shutting down"
    );

    // The transaction under way finishes, and its row is there.
    assert!(
        a.ended().is_none(),
        "the session in a transaction was ended"
    );
    a.client
        .batch_execute("COMMIT")
        .await
        .expect("COMMIT while draining");
    assert_eq!(pg.psql("SELECT count(*) FROM t WHERE id = 1").trim(), "1");
    // Then that session ends too.
    let code = a.wait_ended("the session to end after its COMMIT").await;
    assert_eq!(code.as_deref(), Some("57P01"), "ended with {code:?}");
    assert!(a.client.simple_query("SELECT 1").await.is_err());

    let status = wait_exit(&mut h).await;
    assert!(status.success(), "exit status {status}:\n{}", h.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_while_draining() {
    let (_pg, mut h) = start("");
    let a = Session::open(&h.conn_str("postgres")).await;
    let b = Session::open(&h.conn_str("postgres")).await;
    a.client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(value(&b.client, "SELECT 1").await, "1");

    signal(h.child.id(), "TERM");
    b.wait_ended("the idle session to be ended").await;
    // Still draining (a's transaction is open): not ready — and it stays
    // answerable for as long as the drain lasts (probes keep coming).
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let r = try_http(h.admin_port, "GET", "/health/readiness", None)
            .await
            .unwrap_or_else(|e| {
                panic!("/health/readiness while draining: no answer ({e}); expected 503")
            });
        assert_eq!(r.status, 503, "{}", r.body);
        let j = r.json();
        assert_eq!(j["status"], "not ready", "{j}");
        assert_eq!(j["checks"]["lifecycle"]["state"], "draining", "{j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.ended().is_none(), "the transaction's session ended early");

    a.client.batch_execute("COMMIT").await.expect("COMMIT");
    let status = wait_exit(&mut h).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_ends_a_transaction_left_open() {
    let (pg, mut h) = start("[server]\nshutdown_timeout = \"1s\"\n");
    pg.psql("CREATE TABLE t (id int)");
    let a = Session::open(&h.conn_str("postgres")).await;
    a.client
        .batch_execute("BEGIN; INSERT INTO t VALUES (2)")
        .await
        .unwrap();

    let sent = Instant::now();
    signal(h.child.id(), "TERM");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(a.ended().is_none(), "ended before shutdown_timeout");
    let code = a
        .wait_ended("the open transaction to be ended at shutdown_timeout")
        .await;
    assert_eq!(code.as_deref(), Some("57P01"), "ended with {code:?}");
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "ended after {took:?}, shutdown_timeout is 1s"
    );
    let status = wait_exit(&mut h).await;
    assert!(status.success(), "exit status {status}:\n{}", h.log());
    // Its transaction never committed.
    assert_eq!(pg.psql("SELECT count(*) FROM t").trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_ends_idle_sessions_and_exits_zero() {
    let (_pg, mut h) = start("");
    let a = Session::open(&h.conn_str("postgres")).await;
    assert_eq!(value(&a.client, "SELECT 1").await, "1");
    signal(h.child.id(), "INT");
    let code = a.wait_ended("the idle session to be ended").await;
    assert_eq!(code.as_deref(), Some("57P01"), "ended with {code:?}");
    let status = wait_exit(&mut h).await;
    assert!(status.success(), "exit status {status}:\n{}", h.log());
}
