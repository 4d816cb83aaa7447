//! Rules over the planner's estimates: they need no ANALYZE, so they run on
//! every advised statement.

use super::columns::{
    condition_columns, create_index, create_index_on, index_columns, sort_key_column, table_name,
    ColumnRef,
};
use super::{clip_location, parallel_divisor, Ctx, PlanNode};
use crate::{Finding, Severity};
use helios_planner::catalog::{quote_ident, Table};

pub(crate) const SEQ_SCAN_LARGE_TABLE: &str = "seq_scan_large_table";
pub(crate) const SORT_WITHOUT_INDEX: &str = "sort_without_index";
pub(crate) const NESTED_LOOP_LARGE_OUTER: &str = "nested_loop_large_outer";
pub(crate) const STALE_STATISTICS: &str = "stale_statistics";

/// A scan keeping less than this share of a table's rows would read far
/// fewer pages through an index.
const SELECTIVE_SHARE: f64 = 0.10;
/// A nested loop runs its inner side once per outer row: this many runs of
/// anything but an index lookup is a lot of repeated work.
const NESTED_LOOP_OUTER_ROWS: f64 = 10_000.0;
/// Autovacuum re-analyzes a table once 10% of it has changed
/// (`autovacuum_analyze_scale_factor`); more than that means autovacuum is
/// behind or off. Below this many rows, stale statistics hardly matter.
const STALE_SHARE: f64 = 0.10;
const STALE_MIN_ROWS: f64 = 1_000.0;

