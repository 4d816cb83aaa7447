//! Plan checks against a small shop catalog and a 500-table one.
use super::*;
use crate::catalog::{Column, RelationKind, Table};
use std::time::Instant;

fn table(schema: &str, name: &str, columns: &[(&str, &str)]) -> Table {
    Table {
        schema: schema.into(),
        name: name.into(),
        kind: RelationKind::Table,
        comment: None,
        row_estimate: 0.0,
        columns: columns
            .iter()
            .map(|(n, t)| Column {
                name: (*n).into(),
                data_type: (*t).into(),
                type_oid: 0,
                nullable: true,
                comment: None,
                common_values: vec![],
                n_distinct: None,
            })
            .collect(),
        primary_key: vec![],
        foreign_keys: vec![],
        indexes: vec![],
        stats: None,
    }
}

fn shop() -> Catalog {
    Catalog::new(
        "shop".into(),
        vec!["public".into(), "sales".into()],
        vec![
            table(
                "public",
                "customers",
                &[
                    ("id", "integer"),
                    ("name", "text"),
                    ("city", "character varying(40)"),
                    ("created_at", "timestamp with time zone"),
                ],
            ),
            table(
                "public",
                "orders",
                &[
                    ("id", "bigint"),
                    ("customer_id", "integer"),
                    ("total", "numeric(12,2)"),
                    ("placed_on", "date"),
                    ("status", "order_status"),
                    ("tags", "text[]"),
                ],
            ),
            table(
                "sales",
                "refunds",
                &[("order_id", "bigint"), ("amount", "numeric")],
            ),
            table("audit", "events", &[("id", "uuid"), ("payload", "jsonb")]),
            table("public", "Mixed Case", &[("Id", "integer")]),
        ],
    )
}

async fn verdict(sql: &str) -> PlanCheck {
    PlanChecker::new(&shop()).check(sql).await
}

#[tokio::test]
async fn valid_queries_plan() {
    for sql in [
        "select c.name, sum(o.total) from customers c join orders o on o.customer_id = c.id \
         group by c.name order by 2 desc limit 10",
        "with big as (select customer_id, count(*) as n from orders group by customer_id) \
         select c.name, b.n from customers c join big b on b.customer_id = c.id where b.n > 3",
        "select * from customers where id in (select customer_id from orders where total > 100)",
        "select name from customers c where exists \
         (select 1 from orders o where o.customer_id = c.id)",
        "select id, rank() over (partition by customer_id order by total desc) from orders",
        "select date_trunc('month', placed_on) m, count(*) from orders group by 1",
        "select extract(year from placed_on), count(*) from orders group by 1",
        "select * from refunds r join orders o on o.id = r.order_id",
        "select * from sales.refunds",
        "select * from public.orders where status = 'shipped'",
        "select \"Id\" from \"Mixed Case\"",
        "select c.* from CUSTOMERS C where C.NAME like 'A%'",
        "select id from customers union select customer_id from orders",
        "select * from audit.events",
        "select count(*) filter (where total > 10) from orders",
        "select o.id from orders o left join customers c using (id)",
    ] {
        assert_eq!(verdict(sql).await, PlanCheck::Ok, "{sql}");
    }
}

#[tokio::test]
async fn unknown_relations_and_columns_are_named() {
    let PlanCheck::Unknown { message } = verdict("select * from ordrs").await else {
        panic!("unknown table not found");
    };
    assert_eq!(message, "relation \"ordrs\" does not exist");
    let PlanCheck::Unknown { message } = verdict("select * from sales.orders").await else {
        panic!("wrong schema not found");
    };
    assert!(message.contains("sales.orders"), "{message}");
    // The real name of a search_path alias is not in the default schema.
    assert!(matches!(
        verdict("select * from public.refunds").await,
        PlanCheck::Unknown { .. }
    ));

    let PlanCheck::Unknown { message } = verdict("select custid from orders").await else {
        panic!("unknown column not found");
    };
    assert!(
        message.starts_with("column \"custid\" does not exist"),
        "{message}"
    );
    assert!(message.contains("customer_id"), "{message}");

    let PlanCheck::Unknown { message } =
        verdict("select o.name from orders o join customers c on c.id = o.customer_id").await
    else {
        panic!("qualified column in the wrong table not found");
    };
    assert!(
        message.starts_with("column o.name does not exist"),
        "{message}"
    );

    let PlanCheck::Unknown { message } =
        verdict("select id from orders o join customers c on c.id = o.customer_id").await
    else {
        panic!("ambiguity not found");
    };
    assert_eq!(message, "column reference \"id\" is ambiguous");

    assert!(matches!(
        verdict("with x as (select id from orders) select nope from x").await,
        PlanCheck::Unknown { .. }
    ));
}

