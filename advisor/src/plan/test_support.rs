//! Fixtures and a catalog matching the database they were captured from.
//!
//! The JSON files in `fixtures/` are real `EXPLAIN (FORMAT JSON)` output of
//! PostgreSQL 15 over this schema (row counts after ANALYZE):
//!
//! ```sql
//! customers (id int PRIMARY KEY, region text, name text)        -- 50 000 rows
//! orders (id int PRIMARY KEY, customer_id int, status text,     -- 300 000 rows
//!         amount numeric(10,2), created_at timestamptz, note text)
//!   -- status: 'open' 2%, 'cancelled' 14%, 'shipped' 84%
//!   -- INDEX orders_customer_id_idx (customer_id), values scattered over the heap
//! price_bands (lo numeric, hi numeric, band text)               -- 20 rows
//! readings (id int, sensor int, site int, value float8)         -- 300 000 rows
//!   -- sensor = site = id % 100: the planner multiplies their selectivities
//! ```
//!
//! Each file's name says what it shows; the statement and settings that
//! produced it are in [`FIXTURES`].

use helios_planner::catalog::{Catalog, Column, Index, RelationKind, Table, TableStats};

use super::{parse_explain, Plan};
use crate::Finding;

/// (name, statement and settings, JSON).
#[rustfmt::skip]
pub const FIXTURES: &[(&str, &str, &str)] = &[
    ("seq_scan_selective", "SELECT * FROM orders WHERE status = 'open'", include_str!("fixtures/seq_scan_selective.json")),
    ("seq_scan_unselective", "SELECT * FROM orders WHERE status <> 'open'", include_str!("fixtures/seq_scan_unselective.json")),
    ("index_scan_by_id", "SELECT * FROM orders WHERE id = 42", include_str!("fixtures/index_scan_by_id.json")),
    ("sort_large", "SELECT id, amount FROM orders ORDER BY amount DESC", include_str!("fixtures/sort_large.json")),
    ("sort_small", "SELECT * FROM orders WHERE customer_id = 77 ORDER BY amount", include_str!("fixtures/sort_small.json")),
    ("sort_limit", "SELECT * FROM orders ORDER BY created_at DESC LIMIT 20", include_str!("fixtures/sort_limit.json")),
    ("nested_loop_large", "SELECT o.id, b.band FROM orders o JOIN price_bands b ON o.amount >= b.lo AND o.amount < b.hi", include_str!("fixtures/nested_loop_large.json")),
    ("nested_loop_indexed", "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id < 100", include_str!("fixtures/nested_loop_indexed.json")),
    ("nested_loop_parallel", "enable_hashjoin and enable_mergejoin off: SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = 'cancelled'", include_str!("fixtures/nested_loop_parallel.json")),
    ("verbose_subplans", "EXPLAIN (VERBOSE): a MATERIALIZED CTE, an InitPlan over it, a correlated SubPlan, a hash join", include_str!("fixtures/verbose_subplans.json")),
    ("disk_sort", "ANALYZE, work_mem 64kB: SELECT id, amount FROM orders ORDER BY amount DESC", include_str!("fixtures/disk_sort.json")),
    ("disk_sort_parallel", "ANALYZE, work_mem 64kB: SELECT * FROM orders WHERE status = 'cancelled' ORDER BY created_at DESC", include_str!("fixtures/disk_sort_parallel.json")),
    ("memory_sort", "ANALYZE: SELECT * FROM orders WHERE customer_id < 20 ORDER BY amount", include_str!("fixtures/memory_sort.json")),
    ("hash_batches", "ANALYZE, work_mem 64kB: SELECT o.id, c.region FROM orders o JOIN customers c ON c.id = o.customer_id", include_str!("fixtures/hash_batches.json")),
    ("hash_one_batch", "ANALYZE, work_mem 64MB: the same join", include_str!("fixtures/hash_one_batch.json")),
    ("misestimate", "ANALYZE: SELECT * FROM readings WHERE sensor = 7 AND site = 7", include_str!("fixtures/misestimate.json")),
    ("estimate_ok", "ANALYZE: SELECT * FROM readings WHERE sensor = 7", include_str!("fixtures/estimate_ok.json")),
    ("rows_removed", "ANALYZE: SELECT * FROM orders WHERE status = 'open'", include_str!("fixtures/rows_removed.json")),
    ("few_rows_removed", "ANALYZE: SELECT * FROM orders WHERE status <> 'open'", include_str!("fixtures/few_rows_removed.json")),
    ("limit_stops_early", "ANALYZE: SELECT * FROM orders WHERE status <> 'open' LIMIT 10", include_str!("fixtures/limit_stops_early.json")),
    ("lossy_bitmap", "ANALYZE, work_mem 64kB: SELECT count(note) FROM orders WHERE customer_id < 300", include_str!("fixtures/lossy_bitmap.json")),
    ("exact_bitmap", "ANALYZE, work_mem 64MB: the same count", include_str!("fixtures/exact_bitmap.json")),
];

/// A fixture, parsed.
pub fn fixture(name: &str) -> Plan {
    let (_, _, json) = FIXTURES
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    parse_explain(json).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The findings of one rule.
pub fn of<'a>(findings: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.rule == rule).collect()
}

/// The fixtures' database, analyzed just before the capture.
pub fn catalog() -> Catalog {
    catalog_with(|_| {})
}

/// The same catalog with its tables changed by `edit` (to make statistics
/// stale, say).
pub fn catalog_with(edit: impl Fn(&mut Table)) -> Catalog {
    let mut tables = vec![
        table(
            "customers",
            50_000.0,
            &["id", "region", "name"],
            &[("customers_pkey", "id")],
        ),
        table(
            "orders",
            300_000.0,
            &[
                "id",
                "customer_id",
                "status",
                "amount",
                "created_at",
                "note",
            ],
            &[
                ("orders_pkey", "id"),
                ("orders_customer_id_idx", "customer_id"),
            ],
        ),
        table("price_bands", 20.0, &["lo", "hi", "band"], &[]),
        table(
            "readings",
            300_000.0,
            &["id", "sensor", "site", "value"],
            &[],
        ),
    ];
    tables.iter_mut().for_each(edit);
    Catalog::new("db".into(), vec!["public".into()], tables)
}

fn table(name: &str, rows: f64, columns: &[&str], indexes: &[(&str, &str)]) -> Table {
    Table {
        schema: "public".into(),
        name: name.into(),
        kind: RelationKind::Table,
        comment: None,
        row_estimate: rows,
        columns: columns
            .iter()
            .map(|c| Column {
                name: c.to_string(),
                data_type: "text".into(),
                type_oid: 25,
                nullable: true,
                comment: None,
                common_values: vec![],
                n_distinct: None,
            })
            .collect(),
        primary_key: vec!["id".into()],
        foreign_keys: vec![],
        indexes: indexes
            .iter()
            .map(|(index, column)| Index {
                name: index.to_string(),
                columns: vec![Some(column.to_string())],
                unique: index.ends_with("_pkey"),
                primary: index.ends_with("_pkey"),
                method: "btree".into(),
                partial: false,
                definition: String::new(),
            })
            .collect(),
        stats: Some(TableStats {
            live_rows: rows,
            seconds_since_analyze: Some(60.0),
            ..TableStats::default()
        }),
    }
}
