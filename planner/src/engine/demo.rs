//! The demo database: a small retail shop (regions, customers, products,
//! orders and their items), generated deterministically in memory.
//!
//! [`demo_tables`] describes it the way a catalog does (SQL types, keys,
//! comments); [`demo_catalog`] is that description as a
//! [`crate::catalog::Catalog`]. The rows come from a generator that is a
//! pure function of fixed seeds: every run, every platform, the same data.
//! [`demo_data`]
//! generates it once per process and shares it: the batches are reference
//! counted, so every [`Engine`](super::Engine) registers the same memory.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::datasource::MemTable;

use super::{demo_gen, demo_words};
use crate::catalog::{Catalog, Column, ForeignKey, RelationKind, Table};
use crate::check::arrow_type;

/// One demo table, described as a catalog would describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTable {
    pub name: &'static str,
    /// A one-line description (PostgreSQL's `COMMENT ON TABLE`).
    pub comment: &'static str,
    pub columns: Vec<DemoColumn>,
    pub primary_key: Vec<&'static str>,
    pub foreign_keys: Vec<DemoForeignKey>,
    /// How many rows the generator makes.
    pub rows: usize,
}

/// A column of a demo table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoColumn {
    pub name: &'static str,
    /// The PostgreSQL type as `format_type()` prints it.
    pub sql_type: &'static str,
    pub nullable: bool,
    pub comment: &'static str,
    /// Every value a low-cardinality column takes (empty otherwise).
    pub values: &'static [&'static str],
}

/// A foreign key of a demo table (all in schema `public`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoForeignKey {
    pub columns: Vec<&'static str>,
    pub ref_table: &'static str,
    pub ref_columns: Vec<&'static str>,
}

/// The values of `orders.status`.
pub const ORDER_STATUSES: &[&str] = &["pending", "shipped", "delivered", "cancelled"];

/// The schema the demo tables live in.
pub const DEMO_SCHEMA: &str = "public";

fn col(name: &'static str, sql_type: &'static str, comment: &'static str) -> DemoColumn {
    DemoColumn {
        name,
        sql_type,
        nullable: false,
        comment,
        values: &[],
    }
}

fn fk(column: &'static str, ref_table: &'static str) -> DemoForeignKey {
    DemoForeignKey {
        columns: vec![column],
        ref_table,
        ref_columns: vec!["id"],
    }
}

/// The demo's cities, once each: the catalog's common values of
/// `customers.city` (what `pg_stats` would list), so that natural language
/// finds "Berlin".
fn city_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| distinct(demo_words::CITIES.iter().map(|c| c.0)))
}

/// The demo's countries, once each.
fn country_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| distinct(demo_words::CITIES.iter().map(|c| c.1)))
}

fn distinct(values: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The demo's named measures for natural language (`nl.measures` when
/// none are configured and Helios serves the demo).
pub fn demo_measures() -> Vec<(&'static str, &'static str, &'static [&'static str])> {
    vec![(
        "revenue",
        "sum(order_items.quantity * order_items.unit_price)",
        &[
            "sales",
            "turnover",
            "income",
            "amount spent",
            "spent",
            "spending",
        ],
    )]
}

/// The demo tables, parents before children. Every column is NOT NULL.
pub fn demo_tables() -> Vec<DemoTable> {
    vec![
        DemoTable {
            name: "regions",
            comment: "Sales regions of the world",
            columns: vec![
                col("id", "integer", "Region identifier"),
                DemoColumn {
                    values: demo_words::REGIONS,
                    ..col("name", "text", "Region name, e.g. Europe")
                },
            ],
            primary_key: vec!["id"],
            foreign_keys: vec![],
            rows: demo_words::REGIONS.len(),
        },
        DemoTable {
            name: "customers",
            comment: "People who have signed up to the shop, in sign-up order",
            columns: vec![
                col(
                    "id",
                    "integer",
                    "Customer identifier, increasing with created_at",
                ),
                col("name", "text", "Full name"),
                col("email", "text", "Email address, unique"),
                DemoColumn {
                    values: city_names(),
                    ..col("city", "text", "City of the shipping address")
                },
                DemoColumn {
                    values: country_names(),
                    ..col("country", "text", "Country of the shipping address")
                },
                col("region_id", "integer", "Sales region of the country"),
                col(
                    "created_at",
                    "date",
                    "Sign-up date, 2022-01-01 to 2025-12-31",
                ),
            ],
            primary_key: vec!["id"],
            foreign_keys: vec![fk("region_id", "regions")],
            rows: demo_gen::CUSTOMERS,
        },
        DemoTable {
            name: "products",
            comment: "The product catalog",
            columns: vec![
                col("id", "integer", "Product identifier"),
                col("name", "text", "Product name, unique"),
                DemoColumn {
                    values: demo_words::CATEGORY_NAMES,
                    ..col("category", "text", "Product category")
                },
                col("price", "numeric(10,2)", "Current list price"),
            ],
            primary_key: vec!["id"],
            foreign_keys: vec![],
            rows: demo_gen::PRODUCTS,
        },
        DemoTable {
            name: "orders",
            comment: "Orders placed by customers, in time order",
            columns: vec![
                col(
                    "id",
                    "integer",
                    "Order identifier, increasing with ordered_at",
                ),
                col("customer_id", "integer", "Who placed the order"),
                DemoColumn {
                    values: ORDER_STATUSES,
                    ..col("status", "text", "pending, shipped, delivered or cancelled")
                },
                col(
                    "ordered_at",
                    "timestamp without time zone",
                    "When the order was placed (not before the customer signed up)",
                ),
                col(
                    "total",
                    "numeric(12,2)",
                    "Order value: the sum of quantity * unit_price over its items",
                ),
            ],
            primary_key: vec!["id"],
            foreign_keys: vec![fk("customer_id", "customers")],
            rows: demo_gen::ORDERS,
        },
        DemoTable {
            name: "order_items",
            comment: "Lines of an order: one per product ordered",
            columns: vec![
                col("order_id", "integer", "The order"),
                col("product_id", "integer", "The product"),
                col("quantity", "integer", "How many, 1 to 5"),
                col(
                    "unit_price",
                    "numeric(10,2)",
                    "Price paid per unit: the list price, or 10% off it",
                ),
            ],
            primary_key: vec!["order_id", "product_id"],
            foreign_keys: vec![fk("order_id", "orders"), fk("product_id", "products")],
            rows: demo_gen::ORDER_ITEMS,
        },
    ]
}