/// The estimate rules that look at one node.
pub(crate) fn node_findings(node: &PlanNode, above: &[&PlanNode], ctx: &Ctx) -> Vec<Finding> {
    [
        seq_scan_large_table(node, above, ctx),
        sort_without_index(node, above, ctx),
        nested_loop_large_outer(node, above),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn seq_scan_large_table(node: &PlanNode, above: &[&PlanNode], ctx: &Ctx) -> Option<Finding> {
    if node.node_type != "Seq Scan" {
        return None;
    }
    let filter = node.filter.as_deref()?;
    let table = ctx.table(node);
    // Without the catalog, ANALYZE's figures still say how many rows the
    // scan read.
    let table_rows = table
        .map(|t| t.row_estimate)
        .filter(|&r| r > 0.0)
        .or_else(|| rows_read(node))?;
    if table_rows < ctx.options.large_table_rows {
        return None;
    }
    let kept = node.plan_rows * parallel_divisor(node, above);
    let share = kept / table_rows;
    if share >= SELECTIVE_SHARE {
        return None;
    }
    let mut detail = format!(
        "{} reads all of its ~{} rows to keep an estimated {} ({:.1}%): an index would read only those.",
        node.describe(),
        table_rows.round(),
        kept.round(),
        share * 100.0
    );
    let mut finding = Finding::new(
        Severity::Warning,
        SEQ_SCAN_LARGE_TABLE,
        "Sequential scan of a large table keeps few of its rows",
        "",
    )
    .at(clip_location(node, "filter", filter));
    match filter_index(node, filter, ctx) {
        Some(IndexHint::New(ddl)) => finding = finding.suggest(ddl),
        Some(IndexHint::Unused(index)) => {
            detail.push_str(&format!(
                " An index leading with the same column exists ({index}) but was not chosen: \
                 the planner's statistics may be off."
            ));
            finding = finding.suggest(format!("ANALYZE {}", target(node, table)));
        }
        None => {}
    }
    finding.detail = detail;
    Some(finding)
}

fn sort_without_index(node: &PlanNode, above: &[&PlanNode], ctx: &Ctx) -> Option<Finding> {
    if node.node_type != "Sort" {
        return None;
    }
    let rows = node.plan_rows * parallel_divisor(node, above);
    let large = ctx.options.large_table_rows;
    if rows < large {
        return None;
    }
    // Sorting by an expression (an aggregate, `a + b`) is something no
    // plain index provides; an index that already provides the order was
    // passed over for a reason (reading all rows through it costs more).
    let ddl = match sort_index(node, ctx)? {
        IndexHint::New(ddl) => ddl,
        IndexHint::Unused(_) => return None,
    };
    // Under a LIMIT, an index in sort order lets the query stop after the
    // first rows instead of sorting them all: the big win.
    let limited = above.iter().any(|n| n.node_type == "Limit");
    let severity = if limited || rows >= 10.0 * large {
        Severity::Warning
    } else {
        Severity::Info
    };
    let mut detail = format!(
        "Sorts an estimated {} rows by {}; an index in that order would return them already sorted.",
        rows.round(),
        node.sort_key.join(", ")
    );
    if limited {
        detail.push_str(" Under the LIMIT, the query could then stop after the first rows.");
    }
    Some(
        Finding::new(
            severity,
            SORT_WITHOUT_INDEX,
            "Large sort with no index in its order",
            detail,
        )
        .at(clip_location(node, "sort key", &node.sort_key.join(", ")))
        .suggest(ddl),
    )
}

fn nested_loop_large_outer(node: &PlanNode, above: &[&PlanNode]) -> Option<Finding> {
    if node.node_type != "Nested Loop" {
        return None;
    }
    let (outer, inner) = (node.outer()?, node.inner()?);
    let mut path = above.to_vec();
    path.push(node);
    let outer_rows = outer.plan_rows * parallel_divisor(outer, &path);
    if outer_rows < NESTED_LOOP_OUTER_ROWS || is_index_lookup(inner) {
        return None;
    }
    let detail = format!(
        "For each of ~{} rows from {}, the inner side ({}, ~{} rows) runs again: \
         about {} row visits in all.",
        outer_rows.round(),
        outer.describe(),
        inner.describe(),
        inner.plan_rows.round(),
        (outer_rows * inner.plan_rows.max(1.0)).round()
    );
    let condition = node.join_filter.as_deref().or(inner.filter.as_deref());
    let mut finding = Finding::new(
        Severity::Warning,
        NESTED_LOOP_LARGE_OUTER,
        "Nested loop over many outer rows without an index on the inner side",
        detail,
    )
    .at(match condition {
        Some(c) => clip_location(node, "join filter", c),
        None => node.describe(),
    });
    let inner_scan = inner.walk().find(|n| n.relation.is_some());
    if let (Some(scan), Some(condition)) = (inner_scan, condition) {
        let own = scan.alias.as_deref().or(scan.relation.as_deref());
        let cols: Vec<ColumnRef> = condition_columns(condition)
            .into_iter()
            .filter(|c| c.qualifier.is_none() || c.qualifier.as_deref() == own)
            .collect();
        let names = index_columns(&cols, 3);
        if !names.is_empty() {
            let rel = scan.relation.as_deref().unwrap_or_default();
            finding = finding.suggest(format!(
                "Give the inner side an index on its join columns so each outer row looks up its \
                 matches ({}), or write the join as an equality a hash join can use",
                create_index(scan.schema.as_deref(), rel, &names)
            ));
        }
    }
    Some(finding)
}

/// Each run of the inner side is an index lookup, which is what makes a
/// nested loop cheap. A Materialize or a Seq Scan means rescanning rows.
fn is_index_lookup(node: &PlanNode) -> bool {
    match node.node_type.as_str() {
        "Index Scan" | "Index Only Scan" => node.index_cond.is_some(),
        "Bitmap Heap Scan" => true,
        // Wrappers around lookups: a cache of them, or one per partition.
        "Memoize" | "Result" | "Append" | "Merge Append" => {
            let inputs: Vec<&PlanNode> = node
                .children
                .iter()
                .filter(|c| {
                    !matches!(
                        c.parent_relationship.as_deref(),
                        Some("InitPlan" | "SubPlan")
                    )
                })
                .collect();
            !inputs.is_empty() && inputs.into_iter().all(is_index_lookup)
        }
        _ => false,
    }
}

/// Tables the plan reads whose statistics the planner cannot trust.
pub(crate) fn stale_statistics(root: &PlanNode, ctx: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    for (schema, rel) in root.relations() {
        let Some(table) = ctx.catalog.resolve(schema, rel) else {
            continue;
        };
        let Some(stats) = &table.stats else { continue };
        let name = table.qualified_name().to_string();
        let modified = stats.modified_since_analyze;
        let detail = match stats.seconds_since_analyze {
            None if stats.live_rows.max(modified) >= STALE_MIN_ROWS => format!(
                "{name} (~{} live rows) has never been analyzed: the planner guesses its row \
                 counts and value distributions.",
                stats.live_rows.round()
            ),
            Some(secs) if modified > STALE_SHARE * stats.live_rows && modified > STALE_MIN_ROWS => {
                format!(
                    "{} of {name}'s ~{} live rows ({:.0}%) changed since it was last analyzed \
                     {:.1} hours ago: the planner's estimates for it are out of date.",
                    modified.round(),
                    stats.live_rows.round(),
                    modified / stats.live_rows.max(1.0) * 100.0,
                    secs / 3600.0
                )
            }
            _ => continue,
        };
        out.push(
            Finding::new(
                Severity::Warning,
                STALE_STATISTICS,
                "Table statistics are missing or stale",
                detail,
            )
            .at(format!("table {name}"))
            .suggest(format!("ANALYZE {name}")),
        );
    }
    out
}

/// What an index hint came to.
pub(crate) enum IndexHint {
    /// Create this index.
    New(String),
    /// An index leading the same way exists already (its name).
    Unused(String),
}

/// An index on the columns of a scan's filter, equality columns first.
pub(crate) fn filter_index(node: &PlanNode, filter: &str, ctx: &Ctx) -> Option<IndexHint> {
    let rel = node.relation.as_deref()?;
    let table = ctx.table(node);
    let cols: Vec<ColumnRef> = condition_columns(filter)
        .into_iter()
        .filter(|c| table.is_none_or(|t| t.columns.is_empty() || t.column(&c.name).is_some()))
        .collect();
    let names = index_columns(&cols, ctx.options.max_index_columns);
    let lead = names.first()?;
    if let Some(existing) = table.and_then(|t| leading_index(t, std::slice::from_ref(lead))) {
        return Some(IndexHint::Unused(existing));
    }
    let (schema, name) = ddl_target(node, rel, table);
    Some(IndexHint::New(create_index(schema, name, &names)))
}

/// An index in a Sort node's order, on the one table below it the sort
/// keys name; `None` when a key is an expression or the table is unclear.
pub(crate) fn sort_index(sort: &PlanNode, ctx: &Ctx) -> Option<IndexHint> {
    let keys: Vec<(ColumnRef, bool)> = sort
        .sort_key
        .iter()
        .map(|k| Some((sort_key_column(k)?, k.contains(" DESC"))))
        .collect::<Option<_>>()?;
    let scans: Vec<&PlanNode> = sort.walk().filter(|n| n.relation.is_some()).collect();
    let qualifier = keys[0].0.qualifier.as_deref();
    let scan = match qualifier {
        Some(q) => scans
            .iter()
            .find(|n| n.alias.as_deref() == Some(q) || n.relation.as_deref() == Some(q))?,
        None if scans.len() == 1 => &scans[0],
        None => return None,
    };
    if keys
        .iter()
        .any(|(k, _)| k.qualifier.as_deref() != qualifier)
    {
        return None;
    }
    let table = ctx.table(scan);
    let names: Vec<String> = keys.iter().map(|(k, _)| k.name.clone()).collect();
    if let Some(t) = table {
        if names
            .iter()
            .any(|n| !t.columns.is_empty() && t.column(n).is_none())
        {
            return None;
        }
        if let Some(existing) = leading_index(t, &names) {
            return Some(IndexHint::Unused(existing));
        }
    }
    // A btree reads backwards as well as forwards, so a sort in one
    // direction needs a plain index; mixed directions need them spelled out.
    let mixed = keys.iter().any(|(_, d)| *d) && keys.iter().any(|(_, d)| !*d);
    let items: Vec<String> = keys
        .iter()
        .map(|(k, desc)| match (mixed, desc) {
            (true, true) => format!("{} DESC", quote_ident(&k.name)),
            _ => quote_ident(&k.name),
        })
        .collect();
    let (schema, name) = ddl_target(scan, scan.relation.as_deref()?, table);
    Some(IndexHint::New(create_index_on(schema, name, &items)))
}

/// An index on `t` whose key starts with `columns`, in order.
fn leading_index(t: &Table, columns: &[String]) -> Option<String> {
    t.indexes
        .iter()
        .find(|i| {
            i.columns.len() >= columns.len()
                && i.columns
                    .iter()
                    .zip(columns)
                    .all(|(have, want)| have.as_deref() == Some(want))
        })
        .map(|i| i.name.clone())
}

/// Where a CREATE INDEX goes: the catalog's schema when it knows the table.
fn ddl_target<'a>(
    node: &'a PlanNode,
    rel: &'a str,
    table: Option<&'a Table>,
) -> (Option<&'a str>, &'a str) {
    match table {
        Some(t) => (Some(t.schema.as_str()), t.name.as_str()),
        None => (node.schema.as_deref(), rel),
    }
}

/// The table a node scans, as SQL.
fn target(node: &PlanNode, table: Option<&Table>) -> String {
    match table {
        Some(t) => t.qualified_name().to_string(),
        None => table_name(
            node.schema.as_deref(),
            node.relation.as_deref().unwrap_or_default(),
        ),
    }
}

/// Rows a scan read, from ANALYZE: those it kept plus those its filter
/// removed, over all loops.
pub(crate) fn rows_read(node: &PlanNode) -> Option<f64> {
    let kept = node.actual_rows?;
    let removed = node.rows_removed_by_filter.unwrap_or(0.0);
    Some((kept + removed) * node.actual_loops?)
}

#[cfg(test)]
#[path = "estimates_tests.rs"]
mod tests;
