//! What Helios adds, in the embedded database: ADVISE, natural language
//! (checked by DataFusion planning, run in DataFusion), cancel.

use std::time::Duration;

use crate::common::llm::FakeLlm;
use crate::common::{sqlstate, Helios};
use crate::{rows, sqlstate_of, value};

fn with_llm(llm: &FakeLlm) -> Helios {
    Helios::start_config(&format!(
        "[nl]\n[[nl.providers]]\nkind = \"openai\"\nname = \"fake\"\nbase_url = \"{}\"\nmodel = \"m\"\ntimeout = \"2s\"\nmax_retries = 0\n",
        llm.base_url()
    ))
}

#[tokio::test]
async fn advise_gives_the_static_findings() {
    let h = crate::embedded();
    let c = h.connect().await;
    let got = rows(&c, "ADVISE SELECT * FROM orders o, customers c").await;
    let rules: Vec<_> = got.iter().map(|r| r[1].clone().unwrap()).collect();
    assert!(rules.contains(&"select_star".to_string()), "{rules:?}");
    assert!(
        rules.contains(&"cartesian_product".to_string()),
        "{rules:?}"
    );
    // The score is below 100 and the same on every row.
    let score: i32 = got[0][9].clone().unwrap().parse().unwrap();
    assert!(score < 100, "{score}");
    assert!(got.iter().all(|r| r[9] == got[0][9]));
    // As a table function too, and with ANALYZE it says there is no plan.
    let f = rows(&c, "SELECT * FROM helios_advise('SELECT id FROM regions')").await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0][1].as_deref(), Some("no_findings"));
    let a = rows(&c, "ADVISE ANALYZE SELECT id FROM regions").await;
    assert!(
        a.iter()
            .any(|r| r[1].as_deref() == Some("plan_not_consulted")),
        "{a:?}"
    );
    // Unknown names are findings, not errors.
    let u = rows(&c, "ADVISE SELECT nope FROM orders").await;
    assert!(
        u.iter().any(|r| r[1].as_deref() == Some("unknown_name")),
        "{u:?}"
    );
    // What needs an upstream says so.
    assert_eq!(sqlstate_of(&c, "ADVISE WORKLOAD").await, "0A000");
    // SHOW HELIOS QUERIES counts what ran, by shape.
    for id in [1, 2, 3] {
        rows(&c, &format!("SELECT name FROM regions WHERE id = {id}")).await;
    }
    let q = rows(&c, "SHOW HELIOS QUERIES").await;
    let shape = q
        .iter()
        .find(|r| {
            r[1].as_deref()
                .is_some_and(|t| t.contains("FROM regions WHERE id"))
        })
        .unwrap_or_else(|| panic!("{q:?}"));
    assert_eq!(shape[2].as_deref(), Some("3"), "calls: {shape:?}");
    assert_eq!(shape[6].as_deref(), Some("3"), "rows: {shape:?}");
    // The session is fine afterwards.
    assert_eq!(value(&c, "SELECT count(*) FROM regions").await, "5");
}

#[tokio::test]
async fn natural_language_runs_in_the_engine() {
    let llm = FakeLlm::start().await;
    let h = with_llm(&llm);
    let c = h.connect().await;
    // A first answer that does not plan is sent back with DataFusion's error.
    llm.reply_text("SELECT count(*) FROM order_lines");
    llm.reply_text("SELECT count(*) AS n FROM orders WHERE status = 'shipped'");
    let got = rows(&c, "SELECT * FROM nl('how many shipped orders')").await;
    let direct = value(&c, "SELECT count(*) FROM orders WHERE status = 'shipped'").await;
    assert_eq!(got, vec![vec![Some(direct)]]);
    let reqs = llm.completion_requests();
    assert_eq!(reqs.len(), 2);
    let correction = reqs[1].last_user().unwrap();
    assert!(correction.contains("order_lines"), "{correction}");
    // The prompt described the demo schema.
    assert!(
        reqs[0].prompt().contains("order_items"),
        "{}",
        reqs[0].prompt()
    );

    // nl_sql returns the SQL without running it; history keeps both turns.
    llm.reply_text("SELECT name FROM regions ORDER BY name");
    let sql = rows(&c, "SELECT * FROM nl_sql('region names')").await;
    assert_eq!(
        sql[0][0].as_deref(),
        Some("SELECT name FROM regions ORDER BY name")
    );
    let history = rows(&c, "SHOW HELIOS NL HISTORY").await;
    assert_eq!(history.len(), 2, "{history:?}");

    // A comment-only statement is a question too.
    llm.reply_text("SELECT count(*) FROM regions");
    assert_eq!(value(&c, "-- nl: how many regions").await, "5");
}

#[tokio::test]
async fn natural_language_never_writes() {
    let llm = FakeLlm::start().await;
    let h = with_llm(&llm);
    let c = h.connect().await;
    for _ in 0..4 {
        llm.reply_text("DELETE FROM orders");
    }
    let e = c
        .simple_query("SELECT * FROM nl('remove all orders')")
        .await
        .expect_err("a DELETE is refused");
    let code = sqlstate(&e).unwrap();
    assert!(
        code.starts_with("42") || code.starts_with("25") || code == "XX000",
        "{code}: {e}"
    );
    assert_eq!(value(&c, "SELECT count(*) FROM orders").await, "100000");
}

#[tokio::test]
async fn a_cancel_stops_the_running_query() {
    let h = crate::embedded();
    let c = h.connect().await;
    let token = c.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let started = std::time::Instant::now();
    let e = c
        .simple_query(
            "SELECT count(*) FROM order_items a, order_items b WHERE a.quantity + b.quantity = 3",
        )
        .await
        .expect_err("cancelled");
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
    canceller.await.unwrap().unwrap();
    // The session goes on.
    assert_eq!(value(&c, "SELECT count(*) FROM regions").await, "5");
}
