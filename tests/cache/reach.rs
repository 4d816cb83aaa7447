//! Writes that do not name the table they change, or that Helios cannot
//! read well: foreign-key cascades, triggers, functions, EXPLAIN ANALYZE,
//! text the parser does not know, prepared statements renamed behind
//! Helios's back, and clients that leave before their write is answered.
//!
//! As in `invalidation`, each test first proves the entry is cached.

use std::time::Duration;

use crate::common::raw::{self, RawConn};
use crate::support::*;

const Q3: &str = "SELECT name FROM items WHERE id = 3";
const COUNT: &str = "SELECT count(*) FROM items";

/// A fresh Helios has learned nothing about the catalog: the first write
/// of a session, inside a transaction, is still recorded.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_write_in_a_transaction_of_a_fresh_helios_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let reader = h.connect().await;
    assert_cached(&pg, &reader, COUNT, "DELETE FROM items WHERE id = 20").await;
    // A new connection; each statement its own Query.
    let writer = h.connect().await;
    exec(&writer, "BEGIN").await;
    exec(&writer, "INSERT INTO items VALUES (40, 'x', 1)").await;
    exec(&writer, "COMMIT").await;
    assert_eq!(one(&reader, COUNT).await, "20");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cascading_delete_retires_reads_of_the_referencing_table() {
    let (pg, h) = start_with(
        "CREATE TABLE parts (id int PRIMARY KEY, item int REFERENCES items ON DELETE CASCADE); \
         INSERT INTO parts SELECT g, g FROM generate_series(1, 10) g;",
        AUTO,
    );
    let (reader, writer) = (h.connect().await, h.connect().await);
    let q = "SELECT count(*) FROM parts";
    assert_eq!(
        assert_cached(&pg, &reader, q, "DELETE FROM parts WHERE id = 10").await,
        "10"
    );
    exec(&writer, "DELETE FROM items WHERE id <= 3").await;
    assert_eq!(one(&reader, q).await, "6");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_writing_another_table_retires_its_reads() {
    let (pg, h) = start_with(
        "CREATE TABLE audit (n int); \
         CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN INSERT INTO audit VALUES (1); RETURN NULL; END $$; \
         CREATE TRIGGER t AFTER UPDATE ON items FOR EACH STATEMENT EXECUTE FUNCTION log_it();",
        AUTO,
    );
    let (reader, writer) = (h.connect().await, h.connect().await);
    let q = "SELECT count(*) FROM audit";
    assert_eq!(
        assert_cached(&pg, &reader, q, "INSERT INTO audit VALUES (0)").await,
        "0"
    );
    exec(&writer, "UPDATE items SET price = 1 WHERE id = 1").await;
    assert_eq!(one(&reader, q).await, "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writing_function_called_in_a_transaction_retires_everything() {
    let (pg, h) = start_with(
        "CREATE FUNCTION rename3(t text) RETURNS int LANGUAGE sql AS \
           $$ UPDATE items SET name = t WHERE id = 3 RETURNING id $$;",
        AUTO,
    );
    let (reader, writer) = (h.connect().await, h.connect().await);
    assert_cached(&pg, &reader, Q3, "UPDATE items SET price = 0 WHERE id = 3").await;
    exec(&writer, "BEGIN").await;
    assert_eq!(one(&writer, "SELECT rename3('by function')").await, "3");
    exec(&writer, "COMMIT").await;
    assert_eq!(one(&reader, Q3).await, "by function");
    // Outside a transaction too, and in the extended protocol.
    assert_cached(&pg, &reader, Q3, "UPDATE items SET price = 1 WHERE id = 3").await;
    let row = writer
        .query_one("SELECT rename3($1)", &[&"prepared call"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    assert_eq!(one(&reader, Q3).await, "prepared call");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_analyze_of_a_write_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    assert_cached(&pg, &reader, COUNT, "DELETE FROM items WHERE id = 20").await;
    exec(
        &writer,
        "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM items WHERE id <= 5",
    )
    .await;
    assert_eq!(one(&reader, COUNT).await, "14");
}

/// `FOR NO KEY UPDATE SKIP LOCKED` is beyond Helios's SQL parser: a string
/// holding it is taken to write anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_beside_a_statement_helios_cannot_parse_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    assert_cached(&pg, &reader, Q3, "UPDATE items SET price = 0 WHERE id = 3").await;
    exec(
        &writer,
        "BEGIN; UPDATE items SET name = 'queued' WHERE id = 3; \
         SELECT id FROM items WHERE id = 4 FOR NO KEY UPDATE SKIP LOCKED; COMMIT",
    )
    .await;
    assert_eq!(one(&reader, Q3).await, "queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn views_reading_the_clock_are_never_cached() {
    let (pg, h) = start_with(
        "CREATE TABLE due (id int, d date); INSERT INTO due VALUES (1, '2000-01-01'); \
         CREATE VIEW overdue AS SELECT id FROM due WHERE d < CURRENT_DATE; \
         CREATE VIEW stamped AS SELECT id, LOCALTIMESTAMP AS at FROM due;",
        AUTO,
    );
    let c = h.connect().await;
    for q in [
        "SELECT count(*) FROM overdue",
        "SELECT count(*) FROM stamped",
    ] {
        assert_eq!(one(&c, q).await, "1");
        pg.psql("INSERT INTO due VALUES (2, '2001-01-01')");
        assert_eq!(one(&c, q).await, "2", "{q} was cached");
        pg.psql("DELETE FROM due WHERE id = 2");
    }
}

/// SQL `DEALLOCATE` and `PREPARE` reuse a name the protocol prepared: the
/// result of the new statement must never be stored as the old one's.
#[tokio::test(flavor = "multi_thread")]
async fn a_prepared_name_reused_by_sql_never_poisons_the_cache() {
    let (pg, h) = start_with(
        "CREATE TABLE other (id int, name text); INSERT INTO other VALUES (3, 'from other');",
        AUTO,
    );
    let (mut conn, _) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    let mut m = raw::parse("s1", "SELECT name FROM items WHERE id = $1", &[23]);
    m.extend(raw::sync());
    conn.send(&m);
    assert_eq!(
        conn.until_ready().iter().map(|m| m.tag).collect::<Vec<_>>(),
        b"1Z"
    );
    conn.send(&raw::query(
        "DEALLOCATE s1; PREPARE s1(int) AS SELECT name FROM other WHERE id = $1",
    ));
    conn.until_ready();
    let bind_s1 = || {
        let mut m = raw::bind("", "s1", &[Some(b"3")], &[0], &[]);
        m.extend(raw::execute("", 0));
        m.extend(raw::sync());
        m
    };
    for _ in 0..2 {
        conn.send(&bind_s1());
        let got = conn.until_ready();
        assert!(
            got.iter()
                .any(|m| m.tag == b'D' && String::from_utf8_lossy(&m.body).contains("from other")),
            "{got:?}"
        );
    }
    // The text Helios first saw under that name, bound the same way, reads
    // items: nothing was stored under it.
    assert_eq!(items_3_unnamed(h.port), "item 3");
    drop(pg);
}

/// `SELECT name FROM items WHERE id = $1` bound to '3' exactly as the
/// tests above bind their statements: the same cache key.
fn items_3_unnamed(port: u16) -> String {
    let (mut conn, _) = RawConn::connect(port, &[("user", "postgres"), ("database", "postgres")]);
    let mut m = raw::parse("", "SELECT name FROM items WHERE id = $1", &[23]);
    m.extend(raw::bind("", "", &[Some(b"3")], &[0], &[]));
    m.extend(raw::execute("", 0));
    m.extend(raw::sync());
    conn.send(&m);
    let got = conn.until_ready();
    let row = got.iter().find(|m| m.tag == b'D').expect("a row");
    String::from_utf8_lossy(&row.body[6..]).into_owned()
}

/// A Parse of a name the upstream already holds fails there; the old
/// statement keeps running, and Helios must not believe the new text.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_reparse_of_a_name_never_poisons_the_cache() {
    let (_pg, h) = start_with(
        "CREATE TABLE other (id int, name text); INSERT INTO other VALUES (3, 'from other');",
        AUTO,
    );
    let (mut conn, _) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    let run = |sql: &str| {
        let mut m = raw::parse("s1", sql, &[23]);
        m.extend(raw::sync());
        m.extend(raw::bind("", "s1", &[Some(b"3")], &[0], &[]));
        m.extend(raw::execute("", 0));
        m.extend(raw::sync());
        m
    };
    conn.send(&run("SELECT name FROM other WHERE id = $1"));
    conn.until_ready();
    let first = conn.until_ready();
    assert!(
        String::from_utf8_lossy(&first[1].body).contains("from other"),
        "{first:?}"
    );
    // Same name, other text: the Parse fails (42P05), s1 still reads other.
    conn.send(&run("SELECT name FROM items WHERE id = $1"));
    let parse = conn.until_ready();
    assert_eq!(parse[0].sqlstate().as_deref(), Some("42P05"), "{parse:?}");
    let second = conn.until_ready();
    assert!(
        String::from_utf8_lossy(&second[1].body).contains("from other"),
        "{second:?}"
    );
    // Nothing was stored under the items text.
    assert_eq!(items_3_unnamed(h.port), "item 3");
}

/// The client sends a write and goes away without waiting: the upstream
/// commits it, and the entry must not outlive that.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_client_left_early_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let reader = h.connect().await;
    assert_cached(&pg, &reader, Q3, "UPDATE items SET price = 0 WHERE id = 3").await;
    {
        let (mut conn, _) =
            RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
        conn.send(&raw::query(
            "UPDATE items SET name = 'left early' WHERE id = 3",
        ));
        // Gone before the answer.
    }
    // The upstream commits it in its own time.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pg.psql("SELECT name FROM items WHERE id = 3").trim() != "left early" {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(one(&reader, Q3).await, "left early");
}
