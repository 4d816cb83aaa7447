//! Errors of the embedded engine, as PostgreSQL reports them: a SQLSTATE,
//! a message in PostgreSQL's wording where one exists, and a detail.
//!
//! DataFusion's errors carry no codes, so [`map_error`] reads their
//! structure first (schema errors name the column, Arrow errors say
//! "division by zero") and their message text second (planning errors are
//! strings). What it cannot place is `42000` when DataFusion refused to plan
//! the statement (a user error it could not name more precisely) and
//! `XX000` otherwise.

use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, SchemaError};

use crate::catalog::quote_ident;
use crate::check::closest;

/// SQLSTATE codes the engine reports.
pub mod sqlstate {
    pub const SYNTAX_ERROR: &str = "42601";
    pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42000";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DUPLICATE_ALIAS: &str = "42712";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const INTERNAL_ERROR: &str = "XX000";

    /// Every code the engine itself reports; any other came from the
    /// upstream (a scan's error, passed on).
    pub const ALL: &[&str] = &[
        SYNTAX_ERROR,
        SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
        UNDEFINED_TABLE,
        UNDEFINED_COLUMN,
        AMBIGUOUS_COLUMN,
        DUPLICATE_ALIAS,
        UNDEFINED_FUNCTION,
        DATATYPE_MISMATCH,
        DIVISION_BY_ZERO,
        NUMERIC_VALUE_OUT_OF_RANGE,
        INVALID_TEXT_REPRESENTATION,
        INVALID_PARAMETER_VALUE,
        FEATURE_NOT_SUPPORTED,
        READ_ONLY_SQL_TRANSACTION,
        UNDEFINED_PARAMETER,
        PROTOCOL_VIOLATION,
        OUT_OF_MEMORY,
        INTERNAL_ERROR,
    ];
}

/// An error with what a PostgreSQL client needs to report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    pub sqlstate: &'static str,
    pub message: String,
    pub detail: Option<String>,
}

