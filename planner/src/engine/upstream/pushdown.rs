//! Filters PostgreSQL evaluates for a scan, as SQL.
//!
//! A filter is pushed only when PostgreSQL computes exactly what DataFusion
//! would (then DataFusion drops it, and the rows never leave the server):
//! comparisons, `AND`/`OR`/`NOT`, `IS [NOT] NULL`, `IN` lists, `BETWEEN`
//! and `LIKE` over columns read in binary and literals, and widening
//! numeric casts. Anything else (functions, arithmetic, which can overflow
//! or round differently, text-read columns) stays in DataFusion.
//! Text comparisons are pushed: where a non-C collation orders strings
//! differently, PostgreSQL's order is the one the client expects.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Cast, Expr, Like, Operator};

use super::quote_ident;
use super::quote_literal;
use super::types::UpstreamColumn;

/// `expr` as a PostgreSQL boolean expression over `columns`, or `None`
/// when it cannot be pushed.
pub fn to_sql(expr: &Expr, columns: &[UpstreamColumn]) -> Option<String> {
    Some(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = match op {
                Operator::And => "AND",
                Operator::Or => "OR",
                Operator::Eq => "=",
                Operator::NotEq => "<>",
                Operator::Lt => "<",
                Operator::LtEq => "<=",
                Operator::Gt => ">",
                Operator::GtEq => ">=",
                Operator::IsDistinctFrom => "IS DISTINCT FROM",
                Operator::IsNotDistinctFrom => "IS NOT DISTINCT FROM",
                _ => return None,
            };
            let (l, r) = if matches!(op, "AND" | "OR") {
                (to_sql(left, columns)?, to_sql(right, columns)?)
            } else {
                (value(left, columns)?, value(right, columns)?)
            };
            format!("({l} {op} {r})")
        }
        Expr::Not(inner) => format!("(NOT {})", to_sql(inner, columns)?),
        Expr::IsNull(inner) => format!("({} IS NULL)", value(inner, columns)?),
        Expr::IsNotNull(inner) => format!("({} IS NOT NULL)", value(inner, columns)?),
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => format!(
            "({} {}BETWEEN {} AND {})",
            value(expr, columns)?,
            if *negated { "NOT " } else { "" },
            value(low, columns)?,
            value(high, columns)?
        ),
        Expr::InList(list) => {
            if list.list.is_empty() {
                return None;
            }
            let items: Option<Vec<String>> = list.list.iter().map(|e| value(e, columns)).collect();
            format!(
                "({} {}IN ({}))",
                value(&list.expr, columns)?,
                if list.negated { "NOT " } else { "" },
                items?.join(", ")
            )
        }
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            case_insensitive,
        }) => {
            // Backslash escapes differ between the two; leave those to DataFusion.
            let Expr::Literal(ScalarValue::Utf8(Some(p)), _) = pattern.as_ref() else {
                return None;
            };
            if p.contains('\\') {
                return None;
            }
            format!(
                "({} {}{} {})",
                value(expr, columns)?,
                if *negated { "NOT " } else { "" },
                if *case_insensitive { "ILIKE" } else { "LIKE" },
                quote_literal(p)
            )
        }
        Expr::Column(_) => {
            let (sql, ty) = column(expr, columns)?;
            if ty != DataType::Boolean {
                return None;
            }
            sql
        }
        _ => return None,
    })
}

/// A column reference, a literal, or a widening cast of a column.
fn value(expr: &Expr, columns: &[UpstreamColumn]) -> Option<String> {
    match expr {
        Expr::Column(_) => column(expr, columns).map(|(sql, _)| sql),
        Expr::Literal(v, _) => literal(v),
        Expr::Cast(Cast { expr, field }) => {
            let (sql, from) = column(expr, columns)?;
            let to = widening_cast(&from, field.data_type())?;
            Some(format!("{sql}::{to}"))
        }
        _ => None,
    }
}

fn column(expr: &Expr, columns: &[UpstreamColumn]) -> Option<(String, DataType)> {
    let Expr::Column(c) = expr else {
        return None;
    };
    let col = columns.iter().find(|col| col.name == c.name)?;
    if col.as_text {
        return None;
    }
    Some((quote_ident(&col.name), col.field().data_type().clone()))
}

/// The PostgreSQL type of a cast that loses nothing, as DataFusion's
/// coercion inserts them (`int4_col = 5::int8`).
fn widening_cast(from: &DataType, to: &DataType) -> Option<String> {
    use DataType::*;
    let int_rank = |t: &DataType| match t {
        Int16 => Some(2),
        Int32 => Some(4),
        Int64 => Some(8),
        _ => None,
    };
    match (from, to) {
        (f, t) if int_rank(f).is_some() && int_rank(t) >= int_rank(f) => Some(
            match t {
                Int16 => "int2",
                Int32 => "int4",
                _ => "int8",
            }
            .to_string(),
        ),
        (Int16 | Int32, Float64) | (Float32, Float64) => Some("float8".into()),
        (Int16 | Int32 | Int64, Decimal128(p, 0)) if *p >= 19 => Some(format!("numeric({p},0)")),
        (Decimal128(p1, s1), Decimal128(p2, s2))
            if s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16) =>
        {
            Some(format!("numeric({p2},{s2})"))
        }
        (Date32, Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, None)) => {
            Some("timestamp".into())
        }
        _ => None,
    }
}

