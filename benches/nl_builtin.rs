//! Execution accuracy of the builtin natural-language translator (Helios
//! with no `[[nl.providers]]`): precision = correct / answered, coverage =
//! answered / questions, where "answered" is `nl_sql` returning SQL and
//! "correct" is that SQL returning the gold SQL's result (tests/nl/gold.rs).
//!
//!   cargo bench --bench nl_builtin               # defog, then demo
//!   cargo bench --bench nl_builtin -- defog      # one of them
//!   cargo bench --bench nl_builtin -- demo
//!   cargo bench --bench nl_builtin -- selftest   # the harness itself (below)
//!
//! (`--profile dev` builds faster; the figures do not depend on it.)
//!
//! - `defog`: a real PostgreSQL with the defog databases of
//!   `instruct_basic_postgres.csv` (each `<db>/<db>.sql` loaded into its own
//!   database, then ANALYZE), Helios in front of it; per question, `nl_sql`
//!   through Helios, the predicted and the gold SQL run directly on
//!   PostgreSQL (read-only). A gold `query` may hold several acceptable
//!   answers separated by `;`, and `{a, b}` (with `{}` repeating the choice)
//!   for "either column set": a prediction matching any variant is correct.
//! - `demo`: `tests/nl/builtin_demo_questions.txt` against Helios with no
//!   upstream (the embedded demo database), everything run through Helios.
//! - `selftest`: both, but with a fake model answering each question with
//!   its gold SQL: precision must be ~100%; a miss is a comparator bug.
//!
//! Environment: `HELIOS_DEFOG_DIR` (default `/work/shared/datasets/defog`),
//! `HELIOS_DEMO_GOLD` (default the demo file above), `NL_BUILTIN_MISSES=1`
//! to list every wrong or refused question with its SQL or message.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/nl/gold.rs"]
mod gold;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::llm::FakeLlm;
use common::{Helios, PgServer};
use gold::{Case, Report};

/// `[nl]` for every run: a translation is never reused for a merely
/// similar question, so each question is measured on its own.
const NL: &str = "[nl]\nsimilarity_threshold = 1.0\n";

fn main() {
    // `cargo bench` passes `--bench`; the rest are modes.
    let mut modes: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let selftest = modes.iter().any(|m| m == "selftest");
    modes.retain(|m| m != "selftest");
    if let Some(bad) = modes
        .iter()
        .find(|m| !["defog", "demo"].contains(&m.as_str()))
    {
        eprintln!("unknown mode {bad}: use defog, demo and/or selftest");
        std::process::exit(2);
    }
    let want = |mode: &str| modes.is_empty() || modes.iter().any(|m| m == mode);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut reports = vec![];
    if want("defog") {
        let started = Instant::now();
        let parts = runtime.block_on(defog(selftest));
        reports.push(Report {
            name: "defog (all)".into(),
            results: parts.iter().flat_map(|r| r.results.clone()).collect(),
        });
        reports.extend(parts);
        eprintln!("defog: {:.1}s", started.elapsed().as_secs_f64());
    }
    if want("demo") {
        let started = Instant::now();
        reports.extend(runtime.block_on(demo(selftest)));
        eprintln!("demo: {:.1}s", started.elapsed().as_secs_f64());
    }
    let what = if selftest {
        "harness self-test: a fake model answers the gold SQL"
    } else {
        "builtin translator"
    };
    println!(
        "\nNL execution accuracy ({what})\n{}",
        gold::table(&reports)
    );
    if std::env::var("NL_BUILTIN_MISSES").is_ok_and(|v| v == "1") {
        for r in reports.iter().filter(|r| !r.name.ends_with("(all)")) {
            let misses = r.misses();
            if !misses.is_empty() {
                println!("== misses in {}\n{misses}", r.name);
            }
        }
    }
}

/// The `[nl]` section: the builtin alone, or (self-test) one fake provider
/// asked once per question, with no step plan and no history.
fn nl_config(llm: Option<&FakeLlm>) -> String {
    match llm {
        None => NL.to_string(),
        Some(llm) => format!(
            "{NL}max_attempts = 1\ncomplexity_threshold = 1000000\nhistory_turns = 0\n\
             [[nl.providers]]\nkind = \"openai\"\nname = \"fake\"\nbase_url = \"{}\"\n\
             model = \"gold\"\napi_key = \"sk-test\"\ntimeout = \"30s\"\nmax_retries = 0\n",
            llm.base_url()
        ),
    }
}

/// The fake model's script: each question's first gold statement, queued
/// just before it is asked; every other unordered one as
/// `SELECT 0 AS pad, g.* FROM (gold) AS g`, to exercise the column mapping.
/// An answer left queued (the question failed before the model was asked)
/// is used up first, with a warning, so that the next question does not get it.
fn answer_with_gold(llm: &FakeLlm) -> impl FnMut(&Case) + '_ {
    let mut n = 0;
    move |case: &Case| {
        if llm.pending() > 0 {
            let q = &case.question;
            eprintln!("warning: the question before {q:?} did not reach the model");
        }
        while llm.pending() > 0 {
            let mut s = std::net::TcpStream::connect(llm.addr()).expect("fake LLM");
            let _ = s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
            let _ = s.read_to_end(&mut vec![]);
        }
        let gold = &case.gold[0];
        n += 1;
        if n % 2 == 0 && gold::Order::of(gold) == gold::Order::Any {
            llm.reply_text(format!("SELECT 0 AS pad, g.* FROM ({gold}) AS g"));
        } else {
            llm.reply_text(gold.clone());
        }
    }
}

