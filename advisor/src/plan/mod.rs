//! The upstream's plan: `EXPLAIN (FORMAT JSON)` read into a [`Plan`] tree,
//! and the rules over it.
//!
//! - [`parse_explain`] reads the JSON (with or without ANALYZE/BUFFERS).
//! - [`plan_findings`] runs the rules: those in `estimates` need only the
//!   planner's estimates; those in `runtime` need `EXPLAIN ANALYZE` figures
//!   and stay silent without them.
//!
//! A note on figures, because the rules depend on it: PostgreSQL prints
//! "Plan Rows" and "Actual Rows" *per loop* (per execution of the node, and
//! per process in a parallel plan), and "Actual Loops" for how many times
//! the node ran. Totals are per-loop figures times loops.

mod columns;
mod estimates;
mod parse;
mod runtime;

use helios_planner::catalog::{Catalog, Table};

use crate::{Finding, Options};

pub use parse::parse_explain;

/// A parsed `EXPLAIN (FORMAT JSON)` answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub root: PlanNode,
    /// With ANALYZE: milliseconds.
    pub planning_time: Option<f64>,
    pub execution_time: Option<f64>,
}

impl Plan {
    /// The planner's estimated cost of the whole statement.
    pub fn total_cost(&self) -> f64 {
        self.root.total_cost
    }

    /// It came from `EXPLAIN ANALYZE` (actual figures are present).
    pub fn analyzed(&self) -> bool {
        self.root.walk().any(|n| n.actual_loops.is_some())
    }
}

/// One node of a plan. Field names follow EXPLAIN's keys ("Plan Rows" is
/// `plan_rows`); a key EXPLAIN did not print is `None` (or empty).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanNode {
    pub node_type: String,
    /// How this node feeds its parent: "Outer", "Inner", "InitPlan",
    /// "SubPlan", "Member" (of an Append), "Subquery".
    pub parent_relationship: Option<String>,
    /// "SubPlan 1", "InitPlan 2 (returns $1)", "CTE name".
    pub subplan_name: Option<String>,
    pub relation: Option<String>,
    /// Printed only with VERBOSE: resolve `relation` through the search_path
    /// when absent.
    pub schema: Option<String>,
    pub alias: Option<String>,
    pub index_name: Option<String>,
    pub cte_name: Option<String>,
    /// Joins: "Inner", "Left", "Full", "Right", "Semi", "Anti".
    pub join_type: Option<String>,
    /// Aggregates: "Plain", "Sorted", "Hashed", "Mixed".
    pub strategy: Option<String>,
    /// Runs in several processes at once, each on its share of the rows.
    pub parallel_aware: bool,
    /// Gather and Gather Merge.
    pub workers_planned: Option<f64>,
    pub workers_launched: Option<f64>,

    pub startup_cost: f64,
    pub total_cost: f64,
    /// Estimated rows per loop (per process for a parallel-aware node).
    pub plan_rows: f64,
    /// Estimated bytes per row.
    pub plan_width: f64,

    pub index_cond: Option<String>,
    pub recheck_cond: Option<String>,
    pub filter: Option<String>,
    pub join_filter: Option<String>,
    pub hash_cond: Option<String>,
    pub merge_cond: Option<String>,
    pub sort_key: Vec<String>,

    /// With ANALYZE: milliseconds per loop.
    pub actual_startup_time: Option<f64>,
    pub actual_total_time: Option<f64>,
    /// With ANALYZE: rows per loop (averaged); times `actual_loops` for the
    /// total.
    pub actual_rows: Option<f64>,
    pub actual_loops: Option<f64>,
    /// Per loop, like `actual_rows`.
    pub rows_removed_by_filter: Option<f64>,
    pub rows_removed_by_join_filter: Option<f64>,
    pub rows_removed_by_index_recheck: Option<f64>,

    /// "quicksort", "top-N heapsort", "external merge", "external sort".
    pub sort_method: Option<String>,
    /// "Memory" or "Disk".
    pub sort_space_type: Option<String>,
    /// kB.
    pub sort_space_used: Option<f64>,
    pub hash_batches: Option<f64>,
    pub original_hash_batches: Option<f64>,
    /// kB.
    pub peak_memory_usage: Option<f64>,
    /// Bitmap Heap Scan: pages whose matching rows the bitmap remembered,
    /// and pages it only remembered as "somewhere here" (every row
    /// rechecked) because the bitmap outgrew work_mem.
    pub exact_heap_blocks: Option<f64>,
    pub lossy_heap_blocks: Option<f64>,

    /// With BUFFERS: 8 kB blocks.
    pub shared_hit_blocks: Option<f64>,
    pub shared_read_blocks: Option<f64>,
    pub temp_read_blocks: Option<f64>,
    pub temp_written_blocks: Option<f64>,

    /// Parallel workers' own figures, where EXPLAIN lists them.
    pub workers: Vec<WorkerFigures>,
    /// In EXPLAIN's order: InitPlans first, then the node's inputs, then
    /// SubPlans. Use [`PlanNode::outer`] and [`PlanNode::inner`] for the
    /// inputs of a join.
    pub children: Vec<PlanNode>,
}

