//! Shared set-up for the cache tests.

use crate::common::{Helios, PgServer};

/// A PostgreSQL with a small table `items(id, name, price)` and Helios in
/// front of it with `extra` config appended (e.g. `[cache]\nmode = "auto"`).
pub fn start(extra: &str) -> (PgServer, Helios) {
    let pg = PgServer::start();
    pg.psql(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2)); \
         INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 20) g;",
    );
    let h = Helios::start(&pg, extra);
    (pg, h)
}

pub const AUTO: &str = "[cache]\nmode = \"auto\"\n";

/// A change made straight on the upstream, which Helios (in `writes` mode)
/// does not see: a cached read still shows the old value.
pub fn change_behind_helios(pg: &PgServer, sql: &str) {
    pg.psql(sql);
}

/// `SHOW HELIOS CACHES` as (query, hits, misses, entries).
pub async fn caches(c: &tokio_postgres::Client) -> Vec<(String, i64, i64, i64)> {
    c.simple_query("SHOW HELIOS CACHES")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((
                r.get("query").unwrap().to_string(),
                r.get("hits").unwrap().parse().unwrap(),
                r.get("misses").unwrap().parse().unwrap(),
                r.get("entries").unwrap().parse().unwrap(),
            )),
            _ => None,
        })
        .collect()
}

/// The first column of every row of a simple query, as text.
pub async fn column(c: &tokio_postgres::Client, sql: &str) -> Vec<Option<String>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .collect()
}

pub async fn one(c: &tokio_postgres::Client, sql: &str) -> String {
    column(c, sql)
        .await
        .into_iter()
        .next()
        .flatten()
        .unwrap_or_else(|| panic!("{sql}: no value"))
}
