//! NL requests in the extended protocol: Helios takes the client's messages
//! up to and including Sync and answers each in order.
//!
//! NL statements and portals live here (the upstream never hears of them).
//! Other Parse/Bind/Describe/Close messages in the same batch (a driver
//! closing old statements, say) go to the upstream one by one and their
//! replies come back in place. An ordinary Execute cannot share a batch with
//! an NL request (0A000): the NL statement runs in a read-only transaction of
//! its own, which must not swallow the client's.
//!
//! A Describe of an NL statement before Bind cannot know the columns of a
//! question that is still a parameter (`nl($1)`): it answers NoData. Drivers
//! that describe the portal after Bind (JDBC, psycopg, tokio-postgres'
//! `query_typed`) get the real columns.

use std::io;

use bytes::{Buf, BytesMut};
use helios_nl::detect::{self, NlCall, QuestionArg};
use helios_nl::{NlError, NlErrorKind};
use helios_wire::frame::{get_cstr, read_frame_buffered, tag};
use helios_wire::results::{self, Column, ResultRows, Type};
use helios_wire::{messages, Frame, PgError, SqlState, TransactionStatus};
use tokio::io::AsyncWriteExt;

use super::simple::{cancelled, history, history_columns, in_transaction, sql_columns, sql_result};
use super::upstream::{Outcome, Side};
use super::{
    client_side, next_batch_frame, nl_error, sql_notice, translate, Ctx, NlPortal, NlState,
    NlStatement,
};
use crate::session::relay::Relay;

/// A batch being answered.
struct Batch {
    out: BytesMut,
    /// An error was reported: skip to Sync, as PostgreSQL does.
    failed: bool,
    /// The SQLSTATE of the last error reported (for the query log).
    error_code: Option<String>,
    /// Messages went to the upstream since its last Sync.
    upstream_unsynced: bool,
}

pub async fn handle(
    relay: &mut Relay<'_>,
    nl: &mut NlState,
    ctx: &Ctx<'_>,
    first: Frame,
) -> io::Result<()> {
    let mut b = Batch {
        error_code: None,
        out: BytesMut::new(),
        failed: false,
        // Parse/Describe/Close relayed just before: their replies come first.
        upstream_unsynced: relay.take_handover_unsynced(),
    };
    sync_upstream(relay, &mut b).await?;
    // One message at a time, reading the next only after answering this
    // one: a client that sends Flush and waits for the answer before Sync
    // gets it.
    let mut next = Some(first);
    while let Some(f) = next.take() {
        let sync = f.tag == tag::SYNC;
        if !b.failed || sync {
            step(relay, nl, ctx, &mut b, f).await?;
        }
        if sync {
            break;
        }
        let f = next_batch_frame(relay, ctx.max_message).await?;
        if matches!(f.tag, tag::QUERY | tag::FUNCTION_CALL) && !b.failed {
            // Not part of the batch: answer what is pending and let the
            // relay (or the simple-protocol handler) take it.
            flush(relay, &mut b).await?;
            relay.unread_client_frame(&f);
            return Ok(());
        }
        next = Some(f);
    }
    Ok(())
}

async fn step(
    relay: &mut Relay<'_>,
    nl: &mut NlState,
    ctx: &Ctx<'_>,
    b: &mut Batch,
    f: Frame,
) -> io::Result<()> {
    match f.tag {
        tag::PARSE => parse(relay, nl, b, f).await?,
        tag::BIND => bind(relay, nl, b, f).await?,
        tag::DESCRIBE => describe(relay, nl, ctx, b, f).await?,
        tag::EXECUTE => execute(relay, nl, ctx, b, f).await?,
        tag::CLOSE => close(relay, nl, b, f).await?,
        tag::FLUSH => flush(relay, b).await?,
        tag::SYNC => {
            sync_upstream(relay, b).await?;
            let status = relay.upstream_status();
            if status == TransactionStatus::Idle {
                // Portals end with their transaction, as in PostgreSQL.
                nl.portals.clear();
            }
            messages::ready_for_query(status, &mut b.out);
            flush(relay, b).await?;
        }
        _ => fail(
            b,
            PgError::error(
                SqlState::FEATURE_NOT_SUPPORTED,
                "nl() cannot share a Sync batch with this message",
            ),
        ),
    }
    Ok(())
}

