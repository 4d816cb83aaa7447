use super::*;
use crate::Severity;

#[test]
fn leading_wildcard_like_fires() {
    let f = one(
        "leading_wildcard_like",
        "select id from customers where name like '%smith'",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.location.as_deref(), Some("name LIKE '%smith'"));
    assert!(f.detail.contains("~50,000 rows"), "{}", f.detail);
    let s = f.suggestion.unwrap();
    assert!(
        s.contains("CREATE INDEX CONCURRENTLY ON public.customers USING gin (name gin_trgm_ops)"),
        "{s}"
    );
    // `_` is a wildcard too; the expression is indexed as written.
    let f = one(
        "leading_wildcard_like",
        "select c.id from customers c join orders o on o.customer_id = c.id \
         where lower(c.email) ilike '_x%'",
    );
    assert!(f
        .suggestion
        .unwrap()
        .contains("(lower(email) gin_trgm_ops)"));
}

#[test]
fn anchored_or_trigram_indexed_like_is_fine() {
    none(
        "leading_wildcard_like",
        "select id from customers where name like 'smi%'",
    );
    // products.title has a pg_trgm GIN index.
    none(
        "leading_wildcard_like",
        "select id from products where title ilike '%lamp%'",
    );
    // Not a filter.
    none(
        "leading_wildcard_like",
        "select name like '%x' from customers where id = 1",
    );
}

#[test]
fn function_on_an_indexed_column() {
    let f = one(
        "function_on_indexed_column",
        "select id from customers where lower(email) = 'a@b.c'",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.location.as_deref(), Some("lower(email)"));
    assert!(f.detail.contains("customers_email_idx"), "{}", f.detail);
    assert!(f
        .suggestion
        .unwrap()
        .contains("CREATE INDEX CONCURRENTLY ON public.customers ((lower(email)));"));

    // A cast, through an alias, with the equivalent range suggested.
    let f = one(
        "function_on_indexed_column",
        "select o.id from orders o where o.placed_at::date = '2024-05-01'",
    );
    let s = f.suggestion.unwrap();
    assert!(
        s.contains("o.placed_at >= '2024-05-01' AND o.placed_at < DATE '2024-05-01' + 1"),
        "{s}"
    );
    assert!(s.contains("((placed_at::DATE))"), "{s}");

    // date_trunc on a timestamptz: a range, and no expression index (it
    // would not be immutable).
    let f = one(
        "function_on_indexed_column",
        "select id from customers where date_trunc('month', created_at) = '2024-05-01'",
    );
    let s = f.suggestion.unwrap();
    assert!(
        s.contains("created_at < TIMESTAMP '2024-05-01' + INTERVAL '1 month'"),
        "{s}"
    );
    assert!(s.contains("not immutable"), "{s}");

    // In a JOIN condition.
    one(
        "function_on_indexed_column",
        "select 1 from customers c join orders o on cast(o.customer_id as text) = c.name",
    );
    // extract(year ...) becomes a year range.
    let f = one(
        "function_on_indexed_column",
        "select id from orders where extract(year from placed_at) = 2023",
    );
    assert!(f
        .suggestion
        .unwrap()
        .contains("placed_at >= '2023-01-01' AND placed_at < '2024-01-01'"));
}

#[test]
fn functions_elsewhere_are_fine() {
    // No index on name.
    none(
        "function_on_indexed_column",
        "select id from customers where lower(name) = 'x'",
    );
    // The bare column; the function on the other side.
    none(
        "function_on_indexed_column",
        "select id from customers where created_at > now() - interval '1 day'",
    );
    // products_lower_sku is an expression index on lower(sku).
    none(
        "function_on_indexed_column",
        "select id from products where lower(sku) = 'x'",
    );
    // Not a predicate.
    none(
        "function_on_indexed_column",
        "select lower(email) from customers where id = 1",
    );
}

#[test]
fn or_across_columns_fires() {
    let f = one(
        "or_across_columns",
        "select id from orders where status = 'a' or note = 'b'",
    );
    assert_eq!(f.severity, Severity::Info);
    assert!(
        f.detail.contains("orders.note, orders.status"),
        "{}",
        f.detail
    );
    let s = f.suggestion.unwrap();
    assert!(s.contains("UNION"), "{s}");
    assert!(
        s.contains("CREATE INDEX CONCURRENTLY ON public.orders (status);"),
        "{s}"
    );
    // Nested under AND, across tables.
    one(
        "or_across_columns",
        "select 1 from orders o join customers c on c.id = o.customer_id \
         where o.id > 5 and (o.status = 'x' or c.city = 'y')",
    );
}

#[test]
fn or_on_one_column_or_with_indexes_is_fine() {
    none(
        "or_across_columns",
        "select id from orders where status = 'a' or status = 'b'",
    );
    // Every branch filters on customer_id.
    none(
        "or_across_columns",
        "select id from orders where (customer_id = 1 and status = 'a') or customer_id = 2",
    );
    // Both indexed: a BitmapOr serves it.
    none(
        "or_across_columns",
        "select id from orders where id = 1 or customer_id = 2",
    );
    // An optional filter, not a choice of columns.
    none(
        "or_across_columns",
        "select id from orders where $1 is null or status = $1",
    );
}

#[test]
fn not_in_over_a_nullable_column() {
    let f = one(
        "not_in_nullable_subquery",
        "select name from customers where id not in (select customer_id from orders)",
    );
    assert_eq!(f.severity, Severity::Critical);
    assert!(f
        .detail
        .contains("orders.customer_id (integer) is nullable"));
    assert_eq!(
        f.suggestion.as_deref(),
        Some("NOT EXISTS (SELECT 1 FROM orders WHERE orders.customer_id = customers.id)")
    );
    let f = one(
        "not_in_nullable_subquery",
        "select name from customers c where c.id not in (select o.customer_id from orders o where o.status = 'x')",
    );
    assert_eq!(
        f.suggestion.as_deref(),
        Some("NOT EXISTS (SELECT 1 FROM orders o WHERE (o.status = 'x') AND o.customer_id = c.id)")
    );
}

#[test]
fn not_in_over_a_column_without_nulls_is_fine() {
    none(
        "not_in_nullable_subquery",
        "select id from orders where customer_id not in (select id from customers)",
    );
    none(
        "not_in_nullable_subquery",
        "select name from customers where id not in \
         (select customer_id from orders where customer_id is not null)",
    );
    none(
        "not_in_nullable_subquery",
        "select name from customers where id in (select customer_id from orders)",
    );
    // Unknown to the catalog: silent.
    none(
        "not_in_nullable_subquery",
        "select name from customers where id not in (select x from elsewhere)",
    );
}

#[test]
fn equals_null_fires() {
    let f = one("equals_null", "select id from orders where note = null");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.suggestion.as_deref(), Some("note IS NULL"));
    let f = one(
        "equals_null",
        "update orders set status = 'x' where null <> note",
    );
    assert_eq!(f.suggestion.as_deref(), Some("note IS NOT NULL"));
    one("equals_null", "select id from orders where note != NULL");
}

#[test]
fn is_null_and_assigning_null_are_fine() {
    none("equals_null", "select id from orders where note is null");
    none("equals_null", "update orders set note = null where id = 1");
    none(
        "equals_null",
        "select id from orders where note is distinct from null",
    );
}
