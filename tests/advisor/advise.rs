//! ADVISE and helios_advise(): findings, the score, index recommendations.

use crate::common::sqlstate;
use crate::support::*;

const BY_CUSTOMER: &str = "SELECT id, amount FROM orders WHERE customer_id = 4242";

/// The recommendation, then the index made for real: the planner uses it,
/// and the advisor stops recommending it.
async fn recommends_the_missing_index(hypopg: bool) {
    let (pg, h) = start(hypopg, "");
    let c = h.connect().await;
    let rows = advise(&c, &format!("ADVISE {BY_CUSTOMER}")).await;
    let rec =
        find(&rows, "missing_index").unwrap_or_else(|| panic!("no recommendation: {rows:#?}"));
    let saving = rec.saving_pct.unwrap();
    assert!(saving >= 50.0, "saving {saving}%: {rec:#?}");
    assert!(rec.cost_after.unwrap() < rec.cost_before.unwrap());
    let ddl = rec.suggestion.clone().unwrap();
    assert!(
        ddl.starts_with("CREATE INDEX CONCURRENTLY ON public.orders (customer_id"),
        "{ddl}"
    );
    let how = if hypopg { "HypoPG" } else { "pg_stats" };
    assert!(rec.detail.contains(how), "{}", rec.detail);
    // The score counts the finding.
    assert!(rec.score < 100, "{rec:#?}");
    // Made for real (through Helios, as a user would): EXPLAIN uses it.
    c.simple_query(&ddl).await.unwrap();
    c.simple_query("ANALYZE orders").await.unwrap();
    let plan = explain(&pg, BY_CUSTOMER);
    assert!(
        plan.contains("Index Scan") || plan.contains("Bitmap"),
        "{plan}"
    );
    assert!(plan.contains("orders_customer_id"), "{plan}");
    // Asked again (after the catalog snapshot is read anew): no more.
    let h2 = crate::common::Helios::start(&pg, "");
    let c2 = h2.connect().await;
    let again = advise(&c2, &format!("ADVISE {BY_CUSTOMER}")).await;
    assert!(find(&again, "missing_index").is_none(), "{again:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn recommends_the_missing_index_verified_with_hypopg() {
    recommends_the_missing_index(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recommends_the_missing_index_from_statistics_without_hypopg() {
    recommends_the_missing_index(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parameters_are_planned_generically() {
    let (_pg, h) = start(true, "");
    let c = h.connect().await;
    let rows = advise(
        &c,
        "ADVISE SELECT * FROM orders WHERE customer_id = $1 AND status = $2",
    )
    .await;
    let rec = find(&rows, "missing_index").unwrap_or_else(|| panic!("{rows:#?}"));
    assert!(rec.saving_pct.unwrap() >= 50.0, "{rec:#?}");
    // The helper prepared statement is gone again.
    let left = c
        .simple_query("SELECT count(*) FROM pg_prepared_statements")
        .await
        .unwrap();
    let n = left
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap();
    assert_eq!(n, "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn static_findings_and_the_score() {
    let (_pg, h) = start(false, "");
    let c = h.connect().await;
    // = NULL is never true: critical.
    let rows = advise(&c, "ADVISE SELECT id FROM orders WHERE status = NULL").await;
    let f = find(&rows, "equals_null").unwrap_or_else(|| panic!("{rows:#?}"));
    assert_eq!(f.severity, "critical");
    assert!(
        f.suggestion.as_deref().unwrap_or("").contains("IS NULL"),
        "{f:#?}"
    );
    // Every row carries the statement's score: 100 − Σ weights.
    let lost: i32 = rows
        .iter()
        .map(|r| match r.severity.as_str() {
            "critical" => 25,
            "warning" => 10,
            _ => 2,
        })
        .sum();
    assert!(
        rows.iter().all(|r| r.score == (100 - lost).max(0)),
        "{rows:#?}"
    );
    // A column that does not exist: the statement does not plan, score 0.
    let rows = advise(&c, "ADVISE SELECT nope FROM orders").await;
    assert!(find(&rows, "unknown_name").is_some(), "{rows:#?}");
    assert!(rows.iter().all(|r| r.score == 0));
    // Not SQL at all.
    let rows = advise(&c, "ADVISE SELEKT 1").await;
    assert_eq!(rows[0].rule, "syntax_error");
    assert_eq!(rows[0].score, 0);
    // A clean statement: one row saying so, score 100.
    let rows = advise(&c, "ADVISE SELECT id, status FROM orders WHERE id = 7").await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!((rows[0].rule.as_str(), rows[0].score), ("no_findings", 100));
}

#[tokio::test(flavor = "multi_thread")]
async fn helios_advise_and_the_extended_protocol() {
    let (_pg, h) = start(true, "");
    let c = h.connect().await;
    let simple = advise(
        &c,
        &format!(
            "SELECT * FROM helios_advise('{}')",
            BY_CUSTOMER.replace('\'', "''")
        ),
    )
    .await;
    assert!(find(&simple, "missing_index").is_some(), "{simple:#?}");
    // A driver's prepared statement (Parse/Describe/Bind/Execute).
    let rows = c
        .query(&format!("ADVISE {BY_CUSTOMER}") as &str, &[])
        .await
        .unwrap();
    let rules: Vec<String> = rows.iter().map(|r| r.get::<_, String>("rule")).collect();
    assert!(rules.contains(&"missing_index".to_string()), "{rules:?}");
    let saving: Option<f64> = rows
        .iter()
        .find(|r| r.get::<_, String>("rule") == "missing_index")
        .unwrap()
        .get("saving_pct");
    assert!(saving.unwrap() >= 50.0);
    // The session goes on normally.
    let n: i64 = c
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 20000);
    // A malformed command is a syntax error, and the session survives.
    let e = c.simple_query("ADVISE").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42601"));
    let ok = c.simple_query("SELECT 1").await.unwrap();
    assert!(ok
        .iter()
        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn advise_analyze_runs_reads_only_and_never_writes() {
    let (pg, h) = start(false, "");
    let c = h.connect().await;
    // A read: run, with runtime findings (most rows removed by the filter).
    let rows = advise(
        &c,
        "ADVISE ANALYZE SELECT * FROM orders WHERE amount = 12.3",
    )
    .await;
    assert!(
        find(&rows, "rows_removed_by_filter").is_some()
            || find(&rows, "seq_scan_large_table").is_some(),
        "{rows:#?}"
    );
    // A write: not run.
    let before = pg.psql("SELECT count(*) FROM orders");
    let rows = advise(&c, "ADVISE ANALYZE DELETE FROM orders WHERE id < 1000").await;
    assert!(find(&rows, "analyze_skipped").is_some(), "{rows:#?}");
    assert_eq!(
        pg.psql("SELECT count(*) FROM orders"),
        before,
        "nothing was deleted"
    );
    // Nor through a function that writes, hidden in a SELECT.
    pg.psql(
        "CREATE FUNCTION purge() RETURNS int LANGUAGE sql AS \
         $$ DELETE FROM orders WHERE id < 1000 RETURNING 1 $$",
    );
    let rows = advise(&c, "ADVISE ANALYZE SELECT purge()").await;
    assert!(find(&rows, "analyze_failed").is_some(), "{rows:#?}");
    assert_eq!(
        pg.psql("SELECT count(*) FROM orders"),
        before,
        "nothing was deleted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inside_a_transaction_only_the_static_rules_run() {
    let (_pg, h) = start(true, "");
    let c = h.connect().await;
    c.simple_query("BEGIN").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    let rows = advise(&c, &format!("ADVISE {BY_CUSTOMER}")).await;
    assert!(find(&rows, "plan_not_consulted").is_some(), "{rows:#?}");
    assert!(find(&rows, "missing_index").is_none());
    // The client's transaction is untouched and still usable.
    c.simple_query("SELECT count(*) FROM orders").await.unwrap();
    c.simple_query("COMMIT").await.unwrap();
}
