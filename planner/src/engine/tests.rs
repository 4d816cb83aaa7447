//! The engine over the demo database: data, queries, parameters, errors.

use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::physical_plan::common::collect as collect_batches;

use super::*;

mod errors;

pub(super) fn engine() -> Engine {
    Engine::demo("postgres")
}

/// Every value as text, row by row; a stream error is mapped.
pub(super) async fn collect(
    stream: SendableRecordBatchStream,
) -> Result<Vec<Vec<String>>, EngineError> {
    let batches = collect_batches(stream).await.map_err(EngineError::from)?;
    let mut rows = Vec::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(row) {
                            "NULL".to_string()
                        } else {
                            array_value_to_string(c, row).expect("displayable")
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

pub(super) async fn rows(engine: &Engine, sql: &str) -> Vec<Vec<String>> {
    let stream = engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    collect(stream)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The single value a query returns.
pub(super) async fn value(engine: &Engine, sql: &str) -> String {
    let rows = rows(engine, sql).await;
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0][0].clone()
}

/// The error a query fails with, while planning or while streaming.
pub(super) async fn error(engine: &Engine, sql: &str) -> EngineError {
    match engine.query(sql).await {
        Err(e) => e,
        Ok(stream) => match collect(stream).await {
            Err(e) => e,
            Ok(rows) => panic!("{sql} succeeded: {rows:?}"),
        },
    }
}

#[test]
fn generation_is_deterministic_and_fast_enough() {
    let start = Instant::now();
    let first = demo_gen::generate();
    let elapsed = start.elapsed();
    eprintln!("demo generation took {elapsed:?}");
    let second = demo_gen::generate();
    assert!(first == second, "two generations differ");
    assert!(&first == demo_data(), "the shared data differs");
    // Generous: this runs unoptimized next to other test binaries.
    assert!(elapsed.as_secs() < 10, "generation took {elapsed:?}");
}

#[test]
fn generated_batches_match_the_description() {
    let data = demo_data();
    let tables = demo_tables();
    assert_eq!(data.tables.len(), tables.len());
    for (table, (name, batch)) in tables.iter().zip(&data.tables) {
        assert_eq!(table.name, *name);
        assert_eq!(batch.schema(), table.arrow_schema(), "{name}");
        assert_eq!(batch.num_rows(), table.rows, "{name}");
    }
}

#[test]
fn category_names_follow_the_categories() {
    let names: Vec<&str> = demo_words::CATEGORIES.iter().map(|c| c.0).collect();
    assert_eq!(names, demo_words::CATEGORY_NAMES);
}

#[test]
fn memory_tables_split_rows_into_partitions() {
    let batch = demo_data().table("orders").expect("orders");
    for partitions in [1, 2, 3, 8] {
        let table = demo::mem_table(batch, partitions).expect("a memory table");
        let parts = table.batches.len();
        assert_eq!(parts, partitions);
        let mut total = 0;
        for part in &table.batches {
            let batches = part.blocking_read();
            assert!(batches.iter().all(|b| b.num_rows() <= 8192));
            total += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        }
        assert_eq!(total, batch.num_rows());
    }
    let regions = demo_data().table("regions").expect("regions");
    assert_eq!(demo::mem_table(regions, 8).expect("table").batches.len(), 1);
}

#[test]
fn the_catalog_describes_keys_and_comments() {
    let catalog = demo_catalog("postgres");
    assert_eq!(catalog.database, "postgres");
    assert_eq!(catalog.tables.len(), 5);
    let items = catalog.resolve(None, "order_items").expect("order_items");
    assert_eq!(items.primary_key, vec!["order_id", "product_id"]);
    let refs: Vec<&str> = items
        .foreign_keys
        .iter()
        .map(|f| f.ref_table.as_str())
        .collect();
    assert_eq!(refs, vec!["orders", "products"]);
    let orders = catalog.resolve(None, "orders").expect("orders");
    let status = orders.column("status").expect("status");
    assert_eq!(status.common_values, ORDER_STATUSES_TEXT);
    assert_eq!(status.type_oid, 25);
    let total = orders.column("total").expect("total");
    assert_eq!(
        (total.data_type.as_str(), total.type_oid),
        ("numeric(12,2)", 1700)
    );
    assert!(orders.comment.is_some());
}

const ORDER_STATUSES_TEXT: [&str; 4] = ["pending", "shipped", "delivered", "cancelled"];

#[tokio::test]
async fn row_counts() {
    let engine = engine();
    for table in demo_tables() {
        let count = value(&engine, &format!("SELECT count(*) FROM {}", table.name)).await;
        assert_eq!(count, table.rows.to_string(), "{}", table.name);
    }
    assert_eq!(demo_tables()[4].rows, 300_276);
}

#[tokio::test]
async fn pinned_aggregates() {
    let engine = engine();
    let pinned = [
        ("SELECT sum(total) FROM orders", "60635705.72"),
        ("SELECT sum(quantity) FROM order_items", "487559"),
        ("SELECT sum(price) FROM products", "126385.99"),
        ("SELECT count(DISTINCT name) FROM customers", "2267"),
        ("SELECT count(DISTINCT country) FROM customers", "31"),
        ("SELECT min(created_at) FROM customers", "2022-01-01"),
        ("SELECT max(created_at) FROM customers", "2025-12-31"),
        ("SELECT min(ordered_at) FROM orders", "2022-01-02T07:42:27"),
        ("SELECT max(ordered_at) FROM orders", "2025-12-31T22:56:11"),
        ("SELECT name FROM customers WHERE id = 42", "Marco Jones"),
        (
            "SELECT email FROM customers WHERE id = 42",
            "marco.jones42@example.net",
        ),
        (
            "SELECT name FROM products WHERE id = 1",
            "Classic Face Cream",
        ),
    ];
    let mut wrong = Vec::new();
    for (sql, expected) in pinned {
        let got = value(&engine, sql).await;
        if got != expected {
            wrong.push(format!("{sql}: {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let statuses = rows(
        &engine,
        "SELECT status, count(*) FROM orders GROUP BY status ORDER BY status",
    )
    .await;
    let statuses: Vec<(&str, &str)> = statuses
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("cancelled", "6035"),
            ("delivered", "92696"),
            ("pending", "570"),
            ("shipped", "699")
        ]
    );
}

#[tokio::test]
async fn keys_hold() {
    let engine = engine();
    let zero = [
        // Primary keys are unique.
        "SELECT count(*) FROM (SELECT order_id, product_id FROM order_items \
         GROUP BY order_id, product_id HAVING count(*) > 1)",
        "SELECT count(*) - count(DISTINCT email) FROM customers",
        "SELECT count(*) - count(DISTINCT name) FROM products",
        // Foreign keys resolve.
        "SELECT count(*) FROM customers c LEFT JOIN regions r ON r.id = c.region_id \
         WHERE r.id IS NULL",
        "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id \
         WHERE c.id IS NULL",
        "SELECT count(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id \
         WHERE o.id IS NULL",
        "SELECT count(*) FROM order_items i LEFT JOIN products p ON p.id = i.product_id \
         WHERE p.id IS NULL",
        // Every order has items, and its total is their sum.
        "SELECT count(*) FROM orders o LEFT JOIN (SELECT order_id, \
         sum(quantity * unit_price) AS s FROM order_items GROUP BY order_id) i \
         ON i.order_id = o.id WHERE i.s IS NULL OR i.s <> o.total",
        // Nobody orders before signing up.
        "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE CAST(o.ordered_at AS DATE) < c.created_at",
        // Ids follow time.
        "SELECT count(*) FROM orders a JOIN orders b ON b.id = a.id + 1 \
         WHERE b.ordered_at < a.ordered_at",
    ];
    for sql in zero {
        assert_eq!(value(&engine, sql).await, "0", "{sql}");
    }
}

#[tokio::test]
async fn join_and_group_by() {
    let engine = engine();
    let by_category = rows(
        &engine,
        "SELECT p.category, count(DISTINCT o.id) AS orders, sum(i.quantity * i.unit_price) AS revenue \
         FROM orders o JOIN order_items i ON i.order_id = o.id \
         JOIN products p ON p.id = i.product_id \
         WHERE o.status <> 'cancelled' \
         GROUP BY p.category ORDER BY revenue DESC",
    )
    .await;
    assert_eq!(by_category.len(), 8, "{by_category:?}");
    assert_eq!(by_category[0][0], "Electronics", "{by_category:?}");
    let revenue: f64 = by_category
        .iter()
        .map(|r| r[2].parse::<f64>().expect("a number"))
        .sum();
    let total: f64 = value(
        &engine,
        "SELECT sum(total) FROM orders WHERE status <> 'cancelled'",
    )
    .await
    .parse()
    .expect("a number");
    assert!((revenue - total).abs() < 0.01, "{revenue} vs {total}");

    let by_region = rows(
        &engine,
        "SELECT r.name, count(*) FROM orders o JOIN customers c ON c.id = o.customer_id \
         JOIN regions r ON r.id = c.region_id GROUP BY r.name ORDER BY r.name",
    )
    .await;
    assert_eq!(by_region.len(), 5);
    let orders: u64 = by_region.iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    assert_eq!(orders, 100_000);
}

#[tokio::test]
async fn catalog_and_information_schema() {
    let engine = Engine::demo("shop");
    assert_eq!(engine.database(), "shop");
    let tables = rows(
        &engine,
        "SELECT table_catalog, table_name FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY table_name",
    )
    .await;
    let names: Vec<&str> = tables.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        names,
        ["customers", "order_items", "orders", "products", "regions"]
    );
    assert!(tables.iter().all(|r| r[0] == "shop"));
    // Qualified names resolve too.
    assert_eq!(
        value(&engine, "SELECT count(*) FROM shop.public.regions").await,
        "5"
    );
    assert_eq!(
        value(&engine, "SELECT count(*) FROM public.regions").await,
        "5"
    );
}

#[tokio::test]
async fn postgres_syntax_works() {
    let engine = engine();
    let sql = "SELECT EXTRACT(YEAR FROM ordered_at) AS y, count(*) FROM orders \
               GROUP BY 1 ORDER BY 1";
    let years = rows(&engine, sql).await;
    let years: Vec<&str> = years.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(years, ["2022", "2023", "2024", "2025"]);
    assert_eq!(
        value(&engine, "SELECT name::text FROM regions WHERE id = 3").await,
        "Europe"
    );
    let prepared = engine
        .prepare("SELECT name::text, 'x'::varchar FROM regions")
        .await
        .expect("prepares");
    assert!(prepared
        .schema
        .fields()
        .iter()
        .all(|f| f.data_type() == &DataType::Utf8));
    let explain = rows(&engine, "EXPLAIN SELECT count(*) FROM orders").await;
    assert!(!explain.is_empty());
}
