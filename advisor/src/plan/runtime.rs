//! Rules over what `EXPLAIN ANALYZE` measured. Each stays silent on a node
//! without actual figures, so running them on an estimate-only plan is
//! harmless.

use super::columns::{condition_columns, memory_setting, table_name};
use super::estimates::{filter_index, rows_read, sort_index, IndexHint};
use super::{clip_location, Ctx, PlanNode};
use crate::{Finding, Severity};

pub(crate) const DISK_SORT: &str = "disk_sort";
pub(crate) const HASH_BATCHES: &str = "hash_batches";
pub(crate) const MISESTIMATE: &str = "misestimate";
pub(crate) const ROWS_REMOVED: &str = "rows_removed_by_filter";
pub(crate) const LOSSY_BITMAP: &str = "lossy_bitmap";

/// A misestimate on fewer rows than this (estimated or actual, over all
/// loops) cannot make a plan much worse.
const MISESTIMATE_MIN_ROWS: f64 = 1_000.0;
/// A filter throwing away at least this many rows, and this share of what
/// it reads, is doing work an index would skip.
const REMOVED_MIN_ROWS: f64 = 10_000.0;
const REMOVED_MIN_SHARE: f64 = 0.90;
/// Bytes a bitmap needs per heap page it tracks exactly (tidbitmap.c's
/// PagetableEntry and its hash slot, about).
const BITMAP_BYTES_PER_PAGE: f64 = 64.0;

