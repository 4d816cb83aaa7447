use super::*;
use crate::Severity;

fn rules(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.rule).collect()
}

#[test]
fn unknown_relations_and_columns_are_critical() {
    let found = all("select id from nope where id = 1");
    let f = found
        .iter()
        .find(|f| f.rule == "unknown_name")
        .expect("unknown_name");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.location.as_deref(), Some("nope"));
    assert!(
        f.detail.starts_with("relation \"nope\" does not exist"),
        "{}",
        f.detail
    );

    let found = all("select o.totl from orders o where o.id = 1");
    let f = found
        .iter()
        .find(|f| f.rule == "unknown_name")
        .expect("unknown_name");
    assert_eq!(f.location.as_deref(), Some("o.totl"));
    assert!(f.suggestion.as_deref().unwrap().contains("o.total"));
}

#[test]
fn names_that_exist_or_cannot_be_judged_are_fine() {
    for sql in [
        "select o.id, c.name from orders o join customers c on c.id = o.customer_id where o.id = 1",
        // System catalogs are not modeled: no verdict.
        "select relname from pg_class where oid = 1",
        // Not a query.
        "update orders set note = 'x' where id = 1",
    ] {
        let found = all(sql);
        assert!(
            !rules(&found).contains(&"unknown_name"),
            "{sql}: {found:#?}"
        );
    }
}

#[test]
fn cross_join_comes_from_the_plan_when_the_syntax_cannot_tell() {
    // `status` could belong to the CTE (its columns are `*`), so the
    // syntax-tree rule stays silent; DataFusion knows it is orders'.
    let found =
        all("with c as (select * from customers) select o.id from orders o, c where status = 'x'");
    assert!(!rules(&found).contains(&"cartesian_product"), "{found:#?}");
    let f = found
        .iter()
        .find(|f| f.rule == "cross_join")
        .expect("cross_join");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.location.as_deref(), Some("orders × customers"));
    assert!(f.detail.contains("2,000,000 × 50,000"), "{}", f.detail);
}

#[test]
fn no_cross_join_for_keyed_joins_or_when_the_syntax_rule_fired() {
    for sql in [
        "select 1 from orders o, customers c where o.customer_id = c.id",
        "select 1 from orders o join customers c on c.id = o.customer_id",
        "select o.id from orders o, (select max(total) as m from orders) x where o.total = x.m",
    ] {
        let found = all(sql);
        assert!(!rules(&found).contains(&"cross_join"), "{sql}: {found:#?}");
    }
    let found = all("select o.id from orders o, customers c");
    assert!(rules(&found).contains(&"cartesian_product"));
    assert!(!rules(&found).contains(&"cross_join"), "{found:#?}");
}

#[test]
fn implicit_cast_of_a_column_in_a_filter() {
    // integer = numeric(12,2): the integer column is cast for every row.
    let found = all("select id from orders where customer_id = total");
    let f = found
        .iter()
        .find(|f| f.rule == "implicit_cast")
        .expect("implicit_cast");
    assert_eq!(f.severity, Severity::Info);
    assert!(
        f.title
            .contains("orders.customer_id from integer to numeric"),
        "{}",
        f.title
    );
}

#[test]
fn literal_casts_and_widening_are_not_implicit_casts() {
    for sql in [
        "select id from orders where customer_id = 5",
        "select id from orders where id = customer_id",
        "select id from orders where placed_at >= '2024-01-01'",
        // Written by the author (and reported by function_on_indexed_column).
        "select id from orders where cast(customer_id as text) = 'x'",
        // Reported by literal_type_mismatch instead.
        "select id from orders where id = 1.5",
    ] {
        let found = all(sql);
        assert!(
            !rules(&found).contains(&"implicit_cast"),
            "{sql}: {found:#?}"
        );
    }
}

#[test]
fn the_static_pass_is_fast_and_shareable() {
    fn shared<T: Send + Sync>() {}
    shared::<StaticAnalyzer>();

    let sql = "with recent as (select customer_id, sum(total) as spent from orders \
               where placed_at > now() - interval '30 days' group by customer_id) \
               select c.name, r.spent, (select count(*) from order_items i join orders o \
               on o.id = i.order_id where o.customer_id = c.id) as items \
               from customers c join recent r on r.customer_id = c.id \
               where lower(c.email) like '%@example.com' or c.city = 'Oslo' \
               order by r.spent desc limit 20 offset 2000";
    let _ = all(sql);
    let start = std::time::Instant::now();
    let n = 20;
    for _ in 0..n {
        assert!(!all(sql).is_empty());
    }
    let each = start.elapsed() / n;
    println!("static pass: {each:?} per statement (debug build)");
    // Generous: this is an unoptimized build on a shared machine; the
    // target (< 5 ms) is for release builds.
    assert!(each.as_millis() < 100, "{each:?}");
}
