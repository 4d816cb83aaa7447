//! Planning a query in DataFusion against the catalog snapshot, to find
//! references to relations and columns that do not exist before the
//! upstream ever sees the statement.
//!
//! Every catalog relation is registered as an empty table with an Arrow
//! schema mapped from its PostgreSQL column types, and unqualified names
//! resolve through the search_path as PostgreSQL resolves them. Only the
//! logical plan is built: nothing executes, and no data exists.
//!
//! DataFusion is not PostgreSQL, so the verdict is deliberately
//! asymmetric: [`PlanCheck::Unknown`] only for errors that prove a real
//! problem (no such relation, no such column, an ambiguous column), and
//! [`PlanCheck::Unsupported`] for everything DataFusion cannot plan for its
//! own reasons (a PostgreSQL function or syntax it lacks, a type coercion
//! it does differently). Unsupported is no evidence of anything: the
//! upstream's EXPLAIN decides.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProvider};
use datafusion::catalog::{MemoryCatalogProviderList, MemorySchemaProvider, SchemaProvider};
use datafusion::common::{Column as DfColumn, DataFusionError, SchemaError};
use datafusion::datasource::empty::EmptyTable;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::functions::datetime::planner::DatetimeFunctionPlanner;
use datafusion::functions::unicode::planner::UnicodeFunctionPlanner;
use datafusion::logical_expr::planner::ExprPlanner;
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Statement, TableFactor, Visit, Visitor};

use crate::catalog::{quote_ident, Catalog, QualifiedName};
use crate::sql::{analyze, parse, RelationRef, StatementInfo, StatementKind};

/// The verdict on one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanCheck {
    /// DataFusion planned it against the catalog.
    Ok,
    /// It names a relation or column that does not exist, or a column
    /// ambiguously; the message is PostgreSQL-style and names it.
    Unknown { message: String },
    /// DataFusion could not plan it for its own reasons; no verdict.
    Unsupported { message: String },
}

/// A planning context holding the catalog's relations as empty tables.
/// Build one per catalog version; [`check`](PlanChecker::check) takes `&self`
/// and may run concurrently.
pub struct PlanChecker {
    state: SessionState,
    /// Every catalog relation under its real name, with its Arrow schema.
    tables: HashMap<QualifiedName, SchemaRef>,
    /// Unqualified names, resolved through the search_path.
    unqualified: HashMap<String, QualifiedName>,
}

impl PlanChecker {
    /// Register every relation of `catalog`. The default schema is the first
    /// search_path entry (`public` when the path is empty), and every name
    /// the search_path resolves to another schema is registered there too,
    /// so unqualified names find what PostgreSQL would find.
    pub fn new(catalog: &Catalog) -> PlanChecker {
        let default_schema = catalog
            .search_path
            .first()
            .cloned()
            .unwrap_or_else(|| "public".to_string());
        let database = if catalog.database.is_empty() {
            "postgres"
        } else {
            catalog.database.as_str()
        };

        let mut schemas: HashMap<&str, Arc<MemorySchemaProvider>> = HashMap::new();
        let mut tables = HashMap::with_capacity(catalog.tables.len());
        for t in &catalog.tables {
            let schema: SchemaRef = Arc::new(Schema::new(
                t.columns
                    .iter()
                    .map(|c| Field::new(&c.name, arrow_type(&c.data_type), c.nullable))
                    .collect::<Vec<_>>(),
            ));
            let provider = schemas.entry(t.schema.as_str()).or_default();
            // Names are unique per schema in a catalog; a duplicate would
            // only keep the first registration.
            let _ =
                provider.register_table(t.name.clone(), Arc::new(EmptyTable::new(schema.clone())));
            tables.insert(t.qualified_name(), schema);
        }

        let default = schemas.entry(default_schema.as_str()).or_default().clone();
        let mut unqualified = HashMap::new();
        for t in &catalog.tables {
            if unqualified.contains_key(&t.name) {
                continue;
            }
            let Some(found) = catalog.resolve(None, &t.name) else {
                continue;
            };
            if found.schema != default_schema {
                let schema = tables[&found.qualified_name()].clone();
                let _ =
                    default.register_table(found.name.clone(), Arc::new(EmptyTable::new(schema)));
            }
            unqualified.insert(found.name.clone(), found.qualified_name());
        }

        let catalog_provider = MemoryCatalogProvider::new();
        for (name, provider) in schemas {
            let _ = catalog_provider.register_schema(name, provider);
        }
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(database.to_string(), Arc::new(catalog_provider));

        let config = SessionConfig::new()
            .with_default_catalog_and_schema(database, &default_schema)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(false);
        // `EXTRACT`, `POSITION`, `SUBSTRING ... FROM` need the datetime and
        // unicode expression planners, which DataFusion adds only under
        // crate features this workspace does not enable.
        let mut planners = datafusion::execution::SessionStateDefaults::default_expr_planners();
        planners.push(Arc::new(DatetimeFunctionPlanner) as Arc<dyn ExprPlanner>);
        planners.push(Arc::new(UnicodeFunctionPlanner) as Arc<dyn ExprPlanner>);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_expr_planners(planners)
            .with_catalog_list(Arc::new(catalogs))
            .build();

        PlanChecker {
            state,
            tables,
            unqualified,
        }
    }

