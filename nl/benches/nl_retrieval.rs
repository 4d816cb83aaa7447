//! Schema retrieval for natural-language questions: how much of what the
//! gold SQL needs reaches the prompt, at what share of the schema, and how
//! long it takes.
//!
//! ```text
//! cargo bench -p helios-nl --bench nl_retrieval            # recall table, then timings
//! cargo bench -p helios-nl --bench nl_retrieval -- recall  # recall table only
//! ```
//!
//! 1. Recall on the defog databases (`HELIOS_DEFOG_DIR`, default
//!    `/work/shared/datasets/defog`; see `nl_retrieval/defog.rs` for how
//!    catalogs and gold columns are built): per question, `retrieve` with the
//!    default options, then the share of gold tables and of gold columns in
//!    the result, and `tokens / schema_tokens`. These schemas are small
//!    enough that the default rule sends most of them whole, which says
//!    nothing about the ranking; the main table therefore prunes every
//!    schema (`with_whole_schema_share(0.0)`), and one line gives the
//!    default behaviour. `NL_RETRIEVAL_MISSES=1` lists the questions that
//!    missed a gold column.
//! 2. Timings (criterion) on a generated 500-table catalog: building the
//!    index, `retrieve`, and the whole pipeline short of the model (retrieve,
//!    prompt, static check and DataFusion plan check of an answer), and a
//!    translation answered from the cache (`Translator::translate`).

#[path = "nl_retrieval/defog.rs"]
mod defog;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use helios_nl::conversation::Conversation;
use helios_nl::prompt::{self, PromptInput};
use helios_nl::retrieval::{RetrievalOptions, Retrieved, SchemaIndex};
use helios_nl::translate::{ExplainError, Schema, Translation, Translator, Upstream};
use helios_nl::validate::check_static;
use helios_nl::NlConfig;
use helios_planner::check::PlanChecker;
use helios_planner::{Catalog, Column, ForeignKey, RelationKind, Table};

// ---------------------------------------------------------------- recall

#[derive(Default, Clone, Copy)]
struct Tally {
    questions: usize,
    gold_tables: usize,
    found_tables: usize,
    gold_columns: usize,
    found_columns: usize,
    /// Questions with every gold column shown.
    complete: usize,
    share: f64,
    tokens: usize,
    whole: usize,
    /// Sum of per-question shares of the gold tables rendered whole.
    gold_share: f64,
    /// Tables shown, gold tables.
    shown_tables: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.questions += o.questions;
        self.gold_tables += o.gold_tables;
        self.found_tables += o.found_tables;
        self.gold_columns += o.gold_columns;
        self.found_columns += o.found_columns;
        self.complete += o.complete;
        self.share += o.share;
        self.tokens += o.tokens;
        self.whole += o.whole;
        self.gold_share += o.gold_share;
        self.shown_tables += o.shown_tables;
    }

    fn pct(a: usize, b: usize) -> f64 {
        100.0 * a as f64 / b.max(1) as f64
    }

    fn row(&self, label: &str, schema_tokens: &str, skipped: usize) -> String {
        let q = self.questions.max(1) as f64;
        format!(
            "{label:<16} {:>4} {:>5} {:>8} {:>7.1}% {:>7.1}% {:>8.1}% {:>7.1}% {:>7.0} {:>7.1}% {:>5.1}/{:<4.1}{}",
            self.questions,
            schema_tokens,
            format!("{}/{}", self.whole, self.questions),
            Self::pct(self.found_tables, self.gold_tables),
            Self::pct(self.found_columns, self.gold_columns),
            Self::pct(self.complete, self.questions),
            100.0 * self.share / q,
            self.tokens as f64 / q,
            100.0 * self.gold_share / q,
            self.shown_tables as f64 / q,
            self.gold_tables as f64 / q,
            if skipped > 0 {
                format!("  ({skipped} gold queries unparsed)")
            } else {
                String::new()
            }
        )
    }
}

