use super::*;
use crate::Severity;

#[test]
fn comma_join_without_a_predicate_is_critical() {
    let f = one(
        "cartesian_product",
        "select o.id, c.name from orders o, customers c where o.status = 'x'",
    );
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.location.as_deref(), Some("FROM orders o, customers c"));
    assert!(
        f.detail
            .contains("2,000,000 × 50,000 = 100,000,000,000 row pairs"),
        "{}",
        f.detail
    );
    assert_eq!(
        f.suggestion.as_deref(),
        Some("Add the join condition (from the foreign keys): o.customer_id = c.id")
    );
    // Three relations, the third left out.
    let f = one(
        "cartesian_product",
        "select 1 from orders o, customers c, products p where o.customer_id = c.id",
    );
    assert!(f.detail.contains("o ⋈ c with p"), "{}", f.detail);
}

#[test]
fn explicit_cross_join_is_a_warning() {
    let f = one(
        "cartesian_product",
        "select 1 from orders o cross join customers c",
    );
    assert_eq!(f.severity, Severity::Warning);
    let f = one(
        "cartesian_product",
        "select 1 from order_items i join orders o on true",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.suggestion.unwrap().contains("i.order_id = o.id"));
}

#[test]
fn connected_relations_are_fine() {
    for sql in [
        "select 1 from orders o, customers c where o.customer_id = c.id",
        "select 1 from orders o join customers c on c.id = o.customer_id",
        "select 1 from orders join customers using (id)",
        "select 1 from orders natural join customers",
        // Unqualified columns resolved through the catalog.
        "select 1 from orders, customers where customer_id = email",
        // One row: nothing multiplies.
        "select o.id from orders o, (select max(total) as m from orders) x where o.total = x.m",
        // Set-returning function and LATERAL.
        "select 1 from orders o, generate_series(1, 3) g where o.id = 1",
        "select 1 from customers c, lateral (select * from orders o where o.customer_id = c.id) l",
        // A subquery links them.
        "select 1 from orders o, customers c where exists \
         (select 1 from order_items i where i.order_id = o.id and i.product_id = c.id)",
        // Unknown relations and an unqualified predicate: no verdict.
        "select 1 from foo, bar where x = y",
    ] {
        none("cartesian_product", sql);
    }
}

#[test]
fn update_from_without_a_condition() {
    let f = one(
        "cartesian_product",
        "update orders set note = c.name from customers c",
    );
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.location.as_deref(), Some("orders, customers c"));
    none(
        "cartesian_product",
        "update orders o set note = c.name from customers c where c.id = o.customer_id",
    );
}
