//! Static rules: the parsed statement and the catalog snapshot, no upstream
//! round trip. Each rule is a function that adds [`Finding`]s; [`RULES`]
//! lists them all, and [`static_findings`] runs them.
//!
//! A rule must be cheap (the whole set runs in well under a millisecond on
//! a typical statement) and must not guess: when the catalog does not know
//! a table or column, a rule that needs it stays silent.
//!
//! The rules, by theme:
//! - `select`: what the select list asks for (`SELECT *`, correlated
//!   scalar subqueries, DISTINCT over joins, `count(*) > 0`).
//! - `predicates`: WHERE and JOIN ... ON (leading-wildcard LIKE, OR
//!   across columns, NOT IN over a nullable column, `= NULL`).
//! - `functions`: a function or cast on an indexed column in a predicate.
//! - `types`: a literal whose type does not match the column's.
//! - `joins`: relations with no predicate connecting them.
//! - `pagination`: OFFSET, ORDER BY random(), LIMIT without ORDER BY, and
//!   unfiltered scans of large tables.
//! - `plan_check`: planning in DataFusion against the catalog (unknown
//!   names, cross joins and implicit casts in the logical plan); it needs a
//!   planning context built once per catalog, so it runs through
//!   [`StaticAnalyzer`] rather than [`RULES`].
//!
//! What they share: `walk` visits every query level of a statement,
//! `scope` knows what a level reads and resolves its column references
//! through FROM aliases and the catalog, and `exprs` answers small
//! questions about expressions.

mod exprs;
mod functions;
mod joins;
mod pagination;
mod plan_check;
mod predicates;
mod scope;
mod select;
mod types;
mod walk;

#[cfg(test)]
mod tests;

use datafusion::sql::sqlparser::ast::Statement;
use helios_planner::catalog::Catalog;

use crate::{Finding, Options};

pub use plan_check::PLAN_RULES;

/// What a rule looks at.
pub struct RuleContext<'a> {
    /// The statement's text, as the client sent it.
    pub sql: &'a str,
    pub statement: &'a Statement,
    /// The upstream's tables, as the session's role sees them; unqualified
    /// names resolve through its search_path ([`Catalog::resolve`]).
    pub catalog: &'a Catalog,
    pub options: &'a Options,
}

/// A static rule.
pub type Rule = fn(&RuleContext<'_>, &mut Vec<Finding>);

/// Every static rule over the syntax tree, by id. The rules that plan the
/// statement in DataFusion are listed in [`PLAN_RULES`].
pub const RULES: &[(&str, Rule)] = &[
    ("select_star", select::select_star),
    ("leading_wildcard_like", predicates::leading_wildcard_like),
    (
        "function_on_indexed_column",
        functions::function_on_indexed_column,
    ),
    ("literal_type_mismatch", types::literal_type_mismatch),
    ("or_across_columns", predicates::or_across_columns),
    (
        "not_in_nullable_subquery",
        predicates::not_in_nullable_subquery,
    ),
    ("large_offset", pagination::large_offset),
    ("cartesian_product", joins::cartesian_product),
    ("order_by_random", pagination::order_by_random),
    (
        "correlated_subquery_in_select",
        select::correlated_subquery_in_select,
    ),
    ("distinct_over_join", select::distinct_over_join),
    ("count_for_existence", select::count_for_existence),
    ("equals_null", predicates::equals_null),
    ("limit_without_order", pagination::limit_without_order),
    ("unfiltered_large_scan", pagination::unfiltered_large_scan),
];

/// Run every static rule over one statement (the syntax-tree rules only;
/// [`StaticAnalyzer::findings`] adds the DataFusion ones).
pub fn static_findings(cx: &RuleContext<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (_, rule) in RULES {
        rule(cx, &mut out);
    }
    out
}

/// The static pass for one catalog: the syntax-tree rules, and the
/// DataFusion planning context (every catalog relation registered as an
/// empty table) that the plan rules need. Building the context costs a
/// little per relation, so build one per catalog version and share it;
/// [`findings`](StaticAnalyzer::findings) takes `&self` and may run
/// concurrently.
pub struct StaticAnalyzer {
    catalog: Catalog,
    plans: plan_check::PlanContext,
}

impl StaticAnalyzer {
    pub fn new(catalog: &Catalog) -> StaticAnalyzer {
        StaticAnalyzer {
            catalog: catalog.clone(),
            plans: plan_check::PlanContext::new(catalog),
        }
    }

    /// The catalog it was built from.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Every static finding for one statement: the syntax-tree rules, then
    /// the plan rules. A statement that names something that does not exist
    /// gets a critical `unknown_name` finding (it would not run).
    pub fn findings(&self, sql: &str, statement: &Statement, options: &Options) -> Vec<Finding> {
        let cx = RuleContext {
            sql,
            statement,
            catalog: &self.catalog,
            options,
        };
        let mut out = static_findings(&cx);
        self.plans.findings(&cx, &mut out);
        out
    }
}
