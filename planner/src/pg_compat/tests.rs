//! psql 15's backslash commands, with the exact queries `psql -E` showed
//! against PostgreSQL 15 (oids substituted as psql does), run through
//! [`rewrite`] and DataFusion against two small tables.

use std::sync::Arc;

use datafusion::arrow::array::{Date32Array, Decimal128Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Constraint, Constraints};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::{answer, register, rewrite, Answer};

/// customers(id int8 not null primary key, name text, created date) with
/// two rows, orders(id int8, customer_id int8, total numeric(12,2)).
pub(super) fn context() -> SessionContext {
    let config = SessionConfig::new().set_str("datafusion.sql_parser.dialect", "PostgreSQL");
    let ctx = SessionContext::new_with_config(config);
    let customers = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("created", DataType::Date32, true),
    ]));
    let batch = RecordBatch::try_new(
        customers.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("alice"), None])),
            Arc::new(Date32Array::from(vec![Some(19_723), None])),
        ],
    )
    .unwrap();
    let table = MemTable::try_new(customers, vec![vec![batch]])
        .unwrap()
        .with_constraints(Constraints::new_unverified(vec![Constraint::PrimaryKey(
            vec![0],
        )]));
    ctx.register_table("customers", Arc::new(table)).unwrap();
    let orders = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("customer_id", DataType::Int64, true),
        Field::new("total", DataType::Decimal128(12, 2), true),
    ]));
    let batch = RecordBatch::try_new(
        orders.clone(),
        vec![
            Arc::new(Int64Array::from(vec![10])),
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(
                Decimal128Array::from(vec![1234])
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
        ],
    )
    .unwrap();
    let table = MemTable::try_new(orders, vec![vec![batch]]).unwrap();
    ctx.register_table("orders", Arc::new(table)).unwrap();
    register(&ctx, "helios", "alice").unwrap();
    ctx
}

/// Rewrite, plan and run `sql`; every cell as text, NULL as "NULL".
pub(super) async fn run(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let (names, rows) = run_named(ctx, sql).await;
    let _ = names;
    rows
}

/// Like [`run`], with the column names.
pub(super) async fn run_named(ctx: &SessionContext, sql: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let rewritten = rewrite(sql);
    let df = match ctx.sql(&rewritten).await {
        Ok(df) => df,
        Err(e) => panic!("planning failed: {e}\n--- original:\n{sql}\n--- rewritten:\n{rewritten}"),
    };
    let names = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let batches = match df.collect().await {
        Ok(b) => b,
        Err(e) => panic!("execution failed: {e}\n--- rewritten:\n{rewritten}"),
    };
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    (names, rows)
}

pub(super) fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

pub(super) const DT: &str = r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#;

#[tokio::test]
async fn psql_dt_lists_tables() {
    let ctx = context();
    assert_eq!(
        run(&ctx, DT).await,
        vec![
            row(&["public", "customers", "table", "alice"]),
            row(&["public", "orders", "table", "alice"]),
        ]
    );
    // \dv and \d: the same query with other relkinds.
    let dv = DT.replace("IN ('r','p','')", "IN ('v','')");
    assert!(run(&ctx, &dv).await.is_empty());
    let d = DT.replace("IN ('r','p','')", "IN ('r','p','v','m','S','f','')");
    assert_eq!(run(&ctx, &d).await.len(), 2);
}

#[tokio::test]
async fn psql_dt_plus_shows_sizes() {
    let ctx = context();
    let sql = r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner",
  CASE c.relpersistence WHEN 'p' THEN 'permanent' WHEN 't' THEN 'temporary' WHEN 'u' THEN 'unlogged' END as "Persistence",
  am.amname as "Access method",
  pg_catalog.pg_size_pretty(pg_catalog.pg_table_size(c.oid)) as "Size",
  pg_catalog.obj_description(c.oid, 'pg_class') as "Description"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#;
    let rows = run(&ctx, sql).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0][..6],
        row(&["public", "customers", "table", "alice", "permanent", "heap"])
    );
    assert!(
        rows[0][6].ends_with(" bytes") && rows[0][6] != "0 bytes",
        "{rows:?}"
    );
    assert_eq!(rows[0][7], "NULL");
}

#[tokio::test]
async fn psql_l_lists_the_database() {
    let ctx = context();
    let sql = r#"SELECT d.datname as "Name",
       pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
       pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding",
       d.datcollate as "Collate",
       d.datctype as "Ctype",
       d.daticulocale as "ICU Locale",
       CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS "Locale Provider",
       pg_catalog.array_to_string(d.datacl, E'\n') AS "Access privileges"
FROM pg_catalog.pg_database d
ORDER BY 1;"#;
    assert_eq!(
        run(&ctx, sql).await,
        vec![row(&[
            "helios", "alice", "UTF8", "C.UTF-8", "C.UTF-8", "NULL", "libc", "NULL"
        ])]
    );
}

