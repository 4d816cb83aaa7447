//! Tests for the static rules, over a small shop catalog: each rule has a
//! statement that must fire it and one that must not.

mod joins;
mod pagination;
mod plan_check;
mod predicates;
mod select;
mod types;

use std::sync::OnceLock;

use helios_planner::catalog::{
    Catalog, Column, ForeignKey, Index, RelationKind, Table, TableStats,
};
use helios_planner::sql::parse;

use super::{RuleContext, StaticAnalyzer, RULES};
use crate::{Finding, Options};

fn column(name: &str, data_type: &str, nullable: bool) -> Column {
    Column {
        name: name.into(),
        data_type: data_type.into(),
        type_oid: 0,
        nullable,
        comment: None,
        common_values: vec![],
        n_distinct: None,
    }
}

fn index(name: &str, columns: &[Option<&str>], method: &str, definition: &str) -> Index {
    Index {
        name: name.into(),
        columns: columns.iter().map(|c| c.map(String::from)).collect(),
        unique: false,
        primary: name.ends_with("_pkey"),
        method: method.into(),
        partial: false,
        definition: definition.into(),
    }
}

fn btree(table: &str, name: &str, column: &str) -> Index {
    index(
        name,
        &[Some(column)],
        "btree",
        &format!("CREATE INDEX {name} ON public.{table} USING btree ({column})"),
    )
}

fn fk(columns: &[&str], table: &str, ref_columns: &[&str]) -> ForeignKey {
    ForeignKey {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        ref_schema: "public".into(),
        ref_table: table.into(),
        ref_columns: ref_columns.iter().map(|c| c.to_string()).collect(),
    }
}

fn table(name: &str, rows: f64, columns: Vec<Column>) -> Table {
    Table {
        schema: "public".into(),
        name: name.into(),
        kind: RelationKind::Table,
        comment: None,
        row_estimate: rows,
        columns,
        primary_key: vec![],
        foreign_keys: vec![],
        indexes: vec![],
        stats: None,
    }
}

/// customers (50k rows) ← orders (2M) ← order_items (8M) → products (5k);
/// events (never analyzed, 300k live rows); small (10 rows).
pub(super) fn shop() -> Catalog {
    let mut customers = table(
        "customers",
        50_000.0,
        vec![
            column("id", "integer", false),
            column("name", "text", true),
            column("email", "text", true),
            column("city", "character varying(40)", true),
            column("created_at", "timestamp with time zone", false),
            column("active", "boolean", false),
            column("ref", "uuid", true),
        ],
    );
    customers.primary_key = vec!["id".into()];
    customers.indexes = vec![
        btree("customers", "customers_pkey", "id"),
        btree("customers", "customers_email_idx", "email"),
        btree("customers", "customers_created_at_idx", "created_at"),
    ];

    let mut orders = table(
        "orders",
        2_000_000.0,
        vec![
            column("id", "bigint", false),
            column("customer_id", "integer", true),
            column("total", "numeric(12,2)", true),
            column("status", "text", false),
            column("placed_at", "timestamp without time zone", false),
            column("note", "text", true),
        ],
    );
    orders.primary_key = vec!["id".into()];
    orders.foreign_keys = vec![fk(&["customer_id"], "customers", &["id"])];
    orders.indexes = vec![
        btree("orders", "orders_pkey", "id"),
        btree("orders", "orders_customer_id_idx", "customer_id"),
        btree("orders", "orders_placed_at_idx", "placed_at"),
    ];

    let mut products = table(
        "products",
        5_000.0,
        vec![
            column("id", "integer", false),
            column("sku", "text", false),
            column("title", "text", true),
            column("price", "numeric", true),
        ],
    );
    products.primary_key = vec!["id".into()];
    products.indexes = vec![
        btree("products", "products_pkey", "id"),
        index(
            "products_title_trgm",
            &[Some("title")],
            "gin",
            "CREATE INDEX products_title_trgm ON public.products USING gin (title gin_trgm_ops)",
        ),
        index(
            "products_lower_sku",
            &[None],
            "btree",
            "CREATE INDEX products_lower_sku ON public.products USING btree (lower(sku))",
        ),
    ];

    let mut items = table(
        "order_items",
        8_000_000.0,
        vec![
            column("order_id", "bigint", false),
            column("product_id", "integer", false),
            column("qty", "integer", false),
        ],
    );
    items.foreign_keys = vec![
        fk(&["order_id"], "orders", &["id"]),
        fk(&["product_id"], "products", &["id"]),
    ];
    items.indexes = vec![index(
        "order_items_pkey",
        &[Some("order_id"), Some("product_id")],
        "btree",
        "CREATE UNIQUE INDEX order_items_pkey ON public.order_items USING btree (order_id, product_id)",
    )];

    let mut events = table(
        "events",
        -1.0,
        vec![
            column("id", "bigint", false),
            column("payload", "jsonb", true),
            column("at", "timestamp with time zone", true),
        ],
    );
    events.stats = Some(TableStats {
        live_rows: 300_000.0,
        ..TableStats::default()
    });

    let small = table(
        "small",
        10.0,
        vec![column("k", "integer", true), column("v", "text", true)],
    );

    Catalog::new(
        "shop".into(),
        vec!["public".into()],
        vec![customers, orders, products, items, events, small],
    )
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(shop)
}

pub(super) fn analyzer() -> &'static StaticAnalyzer {
    static ANALYZER: OnceLock<StaticAnalyzer> = OnceLock::new();
    ANALYZER.get_or_init(|| StaticAnalyzer::new(catalog()))
}

fn statement(sql: &str) -> datafusion::sql::sqlparser::ast::Statement {
    let mut statements = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(statements.len(), 1, "{sql}");
    statements.pop().expect("one statement")
}

/// The findings of one syntax-tree rule.
pub(super) fn run(rule: &str, sql: &str) -> Vec<Finding> {
    let (_, f) = RULES
        .iter()
        .find(|(id, _)| *id == rule)
        .unwrap_or_else(|| panic!("no rule {rule}"));
    let statement = statement(sql);
    let options = Options::default();
    let cx = RuleContext {
        sql,
        statement: &statement,
        catalog: catalog(),
        options: &options,
    };
    let mut out = Vec::new();
    f(&cx, &mut out);
    for finding in &out {
        assert_eq!(finding.rule, rule);
    }
    out
}

/// Every static finding, the plan rules included.
pub(super) fn all(sql: &str) -> Vec<Finding> {
    analyzer().findings(sql, &statement(sql), &Options::default())
}

/// The one finding `rule` reports for `sql`.
pub(super) fn one(rule: &str, sql: &str) -> Finding {
    let mut found = run(rule, sql);
    assert_eq!(found.len(), 1, "{rule} on {sql}: {found:#?}");
    found.pop().expect("one finding")
}

pub(super) fn none(rule: &str, sql: &str) {
    let found = run(rule, sql);
    assert!(found.is_empty(), "{rule} fired on {sql}: {found:#?}");
}

#[test]
fn every_rule_has_a_unique_id() {
    let mut ids: Vec<&str> = RULES.iter().map(|(id, _)| *id).collect();
    ids.extend(super::PLAN_RULES);
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
}
