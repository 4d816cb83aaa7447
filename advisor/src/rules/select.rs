//! Rules about what the select list asks for.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Distinct, Expr, GroupByExpr, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, TableFactor, Value, Visit, Visitor,
};
use helios_planner::catalog::quote_ident;
use helios_planner::sql::{name_parts, normalize_ident};

use super::exprs::{fmt_rows, for_each_shallow, integer_literal, predicates, table_rows};
use super::scope::{column_parts, Level, Relation, Role};
use super::walk::for_each_level;
use super::RuleContext;
use crate::{Finding, Severity};

/// `SELECT *` or `t.*` in the outermost select list: every column is read
/// and shipped, an index-only scan is impossible, and the result changes
/// shape when a column is added.
pub(crate) fn select_star(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        let Some(select) = level.select() else {
            return;
        };
        // Inside a subquery or CTE, `*` costs nothing by itself: the
        // outer select list decides what is computed.
        if level.query.role != Role::Top {
            return;
        }
        let joined = level.relations.len() > 1;
        for item in &select.projection {
            let (fragment, relations): (String, Vec<&Relation>) = match item {
                SelectItem::Wildcard(_) => ("*".into(), level.relations.iter().collect()),
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => {
                    let binding = name_parts(n).pop().unwrap_or_default();
                    let r = level.relations.iter().filter(|r| r.binding == binding);
                    (format!("{n}.*"), r.collect())
                }
                _ => continue,
            };
            let severity = if joined {
                Severity::Warning
            } else {
                Severity::Info
            };
            let columns = column_list(&relations, joined);
            let count = columns
                .as_ref()
                .map_or(String::new(), |c| format!(" ({} columns)", c.len()));
            let names: Vec<&str> = relations
                .iter()
                .map(|r| r.table.map_or(r.binding.as_str(), |t| t.name.as_str()))
                .collect();
            let mut detail = format!(
                "`{fragment}` in the outermost select list returns every column of {}{count}: \
                 more data read and sent than the application likely uses, no index-only scan, \
                 and the result changes shape when a column is added.",
                names.join(", ")
            );
            if joined {
                detail.push_str(&format!(
                    " Over a join of {} relations it also repeats the join columns.",
                    level.relations.len()
                ));
            }
            let suggestion = match columns {
                Some(c) => format!("List the columns you need: SELECT {}", c.join(", ")),
                None => "List the columns you need instead of *.".to_string(),
            };
            out.push(
                Finding::new(
                    severity,
                    "select_star",
                    "SELECT * in the select list",
                    detail,
                )
                .at(fragment)
                .suggest(suggestion),
            );
        }
    });
}

/// Every column of `relations` (qualified by binding when joined), when the
/// catalog knows them all.
fn column_list(relations: &[&Relation], qualify: bool) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for r in relations {
        for c in &r.table?.columns {
            out.push(if qualify {
                format!("{}.{}", quote_ident(&r.binding), quote_ident(&c.name))
            } else {
                quote_ident(&c.name)
            });
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A scalar subquery in the select list that references the outer query:
/// PostgreSQL runs it once for every row the outer query returns.
pub(crate) fn correlated_subquery_in_select(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        let Some(select) = level.select() else {
            return;
        };
        for item in &select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => continue,
            };
            for_each_shallow(expr, &mut |e| {
                let Expr::Subquery(q) = e else {
                    return;
                };
                let Some(reference) = outer_reference(q, level) else {
                    return;
                };
                let rows = level
                    .tables()
                    .filter_map(|(_, t)| {
                        Some(format!("{} ~{} rows", t.name, fmt_rows(table_rows(t)?)))
                    })
                    .collect::<Vec<_>>();
                let rows = if rows.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", rows.join(", "))
                };
                out.push(
                    Finding::new(
                        Severity::Warning,
                        "correlated_subquery_in_select",
                        "Correlated subquery in the select list runs once per row",
                        format!(
                            "The scalar subquery references {reference} of the outer query, so \
                             PostgreSQL evaluates it again for every row the outer query \
                             returns{rows}."
                        ),
                    )
                    .at(e.to_string())
                    .suggest(
                        "Compute it once for all rows: LEFT JOIN a grouped subquery \
                         (LEFT JOIN (SELECT key, agg(...) FROM ... GROUP BY key) s ON s.key = \
                         outer.key), or LEFT JOIN LATERAL (...) ON true.",
                    ),
                );
            });
        }
    });
}

