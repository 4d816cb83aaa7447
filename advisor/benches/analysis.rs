//! The advisor's static analysis of one statement, no upstream: parsing,
//! the syntax-tree rules and the DataFusion plan rules over a catalog
//! snapshot of a TPC-H schema (SF 1 row counts, primary keys only), as
//! `ADVISE`, `helios_advise()` and `helios.advise` notices run it on every
//! statement. Target: well under 5 ms per statement.
//!
//! Run: `cargo bench -p helios-advisor --bench analysis`
//! (a quick look: `... -- --warm-up-time 1 --measurement-time 3`).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use helios_advisor::rules::StaticAnalyzer;
use helios_advisor::{advise, Mode, Options};
use helios_planner::catalog::{
    Catalog, Column, ForeignKey, Index, RelationKind, Table, TableStats, TextQuery, TextRows,
};

/// The statements measured: (name, SQL).
const STATEMENTS: &[(&str, &str)] = &[
    (
        "point_query",
        "SELECT o_orderkey, o_orderdate, o_totalprice FROM orders WHERE o_custkey = 42",
    ),
    (
        "join3_group_by",
        "SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, \
                o_shippriority \
           FROM customer, orders, lineitem \
          WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey \
            AND o_orderdate < date '1995-03-15' AND l_shipdate > date '1995-03-15' \
          GROUP BY l_orderkey, o_orderdate, o_shippriority \
          ORDER BY revenue DESC, o_orderdate LIMIT 10",
    ),
    (
        "q1_aggregate",
        "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, \
                sum(l_extendedprice) AS sum_base_price, \
                sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, \
                sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, \
                avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, \
                avg(l_discount) AS avg_disc, count(*) AS count_order \
           FROM lineitem \
          WHERE l_shipdate <= date '1998-12-01' - interval '90 day' \
          GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus",
    ),
    (
        "many_rule_hits",
        "SELECT *, (SELECT count(*) FROM lineitem l WHERE l.l_orderkey = o.o_orderkey) AS lines \
           FROM customer c, orders o \
          WHERE c.c_name LIKE '%smith%' OR o.o_comment = NULL OR upper(c.c_phone) = '25-989-741-2988' \
          ORDER BY random() LIMIT 10 OFFSET 5000",
    ),
    (
        "q8_8way_join",
        "SELECT o_year, sum(CASE WHEN nation = 'BRAZIL' THEN volume ELSE 0 END) / sum(volume) \
                AS mkt_share \
           FROM (SELECT extract(year FROM o_orderdate) AS o_year, \
                        l_extendedprice * (1 - l_discount) AS volume, n2.n_name AS nation \
                   FROM part, supplier, lineitem, orders, customer, nation n1, nation n2, region \
                  WHERE p_partkey = l_partkey AND s_suppkey = l_suppkey \
                    AND l_orderkey = o_orderkey AND o_custkey = c_custkey \
                    AND c_nationkey = n1.n_nationkey AND n1.n_regionkey = r_regionkey \
                    AND r_name = 'AMERICA' AND s_nationkey = n2.n_nationkey \
                    AND o_orderdate BETWEEN date '1995-01-01' AND date '1996-12-31' \
                    AND p_type = 'ECONOMY ANODIZED STEEL') AS all_nations \
          GROUP BY o_year ORDER BY o_year",
    ),
];

/// The upstream that is never asked (static mode).
struct NoUpstream;

impl TextQuery for NoUpstream {
    async fn query_text(&mut self, _sql: &str) -> Result<TextRows, String> {
        Err("no upstream in this benchmark".to_string())
    }
}

/// Run a future that never waits (static analysis asks nothing of anyone).
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// (name, PostgreSQL type, type oid, n_distinct)
type Col = (&'static str, &'static str, u32, f64);

