//! What psql and drivers read from the catalog, and text output equal to
//! PostgreSQL's.

use std::process::Command;

use crate::common::{pg_bindir, PgServer};
use crate::{embedded, rows, value};

fn psql(port: u16, command: &str) -> String {
    let out = Command::new(pg_bindir().join("psql"))
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "helios",
        ])
        .args(["-c", command])
        .output()
        .expect("running psql");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && !stderr.contains("ERROR"),
        "psql {command}: {stdout}\n{stderr}"
    );
    stdout
}

#[test]
fn psql_lists_and_describes_tables() {
    let h = embedded();
    let dt = psql(h.port, "\\dt");
    for t in ["customers", "order_items", "orders", "products", "regions"] {
        assert!(dt.contains(t), "\\dt lacks {t}:\n{dt}");
    }
    let d = psql(h.port, "\\d orders");
    for col in ["id", "customer_id", "status", "ordered_at", "total"] {
        assert!(d.contains(col), "\\d orders lacks {col}:\n{d}");
    }
    assert!(d.contains("numeric(12,2)"), "{d}");
    let l = psql(h.port, "\\l");
    assert!(l.contains("helios"), "{l}");
    let q = psql(h.port, "SELECT count(*) FROM orders");
    assert!(q.contains("100000"), "{q}");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_functions_drivers_call() {
    let h = embedded();
    let c = h.connect().await;
    assert!(value(&c, "SELECT version()")
        .await
        .starts_with("PostgreSQL"));
    assert!(!value(&c, "SELECT current_database()").await.is_empty());
    let tables = rows(
        &c,
        "SELECT table_name FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY table_name",
    )
    .await;
    assert_eq!(tables.len(), 5, "{tables:?}");
    // Result columns are named as PostgreSQL names them.
    let msgs = c
        .simple_query("SELECT count(*), 1, 2::int8, max(id) AS top FROM regions")
        .await
        .unwrap();
    let names: Vec<String> = msgs
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some(r.columns().iter().map(|c| c.name().to_string()).collect())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(names, ["count", "?column?", "int8", "top"]);
}

/// The same expressions on PostgreSQL and on the embedded database give
/// the same text.
#[tokio::test(flavor = "multi_thread")]
async fn text_output_matches_postgresql() {
    let pg = PgServer::start();
    let h = embedded();
    let direct = pg.connect().await;
    let helios = h.connect().await;
    let corpus = [
        "SELECT 1::int2, 2::int4, 3::int8, -9223372036854775807::int8",
        "SELECT 0.1::float8, 1.5::float8, 100::float8, 1e20::float8, 1.5e-7::float8, -2.25::float4",
        "SELECT 123.45::numeric(10,2), -0.05::numeric(6,2), 7::numeric(5,0)",
        "SELECT true, false, NULL::int4, 'text'::text, ''::text",
        "SELECT DATE '2024-03-05', TIMESTAMP '2024-03-05 13:04:05.25', TIMESTAMP '2024-01-01 00:00:00'",
        "SELECT TIMESTAMPTZ '2024-03-05 13:04:05.5+02', TIMESTAMPTZ '1999-12-31 23:59:59+00'",
        "SELECT count(*), sum(quantity) FROM (VALUES (1), (2), (3)) AS t(quantity)",
    ];
    for sql in corpus {
        for digits in ["1", "0", "3"] {
            let set = format!("SET extra_float_digits = {digits}");
            direct.simple_query(&set).await.unwrap();
            helios.simple_query(&set).await.unwrap();
            let want = rows(&direct, sql).await;
            let got = rows(&helios, sql).await;
            assert_eq!(got, want, "{sql} (extra_float_digits {digits})");
        }
    }
}
