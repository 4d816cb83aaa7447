//! Sessions on the embedded database: settings, transactions, portals,
//! prepared statements — as drivers use them.

use crate::{embedded, rows, sqlstate_of, value};

#[tokio::test(flavor = "multi_thread")]
async fn set_show_reset_as_drivers_send_them() {
    let h = embedded();
    let c = h.connect().await;
    // JDBC's startup statements, in the extended protocol.
    c.execute("SET extra_float_digits = 3", &[]).await.unwrap();
    c.execute("SET application_name = 'PostgreSQL JDBC Driver'", &[])
        .await
        .unwrap();
    assert_eq!(value(&c, "SHOW extra_float_digits").await, "3");
    assert_eq!(
        value(&c, "SHOW application_name").await,
        "PostgreSQL JDBC Driver"
    );
    assert_eq!(value(&c, "SHOW TimeZone").await, "UTC");
    assert_eq!(value(&c, "SHOW server_version").await, "15.0");
    assert_eq!(
        value(&c, "SHOW TRANSACTION ISOLATION LEVEL").await,
        "read committed"
    );
    c.simple_query("RESET extra_float_digits").await.unwrap();
    assert_eq!(value(&c, "SHOW extra_float_digits").await, "1");
    assert_eq!(
        sqlstate_of(&c, "SET extra_float_digits = 99").await,
        "22023"
    );
    assert_eq!(sqlstate_of(&c, "SHOW no_such_setting").await, "42704");
    assert!(rows(&c, "SHOW ALL").await.len() > 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_and_the_aborted_state() {
    let h = embedded();
    let mut c = h.connect().await;
    {
        let tx = c.transaction().await.unwrap();
        let n: i64 = tx
            .query_one("SELECT count(*) FROM regions", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 5);
        tx.commit().await.unwrap();
    }
    c.simple_query("BEGIN").await.unwrap();
    assert_eq!(sqlstate_of(&c, "SELECT * FROM nope").await, "42P01");
    // Until the transaction ends, everything is refused.
    assert_eq!(sqlstate_of(&c, "SELECT 1").await, "25P02");
    c.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(value(&c, "SELECT 1").await, "1");
    // SET LOCAL lasts until the end of the transaction.
    c.simple_query("BEGIN; SET LOCAL extra_float_digits = 0")
        .await
        .unwrap();
    assert_eq!(value(&c, "SHOW extra_float_digits").await, "0");
    c.simple_query("COMMIT").await.unwrap();
    assert_eq!(value(&c, "SHOW extra_float_digits").await, "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn portals_with_a_row_limit_and_prepared_statements() {
    let h = embedded();
    let mut c = h.connect().await;
    let tx = c.transaction().await.unwrap();
    let stmt = tx
        .prepare("SELECT id FROM orders WHERE id <= $1 ORDER BY id")
        .await
        .unwrap();
    let portal = tx.bind(&stmt, &[&25i32]).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let page = tx.query_portal(&portal, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|r| r.get::<_, i32>(0)));
    }
    assert_eq!(seen, (1..=25).collect::<Vec<i32>>());
    // The statement is reused with other values.
    let again = tx.query(&stmt, &[&3i32]).await.unwrap();
    assert_eq!(again.len(), 3);
    tx.commit().await.unwrap();
    // Describe of a statement: parameter and result types.
    let s = c
        .prepare("SELECT name, price FROM products WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(s.params(), &[tokio_postgres::types::Type::INT4]);
    assert_eq!(s.columns()[0].name(), "name");
    assert_eq!(
        s.columns()[1].type_(),
        &tokio_postgres::types::Type::NUMERIC
    );
}
