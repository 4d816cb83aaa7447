//! Planning the statement in DataFusion against the catalog snapshot:
//! names that do not exist, and what the logical plan shows that the
//! syntax tree does not (cross joins, casts type coercion adds).
//!
//! The context mirrors [`PlanChecker`]'s (every catalog relation an empty
//! table with its Arrow schema, unqualified names resolved through the
//! search_path). When DataFusion cannot plan the statement, `PlanChecker`
//! decides whether that proves a missing name or only a DataFusion gap.
//!
//! DataFusion's planning API is async only because catalogs may be
//! remote; with in-memory catalogs every future is ready on its first poll,
//! so we poll once and stay synchronous (a future that is not ready is
//! treated as "could not plan").

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProvider};
use datafusion::catalog::{MemoryCatalogProviderList, MemorySchemaProvider, SchemaProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ExprSchema, JoinType, TableReference};
use datafusion::datasource::empty::EmptyTable;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::functions::datetime::planner::DatetimeFunctionPlanner;
use datafusion::functions::unicode::planner::UnicodeFunctionPlanner;
use datafusion::logical_expr::planner::ExprPlanner;
use datafusion::logical_expr::{Cast, Expr, FetchType, LogicalPlan, TryCast};
use datafusion::optimizer::eliminate_cross_join::EliminateCrossJoin;
use datafusion::optimizer::extract_equijoin_predicate::ExtractEquijoinPredicate;
use datafusion::optimizer::push_down_filter::PushDownFilter;
use datafusion::optimizer::simplify_expressions::SimplifyExpressions;
use datafusion::optimizer::Optimizer;
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::Statement as DfStatement;
use helios_planner::catalog::Catalog;
use helios_planner::check::{arrow_type, PlanCheck, PlanChecker};
use helios_planner::sql::{analyze, StatementKind};

use super::exprs::{fmt_rows, table_rows};
use super::RuleContext;
use crate::{Finding, Severity};

/// The ids of the rules this module adds.
pub const PLAN_RULES: &[&str] = &["unknown_name", "cross_join", "implicit_cast"];

/// A planning context for one catalog.
pub(crate) struct PlanContext {
    state: SessionState,
    /// The few rewrites that turn `FROM a, b WHERE a.x = b.y` into a keyed
    /// join and fold casts of literals away, so what is left is real.
    optimizer: Optimizer,
    checker: PlanChecker,
}

impl PlanContext {
    pub fn new(catalog: &Catalog) -> PlanContext {
        PlanContext {
            state: session_state(catalog),
            optimizer: Optimizer::with_rules(vec![
                Arc::new(SimplifyExpressions::new()),
                Arc::new(EliminateCrossJoin::new()),
                Arc::new(PushDownFilter::new()),
                Arc::new(ExtractEquijoinPredicate::new()),
            ]),
            checker: PlanChecker::new(catalog),
        }
    }

    /// Add the plan findings for `cx.statement` (queries only).
    pub fn findings(&self, cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        if analyze(cx.statement).kind != StatementKind::Query {
            return;
        }
        let statement = DfStatement::Statement(Box::new(cx.statement.clone()));
        let plan = match ready(self.state.statement_to_plan(statement)) {
            Some(Ok(plan)) => plan,
            Some(Err(_)) => return self.unknown_name(cx, out),
            None => return,
        };
        let written = column_casts(&plan);
        let Ok(optimized) = self.optimize(plan) else {
            return;
        };
        // The syntax-tree rule says it better, with the foreign keys.
        if !out.iter().any(|f| f.rule == "cartesian_product") {
            cross_joins(&optimized, cx.catalog, out);
        }
        implicit_casts(&written, &column_casts(&optimized), out);
    }

    fn optimize(&self, plan: LogicalPlan) -> datafusion::common::Result<LogicalPlan> {
        let config = self.state.config_options().as_ref();
        let analyzed = self
            .state
            .analyzer()
            .execute_and_check(plan, config, |_, _| {})?;
        self.optimizer.optimize(analyzed, &self.state, |_, _| {})
    }

    /// DataFusion could not plan it: ask the checker whether a name is
    /// really missing.
    fn unknown_name(&self, cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let Some(PlanCheck::Unknown { message }) =
            ready(self.checker.check(&cx.statement.to_string()))
        else {
            return;
        };
        let (message, candidates) = match message.split_once("; columns in scope: ") {
            Some((m, c)) => (m.to_string(), Some(c.to_string())),
            None => (message, None),
        };
        let suggestion = match candidates {
            Some(c) => format!("Columns in scope with similar names: {c}."),
            None => format!(
                "Check the name and its schema (search_path: {}).",
                cx.catalog.search_path.join(", ")
            ),
        };
        let mut finding = Finding::new(
            Severity::Critical,
            "unknown_name",
            "The statement names something that does not exist",
            format!("{message}: PostgreSQL would reject the statement."),
        )
        .suggest(suggestion);
        if let Some(name) = named(&message) {
            finding = finding.at(name);
        }
        out.push(finding);
    }
}

