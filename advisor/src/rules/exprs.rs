//! Small questions about expressions the rules share: which predicates a
//! level has, what a literal is, how many rows a table has.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Query, Value, Visit, Visitor};
use helios_planner::catalog::Table;
use helios_planner::sql::name_parts;

use super::scope::Level;

/// Aggregates PostgreSQL users reach for; enough to recognise "one row".
pub(crate) fn is_aggregate_call(expr: &Expr) -> bool {
    const AGGREGATES: &[&str] = &[
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "bool_and",
        "bool_or",
        "every",
        "array_agg",
        "string_agg",
        "json_agg",
        "jsonb_agg",
    ];
    match expr {
        Expr::Function(f) if f.over.is_none() => name_parts(&f.name)
            .last()
            .is_some_and(|n| AGGREGATES.contains(&n.as_str())),
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => is_aggregate_call(e),
        _ => false,
    }
}

/// `NULL` (also what `LIMIT ALL` parses to).
pub(crate) fn is_null(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(e) => is_null(e),
        Expr::Value(v) => v.value == Value::Null,
        _ => false,
    }
}

/// Call `f` on `expr` and every expression inside it, but not inside its
/// subqueries (those are levels of their own). A subquery expression itself
/// (`(SELECT ...)`, `EXISTS`, `IN (SELECT ...)`) is passed to `f`.
pub(crate) fn for_each_shallow(expr: &Expr, f: &mut dyn FnMut(&Expr)) {
    struct Shallow<'f> {
        depth: usize,
        f: &'f mut dyn FnMut(&Expr),
    }
    impl Visitor for Shallow<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if self.depth == 0 {
                (self.f)(e);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = expr.visit(&mut Shallow { depth: 0, f });
}

/// The predicates a level filters or joins on: WHERE and every JOIN ... ON.
pub(crate) fn predicates<'a>(level: &Level<'a, '_>) -> Vec<&'a Expr> {
    use datafusion::sql::sqlparser::ast::{JoinConstraint, JoinOperator as J};
    let mut out: Vec<&Expr> = level.selection.into_iter().collect();
    for twj in &level.from {
        for join in &twj.joins {
            let constraint = match &join.join_operator {
                J::Join(c)
                | J::Inner(c)
                | J::Left(c)
                | J::LeftOuter(c)
                | J::Right(c)
                | J::RightOuter(c)
                | J::FullOuter(c)
                | J::CrossJoin(c)
                | J::Semi(c)
                | J::LeftSemi(c)
                | J::RightSemi(c)
                | J::Anti(c)
                | J::LeftAnti(c)
                | J::RightAnti(c) => c,
                _ => continue,
            };
            if let JoinConstraint::On(e) = constraint {
                out.push(e);
            }
        }
    }
    out
}

/// The operands of `a AND b AND ...` (through parentheses).
pub(crate) fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut out = conjuncts(left);
            out.extend(conjuncts(right));
            out
        }
        Expr::Nested(e) => conjuncts(e),
        e => vec![e],
    }
}

/// The operands of `a OR b OR ...` (through parentheses).
pub(crate) fn disjuncts(expr: &Expr) -> Vec<&Expr> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            let mut out = disjuncts(left);
            out.extend(disjuncts(right));
            out
        }
        Expr::Nested(e) => disjuncts(e),
        e => vec![e],
    }
}

/// Rows in a table: the planner's estimate, or the live rows of the
/// statistics when it was never analyzed; the larger when both are known.
pub(crate) fn table_rows(t: &Table) -> Option<f64> {
    let estimate = (t.row_estimate >= 0.0).then_some(t.row_estimate);
    let live = t.stats.as_ref().map(|s| s.live_rows);
    match (estimate, live) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// `1234567.0` as `1,234,567`.
pub(crate) fn fmt_rows(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
/// A string literal's text.
pub(crate) fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::NationalStringLiteral(s)
            | Value::UnicodeStringLiteral(s) => Some(s),
            Value::DollarQuotedString(d) => Some(&d.value),
            _ => None,
        },
        Expr::Nested(e) => string_literal(e),
        _ => None,
    }
}

/// The operands a comparison-like predicate compares.
pub(crate) fn compared_operands(expr: &Expr) -> Vec<&Expr> {
    use BinaryOperator as Op;
    match expr {
        Expr::BinaryOp {
            left,
            op: Op::Eq | Op::NotEq | Op::Lt | Op::LtEq | Op::Gt | Op::GtEq,
            right,
        } => vec![left, right],
        Expr::Between { expr, .. }
        | Expr::InList { expr, .. }
        | Expr::InSubquery { expr, .. }
        | Expr::Like { expr, .. }
        | Expr::ILike { expr, .. }
        | Expr::IsNull(expr)
        | Expr::IsNotNull(expr) => vec![expr],
        _ => vec![],
    }
}

/// An integer literal's value.
pub(crate) fn integer_literal(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::Nested(e) => integer_literal(e),
        _ => None,
    }
}
