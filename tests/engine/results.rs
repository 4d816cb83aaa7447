//! The engine's answers, as text, equal PostgreSQL's own: every statement
//! runs once through Helios with `/*+ engine */` (and must run in the
//! engine) and once directly on the upstream, and the rows compare equal.
//! The cluster's collation is C, so text orders the same in both.

use tokio_postgres::Client;

use crate::common::{Helios, PgServer};
use crate::support::*;

/// One column of each type the engine decodes, plus `text[]` (read as
/// text), with NULLs, negatives, fractions, unicode and quoting.
pub const CORPUS: &str = "CREATE TABLE mixed ( \
       id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, f4 real, f8 float8, \
       n numeric(12,3), t text, vc varchar(20), bc char(6), b bool, d date, tm time, \
       ts timestamp, tz timestamptz, iv interval, u uuid, j json, jb jsonb, by bytea, \
       arr text[], k int); \
     INSERT INTO mixed SELECT g, (g % 100 - 50)::int2, g * 7 - 1000, g::int8 * 1000000007 * (1 - 2 * (g % 2)), \
       (g / 8.0)::real, g / 3.0::float8, (g * 1.125 - 100)::numeric(12,3), \
       'item ' || g, 'v' || (g % 13), 'c' || (g % 5), g % 3 = 0, \
       date '2024-01-01' + g, time '00:00' + g * interval '37.25 seconds', \
       timestamp '2024-01-01' + g * interval '1 hour 1 minute 1.5 second', \
       timestamptz '2024-01-01 00:00+00' + g * interval '90 minutes', \
       make_interval(months => g % 14, days => g % 40 - 20, secs => g * 1.25), \
       md5(g::text)::uuid, json_build_object('g', g, 'sq', g * g), \
       jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g)), decode(md5(g::text), 'hex'), \
       ARRAY['a' || g, NULL, 'b c'], g % 10 \
     FROM generate_series(1, 3000) g; \
     INSERT INTO mixed (id, k) VALUES (0, NULL), (-1, 3); \
     INSERT INTO mixed (id, t, vc, j, jb, by, arr, f8, f4, n, iv, ts, d) VALUES \
       (-2, 'héllo \"wörld\" it''s', '', '{\"a\": [1, 2.50, \"x\"]}', '{\"b\": 1, \"a\": \"é\"}', '\\x00ff', '{}', \
        -0.000123, 3.4e38, -0.001, '-1 year -2 mons +3 days -04:05:06.5', '1999-12-31 23:59:59.999999', '2000-02-29'); \
     CREATE TABLE kinds (k int PRIMARY KEY, label text); \
     INSERT INTO kinds SELECT g, 'kind ' || g FROM generate_series(0, 7) g; \
     ANALYZE;";

