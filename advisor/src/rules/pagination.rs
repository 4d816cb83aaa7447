//! How much a query reads and in what order: OFFSET, ORDER BY random(),
//! LIMIT without ORDER BY, and scans of large tables with no filter.

use datafusion::sql::sqlparser::ast::{
    Expr, LimitClause, OrderByExpr, OrderByKind, Query, SelectItem, Value,
};
use helios_planner::catalog::{quote_ident, Table};
use helios_planner::sql::name_parts;

use super::exprs::{fmt_rows, is_null, table_rows};
use super::scope::{first_select, returns_one_row, LevelKind, Resolver, Role};
use super::walk::{for_each_level, for_each_query};
use super::RuleContext;
use crate::{Finding, Severity};

/// `OFFSET n` with a large n: PostgreSQL produces and discards n rows
/// before the first one it returns, and every later page costs more.
pub(crate) fn large_offset(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_query(cx.statement, cx.catalog, &mut |query, _, _| {
        let offset = match &query.limit_clause {
            Some(LimitClause::LimitOffset {
                offset: Some(o), ..
            }) => &o.value,
            Some(LimitClause::OffsetCommaLimit { offset, .. }) => offset,
            _ => return,
        };
        let Some(n) = unsigned(offset) else {
            return;
        };
        if n < cx.options.large_offset {
            return;
        }
        let keys = order_keys(query);
        let suggestion = match keys.as_slice() {
            [] => "Use keyset pagination: ORDER BY a unique key, remember the last key of a \
                   page, and ask for the next with WHERE key > $last ORDER BY key LIMIT n."
                .to_string(),
            keys => {
                let descending = keys.iter().all(|k| k.options.asc == Some(false));
                let ascending = keys.iter().all(|k| k.options.asc != Some(false));
                let cols: Vec<String> = keys.iter().map(|k| k.expr.to_string()).collect();
                let params: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
                let cmp = if descending { "<" } else { ">" };
                let (lhs, rhs) = if cols.len() == 1 {
                    (cols[0].clone(), params[0].clone())
                } else {
                    (
                        format!("({})", cols.join(", ")),
                        format!("({})", params.join(", ")),
                    )
                };
                let mut s = format!(
                    "Use keyset pagination: remember the last row's {} and ask for the next \
                     page with WHERE {lhs} {cmp} {rhs} ORDER BY {} LIMIT n (the key must be \
                     unique: add the primary key as a last tiebreaker if needed), served by an \
                     index on ({}).",
                    cols.join(", "),
                    cols.join(", "),
                    cols.join(", ")
                );
                if !(ascending || descending) {
                    s.push_str(" With mixed directions, compare the columns one by one.");
                }
                s
            }
        };
        out.push(
            Finding::new(
                Severity::Warning,
                "large_offset",
                format!("OFFSET {n} pagination"),
                format!(
                    "OFFSET {n} makes PostgreSQL produce and throw away {} rows before the \
                     first one it returns; each later page costs more (the threshold is {}).",
                    fmt_rows(n as f64),
                    cx.options.large_offset
                ),
            )
            .at(format!("OFFSET {offset}"))
            .suggest(suggestion),
        );
    });
}

fn unsigned(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::Nested(e) => unsigned(e),
        _ => None,
    }
}

fn order_keys(query: &Query) -> Vec<&OrderByExpr> {
    match query.order_by.as_ref().map(|o| &o.kind) {
        Some(OrderByKind::Expressions(list)) => list.iter().collect(),
        _ => Vec::new(),
    }
}

/// The catalog tables a query's (first) SELECT reads.
fn tables_of<'c>(query: &Query, resolver: &Resolver<'_, 'c>) -> Vec<&'c Table> {
    first_select(&query.body)
        .map(|s| {
            resolver
                .relations_of(&s.from)
                .into_iter()
                .filter_map(|r| r.table)
                .collect()
        })
        .unwrap_or_default()
}

fn rows_note(tables: &[&Table]) -> String {
    let known: Vec<String> = tables
        .iter()
        .filter_map(|t| Some(format!("{} ~{} rows", t.name, fmt_rows(table_rows(t)?))))
        .collect();
    if known.is_empty() {
        String::new()
    } else {
        format!(" ({})", known.join(", "))
    }
}

/// `ORDER BY random()`: a random key for every row and a sort of the
/// whole input, to keep a few rows.
pub(crate) fn order_by_random(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_query(cx.statement, cx.catalog, &mut |query, _, resolver| {
        let Some(key) = order_keys(query).into_iter().find(|k| is_random(&k.expr)) else {
            return;
        };
        let tables = tables_of(query, resolver);
        let suggestion = match tables.first() {
            Some(t) => {
                let key = t.primary_key.first().map_or("id", String::as_str);
                format!(
                    "For an approximate sample read only some pages: FROM {} TABLESAMPLE \
                     SYSTEM (1) (or BERNOULLI (1) for rows); for a few random rows pick a \
                     random key: WHERE {k} >= (SELECT floor(random() * max({k})) FROM {}) \
                     ORDER BY {k} LIMIT n.",
                    t.qualified_name(),
                    t.qualified_name(),
                    k = quote_ident(key)
                )
            }
            None => "Use TABLESAMPLE SYSTEM / BERNOULLI for a sample, or pick a random key \
                     range (WHERE key >= random value ORDER BY key LIMIT n)."
                .to_string(),
        };
        out.push(
            Finding::new(
                Severity::Warning,
                "order_by_random",
                "ORDER BY random()",
                format!(
                    "ORDER BY random() computes a random key for every input row and sorts \
                     them all{}, however few rows are kept.",
                    rows_note(&tables)
                ),
            )
            .at(format!("ORDER BY {key}"))
            .suggest(suggestion),
        );
    });
}

