//! `EXPLAIN (FORMAT JSON)` text into a [`Plan`].
//!
//! PostgreSQL prints a key only when it applies (no "Actual Rows" without
//! ANALYZE, no "Schema" without VERBOSE, no "Filter" on a node without
//! one), so every optional figure is an `Option` and a missing key is never
//! an error. Only the shape is checked: a plan must have a "Plan" object
//! and each node a "Node Type".

use serde_json::{Map, Value};

use super::{Plan, PlanNode, WorkerFigures};

/// Read the text of an `EXPLAIN (FORMAT JSON)` answer: the usual one-element
/// array, or the bare object inside it (some drivers unwrap it).
pub fn parse_explain(json: &str) -> Result<Plan, String> {
    let value: Value = serde_json::from_str(json.trim())
        .map_err(|e| format!("EXPLAIN output is not JSON: {e}"))?;
    let top = match &value {
        Value::Array(items) => match items.as_slice() {
            [one] => one,
            [] => return Err("EXPLAIN output is an empty array".into()),
            _ => {
                return Err(format!(
                    "EXPLAIN output has {} plans, expected one",
                    items.len()
                ))
            }
        },
        other => other,
    };
    let top = top
        .as_object()
        .ok_or("EXPLAIN output is not an object with a \"Plan\"")?;
    let root = top
        .get("Plan")
        .ok_or("EXPLAIN output has no \"Plan\" (was it FORMAT JSON?)")?;
    Ok(Plan {
        root: node(root)?,
        planning_time: num(top, "Planning Time"),
        execution_time: num(top, "Execution Time"),
    })
}

