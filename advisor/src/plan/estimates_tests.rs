//! The estimate rules against real plans (see `test_support`).

use super::*;
use crate::plan::plan_findings;
use crate::plan::test_support::{catalog, catalog_with, fixture, of};
use crate::Options;
use helios_planner::catalog::{Catalog, Index, TableStats};

fn findings(name: &str, catalog: &Catalog) -> Vec<Finding> {
    plan_findings(&fixture(name), catalog, &Options::default())
}

#[test]
fn seq_scan_keeping_few_rows_of_a_large_table_suggests_an_index() {
    let all = findings("seq_scan_selective", &catalog());
    let found = of(&all, SEQ_SCAN_LARGE_TABLE);
    assert_eq!(found.len(), 1, "{all:#?}");
    let f = found[0];
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(
        f.location.as_deref(),
        Some("Seq Scan on orders (filter: (status = 'open'::text))")
    );
    // A parallel scan: 2621 rows per process, ~6290 across the 2.4 of them.
    assert!(f.detail.contains("300000 rows"), "{}", f.detail);
    assert!(f.detail.contains("6290 (2.1%)"), "{}", f.detail);
    assert_eq!(
        f.suggestion.as_deref(),
        Some("CREATE INDEX CONCURRENTLY ON public.orders (status)")
    );
}

#[test]
fn seq_scan_is_fine_when_unselective_small_or_of_unknown_size() {
    assert!(of(
        &findings("seq_scan_unselective", &catalog()),
        SEQ_SCAN_LARGE_TABLE
    )
    .is_empty());
    assert!(of(
        &findings("index_scan_by_id", &catalog()),
        SEQ_SCAN_LARGE_TABLE
    )
    .is_empty());
    let small = Options {
        large_table_rows: 1_000_000.0,
        ..Options::default()
    };
    let plan = fixture("seq_scan_selective");
    assert!(of(
        &plan_findings(&plan, &catalog(), &small),
        SEQ_SCAN_LARGE_TABLE
    )
    .is_empty());
    // Without ANALYZE and without the table in the catalog, its size is
    // unknown.
    assert!(of(
        &findings("seq_scan_selective", &Catalog::default()),
        SEQ_SCAN_LARGE_TABLE
    )
    .is_empty());
}

#[test]
fn seq_scan_despite_an_index_on_the_column_points_at_statistics() {
    let with_index = catalog_with(|t| {
        if t.name == "orders" {
            t.indexes.push(Index {
                name: "orders_status_idx".into(),
                columns: vec![Some("status".into())],
                unique: false,
                primary: false,
                method: "btree".into(),
                partial: false,
                definition: String::new(),
            });
        }
    });
    let all = findings("seq_scan_selective", &with_index);
    let f = of(&all, SEQ_SCAN_LARGE_TABLE)[0];
    assert!(f.detail.contains("orders_status_idx"), "{}", f.detail);
    assert_eq!(f.suggestion.as_deref(), Some("ANALYZE public.orders"));
}

#[test]
fn large_sort_suggests_an_index_in_its_order() {
    let all = findings("sort_large", &catalog());
    let found = of(&all, SORT_WITHOUT_INDEX);
    assert_eq!(found.len(), 1, "{all:#?}");
    // 300 000 rows, no LIMIT: worth knowing, not alarming.
    assert_eq!(found[0].severity, Severity::Info);
    assert_eq!(
        found[0].suggestion.as_deref(),
        Some("CREATE INDEX CONCURRENTLY ON public.orders (amount)")
    );
    assert_eq!(
        found[0].location.as_deref(),
        Some("Sort (sort key: amount DESC)")
    );
}

#[test]
fn large_sort_under_a_limit_is_a_warning() {
    // A parallel top-N sort: 125 000 rows per process, 300 000 in all.
    let all = findings("sort_limit", &catalog());
    let found = of(&all, SORT_WITHOUT_INDEX);
    assert_eq!(found.len(), 1, "{all:#?}");
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(
        found[0].detail.contains("300000 rows"),
        "{}",
        found[0].detail
    );
    assert!(found[0].detail.contains("LIMIT"));
    assert_eq!(
        found[0].suggestion.as_deref(),
        Some("CREATE INDEX CONCURRENTLY ON public.orders (created_at)")
    );
}

