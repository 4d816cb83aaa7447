//! Retrieval on generated schemas: a shop hidden among 190 unrelated tables.

use std::sync::Arc;

use helios_planner::{Catalog, Column, ForeignKey, RelationKind, Table};

use super::*;

fn column(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        data_type: ty.into(),
        type_oid: 0,
        nullable: true,
        comment: None,
        common_values: vec![],
        n_distinct: None,
    }
}

fn with_values(mut c: Column, values: &[&str]) -> Column {
    c.common_values = values.iter().map(|v| v.to_string()).collect();
    c
}

fn with_comment(mut c: Column, comment: &str) -> Column {
    c.comment = Some(comment.into());
    c
}

fn fk(column: &str, table: &str) -> ForeignKey {
    ForeignKey {
        columns: vec![column.into()],
        ref_schema: "public".into(),
        ref_table: table.into(),
        ref_columns: vec!["id".into()],
    }
}

fn table(name: &str, columns: Vec<Column>, foreign_keys: Vec<ForeignKey>) -> Table {
    Table {
        schema: "public".into(),
        name: name.into(),
        kind: RelationKind::Table,
        comment: None,
        row_estimate: 1000.0,
        columns,
        primary_key: vec!["id".into()],
        foreign_keys,
        indexes: vec![],
        stats: None,
    }
}

/// The ten tables of a small shop.
fn shop() -> Vec<Table> {
    let mut customers = table(
        "customers",
        vec![
            column("id", "integer"),
            column("full_name", "text"),
            column("email", "text"),
            with_values(
                column("city", "text"),
                &["Berlin", "Paris", "Lisbon", "Rome"],
            ),
            column("signed_up_at", "timestamp"),
        ],
        vec![],
    );
    customers.comment = Some("people who buy from the shop".into());
    vec![
        customers,
        table(
            "orders",
            vec![
                column("id", "integer"),
                column("customer_id", "integer"),
                with_values(
                    column("status", "text"),
                    &["shipped", "pending", "cancelled"],
                ),
                column("placed_at", "timestamp"),
                with_comment(column("total", "numeric(10,2)"), "order total in EUR"),
            ],
            vec![fk("customer_id", "customers")],
        ),
        table(
            "order_lines",
            vec![
                column("id", "integer"),
                column("order_id", "integer"),
                column("product_id", "integer"),
                column("quantity", "integer"),
                column("unit_price", "numeric(10,2)"),
            ],
            vec![fk("order_id", "orders"), fk("product_id", "products")],
        ),
        table(
            "products",
            vec![
                column("id", "integer"),
                column("title", "text"),
                column("category_id", "integer"),
                column("price", "numeric(10,2)"),
            ],
            vec![fk("category_id", "categories")],
        ),
        table(
            "categories",
            vec![
                column("id", "integer"),
                with_values(column("label", "text"), &["Garden", "Kitchen", "Toys"]),
            ],
            vec![],
        ),
        table(
            "payments",
            vec![
                column("id", "integer"),
                column("order_id", "integer"),
                with_values(column("method", "text"), &["card", "invoice", "paypal"]),
                column("amount", "numeric(10,2)"),
                column("paid_at", "timestamp"),
            ],
            vec![fk("order_id", "orders")],
        ),
        table(
            "shipments",
            vec![
                column("id", "integer"),
                column("order_id", "integer"),
                column("carrier", "text"),
                column("shipped_at", "timestamp"),
            ],
            vec![fk("order_id", "orders")],
        ),
        table(
            "suppliers",
            vec![
                column("id", "integer"),
                column("company", "text"),
                column("country", "text"),
            ],
            vec![],
        ),
        // A join table whose own words say nothing of what it joins.
        table(
            "basket_lines",
            vec![
                column("id", "integer"),
                column("buyer", "integer"),
                column("item", "integer"),
                column("qty", "integer"),
            ],
            vec![fk("buyer", "customers"), fk("item", "products")],
        ),
        table(
            "reviews",
            vec![
                column("id", "integer"),
                column("product_id", "integer"),
                column("stars", "integer"),
                column("body", "text"),
            ],
            vec![fk("product_id", "products")],
        ),
    ]
}

