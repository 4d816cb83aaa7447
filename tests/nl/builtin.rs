//! The builtin translator, end to end: no API key, a real client, the
//! embedded demo database or a real PostgreSQL.
//!
//! - the demo question sets (`builtin_demo_questions.txt`, written with
//!   the translator; `builtin_demo_heldout.txt`, written apart from it and
//!   not tuned on): execution accuracy on the questions it answers
//!   (precision) and the share it answers (coverage);
//! - on a real schema: value hints, foreign-key joins, measures from the
//!   configuration;
//! - refusals name the words it could not place, and nothing runs;
//! - its place among the providers: alone, first, or the last fallback.

use crate::common::llm::FakeLlm;
use crate::common::{Helios, PgServer};
use crate::gold;
use crate::support::{error, rows, text_rows, Shop, SHOP};

const DEMO_SET: &str = include_str!("builtin_demo_questions.txt");
const HELD_OUT: &str = include_str!("builtin_demo_heldout.txt");

async fn report(h: &Helios, name: &str, text: &str) -> gold::Report {
    let cases = gold::parse_gold(text, name).expect("a well-formed gold file");
    let c = h.connect().await;
    gold::evaluate(name, &c, &c, &cases, |_| {}).await
}

#[tokio::test]
async fn the_demo_question_sets_meet_their_targets() {
    // No upstream and no provider: the embedded demo and the builtin.
    let h = Helios::start_config("");
    let set = report(&h, "demo (tuned on)", DEMO_SET).await;
    let held = report(&h, "demo (held out)", HELD_OUT).await;
    let table = gold::table(&[set.clone(), held.clone()]);
    println!("{table}\n{}\n{}", set.misses(), held.misses());
    let (questions, _, _, failed) = set.counts();
    assert!(questions >= 100 && failed == 0, "{table}");
    let (precision, coverage) = set.rates();
    assert!(
        precision >= 0.95,
        "precision under 95%:\n{table}\n{}",
        set.misses()
    );
    assert!(
        coverage >= 0.70,
        "coverage under 70%:\n{table}\n{}",
        set.misses()
    );
    // Not tuned on, so a looser floor: it must still rarely be wrong.
    let (precision, _) = held.rates();
    assert!(
        precision >= 0.90,
        "held-out precision under 90%:\n{table}\n{}",
        held.misses()
    );
}

#[tokio::test]
async fn with_no_provider_the_builtin_answers_on_the_demo() {
    let h = Helios::start_config("");
    let c = h.connect().await;
    let direct = rows(&c, "SELECT count(*) FROM orders WHERE status = 'shipped'").await;
    assert_eq!(
        rows(&c, "SELECT * FROM nl('how many shipped orders?')").await,
        direct
    );
    // Embedded: sql, provider, attempts, cached.
    let sql = rows(&c, "SELECT * FROM nl_sql('the 3 cheapest products')").await;
    assert_eq!(
        sql[0][..3],
        text_rows(&[&[
            "SELECT * FROM products ORDER BY price LIMIT 3",
            "builtin",
            "1"
        ]])[0][..]
    );
    // The demo's own measure: revenue.
    let top = rows(&c, "SELECT * FROM nl('top 2 regions by revenue')").await;
    let expected = rows(
        &c,
        "SELECT r.id, r.name, sum(oi.quantity * oi.unit_price) AS revenue FROM order_items oi \
         JOIN orders o ON oi.order_id = o.id JOIN customers c ON o.customer_id = c.id \
         JOIN regions r ON c.region_id = r.id GROUP BY r.id, r.name ORDER BY revenue DESC LIMIT 2",
    )
    .await;
    assert_eq!(top, expected);
    // The comment form.
    assert_eq!(
        rows(&c, "-- nl: how many regions").await,
        text_rows(&[&["5"]])
    );
}

#[tokio::test]
async fn it_refuses_naming_the_words_it_could_not_place() {
    let h = Helios::start_config("");
    let c = h.connect().await;
    let e = error(
        &c,
        "SELECT * FROM nl('which customers are happiest with our service')",
    )
    .await;
    assert_eq!(e.code().code(), "42000", "{e:?}");
    assert!(
        e.message().contains("\"happiest\", \"service\""),
        "{}",
        e.message()
    );
    assert!(
        e.hint().unwrap_or_default().contains("[[nl.providers]]"),
        "{e:?}"
    );
    // A write is no question it answers: nothing runs, nothing changes.
    let e = error(&c, "SELECT * FROM nl('delete all cancelled orders')").await;
    assert_eq!(e.code().code(), "42000", "{e:?}");
    assert!(e.message().contains("\"delete\""), "{}", e.message());
    assert_eq!(
        rows(&c, "SELECT count(*) FROM orders WHERE status = 'cancelled'").await,
        text_rows(&[&["6035"]])
    );
    // Two readings: which table's "name"?
    let e = error(&c, "SELECT * FROM nl('show every name')").await;
    assert_eq!(e.code().code(), "42000", "{e:?}");
    assert!(e.message().contains("which column"), "{}", e.message());
}

