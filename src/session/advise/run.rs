//! Running the advisor's commands: their columns, and their rows in the
//! formats the client asked for. Shared by the simple and the extended
//! protocol.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use helios_advisor::workload::{self, Search, WorkloadStatement};
use helios_advisor::{advise, Advice, Mode};
use helios_planner::cacheable::fingerprint_id;
use helios_wire::results::{command_complete, Column, ResultRows, Type};
use helios_wire::{PgError, SqlState, TransactionStatus};

use super::command::Command;
use super::AdviseState;
use crate::advisor::Snapshot;
use crate::session::nl::Side;
use crate::session::relay::Relay;

/// The columns a command answers with (`None`: no rows).
pub(super) fn columns(cmd: &Command) -> Option<Vec<Column>> {
    Some(match cmd {
        Command::Advise { .. } => vec![
            Column::new("severity", Type::TEXT),
            Column::new("rule", Type::TEXT),
            Column::new("title", Type::TEXT),
            Column::new("detail", Type::TEXT),
            Column::new("location", Type::TEXT),
            Column::new("suggestion", Type::TEXT),
            Column::new("cost_before", Type::FLOAT8),
            Column::new("cost_after", Type::FLOAT8),
            Column::new("saving_pct", Type::FLOAT8),
            Column::new("score", Type::INT4),
        ],
        Command::Queries => vec![
            Column::new("fingerprint", Type::TEXT),
            Column::new("query", Type::TEXT),
            Column::new("calls", Type::INT8),
            Column::new("total_ms", Type::FLOAT8),
            Column::new("mean_ms", Type::FLOAT8),
            Column::new("max_ms", Type::FLOAT8),
            Column::new("rows", Type::INT8),
            Column::new("cache_hits", Type::INT8),
        ],
        Command::Workload => vec![
            Column::new("index", Type::TEXT),
            Column::new("suggestion", Type::TEXT),
            Column::new("workload_cost_before", Type::FLOAT8),
            Column::new("workload_cost_after", Type::FLOAT8),
            Column::new("saving_pct", Type::FLOAT8),
            Column::new("size_bytes", Type::INT8),
            Column::new("detail", Type::TEXT),
        ],
        Command::ShowNotices => vec![Column::new("helios.advise", Type::TEXT)],
        Command::SetNotices { .. } => return None,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The catalog snapshot for this session, read now if it can be (outside
/// a transaction, nothing owed to the client); else the one held, if any.
pub(super) async fn snapshot(
    relay: &mut Relay<'_>,
    st: &mut AdviseState,
    may_query: bool,
) -> io::Result<Option<Snapshot>> {
    if let Some(s) = st.svc.cached(&st.database, &st.user) {
        return Ok(Some(s));
    }
    if !may_query {
        return Ok(None);
    }
    let (_, conn, to_client) = relay.parts();
    let mut side = Side::new(conn, to_client);
    match st.svc.load(&st.database, &st.user, &mut side).await {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            side.healthy()?;
            tracing::warn!(error = %e, "advisor: reading the catalog failed");
            Ok(None)
        }
    }
}

/// Whether Helios may run its own queries on the connection now.
pub(super) fn idle(relay: &mut Relay<'_>) -> bool {
    relay.upstream_status() == TransactionStatus::Idle && !relay.take_handover_unsynced()
}

/// Run `cmd`; its RowDescription goes to `description` (when it has rows),
/// rows and CommandComplete (or an error) to `out`.
pub(super) async fn run(
    relay: &mut Relay<'_>,
    st: &mut AdviseState,
    cmd: &Command,
    formats: &[i16],
    description: &mut BytesMut,
    out: &mut BytesMut,
) -> io::Result<()> {
    if let Some(cols) = columns(cmd) {
        ResultRows::new(&cols, formats).describe(description);
    }
    match cmd {
        Command::SetNotices { on, local } => {
            st.set_notices(*on, *local, relay.upstream_status());
            command_complete("SET", out);
        }
        Command::ShowNotices => {
            let mut rows = ResultRows::new(&columns(cmd).expect("rows"), formats);
            rows.push(&if st.notices() { "on" } else { "off" });
            rows.end_row(out);
            command_complete("SHOW", out);
        }
        Command::Queries => {
            let mut rows = ResultRows::new(&columns(cmd).expect("rows"), formats);
            for q in st.svc.log.snapshot() {
                rows.push(&fingerprint_id(q.fingerprint));
                rows.push(&q.text);
                rows.push(&(q.calls as i64));
                rows.push(&round2(ms(q.total)));
                rows.push(&round2(ms(q.mean())));
                rows.push(&round2(ms(q.max)));
                rows.push(&(q.rows as i64));
                rows.push(&(q.cache_hits as i64));
                rows.end_row(out);
            }
            command_complete("SHOW", out);
        }
        Command::Advise { sql, analyze } => {
            let kind = if *analyze { "advise_analyze" } else { "advise" };
            metrics::counter!("helios_advisor_analyses_total", "kind" => kind).increment(1);
            let advice = advise_one(relay, st, sql, *analyze).await?;
            let mut rows = ResultRows::new(&columns(cmd).expect("rows"), formats);
            let score = advice.score as i32;
            if advice.findings.is_empty() {
                rows.push(&"info");
                rows.push(&"no_findings");
                rows.push(&"no problems found");
                rows.push(&"The static rules and the plan found nothing to improve.");
                rows.push(&None::<String>);
                rows.push(&None::<String>);
                rows.push(&advice.cost);
                rows.push(&None::<f64>);
                rows.push(&None::<f64>);
                rows.push(&score);
                rows.end_row(out);
            }
            for f in &advice.findings {
                rows.push(&f.severity.as_str());
                rows.push(&f.rule);
                rows.push(&f.title);
                rows.push(&f.detail);
                rows.push(&f.location);
                rows.push(&f.suggestion);
                rows.push(&f.cost_before.map(round2));
                rows.push(&f.cost_after.map(round2));
                rows.push(&f.saving_pct().map(round2));
                rows.push(&score);
                rows.end_row(out);
            }
            rows.complete("SELECT", out);
        }
        Command::Workload => {
            metrics::counter!("helios_advisor_analyses_total", "kind" => "workload").increment(1);
            workload_rows(relay, st, formats, out).await?
        }
    }
    Ok(())
}

/// Analyze one statement as far as the session's state allows.
async fn advise_one(
    relay: &mut Relay<'_>,
    st: &mut AdviseState,
    sql: &str,
    analyze: bool,
) -> io::Result<Advice> {
    let may_query = idle(relay);
    let Some(snap) = snapshot(relay, st, may_query).await? else {
        // No catalog: the static rules that need none still run.
        let empty = helios_planner::catalog::Catalog::new(String::new(), vec![], vec![]);
        let analyzer = helios_advisor::rules::StaticAnalyzer::new(&empty);
        let mut advice =
            advise::<Side<'_>>(sql, &empty, &analyzer, None, Mode::Static, &st.svc.options).await;
        // Against an empty catalog every name is unknown: that says nothing
        // about the statement, so it neither shows nor costs the score.
        if advice.findings.iter().any(|f| f.rule == "unknown_name") {
            advice.findings.retain(|f| f.rule != "unknown_name");
            advice.plans = true;
            advice.score = helios_advisor::score(&advice.findings, true);
        }
        if !may_query {
            not_consulted(&mut advice, false);
        }
        return Ok(advice);
    };
    let mode = match (may_query, analyze) {
        (false, _) => Mode::Static,
        (true, false) => Mode::Explain,
        (true, true) => Mode::Analyze,
    };
    let (_, conn, to_client) = relay.parts();
    let mut side = Side::new(conn, to_client);
    let mut advice = advise(
        sql,
        &snap.catalog,
        &snap.analyzer,
        Some(&mut side),
        mode,
        &st.svc.options,
    )
    .await;
    side.healthy()?;
    if !may_query {
        not_consulted(&mut advice, true);
    }
    Ok(advice)
}

/// Say why the upstream was not asked (the score is not touched: it is not
/// the statement's fault).
fn not_consulted(advice: &mut Advice, had_catalog: bool) {
    let names = if had_catalog {
        ""
    } else {
        " Names were not checked either: this session has not read the catalog yet."
    };
    advice.findings.push(helios_advisor::Finding::new(
        helios_advisor::Severity::Info,
        "plan_not_consulted",
        "inside a transaction block: the upstream's plan was not consulted",
        format!(
            "Helios runs EXPLAIN only outside transaction blocks, so that nothing of its own can \
             affect the client's transaction; run ADVISE outside BEGIN ... COMMIT for plan \
             findings and index recommendations.{names}"
        ),
    ));
}

async fn workload_rows(
    relay: &mut Relay<'_>,
    st: &mut AdviseState,
    formats: &[i16],
    out: &mut BytesMut,
) -> io::Result<()> {
    if !idle(relay) {
        PgError::error(
            SqlState::new("25001"),
            "ADVISE WORKLOAD cannot run inside a transaction block",
        )
        .encode(out);
        return Ok(());
    }
    let Some(snap) = snapshot(relay, st, true).await? else {
        PgError::error(SqlState::INTERNAL_ERROR, "could not read the catalog").encode(out);
        return Ok(());
    };
    let statements: Vec<WorkloadStatement> = st
        .svc
        .log
        .snapshot()
        .into_iter()
        .filter(|q| is_plannable(&q.text))
        .take(st.svc.config.workload_top)
        .map(|q| WorkloadStatement {
            text: q.text,
            calls: q.calls.max(1) as f64,
        })
        .collect();
    let search = Search {
        max_indexes: st.svc.config.workload_max_indexes,
        max_columns: st.svc.config.max_index_columns,
        ..Search::default()
    };
    let (_, conn, to_client) = relay.parts();
    let mut side = Side::new(conn, to_client);
    let hypopg = helios_advisor::index::has_hypopg(&mut side).await;
    let result = if hypopg {
        workload::choose_indexes(&mut side, &snap.catalog, &statements, &search).await
    } else {
        workload::choose_by_statistics(
            &mut side,
            &snap.catalog,
            &statements,
            &search,
            &st.svc.options,
        )
        .await
    };
    side.healthy()?;
    let advice = match result {
        Ok(a) => a,
        Err(e) => {
            PgError::error(
                SqlState::INTERNAL_ERROR,
                format!("ADVISE WORKLOAD failed: {e}"),
            )
            .encode(out);
            return Ok(());
        }
    };
    let method = if hypopg {
        "verified together with HypoPG"
    } else {
        "estimated from pg_stats, statement by statement (HypoPG is not installed)"
    };
    let mut rows = ResultRows::new(&columns(&Command::Workload).expect("rows"), formats);
    for c in &advice.chosen {
        // Each index's share of the whole workload's cost (not of what was
        // left before it), so the rows add up to the total saving.
        let step = if advice.cost_before > 0.0 {
            (c.cost_before - c.cost_after) / advice.cost_before * 100.0
        } else {
            0.0
        };
        rows.push(&c.candidate.label());
        rows.push(&c.candidate.ddl());
        rows.push(&round2(c.cost_before));
        rows.push(&round2(c.cost_after));
        rows.push(&round2(step));
        rows.push(&(c.size_bytes as i64));
        rows.push(&method);
        rows.end_row(out);
    }
    rows.push(&"(workload)");
    rows.push(&None::<String>);
    rows.push(&round2(advice.cost_before));
    rows.push(&round2(advice.cost_after));
    rows.push(&round2(advice.saving_pct()));
    rows.push(&(advice.chosen.iter().map(|c| c.size_bytes).sum::<f64>() as i64));
    rows.push(&format!(
        "{} statement shapes by total time ({} could not be planned), weighted by calls; {} index(es) chosen",
        advice.statements,
        advice.skipped,
        advice.chosen.len()
    ));
    rows.end_row(out);
    rows.complete("SELECT", out);
    Ok(())
}

/// Statements the workload search can plan: one read or write, not one of
/// Helios's own or a utility command. The first word is read past comments
/// and parentheses (`/* app */ SELECT ...`, `(SELECT ...) UNION ...`).
fn is_plannable(text: &str) -> bool {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize() else {
        return false;
    };
    let first = tokens.into_iter().find_map(|t| match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        Token::Whitespace(_) | Token::LParen => None,
        _ => Some(String::new()),
    });
    matches!(
        first.as_deref(),
        Some("SELECT" | "WITH" | "UPDATE" | "DELETE" | "INSERT" | "VALUES" | "TABLE")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn plannable_statements_are_read_past_comments() {
        assert!(super::is_plannable("/* app */ SELECT 1"));
        assert!(super::is_plannable("-- x\n(SELECT 1) UNION (SELECT 2)"));
        assert!(super::is_plannable("update t set a = 1"));
        assert!(!super::is_plannable("SHOW HELIOS QUERIES"));
        assert!(!super::is_plannable("ADVISE SELECT 1"));
    }
}
