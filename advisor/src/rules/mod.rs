//! Static rules: the parsed statement and the catalog snapshot, no upstream
//! round trip. Each rule is a function that adds [`Finding`]s; [`RULES`]
//! lists them all, and [`static_findings`] runs them.
//!
//! A rule must be cheap (the whole set runs in well under a millisecond on
//! a typical statement) and must not guess: when the catalog does not know
//! a table or column, a rule that needs it stays silent.

use datafusion::sql::sqlparser::ast::Statement;
use helios_planner::catalog::Catalog;

use crate::{Finding, Options};

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

/// Every static rule, by id.
pub const RULES: &[(&str, Rule)] = &[];

/// Run every static rule over one statement.
pub fn static_findings(cx: &RuleContext<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (_, rule) in RULES {
        rule(cx, &mut out);
    }
    out
}