#[tokio::test]
async fn on_a_real_schema_it_uses_values_foreign_keys_and_measures() {
    let pg = PgServer::start();
    pg.psql(SHOP);
    let h = Helios::start(
        &pg,
        "[[nl.measures]]\nname = \"spend\"\nsql = \"sum(orders.quantity * products.price)\"\n",
    );
    let c = h.connect().await;
    // "Berlin" is one of customers.city's common values (pg_stats).
    let mut berlin = rows(&c, "SELECT * FROM nl('customers in Berlin')").await;
    berlin.sort();
    assert_eq!(
        berlin,
        text_rows(&[&["1", "Ada", "Berlin"], &["3", "Chen", "Berlin"]])
    );
    assert_eq!(
        rows(&c, "SELECT * FROM nl('customers without orders')").await,
        text_rows(&[&["3", "Chen", "Berlin"]])
    );
    assert_eq!(
        rows(&c, "SELECT * FROM nl('number of orders per customer city')")
            .await
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        [
            text_rows(&[&["Berlin", "2"]]),
            text_rows(&[&["Paris", "1"]])
        ]
        .concat()
        .into_iter()
        .collect()
    );
    // The configured measure joins orders to products.
    assert_eq!(
        rows(&c, "SELECT * FROM nl('top 1 customer by spend')").await,
        text_rows(&[&["1", "Ada", "Berlin", "190.00"]])
    );
    assert_eq!(
        rows(&c, "SELECT * FROM nl_sql('orders in February 2025')").await[0][0].as_deref(),
        Some("SELECT * FROM orders WHERE ordered_at >= '2025-02-01' AND ordered_at < '2025-03-01'")
    );
}

fn providers(llm: &FakeLlm, builtin_first: bool) -> String {
    let model = format!(
        "[[nl.providers]]\nkind = \"openai\"\nname = \"fake\"\nbase_url = \"{}\"\nmodel = \"m\"\napi_key = \"sk\"\ntimeout = \"5s\"\nmax_retries = 0\n",
        llm.base_url()
    );
    let builtin = "[[nl.providers]]\nkind = \"builtin\"\n";
    if builtin_first {
        format!("[nl]\n{builtin}{model}")
    } else {
        format!("[nl]\n{model}{builtin}")
    }
}

#[tokio::test]
async fn listed_last_it_answers_when_no_model_does() {
    let shop = Shop::start_with(SHOP, |llm| providers(llm, false));
    let c = shop.client().await;
    shop.llm.reply_status(503, "overloaded");
    // Over an upstream: sql, tables, provider, attempts, cached.
    let got = rows(&c, "SELECT * FROM nl_sql('how many customers')").await;
    assert_eq!(
        got[0][0].as_deref(),
        Some("SELECT count(*) AS count FROM customers")
    );
    assert_eq!(got[0][2].as_deref(), Some("builtin"));
    assert_eq!(
        shop.llm.completion_requests().len(),
        1,
        "the model was asked first"
    );
    // A model that answers is used.
    shop.llm.reply_text("SELECT 42 AS answer");
    assert_eq!(
        rows(&c, "SELECT * FROM nl('the answer to everything')").await,
        text_rows(&[&["42"]])
    );
    // Neither: the provider error, with why the builtin could not.
    shop.llm.reply_status(503, "overloaded");
    let e = error(&c, "SELECT * FROM nl('the meaning of life')").await;
    assert_eq!(e.code().code(), "58000", "{e:?}");
    assert!(
        e.hint().unwrap_or_default().contains("\"meaning\""),
        "{e:?}"
    );
}

#[tokio::test]
async fn listed_first_it_answers_what_it_can_and_the_model_the_rest() {
    let shop = Shop::start_with(SHOP, |llm| providers(llm, true));
    let c = shop.client().await;
    assert_eq!(
        rows(&c, "SELECT * FROM nl('how many products')").await,
        text_rows(&[&["2"]])
    );
    assert_eq!(
        shop.llm.completion_requests().len(),
        0,
        "no model call for what the builtin answers"
    );
    shop.llm.reply_text("SELECT 'Lamp' AS best");
    assert_eq!(
        rows(&c, "SELECT * FROM nl('which product do people love')").await,
        text_rows(&[&["Lamp"]])
    );
    assert_eq!(shop.llm.completion_requests().len(), 1);
}