fn evaluate(db: &defog::Database, index: &SchemaIndex, misses: bool) -> Tally {
    let opts = RetrievalOptions::default();
    let mut tally = Tally::default();
    for case in &db.cases {
        let got = index.retrieve(&case.question, &opts);
        let shown = shown(&db.catalog, &got);
        let tables = case
            .tables
            .iter()
            .filter(|t| shown.iter().any(|s| s.0 == **t))
            .count();
        let missing: Vec<String> = case
            .columns
            .iter()
            .filter(|alts| !alts.iter().any(|a| shown.contains(a)))
            .map(|alts| {
                let (t, c) = alts[0];
                let t = &db.catalog.tables[t];
                format!("{}.{}", t.name, t.columns[c].name)
            })
            .collect();
        if misses && !missing.is_empty() {
            let tables: Vec<&str> = got.tables.iter().map(|t| t.name.name.as_str()).collect();
            println!(
                "  miss [{}] {}\n       missing {missing:?}; shown {tables:?}",
                db.name, case.question
            );
        }
        tally.questions += 1;
        tally.gold_tables += case.tables.len();
        tally.found_tables += tables;
        tally.gold_columns += case.columns.len();
        tally.found_columns += case.columns.len() - missing.len();
        tally.complete += missing.is_empty() as usize;
        tally.share += got.tokens as f64 / got.schema_tokens.max(1) as f64;
        tally.tokens += got.tokens;
        let all = db
            .catalog
            .tables
            .iter()
            .map(|t| t.columns.len())
            .sum::<usize>();
        tally.whole += (shown.len() == all) as usize;
        tally.shown_tables += got.tables.len();
        tally.gold_share += gold_share(db, case, got.schema_tokens);
    }
    tally
}

/// The share of the schema that the gold tables take, rendered whole: what
/// a perfect table ranking that shows whole tables would send.
fn gold_share(db: &defog::Database, case: &defog::Case, schema_tokens: usize) -> f64 {
    let tables = case
        .tables
        .iter()
        .map(|&t| db.catalog.tables[t].clone())
        .collect();
    let only = Catalog::new(db.name.clone(), db.catalog.search_path.clone(), tables);
    let got = SchemaIndex::new(Arc::new(only))
        .with_whole_schema_share(f64::INFINITY)
        .retrieve("", &RetrievalOptions::default());
    got.tokens as f64 / schema_tokens.max(1) as f64
}

/// (table, column) indexes shown in a retrieval.
fn shown(catalog: &Catalog, got: &Retrieved) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for rt in &got.tables {
        let Some(t) = catalog
            .tables
            .iter()
            .position(|t| t.schema == rt.name.schema && t.name == rt.name.name)
        else {
            continue;
        };
        for name in &rt.columns {
            if let Some(c) = catalog.tables[t]
                .columns
                .iter()
                .position(|c| &c.name == name)
            {
                out.push((t, c));
            }
        }
    }
    out
}

fn recall_report() {
    let dir = std::env::var_os("HELIOS_DEFOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/datasets/defog"));
    let misses = std::env::var_os("NL_RETRIEVAL_MISSES").is_some();
    let header = format!(
        "{:<16} {:>4} {:>5} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7} {:>8} {:>10}",
        "database",
        "qs",
        "schema",
        "all cols",
        "tables",
        "columns",
        "complete",
        "share",
        "tokens",
        "gold tb",
        "shown/gold"
    );
    println!(
        "\n== nl_retrieval: schema recall on defog ({}) ==",
        dir.display()
    );
    println!("columns: micro-averaged recall of gold columns; complete: questions with every");
    println!("gold column shown; share: mean tokens / schema_tokens; schema: whole-schema tokens;");
    println!("all cols: questions that got every column of the schema; gold tb: share the gold");
    println!("tables take rendered whole; shown/gold: mean tables shown / gold tables. A schema");
    println!("sent whole can pass 100%: the value hint lines come on top.\n");
    for (title, comments, whole_share) in [
        (
            "ranked (every schema pruned), with column comments",
            true,
            Some(0.0),
        ),
        (
            "default options (small schemas sent whole), with column comments",
            true,
            None,
        ),
        ("ranked, without comments", false, Some(0.0)),
    ] {
        let dbs = match defog::load(&dir, comments) {
            Ok(dbs) => dbs,
            Err(e) => {
                println!("defog data not loaded, recall skipped: {e}");
                return;
            }
        };
        println!("-- {title}");
        println!("{header}");
        let mut total = Tally::default();
        let mut skipped = 0;
        let mut whole_dbs = 0;
        for db in &dbs {
            let mut index = SchemaIndex::new(Arc::new(db.catalog.clone()));
            if let Some(share) = whole_share {
                index = index.with_whole_schema_share(share);
            }
            let tally = evaluate(db, &index, misses && whole_share.is_some() && comments);
            let schema_tokens = index
                .retrieve("", &RetrievalOptions::default())
                .schema_tokens;
            whole_dbs += (tally.whole == tally.questions) as usize;
            println!(
                "{}",
                tally.row(&db.name, &schema_tokens.to_string(), db.skipped)
            );
            total.add(&tally);
            skipped += db.skipped;
        }
        println!("{}", total.row("OVERALL", "", skipped));
        let recall = Tally::pct(total.found_columns, total.gold_columns);
        let share = 100.0 * total.share / total.questions.max(1) as f64;
        println!(
            "   {whole_dbs} of {} databases got their whole schema for every question; \
             target (column recall >= 95% at <= 30% of the schema): {}\n",
            dbs.len(),
            if recall >= 95.0 && share <= 30.0 {
                "met"
            } else {
                "missed"
            }
        );
    }
}

