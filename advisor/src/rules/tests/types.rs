use super::*;
use crate::Severity;

fn severity(sql: &str) -> Severity {
    one("literal_type_mismatch", sql).severity
}

#[test]
fn a_non_integer_literal_casts_an_integer_column() {
    let f = one(
        "literal_type_mismatch",
        "select note from orders where id = 1.5",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.title.contains("orders.id (bigint)"), "{}", f.title);
    assert!(
        f.detail.contains("casts the bigint column to numeric"),
        "{}",
        f.detail
    );
    assert!(f.detail.contains("orders_pkey"), "{}", f.detail);
    assert_eq!(f.location.as_deref(), Some("id = 1.5"));
    // A typed literal of a wider numeric type.
    assert_eq!(
        severity("select id from orders where customer_id = 5::numeric"),
        Severity::Warning
    );
}

#[test]
fn mismatches_that_fail_in_postgresql() {
    let f = one(
        "literal_type_mismatch",
        "select id from orders where status = 42",
    );
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.detail.contains("operator does not exist"));
    assert_eq!(
        f.suggestion.as_deref(),
        Some("Use a literal of type text, e.g. quoted: status = '42'.")
    );
    for sql in [
        "select id from customers where created_at = 20240101",
        "select id from customers where ref = 1",
        "select id from customers where active = 1",
        "select id from orders where status in ('a', 2)",
        "select id from orders where customer_id = 'abc'",
        "select id from orders where customer_id = '4.5'",
        "select id from orders where customer_id = '42'::text",
        "select id from customers c where c.city between 1 and 5",
    ] {
        assert_eq!(severity(sql), Severity::Critical, "{sql}");
    }
}

#[test]
fn a_quoted_number_is_info() {
    let f = one(
        "literal_type_mismatch",
        "select id from orders o where o.customer_id = '42'",
    );
    assert_eq!(f.severity, Severity::Info);
    assert!(f.detail.contains("index stays usable"), "{}", f.detail);
    assert_eq!(
        severity("select id from orders where total > '10.50'"),
        Severity::Info
    );
}

#[test]
fn matching_literals_are_fine() {
    for sql in [
        "select id from orders where customer_id = 42",
        "select id from orders where customer_id = -42",
        "select id from orders where total = 10.5",
        "select id from orders where status = 'paid'",
        "select id from orders where placed_at >= '2024-01-01'",
        "select id from customers where created_at >= DATE '2024-01-01'",
        "select id from customers where active = true",
        "select id from orders where customer_id = $1",
        "select id from orders where customer_id in (1, 2, 3)",
        "select id from events where payload = '{}'",
        // Unknown column: silent.
        "select id from orders where nope = 42",
    ] {
        none("literal_type_mismatch", sql);
    }
}

#[test]
fn a_cte_body_sees_the_table_its_cte_shadows() {
    // Inside the body, `orders` is still the table (a plain WITH sees only
    // the CTEs declared before it); outside, it is the CTE.
    let f = one(
        "literal_type_mismatch",
        "with orders as (select id, status from orders where status = 42) \
         select id from orders where status = 43",
    );
    assert_eq!(f.location.as_deref(), Some("status = 42"));
    // WITH RECURSIVE: the body sees the CTE itself.
    none(
        "literal_type_mismatch",
        "with recursive orders as (select 1 as id, 'x' as status union all \
         select id + 1, status from orders where status = 42) select id from orders",
    );
}