/// The name in `relation "x" does not exist` / `column t.x does not exist`
/// / `column reference "x" is ambiguous`.
fn named(message: &str) -> Option<String> {
    let rest = ["column reference ", "relation ", "column "]
        .iter()
        .find_map(|p| message.strip_prefix(p))?;
    let end = rest
        .find(" does not exist")
        .or_else(|| rest.find(" is ambiguous"))?;
    Some(rest[..end].trim_matches('"').to_string())
}

/// Poll a future once: DataFusion's planning over in-memory catalogs never
/// waits.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// The same registration as [`PlanChecker::new`]: each relation under its
/// schema, and the search_path's pick for each unqualified name in the
/// default schema.
fn session_state(catalog: &Catalog) -> SessionState {
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
    let mut arrow: HashMap<(&str, &str), SchemaRef> = HashMap::new();
    for t in &catalog.tables {
        let schema: SchemaRef = Arc::new(Schema::new(
            t.columns
                .iter()
                .map(|c| Field::new(&c.name, arrow_type(&c.data_type), c.nullable))
                .collect::<Vec<_>>(),
        ));
        let provider = schemas.entry(t.schema.as_str()).or_default();
        let _ = provider.register_table(t.name.clone(), Arc::new(EmptyTable::new(schema.clone())));
        arrow.insert((t.schema.as_str(), t.name.as_str()), schema);
    }
    let default = schemas.entry(default_schema.as_str()).or_default().clone();
    let mut seen = HashSet::new();
    for t in &catalog.tables {
        if !seen.insert(t.name.as_str()) {
            continue;
        }
        let Some(found) = catalog.resolve(None, &t.name) else {
            continue;
        };
        if found.schema != default_schema {
            let schema = arrow[&(found.schema.as_str(), found.name.as_str())].clone();
            let _ = default.register_table(found.name.clone(), Arc::new(EmptyTable::new(schema)));
        }
    }
    let provider = MemoryCatalogProvider::new();
    for (name, schema) in schemas {
        let _ = provider.register_schema(name, schema);
    }
    let catalogs = MemoryCatalogProviderList::new();
    catalogs.register_catalog(database.to_string(), Arc::new(provider));
    let config = SessionConfig::new()
        .with_default_catalog_and_schema(database, &default_schema)
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(false);
    let mut planners = datafusion::execution::SessionStateDefaults::default_expr_planners();
    planners.push(Arc::new(DatetimeFunctionPlanner) as Arc<dyn ExprPlanner>);
    planners.push(Arc::new(UnicodeFunctionPlanner) as Arc<dyn ExprPlanner>);
    SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_expr_planners(planners)
        .with_catalog_list(Arc::new(catalogs))
        .build()
}