/// What one parallel worker reported for a node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkerFigures {
    pub worker_number: Option<f64>,
    pub actual_rows: Option<f64>,
    pub actual_loops: Option<f64>,
    pub sort_method: Option<String>,
    pub sort_space_type: Option<String>,
    pub sort_space_used: Option<f64>,
}

impl PlanNode {
    /// This node and every node below it, depth first, parents before
    /// children, children in EXPLAIN's order.
    pub fn walk(&self) -> Walk<'_> {
        Walk { stack: vec![self] }
    }

    /// The relations scanned in this subtree, each once, in plan order:
    /// (schema, name). The schema is `None` unless EXPLAIN ran with VERBOSE;
    /// [`Catalog::resolve`] finds the table either way.
    pub fn relations(&self) -> Vec<(Option<&str>, &str)> {
        let mut out: Vec<(Option<&str>, &str)> = Vec::new();
        for n in self.walk() {
            if let Some(rel) = n.relation.as_deref() {
                let pair = (n.schema.as_deref(), rel);
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        }
        out
    }

    /// The outer (first) input of a join or the only input of most nodes.
    pub fn outer(&self) -> Option<&PlanNode> {
        self.input("Outer")
    }

    /// The inner (second) input of a join.
    pub fn inner(&self) -> Option<&PlanNode> {
        self.input("Inner")
    }

    fn input(&self, relationship: &str) -> Option<&PlanNode> {
        self.children
            .iter()
            .find(|c| c.parent_relationship.as_deref() == Some(relationship))
    }

    /// Rows it returned over all its loops (with ANALYZE).
    pub fn actual_total_rows(&self) -> Option<f64> {
        Some(self.actual_rows? * self.actual_loops?)
    }

    /// A short description as EXPLAIN's text format heads the node:
    /// "Index Scan using orders_pkey on public.orders o".
    pub fn describe(&self) -> String {
        let mut s = self.node_type.clone();
        if let Some(index) = &self.index_name {
            s.push_str(&format!(" using {index}"));
        }
        let target = match (&self.relation, &self.cte_name) {
            (Some(rel), _) => Some(match &self.schema {
                Some(schema) => format!("{schema}.{rel}"),
                None => rel.clone(),
            }),
            (None, Some(cte)) => Some(cte.clone()),
            _ => None,
        };
        if let Some(target) = target {
            s.push_str(&format!(" on {target}"));
            let own = self.relation.as_ref().or(self.cte_name.as_ref());
            if let Some(alias) = self.alias.as_ref().filter(|a| Some(*a) != own) {
                s.push_str(&format!(" {alias}"));
            }
        }
        s
    }
}

/// The iterator of [`PlanNode::walk`].
pub struct Walk<'a> {
    stack: Vec<&'a PlanNode>,
}

impl<'a> Iterator for Walk<'a> {
    type Item = &'a PlanNode;

    fn next(&mut self) -> Option<&'a PlanNode> {
        let node = self.stack.pop()?;
        self.stack.extend(node.children.iter().rev());
        Some(node)
    }
}

/// The plan rules, in plan order (root first), then the statistics of the
/// tables the plan reads.
pub fn plan_findings(plan: &Plan, catalog: &Catalog, options: &Options) -> Vec<Finding> {
    let ctx = Ctx { catalog, options };
    let mut out = Vec::new();
    let mut above = Vec::new();
    visit(&plan.root, &mut above, &mut |node, above| {
        let measured = runtime::node_findings(node, above, &ctx);
        // What ANALYZE measured about a node says what the estimate rules
        // guessed about it, with real numbers: keep only the measurement.
        let superseded = |rule: &str| match rule {
            estimates::SEQ_SCAN_LARGE_TABLE => runtime::ROWS_REMOVED,
            estimates::SORT_WITHOUT_INDEX => runtime::DISK_SORT,
            _ => "",
        };
        let guesses = estimates::node_findings(node, above, &ctx);
        out.extend(
            guesses
                .into_iter()
                .filter(|g| !measured.iter().any(|m| m.rule == superseded(g.rule))),
        );
        out.extend(measured);
    });
    out.extend(estimates::stale_statistics(&plan.root, &ctx));
    out
}

/// What every rule gets besides the node.
pub(crate) struct Ctx<'a> {
    pub catalog: &'a Catalog,
    pub options: &'a Options,
}

impl Ctx<'_> {
    /// The catalog's entry for the relation a node scans.
    pub fn table(&self, node: &PlanNode) -> Option<&Table> {
        let rel = node.relation.as_deref()?;
        self.catalog.resolve(node.schema.as_deref(), rel)
    }
}

