//! A seeded schema with a known missing index, and reading ADVISE's rows.

use crate::common::{Helios, PgServer};

/// 300,000 orders over 20,000 customers; `orders.customer_id` has no
/// index (the one the advisor should find).
pub const SHOP: &str = "\
CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL, name text NOT NULL);
INSERT INTO customers SELECT g, (ARRAY['eu','us','apac','latam'])[1 + g % 4], 'customer ' || g
  FROM generate_series(1, 20000) g;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
  status text NOT NULL, amount numeric(10,2) NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO orders SELECT g, 1 + ((g::bigint * 7919) % 20000)::int, (ARRAY['open','paid','shipped','void'])[1 + g % 4],
  (g % 1000) / 10.0, timestamptz '2024-01-01' + (g || ' minutes')::interval
  FROM generate_series(1, 300000) g;
VACUUM ANALYZE customers;
VACUUM ANALYZE orders;
";

/// PostgreSQL with the shop schema (and HypoPG if `hypopg`), Helios in front.
pub fn start(hypopg: bool, extra: &str) -> (PgServer, Helios) {
    let pg = PgServer::start();
    if hypopg {
        let available =
            pg.psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'hypopg'");
        assert_eq!(
            available.trim(),
            "1",
            "HypoPG is not installed: apt-get install postgresql-<version>-hypopg (.ci/run does)"
        );
        pg.psql("CREATE EXTENSION hypopg");
    }
    run_script(&pg, SHOP);
    let h = Helios::start(&pg, extra);
    (pg, h)
}

/// Run a multi-statement script directly on the upstream.
pub fn run_script(pg: &PgServer, sql: &str) {
    for stmt in sql.split(";\n").chain(std::iter::once("")) {
        let s = stmt.trim().trim_end_matches(';');
        if !s.is_empty() {
            pg.psql(s);
        }
    }
}

/// One ADVISE row.
#[derive(Debug, Clone)]
pub struct Row {
    pub severity: String,
    pub rule: String,
    pub detail: String,
    pub suggestion: Option<String>,
    pub cost_before: Option<f64>,
    pub cost_after: Option<f64>,
    pub saving_pct: Option<f64>,
    pub score: i32,
}

/// Run an advisor command over the simple protocol; its rows.
pub async fn advise(c: &tokio_postgres::Client, cmd: &str) -> Vec<Row> {
    let msgs = c
        .simple_query(cmd)
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    msgs.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(Row {
                severity: r.get("severity").unwrap().to_string(),
                rule: r.get("rule").unwrap().to_string(),
                detail: r.get("detail").unwrap().to_string(),
                suggestion: r.get("suggestion").map(str::to_string),
                cost_before: r.get("cost_before").map(|v| v.parse().unwrap()),
                cost_after: r.get("cost_after").map(|v| v.parse().unwrap()),
                saving_pct: r.get("saving_pct").map(|v| v.parse().unwrap()),
                score: r.get("score").unwrap().parse().unwrap(),
            }),
            _ => None,
        })
        .collect()
}

pub fn find<'a>(rows: &'a [Row], rule: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.rule == rule)
}

/// The plan's first line, straight from the upstream.
pub fn explain(pg: &PgServer, sql: &str) -> String {
    pg.psql(&format!("EXPLAIN {sql}"))
}