/// A column of the outer query that `subquery` references, as written.
fn outer_reference(subquery: &Query, level: &Level<'_, '_>) -> Option<String> {
    // Names the subquery defines for itself, at any depth.
    struct Inside {
        bindings: HashSet<String>,
        /// Column references, with the depth of the query they are in
        /// (1: the subquery itself).
        references: Vec<(Vec<String>, usize)>,
        depth: usize,
    }
    impl Visitor for Inside {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            let (name, alias) = match f {
                TableFactor::Table { name, alias, .. } => (name_parts(name).pop(), alias),
                TableFactor::Derived { alias, .. }
                | TableFactor::Function { alias, .. }
                | TableFactor::TableFunction { alias, .. }
                | TableFactor::UNNEST { alias, .. } => (None, alias),
                _ => (None, &None),
            };
            self.bindings.extend(name);
            self.bindings
                .extend(alias.as_ref().map(|a| normalize_ident(&a.name)));
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            self.depth += 1;
            for cte in q.with.iter().flat_map(|w| &w.cte_tables) {
                self.bindings.insert(normalize_ident(&cte.alias.name));
            }
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Some(parts) = column_parts(e) {
                self.references.push((parts, self.depth));
            }
            ControlFlow::Continue(())
        }
    }
    let mut inside = Inside {
        bindings: HashSet::new(),
        references: Vec::new(),
        depth: 0,
    };
    let _ = subquery.visit(&mut inside);

    // A qualified reference to a name the subquery does not define.
    for (parts, _) in &inside.references {
        if let [.., q, c] = parts.as_slice() {
            if !inside.bindings.contains(q)
                && std::iter::once(level.relations)
                    .chain(level.outer.iter().map(Vec::as_slice))
                    .any(|rs| rs.iter().any(|r| &r.binding == q))
            {
                return Some(format!("{q}.{c}"));
            }
        }
    }

    // An unqualified name the subquery's own relations (all known) lack,
    // that the outer level has.
    let SetExpr::Select(inner) = subquery.body.as_ref() else {
        return None;
    };
    let relations = level.relations_of(&inner.from);
    let aliases: HashSet<String> = inner
        .projection
        .iter()
        .filter_map(|i| match i {
            SelectItem::ExprWithAlias { alias, .. } => Some(normalize_ident(alias)),
            _ => None,
        })
        .collect();
    // Only names at the subquery's own level: deeper ones belong to its
    // own subqueries' relations.
    for (parts, _) in inside.references.iter().filter(|(_, depth)| *depth == 1) {
        let [name] = parts.as_slice() else { continue };
        if aliases.contains(name) || relations.iter().any(|r| r.has_column(name) != Some(false)) {
            continue;
        }
        let expr = Expr::Identifier(datafusion::sql::sqlparser::ast::Ident::new(name));
        if let Some(c) = level.column(&expr) {
            return Some(format!("{}.{}", c.binding, c.name));
        }
    }
    None
}

/// SELECT DISTINCT over joined relations: the join multiplies rows and
/// DISTINCT sorts or hashes them all to remove the duplicates again.
pub(crate) fn distinct_over_join(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        let Some(select) = level.select() else {
            return;
        };
        let fragment = match &select.distinct {
            Some(Distinct::Distinct) => "SELECT DISTINCT",
            Some(Distinct::On(_)) => "SELECT DISTINCT ON",
            _ => return,
        };
        if level.relations.len() < 2 {
            return;
        }
        let names: Vec<&str> = level.relations.iter().map(|r| r.binding.as_str()).collect();
        let first = &level.relations[0];
        let others: Vec<&str> = level.relations[1..]
            .iter()
            .map(|r| r.text.as_str())
            .collect();
        out.push(
            Finding::new(
                Severity::Info,
                "distinct_over_join",
                "DISTINCT over a join",
                format!(
                    "{fragment} over a join of {}: the join repeats a row of {} for every \
                     matching row of the others (fan-out), and DISTINCT then sorts or hashes \
                     them all to remove the duplicates again. It often hides a join that only \
                     filters.",
                    names.join(", "),
                    first.binding
                ),
            )
            .at(fragment)
            .suggest(format!(
                "If {} only filters, use a semi-join instead: SELECT ... FROM {} WHERE EXISTS \
                 (SELECT 1 FROM {} WHERE <join condition>), and drop DISTINCT.",
                others.join(", "),
                first.text,
                others.join(", ")
            )),
        );
    });
}

