//! An NL request in a simple Query: answered, then ReadyForQuery.

use std::io;

use bytes::BytesMut;
use helios_nl::detect::{self, NlCall, QuestionArg};
use helios_nl::{NlError, NlErrorKind};
use helios_wire::frame::get_cstr;
use helios_wire::results::{Column, ResultRows, Type};
use helios_wire::{messages, Frame, PgError, SqlState, TransactionStatus};
use tokio::io::AsyncWriteExt;

use super::upstream::{Outcome, Side};
use super::{client_side, nl_error, sql_notice, translate, Ctx, NlState};
use crate::session::relay::Relay;

pub async fn handle(
    relay: &mut Relay<'_>,
    nl: &mut NlState,
    ctx: &Ctx<'_>,
    frame: Frame,
) -> io::Result<()> {
    let mut body = &frame.body[..];
    let sql = get_cstr(&mut body).unwrap_or_default();
    let mut out = BytesMut::new();
    if relay.take_handover_unsynced() {
        // Parse/Describe/Close came before this Query without a Sync: Helios
        // syncs to get their replies, which go first.
        let (_, conn, to_client) = relay.parts();
        let failed = Side::new(conn, to_client).sync_owed(&mut out).await?;
        relay.mark_synced();
        if failed {
            // PostgreSQL ignores everything after an error up to the client's
            // Sync, this Query included: pass the error on and answer nothing.
            let (client, _, _) = relay.parts();
            client.write_all(&out).await.map_err(client_side)?;
            return client.flush().await.map_err(client_side);
        }
    }
    let call = match detect::detect(&sql) {
        Some(Ok(call)) => call,
        Some(Err(e)) => {
            nl_error(&e).encode(&mut out);
            return finish(relay, out).await;
        }
        // `wants` said yes, so this does not happen; relay it unchanged would
        // be wrong now that the frame is taken: answer with an error.
        None => {
            PgError::error(SqlState::INTERNAL_ERROR, "not a natural-language request")
                .encode(&mut out);
            return finish(relay, out).await;
        }
    };
    match call {
        NlCall::Reset => {
            nl.conversation.reset();
            let mut rows = ResultRows::new(&[Column::new("nl_reset", Type::BOOL)], &[]);
            rows.describe(&mut out);
            rows.push(&true);
            rows.end_row(&mut out);
            rows.complete("SELECT", &mut out);
        }
        NlCall::History => history(nl, &[], true, &mut out),
        NlCall::Run(QuestionArg::Param(_)) | NlCall::Sql(QuestionArg::Param(_)) => {
            let e = NlError::new(
                NlErrorKind::BadRequest,
                "there is no parameter $1 in a simple query",
            )
            .with_hint("Bind the question with the extended protocol, or write it in quotes.");
            nl_error(&e).encode(&mut out);
        }
        NlCall::Sql(QuestionArg::Text(ref q)) | NlCall::Run(QuestionArg::Text(ref q)) => {
            let run = matches!(call, NlCall::Run(_));
            let q = q.clone();
            let started = std::time::Instant::now();
            if relay.upstream_status() != TransactionStatus::Idle {
                nl_error(&in_transaction()).encode(&mut out);
                return finish(relay, out).await;
            }
            let (client, conn, to_client) = relay.parts();
            let mut side = Side::new(conn, to_client);
            match translate(&mut side, nl, ctx, &q).await? {
                Err(e) => {
                    ctx.record(&sql, started, Some(e.sqlstate()));
                    nl_error(&e).encode(&mut out)
                }
                Ok(t) if !run => {
                    ctx.record(&sql, started, None);
                    sql_result(&t, &[], true, &mut out);
                    nl.conversation.push(&q, &t.sql);
                }
                Ok(_) if ctx.cancel.seen() != ctx.cancels_seen => {
                    ctx.record(&sql, started, Some("57014"));
                    nl_error(&cancelled()).encode(&mut out)
                }
                Ok(t) => {
                    sql_notice(&t, &mut out);
                    out.extend_from_slice(side.to_client);
                    side.to_client.clear();
                    client.write_all(&out).await.map_err(client_side)?;
                    out.clear();
                    let timeout = ctx.service.config().statement_timeout;
                    match side
                        .run_read_only(client, &t.sql, &[], true, timeout)
                        .await?
                    {
                        Outcome::Done => {
                            ctx.record(&sql, started, None);
                            nl.conversation.push(&q, &t.sql)
                        }
                        Outcome::Failed(e) => {
                            ctx.record(&sql, started, Some(&e.code));
                            tracing::info!(sql = %t.sql, error = %e, "generated SQL failed")
                        }
                    }
                }
            }
        }
    }
    finish(relay, out).await
}

/// 57014, as PostgreSQL answers a cancelled statement.
pub(super) fn cancelled() -> NlError {
    NlError::new(
        NlErrorKind::Interrupted,
        "canceling statement due to user request",
    )
}

/// 25001, as PostgreSQL uses for things not allowed in a transaction block.
pub(super) fn in_transaction() -> NlError {
    NlError::new(
        NlErrorKind::InTransaction,
        "natural-language queries cannot run inside a transaction block",
    )
    .with_hint("Ask outside BEGIN ... COMMIT: Helios runs the generated SQL in a read-only transaction of its own.")
}

/// `nl_sql`'s row: the SQL and how it was made.
pub(super) fn sql_result(
    t: &helios_nl::translate::Translation,
    formats: &[i16],
    describe: bool,
    out: &mut BytesMut,
) {
    let mut rows = ResultRows::new(&sql_columns(), formats);
    if describe {
        rows.describe(out);
    }
    rows.push(&t.sql);
    rows.push(&t.tables.iter().map(|n| n.to_string()).collect::<Vec<_>>());
    rows.push(&t.provider);
    rows.push(&(t.attempts as i32));
    rows.push(&t.cached);
    rows.end_row(out);
    rows.complete("SELECT", out);
}

pub(super) fn sql_columns() -> Vec<Column> {
    vec![
        Column::new("sql", Type::TEXT),
        Column::new("tables", Type::TEXT_ARRAY),
        Column::new("provider", Type::TEXT),
        Column::new("attempts", Type::INT4),
        Column::new("cached", Type::BOOL),
    ]
}

pub(super) fn history_columns() -> Vec<Column> {
    vec![
        Column::new("turn", Type::INT4),
        Column::new("question", Type::TEXT),
        Column::new("sql", Type::TEXT),
    ]
}

/// `SHOW HELIOS NL HISTORY`: the conversation, oldest first.
pub(super) fn history(nl: &NlState, formats: &[i16], describe: bool, out: &mut BytesMut) {
    let mut rows = ResultRows::new(&history_columns(), formats);
    if describe {
        rows.describe(out);
    }
    for (i, turn) in nl.conversation.turns().enumerate() {
        rows.push(&(i as i32 + 1));
        rows.push(&turn.question);
        rows.push(&turn.sql);
        rows.end_row(out);
    }
    // PostgreSQL's SHOW tag carries no row count.
    helios_wire::results::command_complete("SHOW", out);
}

/// Write `out`, then ReadyForQuery with the connection's status.
async fn finish(relay: &mut Relay<'_>, mut out: BytesMut) -> io::Result<()> {
    let status = relay.upstream_status();
    let (client, _, to_client) = relay.parts();
    if !to_client.is_empty() {
        let pending = std::mem::take(to_client);
        let mut all = pending;
        all.extend_from_slice(&out);
        out = all;
    }
    messages::ready_for_query(status, &mut out);
    client.write_all(&out).await.map_err(client_side)?;
    client.flush().await.map_err(client_side)
}