/// PostgreSQL's words for a Describe or Close of neither a statement nor a portal.
fn bad_subtype(message: &str, kind: u8) -> PgError {
    PgError::error(
        SqlState::PROTOCOL_VIOLATION,
        format!("invalid {message} message subtype {kind}"),
    )
}

fn fail(b: &mut Batch, e: PgError) {
    e.encode(&mut b.out);
    b.failed = true;
    b.error_code = Some(e.code.code().to_string());
}

async fn flush(relay: &mut Relay<'_>, b: &mut Batch) -> io::Result<()> {
    let (client, _, to_client) = relay.parts();
    if !to_client.is_empty() {
        client.write_all(to_client).await.map_err(client_side)?;
        to_client.clear();
    }
    client.write_all(&b.out).await.map_err(client_side)?;
    b.out.clear();
    client.flush().await.map_err(client_side)
}

/// End the upstream's part of the batch (before Helios's own work, or at
/// Sync). Replies still owed to the client's messages come first.
async fn sync_upstream(relay: &mut Relay<'_>, b: &mut Batch) -> io::Result<()> {
    if !b.upstream_unsynced {
        return Ok(());
    }
    b.upstream_unsynced = false;
    let (_, conn, to_client) = relay.parts();
    if Side::new(conn, to_client).sync_owed(&mut b.out).await? {
        // As PostgreSQL would: after an error, skip to the client's Sync.
        b.failed = true;
    }
    relay.mark_synced();
    Ok(())
}

/// Send one message (and Flush) to the upstream and copy its reply to the client.
async fn forward(relay: &mut Relay<'_>, b: &mut Batch, f: &Frame) -> io::Result<()> {
    // Until Helios syncs it, the upstream is mid-pipeline: a session ending
    // now must not hand the connection on as clean.
    relay.mark_unsynced();
    let (_, conn, _) = relay.parts();
    let mut msg = f.to_bytes();
    messages::flush(&mut msg);
    conn.stream.write_all(&msg).await?;
    conn.stream.flush().await?;
    b.upstream_unsynced = true;
    let describe_statement = f.tag == tag::DESCRIBE && f.body.first() == Some(&b'S');
    loop {
        let reply = read_frame_buffered(&mut conn.stream, &mut conn.rbuf, usize::MAX)
            .await?
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        b.out.extend_from_slice(&reply.to_bytes());
        let done = match (f.tag, reply.tag) {
            (_, tag::ERROR_RESPONSE) => {
                b.failed = true;
                true
            }
            (tag::PARSE, b'1') | (tag::BIND, b'2') | (tag::CLOSE, b'3') => true,
            (tag::DESCRIBE, b'T') | (tag::DESCRIBE, b'n') => true,
            (tag::DESCRIBE, b't') => !describe_statement,
            _ => false,
        };
        if done {
            return Ok(());
        }
    }
}

async fn parse(relay: &mut Relay<'_>, nl: &mut NlState, b: &mut Batch, f: Frame) -> io::Result<()> {
    let mut body = &f.body[..];
    let name = get_cstr(&mut body).unwrap_or_default();
    let sql = get_cstr(&mut body).unwrap_or_default();
    let mut param_types = Vec::new();
    if body.remaining() >= 2 {
        let n = body.get_i16().max(0) as usize;
        for _ in 0..n.min(body.remaining() / 4) {
            param_types.push(body.get_u32());
        }
    }
    match detect::detect(&sql) {
        Some(Ok(call)) => {
            if !name.is_empty() && nl.statements.contains_key(&name) {
                fail(
                    b,
                    PgError::error(
                        SqlState::new("42P05"),
                        format!("prepared statement \"{name}\" already exists"),
                    ),
                );
                return Ok(());
            }
            nl.statements.insert(
                name,
                NlStatement {
                    call,
                    param_types,
                    translation: None,
                },
            );
            results::parse_complete(&mut b.out);
        }
        Some(Err(e)) => fail(b, nl_error(&e)),
        None => {
            nl.statements.remove(&name);
            forward(relay, b, &f).await?;
        }
    }
    Ok(())
}

