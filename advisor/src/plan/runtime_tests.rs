//! The runtime rules against real `EXPLAIN (ANALYZE, BUFFERS)` output (see
//! `test_support`).

use super::*;
use crate::plan::estimates::SEQ_SCAN_LARGE_TABLE;
use crate::plan::plan_findings;
use crate::plan::test_support::{catalog, fixture, of};
use crate::Options;

fn findings(name: &str) -> Vec<Finding> {
    plan_findings(&fixture(name), &catalog(), &Options::default())
}

#[test]
fn sort_on_disk_suggests_work_mem_or_an_index() {
    let all = findings("disk_sort");
    let found = of(&all, DISK_SORT);
    assert_eq!(found.len(), 1, "{all:#?}");
    let f = found[0];
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.detail.contains("300000 rows by amount DESC"),
        "{}",
        f.detail
    );
    assert!(
        f.detail.contains("6216 kB to disk (external merge)"),
        "{}",
        f.detail
    );
    assert_eq!(
        f.suggestion.as_deref(),
        Some(
            "SET LOCAL work_mem = '16MB' for this statement, or avoid the sort with an index in \
             its order: CREATE INDEX CONCURRENTLY ON public.orders (amount)"
        )
    );
}

#[test]
fn parallel_sort_on_disk_counts_every_process() {
    let all = findings("disk_sort_parallel");
    let f = of(&all, DISK_SORT)[0];
    // Leader 1032 kB, workers 1944 and 816 kB.
    assert!(f.detail.contains("42000 rows"), "{}", f.detail);
    assert!(f.detail.contains("3792 kB"), "{}", f.detail);
    assert!(f.detail.contains("3 processes"), "{}", f.detail);
    assert!(f
        .suggestion
        .as_deref()
        .unwrap()
        .starts_with("SET LOCAL work_mem = '4MB'"));
}

#[test]
fn sort_in_memory_or_not_analyzed_is_no_disk_sort() {
    assert!(of(&findings("memory_sort"), DISK_SORT).is_empty());
    assert!(of(&findings("sort_large"), DISK_SORT).is_empty());
}

#[test]
fn hash_in_batches_suggests_work_mem() {
    let all = findings("hash_batches");
    let found = of(&all, HASH_BATCHES);
    assert_eq!(found.len(), 1, "{all:#?}");
    let f = found[0];
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.detail.contains("50000 rows"), "{}", f.detail);
    assert!(f.detail.contains("32 batches"), "{}", f.detail);
    assert_eq!(
        f.location.as_deref(),
        Some("Hash of Seq Scan on customers c (hash cond: (o.customer_id = c.id))")
    );
    // 101 kB peak × 32 batches.
    assert_eq!(
        f.suggestion.as_deref(),
        Some("SET LOCAL work_mem = '8MB' for this statement (the hash table needs about 3232 kB)")
    );
}

#[test]
fn hash_in_one_batch_is_fine_and_growing_batches_are_explained() {
    assert!(of(&findings("hash_one_batch"), HASH_BATCHES).is_empty());
    let mut plan = fixture("hash_batches");
    plan.root.children[1].original_hash_batches = Some(4.0);
    let all = plan_findings(&plan, &catalog(), &Options::default());
    assert!(of(&all, HASH_BATCHES)[0].detail.contains("expected 4"));
}

#[test]
fn misestimate_is_reported_where_it_starts() {
    let all = findings("misestimate");
    let found = of(&all, MISESTIMATE);
    // The Seq Scan guessed 16 rows per process and got 1500; the Gather
    // above it inherits the error and is not reported again.
    assert_eq!(found.len(), 1, "{all:#?}");
    let f = found[0];
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.title, "Row estimate off by 94×");
    assert!(
        f.detail
            .contains("estimated 16 rows per loop and got 1500 (94× more), over 2 loops"),
        "{}",
        f.detail
    );
    assert_eq!(
        f.location.as_deref(),
        Some("Seq Scan on readings (condition: ((sensor = 7) AND (site = 7)))")
    );
    assert_eq!(
        f.suggestion.as_deref(),
        Some(
            "CREATE STATISTICS readings_sensor_site_stats ON sensor, site FROM public.readings; \
             ANALYZE public.readings"
        )
    );
}