// ---------------------------------------------------------------- synthetic

/// Fifty subsystems of a large company database.
const DOMAINS: &[&str] = &[
    "sales",
    "billing",
    "inventory",
    "hr",
    "crm",
    "support",
    "logistics",
    "marketing",
    "finance",
    "procurement",
    "manufacturing",
    "payroll",
    "fleet",
    "clinic",
    "school",
    "library",
    "hotel",
    "airline",
    "insurance",
    "banking",
    "retail",
    "warehouse",
    "shipping",
    "events",
    "ads",
    "analytics",
    "security",
    "iam",
    "catalog",
    "pricing",
    "subscriptions",
    "loyalty",
    "reviews",
    "forum",
    "content",
    "media",
    "music",
    "video",
    "games",
    "sports",
    "realestate",
    "legal",
    "compliance",
    "audit",
    "energy",
    "utilities",
    "telecom",
    "iot",
    "agriculture",
    "research",
];

/// Things a subsystem keeps: (table, singular, a domain-specific measure).
const ENTITIES: &[(&str, &str, &str)] = &[
    ("accounts", "account", "balance"),
    ("customers", "customer", "lifetime_value"),
    ("orders", "order", "total_amount"),
    ("order_items", "order_item", "quantity"),
    ("invoices", "invoice", "amount_due"),
    ("payments", "payment", "amount"),
    ("products", "product", "unit_price"),
    ("employees", "employee", "salary"),
    ("departments", "department", "budget"),
    ("locations", "location", "capacity"),
    ("suppliers", "supplier", "rating"),
    ("shipments", "shipment", "weight_kg"),
    ("contracts", "contract", "contract_value"),
    ("tickets", "ticket", "priority"),
    ("campaigns", "campaign", "spend"),
    ("sessions", "session", "duration_seconds"),
    ("devices", "device", "battery_level"),
    ("assets", "asset", "purchase_cost"),
    ("projects", "project", "estimated_hours"),
    ("vendors", "vendor", "score"),
];

fn col(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        data_type: ty.into(),
        type_oid: 0,
        nullable: true,
        comment: None,
        common_values: Vec::new(),
        n_distinct: None,
    }
}

/// 500 tables: 50 domains × 10 entities, about 10 columns each, every table
/// referencing the domain's first entity and its predecessor, some comments
/// and common values.
fn synthetic() -> Catalog {
    let mut tables = Vec::new();
    for (d, domain) in DOMAINS.iter().enumerate() {
        let picked: Vec<&(&str, &str, &str)> = (0..10)
            .map(|k| &ENTITIES[(d * 3 + k) % ENTITIES.len()])
            .collect();
        for (k, (entity, singular, measure)) in picked.iter().enumerate() {
            let name = format!("{domain}_{entity}");
            let mut status = col("status", "text");
            status.common_values = ["active", "pending", "closed", "archived"]
                .map(String::from)
                .to_vec();
            let mut measure = col(measure, "numeric(12,2)");
            measure.comment = Some(format!(
                "{} of the {singular}",
                measure.name.replace('_', " ")
            ));
            let mut columns = vec![
                col("id", "bigint"),
                col(&format!("{singular}_name"), "text"),
                status,
                measure,
                col("created_at", "timestamp with time zone"),
                col("updated_at", "timestamp with time zone"),
                col("description", "text"),
                col("external_ref", "character varying(64)"),
            ];
            let mut foreign_keys = Vec::new();
            for parent in [0, k.wrapping_sub(1)] {
                if parent < k
                    && !foreign_keys
                        .iter()
                        .any(|f: &ForeignKey| f.ref_table.ends_with(picked[parent].0))
                {
                    let column = format!("{}_id", picked[parent].1);
                    columns.push(col(&column, "bigint"));
                    foreign_keys.push(ForeignKey {
                        columns: vec![column],
                        ref_schema: "public".into(),
                        ref_table: format!("{domain}_{}", picked[parent].0),
                        ref_columns: vec!["id".into()],
                    });
                }
            }
            while columns.len() < 10 {
                columns.push(col(&format!("attribute_{}", columns.len()), "text"));
            }
            tables.push(Table {
                schema: "public".into(),
                name,
                kind: RelationKind::Table,
                comment: (k == 0).then(|| format!("{domain} {entity}")),
                row_estimate: 10_000.0,
                columns,
                primary_key: vec!["id".into()],
                foreign_keys,
                indexes: Vec::new(),
                stats: None,
            });
        }
    }
    Catalog::new("synthetic".into(), vec!["public".into()], tables)
}