/// 190 tables of other systems, some referencing each other.
fn distractors() -> Vec<Table> {
    const SYSTEMS: &[&str] = &[
        "telemetry",
        "hr",
        "fleet",
        "astronomy",
        "weather",
        "lab",
        "forum",
        "game",
        "library",
        "parking",
        "payroll",
        "clinic",
        "school",
        "farm",
        "museum",
        "airline",
        "hotel",
        "gym",
        "cinema",
    ];
    const THINGS: &[&str] = &[
        "readings",
        "leave_requests",
        "vehicles",
        "observations",
        "stations",
        "samples",
        "threads",
        "matches",
        "loans",
        "permits",
    ];
    let mut out = Vec::new();
    for (i, thing) in THINGS.iter().enumerate() {
        for (j, system) in SYSTEMS.iter().enumerate() {
            let mut columns = vec![
                column("id", "bigint"),
                column("label", "text"),
                column("recorded_at", "timestamp"),
                column("measure", "double precision"),
                column("note", "text"),
            ];
            let mut keys = vec![];
            if i > 0 {
                columns.push(column("parent_id", "bigint"));
                keys.push(fk("parent_id", &format!("{system}_{}", THINGS[0])));
            }
            if j == 3 {
                columns.push(with_values(column("zone", "text"), &["north", "south"]));
            }
            out.push(table(&format!("{system}_{thing}"), columns, keys));
        }
    }
    out
}

fn index(tables: Vec<Table>) -> SchemaIndex {
    SchemaIndex::new(Arc::new(Catalog::new(
        "shop".into(),
        vec!["public".into()],
        tables,
    )))
}

fn big() -> SchemaIndex {
    let mut tables = shop();
    tables.extend(distractors());
    assert_eq!(tables.len(), 200);
    index(tables)
}

fn names(r: &Retrieved) -> Vec<&str> {
    r.tables.iter().map(|t| t.name.name.as_str()).collect()
}

fn opts() -> RetrievalOptions {
    RetrievalOptions::default()
}

#[test]
fn a_question_about_customers_orders_gets_the_shop_tables_and_no_distractors() {
    let idx = big();
    let got = idx.retrieve(
        "Which customers placed the most orders last month?",
        &opts(),
    );
    let kept = names(&got);
    assert_eq!(&kept[..2], ["orders", "customers"], "{kept:?}");
    let shop_names: Vec<String> = shop().iter().map(|t| t.name.clone()).collect();
    assert!(
        kept.iter().all(|k| shop_names.iter().any(|s| s == k)),
        "{kept:?}"
    );
    assert!(got.ddl.contains("CREATE TABLE public.customers ("));
    assert!(got
        .ddl
        .contains("customer_id integer REFERENCES public.customers(id)"));
    for d in distractors() {
        assert!(!got.ddl.contains(&d.name), "{} in\n{}", d.name, got.ddl);
    }
    assert!(got.tokens <= opts().token_budget);
    assert!(
        got.tokens * 10 < got.schema_tokens,
        "{} of {}",
        got.tokens,
        got.schema_tokens
    );
    assert_eq!(got.tokens, estimate_tokens(&got.ddl));
}

#[test]
fn a_value_in_the_question_points_at_its_column() {
    let idx = big();
    let got = idx.retrieve("How many customers live in berlin?", &opts());
    assert_eq!(names(&got)[0], "customers");
    assert_eq!(
        got.value_hints,
        [ValueHint {
            table: QualifiedName {
                schema: "public".into(),
                name: "customers".into()
            },
            column: "city".into(),
            value: "Berlin".into(),
            matched: "berlin".into(),
        }]
    );
    assert!(got.tables[0].columns.contains(&"city".to_string()));
    assert!(got
        .ddl
        .contains("city text, -- values: 'Berlin', 'Paris', 'Lisbon', 'Rome'"));
    assert!(got
        .ddl
        .contains("-- 'Berlin' is a value of public.customers.city\n"));

    // A value alone finds its table, without naming it.
    let got = idx.retrieve("what was bought in the Garden section", &opts());
    assert_eq!(names(&got)[0], "categories", "{:?}", names(&got));
    assert_eq!(got.value_hints[0].column, "label");
}

#[test]
fn join_paths_between_chosen_tables_are_completed() {
    let idx = big();
    let got = idx.retrieve("Which products did customers buy?", &opts());
    let kept = names(&got);
    assert!(
        kept.contains(&"customers") && kept.contains(&"products"),
        "{kept:?}"
    );
    // basket_lines matches no word of the question: it is there as the
    // shortest path from customers to products.
    let bridge = got
        .tables
        .iter()
        .find(|t| t.name.name == "basket_lines")
        .unwrap_or_else(|| panic!("no join table in {kept:?}"));
    assert_eq!(bridge.score, 0.0);
    assert!(got
        .ddl
        .contains("buyer integer REFERENCES public.customers(id)"));
}

#[test]
fn without_shared_values_no_value_reaches_the_ddl() {
    let idx = big();
    let private = RetrievalOptions {
        share_values: false,
        ..opts()
    };
    let got = idx.retrieve(
        "How many customers live in Berlin? Cancelled orders too",
        &private,
    );
    // Values still rank the tables and the caller still learns the match.
    let mut top = names(&got)[..2].to_vec();
    top.sort_unstable();
    assert_eq!(top, ["customers", "orders"]);
    assert!(got.value_hints.iter().any(|h| h.value == "Berlin"));
    let catalog = idx.catalog();
    for t in &catalog.tables {
        for c in &t.columns {
            for v in &c.common_values {
                assert!(!got.ddl.contains(v.as_str()), "{v} in\n{}", got.ddl);
            }
        }
    }
    assert!(!got.ddl.contains("values:"));
    // The same rendering without values is smaller, and so is its schema.
    let shared = idx.retrieve(
        "How many customers live in Berlin? Cancelled orders too",
        &opts(),
    );
    assert!(shared.schema_tokens > got.schema_tokens);
}