impl EngineError {
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        EngineError {
            sqlstate,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.sqlstate)?;
        if let Some(detail) = &self.detail {
            write!(f, "; {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EngineError {}

impl From<DataFusionError> for EngineError {
    fn from(e: DataFusionError) -> Self {
        map_error(&e)
    }
}

impl From<&DataFusionError> for EngineError {
    fn from(e: &DataFusionError) -> Self {
        map_error(e)
    }
}

/// Map a DataFusion error (from planning, or from a result stream) to
/// PostgreSQL terms. Wrappers (context, diagnostics, collections) are looked
/// through: the first root error with a specific code decides.
pub fn map_error(error: &DataFusionError) -> EngineError {
    // An upstream scan's error keeps the upstream's own code and words.
    if let Some(u) = super::upstream::UpstreamError::find(error) {
        let mut e = EngineError::new(u.static_code(), u.message.clone());
        e.detail = u.detail.clone();
        return e;
    }
    let mut roots = Vec::new();
    collect_roots(error, &mut roots);
    let mapped: Vec<EngineError> = roots.into_iter().map(map_root).collect();
    let first_specific = mapped
        .iter()
        .position(|e| e.sqlstate != sqlstate::INTERNAL_ERROR);
    match first_specific {
        Some(i) => mapped.into_iter().nth(i),
        None => mapped.into_iter().next(),
    }
    .unwrap_or_else(|| EngineError::new(sqlstate::INTERNAL_ERROR, error.strip_backtrace()))
}

/// The errors at the bottom of DataFusion's wrappers.
fn collect_roots<'a>(error: &'a DataFusionError, out: &mut Vec<&'a DataFusionError>) {
    match error {
        DataFusionError::Collection(errors) => {
            for e in errors {
                collect_roots(e, out);
            }
        }
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            collect_roots(inner, out)
        }
        DataFusionError::Shared(inner) => collect_roots(inner, out),
        other => out.push(other),
    }
}

fn map_root(error: &DataFusionError) -> EngineError {
    use sqlstate::*;
    match error {
        DataFusionError::SQL(e, _) => {
            EngineError::new(SYNTAX_ERROR, parser_message(&e.to_string()))
        }
        DataFusionError::SchemaError(e, _) => schema_error(e),
        DataFusionError::ArrowError(e, _) => arrow_error(e),
        DataFusionError::Plan(message) => plan_error(message),
        DataFusionError::NotImplemented(message) => {
            EngineError::new(FEATURE_NOT_SUPPORTED, first_line(message))
        }
        DataFusionError::Execution(message) if is_division_by_zero(message) => {
            EngineError::new(DIVISION_BY_ZERO, "division by zero")
        }
        DataFusionError::Execution(message) if message.contains("overflow") => {
            EngineError::new(NUMERIC_VALUE_OUT_OF_RANGE, first_line(message))
        }
        DataFusionError::Configuration(message) => {
            EngineError::new(INVALID_PARAMETER_VALUE, first_line(message))
        }
        DataFusionError::ResourcesExhausted(message) => {
            EngineError::new(OUT_OF_MEMORY, first_line(message))
        }
        other => EngineError::new(INTERNAL_ERROR, first_line(&other.message())),
    }
}

/// sqlparser's message without its "sql parser error: " prefix and with
/// PostgreSQL's "syntax error" in front.
pub(crate) fn parser_message(message: &str) -> String {
    let message = message
        .strip_prefix("sql parser error: ")
        .unwrap_or(message);
    format!("syntax error: {message}")
}

fn schema_error(e: &SchemaError) -> EngineError {
    use sqlstate::*;
    match e {
        SchemaError::FieldNotFound {
            field,
            valid_fields,
        } => {
            let message = match &field.relation {
                Some(q) => format!(
                    "column {}.{} does not exist",
                    quote_ident(q.table()),
                    quote_ident(&field.name)
                ),
                None => format!("column \"{}\" does not exist", field.name),
            };
            let candidates: Vec<String> = valid_fields
                .iter()
                .map(|c| match &c.relation {
                    Some(r) => format!("{}.{}", quote_ident(r.table()), quote_ident(&c.name)),
                    None => quote_ident(&c.name),
                })
                .collect();
            let close = closest(&field.name, candidates.iter().map(String::as_str), 5);
            let error = EngineError::new(UNDEFINED_COLUMN, message);
            if close.is_empty() {
                error
            } else {
                error.with_detail(format!("Columns in scope include: {}.", close.join(", ")))
            }
        }
        SchemaError::AmbiguousReference { field } => EngineError::new(
            AMBIGUOUS_COLUMN,
            format!("column reference \"{}\" is ambiguous", field.name),
        ),
        SchemaError::DuplicateQualifiedField { qualifier, .. } => EngineError::new(
            DUPLICATE_ALIAS,
            format!(
                "table name \"{}\" specified more than once",
                qualifier.table()
            ),
        ),
        SchemaError::DuplicateUnqualifiedField { name } => EngineError::new(
            DUPLICATE_ALIAS,
            format!("column name \"{name}\" specified more than once"),
        ),
    }
}

fn arrow_error(e: &ArrowError) -> EngineError {
    use sqlstate::*;
    match e {
        ArrowError::DivideByZero => EngineError::new(DIVISION_BY_ZERO, "division by zero"),
        ArrowError::ArithmeticOverflow(m) => {
            EngineError::new(NUMERIC_VALUE_OUT_OF_RANGE, first_line(m))
        }
        ArrowError::ParseError(m) => EngineError::new(INVALID_TEXT_REPRESENTATION, first_line(m)),
        ArrowError::CastError(m) if m.contains("Cannot cast string") => {
            EngineError::new(INVALID_TEXT_REPRESENTATION, first_line(m))
        }
        ArrowError::CastError(m) if m.contains("overflow") || m.contains("out of range") => {
            EngineError::new(NUMERIC_VALUE_OUT_OF_RANGE, first_line(m))
        }
        ArrowError::CastError(m) => EngineError::new(DATATYPE_MISMATCH, first_line(m)),
        ArrowError::ComputeError(m) if is_division_by_zero(m) => {
            EngineError::new(DIVISION_BY_ZERO, "division by zero")
        }
        ArrowError::ComputeError(m) if m.contains("overflow") => {
            EngineError::new(NUMERIC_VALUE_OUT_OF_RANGE, first_line(m))
        }
        ArrowError::MemoryError(m) => EngineError::new(OUT_OF_MEMORY, first_line(m)),
        ArrowError::InvalidArgumentError(m) => {
            EngineError::new(INVALID_PARAMETER_VALUE, first_line(m))
        }
        other => EngineError::new(INTERNAL_ERROR, first_line(&other.to_string())),
    }
}

fn is_division_by_zero(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("divide by zero") || m.contains("division by zero")
}

/// Planning errors are strings; these are the ones worth telling apart.
fn plan_error(message: &str) -> EngineError {
    use sqlstate::*;
    if let Some(resolved) = between(message, "table '", "' not found") {
        // DataFusion names the table fully resolved (`db.public.t`); the
        // engine replaces this with the name as written when it can.
        let name = resolved.rsplit('.').next().unwrap_or(resolved);
        return EngineError::new(
            UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        );
    }
    if let Some(name) = between(message, "Invalid function '", "'") {
        let error = EngineError::new(
            UNDEFINED_FUNCTION,
            format!("function {name} does not exist"),
        );
        return match between(message, "Did you mean '", "'") {
            Some(suggestion) => error.with_detail(format!("Did you mean {suggestion}?")),
            None => error,
        };
    }
    if let Some(signature) = between(message, "argument types '", "'") {
        return EngineError::new(
            UNDEFINED_FUNCTION,
            format!("function {signature} does not exist"),
        )
        .with_detail("No function matches the given name and argument types.");
    }
    if let Some(rest) = message.strip_prefix("Cannot coerce arithmetic expression ") {
        let operation = rest.strip_suffix(" to valid types").unwrap_or(rest);
        return EngineError::new(
            UNDEFINED_FUNCTION,
            format!("operator does not exist: {operation}"),
        );
    }
    if message.contains("Projections require unique expression names") {
        return EngineError::new(FEATURE_NOT_SUPPORTED, first_line(message))
            .with_detail("The embedded engine needs distinct output column names; add aliases.");
    }
    if message.contains("non-boolean predicate") {
        return EngineError::new(DATATYPE_MISMATCH, first_line(message))
            .with_detail("WHERE, HAVING and JOIN conditions must be boolean.");
    }
    let lower = message.to_ascii_lowercase();
    if lower.contains("coerce")
        || lower.contains("common type")
        || lower.contains("cannot cast")
        || lower.contains("type mismatch")
        || lower.contains("expected type")
        || lower.contains("must be of type")
        || lower.contains("argument type")
    {
        return EngineError::new(DATATYPE_MISMATCH, first_line(message));
    }
    EngineError::new(SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION, first_line(message))
}

/// The text between the first `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// DataFusion appends hints and candidate lists on further lines.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_string()
}
