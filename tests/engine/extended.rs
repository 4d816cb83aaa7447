//! The engine in the extended protocol (what tokio-postgres, JDBC and most
//! drivers send): parameters, binary results, prepared statements reused,
//! and what the engine declines relayed.

use tokio_postgres::types::ToSql;

use crate::accelerate::ITEMS;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_with_parameters_run_in_the_engine() {
    let (pg, h) = start(ITEMS, "");
    let direct = pg.connect().await;
    let c = h.connect().await;
    exec(&c, "SET helios.engine = on").await;
    let sql = "SELECT (id % 7)::int4 AS k, count(*), max(name), min(id) FROM items \
               WHERE id > $1 AND name LIKE $2 GROUP BY 1 ORDER BY 1";
    let stmt = c.prepare(sql).await.unwrap();
    for (low, pattern) in [(10i32, "item 1%"), (150, "item%"), (1000, "%")] {
        let before = engine_log(&h);
        let params: [&(dyn ToSql + Sync); 2] = [&low, &pattern];
        let got: Vec<(i32, i64, String, i32)> = c
            .query(&stmt, &params)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        assert_eq!(ran_since(&h, &before, sql), Ran::Federated);
        let want: Vec<(i32, i64, String, i32)> = direct
            .query(sql, &params)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        assert_eq!(got, want, "id > {low}, name LIKE {pattern}");
    }
    // Binary float8 and bool results, no parameters.
    let sql = "SELECT count(*) > 100, avg(id::float8) FROM items";
    let row = c.query_one(sql, &[]).await.unwrap();
    let (many, avg): (bool, f64) = (row.get(0), row.get(1));
    assert!(many);
    assert_eq!(avg, 100.5);
    // A statement the engine declines goes to PostgreSQL, with its answer.
    let before = engine_log(&h);
    let sql = "SELECT to_char(min(id), 'FM000') FROM items WHERE id > $1";
    let row = c.query_one(sql, &[&5i32]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "006");
    assert_eq!(ran_since(&h, &before, sql), Ran::Declined);
    // Errors keep their SQLSTATEs, and the session goes on.
    let e = c
        .query("SELECT nope FROM items WHERE id = $1", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(crate::common::sqlstate(&e).as_deref(), Some("42703"));
    let n: i64 = c
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 200);
    // Inside a transaction the statement is relayed (and sees its own writes).
    exec(&c, "BEGIN").await;
    exec(&c, "INSERT INTO items VALUES (1000, 'new', 1)").await;
    let before = engine_log(&h);
    let n: i64 = c
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 201);
    assert_eq!(ran_since(&h, &before, "in a transaction"), Ran::Relayed);
    exec(&c, "ROLLBACK").await;
}

/// Statements the engine answers count in SHOW HELIOS QUERIES (the
/// advisor's workload view), in both protocols.
#[tokio::test(flavor = "multi_thread")]
async fn engine_statements_count_in_show_helios_queries() {
    let (_pg, h) = start(ITEMS, "");
    let c = h.connect().await;
    for id in [10, 20, 30] {
        let sql = format!("/*+ engine */ SELECT count(*) FROM items WHERE id > {id}");
        assert_eq!(run(&h, &c, &sql).await.0, Ran::Federated);
    }
    exec(&c, "SET helios.engine = on").await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM items WHERE id < $1", &[&50i32])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 49);
    let q = rows(&c, "SHOW HELIOS QUERIES").await;
    let calls = |needle: &str| {
        q.iter()
            .find(|r| r[1].as_deref().is_some_and(|t| t.contains(needle)))
            .map(|r| (r[2].clone().unwrap(), r[6].clone().unwrap()))
    };
    assert_eq!(
        calls("WHERE id >"),
        Some(("3".to_string(), "3".to_string())),
        "{q:?}"
    );
    assert_eq!(
        calls("WHERE id <"),
        Some(("1".to_string(), "1".to_string())),
        "{q:?}"
    );
}