#[tokio::test]
async fn psql_dn_lists_schemas() {
    let ctx = context();
    let sql = r#"SELECT n.nspname AS "Name",
  pg_catalog.pg_get_userbyid(n.nspowner) AS "Owner"
FROM pg_catalog.pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
ORDER BY 1;"#;
    assert_eq!(run(&ctx, sql).await, vec![row(&["public", "alice"])]);
}

#[tokio::test]
async fn psql_di_lists_indexes() {
    let ctx = context();
    let sql = r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner",
 c2.relname as "Table"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
     LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
     LEFT JOIN pg_catalog.pg_class c2 ON i.indrelid = c2.oid
WHERE c.relkind IN ('i','I','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#;
    assert_eq!(
        run(&ctx, sql).await,
        vec![row(&[
            "public",
            "customers_pkey",
            "index",
            "alice",
            "customers"
        ])]
    );
}

#[tokio::test]
async fn psql_du_df_dt_types_run() {
    let ctx = context();
    let du = r#"SELECT r.rolname, r.rolsuper, r.rolinherit,
  r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
  r.rolconnlimit, r.rolvaliduntil,
  ARRAY(SELECT b.rolname
        FROM pg_catalog.pg_auth_members m
        JOIN pg_catalog.pg_roles b ON (m.roleid = b.oid)
        WHERE m.member = r.oid) as memberof
, r.rolreplication
, r.rolbypassrls
FROM pg_catalog.pg_roles r
WHERE r.rolname !~ '^pg_'
ORDER BY 1;"#;
    let rows = run(&ctx, du).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "alice");
    assert_eq!(rows[0][8], "{}");
    let df = r#"SELECT n.nspname as "Schema",
  p.proname as "Name",
  pg_catalog.pg_get_function_result(p.oid) as "Result data type",
  pg_catalog.pg_get_function_arguments(p.oid) as "Argument data types",
 CASE p.prokind
  WHEN 'a' THEN 'agg'
  WHEN 'w' THEN 'window'
  WHEN 'p' THEN 'proc'
  ELSE 'func'
 END as "Type"
FROM pg_catalog.pg_proc p
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE pg_catalog.pg_function_is_visible(p.oid)
      AND n.nspname <> 'pg_catalog'
      AND n.nspname <> 'information_schema'
ORDER BY 1, 2, 4;"#;
    assert!(run(&ctx, df).await.is_empty());
    let dtypes = r#"SELECT n.nspname as "Schema",
  pg_catalog.format_type(t.oid, NULL) AS "Name",
  pg_catalog.obj_description(t.oid, 'pg_type') as "Description"
FROM pg_catalog.pg_type t
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE (t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))
  AND NOT EXISTS(SELECT 1 FROM pg_catalog.pg_type el WHERE el.oid = t.typelem AND el.typarray = t.oid)
      AND n.nspname <> 'pg_catalog'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_type_is_visible(t.oid)
ORDER BY 1, 2;"#;
    assert!(run(&ctx, dtypes).await.is_empty());
    // Without the schema filter, \dT lists the base types but no arrays.
    let all = dtypes.replace("n.nspname <> 'pg_catalog'", "true");
    let names: Vec<String> = run(&ctx, &all)
        .await
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert!(names.contains(&"bigint".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with("[]")), "{names:?}");
}

#[tokio::test]
async fn session_functions_and_names() {
    let ctx = context();
    let (names, rows) = run_named(
        &ctx,
        "SELECT current_database(), current_user, session_user, current_schema(), \
         current_schemas(true), pg_catalog.version(), current_setting('server_version')",
    )
    .await;
    assert_eq!(
        names,
        vec![
            "current_database",
            "current_user",
            "session_user",
            "current_schema",
            "current_schemas",
            "version",
            "current_setting"
        ]
    );
    assert_eq!(
        rows[0][..5],
        row(&["helios", "alice", "alice", "public", "{pg_catalog,public}"])
    );
    assert!(
        rows[0][5].starts_with("PostgreSQL 15.0 (Helios"),
        "{rows:?}"
    );
    assert_eq!(rows[0][6], "15.0");
    let rows = run(
        &ctx,
        "SELECT 'customers'::regclass, 'public.orders'::regclass::oid, 16384::regclass, \
         'pg_class'::regclass, 'int4'::regtype, 23::regtype, quote_ident('Foo'), \
         pg_size_pretty(123456789), has_table_privilege('customers', 'SELECT'), \
         'public'::regnamespace, 'pg_catalog.array_in'::regproc, pg_backend_pid() > 0",
    )
    .await;
    assert_eq!(
        rows[0],
        row(&[
            "16384", "16385", "16384", "1259", "23", "23", "\"Foo\"", "118 MB", "true", "2200",
            "array_in", "true"
        ])
    );
    let rows = run(
        &ctx,
        "SELECT c.oid::regclass, c.oid::regclass::text, c.relnamespace::regnamespace \
         FROM pg_class c WHERE c.relname = 'orders'",
    )
    .await;
    assert_eq!(rows, vec![row(&["orders", "orders", "public"])]);
}

