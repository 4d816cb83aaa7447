//! A column compared with a literal of another type.
//!
//! What PostgreSQL does with each mismatch decides the severity:
//! - an integer column against a non-integer number (`id = 1.5`) or a
//!   numeric one against a float: PostgreSQL casts the *column* for every
//!   row, and an index on it cannot serve the predicate (warning);
//! - a number against a text, date, boolean or uuid column (`name = 42`),
//!   or a typed literal of an unrelated type: no such operator, the
//!   statement fails (critical);
//! - a quoted value that is not a valid number against a numeric column
//!   (`id = 'abc'`): invalid input syntax, the statement fails (critical);
//! - a quoted valid number against a numeric column (`id = '42'`):
//!   PostgreSQL reads the quoted literal as the column's type, so it works
//!   and can use an index, but the value travels as text (info).

use datafusion::sql::sqlparser::ast::{Expr, UnaryOperator, Value};

use super::exprs::{compared_operands, for_each_shallow, predicates, string_literal};
use super::functions::leading_index;
use super::scope::ColumnRef;
use super::walk::for_each_level;
use super::RuleContext;
use crate::{Finding, Severity};

/// Type families that compare with each other without casting a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Integer,
    Numeric,
    Float,
    Text,
    Temporal,
    Boolean,
    Uuid,
    /// Enums, domains, arrays, json, ...: not judged.
    Other,
}

impl Category {
    /// From a type name as `format_type()` or sqlparser prints it.
    fn of(type_name: &str) -> Category {
        let t = type_name.trim().to_ascii_lowercase();
        if t.ends_with("[]") {
            return Category::Other;
        }
        // Drop a modifier: `numeric(10,2)`, `character varying(40)`.
        let base = match t.find('(') {
            Some(open) => {
                let close = t[open..].find(')').map_or(t.len(), |c| open + c + 1);
                format!("{}{}", t[..open].trim_end(), &t[close..])
            }
            None => t,
        };
        match base.as_str() {
            "smallint" | "integer" | "int" | "int2" | "int4" | "int8" | "bigint"
            | "smallserial" | "serial" | "bigserial" => Category::Integer,
            "numeric" | "decimal" => Category::Numeric,
            "real" | "float4" | "float8" | "float" | "double" | "double precision" => {
                Category::Float
            }
            "text" | "varchar" | "character varying" | "char" | "character" | "bpchar" | "name"
            | "citext" | "string" => Category::Text,
            "boolean" | "bool" => Category::Boolean,
            "uuid" => Category::Uuid,
            b if b.starts_with("timestamp")
                || b.starts_with("time")
                || b == "date"
                || b.starts_with("interval") =>
            {
                Category::Temporal
            }
            _ => Category::Other,
        }
    }

    fn is_number(self) -> bool {
        matches!(
            self,
            Category::Integer | Category::Numeric | Category::Float
        )
    }

    /// A family PostgreSQL has no operator against numbers for.
    fn rejects_numbers(self) -> bool {
        matches!(
            self,
            Category::Text | Category::Temporal | Category::Boolean | Category::Uuid
        )
    }
}

/// A literal operand.
enum Literal<'a> {
    /// `42`, `-7`.
    Integer,
    /// `1.5`, `1e3`.
    Decimal,
    /// `'42'`: PostgreSQL reads it as whatever the other side is.
    Quoted(&'a str),
    /// `'42'::text`, `DATE '2024-01-01'`: a literal with a type of its own.
    Typed(Category, String),
}

fn literal(expr: &Expr) -> Option<Literal<'_>> {
    match expr {
        Expr::Nested(e) => literal(e),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(number(n)),
            _ => string_literal(expr).map(Literal::Quoted),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => Some(number(n)),
                _ => None,
            },
            _ => None,
        },
        Expr::Cast {
            expr, data_type, ..
        } if matches!(
            literal(expr),
            Some(Literal::Quoted(_) | Literal::Integer | Literal::Decimal)
        ) =>
        {
            let name = data_type.to_string();
            Some(Literal::Typed(Category::of(&name), name))
        }
        Expr::TypedString(t) => {
            let name = t.data_type.to_string();
            Some(Literal::Typed(Category::of(&name), name))
        }
        _ => None,
    }
}

fn number(text: &str) -> Literal<'static> {
    if text.contains(['.', 'e', 'E']) {
        Literal::Decimal
    } else {
        Literal::Integer
    }
}

