//! A function or cast around an indexed column in a predicate.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
};
use helios_planner::catalog::{Index, Table};
use helios_planner::sql::name_parts;

use super::exprs::{
    compared_operands, fmt_rows, for_each_shallow, integer_literal, is_aggregate_call, predicates,
    string_literal, table_rows,
};
use super::scope::{column_parts, ColumnRef};
use super::walk::for_each_level;
use super::RuleContext;
use crate::{Finding, Severity};

/// An expression as an index would hold it: column qualifiers dropped.
pub(crate) fn index_expression(expr: &Expr) -> String {
    let mut e = expr.clone();
    let _ = visit_expressions_mut(&mut e, |e| {
        if let Expr::CompoundIdentifier(parts) = e {
            if let Some(last) = parts.pop() {
                *e = Expr::Identifier(last);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    e.to_string()
}

/// `f(col)`, `col::type`, `extract(... from col)` and the like: the column
/// inside, and what wraps it (the function or type name). Wrappers nest
/// (`lower(trim(col))`).
pub(crate) fn wrapped_column(expr: &Expr) -> Option<(&Expr, String)> {
    let (inner, wrapper) = match expr {
        Expr::Nested(e) => return wrapped_column(e),
        Expr::Function(f) if f.over.is_none() && !is_aggregate_call(expr) => {
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            // Exactly one argument that is not a constant.
            let mut varying = list.args.iter().filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                | FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => (!is_constant(e)).then_some(e),
                _ => None,
            });
            let (Some(e), None) = (varying.next(), varying.next()) else {
                return None;
            };
            (e, name_parts(&f.name).pop().unwrap_or_default())
        }
        Expr::Cast {
            expr, data_type, ..
        } => (expr.as_ref(), data_type.to_string().to_lowercase()),
        Expr::Extract { expr, .. } => (expr.as_ref(), "extract".to_string()),
        Expr::Substring { expr, .. } => (expr.as_ref(), "substring".to_string()),
        Expr::Trim { expr, .. } => (expr.as_ref(), "trim".to_string()),
        Expr::Ceil { expr, .. } => (expr.as_ref(), "ceil".to_string()),
        Expr::Floor { expr, .. } => (expr.as_ref(), "floor".to_string()),
        Expr::AtTimeZone { timestamp, .. } => (timestamp.as_ref(), "at time zone".to_string()),
        _ => return None,
    };
    if column_parts(inner).is_some() {
        Some((inner, wrapper))
    } else {
        wrapped_column(inner).map(|(c, _)| (c, wrapper))
    }
}

fn is_constant(expr: &Expr) -> bool {
    match expr {
        Expr::Value(_) | Expr::TypedString(_) | Expr::Interval(_) => true,
        Expr::Nested(e) | Expr::UnaryOp { expr: e, .. } | Expr::Cast { expr: e, .. } => {
            is_constant(e)
        }
        _ => false,
    }
}

/// A function or cast around a column that an index leads with: the index
/// holds the bare column, so PostgreSQL cannot use it for the predicate.
pub(crate) fn function_on_indexed_column(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        for predicate in predicates(level) {
            for_each_shallow(predicate, &mut |e| {
                for operand in compared_operands(e) {
                    let Some((column, wrapper)) = wrapped_column(operand) else {
                        continue;
                    };
                    let Some(c) = level.column(column) else {
                        continue;
                    };
                    let Some(table) = c.table.filter(|_| c.column.is_some()) else {
                        continue;
                    };
                    let Some(index) = leading_index(table, &c.name) else {
                        continue;
                    };
                    if has_expression_index(table, &c.name, &wrapper) {
                        continue;
                    }
                    let range = range_rewrite(e, operand, &column.to_string());
                    out.push(wrapped_finding(
                        e, operand, &c, table, index, &wrapper, range,
                    ));
                }
            });
        }
    });
}