/// Joins with neither keys nor a condition, between two sides that read
/// tables and may return many rows.
fn cross_joins(plan: &LogicalPlan, catalog: &Catalog, out: &mut Vec<Finding>) {
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Join(j) = node {
            if j.on.is_empty()
                && j.filter.is_none()
                && j.join_type == JoinType::Inner
                && !single_row(&j.left)
                && !single_row(&j.right)
            {
                let (left, right) = (scans(&j.left), scans(&j.right));
                if !left.is_empty() && !right.is_empty() {
                    out.push(cross_join(&left, &right, catalog));
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

fn cross_join(left: &[TableReference], right: &[TableReference], catalog: &Catalog) -> Finding {
    let names = |side: &[TableReference]| {
        side.iter()
            .map(|t| t.table().to_string())
            .collect::<Vec<_>>()
            .join(" ⋈ ")
    };
    // Rows of the largest table on each side, when known.
    let rows = |side: &[TableReference]| {
        side.iter()
            .filter_map(|t| table_rows(catalog.resolve(t.schema(), t.table())?))
            .reduce(f64::max)
    };
    let size = match (rows(left), rows(right)) {
        (Some(l), Some(r)) => format!(
            " (up to {} × {} = {} rows)",
            fmt_rows(l),
            fmt_rows(r),
            fmt_rows(l * r)
        ),
        _ => String::new(),
    };
    let (l, r) = (names(left), names(right));
    Finding::new(
        Severity::Warning,
        "cross_join",
        "Cross join in the plan",
        format!(
            "The plan joins {l} with {r} with no join key or condition: every row of one side \
             meets every row of the other{size}."
        ),
    )
    .at(format!("{l} × {r}"))
    .suggest(format!(
        "Add a condition comparing a column of {l} with one of {r}, or write CROSS JOIN if the \
         product is intended."
    ))
}

/// Tables a plan reads (not counting its subqueries).
fn scans(plan: &LogicalPlan) -> Vec<TableReference> {
    let mut out = Vec::new();
    let _ = plan.apply(|n| {
        if let LogicalPlan::TableScan(s) = n {
            out.push(s.table_name.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// A plan that returns at most one row: joining it multiplies nothing.
fn single_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        LogicalPlan::EmptyRelation(_) => true,
        LogicalPlan::Values(v) => v.values.len() <= 1,
        LogicalPlan::Limit(l) => {
            matches!(l.get_fetch_type(), Ok(FetchType::Literal(Some(n))) if n <= 1)
                || single_row(&l.input)
        }
        LogicalPlan::Projection(p) => single_row(&p.input),
        LogicalPlan::SubqueryAlias(s) => single_row(&s.input),
        LogicalPlan::Filter(f) => single_row(&f.input),
        LogicalPlan::Sort(s) => single_row(&s.input),
        _ => false,
    }
}

/// A cast around a column in a filter or join condition.
struct ColumnCast {
    column: String,
    from: DataType,
    to: DataType,
    expr: String,
}

fn column_casts(plan: &LogicalPlan) -> Vec<ColumnCast> {
    let mut out = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::Filter(f) => casts_in(&f.predicate, f.input.schema(), &mut out),
            LogicalPlan::Join(j) => {
                for (l, r) in &j.on {
                    casts_in(l, j.left.schema(), &mut out);
                    casts_in(r, j.right.schema(), &mut out);
                }
                if let Some(f) = &j.filter {
                    casts_in(f, &j.schema, &mut out);
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

fn casts_in(expr: &Expr, schema: &DFSchema, out: &mut Vec<ColumnCast>) {
    let _ = expr.apply(|e| {
        let (inner, to) = match e {
            Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                (expr.as_ref(), field.data_type())
            }
            _ => return Ok(TreeNodeRecursion::Continue),
        };
        if let Expr::Column(c) = inner {
            if let Ok(field) = schema.field_from_column(c) {
                out.push(ColumnCast {
                    column: c.flat_name(),
                    from: field.data_type().clone(),
                    to: to.clone(),
                    expr: e.to_string(),
                });
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

/// Casts the optimized plan has that the statement did not write, where
/// the column changes type family (a widening integer cast, which
/// PostgreSQL's cross-type operators make unnecessary, is not reported).
fn implicit_casts(written: &[ColumnCast], planned: &[ColumnCast], out: &mut Vec<Finding>) {
    let mut reported = HashSet::new();
    for cast in planned {
        if family(&cast.from) == family(&cast.to)
            || written
                .iter()
                .any(|w| w.column == cast.column && w.to == cast.to)
            || !reported.insert((cast.column.clone(), cast.to.clone()))
        {
            continue;
        }
        let name = cast.column.rsplit('.').next().unwrap_or(&cast.column);
        // The syntax-tree rules already explain this predicate.
        if out.iter().any(|f| {
            matches!(
                f.rule,
                "literal_type_mismatch" | "function_on_indexed_column"
            ) && f.location.as_deref().is_some_and(|l| mentions(l, name))
        }) {
            continue;
        }
        let (from, to) = (pg_name(&cast.from), pg_name(&cast.to));
        out.push(
            Finding::new(
                Severity::Info,
                "implicit_cast",
                format!("Implicit cast of {} from {from} to {to}", cast.column),
                format!(
                    "Type coercion casts the column {} ({from}) to {to} to compare it: the \
                     cast runs for every row, and an index on the column cannot serve the \
                     predicate. (Found by planning in DataFusion, whose coercion is close to \
                     PostgreSQL's but not the same.)",
                    cast.column
                ),
            )
            .at(cast.expr.clone())
            .suggest(format!(
                "Compare {} with a value of type {from}, so the value is cast rather than the \
                 column.",
                cast.column
            )),
        );
    }
}

/// Whether SQL text uses the identifier `name` (as a whole word).
fn mentions(text: &str, name: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .any(|word| word.eq_ignore_ascii_case(name))
}

/// Type families within which PostgreSQL compares without casting a column.
fn family(t: &DataType) -> u8 {
    match t {
        t if t.is_integer() => 0,
        t if t.is_floating() || t.is_decimal() => 1,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 2,
        t if t.is_temporal() => 3,
        DataType::Boolean => 4,
        _ => 5,
    }
}

/// A PostgreSQL name for an Arrow type, for messages.
fn pg_name(t: &DataType) -> String {
    match t {
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(p, s) => format!("numeric({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        other => other.to_string(),
    }
}
