//! SHOW HELIOS QUERIES, ADVISE WORKLOAD, and helios.advise notices.

use std::sync::{Arc, Mutex};

use crate::support::*;

/// `SHOW HELIOS QUERIES` as (query, calls, rows, cache_hits).
async fn queries(c: &tokio_postgres::Client) -> Vec<(String, i64, i64, i64)> {
    c.simple_query("SHOW HELIOS QUERIES")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((
                r.get("query").unwrap().to_string(),
                r.get("calls").unwrap().parse().unwrap(),
                r.get("rows").unwrap().parse().unwrap(),
                r.get("cache_hits").unwrap().parse().unwrap(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn show_helios_queries_counts_calls_rows_and_cache_hits() {
    let (_pg, h) = start(false, "[cache]\nmode = \"auto\"\n");
    let c = h.connect().await;
    for id in [1, 2, 3] {
        c.simple_query(&format!("SELECT name FROM customers WHERE id = {id}"))
            .await
            .unwrap();
    }
    // Twice the same: the second is a cache hit.
    let q = "SELECT count(*) FROM orders WHERE status = 'open'";
    c.simple_query(q).await.unwrap();
    c.simple_query(q).await.unwrap();
    // The extended protocol too.
    for id in [10, 11] {
        c.query("SELECT id FROM orders WHERE customer_id = $1", &[&id])
            .await
            .unwrap();
    }
    c.simple_query("UPDATE customers SET name = 'x' WHERE id <= 5")
        .await
        .unwrap();
    let got = queries(&c).await;
    let shape = |prefix: &str| {
        got.iter()
            .find(|r| r.0.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {got:#?}"))
            .clone()
    };
    // One shape for the three literals, three rows.
    assert_eq!(
        shape("SELECT name FROM customers WHERE id ="),
        ("SELECT name FROM customers WHERE id = 1".into(), 3, 3, 0)
    );
    let count = shape("SELECT count(*) FROM orders");
    assert_eq!((count.1, count.3), (2, 1), "{count:?}");
    let by_customer = shape("SELECT id FROM orders WHERE customer_id = $1");
    assert_eq!(by_customer.1, 2, "{by_customer:?}");
    assert_eq!(shape("UPDATE customers").2, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn advise_workload_chooses_indexes_for_what_costs_the_most() {
    let (_pg, h) = start(true, "");
    let c = h.connect().await;
    // A workload: lookups by customer (often), by status and date (less).
    for id in 0..30 {
        c.simple_query(&format!(
            "SELECT id, amount FROM orders WHERE customer_id = {}",
            100 + id
        ))
        .await
        .unwrap();
    }
    for _ in 0..5 {
        c.simple_query(
            "SELECT count(*) FROM orders WHERE status = 'void' \
             AND created_at >= '2024-03-01' AND created_at < '2024-03-02'",
        )
        .await
        .unwrap();
    }
    let msgs = c.simple_query("ADVISE WORKLOAD").await.unwrap();
    let rows: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((
                r.get("index").unwrap().to_string(),
                r.get("suggestion").map(str::to_string),
                r.get("saving_pct").unwrap().parse::<f64>().unwrap(),
            )),
            _ => None,
        })
        .collect();
    let total = rows.last().unwrap();
    assert_eq!(total.0, "(workload)");
    assert!(total.2 >= 50.0, "workload saving {}: {rows:#?}", total.2);
    assert!(
        rows.iter().any(|r| r.0.starts_with("orders (customer_id")),
        "{rows:#?}"
    );
    assert!(rows[..rows.len() - 1].iter().all(|r| r
        .1
        .as_deref()
        .unwrap_or("")
        .starts_with("CREATE INDEX CONCURRENTLY")));
}

#[tokio::test(flavor = "multi_thread")]
async fn helios_advise_on_sends_findings_as_notices() {
    let (_pg, h) = start(false, "");
    let notices = Arc::new(Mutex::new(Vec::<String>::new()));
    let c = {
        let notices = notices.clone();
        let (client, mut conn) =
            tokio_postgres::connect(&h.conn_str("postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(async move {
            let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            use futures_util::StreamExt;
            while let Some(Ok(m)) = stream.next().await {
                if let tokio_postgres::AsyncMessage::Notice(n) = m {
                    notices.lock().unwrap().push(n.message().to_string());
                }
            }
        });
        client
    };
    let q = "SELECT * FROM orders WHERE status = NULL";
    c.simple_query(q).await.unwrap();
    assert!(notices.lock().unwrap().is_empty(), "off by default");
    c.simple_query("SET helios.advise = on").await.unwrap();
    let show = c.simple_query("SHOW helios.advise").await.unwrap();
    assert!(
        matches!(&show[1], tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("on"))
    );
    let rows = c.simple_query(q).await.unwrap();
    assert!(
        rows.iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::CommandComplete(0))),
        "the statement still runs (no rows match = NULL)"
    );
    let got = notices.lock().unwrap().clone();
    assert!(got.iter().any(|m| m.contains("equals_null")), "{got:?}");
    assert!(got.iter().any(|m| m.contains("select_star")), "{got:?}");
    // The extended protocol too.
    notices.lock().unwrap().clear();
    c.query(
        "SELECT * FROM orders WHERE id = $1 OR status = NULL",
        &[&1i32],
    )
    .await
    .unwrap();
    assert!(!notices.lock().unwrap().is_empty());
    c.simple_query("RESET helios.advise").await.unwrap();
    notices.lock().unwrap().clear();
    c.simple_query(q).await.unwrap();
    assert!(notices.lock().unwrap().is_empty(), "off again");
}