/// Statements whose rows must be PostgreSQL's, in order.
const STATEMENTS: &[&str] = &[
    // Every column as PostgreSQL prints it.
    "SELECT * FROM mixed ORDER BY id",
    // Group-bys and aggregates.
    "SELECT k, count(*), count(b), sum(i2), sum(i4), sum(i8), min(n), max(n), sum(n), \
       min(d), max(d), min(ts), max(tz), min(t), max(vc), bool_and(b), bool_or(b) \
     FROM mixed GROUP BY k ORDER BY k",
    "SELECT b, count(*), count(f8), max(f4), min(f8) FROM mixed GROUP BY b ORDER BY b",
    "SELECT bc, count(*), min(id) FROM mixed GROUP BY bc ORDER BY bc",
    // avg of integers and numerics, printed with PostgreSQL's scale.
    "SELECT k, avg(n), avg(i2), avg(i4), avg(i8) FROM mixed GROUP BY k ORDER BY k",
    "SELECT avg(n) FROM mixed WHERE id < 0",
    "SELECT count(*), count(DISTINCT k), count(DISTINCT vc), sum(n), min(iv), max(iv) FROM mixed",
    "SELECT k, count(*) FROM mixed GROUP BY k HAVING count(*) > 300 ORDER BY k",
    // Joins.
    "SELECT m.id, m.t, k.label FROM mixed m JOIN kinds k ON k.k = m.k \
     WHERE m.id % 97 = 0 ORDER BY m.id",
    "SELECT k.label, count(m.id), sum(m.i4) FROM kinds k LEFT JOIN mixed m ON m.k = k.k \
     GROUP BY k.label ORDER BY k.label",
    "SELECT a.id, b.id FROM mixed a JOIN mixed b ON a.i4 = b.i4 - 7 \
     WHERE a.id BETWEEN 100 AND 110 ORDER BY a.id",
    // ORDER BY ... LIMIT.
    "SELECT id, n, t FROM mixed ORDER BY n DESC, id LIMIT 7",
    "SELECT id, tz, iv FROM mixed ORDER BY tz NULLS FIRST, id LIMIT 5",
    "SELECT id, f8 FROM mixed WHERE f8 IS NOT NULL ORDER BY f8, id LIMIT 5 OFFSET 3",
    "SELECT t FROM mixed ORDER BY t DESC LIMIT 4",
    // Filters.
    "SELECT id FROM mixed WHERE d BETWEEN '2024-03-01' AND '2024-03-05' ORDER BY id",
    "SELECT id, n FROM mixed WHERE n > 12.5 AND n <= 20 ORDER BY id",
    "SELECT id FROM mixed WHERE t LIKE 'item 29%' ORDER BY id",
    "SELECT id FROM mixed WHERE t NOT LIKE 'item%' ORDER BY id",
    "SELECT id FROM mixed WHERE vc IN ('v1', 'v12') AND id < 60 ORDER BY id",
    "SELECT id FROM mixed WHERE k NOT IN (1, 2, 3, 4, 5, 6, 7, 8) ORDER BY id",
    "SELECT id FROM mixed WHERE i2 IS NULL ORDER BY id",
    "SELECT count(*) FROM mixed WHERE b",
    "SELECT count(*) FROM mixed WHERE NOT b OR b IS NULL",
    "SELECT count(*) FROM mixed WHERE ts >= '2024-02-01 00:00:00' AND ts < '2024-02-02'",
    "SELECT count(*) FROM mixed WHERE tz >= '2024-02-01 00:00:00+00'",
    "SELECT id FROM mixed WHERE i8 > 2999000000000 ORDER BY id",
    "SELECT id FROM mixed WHERE f4 = 3.125 ORDER BY id",
    "SELECT count(*) FROM mixed WHERE i4 + 1 > 0 AND (k = 1 OR id < 5)",
    // Expressions over columns.
    "SELECT id, i4 + i8, n * 2, -n, upper(vc), length(t), coalesce(k, -1) FROM mixed \
     WHERE id % 500 = 0 OR id <= 0 ORDER BY id",
    // Set operations and subqueries.
    "SELECT k FROM mixed WHERE id < 5 UNION SELECT k FROM kinds WHERE k > 5 ORDER BY 1",
    "SELECT count(*) FROM mixed WHERE k IN (SELECT k FROM kinds WHERE label LIKE '%3')",
    "SELECT id, rank() OVER (PARTITION BY k ORDER BY id DESC) FROM mixed WHERE id < 20 ORDER BY id",
];

/// The rows of `sql` through Helios's engine, checked to have run there.
async fn through_engine(h: &Helios, c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let (ran, got) = run(h, c, &format!("/*+ engine */ {sql}")).await;
    assert_eq!(ran, Ran::Federated, "{sql} did not run in the engine");
    got
}

