//! Queries over the demo data: exact rows, parameters, errors.

use crate::{embedded, rows, sqlstate_of, value};

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_tables_are_there_with_their_rows() {
    let h = embedded();
    let c = h.connect().await;
    assert_eq!(value(&c, "SELECT count(*) FROM regions").await, "5");
    assert_eq!(value(&c, "SELECT count(*) FROM customers").await, "10000");
    assert_eq!(value(&c, "SELECT count(*) FROM products").await, "1000");
    assert_eq!(value(&c, "SELECT count(*) FROM orders").await, "100000");
    // Every order's total is the sum of its items.
    let mismatched = value(
        &c,
        "SELECT count(*) FROM orders o JOIN (SELECT order_id, sum(quantity * unit_price) AS s \
         FROM order_items GROUP BY order_id) i ON i.order_id = o.id WHERE i.s <> o.total",
    )
    .await;
    assert_eq!(mismatched, "0");
    // Every order belongs to a customer, every item to an order and a product.
    let orphans = value(
        &c,
        "SELECT count(*) FROM order_items oi LEFT JOIN products p ON p.id = oi.product_id \
         WHERE p.id IS NULL",
    )
    .await;
    assert_eq!(orphans, "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_data_on_every_start() {
    let sql = "SELECT sum(total), count(DISTINCT customer_id) FROM orders";
    let a = {
        let h = embedded();
        rows(&h.connect().await, sql).await
    };
    let b = {
        let h = embedded();
        rows(&h.connect().await, sql).await
    };
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analytical_query_and_parameters() {
    let h = embedded();
    let c = h.connect().await;
    let by_region = rows(
        &c,
        "SELECT r.name, count(*) AS orders FROM orders o \
         JOIN customers c ON c.id = o.customer_id \
         JOIN regions r ON r.id = c.region_id \
         GROUP BY r.name ORDER BY r.name",
    )
    .await;
    assert_eq!(by_region.len(), 5, "{by_region:?}");
    let total: i64 = by_region
        .iter()
        .map(|r| r[1].as_deref().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 100_000);
    // The extended protocol, a parameter, binary results.
    let row = c
        .query_one("SELECT id, name FROM customers WHERE id = $1", &[&42i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert!(!row.get::<_, String>(1).is_empty());
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM orders WHERE status = $1 AND customer_id <= $2",
            &[&"delivered", &5000i32],
        )
        .await
        .unwrap()
        .get(0);
    assert!(n > 0 && n < 100_000, "{n}");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_postgresql_sqlstates_and_the_session_goes_on() {
    let h = embedded();
    let c = h.connect().await;
    assert_eq!(sqlstate_of(&c, "SELECT * FROM nope").await, "42P01");
    assert_eq!(sqlstate_of(&c, "SELECT nope FROM orders").await, "42703");
    assert_eq!(sqlstate_of(&c, "SELEC 1").await, "42601");
    assert_eq!(sqlstate_of(&c, "SELECT 1/0").await, "22012");
    // The demo database is read-only; nothing changes.
    assert_eq!(
        sqlstate_of(&c, "DELETE FROM orders WHERE id < 10").await,
        "25006"
    );
    assert_eq!(value(&c, "SELECT count(*) FROM orders").await, "100000");
    // A multi-statement query stops at the first error.
    let e = c
        .simple_query("SELECT 1; SELECT * FROM nope; SELECT 2")
        .await
        .unwrap_err();
    assert_eq!(crate::common::sqlstate(&e).as_deref(), Some("42P01"));
    assert_eq!(value(&c, "SELECT 40 + 2").await, "42");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_result_streams_in_batches() {
    let h = embedded();
    let c = h.connect().await;
    // ~300k rows: counted as they arrive.
    use futures_util::TryStreamExt;
    let stream = c
        .query_raw(
            "SELECT order_id, product_id, quantity FROM order_items",
            Vec::<i64>::new(),
        )
        .await
        .unwrap();
    futures_util::pin_mut!(stream);
    let mut n = 0u64;
    while let Some(row) = stream.try_next().await.unwrap() {
        let q: i32 = row.get(2);
        assert!(q > 0);
        n += 1;
    }
    let expected: u64 = value(&c, "SELECT count(*) FROM order_items")
        .await
        .parse()
        .unwrap();
    assert_eq!(n, expected);
    assert!(n >= 100_000);
}
