//! The pipeline behind a question: corrections, providers and their
//! breakers, caching, follow-ups, complex questions, schema pruning.

use std::time::Duration;

use super::support::{error, rows, text_rows, Shop, SHOP};
use crate::common::llm::FakeLlm;

const COUNT_ORDERS: &str = "SELECT count(*) FROM orders";

fn provider(name: &str, llm: &FakeLlm, extra: &str) -> String {
    format!(
        "[[nl.providers]]\nkind = \"openai\"\nname = \"{name}\"\nbase_url = \"{}\"\nmodel = \"m\"\ntimeout = \"1s\"\nmax_retries = 0\n{extra}\n",
        llm.base_url()
    )
}

#[tokio::test]
async fn a_missing_column_is_corrected_on_the_second_try() {
    let shop = Shop::start("");
    shop.llm.reply_text(
        "SELECT c.city, sum(o.revenue) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.city",
    );
    shop.llm.reply_text(
        "SELECT c.city, sum(o.quantity) AS items FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.city ORDER BY c.city",
    );
    let c = shop.client().await;
    let got = rows(&c, "SELECT * FROM nl('items sold per city')").await;
    assert_eq!(got, text_rows(&[&["Berlin", "3"], &["Paris", "5"]]));
    let reqs = shop.llm.completion_requests();
    assert_eq!(reqs.len(), 2);
    let correction = reqs[1].last_user().unwrap();
    assert!(
        correction.contains("revenue"),
        "the reason goes back to the model: {correction}"
    );
    assert!(
        reqs[1].prompt().contains("sum(o.revenue)"),
        "so does its SQL"
    );
}

#[tokio::test]
async fn an_error_only_postgres_finds_is_fed_back_from_explain() {
    let shop = Shop::start("");
    shop.llm
        .reply_text("SELECT count(*) FROM customers WHERE id = 'not a number'");
    shop.llm.reply_text("SELECT count(*) FROM customers");
    let c = shop.client().await;
    let got = rows(&c, "SELECT * FROM nl_sql('how many customers')").await;
    assert_eq!(got[0][0].as_deref(), Some("SELECT count(*) FROM customers"));
    assert_eq!(got[0][3].as_deref(), Some("2"));
    let correction = shop.llm.completion_requests()[1].last_user().unwrap();
    assert!(correction.contains("invalid input syntax"), "{correction}");
}

#[tokio::test]
async fn the_same_sql_twice_ends_the_loop_with_a_clear_error() {
    let shop = Shop::start("max_attempts = 5");
    for _ in 0..5 {
        shop.llm.reply_text("SELECT revenue FROM orders");
    }
    let c = shop.client().await;
    let e = error(&c, "SELECT * FROM nl('total revenue')").await;
    assert_eq!(e.code().code(), "42000", "{e:?}");
    assert!(e.message().contains("revenue"), "{}", e.message());
    assert!(
        e.detail()
            .unwrap_or_default()
            .contains("SELECT revenue FROM orders"),
        "{e:?}"
    );
    assert_eq!(shop.llm.calls(), 2, "the repeat ends it");
}