fn wrapped_finding(
    predicate: &Expr,
    operand: &Expr,
    c: &ColumnRef<'_>,
    table: &Table,
    index: &Index,
    wrapper: &str,
    range: Option<String>,
) -> Finding {
    let rows = table_rows(table)
        .map(|n| format!(" (~{} rows)", fmt_rows(n)))
        .unwrap_or_default();
    let range = match range {
        Some(r) => format!(
            "Compare the bare column with a range: {r}, which {} can serve; ",
            index.name
        ),
        None => format!(
            "Rewrite the condition on the bare column {} where possible (a range, or the \
             inverse function applied to the other side); ",
            c.name
        ),
    };
    // PostgreSQL indexes only IMMUTABLE expressions, and date/time
    // functions of a timestamptz depend on the TimeZone setting.
    let zoned = c
        .column
        .is_some_and(|col| col.data_type.starts_with("timestamp with time zone"));
    let expression_index = if zoned {
        format!(
            "(an expression index is not possible: {wrapper} of a timestamp with time zone is \
             not immutable)."
        )
    } else {
        format!(
            "or index the expression: CREATE INDEX CONCURRENTLY ON {} (({}));",
            table.qualified_name(),
            index_expression(operand)
        )
    };
    Finding::new(
        Severity::Warning,
        "function_on_indexed_column",
        format!(
            "{wrapper} on indexed column {} prevents index use",
            c.display()
        ),
        format!(
            "`{predicate}` applies {wrapper} to {}, which index {} leads with; the index holds \
             the bare column, so PostgreSQL cannot use it here and evaluates {wrapper} on every \
             row of {}{rows}.",
            c.display(),
            index.name,
            table.name
        ),
    )
    .at(operand.to_string())
    .suggest(format!("{range}{expression_index}"))
}

/// `date_trunc('day', t) = '2024-05-01'`, `t::date = ...`, `extract(year
/// from t) = 2024` as the equivalent range on the bare column.
fn range_rewrite(predicate: &Expr, operand: &Expr, column: &str) -> Option<String> {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = predicate
    else {
        return None;
    };
    let value = if std::ptr::eq(left.as_ref(), operand) {
        right
    } else {
        left
    };
    let day = |v: &str| format!("{column} >= '{v}' AND {column} < DATE '{v}' + 1");
    let year = |n: i64| format!("{column} >= '{n}-01-01' AND {column} < '{}-01-01'", n + 1);
    match operand {
        Expr::Function(f) => {
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            let args: Vec<&Expr> = list
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                    _ => None,
                })
                .collect();
            match (name_parts(&f.name).pop()?.as_str(), args.as_slice()) {
                ("date_trunc", [unit, _, ..]) => {
                    let (unit, v) = (string_literal(unit)?, string_literal(value)?);
                    Some(format!(
                        "{column} >= '{v}' AND {column} < TIMESTAMP '{v}' + INTERVAL '1 {unit}'"
                    ))
                }
                ("date", [_]) => Some(day(string_literal(value)?)),
                ("date_part", [field, _]) if string_literal(field)? == "year" => {
                    Some(year(integer_literal(value)?))
                }
                _ => None,
            }
        }
        Expr::Cast { data_type, .. } if data_type.to_string().eq_ignore_ascii_case("date") => {
            Some(day(string_literal(value)?))
        }
        Expr::Extract { field, .. } if field.to_string().eq_ignore_ascii_case("year") => {
            Some(year(integer_literal(value)?))
        }
        _ => None,
    }
}

/// An index whose first key is the plain column.
pub(crate) fn leading_index<'t>(table: &'t Table, column: &str) -> Option<&'t Index> {
    table
        .indexes
        .iter()
        .find(|i| i.leading_column() == Some(column))
}

/// An expression index that mentions both the column and the wrapper:
/// it may well serve the predicate, so stay silent.
fn has_expression_index(table: &Table, column: &str, wrapper: &str) -> bool {
    table.indexes.iter().any(|i| {
        let d = i.definition.to_lowercase();
        i.columns.iter().any(Option::is_none) && d.contains(column) && d.contains(wrapper)
    })
}
