//! Parameters, file tables, and the SQLSTATE of each kind of error.

use datafusion::arrow::datatypes::TimeUnit;
use datafusion::common::DataFusionError;

use super::*;

async fn run(engine: &Engine, sql: &str, params: &[Option<&str>]) -> Vec<Vec<String>> {
    let prepared = engine
        .prepare(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let params: Vec<Option<String>> = params.iter().map(|p| p.map(str::to_string)).collect();
    let stream = engine
        .execute(&prepared, &params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    collect(stream)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn parameters_are_typed_and_bound() {
    let engine = engine();
    let sql = "SELECT name FROM customers WHERE id = $1";
    let prepared = engine.prepare(sql).await.expect("prepares");
    assert_eq!(prepared.param_types, vec![Some(DataType::Int32)]);
    assert_eq!(prepared.schema.field(0).name(), "name");
    assert_eq!(prepared.sql, sql);
    let expected = value(&engine, "SELECT name FROM customers WHERE id = 42").await;
    assert_eq!(run(&engine, sql, &[Some("42")]).await, vec![vec![expected]]);
    // The same statement again, other values.
    assert_eq!(run(&engine, sql, &[Some("10001")]).await.len(), 0);
    assert_eq!(run(&engine, sql, &[None]).await.len(), 0);

    let typed = [
        (
            "SELECT count(*) FROM orders WHERE ordered_at >= $1",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            "2025-12-01",
        ),
        (
            "SELECT count(*) FROM products WHERE price > $1",
            DataType::Decimal128(10, 2),
            "100.50",
        ),
        (
            "SELECT count(*) FROM customers WHERE created_at < $1",
            DataType::Date32,
            "2022-02-01",
        ),
        (
            "SELECT count(*) FROM orders WHERE (status = 'pending') = $1",
            DataType::Boolean,
            "true",
        ),
        (
            "SELECT count(*) FROM customers WHERE country = $1",
            DataType::Utf8,
            "Japan",
        ),
    ];
    for (sql, t, param) in typed {
        let prepared = engine.prepare(sql).await.expect("prepares");
        assert_eq!(prepared.param_types, vec![Some(t)], "{sql}");
        let count: u64 = run(&engine, sql, &[Some(param)]).await[0][0]
            .parse()
            .expect("a count");
        assert!(count > 0, "{sql}");
    }

    // LIMIT, and a full timestamp.
    let sql = "SELECT id FROM orders WHERE ordered_at < $1 ORDER BY id LIMIT $2";
    let prepared = engine.prepare(sql).await.expect("prepares");
    assert_eq!(
        prepared.param_types,
        vec![
            Some(DataType::Timestamp(TimeUnit::Microsecond, None)),
            Some(DataType::Int64)
        ]
    );
    assert_eq!(
        run(&engine, sql, &[Some("2022-01-05 12:00:00"), Some("3")],).await,
        vec![vec!["1".to_string()], vec!["2".into()], vec!["3".into()]]
    );

    // Several parameters, one repeated; a float one.
    let rows = run(
        &engine,
        "SELECT id FROM products WHERE price BETWEEN $1 AND $2 AND id <> $3 AND id <> $3 \
         AND price * 1.0 > $4 ORDER BY id LIMIT 3",
        &[Some("10"), Some("20"), Some("1"), Some("0.5")],
    )
    .await;
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn an_untyped_parameter_is_text() {
    let engine = engine();
    let prepared = engine.prepare("SELECT $1 AS v").await.expect("prepares");
    assert_eq!(prepared.param_types, vec![None]);
    assert_eq!(prepared.schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(
        run(&engine, "SELECT $1 AS v", &[Some("hello")]).await,
        vec![vec!["hello".to_string()]]
    );
    assert_eq!(
        run(&engine, "SELECT $1 AS v", &[None]).await,
        vec![vec!["NULL".to_string()]]
    );
    // A gap: $1 is never used but still counts.
    let prepared = engine
        .prepare("SELECT count(*) FROM regions WHERE id = $2")
        .await
        .expect("prepares");
    assert_eq!(prepared.param_types, vec![None, Some(DataType::Int32)]);
}

#[tokio::test]
async fn parameter_errors() {
    let engine = engine();
    let prepared = engine
        .prepare("SELECT name FROM customers WHERE id = $1")
        .await
        .expect("prepares");
    let bind = |values: Vec<Option<String>>| {
        let engine = &engine;
        let prepared = &prepared;
        async move {
            engine
                .execute(prepared, &values)
                .await
                .err()
                .expect("fails")
        }
    };
    let e = bind(vec![Some("abc".into())]).await;
    assert_eq!(e.sqlstate, "22P02", "{e}");
    assert_eq!(e.message, "invalid input syntax for type integer: \"abc\"");
    let e = bind(vec![Some("99999999999".into())]).await;
    assert_eq!(e.sqlstate, "22003", "{e}");
    let e = bind(vec![]).await;
    assert_eq!(e.sqlstate, "08P01", "{e}");
    let e = bind(vec![Some("1".into()), Some("2".into())]).await;
    assert_eq!(e.sqlstate, "08P01", "{e}");
    // The simple protocol has no parameters to bind.
    let e = error(&engine, "SELECT name FROM customers WHERE id = $1").await;
    assert_eq!(e.sqlstate, "42P02", "{e}");
}

/// `(sql, sqlstate, message)`; an empty message is not checked.
const ERRORS: &[(&str, &str, &str)] = &[
    // Unknown relations, as PostgreSQL words it.
    (
        "SELECT * FROM nope",
        "42P01",
        "relation \"nope\" does not exist",
    ),
    (
        "SELECT * FROM nosuch.orders",
        "42P01",
        "relation \"nosuch.orders\" does not exist",
    ),
    (
        "SELECT nope FROM nope",
        "42P01",
        "relation \"nope\" does not exist",
    ),
    (
        "SELECT * FROM orders JOIN missing ON true",
        "42P01",
        "relation \"missing\" does not exist",
    ),
    // Unknown and ambiguous columns.
    (
        "SELECT nope FROM orders",
        "42703",
        "column \"nope\" does not exist",
    ),
    (
        "SELECT o.nope FROM orders o",
        "42703",
        "column o.nope does not exist",
    ),
    (
        "SELECT id FROM orders WHERE totl > 5",
        "42703",
        "column \"totl\" does not exist",
    ),
    (
        "SELECT id FROM customers, orders",
        "42702",
        "column reference \"id\" is ambiguous",
    ),
    // Syntax.
    ("SELEC 1", "42601", ""),
    ("SELECT * FROM orders WHERE", "42601", ""),
    ("SELECT (1", "42601", ""),
    ("", "42601", "empty query"),
    (
        "SELECT 1; SELECT 2",
        "42601",
        "cannot insert multiple commands into a prepared statement",
    ),
    // Functions, operators and types.
    (
        "SELECT nosuchfn(id) FROM orders",
        "42883",
        "function nosuchfn does not exist",
    ),
    ("SELECT name + 1 FROM customers", "42883", ""),
    ("SELECT id FROM regions WHERE name", "42804", ""),
    // Arithmetic.
    ("SELECT 1 / 0", "22012", "division by zero"),
    ("SELECT id / 0 FROM regions", "22012", "division by zero"),
    ("SELECT total / 0 FROM orders", "22012", "division by zero"),
    ("SELECT CAST('abc' AS INTEGER)", "22P02", ""),
    // Writes.
    (
        "INSERT INTO regions VALUES (6, 'Antarctica')",
        "25006",
        "the embedded demo database is read-only",
    ),
    ("UPDATE orders SET status = 'shipped'", "25006", ""),
    ("DELETE FROM orders", "25006", ""),
    ("CREATE TABLE t (a int)", "25006", ""),
    ("CREATE VIEW v AS SELECT 1", "25006", ""),
    ("DROP TABLE orders", "25006", ""),
    ("TRUNCATE orders", "25006", ""),
    ("SELECT * FROM orders FOR UPDATE", "25006", ""),
    ("SELECT * INTO copy FROM orders", "25006", ""),
    (
        "WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d",
        "25006",
        "",
    ),
    (
        "EXPLAIN ANALYZE INSERT INTO regions VALUES (6, 'x')",
        "25006",
        "",
    ),
    // sqlparser's COPY is not DataFusion's (which writes files): unsupported.
    ("COPY orders TO '/tmp/helios-engine-copy.csv'", "0A000", ""),
    // Session statements are the server's.
    ("SET datafusion.execution.batch_size = 1", "0A000", ""),
    ("BEGIN", "0A000", ""),
];

#[tokio::test]
async fn errors_map_to_sqlstates() {
    let engine = engine();
    let mut wrong = Vec::new();
    for (sql, sqlstate, message) in ERRORS {
        let e = error(&engine, sql).await;
        if e.sqlstate != *sqlstate || (!message.is_empty() && e.message != *message) {
            wrong.push(format!("{sql}: expected {sqlstate} {message:?}, got {e}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing was written.
    assert_eq!(value(&engine, "SELECT count(*) FROM regions").await, "5");
}

#[tokio::test]
async fn not_implemented_is_feature_not_supported() {
    let e = map_error(&DataFusionError::NotImplemented("LATERAL VIEW".into()));
    assert_eq!((e.sqlstate, e.message.as_str()), ("0A000", "LATERAL VIEW"));
    let e = map_error(&DataFusionError::Internal("oops".into()));
    assert_eq!(e.sqlstate, "XX000");
    // Wrapped errors are looked through.
    let wrapped = DataFusionError::Context(
        "Optimizer rule failed".into(),
        Box::new(DataFusionError::ArrowError(
            Box::new(datafusion::arrow::error::ArrowError::DivideByZero),
            None,
        )),
    );
    assert_eq!(map_error(&wrapped).sqlstate, "22012");
}

#[tokio::test]
async fn unknown_columns_suggest_close_names() {
    let engine = engine();
    let e = error(&engine, "SELECT totl FROM orders").await;
    let detail = e.detail.expect("a detail");
    assert!(detail.contains("orders.total"), "{detail}");
}

#[tokio::test]
async fn file_tables() {
    let dir = std::env::temp_dir().join(format!("helios-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let csv = dir.join("cities.csv");
    std::fs::write(&csv, "city,population\nOslo,709000\nBergen,291000\n").expect("written");
    let ndjson = dir.join("events.ndjson");
    std::fs::write(
        &ndjson,
        "{\"kind\":\"click\",\"n\":3}\n{\"kind\":\"view\",\"n\":5}\n{\"kind\":\"click\",\"n\":4}\n",
    )
    .expect("written");

    let engine = Engine::new("files");
    engine
        .register_csv("cities", csv.to_str().expect("utf-8"))
        .await
        .expect("registers");
    engine
        .register_ndjson("events", ndjson.to_str().expect("utf-8"))
        .await
        .expect("registers");
    assert_eq!(
        value(&engine, "SELECT sum(population) FROM cities").await,
        "1000000"
    );
    assert_eq!(
        rows(
            &engine,
            "SELECT kind, sum(n) FROM events GROUP BY kind ORDER BY kind"
        )
        .await,
        vec![
            vec!["click".to_string(), "7".into()],
            vec!["view".into(), "5".into()]
        ]
    );
    let e = engine
        .register_csv("missing", dir.join("none.csv").to_str().expect("utf-8"))
        .await
        .expect_err("fails");
    assert_ne!(e.sqlstate, "", "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
