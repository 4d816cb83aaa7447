//! The ways a client asks, and what comes back.

use tokio_postgres::types::Type;

use super::support::{error, rows, text_rows, within, Shop};
use crate::common::{psql, Helios, PgServer};

const PER_CITY: &str = "SELECT c.city, count(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.city ORDER BY c.city";

#[tokio::test]
async fn nl_in_a_simple_query_returns_the_rows_of_the_generated_sql() {
    let shop = Shop::start("");
    shop.llm.reply_text(format!("```sql\n{PER_CITY}\n```"));
    let c = shop.client().await;
    let got = rows(&c, "SELECT * FROM nl('how many orders per city')").await;
    assert_eq!(got, text_rows(&[&["Berlin", "2"], &["Paris", "1"]]));

    // The model saw the question, the tables it needs with their keys, and the rules.
    let reqs = shop.llm.completion_requests();
    assert_eq!(reqs.len(), 1);
    let prompt = reqs[0].prompt();
    assert!(prompt.contains("how many orders per city"), "{prompt}");
    assert!(
        prompt.contains("customers") && prompt.contains("orders"),
        "{prompt}"
    );
    assert!(prompt.contains("customer_id"), "{prompt}");
    assert!(prompt.to_lowercase().contains("read-only"), "{prompt}");
    assert_eq!(reqs[0].model(), Some("test-model"));
    assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-test"));

    // The connection is idle and usable afterwards, outside any transaction.
    assert_eq!(
        rows(&c, "select count(*) from products").await,
        text_rows(&[&["2"]])
    );
}

#[tokio::test]
async fn nl_sql_returns_the_sql_and_how_it_was_made_without_running_it() {
    let shop = Shop::start("");
    shop.llm.reply_text(PER_CITY);
    let c = shop.client().await;
    let msgs = within(
        30,
        "nl_sql",
        c.query("SELECT * FROM nl_sql('how many orders per city')", &[]),
    )
    .await
    .unwrap();
    assert_eq!(msgs.len(), 1);
    let row = &msgs[0];
    let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["sql", "tables", "provider", "attempts", "cached"]);
    assert_eq!(row.get::<_, String>("sql"), PER_CITY);
    let mut tables: Vec<String> = row.get("tables");
    tables.sort();
    assert_eq!(tables, ["public.customers", "public.orders"]);
    assert_eq!(row.get::<_, String>("provider"), "fake");
    assert_eq!(row.get::<_, i32>("attempts"), 1);
    assert!(!row.get::<_, bool>("cached"));
}

#[tokio::test]
async fn a_bound_question_works_over_the_extended_protocol() {
    let shop = Shop::start("");
    shop.llm.reply_text(PER_CITY);
    let c = shop.client().await;
    // Parse/Bind/Describe portal/Execute/Sync in one batch, as JDBC and
    // psycopg send it; the question is the parameter.
    let got = within(
        30,
        "nl($1)",
        c.query_typed(
            "SELECT * FROM nl($1)",
            &[(&"how many orders per city", Type::TEXT)],
        ),
    )
    .await
    .unwrap();
    let names: Vec<&str> = got[0].columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["city", "orders"]);
    let values: Vec<(String, i64)> = got.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        values,
        [("Berlin".to_string(), 2), ("Paris".to_string(), 1)]
    );
    assert!(shop.llm.completion_requests()[0]
        .prompt()
        .contains("how many orders per city"));

    // Ordinary prepared statements on the same connection are untouched.
    let stmt = c
        .prepare("select name from customers where id = $1")
        .await
        .unwrap();
    let r = c.query_one(&stmt, &[&2i32]).await.unwrap();
    assert_eq!(r.get::<_, String>(0), "Brian");

    // A NULL question is a clear error, and the connection goes on.
    let e = c
        .query_typed("SELECT * FROM nl($1)", &[(&None::<String>, Type::TEXT)])
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("22023"), "{e:?}");
    let r = c.query_one(&stmt, &[&1i32]).await.unwrap();
    assert_eq!(r.get::<_, String>(0), "Ada");
}

#[tokio::test]
async fn the_comment_form_from_psql_prints_the_rows_and_a_notice_with_the_sql() {
    let shop = Shop::start("");
    shop.llm.reply_text(PER_CITY);
    shop.llm.reply_text("SELECT count(*) FROM customers");
    let port = shop.helios.port;
    let out = tokio::task::spawn_blocking(move || {
        let a = psql(
            port,
            "postgres",
            &["-c", "/* nl: how many orders per city */"],
        );
        let b = psql(port, "postgres", &["-c", "-- nl: how many customers\n;"]);
        (a, b)
    })
    .await
    .unwrap();
    for o in [&out.0, &out.1] {
        assert!(
            o.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&out.0.stdout),
        "Berlin|2\nParis|1\n"
    );
    let notice = String::from_utf8_lossy(&out.0.stderr);
    assert!(
        notice.contains("NOTICE:") && notice.contains(PER_CITY),
        "{notice}"
    );
    assert_eq!(String::from_utf8_lossy(&out.1.stdout), "3\n");
}

#[tokio::test]
async fn history_lists_the_turns_and_nl_reset_forgets_them() {
    let shop = Shop::start("");
    shop.llm.reply_text(PER_CITY);
    shop.llm.reply_text("SELECT count(*) FROM customers");
    let c = shop.client().await;
    rows(&c, "SELECT * FROM nl('how many orders per city')").await;
    rows(&c, "SELECT * FROM nl('how many customers')").await;
    let h = rows(&c, "SHOW HELIOS NL HISTORY").await;
    assert_eq!(
        h,
        text_rows(&[
            &["1", "how many orders per city", PER_CITY],
            &["2", "how many customers", "SELECT count(*) FROM customers"],
        ])
    );
    assert_eq!(rows(&c, "SELECT nl_reset()").await, text_rows(&[&["t"]]));
    assert!(rows(&c, "SHOW HELIOS NL HISTORY").await.is_empty());
    // Another connection has its own (empty) conversation.
    let other = shop.client().await;
    assert!(rows(&other, "show helios nl history").await.is_empty());
}

#[tokio::test]
async fn without_a_provider_the_builtin_answers_or_says_what_it_could_not_place() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let c = h.connect().await;
    // An empty database: no table for "tables" to name.
    let e = error(&c, "SELECT * FROM nl('how many tables')").await;
    assert_eq!(e.code().code(), "42000", "{e:?}");
    assert!(e.message().contains("\"tables\""), "{}", e.message());
    assert!(
        e.hint().unwrap_or_default().contains("nl.providers"),
        "{e:?}"
    );
    assert_eq!(rows(&c, "select 1").await, text_rows(&[&["1"]]));
}

#[tokio::test]
async fn with_nl_disabled_the_request_reaches_postgres_unchanged() {
    let shop = Shop::start("enabled = false");
    let c = shop.client().await;
    let e = error(&c, "SELECT * FROM nl('how many orders')").await;
    // PostgreSQL's own answer: there is no function nl(unknown).
    assert_eq!(e.code().code(), "42883", "{e:?}");
    assert_eq!(shop.llm.calls(), 0);
}
