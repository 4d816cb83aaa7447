//! Subqueries: which ones return no rows whatever the data (they read a
//! catalog that is always empty through inner joins), replacing those, and
//! reshaping correlated scalar subqueries into a form DataFusion
//! decorrelates.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, Ident, JoinOperator, OrderByKind, Query,
    Select, SelectItem, SetExpr, SetOperator, Statement, TableFactor, TableWithJoins, Value, Visit,
    Visitor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::rewrite::{call, idents, parse, pg_name};
use super::tables::{ALWAYS_EMPTY, ALWAYS_NULL_ARRAYS};

const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "string_agg",
    "array_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
    "stddev",
    "variance",
];

pub(super) fn is_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => {
            let name = idents(&f.name).last().cloned().unwrap_or_default();
            f.over.is_none() && AGGREGATES.contains(&name.to_ascii_lowercase().as_str())
        }
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => is_aggregate(e),
        _ => false,
    }
}

/// A correlated, non-aggregated single-column scalar subquery, made into
/// one DataFusion decorrelates: its column wrapped in `max()` (PostgreSQL
/// allows at most one row anyway), and its predicates reshaped (see
/// [`reshape`]). None if not such a subquery.
pub(super) fn decorrelate(q: &Query) -> Option<Expr> {
    if q.order_by.is_some() {
        return None;
    }
    let (q, hoisted) = reshape(q, true, |e| call("max", &[e]))?;
    let sub = format!("({q})");
    Some(guard(&hoisted, &sub, "NULL"))
}

/// `ARRAY(subquery)` as an aggregate the same way: `'{' || string_agg(elem,
/// ',' ORDER BY ...) || '}'`, `'{}'` for no rows. None if the subquery is
/// not a plain single-column SELECT.
pub(super) fn array_aggregate(q: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = &*q.body else {
        return None;
    };
    let mut order = Vec::new();
    if let Some(order_by) = &q.order_by {
        let OrderByKind::Expressions(exprs) = &order_by.kind else {
            return None;
        };
        for o in exprs {
            let mut o = o.clone();
            // ORDER BY 1 is the column itself.
            if let Expr::Value(v) = &o.expr {
                if let Value::Number(n, _) = &v.value {
                    let item = select
                        .projection
                        .get(n.parse::<usize>().ok()?.checked_sub(1)?)?;
                    o.expr = match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            e.clone()
                        }
                        _ => return None,
                    };
                }
            }
            order.push(o.to_string());
        }
    }
    let order = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    let (mut q, hoisted) = reshape(q, false, |e| {
        parse(&format!(
            "'{{' || string_agg(pg_array_quote(CAST({e} AS TEXT)), ','{order}) || '}}'"
        ))
    })?;
    q.order_by = None;
    let sub = format!("COALESCE(({q}), '{{}}')");
    Some(guard(&hoisted, &sub, "'{}'"))
}

/// `CASE WHEN hoisted THEN value ELSE otherwise END`, or just `value`.
fn guard(hoisted: &[Expr], value: &str, otherwise: &str) -> Expr {
    if hoisted.is_empty() {
        return parse(value);
    }
    let terms: Vec<String> = hoisted.iter().map(|h| format!("({h})")).collect();
    parse(&format!(
        "CASE WHEN {} THEN {value} ELSE {otherwise} END",
        terms.join(" AND ")
    ))
}