fn table(
    name: &str,
    rows: f64,
    columns: &[Col],
    pkey: &[&str],
    fks: &[(&[&str], &str, &[&str])],
) -> Table {
    Table {
        schema: "public".into(),
        name: name.into(),
        kind: RelationKind::Table,
        comment: None,
        row_estimate: rows,
        columns: columns
            .iter()
            .map(|&(name, data_type, type_oid, n_distinct)| Column {
                name: name.into(),
                data_type: data_type.into(),
                type_oid,
                nullable: false,
                comment: None,
                common_values: vec![],
                n_distinct: Some(n_distinct),
            })
            .collect(),
        primary_key: pkey.iter().map(|c| c.to_string()).collect(),
        foreign_keys: fks
            .iter()
            .map(|(cols, ref_table, ref_cols)| ForeignKey {
                columns: cols.iter().map(|c| c.to_string()).collect(),
                ref_schema: "public".into(),
                ref_table: ref_table.to_string(),
                ref_columns: ref_cols.iter().map(|c| c.to_string()).collect(),
            })
            .collect(),
        indexes: vec![Index {
            name: format!("{name}_pkey"),
            columns: pkey.iter().map(|c| Some(c.to_string())).collect(),
            unique: true,
            primary: true,
            method: "btree".into(),
            partial: false,
            definition: format!(
                "CREATE UNIQUE INDEX {name}_pkey ON public.{name} USING btree ({})",
                pkey.join(", ")
            ),
        }],
        stats: Some(TableStats {
            pages: (rows / 50.0).ceil(),
            live_rows: rows,
            seconds_since_analyze: Some(60.0),
            ..TableStats::default()
        }),
    }
}

const INT: (&str, u32) = ("integer", 23);
const MONEY: (&str, u32) = ("numeric(15,2)", 1700);
const DATE: (&str, u32) = ("date", 1082);

fn c(name: &'static str, (ty, oid): (&'static str, u32), n_distinct: f64) -> Col {
    (name, ty, oid, n_distinct)
}

fn text(name: &'static str, ty: &'static str, n_distinct: f64) -> Col {
    let oid = if ty.starts_with("character(") {
        1042
    } else {
        1043
    };
    (name, ty, oid, n_distinct)
}

