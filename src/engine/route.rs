//! Which statements run in the engine.
//!
//! The default is to relay. A statement goes to the engine when it is one
//! read-only query (no locking clause, no `SELECT INTO`, no writing CTE)
//! that names no system catalog, and one of:
//!
//! - it carries the hint `/*+ engine */` (`/*+ no_engine */` keeps it away
//!   whatever else says);
//! - the session said `SET helios.engine = on`;
//! - a `[[engine.route]]` rule names one of its tables;
//! - `engine.auto` is on, every table it reads is accelerated (or a local
//!   file), and it is analytical (aggregates, GROUP BY, DISTINCT, a join, a
//!   window or an ORDER BY).

use helios_planner::cacheable::hints;
use helios_planner::sql::{self, RelationRef, StatementKind};
use helios_planner::sqlparser::ast::{GroupByExpr, SetExpr, Statement};

use super::EngineService;

/// Why a statement goes to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A hint or the session's setting: the client asked, and is told
    /// (NOTICE) when the engine cannot run it.
    Asked,
    /// A `[[engine.route]]` rule.
    Rule,
    /// `engine.auto` over accelerated tables: used only while the copies
    /// are fresh, else relayed.
    Auto,
}

/// A statement bound for the engine.
#[derive(Debug, Clone)]
pub struct RouteDecision {
    pub reason: Reason,
    pub relations: Vec<RelationRef>,
}

/// Aggregate functions that make a statement analytical.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "bool_and",
    "bool_or",
    "every",
    "string_agg",
    "array_agg",
    "percentile_cont",
    "percentile_disc",
    "median",
    "corr",
    "covar_pop",
    "covar_samp",
];

/// Decide for one Query text; `None`: relay.
pub fn decide(
    text: &str,
    session_on: bool,
    svc: &EngineService,
    database: &str,
) -> Option<RouteDecision> {
    let config = &svc.config;
    let maybe_hint = text.contains("/*+");
    let auto = config.auto && !svc.accelerations.is_empty();
    if !maybe_hint && !session_on && config.route.is_empty() && !auto {
        return None;
    }
    let h = if maybe_hint {
        hints(text)
    } else {
        Default::default()
    };
    if h.no_engine {
        return None;
    }
    let statements = sql::parse(text).ok()?;
    let [stmt] = statements.as_slice() else {
        return None;
    };
    let info = sql::analyze(stmt);
    if info.kind != StatementKind::Query
        || info.locking
        || info.select_into
        || info.data_modifying_cte
    {
        return None;
    }
    let system = |r: &RelationRef| {
        matches!(
            r.schema.as_deref(),
            Some("pg_catalog" | "information_schema")
        ) || r.name.starts_with("pg_")
    };
    if info.relations.iter().any(system) {
        return None;
    }
    let reason = if h.engine || session_on {
        Reason::Asked
    } else if config.route.iter().any(|rule| {
        rule.tables.iter().any(|t| {
            let (schema, name) = super::split_table(t);
            info.relations.iter().any(|r| {
                r.name == name
                    && (!t.contains('.') || r.schema.as_deref().unwrap_or("public") == schema)
            })
        })
    }) {
        Reason::Rule
    } else if auto
        && !info.relations.is_empty()
        && info
            .relations
            .iter()
            .all(|r| svc.is_file_table(r) || svc.accelerations.find(database, r).is_some())
        && analytical(stmt, &info.functions)
    {
        Reason::Auto
    } else {
        return None;
    };
    Some(RouteDecision {
        reason,
        relations: info.relations,
    })
}

/// Aggregates, GROUP BY, DISTINCT, joins, windows or ORDER BY: the kind of
/// statement DataFusion's parallel operators are for.
fn analytical(stmt: &Statement, functions: &[sql::FunctionRef]) -> bool {
    if functions
        .iter()
        .any(|f| AGGREGATES.contains(&f.name.to_ascii_lowercase().as_str()))
    {
        return true;
    }
    let Statement::Query(q) = stmt else {
        return false;
    };
    if q.order_by.is_some() {
        return true;
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return true; // set operations, VALUES
    };
    let grouped = match &s.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(e, _) => !e.is_empty(),
    };
    grouped
        || s.distinct.is_some()
        || s.from.len() > 1
        || s.from.iter().any(|t| !t.joins.is_empty())
        || !s.named_window.is_empty()
        || s.projection
            .iter()
            .any(|p| p.to_string().to_ascii_lowercase().contains(" over "))
}