#[test]
fn a_small_schema_is_included_whole() {
    let idx = index(shop().into_iter().take(3).collect());
    let got = idx.retrieve("anything about gardening?", &opts());
    assert_eq!(got.tables.len(), 3);
    for (t, shown) in idx.catalog().tables.iter().zip(&got.tables) {
        assert_eq!(shown.columns.len(), t.columns.len());
    }
    assert_eq!(got.tokens, got.schema_tokens);
}

#[test]
fn a_tight_budget_keeps_the_best_tables_and_their_key_columns() {
    let idx = big();
    let tight = RetrievalOptions {
        token_budget: 120,
        ..opts()
    };
    let got = idx.retrieve("total of orders per customer city", &tight);
    assert!(got.tokens <= 120, "{} tokens:\n{}", got.tokens, got.ddl);
    assert_eq!(names(&got)[0], "orders");
    let orders = &got.tables[0].columns;
    for needed in ["id", "customer_id", "total"] {
        assert!(orders.contains(&needed.to_string()), "{orders:?}");
    }
}

#[test]
fn a_follow_up_keeps_the_conversation_s_tables() {
    let idx = big();
    let follow_up = RetrievalOptions {
        context: vec![
            "How many orders did each customer place?".into(),
            "SELECT c.full_name, count(*) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1"
                .into(),
        ],
        ..opts()
    };
    let got = idx.retrieve("and only those paid by card?", &follow_up);
    let kept = names(&got);
    for t in ["payments", "orders", "customers"] {
        assert!(kept.contains(&t), "{t} not in {kept:?}");
    }
    assert_eq!(kept[0], "payments");
}

#[test]
fn glued_and_camel_case_identifiers_are_found() {
    let mut t = table(
        "sbcustomer",
        vec![column("sbcustid", "text"), column("sbcustcountry", "text")],
        vec![],
    );
    t.primary_key = vec!["sbcustid".into()];
    let mut tables = vec![t, table("TicketEvents", vec![column("id", "int")], vec![])];
    tables.extend(distractors());
    let idx = index(tables);
    let got = idx.retrieve("customers per country", &opts());
    assert_eq!(names(&got)[0], "sbcustomer", "{:?}", names(&got));
    let got = idx.retrieve("ticket events", &opts());
    assert_eq!(names(&got)[0], "TicketEvents");
    assert!(got.ddl.contains("CREATE TABLE public.\"TicketEvents\" ("));
}

#[test]
fn renders_compact_ddl() {
    let mut orders = shop().remove(1);
    orders.comment = Some("customer\norders".into());
    let idx = index(vec![orders, shop().remove(0)]);
    let got = idx.retrieve("orders", &opts());
    let expected = "\
CREATE TABLE public.orders ( -- customer orders
  id integer PRIMARY KEY,
  customer_id integer REFERENCES public.customers(id),
  status text, -- values: 'shipped', 'pending', 'cancelled'
  placed_at timestamp,
  total numeric(10,2) -- order total in EUR
);
";
    assert!(got.ddl.starts_with(expected), "{}", got.ddl);
    assert!(got
        .ddl
        .contains("CREATE TABLE public.customers ( -- people who buy from the shop\n"));
}

#[test]
fn composite_keys_and_partial_tables_render_as_valid_lists() {
    let mut link = table(
        "order_tags",
        vec![
            column("order_id", "integer"),
            column("tag", "text"),
            column("added_by", "text"),
            column("added_at", "timestamp"),
            column("note", "text"),
        ],
        vec![],
    );
    link.primary_key = vec!["order_id".into(), "tag".into()];
    link.foreign_keys = vec![ForeignKey {
        columns: vec!["order_id".into(), "tag".into()],
        ref_schema: "public".into(),
        ref_table: "orders".into(),
        ref_columns: vec!["id".into(), "tag".into()],
    }];
    let idx = index(vec![link]);
    // The smallest valid rendering: both key columns (the constraints name
    // them), both constraints, the count of the rest; 193 characters.
    let got = idx.retrieve(
        "tags",
        &RetrievalOptions {
            token_budget: 50,
            ..opts()
        },
    );
    let expected = "\
CREATE TABLE public.order_tags (
  order_id integer,
  tag text,
  PRIMARY KEY (order_id, tag),
  FOREIGN KEY (order_id, tag) REFERENCES public.orders(id, tag)
  -- 3 more columns not shown
);

