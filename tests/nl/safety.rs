//! Nothing the model writes can change data, lock rows, sleep, read files
//! or reach outside the database; NL never runs inside a client's transaction.

use super::support::{error, rows, text_rows, within, Shop, SHOP};
use crate::common::llm::FakeLlm;
use crate::common::{Helios, PgServer};

/// The shop with statement logging on, one attempt per question (so each
/// scripted answer is judged alone).
fn logged_shop() -> (PgServer, FakeLlm, Helios) {
    let pg = PgServer::start_with(&["log_statement=all"]);
    pg.psql(SHOP);
    // A user function PostgreSQL knows is volatile: it writes.
    pg.psql(
        "create table audit (at timestamptz); \
         create function touch_audit() returns int language sql volatile as 'insert into audit values (now()) returning 1';",
    );
    let llm = FakeLlm::start_blocking();
    let helios = Helios::start(
        &pg,
        &format!(
            "[nl]\nmax_attempts = 1\n[[nl.providers]]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"m\"\nmax_retries = 0\n",
            llm.base_url()
        ),
    );
    (pg, llm, helios)
}

fn postgres_log(pg: &PgServer) -> String {
    std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default()
}

#[tokio::test]
async fn destructive_and_dangerous_sql_from_the_model_is_refused_and_never_reaches_postgres() {
    let (pg, llm, helios) = logged_shop();
    let before = pg.psql("select id, customer_id, quantity from orders order by id");
    let c = helios.connect().await;
    let cases = [
        ("DELETE FROM orders WHERE quantity > 1", "DELETE"),
        ("UPDATE orders SET quantity = 0", "UPDATE"),
        ("DROP TABLE orders", "DDL"),
        ("TRUNCATE orders", "DDL"),
        ("INSERT INTO customers VALUES (9, 'Eve', 'Rome')", "INSERT"),
        ("SELECT * FROM orders FOR UPDATE", "FOR UPDATE"),
        (
            "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone",
            "WITH",
        ),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
        ("SELECT pg_sleep(30)", "pg_sleep"),
        (
            "SELECT count(*) FROM orders; DELETE FROM orders",
            "statements",
        ),
        ("SELECT * INTO orders_copy FROM orders", "INTO"),
        (
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "set_config",
        ),
    ];
    for (sql, reason) in cases {
        llm.reply_text(format!("```sql\n{sql}\n```"));
        let e = error(&c, "SELECT * FROM nl('clean up the orders')").await;
        assert_eq!(e.code().code(), "42501", "{sql}: {e:?}");
        assert!(e.message().contains("refused"), "{sql}: {}", e.message());
        assert!(
            e.message().contains(reason),
            "{sql}: the error should name the reason ({reason}): {}",
            e.message()
        );
        // The connection is still usable, outside any transaction.
        assert_eq!(rows(&c, "select 1").await, text_rows(&[&["1"]]));
    }
    assert_eq!(llm.calls(), cases.len());
    assert_eq!(
        pg.psql("select id, customer_id, quantity from orders order by id"),
        before
    );
    assert_eq!(pg.psql("select count(*) from customers").trim(), "3");
    assert_eq!(
        pg.psql("select count(*) from pg_tables where tablename = 'orders_copy'")
            .trim(),
        "0"
    );
    let log = postgres_log(&pg);
    for (sql, _) in cases {
        assert!(!log.contains(sql), "PostgreSQL saw {sql:?}:\n{log}");
    }
}

#[tokio::test]
async fn a_refused_answer_goes_back_to_the_model_which_may_correct_it() {
    let shop = Shop::start("");
    shop.llm.reply_text("DELETE FROM orders");
    shop.llm.reply_text("SELECT count(*) FROM orders");
    let c = shop.client().await;
    let got = rows(&c, "SELECT * FROM nl_sql('how many orders')").await;
    assert_eq!(got[0][0].as_deref(), Some("SELECT count(*) FROM orders"));
    assert_eq!(got[0][3].as_deref(), Some("2"), "attempts");
    let second = &shop.llm.completion_requests()[1];
    let last = second.last_user().unwrap();
    assert!(
        last.contains("DELETE"),
        "the correction names the refused SQL: {last}"
    );
    assert_eq!(shop.pg.psql("select count(*) from orders").trim(), "3");
}

#[tokio::test]
async fn nl_inside_a_transaction_block_is_refused_with_25001() {
    let shop = Shop::start("");
    let c = shop.client().await;
    c.batch_execute("BEGIN").await.unwrap();
    let e = error(&c, "SELECT * FROM nl('how many orders')").await;
    assert_eq!(e.code().code(), "25001", "{e:?}");
    // The client's transaction is intact: still open, not aborted.
    assert_eq!(
        rows(&c, "select count(*) from orders").await,
        text_rows(&[&["3"]])
    );
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(shop.llm.calls(), 0, "the model was not asked");

    // The extended protocol too.
    c.batch_execute("BEGIN").await.unwrap();
    let e = c
        .query_typed(
            "SELECT * FROM nl($1)",
            &[(&"how many orders", tokio_postgres::types::Type::TEXT)],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("25001"), "{e:?}");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(shop.llm.calls(), 0);
}