/// Questions about tables the generator makes (`sales_customers`,
/// `sales_orders`, `sales_employees`, `crm_tickets`, `crm_campaigns`...).
const QUESTIONS: &[&str] = &[
    "total order amount per sales customer last month",
    "which sales employees in the largest department earn the highest salary?",
    "how many active crm tickets are there per priority",
    "average spend of crm campaigns by status in 2024",
];

/// A plausible answer to `QUESTIONS[0]`, for the plan check.
const ANSWER: &str = "SELECT c.customer_name, sum(o.total_amount) AS total \
    FROM sales_orders o JOIN sales_customers c ON c.id = o.customer_id \
    WHERE o.created_at >= date_trunc('month', now()) - interval '1 month' \
    GROUP BY c.customer_name ORDER BY total DESC";

fn timings(c: &mut Criterion) {
    let catalog = Arc::new(synthetic());
    let columns: usize = catalog.tables.iter().map(|t| t.columns.len()).sum();
    let start = Instant::now();
    let index = SchemaIndex::new(catalog.clone());
    println!(
        "\n== nl_retrieval: synthetic catalog: {} tables, {columns} columns; index built in {:.2?} ==",
        catalog.tables.len(),
        start.elapsed()
    );
    let opts = RetrievalOptions::default();
    for q in QUESTIONS {
        let got = index.retrieve(q, &opts);
        let names: Vec<&str> = got.tables.iter().map(|t| t.name.name.as_str()).collect();
        println!(
            "  {q:?}: {} tokens of {}: {names:?}",
            got.tokens, got.schema_tokens
        );
    }

    c.bench_function("index_build_500_tables", |b| {
        b.iter(|| SchemaIndex::new(catalog.clone()))
    });
    let mut group = c.benchmark_group("retrieve_500_tables");
    for (i, q) in QUESTIONS.iter().enumerate() {
        group.bench_with_input(BenchmarkId::from_parameter(i), q, |b, q| {
            b.iter(|| index.retrieve(q, &opts))
        });
    }
    group.finish();

    let start = Instant::now();
    let checker = PlanChecker::new(&catalog);
    let built = start.elapsed();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let verdict = runtime.block_on(checker.check(ANSWER));
    println!("  plan checker built in {built:.2?}; the answer checks {verdict:?}");
    let conversation = Conversation::new(4);
    c.bench_function("pipeline_500_tables_without_model", |b| {
        b.iter(|| {
            let got = index.retrieve(QUESTIONS[0], &opts);
            let request = prompt::build(&PromptInput {
                question: QUESTIONS[0],
                schema: &got,
                examples: &[],
                conversation: &conversation,
                max_examples: 3,
            });
            let valid = check_static(ANSWER, &catalog).expect("valid answer");
            let plan = runtime.block_on(checker.check(&valid.sql));
            (request, plan)
        })
    });

    // A repeated question: the cache answers before any provider or check.
    let translator = Translator::new(NlConfig::default()).expect("no providers");
    let schema = Schema::new(catalog.clone());
    translator.cache().insert(
        QUESTIONS[0],
        schema.version(),
        conversation.context_digest(QUESTIONS[0]),
        None,
        Arc::new(Translation {
            sql: ANSWER.into(),
            tables: vec![],
            provider: "bench".into(),
            attempts: 1,
            cached: false,
        }),
    );
    let mut upstream = NoUpstream;
    c.bench_function("cached_translation_500_tables", |b| {
        b.iter(|| {
            let t = runtime
                .block_on(translator.translate(QUESTIONS[0], &schema, &conversation, &mut upstream))
                .expect("cached");
            assert!(t.cached);
            t
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = timings
}

fn main() {
    recall_report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// The cached path never reaches the upstream.
struct NoUpstream;

#[async_trait::async_trait]
impl Upstream for NoUpstream {
    async fn explain(&mut self, _sql: &str) -> Result<(), ExplainError> {
        unreachable!("a cached translation is not checked again")
    }
}
