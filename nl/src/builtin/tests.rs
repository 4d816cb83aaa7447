//! The builtin translator on the demo schema: the SQL it writes for each
//! kind of question, and what it refuses. Execution accuracy over a
//! question set is measured end to end (tests/nl/builtin.rs).

use helios_planner::engine::demo::{demo_catalog, demo_measures};

use super::*;

fn measures() -> Vec<Measure> {
    demo_measures()
        .into_iter()
        .map(|(name, sql, synonyms)| Measure {
            name: name.into(),
            sql: sql.into(),
            synonyms: synonyms.iter().map(|s| s.to_string()).collect(),
        })
        .collect()
}

fn sql(q: &str) -> String {
    let catalog = demo_catalog("helios");
    translate(q, &catalog, &measures()).unwrap_or_else(|r| panic!("{q}: {r:?}"))
}

fn refused(q: &str) -> Refusal {
    let catalog = demo_catalog("helios");
    match translate(q, &catalog, &measures()) {
        Ok(sql) => panic!("{q}: answered {sql}"),
        Err(r) => r,
    }
}

#[test]
fn counts() {
    assert_eq!(
        sql("How many orders are there?"),
        "SELECT count(*) AS count FROM orders"
    );
    assert_eq!(
        sql("number of customers per country"),
        "SELECT country, count(*) AS count FROM customers GROUP BY country"
    );
    assert_eq!(
        sql("how many shipped orders"),
        "SELECT count(*) AS count FROM orders WHERE status = 'shipped'"
    );
}

#[test]
fn lists_with_filters() {
    assert_eq!(
        sql("customers in Berlin"),
        "SELECT * FROM customers WHERE city = 'Berlin'"
    );
    assert_eq!(
        sql("orders over 100"),
        "SELECT * FROM orders WHERE total > 100"
    );
    assert_eq!(
        sql("products without orders"),
        "SELECT products.* FROM products WHERE NOT EXISTS (SELECT 1 FROM order_items WHERE order_items.product_id = products.id)"
    );
    assert_eq!(
        sql("orders that are not cancelled"),
        "SELECT * FROM orders WHERE status <> 'cancelled'"
    );
}

#[test]
fn top_n_and_ordering() {
    assert_eq!(
        sql("top 10 customers by revenue"),
        "SELECT customers.id, customers.name, customers.email, customers.city, customers.country, \
         customers.region_id, customers.created_at, \
         sum(order_items.quantity * order_items.unit_price) AS revenue \
         FROM order_items JOIN orders ON order_items.order_id = orders.id \
         JOIN customers ON orders.customer_id = customers.id \
         GROUP BY customers.id, customers.name, customers.email, customers.city, customers.country, \
         customers.region_id, customers.created_at ORDER BY revenue DESC LIMIT 10"
    );
    assert_eq!(
        sql("the 5 cheapest products"),
        "SELECT * FROM products ORDER BY price LIMIT 5"
    );
    assert_eq!(
        sql("the most expensive product"),
        "SELECT * FROM products ORDER BY price DESC LIMIT 1"
    );
}

#[test]
fn aggregates_by_dimension_and_dates() {
    assert_eq!(
        sql("average price per category"),
        "SELECT category, avg(price) AS avg_price FROM products GROUP BY category"
    );
    assert_eq!(
        sql("total sales by region"),
        "SELECT regions.id, regions.name, sum(order_items.quantity * order_items.unit_price) AS revenue FROM order_items JOIN orders ON order_items.order_id = orders.id JOIN customers ON orders.customer_id = customers.id JOIN regions ON customers.region_id = regions.id GROUP BY regions.id, regions.name"
    );
    assert_eq!(
        sql("orders in 2024"),
        "SELECT * FROM orders WHERE ordered_at >= '2024-01-01' AND ordered_at < '2025-01-01'"
    );
}

#[test]
fn refuses_what_it_cannot_place() {
    let r = refused("which customers are happiest with our service");
    assert_eq!(r.words, ["happiest", "service"]);
    let e = r.into_error();
    assert_eq!(e.sqlstate(), "42000");
    assert!(
        e.message.contains("\"happiest\", \"service\""),
        "{}",
        e.message
    );
    assert!(e.hint.unwrap().contains("[[nl.providers]]"));
    // "name" is a column of three tables, none of them named.
    assert!(refused("show every name")
        .reason
        .unwrap()
        .contains("which column"));
}
