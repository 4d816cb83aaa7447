use super::*;
use crate::Severity;

#[test]
fn large_offset_fires() {
    let f = one(
        "large_offset",
        "select id from orders where status = 'x' order by placed_at desc, id desc limit 50 offset 5000",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.location.as_deref(), Some("OFFSET 5000"));
    assert!(f.detail.contains("5,000 rows"));
    let s = f.suggestion.unwrap();
    assert!(s.contains("WHERE (placed_at, id) < ($1, $2)"), "{s}");
    one(
        "large_offset",
        "select id from orders where status = 'x' offset 1000",
    );
}

#[test]
fn small_offset_is_fine() {
    none(
        "large_offset",
        "select id from orders where status = 'x' order by id limit 50 offset 100",
    );
    none(
        "large_offset",
        "select id from orders where status = 'x' offset $1",
    );
}

#[test]
fn order_by_random_fires() {
    let f = one(
        "order_by_random",
        "select id from orders where status = 'x' order by random() limit 5",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.location.as_deref(), Some("ORDER BY random()"));
    assert!(f.detail.contains("orders ~2,000,000 rows"));
    assert!(f.suggestion.unwrap().contains("TABLESAMPLE SYSTEM"));
}

#[test]
fn other_orders_are_fine() {
    none(
        "order_by_random",
        "select id from orders order by id limit 5",
    );
    none("order_by_random", "select random() from orders order by id");
}

#[test]
fn limit_without_order_fires() {
    let f = one(
        "limit_without_order",
        "select id from orders where status = 'x' limit 10",
    );
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.location.as_deref(), Some("LIMIT 10"));
    assert_eq!(
        f.suggestion.as_deref(),
        Some("Add ORDER BY id before LIMIT 10.")
    );
    one(
        "limit_without_order",
        "select id from orders fetch first 5 rows only",
    );
    // In a subquery too.
    one(
        "limit_without_order",
        "select * from (select id from orders limit 10) s order by id",
    );
}

#[test]
fn ordered_or_existence_limits_are_fine() {
    none(
        "limit_without_order",
        "select id from orders order by id limit 10",
    );
    none(
        "limit_without_order",
        "select name from customers c where exists (select 1 from orders o where o.customer_id = c.id limit 1)",
    );
    none("limit_without_order", "select count(*) from orders limit 1");
    none("limit_without_order", "select * from orders limit 0");
    none("limit_without_order", "select id from orders limit all");
}

#[test]
fn unfiltered_scan_of_a_large_table() {
    let f = one("unfiltered_large_scan", "select id, total from orders");
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.detail.contains("orders (~2,000,000 rows)"),
        "{}",
        f.detail
    );
    assert_eq!(f.location.as_deref(), Some("orders"));
    // Never analyzed: the live rows from the statistics count.
    let f = one("unfiltered_large_scan", "select count(*) from events");
    assert!(f.detail.contains("events (~300,000 rows)"), "{}", f.detail);
    // A join with no WHERE reads the large side in full.
    let f = one(
        "unfiltered_large_scan",
        "select c.name, o.total from customers c join orders o on o.customer_id = c.id",
    );
    assert_eq!(f.location.as_deref(), Some("orders o"));
    // Writes.
    let f = one("unfiltered_large_scan", "delete from orders");
    assert!(f.suggestion.unwrap().contains("TRUNCATE orders"));
    let f = one("unfiltered_large_scan", "update orders set note = ''");
    assert!(f.title.starts_with("UPDATE of every row"));
    // Under a CTE.
    one(
        "unfiltered_large_scan",
        "with t as (select 1) select id from orders",
    );
}

#[test]
fn filtered_limited_or_small_scans_are_fine() {
    for sql in [
        "select id from orders where status = 'x'",
        "select id from orders order by id limit 10",
        "select * from small",
        "select max(id) from orders",
        "delete from orders where id = 1",
        // Probed by the outer query, not produced.
        "select * from small where k in (select customer_id from orders)",
        // A CTE named like a large table shadows it.
        "with orders as (select 1 as x) select * from orders",
        // PostgreSQL pushes the outer filter into subqueries and CTEs.
        "select * from (select * from orders) s where s.id = 1",
        "with o as (select * from orders) select * from o where id = 1",
    ] {
        none("unfiltered_large_scan", sql);
    }
}