/// Every defog database of the instruct set, one report each.
async fn defog(selftest: bool) -> Vec<Report> {
    let dir = PathBuf::from(
        std::env::var("HELIOS_DEFOG_DIR").unwrap_or_else(|_| "/work/shared/datasets/defog".into()),
    );
    let csv_path = dir.join("instruct_basic_postgres.csv");
    let csv = std::fs::read_to_string(&csv_path)
        .unwrap_or_else(|e| panic!("{}: {e}", csv_path.display()));
    let records = parse_csv(&csv);
    let header = &records[0];
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column"))
    };
    let (db_col, q_col, sql_col) = (col("db_name"), col("question"), col("query"));
    let mut dbs: Vec<(String, Vec<Case>)> = vec![];
    for (i, r) in records
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, r)| r.len() > sql_col)
    {
        let case = Case {
            question: r[q_col].trim().to_string(),
            gold: alternatives(&r[sql_col]),
            origin: format!("instruct_basic_postgres.csv record {i}"),
        };
        match dbs.iter_mut().find(|(db, _)| *db == r[db_col]) {
            Some((_, cases)) => cases.push(case),
            None => dbs.push((r[db_col].clone(), vec![case])),
        }
    }

    let pg = PgServer::start();
    for (db, _) in &dbs {
        load(&pg, &dir, db);
    }
    let llm = selftest.then(FakeLlm::start_blocking);
    let helios = Helios::start(&pg, &nl_config(llm.as_ref()));
    let mut reports = vec![];
    for (db, cases) in &dbs {
        let ask = common::connect(&format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            helios.port
        ))
        .await;
        let exec = common::connect(&format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            pg.port
        ))
        .await;
        exec.batch_execute("SET default_transaction_read_only = on; SET statement_timeout = '30s'")
            .await
            .expect("read-only session");
        let name = format!("defog/{db}");
        let report = match &llm {
            Some(llm) => gold::evaluate(&name, &ask, &exec, cases, answer_with_gold(llm)).await,
            None => gold::evaluate(&name, &ask, &exec, cases, |_| {}).await,
        };
        reports.push(report);
    }
    reports
}

/// Creates database `db` and loads `<dir>/<db>/<db>.sql` into it.
fn load(pg: &PgServer, dir: &Path, db: &str) {
    let file = dir.join(db).join(format!("{db}.sql"));
    pg.psql(&format!("CREATE DATABASE \"{db}\""));
    for args in [
        vec!["-d", db, "-f", file.to_str().unwrap()],
        vec!["-d", db, "-c", "ANALYZE"],
    ] {
        let out = common::psql(pg.port, "postgres", &args);
        assert!(
            out.status.success(),
            "loading {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The demo gold file against the embedded demo database.
async fn demo(selftest: bool) -> Option<Report> {
    let default = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/nl/builtin_demo_questions.txt"
    );
    let path = std::env::var("HELIOS_DEMO_GOLD").unwrap_or_else(|_| default.into());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("demo: skipped, {path}: {e}");
            return None;
        }
    };
    let cases =
        gold::parse_gold(&text, "builtin_demo_questions.txt").unwrap_or_else(|e| panic!("{e}"));
    let llm = selftest.then(FakeLlm::start_blocking);
    let helios = Helios::start_config(&nl_config(llm.as_ref()));
    let client = helios.connect().await;
    Some(match &llm {
        Some(llm) => gold::evaluate("demo", &client, &client, &cases, answer_with_gold(llm)).await,
        None => gold::evaluate("demo", &client, &client, &cases, |_| {}).await,
    })
}

/// The acceptable statements of a defog gold `query`: split at `;` outside
/// quotes; each `{a, b}` expanded to one statement per item, with every `{}`
/// after it repeating the item (at most 64 statements).
fn alternatives(query: &str) -> Vec<String> {
    let mut statements = vec![String::new()];
    let mut quoted = false;
    for c in query.chars() {
        quoted ^= c == '\'';
        match c {
            ';' if !quoted => statements.push(String::new()),
            _ => statements.last_mut().unwrap().push(c),
        }
    }
    let mut out = vec![];
    for s in statements
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        expand(s.to_string(), &mut out);
    }
    out
}

fn expand(sql: String, out: &mut Vec<String>) {
    let group = sql
        .find('{')
        .and_then(|a| Some((a, a + sql[a..].find('}')?)));
    match group {
        Some((a, b)) if b > a + 1 && out.len() < 64 => {
            let mut depth = 0i32;
            let mut items = vec![String::new()];
            for c in sql[a + 1..b].chars() {
                depth += i32::from(c == '(') - i32::from(c == ')');
                match c {
                    ',' if depth == 0 => items.push(String::new()),
                    _ => items.last_mut().unwrap().push(c),
                }
            }
            for item in items.iter().map(|i| i.trim()) {
                let rest = sql[b + 1..].replace("{}", item);
                expand(format!("{}{item}{rest}", &sql[..a]), out);
            }
        }
        _ => out.push(sql),
    }
}

/// RFC 4180 CSV: fields separated by commas, quoted with `"` (doubled
/// inside) when they hold commas, quotes or line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (vec![], vec![], String::new());
    let (mut chars, mut quoted) = (text.chars().peekable(), false);
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => record.push(std::mem::take(&mut field)),
            ('\n', false) => {
                record.push(
                    std::mem::take(&mut field)
                        .trim_end_matches('\r')
                        .to_string(),
                );
                records.push(std::mem::take(&mut record));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}