/// The runtime rules that look at one node.
pub(crate) fn node_findings(node: &PlanNode, above: &[&PlanNode], ctx: &Ctx) -> Vec<Finding> {
    if node.actual_loops.is_none_or(|loops| loops == 0.0) {
        // Not analyzed, or never executed: nothing was measured.
        return Vec::new();
    }
    [
        disk_sort(node, ctx),
        hash_batches(node, above),
        misestimate(node, above, ctx),
        rows_removed_by_filter(node, ctx),
        lossy_bitmap(node),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn disk_sort(node: &PlanNode, ctx: &Ctx) -> Option<Finding> {
    if node.node_type != "Sort" {
        return None;
    }
    // In a parallel sort every process sorts its share with its own
    // work_mem: the leader's figures are on the node, the workers' in
    // `workers`.
    let on_disk = |kind: Option<&String>, used: Option<f64>| {
        (kind.map(String::as_str) == Some("Disk")).then(|| used.unwrap_or(0.0))
    };
    let spills: Vec<f64> =
        std::iter::once(on_disk(node.sort_space_type.as_ref(), node.sort_space_used))
            .chain(
                node.workers
                    .iter()
                    .map(|w| on_disk(w.sort_space_type.as_ref(), w.sort_space_used)),
            )
            .flatten()
            .collect();
    if spills.is_empty() {
        return None;
    }
    let total: f64 = spills.iter().sum();
    let largest = spills.iter().cloned().fold(0.0, f64::max);
    let method = node.sort_method.as_deref().unwrap_or("external merge");
    let mut detail = format!(
        "Sorting {} rows by {} did not fit in work_mem and wrote {} kB to disk ({method}).",
        node.actual_total_rows().unwrap_or(0.0).round(),
        node.sort_key.join(", "),
        total.round()
    );
    if spills.len() > 1 {
        detail.push_str(&format!(
            " {} processes sorted in parallel; the largest share took {} kB.",
            spills.len(),
            largest.round()
        ));
    }
    let mut suggestion = format!(
        "SET LOCAL work_mem = '{}' for this statement",
        memory_setting(largest)
    );
    if let Some(IndexHint::New(ddl)) = sort_index(node, ctx) {
        suggestion.push_str(&format!(
            ", or avoid the sort with an index in its order: {ddl}"
        ));
    }
    Some(
        Finding::new(Severity::Warning, DISK_SORT, "Sort spilled to disk", detail)
            .at(clip_location(node, "sort key", &node.sort_key.join(", ")))
            .suggest(suggestion),
    )
}

fn hash_batches(node: &PlanNode, above: &[&PlanNode]) -> Option<Finding> {
    if node.node_type != "Hash" {
        return None;
    }
    let batches = node.hash_batches?;
    let planned = node.original_hash_batches.unwrap_or(batches);
    if batches <= 1.0 && batches <= planned {
        return None;
    }
    let mut detail = format!(
        "The hash table of {} rows did not fit in work_mem: it was split into {} batches, \
         written to and read back from temporary files",
        node.actual_total_rows().unwrap_or(0.0).round(),
        batches
    );
    if batches > planned {
        detail.push_str(&format!(
            " (the planner expected {planned}: the input was larger than estimated)"
        ));
    }
    detail.push('.');
    // Each batch held at most the peak, so the whole table needs about
    // peak × batches.
    let peak = node.peak_memory_usage.unwrap_or(0.0);
    let mut finding = Finding::new(
        Severity::Warning,
        HASH_BATCHES,
        "Hash join spilled to disk in batches",
        detail,
    )
    .at(hash_location(node, above));
    if peak > 0.0 {
        finding = finding.suggest(format!(
            "SET LOCAL work_mem = '{}' for this statement (the hash table needs about {} kB)",
            memory_setting(peak * batches),
            (peak * batches).round()
        ));
    }
    Some(finding)
}

/// "Hash of Seq Scan on customers c (hash cond: ...)": a bare "Hash" says
/// nothing; what it hashes and the join it serves do.
fn hash_location(hash: &PlanNode, above: &[&PlanNode]) -> String {
    let mut s = hash.describe();
    if let Some(input) = hash.outer() {
        s.push_str(&format!(" of {}", input.describe()));
    }
    match above.last().and_then(|join| join.hash_cond.as_deref()) {
        Some(cond) => format!("{s} (hash cond: {})", super::columns::clip(cond, 160)),
        None => s,
    }
}

fn misestimate(node: &PlanNode, above: &[&PlanNode], ctx: &Ctx) -> Option<Finding> {
    let (estimated, actual, loops) = misestimated(node, ctx)?;
    if actual < estimated && may_stop_early(above) {
        // A Limit (or a semi join, a merge join, an EXISTS) stopped reading
        // once it had enough: fewer rows than estimated is no error.
        return None;
    }
    // An error made below carries up through every node above it; report
    // only where it starts.
    // (InitPlans and SubPlans feed values, not rows: their errors do not
    // carry.)
    let inputs_wrong = node.children.iter().any(|c| {
        !matches!(
            c.parent_relationship.as_deref(),
            Some("InitPlan" | "SubPlan")
        ) && c.actual_loops.is_some_and(|l| l > 0.0)
            && misestimated(c, ctx).is_some()
    });
    if inputs_wrong {
        return None;
    }
    let (factor, way) = if actual > estimated {
        (actual / estimated.max(1.0), "more")
    } else {
        (estimated / actual.max(1.0), "fewer")
    };
    let (per_loop, loops) = if loops > 1.0 {
        (" per loop", format!(", over {loops} loops"))
    } else {
        ("", String::new())
    };
    let detail = format!(
        "The planner estimated {} rows{per_loop} and got {} ({factor:.0}× {way}){loops}: plans \
         chosen above this node (join methods, memory) rest on the wrong number.",
        estimated.round(),
        actual.round()
    );
    let condition = [
        &node.filter,
        &node.index_cond,
        &node.recheck_cond,
        &node.hash_cond,
    ]
    .into_iter()
    .flatten()
    .next();
    let mut finding = Finding::new(
        Severity::Warning,
        MISESTIMATE,
        format!("Row estimate off by {factor:.0}×"),
        detail,
    )
    .at(match condition {
        Some(c) => clip_location(node, "condition", c),
        None => node.describe(),
    });
    if let Some(rel) = &node.relation {
        let table = ctx.table(node);
        let name = match table {
            Some(t) => t.qualified_name().to_string(),
            None => table_name(node.schema.as_deref(), rel),
        };
        let mut cols: Vec<String> = Vec::new();
        for c in condition.map(|c| condition_columns(c)).unwrap_or_default() {
            if !cols.contains(&c.name) {
                cols.push(c.name);
            }
        }
        // Several columns filtered together: the planner multiplies their
        // selectivities as if they were independent, which extended
        // statistics correct.
        finding = finding.suggest(if cols.len() >= 2 {
            let stats_name = format!("{rel}_{}_stats", cols.join("_"));
            format!(
                "CREATE STATISTICS {} ON {} FROM {name}; ANALYZE {name}",
                helios_planner::catalog::quote_ident(&stats_name),
                cols.iter()
                    .map(|c| helios_planner::catalog::quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("ANALYZE {name} (or raise the statistics target of the filtered column)")
        });
    } else {
        finding = finding.suggest(
            "ANALYZE the tables below this node; correlated columns may need CREATE STATISTICS",
        );
    }
    Some(finding)
}

/// (estimated, actual, loops) per loop when they differ by the options'
/// factor on enough rows to matter.
fn misestimated(node: &PlanNode, ctx: &Ctx) -> Option<(f64, f64, f64)> {
    let (actual, loops) = (node.actual_rows?, node.actual_loops?);
    // Both figures are per loop (per process in a parallel plan), so they
    // compare directly.
    let estimated = node.plan_rows;
    if estimated.max(actual) * loops < MISESTIMATE_MIN_ROWS {
        return None;
    }
    let factor = estimated.max(actual) / estimated.min(actual).max(1.0);
    (factor >= ctx.options.misestimate_factor).then_some((estimated, actual, loops))
}

fn may_stop_early(above: &[&PlanNode]) -> bool {
    above.iter().any(|n| {
        n.node_type == "Limit"
            || n.node_type == "Merge Join"
            || matches!(
                n.join_type.as_deref(),
                Some("Semi" | "Anti" | "Right Semi" | "Right Anti")
            )
            || matches!(
                n.parent_relationship.as_deref(),
                Some("SubPlan" | "InitPlan")
            )
    })
}

fn rows_removed_by_filter(node: &PlanNode, ctx: &Ctx) -> Option<Finding> {
    let filter = node.filter.as_deref()?;
    let removed = node.rows_removed_by_filter? * node.actual_loops?;
    let read = rows_read(node)?;
    if removed < REMOVED_MIN_ROWS || removed < REMOVED_MIN_SHARE * read {
        return None;
    }
    let detail = format!(
        "{} read {} rows and its filter threw away {} of them ({:.1}%), keeping {}.",
        node.describe(),
        read.round(),
        removed.round(),
        removed / read * 100.0,
        (read - removed).round()
    );
    let mut finding = Finding::new(
        Severity::Warning,
        ROWS_REMOVED,
        "Most rows read were removed by a filter",
        detail,
    )
    .at(clip_location(node, "filter", filter));
    match filter_index(node, filter, ctx) {
        Some(IndexHint::New(ddl)) => finding = finding.suggest(ddl),
        Some(IndexHint::Unused(index)) => finding.detail.push_str(&format!(
            " An index leading with the filtered column exists ({index}) but was not used."
        )),
        None => {}
    }
    Some(finding)
}

fn lossy_bitmap(node: &PlanNode) -> Option<Finding> {
    if node.node_type != "Bitmap Heap Scan" {
        return None;
    }
    let lossy = node.lossy_heap_blocks.filter(|&l| l > 0.0)?;
    let pages = lossy + node.exact_heap_blocks.unwrap_or(0.0);
    // Mostly lossy: most pages had every row rechecked.
    let severity = if lossy * 2.0 >= pages {
        Severity::Warning
    } else {
        Severity::Info
    };
    let mut detail = format!(
        "The bitmap outgrew work_mem: for {lossy} of {pages} heap pages it kept only the page, \
         so every row on them was read and rechecked"
    );
    if let Some(rechecked) = node.rows_removed_by_index_recheck {
        detail.push_str(&format!(
            " ({} rows removed by the recheck)",
            (rechecked * node.actual_loops.unwrap_or(1.0)).round()
        ));
    }
    detail.push('.');
    let needed_kb = pages * BITMAP_BYTES_PER_PAGE / 1024.0;
    Some(
        Finding::new(severity, LOSSY_BITMAP, "Bitmap scan went lossy", detail)
            .at(match &node.recheck_cond {
                Some(c) => clip_location(node, "recheck", c),
                None => node.describe(),
            })
            .suggest(format!(
                "SET LOCAL work_mem = '{}' for this statement (an exact bitmap of {pages} pages \
                 needs about {} kB)",
                memory_setting(needed_kb),
                needed_kb.ceil()
            )),
    )
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
