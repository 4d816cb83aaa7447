//! Rules about WHERE and JOIN ... ON predicates.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Ident, SelectItem, SetExpr, Visit, Visitor,
};
use helios_planner::catalog::{quote_ident, Table};

use super::exprs::{
    conjuncts, disjuncts, fmt_rows, for_each_shallow, is_null, predicates, string_literal,
    table_rows,
};
use super::functions::{index_expression, leading_index, wrapped_column};
use super::scope::{column_parts, Level};
use super::select::select_one;
use super::walk::for_each_level;
use super::RuleContext;
use crate::{Finding, Severity};

/// `LIKE '%foo'` / `ILIKE '_oo'`: a pattern that starts with a wildcard
/// cannot use a B-tree index, so every row is compared.
pub(crate) fn leading_wildcard_like(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        for predicate in predicates(level) {
            for_each_shallow(predicate, &mut |e| {
                let (expr, pattern, op) = match e {
                    Expr::Like {
                        expr,
                        pattern,
                        any: false,
                        ..
                    } => (expr, pattern, "LIKE"),
                    Expr::ILike {
                        expr,
                        pattern,
                        any: false,
                        ..
                    } => (expr, pattern, "ILIKE"),
                    _ => return,
                };
                let Some(p) = string_literal(pattern) else {
                    return;
                };
                if !(p.starts_with('%') || p.starts_with('_')) {
                    return;
                }
                // The indexable thing: the column itself, or `lower(col)`.
                let column = level
                    .column(expr)
                    .or_else(|| wrapped_column(expr).and_then(|(c, _)| level.column(c)));
                if let Some(c) = &column {
                    if c.table.is_some_and(|t| has_trigram_index(t, &c.name)) {
                        return;
                    }
                }
                let scanned = column
                    .as_ref()
                    .and_then(|c| {
                        let t = c.table?;
                        Some(format!(
                            " of {} (~{} rows)",
                            t.name,
                            fmt_rows(table_rows(t)?)
                        ))
                    })
                    .unwrap_or_default();
                let ddl = column.as_ref().and_then(|c| {
                    let t = c.table?;
                    Some(format!(
                        "CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE INDEX CONCURRENTLY ON \
                         {} USING gin ({} gin_trgm_ops);",
                        t.qualified_name(),
                        index_expression(expr)
                    ))
                });
                let suggestion = match ddl {
                    Some(ddl) => format!(
                        "A trigram index serves {op} with any wildcard: {ddl} For word search, \
                         use full-text search (to_tsvector ... @@ to_tsquery ...) instead."
                    ),
                    None => format!(
                        "Index the column with pg_trgm (USING gin (col gin_trgm_ops)), which \
                         serves {op} with any wildcard, or use full-text search."
                    ),
                };
                out.push(
                    Finding::new(
                        Severity::Warning,
                        "leading_wildcard_like",
                        format!("{op} pattern starts with a wildcard"),
                        format!(
                            "The pattern '{p}' starts with a wildcard, so a B-tree index on \
                             `{expr}` cannot narrow the search: every row{scanned} is compared."
                        ),
                    )
                    .at(e.to_string())
                    .suggest(suggestion),
                );
            });
        }
    });
}

/// A GIN or GiST trigram index on the column.
fn has_trigram_index(table: &Table, column: &str) -> bool {
    table.indexes.iter().any(|i| {
        matches!(i.method.as_str(), "gin" | "gist")
            && i.definition.contains("trgm_ops")
            && i.definition.contains(column)
    })
}

/// `a = 1 OR b = 2`: no single index serves both branches.
pub(crate) fn or_across_columns(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        if let Some(selection) = level.selection {
            find_ors(selection, level, out);
        }
    });
}

/// Look at every OR reachable through AND, NOT and parentheses.
fn find_ors(expr: &Expr, level: &Level<'_, '_>, out: &mut Vec<Finding>) {
    match expr {
        Expr::BinaryOp {
            op: BinaryOperator::Or,
            ..
        } => {
            let branches = disjuncts(expr);
            check_or(expr, &branches, level, out);
            for b in branches {
                find_ors(b, level, out);
            }
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            find_ors(left, level, out);
            find_ors(right, level, out);
        }
        Expr::Nested(e)
        | Expr::UnaryOp {
            op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
            expr: e,
        } => find_ors(e, level, out),
        _ => {}
    }
}

