//! `$n` parameters: their types, as DataFusion infers them from where they
//! stand, and the conversion of text values (the extended protocol's text
//! format) to those types.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Values};

use super::error::{map_error, sqlstate, EngineError};

/// PostgreSQL's limit on bind parameters.
const MAX_PARAMS: usize = 65_535;

/// The position of `$n` (`$1` is 0).
fn index(id: &str) -> Option<usize> {
    id.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1)
}

/// The type of each `$n`, by position; `None` where DataFusion could not
/// infer one (and for numbers the statement skips).
pub(super) fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, EngineError> {
    let mut types: Vec<Option<DataType>> = Vec::new();
    let mut invalid: Option<String> = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::Placeholder(Placeholder { id, field }) = e {
                    match index(id).filter(|&i| i < MAX_PARAMS) {
                        Some(i) => {
                            if types.len() <= i {
                                types.resize(i + 1, None);
                            }
                            if types[i].is_none() {
                                types[i] = field.as_ref().map(|f| f.data_type().clone());
                            }
                        }
                        None => invalid = Some(id.clone()),
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })
    .map_err(|e| map_error(&e))?;
    match invalid {
        Some(id) => Err(EngineError::new(
            sqlstate::SYNTAX_ERROR,
            format!("invalid parameter \"{id}\": only $1 to $65535 are supported"),
        )),
        None => Ok(types),
    }
}

/// Type `LIMIT $n` and `OFFSET $n` as bigint, as PostgreSQL does;
/// DataFusion leaves them untyped.
pub(super) fn type_limit_placeholders(plan: LogicalPlan) -> Result<LogicalPlan, EngineError> {
    plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::Limit(mut limit) => {
            let mut changed = false;
            for expr in [&mut limit.skip, &mut limit.fetch].into_iter().flatten() {
                if let Expr::Placeholder(Placeholder { id, field: None }) = expr.as_ref() {
                    let field = Arc::new(Field::new(id.as_str(), DataType::Int64, true));
                    **expr =
                        Expr::Placeholder(Placeholder::new_with_field(id.clone(), Some(field)));
                    changed = true;
                }
            }
            Ok(Transformed::new_transformed(
                LogicalPlan::Limit(limit),
                changed,
            ))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .map_err(|e| map_error(&e))
}

/// Give every placeholder DataFusion could not type the type text (Utf8),
/// as PostgreSQL types an unknown parameter, and recompute the schemas
/// that depend on it (`SELECT $1` has a text column, not a null one).
pub(super) fn type_untyped_placeholders(plan: LogicalPlan) -> Result<LogicalPlan, EngineError> {
    let mut untyped = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                untyped |= matches!(e, Expr::Placeholder(Placeholder { field: None, .. }));
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    if !untyped {
        return Ok(plan);
    }
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|e| match e {
                Expr::Placeholder(Placeholder { id, field: None }) => {
                    let field = Arc::new(Field::new(id.as_str(), DataType::Utf8, true));
                    Ok(Transformed::yes(Expr::Placeholder(
                        Placeholder::new_with_field(id, Some(field)),
                    )))
                }
                other => Ok(Transformed::no(other)),
            })
        })?
        .map_data(|node| match node {
            // `recompute_schema` leaves VALUES as it was.
            LogicalPlan::Values(Values { values, .. }) => {
                LogicalPlanBuilder::values(values)?.build()
            }
            node => node.recompute_schema(),
        })
    })
    .map(|t| t.data)
    .map_err(|e| map_error(&e))
}

/// Convert parameter values (text, or `None` for NULL) to the parameter
/// types; an untyped parameter is text.
pub(super) fn convert(
    types: &[Option<DataType>],
    values: &[Option<String>],
) -> Result<Vec<ScalarValue>, EngineError> {
    types
        .iter()
        .zip(values)
        .map(|(t, value)| {
            let t = t.clone().unwrap_or(DataType::Utf8);
            match value {
                None => ScalarValue::try_from(&t).map_err(|e| map_error(&e)),
                Some(text) => from_text(text, &t),
            }
        })
        .collect()
}

/// One text value as `t`, with PostgreSQL's errors when it does not fit.
pub(super) fn from_text(text: &str, t: &DataType) -> Result<ScalarValue, EngineError> {
    if t.is_string() {
        return ScalarValue::Utf8(Some(text.to_string()))
            .cast_to(t)
            .map_err(|e| map_error(&e));
    }
    let trimmed = text.trim();
    let value = match t {
        DataType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Some(ScalarValue::Boolean(Some(true))),
            "f" | "false" | "n" | "no" | "off" | "0" => Some(ScalarValue::Boolean(Some(false))),
            _ => None,
        },
        _ => ScalarValue::Utf8(Some(trimmed.to_string()))
            .cast_to(t)
            .ok()
            .filter(|v| !v.is_null()),
    };
    value.ok_or_else(|| {
        if t.is_numeric() && trimmed.parse::<f64>().is_ok() {
            EngineError::new(
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                format!("value \"{text}\" is out of range for type {}", pg_type(t)),
            )
        } else {
            EngineError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                format!("invalid input syntax for type {}: \"{text}\"", pg_type(t)),
            )
        }
    })
}

/// PostgreSQL's name for the type a parameter converts to.
pub(super) fn pg_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "numeric".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        t if t.is_string() => "text".into(),
        other => other.to_string(),
    }
}