/// A literal in PostgreSQL syntax, typed where the type matters.
fn literal(v: &ScalarValue) -> Option<String> {
    use datafusion::arrow::temporal_conversions as tc;
    Some(match v {
        ScalarValue::Boolean(Some(b)) => b.to_string(),
        ScalarValue::Int8(Some(n)) => n.to_string(),
        ScalarValue::Int16(Some(n)) => n.to_string(),
        ScalarValue::Int32(Some(n)) => n.to_string(),
        ScalarValue::Int64(Some(n)) => format!("{n}::int8"),
        ScalarValue::UInt8(Some(n)) => n.to_string(),
        ScalarValue::UInt16(Some(n)) => n.to_string(),
        ScalarValue::UInt32(Some(n)) => format!("{n}::int8"),
        ScalarValue::Float64(Some(f)) if f.is_finite() => format!("'{f:?}'::float8"),
        ScalarValue::Float32(Some(f)) if f.is_finite() => format!("'{f:?}'::float4"),
        ScalarValue::Decimal128(Some(n), p, s) if *s >= 0 => {
            format!("{}::numeric({p},{s})", decimal_text(*n, *s as u32))
        }
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
            if !s.contains('\0') =>
        {
            quote_literal(s)
        }
        ScalarValue::Date32(Some(d)) => {
            let text = tc::date32_to_datetime(*d)?.date().to_string();
            if !plain_year(&text) {
                return None;
            }
            format!("'{text}'::date")
        }
        ScalarValue::TimestampMicrosecond(Some(us), tz) => {
            timestamp(tc::timestamp_us_to_datetime(*us)?, tz.is_some())?
        }
        ScalarValue::TimestampNanosecond(Some(ns), tz) if ns % 1000 == 0 => {
            timestamp(tc::timestamp_ns_to_datetime(*ns)?, tz.is_some())?
        }
        ScalarValue::TimestampMillisecond(Some(ms), tz) => {
            timestamp(tc::timestamp_ms_to_datetime(*ms)?, tz.is_some())?
        }
        ScalarValue::TimestampSecond(Some(s), tz) => {
            timestamp(tc::timestamp_s_to_datetime(*s)?, tz.is_some())?
        }
        _ => return None,
    })
}

/// A timestamp literal; with a zone, the instant in UTC (the value is UTC
/// whatever zone the Arrow type names).
fn timestamp<T: std::fmt::Display>(dt: T, with_zone: bool) -> Option<String> {
    let text = dt.to_string();
    if !plain_year(&text) {
        return None;
    }
    Some(if with_zone {
        format!("'{text}+00'::timestamptz")
    } else {
        format!("'{text}'::timestamp")
    })
}

/// Chrono prints years outside 1..=9999 with a sign or more digits, which
/// PostgreSQL reads differently (BC is spelled out): those stay in DataFusion.
fn plain_year(text: &str) -> bool {
    text.split('-')
        .next()
        .is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
        && !text.starts_with("0000")
}

fn decimal_text(n: i128, scale: u32) -> String {
    let digits = n.unsigned_abs().to_string();
    let sign = if n < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::upstream::types::oid;
    use datafusion::logical_expr::{col, lit};

    fn cols() -> Vec<UpstreamColumn> {
        vec![
            UpstreamColumn::new("l_quantity", oid::NUMERIC, (15 << 16 | 2) + 4),
            UpstreamColumn::new("l_shipdate", oid::DATE, -1),
            UpstreamColumn::new("l_comment", oid::VARCHAR, 48),
            UpstreamColumn::new("n", oid::INT4, -1),
            UpstreamColumn::new("tags", 1009, -1), // text[]: read as text
        ]
    }

    #[test]
    fn comparisons_and_literals() {
        let c = cols();
        let e = col("l_shipdate").lt_eq(lit(ScalarValue::Date32(Some(10471))));
        assert_eq!(
            to_sql(&e, &c).unwrap(),
            "(\"l_shipdate\" <= '1998-09-02'::date)"
        );
        let e = col("l_quantity").gt(lit(ScalarValue::Decimal128(Some(2400), 15, 2)));
        assert_eq!(
            to_sql(&e, &c).unwrap(),
            "(\"l_quantity\" > 24.00::numeric(15,2))"
        );
        let e = col("l_comment")
            .like(lit("%it's%"))
            .and(col("n").is_not_null());
        assert_eq!(
            to_sql(&e, &c).unwrap(),
            "((\"l_comment\" LIKE '%it''s%') AND (\"n\" IS NOT NULL))"
        );
        let e = col("n").in_list(vec![lit(1), lit(2)], true);
        assert_eq!(to_sql(&e, &c).unwrap(), "(\"n\" NOT IN (1, 2))");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(123456, 3), "123.456");
    }

    #[test]
    fn what_is_not_pushed() {
        let c = cols();
        // Arithmetic, functions, text-read columns, unknown columns.
        assert!(to_sql(&(col("n") + lit(1)).gt(lit(2)), &c).is_none());
        assert!(to_sql(&col("tags").eq(lit("{a}")), &c).is_none());
        assert!(to_sql(&col("other").eq(lit(1)), &c).is_none());
        assert!(to_sql(&col("l_comment").like(lit("a\\%")), &c).is_none());
        // A narrowing cast.
        let e = Expr::Cast(Cast::new(Box::new(col("l_quantity")), DataType::Int32)).eq(lit(1));
        assert!(to_sql(&e, &c).is_none());
    }
}
