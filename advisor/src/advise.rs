//! The whole analysis of one statement: static rules, the upstream's plan
//! and its rules, an index recommendation, the score.

use helios_planner::catalog::{Catalog, TextQuery};
use helios_planner::sql::{self, StatementKind};

use crate::index::{self, explain, Subject};
use crate::plan::plan_findings;
use crate::rules::StaticAnalyzer;
use crate::{score, Finding, Options, Severity};

/// How far the analysis goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The statement and the catalog only: no upstream round trip.
    Static,
    /// Also the upstream's plan (`EXPLAIN`) and an index recommendation.
    Explain,
    /// Also run it (`EXPLAIN ANALYZE`, read-only statements only, in a READ
    /// ONLY transaction that is rolled back) for runtime findings.
    Analyze,
}

/// The advisor's answer for one statement.
#[derive(Debug, Clone, Default)]
pub struct Advice {
    /// Most severe first.
    pub findings: Vec<Finding>,
    /// 0 to 100 (see [`score`]).
    pub score: u32,
    /// The statement plans (it parses and names only what exists).
    pub plans: bool,
    /// The planner's total cost, when the upstream planned it.
    pub cost: Option<f64>,
}

/// Whether running `stmt` can change nothing (what `ADVISE ANALYZE` runs).
pub fn read_only(stmt: &datafusion::sql::sqlparser::ast::Statement) -> bool {
    let info = sql::analyze(stmt);
    info.kind == StatementKind::Query
        && !info.locking
        && !info.data_modifying_cte
        && !info.select_into
}

fn failed(rule: &'static str, title: &str, detail: String) -> Finding {
    Finding::new(Severity::Critical, rule, title, detail)
}

/// Analyze one statement. `upstream` runs the advisor's queries (EXPLAIN,
/// HypoPG, `pg_stats`) as the client's role; without it, or in
/// [`Mode::Static`], only the static rules run.
pub async fn advise<Q: TextQuery>(
    text: &str,
    catalog: &Catalog,
    analyzer: &StaticAnalyzer,
    upstream: Option<&mut Q>,
    mode: Mode,
    options: &Options,
) -> Advice {
    let mut advice = Advice::default();
    let statements = match sql::parse(text) {
        Ok(s) => s,
        Err(e) => {
            advice
                .findings
                .push(failed("syntax_error", "the statement does not parse", e));
            return finish(advice);
        }
    };
    let [statement] = statements.as_slice() else {
        advice.findings.push(failed(
            "not_one_statement",
            "advise one statement at a time",
            format!("the text holds {} statements", statements.len()),
        ));
        return finish(advice);
    };
    advice.findings = analyzer.findings(text, statement, options);
    advice.plans = !advice.findings.iter().any(|f| f.rule == "unknown_name");
    let (Some(q), true) = (upstream, mode != Mode::Static && advice.plans) else {
        return finish(advice);
    };
    let plan = match explain::explain(q, text).await {
        Ok(plan) => plan,
        Err(e) => {
            advice.plans = false;
            advice.findings.push(failed(
                "does_not_plan",
                "PostgreSQL cannot plan the statement",
                e,
            ));
            return finish(advice);
        }
    };
    advice.cost = Some(plan.total_cost());
    let runtime = if mode == Mode::Analyze {
        if read_only(statement) {
            match explain::explain_analyze(q, text).await {
                Ok(p) => Some(p),
                Err(e) => {
                    advice.findings.push(Finding::new(
                        Severity::Warning,
                        "analyze_failed",
                        "running the statement under EXPLAIN ANALYZE failed",
                        e,
                    ));
                    None
                }
            }
        } else {
            advice.findings.push(Finding::new(
                Severity::Info,
                "analyze_skipped",
                "not run: ADVISE ANALYZE runs read-only statements only",
                "The findings come from the plan's estimates; the statement was not executed.",
            ));
            None
        }
    } else {
        None
    };
    advice.findings.extend(plan_findings(
        runtime.as_ref().unwrap_or(&plan),
        catalog,
        options,
    ));
    let uses = index::table_uses(statement, catalog);
    let cands = index::candidates(&uses, catalog, options.max_index_columns);
    if !cands.is_empty() {
        let hypopg = index::has_hypopg(q).await;
        let subject = Subject {
            sql: text,
            plan: &plan,
            catalog,
            uses: &uses,
            candidates: &cands,
        };
        match index::recommend(q, &subject, hypopg, options).await {
            Ok(Some(f)) => advice.findings.push(f),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "index verification failed"),
        }
    }
    finish(advice)
}

fn finish(mut advice: Advice) -> Advice {
    advice
        .findings
        .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(b.rule)));
    advice.score = score(&advice.findings, advice.plans);
    advice
}
