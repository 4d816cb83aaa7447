//! Running a statement in the engine for a session: the snapshot and
//! catalog on the client's connection, the plan, the rows streamed back.
//! Where the engine cannot run it (DataFusion cannot plan it, a setting it
//! cannot honour, an accelerated copy gone stale under `engine.auto`), the
//! statement is relayed as it was, with a NOTICE when the client had asked
//! for the engine.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use helios_planner::catalog::TextRows;
use helios_wire::arrow::TextSettings;
use helios_wire::{Frame, PgError, SqlState};
use tokio::io::AsyncWriteExt;

use super::{finish, give_back, query_text, Ctx, EngineState};
use crate::embedded::execute::{Running, Step};
use crate::engine::catalog::{self, Resolved};
use crate::engine::route::{Reason, RouteDecision};
use crate::engine::workers::SnapshotSource;
use crate::session::nl::{client_side, Side};
use crate::session::relay::Relay;

/// Rows are written to the client in chunks of about this size.
const FLUSH_AT: usize = 64 * 1024;

/// Why the engine declined a statement.
pub(super) struct Decline(pub String);

/// Helios's read-only transaction on the client's connection, whose
/// snapshot every scan imports.
#[derive(Debug, Default)]
pub(super) struct Tx {
    pub open: bool,
    pub snapshot: Option<String>,
}