/// A single-column SELECT with its column replaced by `wrap(column)` and
/// its WHERE reshaped for DataFusion's decorrelation: outer columns in
/// non-equality predicates replaced by the inner expressions they equal,
/// and predicates on outer columns only taken out (returned, for the caller
/// to test outside). With `correlated_only`, None for uncorrelated or
/// already aggregated subqueries (DataFusion runs those as they are).
fn reshape(
    q: &Query,
    correlated_only: bool,
    wrap: impl Fn(&Expr) -> Expr,
) -> Option<(Query, Vec<Expr>)> {
    let SetExpr::Select(select) = &*q.body else {
        return None;
    };
    if q.with.is_some()
        || q.limit_clause.is_some()
        || select.projection.len() != 1
        || select.distinct.is_some()
        || select.having.is_some()
        || !group_by_empty(select)
    {
        return None;
    }
    let (expr, alias) = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
        _ => return None,
    };
    let own = own_qualifiers(select);
    if is_aggregate(expr)
        || (correlated_only && !refers_outside(&select.projection, select.selection.as_ref(), &own))
    {
        return None;
    }
    let mut conjuncts = Vec::new();
    if let Some(selection) = &select.selection {
        split_and(selection, &mut conjuncts);
    }
    // outer column (as written) -> the inner expression it equals
    let mut equal: Vec<(String, Expr)> = Vec::new();
    let mut hoisted = Vec::new();
    let mut kept = Vec::new();
    for c in conjuncts {
        let (inner, outer) = qualifiers(&c, &own);
        if outer && !inner {
            hoisted.push(c);
            continue;
        }
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = &c
        {
            for (a, b) in [(left, right), (right, left)] {
                let (a_inner, a_outer) = qualifiers(a, &own);
                let (_, b_outer) = qualifiers(b, &own);
                if a_outer && !a_inner && !b_outer && matches!(**a, Expr::CompoundIdentifier(_)) {
                    equal.push((a.to_string(), (**b).clone()));
                }
            }
        }
        kept.push(c);
    }
    let kept: Vec<Expr> = kept
        .into_iter()
        .map(|mut c| {
            if matches!(
                &c,
                Expr::BinaryOp {
                    op: BinaryOperator::Eq,
                    ..
                }
            ) {
                return c;
            }
            let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut c, |e| {
                if let Some((_, inner)) = equal.iter().find(|(o, _)| *o == e.to_string()) {
                    *e = inner.clone();
                }
                ControlFlow::<()>::Continue(())
            });
            c
        })
        .collect();
    let mut q = q.clone();
    if let SetExpr::Select(s) = &mut *q.body {
        let wrapped = wrap(expr);
        s.projection[0] = match alias {
            Some(alias) => SelectItem::ExprWithAlias {
                expr: wrapped,
                alias: alias.clone(),
            },
            None => SelectItem::UnnamedExpr(wrapped),
        };
        s.selection = (!kept.is_empty()).then(|| {
            let terms: Vec<String> = kept.iter().map(|k| format!("({k})")).collect();
            parse(&terms.join(" AND "))
        });
    }
    Some((q, hoisted))
}

fn split_and(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner)
            if matches!(
                **inner,
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(inner, out)
        }
        other => out.push(other.clone()),
    }
}

/// Whether an expression names inner columns (unqualified or qualified by
/// the subquery's own FROM) and outer ones.
fn qualifiers(e: &Expr, own: &HashSet<String>) -> (bool, bool) {
    struct Refs<'a> {
        own: &'a HashSet<String>,
        inner: bool,
        outer: bool,
    }
    impl Visitor for Refs<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(_) => self.inner = true,
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    let q = parts[parts.len() - 2].value.to_ascii_lowercase();
                    if self.own.contains(&q) {
                        self.inner = true;
                    } else {
                        self.outer = true;
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut r = Refs {
        own,
        inner: false,
        outer: false,
    };
    let _ = e.visit(&mut r);
    (r.inner, r.outer)
}

pub(super) fn group_by_empty(select: &Select) -> bool {
    use datafusion::sql::sqlparser::ast::GroupByExpr;
    matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
}

/// The names and aliases a select's own FROM defines, lowercased.
fn own_qualifiers(select: &Select) -> HashSet<String> {
    let mut own = HashSet::new();
    for twj in &select.from {
        for factor in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            match factor {
                TableFactor::Table { name, alias, .. } => {
                    if let Some(last) = idents(name).last() {
                        own.insert(last.to_ascii_lowercase());
                    }
                    if let Some(a) = alias {
                        own.insert(a.name.value.to_ascii_lowercase());
                    }
                }
                TableFactor::Derived { alias: Some(a), .. }
                | TableFactor::Function { alias: Some(a), .. } => {
                    own.insert(a.name.value.to_ascii_lowercase());
                }
                _ => {}
            }
        }
    }
    own
}

/// Whether the projection or selection names a qualifier not in `own`.
fn refers_outside(
    projection: &[SelectItem],
    selection: Option<&Expr>,
    own: &HashSet<String>,
) -> bool {
    projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            qualifiers(e, own).1
        }
        _ => false,
    }) || selection.is_some_and(|s| qualifiers(s, own).1)
}

/// Whether a query returns no rows whatever the data: it reads a catalog
/// that is always empty through inner joins only.
pub(super) fn query_is_empty(q: &Query) -> bool {
    q.with.is_none() && set_is_empty(&q.body)
}