#[test]
fn small_or_index_ordered_sorts_are_fine() {
    assert!(of(&findings("sort_small", &catalog()), SORT_WITHOUT_INDEX).is_empty());
    let with_index = catalog_with(|t| {
        if t.name == "orders" {
            t.indexes[0].columns = vec![Some("amount".into())];
        }
    });
    assert!(of(&findings("sort_large", &with_index), SORT_WITHOUT_INDEX).is_empty());
}

#[test]
fn nested_loop_rescanning_its_inner_side_is_a_warning() {
    let all = findings("nested_loop_large", &catalog());
    let found = of(&all, NESTED_LOOP_LARGE_OUTER);
    assert_eq!(found.len(), 1, "{all:#?}");
    let f = found[0];
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.detail.contains("300000 rows from Seq Scan on orders o"),
        "{}",
        f.detail
    );
    assert!(f.detail.contains("Materialize"), "{}", f.detail);
    assert!(f
        .location
        .as_deref()
        .unwrap()
        .starts_with("Nested Loop (join filter: "));
    assert!(
        f.suggestion
            .as_deref()
            .unwrap()
            .contains("CREATE INDEX CONCURRENTLY ON price_bands (lo, hi)"),
        "{:?}",
        f.suggestion
    );
}

#[test]
fn nested_loop_with_index_lookups_inside_is_fine() {
    let all = findings("nested_loop_indexed", &catalog());
    assert!(of(&all, NESTED_LOOP_LARGE_OUTER).is_empty(), "{all:#?}");
    // The same shape with a large outer side is fine too: each inner run is
    // a lookup.
    // ~41 700 outer rows over 2.4 processes, each looking its customer up.
    assert!(of(
        &findings("nested_loop_parallel", &catalog()),
        NESTED_LOOP_LARGE_OUTER
    )
    .is_empty());
    let mut plan = fixture("nested_loop_indexed");
    plan.root.children[0].plan_rows = 50_000.0;
    assert!(of(
        &plan_findings(&plan, &catalog(), &Options::default()),
        NESTED_LOOP_LARGE_OUTER
    )
    .is_empty());
}

#[test]
fn never_analyzed_or_much_changed_tables_are_stale() {
    let never = catalog_with(|t| {
        if t.name == "orders" {
            t.stats.as_mut().unwrap().seconds_since_analyze = None;
        }
    });
    let all = findings("seq_scan_selective", &never);
    let found = of(&all, STALE_STATISTICS);
    assert_eq!(found.len(), 1, "{all:#?}");
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(found[0].detail.contains("never been analyzed"));
    assert_eq!(found[0].location.as_deref(), Some("table public.orders"));
    assert_eq!(
        found[0].suggestion.as_deref(),
        Some("ANALYZE public.orders")
    );

    let changed = catalog_with(|t| {
        if t.name == "customers" {
            let s = t.stats.as_mut().unwrap();
            s.modified_since_analyze = 12_000.0;
            s.seconds_since_analyze = Some(7_200.0);
        }
    });
    let all = findings("hash_batches", &changed);
    let found = of(&all, STALE_STATISTICS);
    assert_eq!(found.len(), 1, "{all:#?}");
    assert!(
        found[0]
            .detail
            .contains("12000 of public.customers's ~50000 live rows (24%)"),
        "{}",
        found[0].detail
    );
    assert!(found[0].detail.contains("2.0 hours"));
}

#[test]
fn fresh_small_or_unread_tables_are_not_stale() {
    assert!(of(&findings("hash_batches", &catalog()), STALE_STATISTICS).is_empty());
    let odd = catalog_with(|t| match t.name.as_str() {
        // Small: 40 rows changed on a 20-row table is not worth a word.
        "price_bands" => {
            t.stats = Some(TableStats {
                live_rows: 20.0,
                modified_since_analyze: 40.0,
                ..TableStats::default()
            })
        }
        // Stale, but the plan does not read it.
        "readings" => t.stats.as_mut().unwrap().seconds_since_analyze = None,
        // Changed, but less than autovacuum's 10%.
        _ => t.stats.as_mut().unwrap().modified_since_analyze = 2_000.0,
    });
    assert!(of(&findings("nested_loop_large", &odd), STALE_STATISTICS).is_empty());
}