/// Call `f` on every node with the chain of nodes above it (the root first,
/// the parent last): some rules depend on where a node sits, such as under
/// a Limit that stops it early, or under the Gather that splits its rows.
fn visit<'a>(
    node: &'a PlanNode,
    above: &mut Vec<&'a PlanNode>,
    f: &mut impl FnMut(&'a PlanNode, &[&'a PlanNode]),
) {
    f(node, above);
    above.push(node);
    for child in &node.children {
        visit(child, above, f);
    }
    above.pop();
}

/// A finding's location: the node, and the condition that matters, cut
/// short (conditions can run to pages).
pub(crate) fn clip_location(node: &PlanNode, label: &str, text: &str) -> String {
    format!(
        "{} ({label}: {})",
        node.describe(),
        columns::clip(text, 160)
    )
}

/// How many processes share a node's rows below a Gather, as the planner
/// counts them (`get_parallel_divisor`): each worker, plus the leader's
/// part-time help, which shrinks by 30% of a process per worker it has to
/// tend. "Plan Rows" of such a node is its total divided by this.
pub(crate) fn parallel_divisor(node: &PlanNode, above: &[&PlanNode]) -> f64 {
    if !is_partial(node) {
        return 1.0;
    }
    let gather = above
        .iter()
        .rev()
        .find(|n| n.node_type == "Gather" || n.node_type == "Gather Merge");
    let workers = gather.and_then(|g| g.workers_planned).unwrap_or(0.0);
    let leader = (1.0 - 0.3 * workers).max(0.0);
    (workers + leader).max(1.0)
}

/// The node works on a share of the rows, one share per process: a
/// parallel-aware scan, and whatever consumes it on its way up to the
/// Gather. (The inner side of a join under a Gather is usually not: each
/// process builds the whole hash table, say.)
fn is_partial(node: &PlanNode) -> bool {
    if node.node_type.starts_with("Gather") {
        return false;
    }
    node.parallel_aware || node.outer().is_some_and(is_partial)
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{catalog, fixture, FIXTURES};
    use super::*;

    #[test]
    fn each_fixture_sets_off_exactly_its_rules() {
        let expected: &[(&str, &[&str])] = &[
            ("seq_scan_selective", &["seq_scan_large_table"]),
            ("seq_scan_unselective", &[]),
            ("index_scan_by_id", &[]),
            ("sort_large", &["sort_without_index"]),
            ("sort_small", &[]),
            ("sort_limit", &["sort_without_index"]),
            ("nested_loop_large", &["nested_loop_large_outer"]),
            ("nested_loop_indexed", &[]),
            ("nested_loop_parallel", &[]),
            ("disk_sort", &["disk_sort"]),
            ("memory_sort", &[]),
            ("hash_batches", &["hash_batches"]),
            ("hash_one_batch", &[]),
            ("misestimate", &["misestimate", "rows_removed_by_filter"]),
            ("estimate_ok", &["rows_removed_by_filter"]),
            ("rows_removed", &["rows_removed_by_filter"]),
            ("few_rows_removed", &[]),
            ("limit_stops_early", &[]),
            ("lossy_bitmap", &["lossy_bitmap"]),
            ("exact_bitmap", &[]),
        ];
        for (name, rules) in expected {
            let found = plan_findings(&fixture(name), &catalog(), &Options::default());
            let ids: Vec<&str> = found.iter().map(|f| f.rule).collect();
            assert_eq!(&ids, rules, "{name}: {found:#?}");
        }
        // The rest at least parse and run.
        for (name, _, _) in FIXTURES {
            plan_findings(&fixture(name), &catalog(), &Options::default());
        }
    }

    #[test]
    fn describes_nodes_as_explain_heads_them() {
        let plan = fixture("verbose_subplans");
        let described: Vec<String> = plan.root.walk().map(PlanNode::describe).collect();
        assert!(
            described.contains(&"CTE Scan on big".to_string()),
            "{described:?}"
        );
        assert!(
            described.contains(&"Seq Scan on public.customers c".to_string()),
            "{described:?}"
        );
        assert!(
            described
                .contains(&"Index Scan using orders_customer_id_idx on public.orders".to_string()),
            "{described:?}"
        );
    }

    #[test]
    fn parallel_rows_are_per_process() {
        let plan = fixture("seq_scan_selective");
        let gather = &plan.root;
        let scan = &gather.children[0];
        // 2 workers and a leader helping 40% of its time.
        assert!((parallel_divisor(scan, &[gather]) - 2.4).abs() < 1e-9);
        assert_eq!(parallel_divisor(gather, &[]), 1.0);
        // The inner side of a join under a Gather is built whole by every
        // process: its rows are not divided.
        let mut inner = scan.clone();
        inner.parallel_aware = false;
        assert_eq!(parallel_divisor(&inner, &[gather]), 1.0);
    }

    #[test]
    fn total_cost_and_relations() {
        let plan = fixture("nested_loop_large");
        assert_eq!(plan.total_cost(), plan.root.total_cost);
        assert!(plan.total_cost() > 0.0);
        assert_eq!(
            plan.root.relations(),
            vec![(None, "orders"), (None, "price_bands")]
        );
    }
}