impl DemoTable {
    /// The Arrow schema the table's batches have.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(c.name, arrow_type(c.sql_type), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// The table as the catalog snapshot models it (schema `public`).
    pub fn to_catalog_table(&self) -> Table {
        Table {
            schema: DEMO_SCHEMA.into(),
            name: self.name.into(),
            kind: RelationKind::Table,
            comment: Some(self.comment.into()),
            row_estimate: self.rows as f64,
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.into(),
                    data_type: c.sql_type.into(),
                    type_oid: type_oid(c.sql_type),
                    nullable: c.nullable,
                    comment: Some(c.comment.into()),
                    common_values: c.values.iter().map(|v| v.to_string()).collect(),
                    n_distinct: (!c.values.is_empty()).then_some(c.values.len() as f64),
                })
                .collect(),
            primary_key: self.primary_key.iter().map(|c| c.to_string()).collect(),
            foreign_keys: self
                .foreign_keys
                .iter()
                .map(|f| ForeignKey {
                    columns: f.columns.iter().map(|c| c.to_string()).collect(),
                    ref_schema: DEMO_SCHEMA.into(),
                    ref_table: f.ref_table.into(),
                    ref_columns: f.ref_columns.iter().map(|c| c.to_string()).collect(),
                })
                .collect(),
            indexes: vec![],
            stats: None,
        }
    }
}

/// `pg_type.oid` of the types the demo uses.
fn type_oid(sql_type: &str) -> u32 {
    match sql_type {
        "integer" => 23,
        "text" => 25,
        "date" => 1082,
        "timestamp without time zone" => 1114,
        t if t.starts_with("numeric") => 1700,
        _ => 0,
    }
}

/// The demo database as a catalog snapshot: schema `public`, search_path
/// `public`.
pub fn demo_catalog(database: &str) -> Catalog {
    Catalog::new(
        database.into(),
        vec![DEMO_SCHEMA.into()],
        demo_tables()
            .iter()
            .map(DemoTable::to_catalog_table)
            .collect(),
    )
}

/// The generated rows: one batch per table, in [`demo_tables`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoData {
    pub tables: Vec<(&'static str, RecordBatch)>,
}

impl DemoData {
    pub fn table(&self, name: &str) -> Option<&RecordBatch> {
        self.tables.iter().find(|(n, _)| *n == name).map(|(_, b)| b)
    }
}

/// The demo rows, generated on first use and shared by the whole process.
pub fn demo_data() -> &'static DemoData {
    static DATA: OnceLock<DemoData> = OnceLock::new();
    DATA.get_or_init(demo_gen::generate)
}

/// Rows per batch inside a partition: DataFusion's default batch size.
const BATCH_ROWS: usize = 8192;

/// `batch` as a memory table of `partitions` contiguous partitions (fewer
/// when it is small), each a list of zero-copy slices of at most
/// 8192 rows.
pub fn mem_table(batch: &RecordBatch, partitions: usize) -> Result<MemTable> {
    let rows = batch.num_rows();
    let partitions = partitions.clamp(1, rows.div_ceil(BATCH_ROWS).max(1));
    let per_partition = rows.div_ceil(partitions);
    let mut parts = Vec::with_capacity(partitions);
    for p in 0..partitions {
        let start = (p * per_partition).min(rows);
        let end = ((p + 1) * per_partition).min(rows);
        let mut slices = Vec::new();
        let mut offset = start;
        while offset < end {
            let len = BATCH_ROWS.min(end - offset);
            slices.push(batch.slice(offset, len));
            offset += len;
        }
        parts.push(slices);
    }
    MemTable::try_new(batch.schema(), parts)
}