fn check_or(expr: &Expr, branches: &[&Expr], level: &Level<'_, '_>, out: &mut Vec<Finding>) {
    // Columns each branch filters on, keyed `binding.column` when resolved.
    let mut sets: Vec<BTreeSet<String>> = Vec::new();
    let mut resolved = Vec::new();
    let mut unresolved = 0;
    for branch in branches {
        let mut set = BTreeSet::new();
        for_each_shallow(branch, &mut |e| {
            if let Some(parts) = column_parts(e) {
                match level.column(e) {
                    Some(c) => {
                        set.insert(format!("{}.{}", c.binding, c.name));
                        resolved.push(c);
                    }
                    None => {
                        set.insert(parts.join("."));
                        unresolved += 1;
                    }
                }
            }
        });
        // `$1 IS NULL OR col = $1` and the like: not a column choice.
        if set.is_empty() {
            return;
        }
        sets.push(set);
    }
    let common = sets.iter().skip(1).fold(sets[0].clone(), |acc, s| {
        acc.intersection(s).cloned().collect()
    });
    if !common.is_empty() {
        return;
    }
    let all: BTreeSet<String> = sets.into_iter().flatten().collect();
    // Every column resolved, all of one catalog table, each leading an
    // index: PostgreSQL combines the indexes with a BitmapOr. Otherwise
    // name the indexes that are missing, when the table is known.
    let mut missing: Vec<(&Table, String)> = Vec::new();
    let one_table = unresolved == 0
        && resolved
            .iter()
            .all(|c| c.binding == resolved[0].binding && c.table.is_some());
    if one_table {
        for c in &resolved {
            let Some(t) = c.table else { continue };
            if leading_index(t, &c.name).is_none() && !missing.iter().any(|(_, n)| *n == c.name) {
                missing.push((t, c.name.clone()));
            }
        }
        if missing.is_empty() {
            return;
        }
    }
    let indexes = if missing.is_empty() {
        String::new()
    } else {
        let ddl: Vec<String> = missing
            .iter()
            .map(|(t, c)| {
                format!(
                    "CREATE INDEX CONCURRENTLY ON {} ({});",
                    t.qualified_name(),
                    quote_ident(c)
                )
            })
            .collect();
        format!(" Missing indexes for a BitmapOr: {}", ddl.join(" "))
    };
    out.push(
        Finding::new(
            Severity::Info,
            "or_across_columns",
            "OR across different columns",
            format!(
                "The branches of this OR filter on different columns ({}), so no single index \
                 serves the condition; PostgreSQL needs an index per column to combine them \
                 (BitmapOr), and otherwise scans.",
                all.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
        .at(expr.to_string())
        .suggest(format!(
            "Split it into one query per branch joined with UNION (or UNION ALL with the earlier \
             branches excluded), each using its own index; or make sure every column has an \
             index.{indexes}"
        )),
    );
}

/// `x NOT IN (SELECT col ...)` where col may be NULL: a single NULL makes
/// the condition NULL for every row, and the query returns nothing.
pub(crate) fn not_in_nullable_subquery(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        for predicate in predicates(level) {
            for_each_shallow(predicate, &mut |e| {
                let Expr::InSubquery {
                    expr,
                    subquery,
                    negated: true,
                } = e
                else {
                    return;
                };
                let SetExpr::Select(inner) = subquery.body.as_ref() else {
                    return;
                };
                let [SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }] =
                    inner.projection.as_slice()
                else {
                    return;
                };
                let relations = level.relations_of(&inner.from);
                let Some(c) = Level::column_in(&relations, item) else {
                    return;
                };
                let Some(column) = c.column.filter(|c| c.nullable) else {
                    return;
                };
                if excludes_nulls(inner.selection.as_ref(), item) {
                    return;
                }
                // NOT EXISTS (SELECT 1 FROM ... WHERE <item> = <x> AND ...),
                // both sides qualified: inside the subquery an unqualified
                // outer name could resolve to the subquery's own column.
                let mut rewrite = select_one(inner);
                let outer = match level.column(expr) {
                    Some(o) if column_parts(expr).is_some_and(|p| p.len() == 1) => {
                        qualified(&o.binding, &o.name)
                    }
                    _ => expr.as_ref().clone(),
                };
                let link = Expr::BinaryOp {
                    left: Box::new(qualified(&c.binding, &c.name)),
                    op: BinaryOperator::Eq,
                    right: Box::new(outer),
                };
                rewrite.selection = Some(match rewrite.selection.take() {
                    Some(w) => Expr::BinaryOp {
                        left: Box::new(Expr::Nested(Box::new(w))),
                        op: BinaryOperator::And,
                        right: Box::new(link),
                    },
                    None => link,
                });
                out.push(
                    Finding::new(
                        Severity::Critical,
                        "not_in_nullable_subquery",
                        "NOT IN over a nullable column",
                        format!(
                            "{} ({}) is nullable: if the subquery returns a single NULL, `{expr} \
                             NOT IN (...)` is NULL for every row and the query returns nothing. \
                             NOT IN also keeps PostgreSQL from planning an anti-join.",
                            c.display(),
                            column.data_type
                        ),
                    )
                    .at(e.to_string())
                    .suggest(format!("NOT EXISTS ({rewrite})")),
                );
            });
        }
    });
}

fn qualified(binding: &str, column: &str) -> Expr {
    Expr::CompoundIdentifier(vec![
        Ident::new(quote_ident(binding)),
        Ident::new(quote_ident(column)),
    ])
}

/// Whether `selection` has a top-level `item IS NOT NULL` conjunct.
fn excludes_nulls(selection: Option<&Expr>, item: &Expr) -> bool {
    let wanted = column_parts(item).and_then(|p| p.last().cloned());
    selection.is_some_and(|w| {
        conjuncts(w).into_iter().any(|c| match c {
            Expr::IsNotNull(e) => column_parts(e).and_then(|p| p.last().cloned()) == wanted,
            _ => false,
        })
    })
}

/// `x = NULL` / `x <> NULL`: NULL compares to nothing, so it is never true.
pub(crate) fn equals_null(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    struct Finder<'o>(&'o mut Vec<Finding>);
    impl Visitor for Finder<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let Expr::BinaryOp { left, op, right } = e else {
                return ControlFlow::Continue(());
            };
            let negated = match op {
                BinaryOperator::Eq => false,
                BinaryOperator::NotEq => true,
                _ => return ControlFlow::Continue(()),
            };
            let other = if is_null(right) {
                left
            } else if is_null(left) {
                right
            } else {
                return ControlFlow::Continue(());
            };
            let fix = if negated { "IS NOT NULL" } else { "IS NULL" };
            self.0.push(
                Finding::new(
                    Severity::Critical,
                    "equals_null",
                    format!("Comparison with NULL using {op}"),
                    format!(
                        "`{e}` is never true: comparing anything with NULL yields NULL, so \
                         the condition filters out every row."
                    ),
                )
                .at(e.to_string())
                .suggest(format!("{other} {fix}")),
            );
            ControlFlow::Continue(())
        }
    }
    let _ = cx.statement.visit(&mut Finder(out));
}
