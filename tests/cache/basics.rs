//! Hits, identical bytes, modes, hints, rules and the cache's commands.

use crate::common::raw::{self, RawConn};
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_read_is_answered_from_the_cache() {
    let (pg, h) = start(AUTO);
    let c = h.connect().await;
    let q = "SELECT name FROM items WHERE id = 3";
    assert_eq!(one(&c, q).await, "item 3");
    change_behind_helios(&pg, "UPDATE items SET name = 'changed' WHERE id = 3");
    assert_eq!(one(&c, q).await, "item 3", "served from the cache");
    // Another session with the same role and settings shares the entry.
    let c2 = h.connect().await;
    assert_eq!(one(&c2, q).await, "item 3");
    let stats = caches(&c).await;
    let row = stats.iter().find(|r| r.0 == q).expect("listed");
    assert_eq!((row.1, row.2, row.3), (2, 1, 1), "{stats:?}");
    // A different literal is a different entry.
    assert_eq!(
        one(&c, "SELECT name FROM items WHERE id = 4").await,
        "item 4"
    );
    // HELIOS CACHE CLEAR drops it: the upstream's value shows.
    c.simple_query("HELIOS CACHE CLEAR").await.unwrap();
    assert_eq!(one(&c, q).await, "changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hit_sends_the_bytes_a_miss_sent() {
    let (pg, h) = start(AUTO);
    let q = "SELECT id, name, price, NULL::text AS nothing FROM items WHERE id <= 5 ORDER BY id";
    let ask = |port| {
        let (mut conn, _) =
            RawConn::connect(port, &[("user", "postgres"), ("database", "postgres")]);
        conn.send(&raw::query(q));
        let first = conn.until_ready();
        conn.send(&raw::query(q));
        let second = conn.until_ready();
        (first, second)
    };
    let (miss, hit) = ask(h.port);
    let (direct, _) = ask(pg.port);
    assert_eq!(miss, hit);
    assert_eq!(miss, direct, "and the same as PostgreSQL's own");
    assert_eq!(miss.iter().filter(|m| m.tag == b'D').count(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_commands_work_through_prepared_statements_too() {
    // Drivers such as JDBC send every statement with Parse/Bind/Execute.
    let (pg, h) = start("");
    let c = h.connect().await;
    let created = c
        .query_one(
            "CREATE HELIOS CACHE TTL 1m FROM SELECT name FROM items WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    let id: String = created.get("id");
    assert!(id.starts_with("q_"), "{id}");
    // Explicit mode (the default): the rule makes the same shape cached.
    let q = "SELECT name FROM items WHERE id = 5";
    assert_eq!(one(&c, q).await, "item 5");
    change_behind_helios(&pg, "UPDATE items SET name = 'five' WHERE id = 5");
    assert_eq!(one(&c, q).await, "item 5", "cached by the rule");
    let listed = c.query("SHOW HELIOS CACHES", &[]).await.unwrap();
    let row = listed
        .iter()
        .find(|r| r.get::<_, String>("id") == id)
        .expect("the rule is listed");
    assert!(row.get::<_, bool>("rule"));
    assert_eq!(row.get::<_, i64>("hits"), 1);
    assert_eq!(row.get::<_, String>("ttl"), "1m");
    // Other shapes are not cached in explicit mode.
    let other = "SELECT price FROM items WHERE id = 6";
    assert_eq!(one(&c, other).await, "9.00");
    change_behind_helios(&pg, "UPDATE items SET price = 1 WHERE id = 6");
    assert_eq!(one(&c, other).await, "1.00");
    // Dropping the rule drops its entries.
    c.execute(&format!("DROP HELIOS CACHE {id}"), &[])
        .await
        .unwrap();
    assert_eq!(one(&c, q).await, "five");
    let e = c
        .execute("DROP HELIOS CACHE q_0000000000000001", &[])
        .await
        .unwrap_err();
    assert_eq!(crate::common::sqlstate(&e).as_deref(), Some("42704"));
}