async fn bind(relay: &mut Relay<'_>, nl: &mut NlState, b: &mut Batch, f: Frame) -> io::Result<()> {
    let mut body = &f.body[..];
    let portal = get_cstr(&mut body).unwrap_or_default();
    let statement = get_cstr(&mut body).unwrap_or_default();
    let Some(stmt) = nl.statements.get(&statement).cloned() else {
        nl.portals.remove(&portal);
        return forward(relay, b, &f).await;
    };
    let Some((params, result_formats)) = bind_values(body) else {
        fail(
            b,
            PgError::error(SqlState::PROTOCOL_VIOLATION, "malformed Bind message"),
        );
        return Ok(());
    };
    let wanted = stmt.call.param_count().max(stmt.param_types.len());
    if params.len() != wanted {
        fail(
            b,
            PgError::error(
                SqlState::PROTOCOL_VIOLATION,
                format!(
                    "bind message supplies {} parameters, but prepared statement \"{statement}\" requires {wanted}",
                    params.len()
                ),
            ),
        );
        return Ok(());
    }
    let question = match &stmt.call {
        NlCall::Run(q) | NlCall::Sql(q) => match q {
            QuestionArg::Text(t) => Some(t.clone()),
            QuestionArg::Param(n) => match params.get(n - 1) {
                Some(Some(v)) => match String::from_utf8(v.clone()) {
                    Ok(s) if !s.trim().is_empty() => Some(s),
                    Ok(_) => {
                        fail(
                            b,
                            nl_error(&NlError::new(
                                NlErrorKind::InvalidQuestion,
                                "the question is empty",
                            )),
                        );
                        return Ok(());
                    }
                    Err(_) => {
                        fail(
                            b,
                            PgError::error(
                                SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                                "the question is not valid UTF-8",
                            ),
                        );
                        return Ok(());
                    }
                },
                Some(None) => {
                    fail(
                        b,
                        nl_error(&NlError::new(
                            NlErrorKind::InvalidQuestion,
                            "the question is NULL",
                        )),
                    );
                    return Ok(());
                }
                None => {
                    fail(
                        b,
                        PgError::error(
                            SqlState::PROTOCOL_VIOLATION,
                            format!(
                                "bind message supplies {} parameters, but prepared statement \"{statement}\" requires {n}",
                                params.len()
                            ),
                        ),
                    );
                    return Ok(());
                }
            },
        },
        _ => None,
    };
    nl.portals.insert(
        portal,
        NlPortal {
            statement,
            call: stmt.call,
            question,
            result_formats,
            // A question written in the statement was translated once, at Describe.
            translation: stmt.translation,
        },
    );
    results::bind_complete(&mut b.out);
    Ok(())
}

/// Parameter values and result formats of a Bind body (after the names).
/// Text and binary parameters alike are taken as UTF-8 text: a question is text.
type BindValues = (Vec<Option<Vec<u8>>>, Vec<i16>);

fn bind_values(body: &[u8]) -> Option<BindValues> {
    let t = helios_wire::bind::read_bind_tail(body)?;
    let params = t.params.iter().map(|p| p.map(<[u8]>::to_vec)).collect();
    Some((params, t.result_formats))
}

/// The fixed columns of the calls that need no translation to describe.
fn fixed_columns(call: &NlCall) -> Option<Vec<Column>> {
    match call {
        NlCall::Sql(_) => Some(sql_columns()),
        NlCall::History => Some(history_columns()),
        NlCall::Reset => Some(vec![Column::new("nl_reset", Type::BOOL)]),
        NlCall::Run(_) => None,
    }
}