fn set_is_empty(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(s) => select_is_empty(s),
        SetExpr::Query(q) => query_is_empty(q),
        SetExpr::SetOperation {
            op, left, right, ..
        } => match op {
            SetOperator::Union => set_is_empty(left) && set_is_empty(right),
            SetOperator::Intersect => set_is_empty(left) || set_is_empty(right),
            SetOperator::Except | SetOperator::Minus => set_is_empty(left),
        },
        _ => false,
    }
}

fn select_is_empty(s: &Select) -> bool {
    let literal_false =
        matches!(&s.selection, Some(Expr::Value(v)) if v.value == Value::Boolean(false));
    if literal_false {
        return true;
    }
    // An aggregate without GROUP BY returns a row even over no input.
    let aggregated = s.projection.iter().any(|i| match i {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => is_aggregate(e),
        _ => false,
    });
    if aggregated && group_by_empty(s) {
        return false;
    }
    s.from.iter().any(joins_empty)
}

fn joins_empty(twj: &TableWithJoins) -> bool {
    let mut empty = factor_empty(&twj.relation);
    for join in &twj.joins {
        let right = factor_empty(&join.relation);
        empty = match &join.join_operator {
            JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_) => {
                empty || right
            }
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => empty,
            JoinOperator::Right(_) | JoinOperator::RightOuter(_) => right,
            JoinOperator::FullOuter(_) => empty && right,
            _ => false,
        };
    }
    empty
}

fn factor_empty(f: &TableFactor) -> bool {
    match f {
        TableFactor::Table {
            name, args: None, ..
        } => {
            let parts = idents(name);
            match parts.as_slice() {
                [table] | [_, table] => {
                    (parts.len() == 1 || parts[0].eq_ignore_ascii_case("pg_catalog"))
                        && ALWAYS_EMPTY.contains(&table.as_str())
                }
                _ => false,
            }
        }
        TableFactor::Table {
            name,
            args: Some(args),
            ..
        } => {
            // unnest() of a catalog array that is always NULL here.
            let unnest = idents(name)
                .last()
                .is_some_and(|n| n.eq_ignore_ascii_case("unnest"));
            let null_array = |a: &FunctionArg| {
                let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a else {
                    return false;
                };
                let column = match e {
                    Expr::Identifier(i) => i.value.to_ascii_lowercase(),
                    Expr::CompoundIdentifier(parts) => match parts.last() {
                        Some(i) => i.value.to_ascii_lowercase(),
                        None => return false,
                    },
                    _ => return false,
                };
                ALWAYS_NULL_ARRAYS.contains(&column.as_str())
            };
            unnest && args.args.len() == 1 && null_array(&args.args[0])
        }
        TableFactor::Derived { subquery, .. } => query_is_empty(subquery),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => joins_empty(table_with_joins),
        _ => false,
    }
}

/// `SELECT NULL AS a, ... WHERE false` (made by [`replace_empty`]).
pub(super) fn is_replacement(s: &Select) -> bool {
    s.from.is_empty()
        && matches!(&s.selection, Some(Expr::Value(v)) if v.value == Value::Boolean(false))
}

/// Replace the empty SELECTs of a query body by `SELECT NULL AS name, ...
/// WHERE false`; set-operation branches get untyped NULLs (so they union
/// with anything), a whole query text columns. Whether anything changed.
pub(super) fn replace_empty(body: &mut SetExpr, in_set: bool) -> bool {
    match body {
        SetExpr::Select(s) if select_is_empty(s) && !is_replacement(s) => {
            let mut names = Vec::new();
            for item in &s.projection {
                match item {
                    SelectItem::ExprWithAlias { alias, .. } => names.push(alias.clone()),
                    SelectItem::UnnamedExpr(e) => names.push(Ident::with_quote(
                        '"',
                        pg_name(e).unwrap_or_else(|| "?column?".into()),
                    )),
                    _ => return false,
                }
            }
            let null = if in_set { "NULL" } else { "CAST(NULL AS TEXT)" };
            let items: Vec<String> = names.iter().map(|n| format!("{null} AS {n}")).collect();
            let sql = format!("SELECT {} WHERE false", items.join(", "));
            let Ok(mut parsed) = Parser::parse_sql(&PostgreSqlDialect {}, &sql) else {
                return false;
            };
            if let Some(Statement::Query(q)) = parsed.pop() {
                *body = *q.body;
                return true;
            }
            false
        }
        SetExpr::SetOperation { left, right, .. } => {
            let l = replace_empty(left, true);
            let r = replace_empty(right, true);
            l || r
        }
        _ => false,
    }
}
