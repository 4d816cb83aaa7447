//! Writes through Helios, DDL, views and partitions, TTL, notify mode, and a
//! writer racing 50 readers.
//!
//! Every test first proves the entry is cached (a behind-the-back change
//! does not show), so "the new value shows" can only mean it was retired.

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::SinkExt;

use crate::common::Helios;
use crate::support::*;

const Q3: &str = "SELECT name FROM items WHERE id = 3";
const COUNT: &str = "SELECT count(*) FROM items";

#[tokio::test(flavor = "multi_thread")]
async fn an_update_from_another_session_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    let before = assert_cached(
        &pg,
        &reader,
        Q3,
        "UPDATE items SET name = 'behind' WHERE id = 3",
    )
    .await;
    assert_eq!(before, "item 3");
    exec(&writer, "UPDATE items SET name = 'through' WHERE id = 3").await;
    assert_eq!(one(&reader, Q3).await, "through");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_insert_from_another_session_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    let behind = "INSERT INTO items VALUES (21, 'behind', 1)";
    assert_eq!(assert_cached(&pg, &reader, COUNT, behind).await, "20");
    exec(&writer, "INSERT INTO items VALUES (22, 'through', 1)").await;
    assert_eq!(one(&reader, COUNT).await, "22");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_from_another_session_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    let behind = "DELETE FROM items WHERE id = 20";
    assert_eq!(assert_cached(&pg, &reader, COUNT, behind).await, "20");
    exec(&writer, "DELETE FROM items WHERE id <= 5").await;
    assert_eq!(one(&reader, COUNT).await, "14");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncate_from_another_session_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    let behind = "DELETE FROM items WHERE id = 20";
    assert_eq!(assert_cached(&pg, &reader, COUNT, behind).await, "20");
    exec(&writer, "TRUNCATE items").await;
    assert_eq!(one(&reader, COUNT).await, "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_from_another_session_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    let behind = "DELETE FROM items WHERE id = 20";
    assert_eq!(assert_cached(&pg, &reader, COUNT, behind).await, "20");
    let rows = within("COPY FROM STDIN", async {
        let sink = writer
            .copy_in::<_, Cursor<Vec<u8>>>("COPY items (id, name, price) FROM STDIN")
            .await
            .unwrap();
        let mut sink = std::pin::pin!(sink);
        sink.send(Cursor::new(b"30\tcopied\t1\n31\tcopied\t2\n".to_vec()))
            .await
            .unwrap();
        sink.finish().await.unwrap()
    })
    .await;
    assert_eq!(rows, 2);
    assert_eq!(one(&reader, COUNT).await, "21");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_from_another_session_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    assert_cached(
        &pg,
        &reader,
        Q3,
        "UPDATE items SET name = 'behind' WHERE id = 3",
    )
    .await;
    exec(
        &writer,
        "MERGE INTO items i USING (VALUES (3, 'merged')) s(id, name) ON i.id = s.id \
         WHEN MATCHED THEN UPDATE SET name = s.name",
    )
    .await;
    assert_eq!(one(&reader, Q3).await, "merged");
}