#[test]
fn show_and_set_are_answered() {
    let Some(Answer::Rows(batch)) = answer("SHOW search_path", "alice") else {
        panic!("SHOW search_path not answered");
    };
    assert_eq!(batch.schema().field(0).name(), "search_path");
    let Some(Answer::Rows(batch)) = answer("show transaction isolation level", "alice") else {
        panic!("SHOW TRANSACTION ISOLATION LEVEL not answered");
    };
    assert_eq!(batch.schema().field(0).name(), "transaction_isolation");
    assert!(
        matches!(answer("SET extra_float_digits = 3", "a"), Some(Answer::Command(t)) if t == "SET")
    );
    assert!(matches!(
        answer("SET application_name = 'PostgreSQL JDBC Driver'", "a"),
        Some(Answer::Command(_))
    ));
    assert!(answer("SET datafusion.execution.batch_size = 10", "a").is_none());
    assert!(answer("SELECT 1", "a").is_none());
    assert!(matches!(answer("SHOW ALL", "a"), Some(Answer::Rows(b)) if b.num_rows() > 10));
}

#[test]
fn rewrite_leaves_plain_sql_alone() {
    let sql = "SELECT id, name FROM customers WHERE name ~ 'a' ORDER BY id";
    assert!(matches!(rewrite(sql), std::borrow::Cow::Borrowed(_)));
    // String literals are never touched.
    let sql = "SELECT 'pg_catalog.version() OPERATOR(pg_catalog.~)' AS s, version()";
    let out = rewrite(sql);
    assert!(
        out.contains("'pg_catalog.version() OPERATOR(pg_catalog.~)'"),
        "{out}"
    );
}

#[tokio::test]
async fn psql_dv_lists_views_and_information_schema_describes_tables() {
    let ctx = context();
    ctx.sql("CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 10")
        .await
        .unwrap();
    register(&ctx, "helios", "alice").unwrap();
    let dv = DT.replace("IN ('r','p','')", "IN ('v','')");
    assert_eq!(
        run(&ctx, &dv).await,
        vec![row(&["public", "big_orders", "view", "alice"])]
    );
    // Oids stay in name order: the view sorts first now.
    let rows = run(
        &ctx,
        "SELECT relname, oid FROM pg_class WHERE oid >= 16384 ORDER BY oid",
    )
    .await;
    assert_eq!(
        rows[..3],
        vec![
            row(&["big_orders", "16384"]),
            row(&["customers", "16385"]),
            row(&["orders", "16386"])
        ]
    );
    let def = run(&ctx, "SELECT pg_get_viewdef('big_orders'::regclass, true)").await;
    assert!(
        def[0][0].contains("SELECT id, total FROM orders"),
        "{def:?}"
    );

    let columns = run(
        &ctx,
        "SELECT column_name, data_type, is_nullable, numeric_precision, numeric_scale, udt_name \
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'orders' \
         ORDER BY ordinal_position",
    )
    .await;
    assert_eq!(
        columns,
        vec![
            row(&["id", "bigint", "YES", "64", "0", "int8"]),
            row(&["customer_id", "bigint", "YES", "64", "0", "int8"]),
            row(&["total", "numeric", "YES", "12", "2", "numeric"]),
        ]
    );
    let tables = run(
        &ctx,
        "SELECT table_name, table_type FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY 1",
    )
    .await;
    assert_eq!(
        tables,
        vec![
            row(&["big_orders", "VIEW"]),
            row(&["customers", "BASE TABLE"]),
            row(&["orders", "BASE TABLE"])
        ]
    );
    let keys = run(
        &ctx,
        "SELECT tc.constraint_type, kcu.column_name FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name \
         WHERE tc.table_name = 'customers'",
    )
    .await;
    assert_eq!(keys, vec![row(&["PRIMARY KEY", "id"])]);
}

#[tokio::test]
async fn bare_nulls_are_text_and_now_works() {
    let ctx = context();
    let (names, rows) = run_named(&ctx, "SELECT NULL, 1, now() IS NOT NULL, lower('AbC')").await;
    assert_eq!(names, vec!["?column?", "?column?_2", "?column?_3", "lower"]);
    assert_eq!(rows, vec![row(&["NULL", "1", "true", "abc"])]);
    let df = ctx.sql(&rewrite("SELECT NULL AS x")).await.unwrap();
    let ty = df.schema().field(0).data_type().clone();
    assert!(matches!(ty, DataType::Utf8 | DataType::Utf8View), "{ty}");
}