// The recursion below cannot overflow the stack: serde_json refuses
// input nested deeper than 128 levels, that is about 60 plan levels (each
// node is an object inside a "Plans" array). A deeper plan (a join of some
// 60 tables) fails to parse with serde_json's "recursion limit exceeded".
fn node(value: &Value) -> Result<PlanNode, String> {
    let o = value.as_object().ok_or("a plan node is not an object")?;
    let node_type = text(o, "Node Type").ok_or("a plan node has no \"Node Type\"")?;
    let children = match o.get("Plans") {
        Some(Value::Array(plans)) => plans.iter().map(node).collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok(PlanNode {
        node_type,
        parent_relationship: text(o, "Parent Relationship"),
        subplan_name: text(o, "Subplan Name"),
        relation: text(o, "Relation Name"),
        schema: text(o, "Schema"),
        alias: text(o, "Alias"),
        index_name: text(o, "Index Name"),
        cte_name: text(o, "CTE Name"),
        join_type: text(o, "Join Type"),
        strategy: text(o, "Strategy"),
        parallel_aware: o.get("Parallel Aware").and_then(Value::as_bool) == Some(true),
        workers_planned: num(o, "Workers Planned"),
        workers_launched: num(o, "Workers Launched"),

        startup_cost: num(o, "Startup Cost").unwrap_or(0.0),
        total_cost: num(o, "Total Cost").unwrap_or(0.0),
        plan_rows: num(o, "Plan Rows").unwrap_or(0.0),
        plan_width: num(o, "Plan Width").unwrap_or(0.0),

        index_cond: text(o, "Index Cond"),
        recheck_cond: text(o, "Recheck Cond"),
        filter: text(o, "Filter"),
        join_filter: text(o, "Join Filter"),
        hash_cond: text(o, "Hash Cond"),
        merge_cond: text(o, "Merge Cond"),
        sort_key: texts(o, "Sort Key"),

        actual_startup_time: num(o, "Actual Startup Time"),
        actual_total_time: num(o, "Actual Total Time"),
        actual_rows: num(o, "Actual Rows"),
        actual_loops: num(o, "Actual Loops"),
        rows_removed_by_filter: num(o, "Rows Removed by Filter"),
        rows_removed_by_join_filter: num(o, "Rows Removed by Join Filter"),
        rows_removed_by_index_recheck: num(o, "Rows Removed by Index Recheck"),

        sort_method: text(o, "Sort Method"),
        sort_space_type: text(o, "Sort Space Type"),
        sort_space_used: num(o, "Sort Space Used"),
        hash_batches: num(o, "Hash Batches"),
        original_hash_batches: num(o, "Original Hash Batches"),
        peak_memory_usage: num(o, "Peak Memory Usage"),
        exact_heap_blocks: num(o, "Exact Heap Blocks"),
        lossy_heap_blocks: num(o, "Lossy Heap Blocks"),

        shared_hit_blocks: num(o, "Shared Hit Blocks"),
        shared_read_blocks: num(o, "Shared Read Blocks"),
        temp_read_blocks: num(o, "Temp Read Blocks"),
        temp_written_blocks: num(o, "Temp Written Blocks"),

        workers: workers(o),
        children,
    })
}

/// Per-worker figures of a parallel node. Without VERBOSE, PostgreSQL lists
/// workers only where their figures differ in kind from the leader's (sort
/// methods), so this is often empty.
fn workers(o: &Map<String, Value>) -> Vec<WorkerFigures> {
    let Some(Value::Array(ws)) = o.get("Workers") else {
        return Vec::new();
    };
    ws.iter()
        .filter_map(Value::as_object)
        .map(|w| WorkerFigures {
            worker_number: num(w, "Worker Number"),
            actual_rows: num(w, "Actual Rows"),
            actual_loops: num(w, "Actual Loops"),
            sort_method: text(w, "Sort Method"),
            sort_space_type: text(w, "Sort Space Type"),
            sort_space_used: num(w, "Sort Space Used"),
        })
        .collect()
}

fn text(o: &Map<String, Value>, key: &str) -> Option<String> {
    o.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Figures are integers in some versions and decimals in others (PostgreSQL
/// 18 prints fractional "Actual Rows"), so all are read as `f64`.
fn num(o: &Map<String, Value>, key: &str) -> Option<f64> {
    o.get(key).and_then(Value::as_f64)
}

/// "Sort Key" and friends: a list of expressions.
fn texts(o: &Map<String, Value>, key: &str) -> Vec<String> {
    match o.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORT_LARGE: &str = include_str!("fixtures/sort_large.json");
    const DISK_SORT_PARALLEL: &str = include_str!("fixtures/disk_sort_parallel.json");
    const VERBOSE_SUBPLANS: &str = include_str!("fixtures/verbose_subplans.json");
    const HASH_BATCHES: &str = include_str!("fixtures/hash_batches.json");

    #[test]
    fn reads_an_estimated_plan() {
        let plan = parse_explain(SORT_LARGE).unwrap();
        assert_eq!(plan.root.node_type, "Sort");
        assert_eq!(plan.root.sort_key, vec!["amount DESC".to_string()]);
        assert_eq!(plan.total_cost(), 40049.40);
        assert_eq!(plan.root.plan_rows, 300000.0);
        assert!(plan.planning_time.is_none() && !plan.analyzed());
        let scan = &plan.root.children[0];
        assert_eq!(scan.node_type, "Seq Scan");
        assert_eq!(scan.relation.as_deref(), Some("orders"));
        assert_eq!(scan.parent_relationship.as_deref(), Some("Outer"));
        assert_eq!(scan.schema, None, "no Schema without VERBOSE");
        assert!(scan.actual_rows.is_none());
    }

    #[test]
    fn reads_analyze_figures_and_the_workers_of_a_parallel_sort() {
        let plan = parse_explain(DISK_SORT_PARALLEL).unwrap();
        assert!(plan.analyzed());
        assert!(plan.execution_time.unwrap() > 0.0);
        assert_eq!(plan.root.node_type, "Gather Merge");
        assert_eq!(plan.root.workers_planned, Some(2.0));
        let sort = &plan.root.children[0];
        assert_eq!(sort.sort_space_type.as_deref(), Some("Disk"));
        assert_eq!(sort.workers.len(), 2);
        assert!(sort
            .workers
            .iter()
            .all(|w| w.sort_method.as_deref() == Some("external merge")));
        let scan = &sort.children[0];
        assert!(scan.parallel_aware);
        assert_eq!(scan.actual_loops, Some(3.0));
        assert!(scan.rows_removed_by_filter.unwrap() > 0.0);
        assert!(scan.shared_hit_blocks.unwrap() > 0.0);
    }

    #[test]
    fn reads_hash_figures() {
        let plan = parse_explain(HASH_BATCHES).unwrap();
        let hash = plan.root.walk().find(|n| n.node_type == "Hash").unwrap();
        assert_eq!(hash.hash_batches, Some(32.0));
        assert_eq!(hash.original_hash_batches, Some(32.0));
        assert_eq!(plan.root.join_type.as_deref(), Some("Inner"));
        assert!(plan
            .root
            .hash_cond
            .as_deref()
            .unwrap()
            .contains("customer_id"));
    }

    #[test]
    fn reads_subplans_ctes_and_schemas() {
        let plan = parse_explain(VERBOSE_SUBPLANS).unwrap();
        let names: Vec<_> = plan
            .root
            .walk()
            .filter_map(|n| n.subplan_name.as_deref())
            .collect();
        assert!(names.contains(&"CTE big"), "{names:?}");
        assert!(names.contains(&"SubPlan 2"), "{names:?}");
        assert!(plan
            .root
            .walk()
            .any(|n| n.cte_name.as_deref() == Some("big")));
        assert_eq!(
            plan.root.relations(),
            vec![(Some("public"), "orders"), (Some("public"), "customers")]
        );
        // InitPlans come first among the children: the join's own inputs
        // are the ones marked Outer and Inner.
        assert_eq!(
            plan.root.children[0].parent_relationship.as_deref(),
            Some("InitPlan")
        );
        assert_eq!(plan.root.outer().unwrap().node_type, "CTE Scan");
        assert_eq!(plan.root.inner().unwrap().node_type, "Hash");
    }

    #[test]
    fn walks_depth_first_in_order() {
        let plan = parse_explain(HASH_BATCHES).unwrap();
        let order: Vec<_> = plan.root.walk().map(|n| n.node_type.as_str()).collect();
        assert_eq!(order, ["Hash Join", "Seq Scan", "Hash", "Seq Scan"]);
    }

    #[test]
    fn accepts_the_bare_object_and_rejects_what_is_not_a_plan() {
        let inner = serde_json::from_str::<Value>(SORT_LARGE).unwrap()[0].to_string();
        assert_eq!(
            parse_explain(&inner).unwrap(),
            parse_explain(SORT_LARGE).unwrap()
        );
        assert!(parse_explain("Seq Scan on t")
            .unwrap_err()
            .contains("not JSON"));
        assert!(parse_explain("[]").unwrap_err().contains("empty"));
        assert!(parse_explain(r#"[{"Query": 1}]"#)
            .unwrap_err()
            .contains("no \"Plan\""));
        assert!(parse_explain(r#"[{"Plan": {"Plans": []}}]"#)
            .unwrap_err()
            .contains("Node Type"));
        let nested = |levels: usize| {
            format!(
                "{{\"Plan\": {}{{\"Node Type\": \"Result\"}}{}}}",
                "{\"Node Type\": \"Result\", \"Plans\": [".repeat(levels),
                "]}".repeat(levels)
            )
        };
        assert_eq!(parse_explain(&nested(60)).unwrap().root.walk().count(), 61);
        let err = parse_explain(&nested(10_000)).unwrap_err();
        assert!(err.contains("recursion limit"), "{err}");
    }
}