#[tokio::test]
async fn a_provider_failing_or_timing_out_falls_back_to_the_next() {
    let a = FakeLlm::start_blocking();
    let b = FakeLlm::start_blocking();
    let shop = Shop::start_with(SHOP, |_| {
        format!("[nl]\n{}{}", provider("a", &a, ""), provider("b", &b, ""))
    });
    let c = shop.client().await;

    a.reply_status(500, r#"{"error":{"message":"boom"}}"#);
    b.reply_text(COUNT_ORDERS);
    let got = rows(&c, "SELECT * FROM nl_sql('how many orders')").await;
    assert_eq!(got[0][0].as_deref(), Some(COUNT_ORDERS));
    assert_eq!(got[0][2].as_deref(), Some("b"));

    a.reply_delay(Duration::from_secs(3), "SELECT 1");
    b.reply_text("SELECT count(*) FROM customers");
    let got = rows(&c, "SELECT * FROM nl('how many customers')").await;
    assert_eq!(got, text_rows(&[&["3"]]));
    assert_eq!((a.calls(), b.calls()), (2, 2));

    // Garbage from the last provider, with nothing after it: 58000 naming it.
    a.reply_garbage();
    b.reply_garbage();
    let e = error(&c, "SELECT * FROM nl('how many products')").await;
    assert_eq!(e.code().code(), "58000", "{e:?}");
    let detail = e.detail().unwrap_or_default();
    assert!(detail.contains('a') && detail.contains('b'), "{detail}");
    assert_eq!(rows(&c, "select 1").await, text_rows(&[&["1"]]));
}

#[tokio::test]
async fn the_breaker_opens_after_failures_and_half_opens_after_the_cooldown() {
    let a = FakeLlm::start_blocking();
    let b = FakeLlm::start_blocking();
    let shop = Shop::start_with(SHOP, |_| {
        format!(
            "[nl]\n{}{}",
            provider("a", &a, "breaker_failures = 2\nbreaker_cooldown = \"1s\""),
            provider("b", &b, "")
        )
    });
    let c = shop.client().await;
    for (i, q) in ["how many orders", "how many customers", "how many products"]
        .iter()
        .enumerate()
    {
        if i < 2 {
            a.reply_status(503, "overloaded");
        }
        b.reply_text(format!("SELECT {i}"));
        let got = rows(&c, &format!("SELECT * FROM nl_sql('{q}')")).await;
        assert_eq!(got[0][2].as_deref(), Some("b"), "{q}");
    }
    assert_eq!(a.calls(), 2, "open: the third question skipped a");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    a.reply_text("SELECT 42");
    let got = rows(&c, "SELECT * FROM nl_sql('the answer')").await;
    assert_eq!(
        got[0][2].as_deref(),
        Some("a"),
        "half-open: one trial, which succeeded"
    );
    assert_eq!((a.calls(), b.calls()), (3, 3));
}

#[tokio::test]
async fn an_anthropic_provider_is_asked_on_its_messages_api() {
    let shop = Shop::start_with(SHOP, |llm| {
        format!(
            "[nl]\n[[nl.providers]]\nkind = \"anthropic\"\nbase_url = \"{}\"\nmodel = \"claude-test\"\napi_key = \"ak-test\"\nmax_retries = 0\n",
            llm.root_url()
        )
    });
    shop.llm.reply_text(COUNT_ORDERS);
    let c = shop.client().await;
    assert_eq!(
        rows(&c, "SELECT * FROM nl('how many orders')").await,
        text_rows(&[&["3"]])
    );
    let req = shop.llm.last_request().unwrap();
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some("ak-test"));
    assert_eq!(req.model(), Some("claude-test"));
    assert!(req.system().contains("PostgreSQL"), "{}", req.system());
}

#[tokio::test]
async fn a_repeated_or_similar_question_is_answered_from_the_cache() {
    let shop = Shop::start("");
    shop.llm.reply_text(COUNT_ORDERS);
    let c = shop.client().await;
    assert_eq!(
        rows(&c, "SELECT * FROM nl('how many orders are there')").await,
        text_rows(&[&["3"]])
    );
    // The same question again (this connection, then another), and a
    // rewording: no call to the model.
    assert_eq!(
        rows(&c, "SELECT * FROM nl('How many orders are there?')").await,
        text_rows(&[&["3"]])
    );
    let other = shop.client().await;
    let got = rows(
        &other,
        "SELECT * FROM nl_sql('so how many orders there are')",
    )
    .await;
    assert_eq!(got[0][0].as_deref(), Some(COUNT_ORDERS));
    assert_eq!(got[0][3].as_deref(), Some("0"), "attempts");
    assert_eq!(got[0][4].as_deref(), Some("t"), "cached");
    assert_eq!(shop.llm.calls(), 1);
    // Rows are read fresh: the cache holds the translation, not the answer.
    shop.pg
        .psql("insert into orders values (4, 3, 2, 1, '2025-04-01')");
    assert_eq!(
        rows(&other, "SELECT * FROM nl('how many orders are there')").await,
        text_rows(&[&["4"]])
    );
    // A different number is a different question.
    shop.llm
        .reply_text("SELECT count(*) FROM orders WHERE quantity > 2");
    rows(
        &c,
        "SELECT * FROM nl('how many orders are there with more than 2 items')",
    )
    .await;
    shop.llm
        .reply_text("SELECT count(*) FROM orders WHERE quantity > 3");
    let got = rows(
        &c,
        "SELECT * FROM nl_sql('how many orders are there with more than 3 items')",
    )
    .await;
    assert_eq!(got[0][4].as_deref(), Some("f"));
    assert_eq!(shop.llm.calls(), 3);
}