#[test]
fn good_estimates_and_limits_are_no_misestimate() {
    assert!(of(&findings("estimate_ok"), MISESTIMATE).is_empty());
    // The scan expected 293 710 rows and returned 10: the LIMIT stopped it.
    assert!(of(&findings("limit_stops_early"), MISESTIMATE).is_empty());
    // Estimate-only plans have nothing to compare.
    assert!(of(&findings("seq_scan_selective"), MISESTIMATE).is_empty());
}

#[test]
fn misestimate_factor_comes_from_the_options() {
    let lenient = Options {
        misestimate_factor: 200.0,
        ..Options::default()
    };
    let plan = fixture("misestimate");
    assert!(of(&plan_findings(&plan, &catalog(), &lenient), MISESTIMATE).is_empty());
    // At 100×, the scan's 94× passes, and the Gather's 111× (27 estimated,
    // 3000 gathered) is where the error now starts.
    let stricter = Options {
        misestimate_factor: 100.0,
        ..Options::default()
    };
    let found = plan_findings(&plan, &catalog(), &stricter);
    assert_eq!(
        of(&found, MISESTIMATE)[0].location.as_deref(),
        Some("Gather")
    );
}

#[test]
fn filter_throwing_most_rows_away_suggests_an_index() {
    let all = findings("rows_removed");
    let found = of(&all, ROWS_REMOVED);
    assert_eq!(found.len(), 1, "{all:#?}");
    let f = found[0];
    assert_eq!(f.severity, Severity::Warning);
    // 3 processes: 98 000 removed and 2 000 kept each.
    assert!(f.detail.contains("read 300000 rows"), "{}", f.detail);
    assert!(
        f.detail
            .contains("threw away 294000 of them (98.0%), keeping 6000"),
        "{}",
        f.detail
    );
    assert_eq!(
        f.suggestion.as_deref(),
        Some("CREATE INDEX CONCURRENTLY ON public.orders (status)")
    );
    // The measurement replaces the estimate rule's guess about the same scan.
    assert!(of(&all, SEQ_SCAN_LARGE_TABLE).is_empty(), "{all:#?}");
}

#[test]
fn filter_keeping_most_rows_is_fine() {
    assert!(of(&findings("few_rows_removed"), ROWS_REMOVED).is_empty());
    assert!(of(&findings("seq_scan_selective"), ROWS_REMOVED).is_empty());
}

#[test]
fn lossy_bitmap_suggests_work_mem() {
    let all = findings("lossy_bitmap");
    let found = of(&all, LOSSY_BITMAP);
    assert_eq!(found.len(), 1, "{all:#?}");
    let f = found[0];
    // 1045 of 1790 pages lossy: mostly.
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.detail.contains("1045 of 1790 heap pages"), "{}", f.detail);
    assert!(f.detail.contains("removed by the recheck"), "{}", f.detail);
    assert_eq!(
        f.location.as_deref(),
        Some("Bitmap Heap Scan on orders (recheck: (customer_id < 300))")
    );
    assert!(f
        .suggestion
        .as_deref()
        .unwrap()
        .starts_with("SET LOCAL work_mem = '256kB'"));

    let mut plan = fixture("lossy_bitmap");
    let scan = &mut plan.root.children[0];
    scan.exact_heap_blocks = Some(1700.0);
    scan.lossy_heap_blocks = Some(90.0);
    let all = plan_findings(&plan, &catalog(), &Options::default());
    assert_eq!(of(&all, LOSSY_BITMAP)[0].severity, Severity::Info);
}

#[test]
fn exact_bitmap_is_fine() {
    assert!(of(&findings("exact_bitmap"), LOSSY_BITMAP).is_empty());
}