async fn describe(
    relay: &mut Relay<'_>,
    nl: &mut NlState,
    ctx: &Ctx<'_>,
    b: &mut Batch,
    f: Frame,
) -> io::Result<()> {
    let kind = f.body.first().copied().unwrap_or(0);
    let mut body = f.body.get(1..).unwrap_or_default();
    let name = get_cstr(&mut body).unwrap_or_default();
    if kind != b'S' && kind != b'P' {
        fail(b, bad_subtype("DESCRIBE", kind));
        return Ok(());
    }
    if kind == b'S' {
        let Some(stmt) = nl.statements.get(&name).cloned() else {
            return forward(relay, b, &f).await;
        };
        let oids: Vec<u32> = (0..stmt.call.param_count())
            .map(|i| match stmt.param_types.get(i) {
                Some(&t) if t != 0 => t,
                _ => 25, // text
            })
            .collect();
        results::parameter_description(&oids, &mut b.out);
        match (&stmt.call, fixed_columns(&stmt.call)) {
            (_, Some(cols)) => ResultRows::new(&cols, &[]).describe(&mut b.out),
            (NlCall::Run(QuestionArg::Text(q)), None) => {
                // Translated once: every later Bind of this statement runs
                // the SQL this description is of.
                let t = match stmt.translation {
                    Some(t) => Some(t),
                    None => translated(relay, nl, ctx, b, &q.clone()).await?,
                };
                if let Some(t) = t {
                    if let Some(s) = nl.statements.get_mut(&name) {
                        s.translation = Some(t.clone());
                    }
                    describe_sql(relay, ctx, b, &t.sql, &[]).await?;
                }
            }
            (NlCall::Run(QuestionArg::Param(_)), None) => {
                // The question is a parameter. Bound already in this batch
                // (tokio-postgres' query_typed sends Parse, Bind, Describe
                // statement, Execute): describe what that portal will return.
                let bound = nl
                    .portals
                    .iter()
                    .find(|(_, p)| p.statement == name)
                    .map(|(n, _)| n.clone());
                match bound {
                    Some(portal) => {
                        if let Some(t) = portal_translation(relay, nl, ctx, b, &portal).await? {
                            describe_sql(relay, ctx, b, &t.sql, &[]).await?;
                        }
                    }
                    None => results::no_data(&mut b.out),
                }
            }
            _ => results::no_data(&mut b.out),
        }
        return Ok(());
    }
    let Some(portal) = nl.portals.get(&name).cloned() else {
        return forward(relay, b, &f).await;
    };
    if let Some(cols) = fixed_columns(&portal.call) {
        ResultRows::new(&cols, &portal.result_formats).describe(&mut b.out);
        return Ok(());
    }
    let Some(t) = portal_translation(relay, nl, ctx, b, &name).await? else {
        return Ok(());
    };
    describe_sql(relay, ctx, b, &t.sql, &portal.result_formats).await
}

async fn describe_sql(
    relay: &mut Relay<'_>,
    ctx: &Ctx<'_>,
    b: &mut Batch,
    sql: &str,
    formats: &[i16],
) -> io::Result<()> {
    if !own_work_allowed(relay, b).await? {
        return Ok(());
    }
    let (_, conn, to_client) = relay.parts();
    let mut side = Side::new(conn, to_client);
    match side
        .describe(sql, formats, ctx.service.config().statement_timeout)
        .await?
    {
        Ok(Some(desc)) => b.out.extend_from_slice(&desc.to_bytes()),
        Ok(None) => results::no_data(&mut b.out),
        Err(e) => fail(b, PgError::error(SqlState::new(e.code.clone()), e.message)),
    }
    Ok(())
}

/// Before any work of Helios's own on the upstream: end the upstream's part
/// of the batch, and be outside a transaction block (the client's
/// transaction is never touched). `false`: refused with 25001.
async fn own_work_allowed(relay: &mut Relay<'_>, b: &mut Batch) -> io::Result<bool> {
    sync_upstream(relay, b).await?;
    if b.failed {
        return Ok(false);
    }
    if relay.upstream_status() != TransactionStatus::Idle {
        fail(b, nl_error(&in_transaction()));
        return Ok(false);
    }
    Ok(true)
}

/// Translate a question for this batch (outside any transaction block).
async fn translated(
    relay: &mut Relay<'_>,
    nl: &NlState,
    ctx: &Ctx<'_>,
    b: &mut Batch,
    question: &str,
) -> io::Result<Option<helios_nl::translate::Translation>> {
    if !own_work_allowed(relay, b).await? {
        return Ok(None);
    }
    let (_, conn, to_client) = relay.parts();
    let mut side = Side::new(conn, to_client);
    match translate(&mut side, nl, ctx, question).await? {
        Ok(t) => Ok(Some(t)),
        Err(e) => {
            fail(b, nl_error(&e));
            Ok(None)
        }
    }
}

/// The portal's translation, made once.
async fn portal_translation(
    relay: &mut Relay<'_>,
    nl: &mut NlState,
    ctx: &Ctx<'_>,
    b: &mut Batch,
    name: &str,
) -> io::Result<Option<helios_nl::translate::Translation>> {
    let Some(portal) = nl.portals.get(name).cloned() else {
        return Ok(None);
    };
    if let Some(t) = portal.translation {
        return Ok(Some(t));
    }
    let question = portal.question.unwrap_or_default();
    let t = translated(relay, nl, ctx, b, &question).await?;
    if let (Some(t), Some(p)) = (&t, nl.portals.get_mut(name)) {
        p.translation = Some(t.clone());
    }
    Ok(t)
}

