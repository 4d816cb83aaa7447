//! Asking the upstream for plans: `EXPLAIN (FORMAT JSON)` of a statement,
//! a generic plan for one with `$n` parameters, and with `ANALYZE` inside a
//! read-only transaction that is always rolled back.

use helios_planner::catalog::TextQuery;

use crate::plan::{parse_explain, Plan};

/// The name of the prepared statement a parameterized statement is planned
/// through (dropped again at once).
const PREPARED: &str = "helios_advise_stmt";

/// The highest `$n` in a statement (0: none).
pub fn parameter_count(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut max = 0;
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'$' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j > start && (start < 2 || !b[start - 2].is_ascii_alphanumeric()) {
                    if let Ok(n) = sql[start..j].parse::<usize>() {
                        max = max.max(n);
                    }
                }
                i = j;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    max
}

fn explain_rows(rows: Vec<Vec<Option<String>>>) -> Result<Plan, String> {
    let text: String = rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect::<Vec<_>>()
        .join("\n");
    parse_explain(&text)
}

/// The plan PostgreSQL would use for `sql` now (a generic one when it has
/// parameters).
pub async fn explain<Q: TextQuery>(q: &mut Q, sql: &str) -> Result<Plan, String> {
    let params = parameter_count(sql);
    if params == 0 {
        return explain_rows(
            q.query_text(&format!("EXPLAIN (FORMAT JSON) {sql}"))
                .await?,
        );
    }
    q.query_text(&format!("PREPARE {PREPARED} AS {sql}"))
        .await?;
    let nulls = vec!["NULL"; params].join(", ");
    // SET LOCAL lasts for this Query's implicit transaction only.
    let planned = q
        .query_text(&format!(
            "SET LOCAL plan_cache_mode = force_generic_plan; \
             EXPLAIN (FORMAT JSON) EXECUTE {PREPARED}({nulls})"
        ))
        .await;
    let dropped = q.query_text(&format!("DEALLOCATE {PREPARED}")).await;
    let plan = explain_rows(planned?)?;
    dropped?;
    Ok(plan)
}

/// Run `sql` under `EXPLAIN (ANALYZE, BUFFERS)` in a READ ONLY transaction
/// that is rolled back: a statement that would write fails instead.
pub async fn explain_analyze<Q: TextQuery>(q: &mut Q, sql: &str) -> Result<Plan, String> {
    let ran = q
        .query_text(&format!(
            "BEGIN TRANSACTION READ ONLY; \
             EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"
        ))
        .await;
    // Whatever happened, end the transaction (a failed one included).
    let ended = q.query_text("ROLLBACK").await;
    let plan = explain_rows(ran?)?;
    ended?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parameters_outside_strings() {
        assert_eq!(parameter_count("select 1"), 0);
        assert_eq!(
            parameter_count("select * from t where a = $1 and b = $12"),
            12
        );
        assert_eq!(
            parameter_count("select '$3', \"$4\" from t where a = $2"),
            2
        );
        assert_eq!(parameter_count("select $$x$$"), 0);
    }
}