#[tokio::test]
async fn postgres_only_features_are_never_unknown() {
    for sql in [
        "select to_char(now(), 'YYYY')",
        "select * from generate_series(1, 10) g where g > 3",
        "select g from generate_series(1, 10) g",
        "select age(created_at) from customers",
        "select x.count from (select count(*) from orders) x",
        "select c from customers c",
        "select ctid from orders",
        "select * from pg_class",
        "select * from information_schema.tables",
        "select payload->>'kind' from audit.events",
        "select id::text || name from customers",
        "select array_length(tags, 1) from orders",
        "select string_agg(name, ', ' order by name) from customers",
        "select * from customers for update",
        "select 1; select 2",
        "select (",
    ] {
        let v = verdict(sql).await;
        assert!(!matches!(v, PlanCheck::Unknown { .. }), "{sql}: {v:?}");
    }
}

#[test]
fn maps_postgres_types() {
    use DataType::*;
    assert_eq!(arrow_type("smallint"), Int16);
    assert_eq!(arrow_type("integer"), Int32);
    assert_eq!(arrow_type("bigint"), Int64);
    assert_eq!(arrow_type("real"), Float32);
    assert_eq!(arrow_type("double precision"), Float64);
    assert_eq!(arrow_type("numeric(10,2)"), Decimal128(10, 2));
    assert_eq!(arrow_type("numeric(5)"), Decimal128(5, 0));
    assert_eq!(arrow_type("numeric"), Float64);
    assert_eq!(arrow_type("numeric(60,2)"), Float64);
    assert_eq!(arrow_type("boolean"), Boolean);
    assert_eq!(arrow_type("character varying(20)"), Utf8);
    assert_eq!(arrow_type("character(1)"), Utf8);
    assert_eq!(arrow_type("bytea"), Binary);
    assert_eq!(arrow_type("date"), Date32);
    assert_eq!(
        arrow_type("timestamp(3) without time zone"),
        Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        arrow_type("timestamp with time zone"),
        Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        arrow_type("time without time zone"),
        Time64(TimeUnit::Microsecond)
    );
    assert_eq!(arrow_type("interval"), Interval(IntervalUnit::MonthDayNano));
    assert_eq!(
        arrow_type("interval year to month"),
        Interval(IntervalUnit::MonthDayNano)
    );
    assert_eq!(arrow_type("uuid"), Utf8);
    assert_eq!(arrow_type("jsonb"), Utf8);
    assert_eq!(
        arrow_type("integer[]"),
        List(Arc::new(Field::new_list_field(Int32, true)))
    );
    assert_eq!(
        arrow_type("character varying(3)[]"),
        List(Arc::new(Field::new_list_field(Utf8, true)))
    );
}

#[test]
fn ranks_close_names_first() {
    let names = ["customers", "orders", "order_items", "cats"];
    assert_eq!(closest("ordrs", names, 1), ["orders"]);
    assert_eq!(closest("order", names, 2), ["orders", "order_items"]);
    assert_eq!(closest("customer", names, 1), ["customers"]);
    assert_eq!(closest("o.total", ["o.id", "o.total"], 1), ["o.total"]);
}

/// Build and check cost on a 500-table catalog. The bounds are generous
/// for slow CI machines; the printed figures are the interesting part.
#[tokio::test]
async fn cheap_on_a_500_table_catalog() {
    let types = [
        "integer",
        "bigint",
        "text",
        "numeric(12,2)",
        "date",
        "boolean",
    ];
    let tables: Vec<Table> = (0..500)
        .map(|i| {
            let columns: Vec<(String, &str)> = (0..12)
                .map(|j| (format!("col_{j}"), types[(i + j) % types.len()]))
                .chain([
                    ("id".to_string(), "bigint"),
                    ("parent_id".to_string(), "bigint"),
                ])
                .collect();
            let columns: Vec<(&str, &str)> =
                columns.iter().map(|(n, t)| (n.as_str(), *t)).collect();
            table(
                if i % 5 == 0 { "app" } else { "public" },
                &format!("t{i}"),
                &columns,
            )
        })
        .collect();
    let catalog = Catalog::new("db".into(), vec!["public".into(), "app".into()], tables);

    let started = Instant::now();
    let _ = PlanChecker::new(&Catalog::default());
    let empty = started.elapsed();
    let started = Instant::now();
    let checker = PlanChecker::new(&catalog);
    let build = started.elapsed();

    let sql = "with r as (select a.id, count(*) n from t1 a join t2 b on b.parent_id = a.id \
               where a.col_1 > 3 group by a.id) \
               select r.id, r.n, c.col_2 from r join t10 c on c.id = r.id order by r.n desc limit 5";
    assert_eq!(checker.check(sql).await, PlanCheck::Ok);
    let runs = 200;
    let started = Instant::now();
    for _ in 0..runs {
        assert_eq!(checker.check(sql).await, PlanCheck::Ok);
    }
    let check = started.elapsed() / runs;
    let started = Instant::now();
    let unknown = checker.check("select nope from t3").await;
    let unknown_time = started.elapsed();
    assert!(matches!(unknown, PlanCheck::Unknown { .. }));
    println!("PlanChecker on 500 tables: build {build:?} (empty catalog {empty:?}), check {check:?} per query, unknown column {unknown_time:?}");
    assert!(build.as_millis() < 200, "build took {build:?}");
    assert!(check.as_millis() < 200, "check took {check:?}");
}