#[tokio::test]
async fn the_semantic_cache_uses_embeddings_when_the_provider_has_them() {
    let shop = Shop::start_with(SHOP, |llm| {
        format!(
            "[nl]\nsimilarity_threshold = 0.8\n{}",
            provider("e", llm, "embedding_model = \"emb\"")
        )
    });
    shop.llm.reply_text(COUNT_ORDERS);
    let c = shop.client().await;
    rows(&c, "SELECT * FROM nl('number of orders placed')").await;
    let got = rows(&c, "SELECT * FROM nl_sql('orders placed number')").await;
    assert_eq!(
        got[0][4].as_deref(),
        Some("t"),
        "cached by embedding similarity"
    );
    assert_eq!(shop.llm.calls(), 1);
    assert!(shop.llm.embedding_calls() >= 2);
    // The tables' descriptions were embedded too (once), for retrieval.
    let embedded: Vec<String> = shop
        .llm
        .requests()
        .iter()
        .flat_map(|r| r.embedding_inputs())
        .collect();
    let descriptions: Vec<&String> = embedded
        .iter()
        .filter(|t| t.starts_with("customers: id, name, city"))
        .collect();
    assert_eq!(descriptions.len(), 1, "{embedded:?}");
    assert!(descriptions[0].contains("people who buy from the shop"));
}

#[tokio::test]
async fn a_schema_change_drops_cached_translations() {
    let shop = Shop::start("catalog_refresh = \"0s\"");
    shop.llm.reply_text(COUNT_ORDERS);
    let c = shop.client().await;
    rows(&c, "SELECT * FROM nl('how many orders')").await;
    shop.pg.psql("alter table orders add column note text");
    shop.llm.reply_text(COUNT_ORDERS);
    let got = rows(&c, "SELECT * FROM nl_sql('how many orders')").await;
    assert_eq!(
        got[0][4].as_deref(),
        Some("f"),
        "translated again for the new schema"
    );
    assert_eq!(shop.llm.calls(), 2);
    assert!(shop.llm.last_request().unwrap().prompt().contains("note"));
}

#[tokio::test]
async fn a_follow_up_question_carries_the_previous_turn() {
    let shop = Shop::start("");
    shop.llm.reply_text("SELECT c.city, count(*) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.city");
    shop.llm.reply_text("SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.city = 'Berlin'");
    let c = shop.client().await;
    rows(&c, "SELECT * FROM nl('orders per city')").await;
    assert_eq!(
        rows(&c, "SELECT * FROM nl('and only Berlin?')").await,
        text_rows(&[&["2"]])
    );
    let second = shop.llm.completion_requests()[1].prompt();
    assert!(second.contains("orders per city"), "{second}");
    assert!(second.contains("GROUP BY c.city"), "{second}");
}

#[tokio::test]
async fn a_complex_question_is_planned_in_steps_composed_as_ctes() {
    let shop = Shop::start("complexity_threshold = 2");
    shop.llm.reply_text(
        r#"{"steps": [{"name": "per_customer", "description": "items per customer"}, {"name": "top", "description": "customers above the average"}]}"#,
    );
    shop.llm
        .reply_text("SELECT customer_id, sum(quantity) AS items FROM orders GROUP BY customer_id");
    shop.llm.reply_text("SELECT c.name FROM per_customer p JOIN customers c ON c.id = p.customer_id WHERE p.items > (SELECT avg(items) FROM per_customer)");
    let c = shop.client().await;
    let got = rows(
        &c,
        "SELECT * FROM nl('which customers bought more items than the average customer, and how many per city')",
    )
    .await;
    assert_eq!(got, text_rows(&[&["Brian"]]));
    let reqs = shop.llm.completion_requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs[0].last_user().unwrap().contains("steps"));
    assert!(
        reqs[2].last_user().unwrap().contains("per_customer"),
        "earlier steps are shown"
    );
    let sql = rows(&c, "SHOW HELIOS NL HISTORY").await[0][2]
        .clone()
        .unwrap();
    assert!(sql.starts_with("WITH per_customer AS ("), "{sql}");
}

#[tokio::test]
async fn sample_values_are_shared_only_when_allowed() {
    for (share, expect) in [("true", true), ("false", false)] {
        let shop = Shop::start(&format!("share_values = {share}"));
        shop.llm
            .reply_text("SELECT city, count(*) FROM customers GROUP BY city");
        let c = shop.client().await;
        rows(&c, "SELECT * FROM nl('customers per city')").await;
        let prompt = shop.llm.last_request().unwrap().prompt();
        assert_eq!(
            prompt.contains("Berlin"),
            expect,
            "share_values = {share}:\n{prompt}"
        );
    }
}