fn is_random(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(e) => is_random(e),
        Expr::Function(f) => name_parts(&f.name).last().is_some_and(|n| n == "random"),
        _ => false,
    }
}

/// LIMIT or FETCH FIRST without ORDER BY: which rows come back is up to the
/// plan, and can change between runs, plans and after any write.
pub(crate) fn limit_without_order(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_query(cx.statement, cx.catalog, &mut |query, facts, resolver| {
        // `EXISTS (... LIMIT 1)` asks only whether there is a row.
        if !facts.limited || facts.ordered || facts.role == Role::Exists {
            return;
        }
        // One aggregate row, or `LIMIT 0` (a query for column metadata).
        if returns_one_row(query) || limit_is_zero(query) {
            return;
        }
        let fragment = match (&query.limit_clause, &query.fetch) {
            (Some(LimitClause::LimitOffset { limit: Some(l), .. }), _) if !is_null(l) => {
                format!("LIMIT {l}")
            }
            (Some(LimitClause::OffsetCommaLimit { limit, .. }), _) => format!("LIMIT {limit}"),
            (_, Some(fetch)) => fetch.to_string(),
            _ => return,
        };
        let tables = tables_of(query, resolver);
        let key = match tables.as_slice() {
            [t] if !t.primary_key.is_empty() => t
                .primary_key
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            _ => "a unique key".to_string(),
        };
        out.push(
            Finding::new(
                Severity::Info,
                "limit_without_order",
                format!("{fragment} without ORDER BY"),
                format!(
                    "Without ORDER BY, {fragment} keeps whichever rows the plan reaches first: \
                     the rows can differ between runs, plans and after writes, and pages can \
                     overlap or skip rows."
                ),
            )
            .at(fragment.clone())
            .suggest(format!("Add ORDER BY {key} before {fragment}.")),
        );
    });
}

fn limit_is_zero(query: &Query) -> bool {
    matches!(&query.limit_clause,
        Some(LimitClause::LimitOffset { limit: Some(l), .. }) if unsigned(l) == Some(0))
}

/// A level that reads a large table with no WHERE and no LIMIT.
pub(crate) fn unfiltered_large_scan(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        // Only the statement's own levels: PostgreSQL pushes outer filters
        // into CTEs and subqueries in FROM, and runs subqueries in
        // expressions as semi-joins or probes by key, so a subquery
        // without WHERE proves nothing.
        if level.query.role != Role::Top {
            return;
        }
        if level.selection.is_some() {
            return;
        }
        if let LevelKind::Select(s) = level.kind {
            if level.query.limited || only_min_max(&s.projection) {
                return;
            }
        }
        let large: Vec<(&str, &str, f64)> = level
            .tables()
            .filter_map(|(r, t)| Some((r.text.as_str(), t.name.as_str(), table_rows(t)?)))
            .filter(|(_, _, n)| *n >= cx.options.large_table_rows)
            .collect();
        let Some(&(fragment, first, _)) = large.first() else {
            return;
        };
        let list: Vec<String> = large
            .iter()
            .map(|(_, name, n)| format!("{name} (~{} rows)", fmt_rows(*n)))
            .collect();
        let threshold = fmt_rows(cx.options.large_table_rows);
        let (title, detail, suggestion) = match level.kind {
            LevelKind::Select(_) => (
                "Unfiltered scan of a large table".to_string(),
                format!(
                    "{} read in full: no WHERE and no LIMIT at this level (large means at \
                     least {threshold} rows).",
                    list.join(", ")
                ),
                "Filter on an indexed column or add a LIMIT; for a row count, an estimate \
                 (pg_class.reltuples) or a maintained summary is far cheaper."
                    .to_string(),
            ),
            LevelKind::Update => (
                format!("UPDATE of every row of {first}"),
                format!(
                    "UPDATE without WHERE rewrites every row of {}: a new row version each, \
                     table and index bloat, and a long lock.",
                    list.join(", ")
                ),
                "Add a WHERE clause; for a backfill, update in batches by key range.".to_string(),
            ),
            LevelKind::Delete => (
                format!("DELETE of every row of {first}"),
                format!(
                    "DELETE without WHERE removes the rows of {} one by one, leaving dead \
                     rows for VACUUM.",
                    list.join(", ")
                ),
                format!(
                    "To empty the table, TRUNCATE {first} is far cheaper; otherwise add a WHERE."
                ),
            ),
        };
        out.push(
            Finding::new(Severity::Warning, "unfiltered_large_scan", title, detail)
                .at(fragment)
                .suggest(suggestion),
        );
    });
}

/// `SELECT max(id) FROM t`: PostgreSQL answers min/max from an index end.
fn only_min_max(projection: &[SelectItem]) -> bool {
    !projection.is_empty()
        && projection.iter().all(|item| match item {
            SelectItem::UnnamedExpr(Expr::Function(f))
            | SelectItem::ExprWithAlias {
                expr: Expr::Function(f),
                ..
            } => name_parts(&f.name)
                .last()
                .is_some_and(|n| n == "min" || n == "max"),
            _ => false,
        })
}