/// `(SELECT count(*) ...) > 0` or `SELECT count(*) > 0 FROM ...`: counting
/// every matching row to learn whether there is one.
pub(crate) fn count_for_existence(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        let select = level.select();
        let grouped = select.is_some_and(
            |s| !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty()),
        );
        let mut exprs: Vec<(&Expr, bool)> =
            predicates(level).into_iter().map(|e| (e, false)).collect();
        exprs.extend(select.and_then(|s| s.having.as_ref()).map(|e| (e, false)));
        for item in select.iter().flat_map(|s| &s.projection) {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                exprs.push((e, true));
            }
        }
        for (expr, in_projection) in exprs {
            for_each_shallow(expr, &mut |e| {
                let Some((counted, exists)) = existence_check(e) else {
                    return;
                };
                let (prefix, body) = match counted {
                    Counted::Subquery(q) => ("", one_row_query(q)),
                    // A bare `count(*) > 0` only asks "is there a row" when
                    // the whole level is one group, in the select list.
                    Counted::Aggregate => match select {
                        Some(s) if in_projection && !grouped => {
                            ("SELECT ", Some(select_one(s).to_string()))
                        }
                        _ => ("", None),
                    },
                };
                let Some(body) = body else {
                    return;
                };
                let not = if exists { "" } else { "NOT " };
                let rewrite = format!("{prefix}{not}EXISTS ({body})");
                out.push(
                    Finding::new(
                        Severity::Warning,
                        "count_for_existence",
                        "count(*) used as an existence check",
                        format!(
                            "`{e}` counts every matching row only to compare the count with \
                             zero; EXISTS stops at the first matching row."
                        ),
                    )
                    .at(e.to_string())
                    .suggest(rewrite),
                );
            });
        }
    });
}

enum Counted<'a> {
    Subquery(&'a Query),
    Aggregate,
}

/// `count > 0` (true: "exists") or `count = 0` (false: "does not exist"),
/// either way round.
fn existence_check(expr: &Expr) -> Option<(Counted<'_>, bool)> {
    use BinaryOperator as Op;
    let Expr::BinaryOp { left, op, right } = expr else {
        return None;
    };
    let (count, op, n) = match (counted(left), counted(right)) {
        (Some(c), None) => (c, op.clone(), integer_literal(right)?),
        // `0 < count` is `count > 0`.
        (None, Some(c)) => {
            let flipped = match op {
                Op::Lt => Op::Gt,
                Op::LtEq => Op::GtEq,
                Op::Gt => Op::Lt,
                Op::GtEq => Op::LtEq,
                other => other.clone(),
            };
            (c, flipped, integer_literal(left)?)
        }
        _ => return None,
    };
    let exists = match (op, n) {
        (Op::Gt, 0) | (Op::GtEq, 1) | (Op::NotEq, 0) => true,
        (Op::Eq, 0) | (Op::Lt, 1) | (Op::LtEq, 0) => false,
        _ => return None,
    };
    Some((count, exists))
}

fn counted(expr: &Expr) -> Option<Counted<'_>> {
    match expr {
        Expr::Nested(e) => counted(e),
        Expr::Function(_) if is_count(expr) => Some(Counted::Aggregate),
        Expr::Subquery(q) => {
            let SetExpr::Select(s) = q.body.as_ref() else {
                return None;
            };
            let grouped = !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
            match s.projection.as_slice() {
                [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }]
                    if is_count(e) && !grouped && q.limit_clause.is_none() =>
                {
                    Some(Counted::Subquery(q))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn is_count(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(f) if f.over.is_none()
        && name_parts(&f.name).last().is_some_and(|n| n == "count"))
}

/// A counting subquery with `1` as its select list.
fn one_row_query(query: &Query) -> Option<String> {
    let SetExpr::Select(s) = query.body.as_ref() else {
        return None;
    };
    let mut q = query.clone();
    *q.body = SetExpr::Select(Box::new(select_one(s)));
    Some(q.to_string())
}

/// The same SELECT with `1` as its select list.
pub(crate) fn select_one(select: &Select) -> Select {
    let mut s = select.clone();
    s.projection = vec![SelectItem::UnnamedExpr(Expr::value(Value::Number(
        "1".into(),
        false,
    )))];
    s.distinct = None;
    s
}
