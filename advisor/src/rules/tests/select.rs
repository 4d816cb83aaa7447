use super::*;
use crate::Severity;

#[test]
fn select_star_in_the_outermost_list() {
    let f = one("select_star", "select * from orders where id = 1");
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.location.as_deref(), Some("*"));
    let s = f.suggestion.unwrap();
    assert!(
        s.contains("id, customer_id, total, status, placed_at, note"),
        "{s}"
    );

    // Joined: a warning, and the suggestion qualifies every column.
    let f = one(
        "select_star",
        "select o.*, c.name from orders o join customers c on c.id = o.customer_id",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.location.as_deref(), Some("o.*"));
    assert!(f.suggestion.unwrap().contains("o.id, o.customer_id"));

    // Each member of a top-level UNION is outermost.
    assert_eq!(
        run(
            "select_star",
            "select * from small union all select * from small"
        )
        .len(),
        2
    );
}

#[test]
fn select_star_elsewhere_is_fine() {
    none("select_star", "select id, total from orders");
    none("select_star", "select count(*) from orders");
    none("select_star", "select s.id from (select * from orders) s");
    none(
        "select_star",
        "with o as (select * from orders) select id from o",
    );
    none(
        "select_star",
        "select name from customers c where exists (select * from orders o where o.customer_id = c.id)",
    );
}

#[test]
fn correlated_subquery_in_the_select_list() {
    let f = one(
        "correlated_subquery_in_select",
        "select c.name, (select max(o.total) from orders o where o.customer_id = c.id) \
         from customers c",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.detail.contains("c.id"), "{}", f.detail);
    assert!(f.detail.contains("customers ~50,000 rows"), "{}", f.detail);
    assert!(f.location.unwrap().starts_with("(SELECT max(o.total)"));

    // Unqualified: `email` is not a column of small, it is one of customers.
    let f = one(
        "correlated_subquery_in_select",
        "select email, (select count(*) from small where v = email) from customers",
    );
    assert!(f.detail.contains("customers.email"), "{}", f.detail);

    // Nested in an expression.
    one(
        "correlated_subquery_in_select",
        "select coalesce((select sum(qty) from order_items i where i.order_id = o.id), 0) \
         from orders o where o.id = 1",
    );
}

#[test]
fn uncorrelated_or_elsewhere_subqueries_are_fine() {
    none(
        "correlated_subquery_in_select",
        "select name, (select max(total) from orders) from customers",
    );
    // The subquery's own column, unqualified.
    none(
        "correlated_subquery_in_select",
        "select c.name, (select max(total) from orders where status = 'paid') from customers c",
    );
    // `customer_id` belongs to the nested subquery's orders, not the outer.
    none(
        "correlated_subquery_in_select",
        "select o.id, (select count(*) from small where k in (select customer_id from orders)) \
         from orders o",
    );
    // In WHERE, not the select list.
    none(
        "correlated_subquery_in_select",
        "select name from customers c where (select count(*) from orders o where o.customer_id = c.id) > 2",
    );
}

#[test]
fn distinct_over_a_join() {
    let f = one(
        "distinct_over_join",
        "select distinct c.name from customers c join orders o on o.customer_id = c.id",
    );
    assert_eq!(f.severity, Severity::Info);
    let s = f.suggestion.unwrap();
    assert!(
        s.contains("FROM customers c WHERE EXISTS (SELECT 1 FROM orders o"),
        "{s}"
    );
    one(
        "distinct_over_join",
        "select distinct on (c.id) c.name from customers c, orders o where o.customer_id = c.id",
    );
}

#[test]
fn distinct_alone_or_a_join_alone_is_fine() {
    none("distinct_over_join", "select distinct status from orders");
    none(
        "distinct_over_join",
        "select c.name from customers c join orders o on o.customer_id = c.id",
    );
}

#[test]
fn count_as_an_existence_check() {
    let f = one(
        "count_for_existence",
        "select name from customers c where (select count(*) from orders o where o.customer_id = c.id) > 0",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(
        f.suggestion.as_deref(),
        Some("EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)")
    );
    // Either way round, and `= 0` is NOT EXISTS.
    one(
        "count_for_existence",
        "select name from customers c where 0 < (select count(id) from orders o where o.customer_id = c.id)",
    );
    let f = one(
        "count_for_existence",
        "select name from customers c where (select count(*) from orders o where o.customer_id = c.id) = 0",
    );
    assert!(f.suggestion.unwrap().starts_with("NOT EXISTS (SELECT 1"));
    // A whole query that asks "is there a row".
    // In a DELETE.
    one(
        "count_for_existence",
        "delete from customers c where (select count(*) from orders o where o.customer_id = c.id) = 0",
    );
    let f = one(
        "count_for_existence",
        "select count(*) > 0 from orders where status = 'open'",
    );
    assert_eq!(
        f.suggestion.as_deref(),
        Some("SELECT EXISTS (SELECT 1 FROM orders WHERE status = 'open')")
    );
}

#[test]
fn counts_that_are_counts_are_fine() {
    none(
        "count_for_existence",
        "select name from customers c where (select count(*) from orders o where o.customer_id = c.id) > 5",
    );
    none(
        "count_for_existence",
        "select customer_id from orders group by customer_id having count(*) > 0",
    );
    none(
        "count_for_existence",
        "select count(*) from orders where status = 'open'",
    );
}