    /// Plan `sql` (one query) against the catalog.
    pub async fn check(&self, sql: &str) -> PlanCheck {
        let mut statements = match parse(sql) {
            Ok(s) => s,
            Err(message) => return PlanCheck::Unsupported { message },
        };
        if statements.len() != 1 {
            return PlanCheck::Unsupported {
                message: format!("expected one statement, found {}", statements.len()),
            };
        }
        let Some(statement) = statements.pop() else {
            return PlanCheck::Unsupported {
                message: "no statement".into(),
            };
        };
        let info = analyze(&statement);
        if info.kind != StatementKind::Query {
            return PlanCheck::Unsupported {
                message: "only queries are planned".into(),
            };
        }

        let mut system = false;
        let mut referenced = Vec::with_capacity(info.relations.len());
        for r in &info.relations {
            match self.lookup(r) {
                Some(schema) => referenced.push(schema),
                None if is_system_relation(r) => system = true,
                None => {
                    return PlanCheck::Unknown {
                        message: format!("relation \"{}\" does not exist", display_relation(r)),
                    }
                }
            }
        }
        if system {
            return PlanCheck::Unsupported {
                message: "system catalogs are not modeled".into(),
            };
        }

        let context = ErrorContext {
            info: &info,
            referenced: &referenced,
            functions_in_from: functions_in_from(&statement),
        };
        match self
            .state
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await
        {
            Ok(_) => PlanCheck::Ok,
            Err(e) => classify(&e, &context),
        }
    }

    /// The Arrow schema of the relation `r` names, as PostgreSQL would
    /// resolve it.
    fn lookup(&self, r: &RelationRef) -> Option<&SchemaRef> {
        match &r.schema {
            Some(schema) => self.tables.get(&QualifiedName {
                schema: schema.clone(),
                name: r.name.clone(),
            }),
            None => self.tables.get(self.unqualified.get(&r.name)?),
        }
    }
}

fn display_relation(r: &RelationRef) -> String {
    match &r.schema {
        Some(s) => format!("{s}.{}", r.name),
        None => r.name.clone(),
    }
}

/// Relations PostgreSQL provides that the snapshot leaves out.
fn is_system_relation(r: &RelationRef) -> bool {
    match r.schema.as_deref() {
        Some(s) => s == "pg_catalog" || s == "information_schema",
        None => r.name.starts_with("pg_"),
    }
}

/// Whether FROM holds a function or UNNEST, whose columns PostgreSQL and
/// DataFusion name differently (`generate_series(1, 3) g` has column `g` in
/// PostgreSQL, `value` in DataFusion).
fn functions_in_from(statement: &Statement) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            match f {
                TableFactor::Table { args: Some(_), .. }
                | TableFactor::Function { .. }
                | TableFactor::TableFunction { .. }
                | TableFactor::UNNEST { .. }
                | TableFactor::JsonTable { .. } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    statement.visit(&mut Finder).is_break()
}