/// What a mismatch means, or `None` when the types go together.
fn judge(column: Category, column_type: &str, literal: &Literal<'_>) -> Option<(Severity, String)> {
    let fails = |what: &str| {
        Some((
            Severity::Critical,
            format!(
                "PostgreSQL has no operator comparing {column_type} with {what}: the statement \
                 fails with \"operator does not exist\"."
            ),
        ))
    };
    let column_cast = |to: &str| {
        Some((
            Severity::Warning,
            format!(
                "The literal is {to}, so PostgreSQL casts the {column_type} column to {to} for \
                 every row before comparing; an index on the column cannot serve this predicate."
            ),
        ))
    };
    match literal {
        Literal::Integer if column.rejects_numbers() => fails("an integer"),
        Literal::Decimal if column.rejects_numbers() => fails("numeric"),
        Literal::Decimal if column == Category::Integer => column_cast("numeric"),
        Literal::Quoted(s) if column.is_number() => {
            let valid = match column {
                Category::Integer => s.trim().parse::<i64>().is_ok(),
                _ => s.trim().parse::<f64>().is_ok(),
            };
            if valid {
                Some((
                    Severity::Info,
                    format!(
                        "A quoted number: PostgreSQL reads '{s}' as {column_type} here, so it \
                         works and an index stays usable, but the value travels as text and a \
                         driver that binds it as varchar makes the comparison fail or cast."
                    ),
                ))
            } else {
                Some((
                    Severity::Critical,
                    format!(
                        "'{s}' is not a valid {column_type}: the statement fails with \
                         \"invalid input syntax for type {column_type}\"."
                    ),
                ))
            }
        }
        Literal::Typed(lit, name) => {
            let name = name.to_lowercase();
            match (column, *lit) {
                (_, Category::Other) | (Category::Other, _) => None,
                (Category::Integer, Category::Numeric | Category::Float) => column_cast(&name),
                (Category::Numeric, Category::Float) => column_cast(&name),
                (c, l) if c.is_number() && l.is_number() => None,
                (c, l) if c == l => None,
                _ => fails(&name),
            }
        }
        _ => None,
    }
}

/// A column compared with a literal whose type does not match it.
pub(crate) fn literal_type_mismatch(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        let mut exprs = predicates(level);
        exprs.extend(level.select().and_then(|s| s.having.as_ref()));
        for predicate in exprs {
            for_each_shallow(predicate, &mut |e| {
                let Some((column, literals)) = column_and_literals(e) else {
                    return;
                };
                let Some(c) = level.column(column) else {
                    return;
                };
                let Some(col) = c.column else {
                    return;
                };
                let category = Category::of(&col.data_type);
                // One finding per predicate: the first literal that mismatches.
                let verdict = literals
                    .iter()
                    .filter_map(|l| literal(l).map(|lit| (l, lit)))
                    .find_map(|(l, lit)| Some((l, judge(category, &col.data_type, &lit)?)));
                let Some((lit, (severity, why))) = verdict else {
                    return;
                };
                out.push(finding(e, lit, &c, &col.data_type, severity, why));
            });
        }
    });
}

fn finding(
    predicate: &Expr,
    literal: &Expr,
    c: &ColumnRef<'_>,
    column_type: &str,
    severity: Severity,
    why: String,
) -> Finding {
    let index = c
        .table
        .and_then(|t| leading_index(t, &c.name))
        .map(|i| format!(" (index {} leads with it)", i.name))
        .unwrap_or_default();
    let suggestion = match severity {
        Severity::Warning => format!(
            "Compare {} with a value of its own type ({column_type}), e.g. round or cast the \
             literal rather than the column, or state the intended range.",
            c.name
        ),
        _ if matches!(self::literal(literal), Some(Literal::Quoted(_))) => format!(
            "Pass a value of type {column_type}: unquoted, or bound as a parameter of that type."
        ),
        _ => format!(
            "Use a literal of type {column_type}, e.g. quoted: {} = '{}'.",
            c.name,
            bare(literal)
        ),
    };
    Finding::new(
        severity,
        "literal_type_mismatch",
        format!(
            "{} ({column_type}) compared with a literal of another type",
            c.display()
        ),
        format!(
            "`{predicate}` compares {}{index} with {literal}. {why}",
            c.display()
        ),
    )
    .at(predicate.to_string())
    .suggest(suggestion)
}

/// A literal's text without quotes or cast.
fn bare(expr: &Expr) -> String {
    match expr {
        Expr::Cast { expr, .. } | Expr::Nested(expr) => bare(expr),
        e => string_literal(e).map_or_else(|| e.to_string(), str::to_string),
    }
}

/// The column and the literals a comparison holds it against.
fn column_and_literals(e: &Expr) -> Option<(&Expr, Vec<&Expr>)> {
    let operands = compared_operands(e);
    match e {
        Expr::BinaryOp { left, right, .. } if operands.len() == 2 => {
            if literal(right).is_some() {
                Some((left, vec![right]))
            } else if literal(left).is_some() {
                Some((right, vec![left]))
            } else {
                None
            }
        }
        Expr::Between {
            expr, low, high, ..
        } => Some((expr, vec![low, high])),
        Expr::InList { expr, list, .. } => Some((expr, list.iter().collect())),
        _ => None,
    }
}