/// A write that reads as a SELECT: it must run every time, and retire.
#[tokio::test(flavor = "multi_thread")]
async fn a_writing_cte_is_never_cached_and_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    assert_cached(
        &pg,
        &reader,
        Q3,
        "UPDATE items SET name = 'behind' WHERE id = 3",
    )
    .await;
    let bump = "WITH u AS (UPDATE items SET price = price + 1 WHERE id = 3 RETURNING price) \
                SELECT price FROM u";
    assert_eq!(one(&writer, bump).await, "5.50");
    assert_eq!(one(&writer, bump).await, "6.50");
    assert_eq!(one(&reader, Q3).await, "behind");
    assert_eq!(
        one(&reader, "SELECT price FROM items WHERE id = 3").await,
        "6.50"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prepared_write_from_another_session_retires_the_entry() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    assert_cached(
        &pg,
        &reader,
        Q3,
        "UPDATE items SET name = 'behind' WHERE id = 3",
    )
    .await;
    let n = writer
        .execute(
            "UPDATE items SET name = $1 WHERE id = $2",
            &[&"prepared", &3i32],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(one(&reader, Q3).await, "prepared");
}

/// The writer names the table its own way; it is still the same table.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_naming_the_table_differently_retires_the_entry() {
    let (pg, h) = start_with(
        "CREATE SCHEMA s; CREATE TABLE s.t (id int, v text); INSERT INTO s.t VALUES (1, 'old');",
        AUTO,
    );
    let (reader, writer) = (h.connect().await, h.connect().await);
    exec(&reader, "SET search_path = s").await;
    let q = "SELECT v FROM t WHERE id = 1";
    assert_cached(&pg, &reader, q, "UPDATE s.t SET v = 'behind'").await;
    exec(&writer, "UPDATE s.t SET v = 'qualified'").await;
    assert_eq!(one(&reader, q).await, "qualified");
    assert_cached(&pg, &reader, q, "UPDATE s.t SET v = 'behind'").await;
    exec(
        &writer,
        "SET search_path = s, public; UPDATE \"t\" SET v = 'by path'",
    )
    .await;
    assert_eq!(one(&reader, q).await, "by path");
}