pub(super) async fn run(
    relay: &mut Relay<'_>,
    st: &mut EngineState,
    frame: Frame,
    decision: RouteDecision,
    ctx: &Ctx<'_>,
) -> io::Result<()> {
    let started = Instant::now();
    let text = query_text(&frame);
    let mut tx = Tx::default();
    let prepared = prepare(relay, st, &text, &decision, Some(&mut tx)).await?;
    let in_tx = tx.open;
    let (engine, prepared, settings, registered) = match prepared {
        Ok(p) => p,
        Err(Decline(why)) => return decline(relay, st, frame, &decision, in_tx, &why).await,
    };
    tracing::debug!(
        accelerated = ?registered.accelerated,
        scanned = ?registered.scanned,
        "statement runs in the engine"
    );

    let mut out = BytesMut::new();
    if let Err(e) = helios_wire::arrow::row_description(&prepared.schema, &[], &mut out) {
        if in_tx {
            end_tx(relay).await?;
        }
        PgError::from(e).encode(&mut out);
        return finish(relay, out).await;
    }
    let engine = Arc::new(engine);
    let running_engine = engine.clone();
    let mut running = Running::spawn(st.svc.handle(), async move {
        running_engine.execute(&prepared, &[]).await
    });
    let _absorbing = ctx.cancel.absorb();
    let mut rows: u64 = 0;
    let mut failed = None;
    let mut cancelled = false;
    // Nothing has reached the client yet: a failure can still be undone by
    // relaying the statement instead.
    let mut flushed = false;
    loop {
        let step = tokio::select! {
            step = running.next(0, &[], &settings, &mut out) => step,
            _ = ctx.cancel.after(ctx.cancels_seen) => {
                cancelled = true;
                Step::Failed(PgError::error(
                    SqlState::new("57014".to_string()),
                    "canceling statement due to user request",
                ))
            }
        };
        match step {
            Step::Rows(n) => {
                rows += n;
                if out.len() >= FLUSH_AT {
                    write_client(relay, &mut out).await?;
                    flushed = true;
                }
            }
            Step::Done => break,
            Step::Failed(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(running);
    if let (Some(e), false, false) = (&failed, flushed, cancelled) {
        // DataFusion failed where PostgreSQL may not (a value it cannot
        // represent, a literal it parses differently): PostgreSQL answers.
        // The upstream's own errors (a missing privilege) pass as they are.
        let engine_code = helios_planner::engine::sqlstate::ALL.contains(&e.code.code());
        if engine_code {
            let why = format!("it failed: {}", e.message);
            return decline(relay, st, frame, &decision, in_tx, &why).await;
        }
    }
    match &failed {
        Some(e) => {
            // Rows already sent stay sent, as PostgreSQL's would.
            e.encode(&mut out);
        }
        None => helios_wire::results::command_complete(&format!("SELECT {rows}"), &mut out),
    }
    if in_tx {
        end_tx(relay).await?;
    }
    let code = failed.as_ref().map(|e: &PgError| e.code.code().to_string());
    st.record(&text, started.elapsed(), rows, code.as_deref());
    let status = if failed.is_some() { "error" } else { "ok" };
    let route = if registered.scanned.is_empty() {
        "accelerated"
    } else {
        "federated"
    };
    metrics::counter!("helios_engine_queries_total", "route" => route, "status" => status)
        .increment(1);
    tracing::debug!(
        rows,
        ms = started.elapsed().as_millis() as u64,
        route,
        "engine statement done"
    );
    finish(relay, out).await
}

/// Relay the statement after all, telling the client why if it had asked
/// for the engine.
async fn decline(
    relay: &mut Relay<'_>,
    st: &mut EngineState,
    frame: Frame,
    decision: &RouteDecision,
    in_tx: bool,
    why: &str,
) -> io::Result<()> {
    if in_tx {
        end_tx(relay).await?;
    }
    tracing::debug!(reason = %why, "engine declined; relaying");
    metrics::counter!("helios_engine_queries_total", "status" => "relayed").increment(1);
    if decision.reason == Reason::Asked {
        declined_notice(relay, why);
    }
    give_back(relay, st, frame)
}

/// The NOTICE that tells a client who asked for the engine why PostgreSQL
/// answers instead (it goes out before the upstream's reply).
pub(super) fn declined_notice(relay: &mut Relay<'_>, why: &str) {
    let (_, _, to_client) = relay.parts();
    helios_wire::error::notice_with(
        "NOTICE",
        SqlState::new("00000".to_string()),
        &format!("helios: the engine cannot run this statement ({why}); it was sent to PostgreSQL"),
        None,
        None,
        to_client,
    );
}

pub(super) async fn write_client(relay: &mut Relay<'_>, out: &mut BytesMut) -> io::Result<()> {
    let (client, _, to_client) = relay.parts();
    if !to_client.is_empty() {
        let pending = std::mem::take(to_client);
        client.write_all(&pending).await.map_err(client_side)?;
    }
    client.write_all(out).await.map_err(client_side)?;
    out.clear();
    Ok(())
}

/// End Helios's read-only transaction on the client's connection.
pub(super) async fn end_tx(relay: &mut Relay<'_>) -> io::Result<()> {
    let (_, conn, to_client) = relay.parts();
    let mut side = Side::new(conn, to_client);
    side.query("COMMIT").await?.ok();
    Ok(())
}

pub(super) type Ready = (
    helios_planner::engine::Engine,
    helios_planner::engine::Prepared,
    TextSettings,
    crate::engine::Registered,
);

/// Snapshot, settings, catalog, plan. `Ok(Err(Decline))`: relay instead.
/// With `tx`, the scans read in its snapshot (begun here if it is not open
/// yet); without, the statement is only planned (to describe it).
pub(super) async fn prepare(
    relay: &mut Relay<'_>,
    st: &mut EngineState,
    text: &str,
    decision: &RouteDecision,
    tx: Option<&mut Tx>,
) -> io::Result<Result<Ready, Decline>> {
    let svc = st.svc.clone();
    let upstream_refs: Vec<_> = decision
        .relations
        .iter()
        .filter(|r| !svc.is_file_table(r))
        .cloned()
        .collect();
    let (_, conn, to_client) = relay.parts();
    let mut side = Side::new(conn, to_client);
    let mut snapshot = None;
    match tx {
        Some(tx) if tx.open => snapshot = tx.snapshot.clone(),
        Some(tx) if !upstream_refs.is_empty() => {
            if let Err(e) = side
                .query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?
            {
                return Ok(Err(Decline(e.message)));
            }
            tx.open = true;
            match side.query("SELECT pg_export_snapshot()").await? {
                Ok(rows) => snapshot = first(&rows),
                Err(e) => return Ok(Err(Decline(e.message))),
            }
            tx.snapshot = snapshot.clone();
        }
        _ => {}
    }
    let settings_row = match side.query(catalog::SETTINGS_SQL).await? {
        Ok(rows) => rows.into_iter().next().unwrap_or_default(),
        Err(e) => return Ok(Err(Decline(e.message))),
    };
    let setting = |i: usize| settings_row.get(i).cloned().flatten().unwrap_or_default();
    if !setting(5).eq_ignore_ascii_case("UTF8") {
        return Ok(Err(Decline(format!("client_encoding is {}", setting(5)))));
    }
    let mut text_settings = TextSettings::default();
    for (i, name) in [
        "TimeZone",
        "DateStyle",
        "IntervalStyle",
        "extra_float_digits",
        "bytea_output",
    ]
    .iter()
    .enumerate()
    {
        text_settings.set(name, &setting(i));
    }
    if !text_settings.datestyle_iso || !text_settings.intervalstyle_postgres {
        return Ok(Err(Decline(
            "DateStyle or IntervalStyle is not the default".into(),
        )));
    }
    if !helios_wire::arrow::timezone_supported(&text_settings.timezone) {
        return Ok(Err(Decline(format!("TimeZone {}", text_settings.timezone))));
    }
    let resolved: Vec<Resolved> = if upstream_refs.is_empty() {
        Vec::new()
    } else {
        match side.query(&catalog::relations_sql(&upstream_refs)).await? {
            Ok(rows) => match catalog::parse_relations(&upstream_refs, &rows) {
                Some(r) => r,
                None => {
                    tracing::warn!(?rows, "engine: unreadable catalog rows");
                    return Ok(Err(Decline("unreadable catalog rows".into())));
                }
            },
            Err(e) => return Ok(Err(Decline(e.message))),
        }
    };
    if let Some(t) = resolved.iter().find(|r| r.temporary) {
        return Ok(Err(Decline(format!(
            "{} is a temporary table, which only this session's connection sees",
            t.relation.qualified()
        ))));
    }
    // The engine reads timestamptz values, and literals, in UTC; PostgreSQL
    // in the session's TimeZone (date_trunc, literals without a zone, casts).
    let utc = matches!(
        text_settings.timezone.to_ascii_uppercase().as_str(),
        "UTC"
            | "ETC/UTC"
            | "GMT"
            | "ETC/GMT"
            | "Z"
            | "ZULU"
            | "UCT"
            | "ETC/UCT"
            | "UNIVERSAL"
            | "0"
            | "+00"
            | "+00:00"
    );
    let tz_columns = resolved.iter().any(|r| {
        r.relation
            .columns
            .iter()
            .any(|c| c.type_oid == helios_planner::engine::upstream::types::oid::TIMESTAMPTZ)
    });
    let lower = text.to_ascii_lowercase();
    let clock = [
        "now(",
        "current_date",
        "current_timestamp",
        "localtime",
        "current_time",
    ]
    .iter()
    .any(|f| lower.contains(f));
    if !utc && (tz_columns || clock) {
        return Ok(Err(Decline(format!(
            "TimeZone is {}; the engine works in UTC",
            text_settings.timezone
        ))));
    }
    if decision.reason == Reason::Auto {
        // Automatic routing is for accelerated copies only.
        for r in &resolved {
            let usable =
                r.readable_in_full && svc.accelerations.fresh(&st.database, &r.relation).is_some();
            if !usable {
                return Ok(Err(Decline(format!(
                    "no fresh accelerated copy of {}",
                    r.relation.qualified()
                ))));
            }
        }
    }
    let source = SnapshotSource {
        workers: svc.workers.clone(),
        login: st.login.clone(),
        snapshot,
        settings: catalog::settings_for_scan(
            &settings_row,
            st.login.params.user().unwrap_or_default(),
        ),
    };
    let options = crate::engine::scan_options(&svc.config, st.partitions());
    let (engine, registered) = match svc.context(&st.database, &resolved, &source, options) {
        Ok(x) => x,
        Err(e) => return Ok(Err(Decline(e.message))),
    };
    let sql = helios_planner::pg_compat::rewrite(text);
    // Planning reads no data; it runs here, on the session's thread.
    let prepared = match engine.prepare(&sql).await {
        Ok(p) => p,
        Err(e) => return Ok(Err(Decline(e.message))),
    };
    // Only what DataFusion computes exactly as PostgreSQL does.
    let plan = match engine.optimized(&prepared) {
        Ok(p) => p,
        Err(e) => return Ok(Err(Decline(e.message))),
    };
    use helios_planner::engine::upstream::faithful::TextOrder;
    let text_order = match (TextOrder::of(&setting(9)), setting(10).as_str()) {
        (TextOrder::Bytewise, "f") => TextOrder::Bytewise,
        _ => TextOrder::Collated,
    };
    if let Err(why) = helios_planner::engine::upstream::faithful::check(&plan, text_order) {
        return Ok(Err(Decline(why)));
    }
    Ok(Ok((engine, prepared, text_settings, registered)))
}

fn first(rows: &TextRows) -> Option<String> {
    rows.first().and_then(|r| r.first().cloned().flatten())
}