#[tokio::test]
async fn psql_tab_completion() {
    let ctx = context();
    let tables = r#"SELECT c.relname, NULL::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'S', 'v', 'm', 'f', 'p') AND (c.relname) LIKE 'ord%' AND pg_catalog.pg_table_is_visible(c.oid) AND c.relnamespace <> (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pg_catalog')
	UNION ALL
	SELECT NULL::pg_catalog.text, n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname LIKE 'ord%' AND n.nspname NOT LIKE E'pg\\_%'
	LIMIT 1000"#;
    assert_eq!(run(&ctx, tables).await, vec![row(&["orders", "NULL"])]);
    let any = r#"SELECT c.relname, NULL::pg_catalog.text FROM pg_catalog.pg_class c WHERE (c.relname) LIKE 'cust%' AND pg_catalog.pg_table_is_visible(c.oid) AND c.relnamespace <> (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pg_catalog')
	UNION ALL
	SELECT NULL::pg_catalog.text, n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname LIKE 'cust%' AND n.nspname NOT LIKE E'pg\\_%'
	LIMIT 1000"#;
    let names: Vec<String> = run(&ctx, any)
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, vec!["customers", "customers_pkey"]);
    let columns = r#"SELECT a.attname, NULL::pg_catalog.text FROM pg_catalog.pg_attribute a, pg_catalog.pg_class c WHERE c.oid = a.attrelid and a.attnum > 0 and not a.attisdropped AND (a.attname) LIKE 'na%' AND c.relname = 'customers' AND pg_catalog.pg_table_is_visible(c.oid)
	LIMIT 1000"#;
    assert_eq!(run(&ctx, columns).await, vec![row(&["name", "NULL"])]);
}

#[tokio::test]
async fn ordinary_queries_keep_working() {
    let ctx = context();
    let (names, rows) = run_named(
        &ctx,
        "SELECT c.name, sum(o.total), count(*) FROM customers c JOIN orders o \
         ON o.customer_id = c.id GROUP BY c.name HAVING sum(o.total) > 0 ORDER BY count(*) DESC",
    )
    .await;
    assert_eq!(names, vec!["name", "sum", "count"]);
    assert_eq!(rows, vec![row(&["alice", "12.34", "1"])]);
    let rows = run(
        &ctx,
        "SELECT x.count FROM (SELECT count(*) FROM customers) x",
    )
    .await;
    assert_eq!(rows, vec![row(&["2"])]);
    let rows = run(
        &ctx,
        "SELECT id, row_number() OVER (ORDER BY id DESC), max(id), max(id) \
         FROM customers GROUP BY id ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        vec![row(&["1", "2", "1", "1"]), row(&["2", "1", "2", "2"])]
    );
    let rows = run(
        &ctx,
        "SELECT id FROM customers WHERE id = ANY(ARRAY[2, 3]) AND id <> ALL(ARRAY[1]) \
         AND 'b' = ANY('{a,b}'::text[])",
    )
    .await;
    assert_eq!(rows, vec![row(&["2"])]);
    let (names, rows) = run_named(
        &ctx,
        "SELECT array_to_string(ARRAY['a', 'b c', NULL], '|'), ARRAY[1, 2], \
         (ARRAY['x', 'y'])[2], CURRENT_TIMESTAMP IS NOT NULL, CURRENT_DATE IS NOT NULL, user",
    )
    .await;
    assert_eq!(names[..3], row(&["array_to_string", "array", "array_2"]));
    assert_eq!(
        rows,
        vec![row(&["a|b c", "{1,2}", "y", "true", "true", "alice"])]
    );
    // Rewriting is idempotent.
    let once = rewrite(DT).into_owned();
    assert_eq!(rewrite(&once), once);
}

#[test]
fn catalog_rows_match_their_columns() {
    let ctx = context();
    let snapshot = super::snapshot::collect(&ctx, "helios", "alice").unwrap();
    for def in super::tables::DEFS {
        let width = super::tables::columns(def.spec).count();
        let rows = super::rows::rows(def.name, &snapshot);
        for r in &rows {
            assert_eq!(r.len(), width, "pg_catalog.{}", def.name);
        }
        if super::tables::ALWAYS_EMPTY.contains(&def.name) {
            assert!(
                rows.is_empty(),
                "pg_catalog.{} is declared always empty",
                def.name
            );
        }
    }
    for name in super::tables::ALWAYS_EMPTY {
        assert!(
            super::tables::def(name).is_some(),
            "{name} is not a catalog"
        );
    }
    for def in super::information_schema::DEFS {
        let width = super::tables::columns(def.spec).count();
        for r in super::information_schema::rows(def.name, &snapshot) {
            assert_eq!(r.len(), width, "information_schema.{}", def.name);
        }
    }
}
