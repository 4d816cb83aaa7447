//! The extended protocol: binary parameters, named and unnamed statements,
//! `max_rows` portals, the bytes of a hit, statements prepared while
//! served from the cache; large results; coalesced misses.

use std::sync::Arc;

use crate::common::raw::{self, Msg, RawConn};
use crate::support::*;

const BY_ID: &str = "SELECT name, price FROM items WHERE id = $1";

async fn name_by_id(c: &tokio_postgres::Client, id: i32) -> String {
    c.query_one(BY_ID, &[&id]).await.unwrap().get(0)
}

/// tokio-postgres binds parameters and asks for results in binary.
#[tokio::test(flavor = "multi_thread")]
async fn binary_parameters_and_results_hit() {
    let (pg, h) = start(AUTO);
    let c = h.connect().await;
    assert_eq!(name_by_id(&c, 3).await, "item 3");
    pg.psql("UPDATE items SET name = 'behind' WHERE id IN (3, 4)");
    assert_eq!(name_by_id(&c, 3).await, "item 3", "served from the cache");
    // Another value of the parameter is another entry.
    assert_eq!(name_by_id(&c, 4).await, "behind");
    // A prepared statement, executed many times: every repeat is a hit.
    let stmt = c.prepare(BY_ID).await.unwrap();
    for _ in 0..5 {
        let row = c.query_one(&stmt, &[&3i32]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "item 3");
    }
    assert!(hits(&c, BY_ID).await >= 6, "{:?}", caches(&c).await);
    // Parameters typed differently (int8 here) are a different key, and
    // answer the same as the upstream does.
    let wide = c
        .query_one("SELECT name FROM items WHERE id = $1::int8", &[&3i64])
        .await
        .unwrap();
    assert_eq!(wide.get::<_, String>(0), "behind");
    // Text results of the same statement (simple protocol) are their own entry.
    assert_eq!(
        one(&c, "SELECT name FROM items WHERE id = 3").await,
        "behind"
    );
}

/// `Parse Bind Describe Execute Sync` with an unnamed statement, text
/// results: a hit sends exactly the messages a miss got, which are
/// PostgreSQL's own.
fn unnamed_batch(sql: &str, param: &[u8], max_rows: i32, result_formats: &[i16]) -> Vec<u8> {
    let mut m = raw::parse("", sql, &[23]);
    m.extend(raw::bind("", "", &[Some(param)], &[0], result_formats));
    m.extend(raw::describe(b'P', ""));
    m.extend(raw::execute("", max_rows));
    m.extend(raw::sync());
    m
}