/// Column names PostgreSQL gives that DataFusion does not: names it derives
/// for unaliased expressions (`select count(*)` is column `count` in
/// PostgreSQL; function names are added per query), and system columns.
const POSTGRES_ONLY_NAMES: &[&str] = &[
    "?column?",
    "case",
    "array",
    "row",
    "exists",
    "extract",
    "substring",
    "position",
    "overlay",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "ceil",
    "ceiling",
    "floor",
    "nullif",
    "coalesce",
    "greatest",
    "least",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_user",
    "current_role",
    "session_user",
    "user",
    "current_catalog",
    "current_schema",
    "normalize",
    "xmlelement",
    "xmlforest",
    "xmlconcat",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    // Casts of literals are named after the type's internal name; names
    // that are also common column names (date, text, name) are left out.
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "varchar",
    "bpchar",
    "bool",
    "timestamptz",
    "timetz",
    // System columns.
    "ctid",
    "xmin",
    "xmax",
    "cmin",
    "cmax",
    "tableoid",
    "oid",
];

/// What an error is judged against.
struct ErrorContext<'a> {
    info: &'a StatementInfo,
    /// Schemas of the catalog relations the statement names.
    referenced: &'a [&'a SchemaRef],
    functions_in_from: bool,
}

impl ErrorContext<'_> {
    /// A column name the statement's base relations do have: if DataFusion
    /// cannot see it, its scoping differs from PostgreSQL's, which proves
    /// nothing.
    fn is_base_column(&self, name: &str) -> bool {
        self.referenced
            .iter()
            .any(|s| s.field_with_name(name).is_ok())
    }

    /// How many base relations have a column called `name`.
    fn base_columns_named(&self, name: &str) -> usize {
        self.referenced
            .iter()
            .filter(|s| s.field_with_name(name).is_ok())
            .count()
    }

    /// A name PostgreSQL could resolve where DataFusion cannot: a derived
    /// column name, a whole-row reference, a table function's column.
    fn postgres_may_know(&self, name: &str, valid: &[DfColumn]) -> bool {
        self.functions_in_from
            || POSTGRES_ONLY_NAMES.contains(&name)
            || self.info.functions.iter().any(|f| f.name == name)
            || self.info.relations.iter().any(|r| r.name == name)
            || valid
                .iter()
                .any(|c| c.relation.as_ref().is_some_and(|r| r.table() == name))
    }
}

