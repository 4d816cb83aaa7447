//! `limits.query_timeout` and `limits.idle_in_transaction_timeout`.

use std::time::{Duration, Instant};

use crate::common::raw::{self, RawConn};
use crate::common::{connect, Helios, PgServer};
use crate::{db_error, within};

fn running(pg: &PgServer, pattern: &str) -> String {
    pg.psql(&format!(
        "select count(*) from pg_stat_activity where state = 'active' and query like '{pattern}'"
    ))
    .trim()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_query_timeout_is_canceled_upstream_with_57014_and_the_session_goes_on() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[limits]\nquery_timeout = \"500ms\"\n");
    let c = connect(&h.conn_str("postgres")).await;

    let started = Instant::now();
    let e = within(10, "a long query", c.simple_query("select pg_sleep(30)"))
        .await
        .expect_err("the statement must be canceled");
    let took = started.elapsed();
    assert_eq!(db_error(&e).code().code(), "57014", "{e:?}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "canceled after {took:?}"
    );
    // Canceled upstream, not just abandoned.
    assert_eq!(running(&pg, "select pg_sleep(30)"), "0");

    // The session goes on, and quick statements are not affected.
    let rows = within(10, "next query", c.simple_query("select 41 + 1"))
        .await
        .unwrap();
    assert!(rows.iter().any(
        |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("42"))
    ));
    // Extended protocol too, and inside a transaction (which then fails, as
    // with statement_timeout).
    c.batch_execute("begin").await.unwrap();
    let e = within(
        10,
        "extended",
        c.query("select pg_sleep($1::float8)", &[&30.0f64]),
    )
    .await
    .expect_err("canceled");
    assert_eq!(db_error(&e).code().code(), "57014");
    let e = c.simple_query("select 1").await.expect_err("aborted");
    assert_eq!(db_error(&e).code().code(), "25P02");
    c.batch_execute("rollback").await.unwrap();
    // Each statement has its own allowance: several short ones in a row
    // that together take longer are fine.
    for _ in 0..4 {
        c.simple_query("select pg_sleep(0.2)").await.unwrap();
    }
}

#[test]
fn the_client_is_told_which_limit_canceled_its_statement() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[limits]\nquery_timeout = \"300ms\"\n");
    let (mut c, _) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    c.send(&raw::query("select pg_sleep(20)"));
    let msgs = c.until_ready();
    let warning = msgs
        .iter()
        .find(|m| m.tag == b'N')
        .unwrap_or_else(|| panic!("no notice: {msgs:?}"));
    assert_eq!(warning.sqlstate().as_deref(), Some("57014"));
    assert!(
        warning
            .field(b'M')
            .unwrap()
            .contains("limits.query_timeout (300ms)"),
        "{warning:?}"
    );
    let error = msgs.iter().find(|m| m.tag == b'E').expect("an error");
    assert_eq!(error.sqlstate().as_deref(), Some("57014"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_idle_in_a_transaction_is_ended_with_25p03_and_its_writes_roll_back() {
    let pg = PgServer::start();
    pg.psql("create table idle_t (v int)");
    let h = Helios::start(&pg, "[limits]\nidle_in_transaction_timeout = \"400ms\"\n");

    // Busy inside a transaction is not idle: statements slower than the
    // limit, back to back, are fine.
    let busy = connect(&h.conn_str("postgres")).await;
    busy.batch_execute("begin; insert into idle_t values (1)")
        .await
        .unwrap();
    busy.simple_query("select pg_sleep(0.6)").await.unwrap();
    busy.batch_execute("commit").await.unwrap();
    // Idle outside a transaction is fine too.
    tokio::time::sleep(Duration::from_millis(700)).await;
    busy.simple_query("select 1").await.unwrap();

    let port = h.port;
    let msgs = tokio::task::spawn_blocking(move || {
        let (mut c, _) = RawConn::connect(port, &[("user", "postgres"), ("database", "postgres")]);
        c.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        c.send(&raw::query("begin; insert into idle_t values (2)"));
        let first = c.until_ready();
        assert_eq!(
            first.last().unwrap().body,
            b"T",
            "in a transaction: {first:?}"
        );
        // Say nothing: Helios ends the session.
        c.until_closed()
    })
    .await
    .unwrap();
    let fatal = msgs.iter().find(|m| m.tag == b'E').expect("an error");
    assert_eq!(fatal.sqlstate().as_deref(), Some("25P03"), "{msgs:?}");
    assert_eq!(fatal.field(b'S').as_deref(), Some("FATAL"));
    // The transaction rolled back: only the committed row is there.
    let direct = pg.connect().await;
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = direct
            .query("select v from idle_t order by v", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, i32>(0))
            .collect();
        let open = direct
            .query_one(
                "select count(*) from pg_stat_activity where state like 'idle in transaction%'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows, vec![1]);
}
