//! Helios with no upstream: the embedded demo database, through real
//! clients (tokio-postgres, psql), and its text output compared with a real
//! PostgreSQL's.

#[path = "../common/mod.rs"]
mod common;

mod catalog;
mod features;
mod files;
mod protocol;
mod queries;

use common::Helios;

/// Helios with no `[upstream]`: it serves the demo database.
pub fn embedded() -> Helios {
    Helios::start_config("")
}

/// Every row of a simple query, as text (NULL as None).
pub async fn rows(c: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The single value of a simple query.
pub async fn value(c: &tokio_postgres::Client, sql: &str) -> String {
    let r = rows(c, sql).await;
    assert_eq!(r.len(), 1, "{sql}: {r:?}");
    r[0][0].clone().unwrap_or_default()
}

/// The SQLSTATE of a failed statement.
pub async fn sqlstate_of(c: &tokio_postgres::Client, sql: &str) -> String {
    let e = c
        .simple_query(sql)
        .await
        .expect_err(&format!("{sql} should fail"));
    common::sqlstate(&e).unwrap_or_else(|| panic!("{sql}: no SQLSTATE in {e}"))
}