#[tokio::test]
async fn examples_similar_to_the_question_reach_the_prompt() {
    let shop = Shop::start(
        "[[nl.examples]]\nquestion = \"best selling product\"\nsql = \"SELECT p.title FROM orders o JOIN products p ON p.id = o.product_id GROUP BY p.title ORDER BY sum(o.quantity) DESC LIMIT 1\"\n\
         [[nl.examples]]\nquestion = \"customers in a city\"\nsql = \"SELECT name FROM customers WHERE city = 'Paris'\"\n",
    );
    shop.llm
        .reply_text("SELECT p.title FROM products p ORDER BY p.price DESC LIMIT 1");
    let c = shop.client().await;
    rows(&c, "SELECT * FROM nl('most expensive product')").await;
    let prompt = shop.llm.last_request().unwrap().prompt();
    assert!(prompt.contains("best selling product"), "{prompt}");
}

#[tokio::test]
async fn on_a_200_table_schema_the_prompt_holds_the_relevant_tables_only() {
    let nouns = [
        "invoice",
        "shipment",
        "warehouse",
        "supplier",
        "employee",
        "payroll",
        "ticket",
        "campaign",
        "asset",
        "contract",
        "vehicle",
        "sensor",
        "budget",
        "license",
        "course",
        "patient",
        "booking",
        "device",
        "feedback",
        "recipe",
    ];
    let parts = [
        "log", "item", "archive", "audit", "stage", "history", "summary", "detail", "event", "note",
    ];
    let mut setup = String::from(SHOP);
    for n in nouns {
        for p in parts {
            setup.push_str(&format!(
                "create table {n}_{p} (id int primary key, {n}_code text, {p}_label text, amount numeric, created_on date);\n"
            ));
        }
    }
    let shop = Shop::start_with(&setup, |llm| format!("[nl]\n{}", provider("f", llm, "")));
    assert_eq!(
        shop.pg
            .psql("select count(*) from pg_tables where schemaname = 'public'")
            .trim(),
        "203"
    );
    shop.llm.reply_text("SELECT c.city, count(*) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.city");
    let c = shop.client().await;
    rows(
        &c,
        "SELECT * FROM nl('how many orders did customers in each city place')",
    )
    .await;
    let prompt = shop.llm.last_request().unwrap().prompt();
    assert!(
        prompt.contains("public.customers") || prompt.contains("TABLE customers"),
        "{prompt}"
    );
    assert!(prompt.contains("orders ("), "{prompt}");
    let tables = prompt.matches("CREATE TABLE").count();
    assert!(
        (2..=8).contains(&tables),
        "{tables} tables in the prompt:\n{prompt}"
    );
    for n in nouns {
        assert!(
            !prompt.contains(&format!("{n}_log")),
            "{n}_log is irrelevant:\n{prompt}"
        );
    }
}

#[tokio::test]
async fn each_role_and_search_path_gets_its_own_view_of_the_schema() {
    let setup = "create schema east; create schema west;
        create table east.stock (id int primary key, east_only_column int);
        create table west.stock (id int primary key, west_only_column int);";
    let shop = Shop::start_with(setup, |llm| format!("[nl]\n{}", provider("f", llm, "")));
    let east = shop.client().await;
    east.batch_execute("SET search_path = east").await.unwrap();
    let west = shop.client().await;
    west.batch_execute("SET search_path = west").await.unwrap();
    shop.llm.reply_text("SELECT east_only_column FROM stock");
    shop.llm.reply_text("SELECT west_only_column FROM stock");
    // Each answer is valid only under its own search_path: unqualified
    // `stock` must resolve to the session's own table when checked.
    shop.pg
        .psql("insert into east.stock values (1, 10); insert into west.stock values (1, 20)");
    assert_eq!(
        rows(&east, "SELECT * FROM nl('the stock column')").await,
        text_rows(&[&["10"]])
    );
    assert_eq!(
        rows(&west, "SELECT * FROM nl('the stock column')").await,
        text_rows(&[&["20"]])
    );
    assert_eq!(shop.llm.calls(), 2, "each accepted on the first attempt");
}

#[tokio::test]
async fn a_large_catalog_row_is_read_whatever_the_client_message_limit() {
    let long = "x".repeat(20_000);
    let shop = Shop::start_with(
        &format!("{SHOP} comment on table products is '{long}';"),
        |llm| {
            format!(
                "[server]\nmax_message_size = \"16kB\"\n[nl]\n{}",
                provider("f", llm, "")
            )
        },
    );
    shop.llm.reply_text(COUNT_ORDERS);
    let c = shop.client().await;
    assert_eq!(
        rows(&c, "SELECT * FROM nl('how many orders')").await,
        text_rows(&[&["3"]])
    );
    assert_eq!(
        rows(&c, "select 'next query'").await,
        text_rows(&[&["next query"]])
    );
}