/// Several statements in one Query run in one implicit transaction: a
/// read after a write in it must see the write, not a cached result.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_after_a_write_in_the_same_query_string_sees_the_write() {
    let (pg, h) = start(AUTO);
    let c = h.connect().await;
    assert_cached(&pg, &c, Q3, "UPDATE items SET price = 0 WHERE id = 3").await;
    let got = column(
        &c,
        "UPDATE items SET name = 'same string' WHERE id = 3; SELECT name FROM items WHERE id = 3",
    )
    .await;
    assert_eq!(got, vec![Some("same string".to_string())]);
    assert_eq!(one(&c, Q3).await, "same string");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_in_a_transaction_retires_the_entry_when_it_commits() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    assert_cached(
        &pg,
        &reader,
        Q3,
        "UPDATE items SET name = 'behind' WHERE id = 3",
    )
    .await;
    exec(
        &writer,
        "BEGIN; UPDATE items SET name = 'committed' WHERE id = 3",
    )
    .await;
    // Uncommitted: the cached value or the upstream's committed one, never
    // the writer's. Reading now may also refill the entry with the old
    // value, which the COMMIT must then retire.
    let during = one(&reader, Q3).await;
    assert!(during == "item 3" || during == "behind", "{during}");
    let during = one(&reader, Q3).await;
    assert!(during == "item 3" || during == "behind", "{during}");
    exec(&writer, "COMMIT").await;
    assert_eq!(one(&reader, Q3).await, "committed");
    assert_eq!(one(&writer, Q3).await, "committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_write_leaves_the_value_as_it_was() {
    let (_pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    assert_eq!(one(&reader, Q3).await, "item 3");
    assert_eq!(one(&reader, Q3).await, "item 3");
    assert!(hits(&reader, Q3).await >= 1, "{:?}", caches(&reader).await);
    exec(
        &writer,
        "BEGIN; UPDATE items SET name = 'rolled back' WHERE id = 3",
    )
    .await;
    assert_eq!(one(&reader, Q3).await, "item 3");
    exec(&writer, "ROLLBACK").await;
    assert_eq!(one(&reader, Q3).await, "item 3");
    assert_eq!(one(&writer, Q3).await, "item 3");
    // The session that rolled back can still write, and that write counts.
    exec(&writer, "UPDATE items SET name = 'after' WHERE id = 3").await;
    assert_eq!(one(&reader, Q3).await, "after");
}

#[tokio::test(flavor = "multi_thread")]
async fn alter_table_retires_what_read_the_table() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    let q = "SELECT * FROM items WHERE id = 3";
    let behind = "UPDATE items SET name = 'behind' WHERE id = 3";
    assert_cached(&pg, &reader, q, behind).await;
    exec(&writer, "ALTER TABLE items ADD COLUMN extra int DEFAULT 7").await;
    let rows = reader.simple_query(q).await.unwrap();
    let row = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row.columns().len(), 4, "the new column shows");
    assert_eq!(
        (row.get("name"), row.get("extra")),
        (Some("behind"), Some("7"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_retires_everything_cached_for_the_database() {
    let (pg, h) = start_with(
        "CREATE TABLE other (id int, v text); INSERT INTO other VALUES (1, 'old');",
        AUTO,
    );
    let (reader, writer) = (h.connect().await, h.connect().await);
    let q = "SELECT v FROM other WHERE id = 1";
    assert_cached(&pg, &reader, q, "UPDATE other SET v = 'behind'").await;
    // DDL on another table: Helios cannot tell what it affects (functions,
    // views, defaults), so nothing cached survives it.
    exec(&writer, "CREATE INDEX ON items (name)").await;
    assert_eq!(one(&reader, q).await, "behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_and_recreating_a_table_retires_its_entries() {
    let (pg, h) = start(AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    let q = "SELECT name FROM items WHERE id = 3";
    assert_cached(
        &pg,
        &reader,
        q,
        "UPDATE items SET name = 'behind' WHERE id = 3",
    )
    .await;
    exec(
        &writer,
        "DROP TABLE items; CREATE TABLE items (id int, name text); \
         INSERT INTO items VALUES (3, 'recreated')",
    )
    .await;
    assert_eq!(one(&reader, q).await, "recreated");
    // The new table is cached and retired like the old one.
    assert_cached(&pg, &reader, q, "UPDATE items SET name = 'behind again'").await;
    exec(&writer, "UPDATE items SET name = 'new table' WHERE id = 3").await;
    assert_eq!(one(&reader, q).await, "new table");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_to_a_base_table_retires_reads_of_its_view() {
    let (pg, h) = start_with(
        "CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10",
        AUTO,
    );
    let (reader, writer) = (h.connect().await, h.connect().await);
    let q = "SELECT name FROM cheap WHERE id = 3";
    assert_cached(
        &pg,
        &reader,
        q,
        "UPDATE items SET name = 'behind' WHERE id = 3",
    )
    .await;
    exec(&writer, "UPDATE items SET name = 'through' WHERE id = 3").await;
    assert_eq!(one(&reader, q).await, "through");
    // And through the view itself (an auto-updatable view writes items).
    exec(&writer, "UPDATE cheap SET name = 'via view' WHERE id = 3").await;
    assert_eq!(one(&reader, Q3).await, "via view");
    assert_eq!(one(&reader, q).await, "via view");
}

const PARTITIONED: &str = "CREATE TABLE m (region text, v int) PARTITION BY LIST (region); \
     CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu'); \
     CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us'); \
     INSERT INTO m VALUES ('eu', 1), ('eu', 2), ('us', 10);";

#[tokio::test(flavor = "multi_thread")]
async fn a_write_into_a_partition_retires_reads_of_the_parent() {
    let (pg, h) = start_with(PARTITIONED, AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    let q = "SELECT sum(v) FROM m";
    let behind = "UPDATE m_us SET v = 100";
    assert_eq!(assert_cached(&pg, &reader, q, behind).await, "13");
    exec(&writer, "UPDATE m_eu SET v = v + 1").await;
    assert_eq!(one(&reader, q).await, "105");
    assert_cached(&pg, &reader, q, "UPDATE m_us SET v = 200").await;
    exec(&writer, "INSERT INTO m_us VALUES ('us', 1000)").await;
    assert_eq!(one(&reader, q).await, "1205");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_through_the_parent_retires_reads_of_a_partition() {
    let (pg, h) = start_with(PARTITIONED, AUTO);
    let (reader, writer) = (h.connect().await, h.connect().await);
    let q = "SELECT sum(v) FROM m_eu";
    let behind = "UPDATE m_eu SET v = 5 WHERE v = 2";
    assert_eq!(assert_cached(&pg, &reader, q, behind).await, "3");
    exec(&writer, "UPDATE m SET v = v * 10 WHERE region = 'eu'").await;
    assert_eq!(one(&reader, q).await, "60");
    assert_cached(&pg, &reader, q, "UPDATE m_eu SET v = 0").await;
    // Routed by the parent into this partition.
    exec(&writer, "INSERT INTO m VALUES ('eu', 7)").await;
    assert_eq!(one(&reader, q).await, "7");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_expires_after_its_ttl() {
    let (pg, h) = start("[cache]\nmode = \"auto\"\nttl = \"1s\"\n");
    let c = h.connect().await;
    assert_cached(&pg, &c, Q3, "UPDATE items SET name = 'behind' WHERE id = 3").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(one(&c, Q3).await, "behind");
}

// ---------------------------------------------------------------------------
// invalidation = "notify": writes made directly on the upstream
// ---------------------------------------------------------------------------

/// How long a direct write may take to reach Helios.
const NOTIFY_DELAY: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread")]
async fn notify_a_direct_update_shows_within_100ms() {
    let (pg, h) = start_notify("");
    let c = h.connect().await;
    wait_cached(&c, Q3).await;
    pg.psql("UPDATE items SET name = 'direct' WHERE id = 3");
    tokio::time::sleep(NOTIFY_DELAY).await;
    assert_eq!(one(&c, Q3).await, "direct");
    // Cached again afterwards, and the next direct write shows too.
    wait_cached(&c, Q3).await;
    pg.psql("INSERT INTO items VALUES (99, 'x', 1); UPDATE items SET name = 'again' WHERE id = 3");
    tokio::time::sleep(NOTIFY_DELAY).await;
    assert_eq!(one(&c, Q3).await, "again");
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_direct_ddl_shows_within_100ms() {
    let (pg, h) = start_notify("");
    let c = h.connect().await;
    let q = "SELECT * FROM items WHERE id = 3";
    wait_cached(&c, q).await;
    pg.psql("ALTER TABLE items ADD COLUMN extra int DEFAULT 7");
    tokio::time::sleep(NOTIFY_DELAY).await;
    let rows = c.simple_query(q).await.unwrap();
    let row = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row.get("extra"), Some("7"));
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_a_direct_write_into_a_partition_retires_the_parent() {
    let (pg, h) = start_notify(PARTITIONED);
    let c = h.connect().await;
    let q = "SELECT sum(v) FROM m";
    wait_cached(&c, q).await;
    assert_eq!(one(&c, q).await, "13");
    // The trigger on the partition names only the partition.
    pg.psql("UPDATE m_eu SET v = 100 WHERE v = 1");
    tokio::time::sleep(NOTIFY_DELAY).await;
    assert_eq!(one(&c, q).await, "112");
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_a_direct_write_retires_reads_of_a_view() {
    let (pg, h) = start_notify("CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10");
    let c = h.connect().await;
    let q = "SELECT name FROM cheap WHERE id = 3";
    wait_cached(&c, q).await;
    pg.psql("UPDATE items SET name = 'direct' WHERE id = 3");
    tokio::time::sleep(NOTIFY_DELAY).await;
    assert_eq!(one(&c, q).await, "direct");
}

fn listener_pids(pg: &crate::common::PgServer) -> Vec<String> {
    pg.psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'helios-invalidation'")
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_a_killed_listener_never_leaves_a_stale_read() {
    let (pg, h) = start_notify("");
    let c = h.connect().await;
    wait_cached(&c, Q3).await;
    let old = listener_pids(&pg);
    assert_eq!(old.len(), 1, "one listener for the database: {old:?}");
    let killed = pg.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE application_name = 'helios-invalidation'",
    );
    assert_eq!(killed.trim(), "t");
    // Written while nobody listens: no notification will ever come.
    pg.psql("UPDATE items SET name = 'unheard' WHERE id = 3");
    tokio::time::sleep(NOTIFY_DELAY).await;
    assert_eq!(one(&c, Q3).await, "unheard");
    assert_eq!(one(&c, Q3).await, "unheard");
    // Back: a new listener, caching resumes, and notifications work again.
    within("the listener to reconnect", async {
        while listener_pids(&pg).iter().all(|p| old.contains(p)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(one(&c, Q3).await, "unheard");
    let before = hits(&c, Q3).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while hits(&c, Q3).await == before {
        assert!(std::time::Instant::now() < deadline, "never cached again");
        assert_eq!(one(&c, Q3).await, "unheard");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pg.psql("UPDATE items SET name = 'heard' WHERE id = 3");
    tokio::time::sleep(NOTIFY_DELAY).await;
    assert_eq!(one(&c, Q3).await, "heard");
}

// ---------------------------------------------------------------------------
// A writer racing readers
// ---------------------------------------------------------------------------

const READERS: usize = 50;
const WRITES: i64 = 150;

/// After the writer's COMMIT returns, no read that starts later may see an
/// older value: not from the cache, not from a fill that was under way
/// during the commit, not from a coalesced miss that started before it.
#[tokio::test(flavor = "multi_thread")]
async fn readers_never_see_a_value_older_than_the_last_commit() {
    let (_pg, h) = start_with(
        "CREATE TABLE counter (id int PRIMARY KEY, v bigint); INSERT INTO counter VALUES (1, 0);",
        // One upstream connection per client: 50 readers and the writer.
        "[pool]\nmax_size = 60\n[cache]\nmode = \"auto\"\n",
    );
    let h = Arc::new(h);
    let committed = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let stale = Arc::new(Mutex::new(Vec::new()));
    let q = "SELECT v FROM counter WHERE id = 1";

    let mut readers = Vec::new();
    for _ in 0..READERS {
        let (h, committed, done, reads, stale): (Arc<Helios>, _, _, _, _) = (
            h.clone(),
            committed.clone(),
            done.clone(),
            reads.clone(),
            stale.clone(),
        );
        readers.push(tokio::spawn(async move {
            let c = h.connect().await;
            while !done.load(Ordering::SeqCst) {
                let floor = committed.load(Ordering::SeqCst);
                let v: i64 = one(&c, q).await.parse().unwrap();
                reads.fetch_add(1, Ordering::Relaxed);
                if v < floor || v > WRITES {
                    stale.lock().unwrap().push((floor, v));
                }
            }
        }));
    }

    let writer = h.connect().await;
    within("the writer", async {
        for i in 1..=WRITES {
            // Both ways a write commits: on its own, and by COMMIT.
            if i % 2 == 0 {
                exec(&writer, "UPDATE counter SET v = v + 1 WHERE id = 1").await;
            } else {
                exec(&writer, "BEGIN; UPDATE counter SET v = v + 1 WHERE id = 1").await;
                exec(&writer, "COMMIT").await;
            }
            committed.store(i, Ordering::SeqCst);
            // Let the readers refill between writes.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    done.store(true, Ordering::SeqCst);
    for r in readers {
        within("a reader", r).await.unwrap();
    }

    let stale = std::mem::take(&mut *stale.lock().unwrap());
    assert!(
        stale.is_empty(),
        "{} of {} reads were older than a finished commit (floor, read): {:?}",
        stale.len(),
        reads.load(Ordering::Relaxed),
        &stale[..stale.len().min(20)]
    );
    assert_eq!(one(&writer, q).await, WRITES.to_string());
    // Otherwise the race above never involved the cache.
    assert!(hits(&writer, q).await > 0, "{:?}", caches(&writer).await);
}