/// TPC-H at SF 1: region, nation, supplier, customer, part, partsupp,
/// orders, lineitem; primary keys and foreign keys, no other index.
fn tpch() -> Catalog {
    let tables = vec![
        table(
            "region",
            5.0,
            &[
                c("r_regionkey", INT, -1.0),
                text("r_name", "character(25)", -1.0),
                text("r_comment", "character varying(152)", -1.0),
            ],
            &["r_regionkey"],
            &[],
        ),
        table(
            "nation",
            25.0,
            &[
                c("n_nationkey", INT, -1.0),
                text("n_name", "character(25)", -1.0),
                c("n_regionkey", INT, 5.0),
                text("n_comment", "character varying(152)", -1.0),
            ],
            &["n_nationkey"],
            &[(&["n_regionkey"], "region", &["r_regionkey"])],
        ),
        table(
            "supplier",
            10_000.0,
            &[
                c("s_suppkey", INT, -1.0),
                text("s_name", "character(25)", -1.0),
                text("s_address", "character varying(40)", -1.0),
                c("s_nationkey", INT, 25.0),
                text("s_phone", "character(15)", -1.0),
                c("s_acctbal", MONEY, -0.95),
                text("s_comment", "character varying(101)", -1.0),
            ],
            &["s_suppkey"],
            &[(&["s_nationkey"], "nation", &["n_nationkey"])],
        ),
        table(
            "customer",
            150_000.0,
            &[
                c("c_custkey", INT, -1.0),
                text("c_name", "character varying(25)", -1.0),
                text("c_address", "character varying(40)", -1.0),
                c("c_nationkey", INT, 25.0),
                text("c_phone", "character(15)", -1.0),
                c("c_acctbal", MONEY, -0.6),
                text("c_mktsegment", "character(10)", 5.0),
                text("c_comment", "character varying(117)", -1.0),
            ],
            &["c_custkey"],
            &[(&["c_nationkey"], "nation", &["n_nationkey"])],
        ),
        table(
            "part",
            200_000.0,
            &[
                c("p_partkey", INT, -1.0),
                text("p_name", "character varying(55)", -1.0),
                text("p_mfgr", "character(25)", 5.0),
                text("p_brand", "character(10)", 25.0),
                text("p_type", "character varying(25)", 150.0),
                c("p_size", INT, 50.0),
                text("p_container", "character(10)", 40.0),
                c("p_retailprice", MONEY, 20_000.0),
                text("p_comment", "character varying(23)", -0.6),
            ],
            &["p_partkey"],
            &[],
        ),
        table(
            "partsupp",
            800_000.0,
            &[
                c("ps_partkey", INT, 200_000.0),
                c("ps_suppkey", INT, 10_000.0),
                c("ps_availqty", INT, 9_999.0),
                c("ps_supplycost", MONEY, 99_901.0),
                text("ps_comment", "character varying(199)", -1.0),
            ],
            &["ps_partkey", "ps_suppkey"],
            &[
                (&["ps_partkey"], "part", &["p_partkey"]),
                (&["ps_suppkey"], "supplier", &["s_suppkey"]),
            ],
        ),
        table(
            "orders",
            1_500_000.0,
            &[
                c("o_orderkey", INT, -1.0),
                c("o_custkey", INT, 100_000.0),
                text("o_orderstatus", "character(1)", 3.0),
                c("o_totalprice", MONEY, -0.98),
                c("o_orderdate", DATE, 2_406.0),
                text("o_orderpriority", "character(15)", 5.0),
                text("o_clerk", "character(15)", 1_000.0),
                c("o_shippriority", INT, 1.0),
                text("o_comment", "character varying(79)", -0.9),
            ],
            &["o_orderkey"],
            &[(&["o_custkey"], "customer", &["c_custkey"])],
        ),
        table(
            "lineitem",
            6_000_000.0,
            &[
                c("l_orderkey", INT, -0.25),
                c("l_partkey", INT, 200_000.0),
                c("l_suppkey", INT, 10_000.0),
                c("l_linenumber", INT, 7.0),
                c("l_quantity", MONEY, 50.0),
                c("l_extendedprice", MONEY, -0.15),
                c("l_discount", MONEY, 11.0),
                c("l_tax", MONEY, 9.0),
                text("l_returnflag", "character(1)", 3.0),
                text("l_linestatus", "character(1)", 2.0),
                c("l_shipdate", DATE, 2_526.0),
                c("l_commitdate", DATE, 2_466.0),
                c("l_receiptdate", DATE, 2_554.0),
                text("l_shipinstruct", "character(25)", 4.0),
                text("l_shipmode", "character(10)", 7.0),
                text("l_comment", "character varying(44)", -0.5),
            ],
            &["l_orderkey", "l_linenumber"],
            &[
                (&["l_orderkey"], "orders", &["o_orderkey"]),
                (
                    &["l_partkey", "l_suppkey"],
                    "partsupp",
                    &["ps_partkey", "ps_suppkey"],
                ),
            ],
        ),
    ];
    Catalog::new("tpch".into(), vec!["public".into()], tables)
}

fn analysis(c: &mut Criterion) {
    let catalog = tpch();
    let analyzer = StaticAnalyzer::new(&catalog);
    let options = Options::default();
    let once = |sql: &str| {
        run(advise(
            sql,
            &catalog,
            &analyzer,
            None::<&mut NoUpstream>,
            Mode::Static,
            &options,
        ))
    };
    // What is measured is real work: every statement plans, and the one
    // meant to hit rules hits several.
    for (name, sql) in STATEMENTS {
        let advice = once(sql);
        assert!(advice.plans, "{name} does not plan: {:?}", advice.findings);
        if *name == "many_rule_hits" {
            let mut rules: Vec<&str> = advice.findings.iter().map(|f| f.rule).collect();
            rules.sort_unstable();
            rules.dedup();
            assert!(rules.len() >= 5, "{name}: {rules:?}");
        }
    }

    let mut group = c.benchmark_group("advise_static");
    for (name, sql) in STATEMENTS {
        group.bench_function(*name, |b| b.iter(|| once(black_box(sql))));
    }
    group.finish();

    // Building the analyzer (the DataFusion context) happens once per
    // catalog snapshot, not per statement.
    c.bench_function("static_analyzer_new", |b| {
        b.iter(|| StaticAnalyzer::new(black_box(&catalog)))
    });
}

criterion_group!(benches, analysis);
criterion_main!(benches);