fn twice(port: u16, batch: &[u8]) -> (Vec<Msg>, Vec<Msg>) {
    let (mut conn, _) = RawConn::connect(port, &[("user", "postgres"), ("database", "postgres")]);
    conn.send(batch);
    let first = conn.until_ready();
    conn.send(batch);
    let second = conn.until_ready();
    (first, second)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hit_in_the_extended_protocol_sends_postgresqls_messages() {
    let (_pg, h) = start(AUTO);
    let sql = "SELECT id, name, price FROM items WHERE id <= $1 ORDER BY id";
    for formats in [&[][..], &[1][..], &[0, 1, 0][..]] {
        let batch = unnamed_batch(sql, b"4", 0, formats);
        let (miss, hit) = twice(h.port, &batch);
        let (direct, _) = twice(_pg.port, &batch);
        assert_eq!(
            miss, direct,
            "formats {formats:?}: a miss relays PostgreSQL's reply"
        );
        assert_eq!(hit, direct, "formats {formats:?}: a hit sends the same");
        let tags: Vec<u8> = hit.iter().map(|m| m.tag).collect();
        assert_eq!(tags, b"12TDDDDCZ", "formats {formats:?}");
    }
    let c = h.connect().await;
    assert!(hits(&c, sql).await >= 3, "{:?}", caches(&c).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_rows_portals_are_answered_as_postgresql_does() {
    let (pg, h) = start(AUTO);
    let sql = "SELECT id, name FROM items WHERE id <= $1 ORDER BY id";
    // A suspended portal's reply is partial and not kept: a whole
    // execution fills the entry the others are answered from.
    twice(h.port, &unnamed_batch(sql, b"5", 0, &[]));
    for max_rows in [1, 3, 5, 6] {
        let batch = unnamed_batch(sql, b"5", max_rows, &[]);
        let (miss, hit) = twice(h.port, &batch);
        let (direct, _) = twice(pg.port, &batch);
        assert_eq!(miss, direct, "max_rows {max_rows}: miss");
        assert_eq!(hit, direct, "max_rows {max_rows}: hit");
        let rows = hit.iter().filter(|m| m.tag == b'D').count();
        assert_eq!(rows, (max_rows as usize).min(5));
        let end = hit[hit.len() - 2].tag;
        // PostgreSQL suspends after max_rows rows even when they were all.
        assert_eq!(
            end,
            if max_rows <= 5 { b's' } else { b'C' },
            "max_rows {max_rows}"
        );
    }
    // A hit really came from the cache: a change behind Helios does not show.
    pg.psql("UPDATE items SET name = 'behind' WHERE id = 1");
    let (hit, _) = twice(h.port, &unnamed_batch(sql, b"5", 2, &[]));
    let first_row = hit.iter().find(|m| m.tag == b'D').unwrap();
    assert!(
        String::from_utf8_lossy(&first_row.body).contains("item 1"),
        "{hit:?}"
    );
}

/// A Parse answered from the cache is still run upstream: the statement
/// works later for a parameter the cache has never seen, and after the
/// cache is cleared.
#[tokio::test(flavor = "multi_thread")]
async fn statements_prepared_during_hits_work_on_the_upstream_later() {
    let (_pg, h) = start(AUTO);
    let sql = "SELECT name FROM items WHERE id = $1";
    let named = |param: &[u8]| {
        let mut m = raw::parse("s1", sql, &[23]);
        m.extend(raw::bind("", "s1", &[Some(param)], &[0], &[]));
        m.extend(raw::execute("", 0));
        m.extend(raw::sync());
        m
    };
    // Fill the entry on one connection.
    let (mut filler, _) =
        RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    filler.send(&named(b"7"));
    let fill = filler.until_ready();
    assert_eq!(fill.iter().map(|m| m.tag).collect::<Vec<_>>(), b"12DCZ");
    // A new connection prepares s1 in a batch that is a hit...
    let (mut conn, _) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    conn.send(&named(b"7"));
    let hit = conn.until_ready();
    assert_eq!(hit, fill, "a hit");
    // ... and s1 exists upstream: bind it to a value never cached.
    let use_s1 = |param: &[u8]| {
        let mut m = raw::bind("", "s1", &[Some(param)], &[0], &[]);
        m.extend(raw::describe(b'P', ""));
        m.extend(raw::execute("", 0));
        m.extend(raw::sync());
        m
    };
    conn.send(&use_s1(b"8"));
    let got = conn.until_ready();
    let tags: Vec<u8> = got.iter().map(|m| m.tag).collect();
    assert_eq!(tags, b"2TDCZ", "{got:?}");
    assert!(String::from_utf8_lossy(&got[2].body).contains("item 8"));
    // Describe of the statement reaches the upstream too.
    let mut m = raw::describe(b'S', "s1");
    m.extend(raw::sync());
    conn.send(&m);
    let tags: Vec<u8> = conn.until_ready().iter().map(|m| m.tag).collect();
    assert_eq!(tags, b"tTZ");
    // After the cache is cleared, s1 still runs.
    let c = h.connect().await;
    c.simple_query("HELIOS CACHE CLEAR").await.unwrap();
    conn.send(&use_s1(b"7"));
    let got = conn.until_ready();
    assert!(
        got.iter()
            .any(|m| m.tag == b'D' && String::from_utf8_lossy(&m.body).contains("item 7")),
        "{got:?}"
    );
    // Closing it closes it upstream: preparing the name again works.
    let mut m = raw::close(b'S', "s1");
    m.extend(raw::sync());
    conn.send(&m);
    assert_eq!(
        conn.until_ready().iter().map(|m| m.tag).collect::<Vec<_>>(),
        b"3Z"
    );
    conn.send(&named(b"7"));
    let again: Vec<u8> = conn.until_ready().iter().map(|m| m.tag).collect();
    assert_eq!(again, b"12DCZ");
}

/// A Parse of a bad statement in a batch: the upstream's error, as
/// PostgreSQL sends it, and the connection goes on.
#[tokio::test(flavor = "multi_thread")]
async fn errors_in_cached_shapes_reach_the_client_unchanged() {
    let (pg, h) = start(AUTO);
    let batch = unnamed_batch(
        "SELECT name FROM items WHERE id = $1",
        b"not a number",
        0,
        &[],
    );
    let (a, b) = twice(h.port, &batch);
    let (direct, _) = twice(pg.port, &batch);
    assert_eq!(a, direct);
    assert_eq!(b, direct);
    let e = a.iter().find(|m| m.tag == b'E').expect("an error");
    assert_eq!(e.sqlstate().as_deref(), Some("22P02"));
}

/// A result over `max_entry_size` reaches the client whole and is not kept;
/// a small one still is.
#[tokio::test(flavor = "multi_thread")]
async fn a_result_over_max_entry_size_is_streamed_and_not_kept() {
    let (pg, h) = start_with(
        "CREATE TABLE wide (id int, pad text); \
         INSERT INTO wide SELECT g, repeat('x', 1000) FROM generate_series(1, 2000) g;",
        "[cache]\nmode = \"auto\"\nmax_entry_size = \"64kB\"\n",
    );
    let c = h.connect().await;
    let big = "SELECT id, pad FROM wide ORDER BY id";
    for _ in 0..2 {
        let rows = c.query(big, &[]).await.unwrap();
        assert_eq!(rows.len(), 2000);
        assert_eq!(rows[1999].get::<_, i32>(0), 2000);
        assert_eq!(rows[0].get::<_, String>(1).len(), 1000);
    }
    pg.psql("UPDATE wide SET pad = 'short' WHERE id = 1");
    let rows = c.query(big, &[]).await.unwrap();
    assert_eq!(
        rows[0].get::<_, String>(1),
        "short",
        "not served from the cache"
    );
    let simple = c.simple_query(big).await.unwrap();
    assert_eq!(
        simple
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count(),
        2000
    );
    let listed = caches(&c).await;
    assert!(
        listed
            .iter()
            .filter(|r| r.0 == big)
            .all(|r| r.1 == 0 && r.3 == 0),
        "{listed:?}"
    );
    // A small result still is kept.
    let small = "SELECT pad FROM wide WHERE id = 2";
    assert_cached(
        &pg,
        &c,
        small,
        "UPDATE wide SET pad = 'changed' WHERE id = 2",
    )
    .await;
}

/// Identical misses arriving together go upstream once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_identical_misses_go_upstream_once() {
    let (_pg, h) = start_with(
        "CREATE TABLE big AS SELECT g AS id, g % 10 AS k FROM generate_series(1, 1000000) g; ANALYZE big;",
        "[pool]\nmax_size = 20\n[cache]\nmode = \"auto\"\n",
    );
    let h = Arc::new(h);
    let q = "SELECT k, count(*) FROM big GROUP BY k ORDER BY k";
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(h.connect().await);
    }
    // Each session's context is read once up front, so all ten start the
    // same statement within a few microseconds of each other.
    for c in &clients {
        one(c, "SELECT 1").await;
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let mut tasks = Vec::new();
    for c in clients {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let rows = c.simple_query(q).await.unwrap();
            let n = rows
                .iter()
                .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                .count();
            (n, c)
        }));
    }
    let mut last = None;
    for t in tasks {
        let (n, c) = within("a reader", t).await.unwrap();
        assert_eq!(n, 10);
        last = Some(c);
    }
    let c = last.unwrap();
    // A hit is counted just after its reply is written: wait until all ten
    // lookups are counted (an extra miss or hit still fails below).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let row = loop {
        let row = caches(&c)
            .await
            .into_iter()
            .find(|r| r.0 == q)
            .expect("listed");
        if row.1 + row.2 >= 10 || std::time::Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!((row.1, row.2), (9, 1), "hits, misses: {row:?}");
}