async fn execute(
    relay: &mut Relay<'_>,
    nl: &mut NlState,
    ctx: &Ctx<'_>,
    b: &mut Batch,
    f: Frame,
) -> io::Result<()> {
    let mut body = &f.body[..];
    let name = get_cstr(&mut body).unwrap_or_default();
    let Some(portal) = nl.portals.get(&name).cloned() else {
        fail(
            b,
            PgError::error(
                SqlState::FEATURE_NOT_SUPPORTED,
                "nl() cannot share a Sync batch with other statements",
            )
            .with_hint("Send the natural-language request with its own Sync."),
        );
        return Ok(());
    };
    match &portal.call {
        NlCall::Reset => {
            nl.conversation.reset();
            let mut rows = ResultRows::new(
                &[Column::new("nl_reset", Type::BOOL)],
                &portal.result_formats,
            );
            rows.push(&true);
            rows.end_row(&mut b.out);
            rows.complete("SELECT", &mut b.out);
        }
        NlCall::History => history(nl, &portal.result_formats, false, &mut b.out),
        NlCall::Sql(_) => {
            let started = std::time::Instant::now();
            let question = portal.question.as_deref().unwrap_or_default();
            if let Some(t) = portal_translation(relay, nl, ctx, b, &name).await? {
                sql_result(&t, &portal.result_formats, false, &mut b.out);
                nl.conversation.push(question, &t.sql);
                ctx.record(question, started, None);
            } else {
                ctx.record(question, started, b.error_code.as_deref());
            }
        }
        NlCall::Run(_) => {
            let started = std::time::Instant::now();
            let question = portal.question.clone().unwrap_or_default();
            let ran = run_portal(relay, nl, ctx, b, &name, &portal).await;
            let error = match &ran {
                Ok(()) if b.failed => b.error_code.clone().or_else(|| Some("XX000".into())),
                Ok(()) => None,
                Err(_) => Some("08006".to_string()),
            };
            ctx.record(&question, started, error.as_deref());
            ran?;
        }
    }
    Ok(())
}

/// Translate and run a `nl()` portal: its rows go to the client.
async fn run_portal(
    relay: &mut Relay<'_>,
    nl: &mut NlState,
    ctx: &Ctx<'_>,
    b: &mut Batch,
    name: &str,
    portal: &NlPortal,
) -> io::Result<()> {
    let Some(t) = portal_translation(relay, nl, ctx, b, name).await? else {
        return Ok(());
    };
    if !own_work_allowed(relay, b).await? {
        return Ok(());
    }
    if ctx.cancel.seen() != ctx.cancels_seen {
        fail(b, nl_error(&cancelled()));
        return Ok(());
    }
    sql_notice(&t, &mut b.out);
    flush(relay, b).await?;
    let (client, conn, to_client) = relay.parts();
    let mut side = Side::new(conn, to_client);
    let timeout = ctx.service.config().statement_timeout;
    match side
        .run_read_only(client, &t.sql, &portal.result_formats, false, timeout)
        .await?
    {
        Outcome::Done => nl
            .conversation
            .push(portal.question.as_deref().unwrap_or_default(), &t.sql),
        Outcome::Failed(e) => {
            b.failed = true;
            b.error_code = Some(e.code);
        }
    }
    Ok(())
}

async fn close(relay: &mut Relay<'_>, nl: &mut NlState, b: &mut Batch, f: Frame) -> io::Result<()> {
    let kind = f.body.first().copied().unwrap_or(0);
    let mut body = f.body.get(1..).unwrap_or_default();
    let name = get_cstr(&mut body).unwrap_or_default();
    if kind != b'S' && kind != b'P' {
        fail(b, bad_subtype("CLOSE", kind));
        return Ok(());
    }
    let ours = match kind {
        b'S' => nl.statements.remove(&name).is_some(),
        b'P' => nl.portals.remove(&name).is_some(),
        _ => false,
    };
    if ours {
        results::close_complete(&mut b.out);
        Ok(())
    } else {
        forward(relay, b, &f).await
    }
}