";
    assert_eq!(got.ddl, expected);
    assert!(got.tokens <= 50);
    // Below that, nothing valid fits: nothing is sent rather than a broken list.
    let got = idx.retrieve(
        "tags",
        &RetrievalOptions {
            token_budget: 40,
            ..opts()
        },
    );
    assert_eq!(got.ddl, "");
}

#[test]
fn an_unmatched_question_still_gets_a_schema_within_budget() {
    let idx = big();
    let got = idx.retrieve("zzz qqq", &opts());
    assert!(!got.tables.is_empty());
    assert!(got.tokens <= opts().token_budget);
    assert!(got.value_hints.is_empty());
}

#[test]
fn tables_of_one_module_go_together_and_namesakes_stay_out() {
    let idx = big();
    let got = idx.retrieve("weather stations with the most observations", &opts());
    let kept = names(&got);
    let mut top = kept[..2].to_vec();
    top.sort_unstable();
    assert_eq!(
        top,
        ["weather_observations", "weather_stations"],
        "{kept:?}"
    );
    // Every system has stations and observations; the others add nothing.
    assert!(kept.iter().all(|k| k.starts_with("weather_")), "{kept:?}");
}

#[test]
fn the_section_never_exceeds_the_budget() {
    let idx = big();
    for budget in [30, 60, 100, 150, 250, 400, 800, 1600, 4000] {
        for q in [
            "Which customers placed the most orders last month?",
            "How many customers live in Berlin? Cancelled orders too",
            "weather stations with the most observations",
            "zzz",
        ] {
            for share_values in [true, false] {
                let o = RetrievalOptions {
                    token_budget: budget,
                    share_values,
                    ..opts()
                };
                let got = idx.retrieve(q, &o);
                assert!(got.tokens <= budget, "{budget}: {q}: {}", got.ddl);
            }
        }
    }
}

#[test]
fn notes_go_to_the_columns_the_question_is_about() {
    // Every comment says "students": the word describes the table, and only
    // the column the question singles out gets its note.
    let mut columns = vec![column("course_id", "integer")];
    for name in [
        "hilarious",
        "inspirational",
        "tough_grader",
        "clear_grading",
    ] {
        columns.push(with_comment(
            column(name, "bigint"),
            &format!("number of students who found the course {name}"),
        ));
    }
    columns.push(with_values(column("term", "text"), &["spring", "fall"]));
    columns.push(with_values(column("year", "integer"), &["2023", "2024"]));
    let mut tags = table("course_tags", columns, vec![]);
    tags.primary_key = vec!["course_id".into()];
    let mut tables = vec![tags];
    tables.extend(distractors());
    let idx = index(tables);
    let got = idx.retrieve("how many students found each course hilarious?", &opts());
    assert_eq!(names(&got)[0], "course_tags");
    // A leading table lists every column ...
    assert_eq!(got.tables[0].columns.len(), 7, "{}", got.ddl);
    // ... but annotates only the one meant.
    assert!(got
        .ddl
        .contains("hilarious bigint, -- number of students who found the course hilarious"));
    assert!(got.ddl.contains("  inspirational bigint,\n"), "{}", got.ddl);
    // Numbers are not worth listing as values; words are, when matched.
    let got = idx.retrieve("hilarious courses per term and year", &opts());
    assert!(
        got.ddl.contains("term text, -- values: 'spring', 'fall'"),
        "{}",
        got.ddl
    );
    assert!(got.ddl.contains("  year integer\n"), "{}", got.ddl);
}

#[test]
fn tables_similar_by_embedding_are_chosen_too() {
    let idx = big();
    let catalog = idx.catalog().clone();
    let customers = catalog
        .tables
        .iter()
        .position(|t| t.name == "customers")
        .unwrap();
    // "clients" shares no word with any identifier; the embeddings know.
    let mut similarity = vec![0.1f32; catalog.tables.len()];
    similarity[customers] = 0.8;
    let with = RetrievalOptions {
        table_similarity: Some(similarity.clone()),
        ..opts()
    };
    let got = idx.retrieve("list the clients", &with);
    assert_eq!(names(&got).first(), Some(&"customers"), "{:?}", names(&got));
    // With some words matched, the similar table joins the lexical choice.
    let got = idx.retrieve("orders of each client", &with);
    let kept = names(&got);
    assert!(
        kept.contains(&"orders") && kept.contains(&"customers"),
        "{kept:?}"
    );
    // Flat similarities (as real embeddings give unrelated tables) add nothing.
    let flat = RetrievalOptions {
        table_similarity: Some(vec![0.3; catalog.tables.len()]),
        ..opts()
    };
    assert_eq!(
        idx.retrieve("orders of each client", &flat).ddl,
        idx.retrieve("orders of each client", &opts()).ddl
    );
}
