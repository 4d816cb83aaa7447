//! Where DataFusion and PostgreSQL differ (char(n) padding, timestamp
//! literals, function details, integer overflow, rounding casts, interval
//! comparison, text of casts, result types, infinite and NaN values): each
//! test pins that the outcome through `/*+ engine */` (rows as text, or the
//! SQLSTATE) equals PostgreSQL's, whether the engine computes it or
//! declines and relays it (`upstream::faithful`, and the fallback when the
//! engine fails before the first row).

use tokio_postgres::Client;

use crate::common::{sqlstate, Helios, PgServer};
use crate::results::CORPUS;
use crate::support::*;

type Outcome = Result<Vec<Vec<Option<String>>>, String>;

async fn outcome(c: &Client, sql: &str) -> Outcome {
    match c.simple_query(sql).await {
        Ok(messages) => Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()),
        Err(e) => Err(sqlstate(&e).unwrap_or_else(|| format!("{e:?}"))),
    }
}

/// Each statement's outcome through the engine equals PostgreSQL's.
async fn agree(pg: &PgServer, h: &Helios, statements: &[&str]) {
    let direct = pg.connect().await;
    let c = h.connect().await;
    let mut failed = Vec::new();
    for sql in statements {
        let want = outcome(&direct, sql).await;
        let before = engine_log(h);
        let got = outcome(&c, &format!("/*+ engine */ {sql}")).await;
        let ran = ran_since(h, &before, sql);
        if got != want {
            failed.push(format!(
                "{sql}\n    engine ({ran:?}): {got:?}\n    postgres: {want:?}"
            ));
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}

/// `char(n)`: trailing blanks do not count in PostgreSQL's comparisons,
/// `length` or `||`. Pushed down, `bc = 'c1'` is right (PostgreSQL
/// evaluates it); evaluated in DataFusion (an `OR` with arithmetic, a join
/// key, a function) the padded value is compared.
#[tokio::test(flavor = "multi_thread")]
async fn char_columns_compare_and_measure_without_padding() {
    let (pg, h) = start(CORPUS, "");
    agree(
        &pg,
        &h,
        &[
            "SELECT count(*) FROM mixed WHERE bc = 'c1' OR i4 + 1 = 0",
            "SELECT id, length(bc), bc || '|' FROM mixed WHERE id BETWEEN 1 AND 3 ORDER BY id",
            "SELECT m.id FROM mixed m JOIN kinds k ON m.bc = ('c' || k.k)::char(6) \
             WHERE m.id < 12 ORDER BY m.id",
        ],
    )
    .await;
}

/// A timestamp literal PostgreSQL reads (no seconds), and one read in the
/// session's TimeZone.
#[tokio::test(flavor = "multi_thread")]
async fn timestamp_literals_read_as_postgres_reads_them() {
    let (pg, h) = start(
        &format!("{CORPUS} ALTER DATABASE postgres SET TimeZone = 'America/New_York';"),
        "",
    );
    agree(
        &pg,
        &h,
        &[
            "SELECT count(*) FROM mixed WHERE tz < '2024-01-03 12:00'",
            "SELECT count(*) FROM mixed WHERE ts < '2024-01-03 12:00'",
            "SELECT count(*) FROM mixed WHERE tz < '2024-01-03 12:00:00'",
        ],
    )
    .await;
}

/// PostgreSQL functions DataFusion has under the same name with other
/// semantics: a silently different answer.
#[tokio::test(flavor = "multi_thread")]
async fn functions_with_postgres_semantics() {
    let (pg, h) = start(CORPUS, "");
    agree(
        &pg,
        &h,
        &[
            "SELECT to_char(d, 'Dy DD Mon YYYY') FROM mixed WHERE id = 10",
            "SELECT count(*) FROM mixed WHERE t SIMILAR TO 'item 1%'",
        ],
    )
    .await;
}

/// Integer arithmetic that overflows is an error in PostgreSQL, never a
/// wrapped or widened value.
#[tokio::test(flavor = "multi_thread")]
async fn integer_overflow_is_an_error() {
    let (pg, h) = start(CORPUS, "");
    agree(
        &pg,
        &h,
        &[
            "SELECT sum(i8 * 1000000000) FROM mixed",
            "SELECT i4 * 1000000 FROM mixed WHERE id = 3000",
        ],
    )
    .await;
}

/// float and numeric to integer casts round to nearest in PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn casts_to_integers_round() {
    let (pg, h) = start(CORPUS, "");
    agree(
        &pg,
        &h,
        &[
            "SELECT f8::int, n::int, f8::int8, n::int8, f4::int2 FROM mixed \
           WHERE id BETWEEN 1 AND 5 ORDER BY id",
        ],
    )
    .await;
}

/// PostgreSQL compares intervals by their span (a month is 30 days);
/// field by field, `1 mon -19 days` would be more than `40 days`.
#[tokio::test(flavor = "multi_thread")]
async fn intervals_compare_by_span() {
    let (pg, h) = start(
        &format!(
            "{CORPUS} CREATE TABLE spans (iv interval); \
             INSERT INTO spans VALUES ('1 mon'), ('30 days'), ('720 hours'), ('1 day');"
        ),
        "",
    );
    agree(
        &pg,
        &h,
        &[
            "SELECT count(*) FROM mixed WHERE iv > interval '40 days'",
            "SELECT count(DISTINCT iv), count(*) FILTER (WHERE iv = interval '30 days') FROM spans",
        ],
    )
    .await;
}

/// Casts to text print as PostgreSQL's output functions do.
#[tokio::test(flavor = "multi_thread")]
async fn casts_to_text_print_as_postgres() {
    let (pg, h) = start(CORPUS, "");
    agree(
        &pg,
        &h,
        &["SELECT n::text, f8::text, ts::text, d::text, iv::text, 'at ' || ts FROM mixed WHERE id = 5"],
    )
    .await;
}

/// Result types PostgreSQL gives (they show in the text: a zone, a
/// scale, float4 rounding, fractional seconds).
#[tokio::test(flavor = "multi_thread")]
async fn result_types_are_postgres_types() {
    let (pg, h) = start(CORPUS, "");
    agree(
        &pg,
        &h,
        &[
            "SELECT date_trunc('month', d) AS m, count(*) FROM mixed WHERE id BETWEEN 1 AND 70 \
             GROUP BY 1 ORDER BY 1",
            "SELECT to_timestamp(1700000000 + id) FROM mixed WHERE id = 1",
            "SELECT sum(f4) FROM mixed",
            "SELECT extract(second FROM tm), extract(epoch FROM ts) FROM mixed WHERE id = 3",
        ],
    )
    .await;
}

/// Values with no Arrow equivalent (infinite timestamps and dates, BC
/// years, numeric NaN) are PostgreSQL's to print: the engine fails with
/// XX000 during the scan, too late to relay.
#[tokio::test(flavor = "multi_thread")]
async fn infinite_and_nan_values_are_answered() {
    let (pg, h) = start(
        "CREATE TABLE sp (id int, ts timestamp, d date, tz timestamptz, n numeric(10,2)); \
         INSERT INTO sp VALUES (1, 'infinity', 'infinity', '-infinity', 'NaN'), \
           (2, '0044-03-15 12:00 BC', '0001-01-01 BC', '1900-01-01 00:00+00', 1.5);",
        "",
    );
    agree(
        &pg,
        &h,
        &[
            "SELECT id, ts FROM sp ORDER BY id",
            "SELECT id, d FROM sp ORDER BY id",
            "SELECT id, tz FROM sp ORDER BY id",
            "SELECT id, n FROM sp ORDER BY id",
        ],
    )
    .await;
}