pub async fn compare(pg: &PgServer, h: &Helios, statements: &[&str]) {
    let direct = pg.connect().await;
    let c = h.connect().await;
    let mut failed = Vec::new();
    for sql in statements {
        let want = rows(&direct, sql).await;
        assert!(!want.is_empty(), "{sql}: the corpus should give rows");
        let (ran, got) = run(h, &c, &format!("/*+ engine */ {sql}")).await;
        if ran != Ran::Federated {
            failed.push(format!("{sql}\n  did not run in the engine: {ran:?}"));
        } else if got != want {
            let first = got
                .iter()
                .zip(&want)
                .position(|(g, w)| g != w)
                .unwrap_or(got.len().min(want.len()));
            failed.push(format!(
                "{sql}\n  rows: engine {} vs postgres {}\n  first difference at row {first}:\n    engine:   {:?}\n    postgres: {:?}",
                got.len(),
                want.len(),
                got.get(first),
                want.get(first)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_answers_equal_postgres_over_every_column_type() {
    let (pg, h) = start(
        CORPUS,
        "[engine]\nmin_partition_pages = 4\npartitions = 3\n",
    );
    compare(&pg, &h, STATEMENTS).await;
}

/// The text settings a session changed are the ones the engine prints with.
#[tokio::test(flavor = "multi_thread")]
async fn session_text_settings_are_honoured() {
    let (pg, h) = start(CORPUS, "");
    let direct = pg.connect().await;
    let c = h.connect().await;
    let sql = "SELECT id, f4, f8, tz, by FROM mixed WHERE id IN (-2, 1, 7, 2999) ORDER BY id";
    for set in ["SET extra_float_digits = 0", "SET bytea_output = 'escape'"] {
        exec(&direct, set).await;
        exec(&c, set).await;
        assert_eq!(
            through_engine(&h, &c, sql).await,
            rows(&direct, sql).await,
            "after {set}"
        );
    }
    // The engine works in UTC: over timestamptz columns, another TimeZone
    // sends the statement to PostgreSQL.
    for set in [
        "SET TimeZone = 'Asia/Kolkata'",
        "SET TimeZone = 'America/New_York'",
    ] {
        exec(&direct, set).await;
        exec(&c, set).await;
        let (ran, got) = run(&h, &c, &format!("/*+ engine */ {sql}")).await;
        assert_eq!(
            (ran, got),
            (Ran::Declined, rows(&direct, sql).await),
            "after {set}"
        );
    }
    exec(&direct, "SET TimeZone = 'UTC'").await;
    exec(&c, "SET TimeZone = 'UTC'").await;
    // Styles the engine does not print: PostgreSQL answers.
    let sql = "SELECT id, d, ts, iv FROM mixed WHERE id IN (-2, 5) ORDER BY id";
    for set in [
        "SET DateStyle = 'SQL, DMY'",
        "SET IntervalStyle = 'iso_8601'",
    ] {
        exec(&direct, set).await;
        exec(&c, set).await;
        let (ran, got) = run(&h, &c, &format!("/*+ engine */ {sql}")).await;
        assert_eq!(
            (ran, got),
            (Ran::Declined, rows(&direct, sql).await),
            "after {set}"
        );
    }
}

/// What DataFusion cannot plan is relayed: the answer is PostgreSQL's.
#[tokio::test(flavor = "multi_thread")]
async fn statements_the_engine_declines_answer_as_postgres() {
    let (pg, h) = start(CORPUS, "");
    let direct = pg.connect().await;
    let c = h.connect().await;
    for sql in [
        // Functions whose details differ (DataFusion's would print otherwise).
        "SELECT date_trunc('month', ts) AS m, count(*), sum(i4) FROM mixed WHERE ts IS NOT NULL \
         GROUP BY 1 ORDER BY 1",
        "SELECT extract(year FROM d) AS y, count(*) FROM mixed GROUP BY 1 ORDER BY 1",
        // uuid against a string literal.
        "SELECT id FROM mixed WHERE u = 'c4ca4238-a0b9-2382-0dcc-509a6f75849b'",
        // jsonb operators, arrays (read as text), regular expressions.
        "SELECT id, jb -> 'tags' FROM mixed WHERE (jb ->> 'g')::int = 5",
        "SELECT id, arr[1] FROM mixed WHERE id BETWEEN 1 AND 3 ORDER BY id",
        "SELECT id FROM mixed WHERE t ~ '^item 12$'",
        // ONLY (no inheritance children).
        "SELECT count(*) FROM ONLY mixed",
    ] {
        let want = rows(&direct, sql).await;
        assert!(!want.is_empty(), "{sql}");
        let (ran, got) = run(&h, &c, &format!("/*+ engine */ {sql}")).await;
        assert_eq!(got, want, "{sql} ({ran:?})");
        assert!(
            matches!(ran, Ran::Declined | Ran::Federated),
            "{sql}: {ran:?}"
        );
    }
}

/// `[[engine.tables]]`: a local CSV joined with an upstream table.
#[tokio::test(flavor = "multi_thread")]
async fn local_files_join_upstream_tables() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("targets.csv");
    std::fs::write(&csv, "k,target\n1,100.5\n2,200\n3,300.25\n9,900\n").unwrap();
    let (_pg, h) = start(
        CORPUS,
        &format!(
            "[[engine.tables]]\nname = \"targets\"\npath = \"{}\"\n",
            csv.display()
        ),
    );
    let c = h.connect().await;
    let (ran, got) = run(
        &h,
        &c,
        "/*+ engine */ SELECT k.label, t.target, count(m.id) FROM targets t \
         JOIN kinds k ON k.k = t.k JOIN mixed m ON m.k = t.k \
         GROUP BY k.label, t.target ORDER BY k.label",
    )
    .await;
    assert_eq!(ran, Ran::Federated);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got,
        vec![
            vec![s("kind 1"), s("100.5"), s("300")],
            vec![s("kind 2"), s("200"), s("300")],
            vec![s("kind 3"), s("300.25"), s("301")],
        ]
    );
    // The file alone: no upstream table read.
    let (ran, got) = run(&h, &c, "/*+ engine */ SELECT sum(target) FROM targets").await;
    assert_eq!((ran, got), (Ran::Accelerated, vec![vec![s("1500.75")]]));
    // Without the engine, PostgreSQL has no such table.
    assert_eq!(
        sqlstate_of(&c, "SELECT count(*) FROM targets").await,
        "42P01"
    );
}

/// Partitioned tables (ctid ranges apply within each partition), views,
/// materialized views, inheritance.
#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_relation_reads_in_full() {
    let (pg, h) = start(
        "CREATE TABLE parted (id int, region text, amount numeric(10,2)) PARTITION BY LIST (region); \
         CREATE TABLE parted_n PARTITION OF parted FOR VALUES IN ('north'); \
         CREATE TABLE parted_s PARTITION OF parted FOR VALUES IN ('south'); \
         CREATE TABLE parted_x PARTITION OF parted DEFAULT; \
         INSERT INTO parted SELECT g, (ARRAY['north', 'south', 'east'])[g % 3 + 1], g * 0.25 \
           FROM generate_series(1, 30000) g; \
         CREATE VIEW big_ones AS SELECT * FROM parted WHERE amount > 5000; \
         CREATE MATERIALIZED VIEW by_region AS SELECT region, count(*) AS n FROM parted GROUP BY region; \
         CREATE TABLE base (id int); CREATE TABLE child (extra int) INHERITS (base); \
         INSERT INTO base SELECT generate_series(1, 1000); INSERT INTO child SELECT g, g FROM generate_series(1, 2000) g; \
         ANALYZE;",
        "[engine]\nmin_partition_pages = 1\npartitions = 4\n",
    );
    compare(
        &pg,
        &h,
        &[
            "SELECT region, count(*), sum(amount), count(DISTINCT id) FROM parted GROUP BY region ORDER BY region",
            "SELECT count(*), sum(amount) FROM parted_s",
            "SELECT count(*), min(amount) FROM big_ones",
            "SELECT region, n FROM by_region ORDER BY region",
            "SELECT count(*), sum(id) FROM base",
        ],
    )
    .await;
}

/// A database that orders text linguistically (ICU): sorting and comparing
/// text stays with PostgreSQL; grouping and equality run in the engine.
#[tokio::test(flavor = "multi_thread")]
async fn text_order_follows_the_databases_collation() {
    let pg = PgServer::start();
    pg.psql(
        "CREATE DATABASE coll TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C'",
    );
    let out = crate::common::psql(
        pg.port,
        "postgres",
        &[
            "-d",
            "coll",
            "-c",
            "CREATE TABLE words (w text); INSERT INTO words VALUES ('b'), ('A'), ('a'), ('B');",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = Helios::start(&pg, "");
    let conn = h
        .conn_str("postgres")
        .replace("dbname=postgres", "dbname=coll");
    let c = crate::common::connect(&conn).await;
    // PostgreSQL's order (a A b B), not bytes' (A B a b).
    let (ran, got) = run(&h, &c, "/*+ engine */ SELECT w FROM words ORDER BY w").await;
    assert_eq!(ran, Ran::Declined);
    let order: Vec<_> = got.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(order, ["a", "A", "b", "B"]);
    let (ran, got) = run(&h, &c, "/*+ engine */ SELECT max(w) FROM words").await;
    assert_eq!((ran, got), (Ran::Declined, vec![vec![Some("B".into())]]));
    // Equality and grouping do not depend on the collation.
    let (ran, got) = run(
        &h,
        &c,
        "/*+ engine */ SELECT count(*) FROM words WHERE w = 'a'",
    )
    .await;
    assert_eq!((ran, got), (Ran::Federated, vec![vec![Some("1".into())]]));
    let (ran, got) = run(&h, &c, "/*+ engine */ SELECT count(DISTINCT w) FROM words").await;
    assert_eq!((ran, got), (Ran::Federated, vec![vec![Some("4".into())]]));
}