fn classify(error: &DataFusionError, context: &ErrorContext) -> PlanCheck {
    let mut roots = Vec::new();
    collect_roots(error, &mut roots);
    for root in roots {
        let DataFusionError::SchemaError(e, _) = root else {
            continue;
        };
        let verdict = match e.as_ref() {
            SchemaError::FieldNotFound {
                field,
                valid_fields,
            } => missing_column(field, valid_fields, context),
            SchemaError::AmbiguousReference { field } => (context.base_columns_named(&field.name)
                >= 2)
                .then(|| format!("column reference \"{}\" is ambiguous", field.name)),
            _ => None,
        };
        if let Some(message) = verdict {
            return PlanCheck::Unknown { message };
        }
    }
    PlanCheck::Unsupported {
        message: error.strip_backtrace(),
    }
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

/// The message for a column DataFusion could not find, if its absence is
/// proven: a qualified reference whose relation is in scope without it, or
/// a name no relation the statement reads has.
fn missing_column(field: &DfColumn, valid: &[DfColumn], context: &ErrorContext) -> Option<String> {
    let name = field.name.as_str();
    if context.postgres_may_know(name, valid) {
        return None;
    }
    let proven = match &field.relation {
        Some(q) => {
            valid
                .iter()
                .any(|c| c.relation.as_ref().is_some_and(|r| r.table() == q.table()))
                || !context.is_base_column(name)
        }
        None => !context.is_base_column(name),
    };
    if !proven {
        return None;
    }
    let mut message = match &field.relation {
        Some(q) => format!(
            "column {}.{} does not exist",
            quote_ident(q.table()),
            quote_ident(name)
        ),
        None => format!("column \"{name}\" does not exist"),
    };
    let candidates: Vec<String> = valid
        .iter()
        .map(|c| match &c.relation {
            Some(r) => format!("{}.{}", quote_ident(r.table()), quote_ident(&c.name)),
            None => quote_ident(&c.name),
        })
        .collect();
    let close = closest(name, candidates.iter().map(String::as_str), 8);
    if !close.is_empty() {
        message.push_str("; columns in scope: ");
        message.push_str(&close.join(", "));
    }
    Some(message)
}

/// Up to `limit` of `candidates`, most similar to `target` first (names
/// containing it or contained in it, then by edit distance; ties keep their
/// order). A qualified candidate (`o.total`) is compared by its last part.
pub fn closest<'a>(
    target: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<&'a str> {
    let target = target.to_lowercase();
    let mut seen = HashSet::new();
    let mut scored: Vec<(usize, usize, &str)> = candidates
        .into_iter()
        .filter(|c| seen.insert(*c))
        .map(|c| {
            let last = c
                .rsplit('.')
                .next()
                .unwrap_or(c)
                .trim_matches('"')
                .to_lowercase();
            let contains = last.contains(&target) || target.contains(&last);
            (usize::from(!contains), edit_distance(&target, &last), c)
        })
        .collect();
    scored.sort_by_key(|&(contains, distance, _)| (contains, distance));
    scored.into_iter().take(limit).map(|(_, _, c)| c).collect()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The Arrow type for a column, from PostgreSQL's `format_type()` text.
///
/// Unconstrained `numeric` maps to Float64: its precision cannot be
/// represented by a fixed Decimal128, and Float64 coerces with everything
/// the way `numeric` does in PostgreSQL (nothing executes, so no value is
/// ever rounded). `numeric(p,s)` beyond Decimal128's 38 digits does too.
/// Types DataFusion has no counterpart for (uuid, json, inet, enums, ...)
/// are text.
pub fn arrow_type(pg: &str) -> DataType {
    let pg = pg.trim();
    if let Some(element) = pg.strip_suffix("[]") {
        return DataType::List(Arc::new(Field::new_list_field(arrow_type(element), true)));
    }
    let lower = pg.to_ascii_lowercase();
    // Split off a type modifier: `numeric(10,2)`, `timestamp(3) with time zone`.
    let (base, modifier) = match (lower.find('('), lower.find(')')) {
        (Some(open), Some(close)) if open < close => (
            format!("{}{}", lower[..open].trim_end(), &lower[close + 1..]),
            Some(&lower[open + 1..close]),
        ),
        _ => (lower.clone(), None),
    };
    match base.as_str() {
        "smallint" | "int2" => DataType::Int16,
        "integer" | "int" | "int4" => DataType::Int32,
        "bigint" | "int8" => DataType::Int64,
        "real" | "float4" => DataType::Float32,
        "double precision" | "float8" => DataType::Float64,
        "numeric" | "decimal" => modifier.and_then(decimal).unwrap_or(DataType::Float64),
        "boolean" | "bool" => DataType::Boolean,
        "bytea" => DataType::Binary,
        "date" => DataType::Date32,
        "timestamp" | "timestamp without time zone" => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        "timestamp with time zone" | "timestamptz" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        "time" | "time without time zone" | "time with time zone" | "timetz" => {
            DataType::Time64(TimeUnit::Microsecond)
        }
        b if b.starts_with("interval") => DataType::Interval(IntervalUnit::MonthDayNano),
        _ => DataType::Utf8,
    }
}

/// `p,s` (or `p`) as a Decimal128 when it fits one.
fn decimal(modifier: &str) -> Option<DataType> {
    let mut parts = modifier.split(',').map(|p| p.trim().parse::<i64>());
    let precision = parts.next()?.ok()?;
    let scale = match parts.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    ((1..=38).contains(&precision) && (0..=precision).contains(&scale))
        .then_some(DataType::Decimal128(precision as u8, scale as i8))
}

#[cfg(test)]
mod tests;