#[tokio::test]
async fn the_generated_statement_runs_read_only_with_a_statement_timeout() {
    let shop = Shop::start("statement_timeout = \"300ms\"");
    // A statement that passes every check but runs too long: the upstream's
    // statement_timeout (57014) ends it, and the session is idle afterwards.
    shop.llm.reply_text(
        "SELECT count(*) FROM generate_series(1, 100000000) AS g CROSS JOIN generate_series(1, 100) AS h",
    );
    let c = shop.client().await;
    let e = error(&c, "SELECT * FROM nl('count a lot of numbers')").await;
    assert_eq!(e.code().code(), "57014", "{e:?}");
    assert_eq!(
        rows(&c, "show transaction_read_only").await,
        text_rows(&[&["off"]])
    );
    assert_eq!(
        rows(&c, "select count(*) from orders").await,
        text_rows(&[&["3"]])
    );
}

#[tokio::test]
async fn an_upstream_dying_mid_statement_ends_that_session_with_an_error_and_helios_stays_up() {
    let shop = Shop::start("");
    shop.llm
        .reply_text("SELECT count(*) FROM generate_series(1, 2000000000) AS g");
    let c = shop.client().await;
    let asking = tokio::spawn(async move {
        c.simple_query("SELECT * FROM nl('count to two billion')")
            .await
            .map(|_| ())
    });
    // Wait until the generated statement runs, then kill its backend.
    let direct = shop.pg.connect().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n: i64 = direct
            .query_one(
                "select count(*) from pg_stat_activity where query like 'SELECT count(*) FROM generate_series(1, 2000000000)%' and state = 'active'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the statement never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    direct
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where query like 'SELECT count(*) FROM generate_series(1, 2000000000)%'",
            &[],
        )
        .await
        .unwrap();
    let e = within(20, "the asking client", asking)
        .await
        .unwrap()
        .unwrap_err();
    let code = e.code().map(|c| c.code().to_string());
    assert!(
        matches!(code.as_deref(), Some("57P01") | Some("08006")),
        "the client hears why: {e:?}"
    );
    // Everyone else goes on.
    let other = shop.client().await;
    assert_eq!(
        rows(&other, "select count(*) from orders").await,
        text_rows(&[&["3"]])
    );
}

#[tokio::test]
async fn an_upstream_dying_while_the_model_thinks_ends_the_translation_without_more_calls() {
    let shop = Shop::start("");
    shop.llm
        .reply_delay(std::time::Duration::from_millis(1500), COUNT_SQL)
        .reply_text(COUNT_SQL);
    let c = shop.client().await;
    let asking = tokio::spawn(async move {
        c.simple_query("SELECT * FROM nl('how many orders')")
            .await
            .map(|_| ())
    });
    // While the model "thinks", the session's backend is terminated.
    let direct = shop.pg.connect().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while shop.llm.calls() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the model was never asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    direct
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let e = within(20, "the asking client", asking)
        .await
        .unwrap()
        .unwrap_err();
    let code = e.code().map(|c| c.code().to_string());
    assert!(
        matches!(code.as_deref(), Some("57P01") | Some("08006")),
        "the client hears why: {e:?}"
    );
    assert_eq!(
        shop.llm.calls(),
        1,
        "no correction is asked for a dead connection"
    );
    let other = shop.client().await;
    assert_eq!(
        rows(&other, "select count(*) from orders").await,
        text_rows(&[&["3"]])
    );
}

const COUNT_SQL: &str = "SELECT count(*) FROM orders";

#[tokio::test]
async fn string_literals_mean_the_same_to_helios_and_postgres_whatever_the_session_set() {
    let shop = Shop::start("");
    let c = shop.client().await;
    // With standard_conforming_strings off, PostgreSQL would read this as
    // one string and then a DELETE; Helios's parser sees two strings. The
    // generated statement runs with the setting on, so both agree.
    c.batch_execute("SET standard_conforming_strings = off")
        .await
        .unwrap();
    shop.llm
        .reply_text(r"SELECT 'x\' , '; DELETE FROM orders; --' AS b FROM customers LIMIT 1");
    let got = rows(&c, "SELECT * FROM nl('a riddle')").await;
    assert_eq!(
        got,
        vec![vec![
            Some(r"x\".to_string()),
            Some("; DELETE FROM orders; --".to_string())
        ]]
    );
    assert_eq!(shop.pg.psql("select count(*) from orders").trim(), "3");
    // The session's own setting is back as it was.
    assert_eq!(
        rows(&c, "show standard_conforming_strings").await,
        text_rows(&[&["off"]])
    );
}

#[tokio::test]
async fn a_cancel_while_the_model_thinks_ends_the_request_with_57014() {
    let shop = Shop::start("");
    shop.llm
        .reply_delay(std::time::Duration::from_secs(5), COUNT_SQL);
    let c = shop.client().await;
    let token = c.cancel_token();
    let started = std::time::Instant::now();
    let asking = tokio::spawn(async move {
        let r = c
            .simple_query("SELECT * FROM nl('how many orders')")
            .await
            .map(|_| ());
        (r, c)
    });
    while shop.llm.calls() == 0 {
        assert!(
            started.elapsed().as_secs() < 10,
            "the model was never asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (r, c) = within(20, "the cancelled request", asking).await.unwrap();
    let e = r.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("57014"), "{e:?}");
    assert!(
        started.elapsed().as_secs() < 4,
        "cancelled before the model answered"
    );
    assert_eq!(
        rows(&c, "select count(*) from orders").await,
        text_rows(&[&["3"]])
    );
}
