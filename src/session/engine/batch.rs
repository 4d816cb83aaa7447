//! Statements routed to the engine in the extended protocol (how JDBC and
//! most drivers send every statement).
//!
//! A Parse the router sends to the engine is planned at once (catalog read
//! on the client's connection, no snapshot yet) so that Describe can answer;
//! if the engine cannot run it, and it opens the batch, it is relayed as
//! it was. Bind keeps the parameters; Execute plans the statement again in
//! the batch's snapshot (begun at the first Execute, ended at Sync, as
//! PostgreSQL's implicit transaction would) and streams the rows, honouring
//! the row limit with PortalSuspended. Helios takes the client's messages
//! up to and including Sync; a message for the upstream in the same batch
//! is refused with 0A000, since Helios's own queries cannot run in the
//! middle of the client's pipeline.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use helios_wire::arrow::TextSettings;
use helios_wire::frame::{get_cstr, tag};
use helios_wire::results;
use helios_wire::{messages, Frame, PgError, SqlState, TransactionStatus};
use tokio::io::AsyncWriteExt;

use super::run::{self, Decline, Tx};
use super::{Ctx, EngineState};
use crate::embedded::execute::{Running, Step};
use crate::engine::route::{self, Reason, RouteDecision};
use crate::session::nl::{client_side, next_batch_frame};
use crate::session::relay::Relay;

/// Messages read looking for the batch's Sync, at most.
const MAX_BATCH: usize = 256;
/// Rows are written to the client in chunks of about this size.
const FLUSH_AT: usize = 64 * 1024;

/// A statement parsed for the engine.
pub(super) struct EngineStatement {
    sql: String,
    decision: RouteDecision,
    /// `$n` types as DataFusion inferred them (`None`: text).
    param_types: Vec<Option<DataType>>,
    schema: SchemaRef,
}

/// A portal bound to one.
pub(super) struct EnginePortal {
    stmt: Arc<EngineStatement>,
    params: Vec<Option<String>>,
    formats: Vec<i16>,
    running: Option<(Running, TextSettings)>,
    sent: u64,
    done: bool,
    /// Where its rows come from, for the log and metrics.
    route: &'static str,
    /// When its first Execute started (for SHOW HELIOS QUERIES).
    started: Option<std::time::Instant>,
}

/// The engine's statements and portals of a session.
#[derive(Default)]
pub(super) struct Extended {
    pub statements: HashMap<String, Arc<EngineStatement>>,
    pub portals: HashMap<String, EnginePortal>,
}

struct Batch {
    out: BytesMut,
    /// An error was reported: skip to Sync, as PostgreSQL does.
    failed: bool,
    tx: Tx,
    /// Messages answered so far.
    answered: usize,
}

pub(super) async fn handle(
    relay: &mut Relay<'_>,
    st: &mut EngineState,
    first: Frame,
    ctx: &Ctx<'_>,
    max_message: usize,
) -> io::Result<()> {
    let mut b = Batch {
        out: BytesMut::new(),
        failed: false,
        tx: Tx::default(),
        answered: 0,
    };
    let busy = relay.upstream_status() != TransactionStatus::Idle || relay.take_handover_unsynced();
    if busy {
        if first.tag == tag::PARSE {
            // Inside a transaction, or behind messages the upstream has not
            // answered: PostgreSQL runs it.
            forget_parse(st, &first);
            return super::give_back(relay, st, first);
        }
        fail(&mut b, not_alone());
    }
    let mut next = Some(first);
    let mut read = 1;
    while let Some(f) = next.take() {
        let sync = f.tag == tag::SYNC;
        if !b.failed || sync {
            if let Some(back) = step(relay, st, &mut b, f, ctx).await? {
                // The batch's first message, which the engine declined.
                return super::give_back(relay, st, back);
            }
        }
        if sync {
            return Ok(());
        }
        if read >= MAX_BATCH {
            fail(
                &mut b,
                PgError::error(SqlState::new("54000"), "too many messages before Sync"),
            );
        }
        read += 1;
        next = Some(next_batch_frame(relay, max_message).await?);
    }
    Ok(())
}

fn forget_parse(st: &mut EngineState, f: &Frame) {
    let name = get_cstr(&mut &f.body[..]).unwrap_or_default();
    st.ext.statements.remove(&name);
}

fn fail(b: &mut Batch, e: PgError) {
    e.encode(&mut b.out);
    b.failed = true;
}

fn not_alone() -> PgError {
    PgError::error(
        SqlState::FEATURE_NOT_SUPPORTED,
        "a statement Helios runs in its engine cannot share a Sync batch with statements for PostgreSQL",
    )
    .with_hint("Send a Sync between them, or add /*+ no_engine */ to the statement.")
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

fn missing_statement(name: &str) -> PgError {
    PgError::error(
        SqlState::new("26000"),
        format!("prepared statement \"{name}\" does not exist"),
    )
}

fn missing_portal(name: &str) -> PgError {
    PgError::error(
        SqlState::new("34000"),
        format!("portal \"{name}\" does not exist"),
    )
}

/// Answer one message. `Some(frame)`: give it back to be relayed (only the
/// batch's first message, when the engine declines it).
async fn step(
    relay: &mut Relay<'_>,
    st: &mut EngineState,
    b: &mut Batch,
    f: Frame,
    ctx: &Ctx<'_>,
) -> io::Result<Option<Frame>> {
    let first = b.answered == 0;
    b.answered += 1;
    let mut body = &f.body[..];
    match f.tag {
        tag::PARSE => {
            let name = get_cstr(&mut body).unwrap_or_default();
            let text = get_cstr(&mut body).unwrap_or_default();
            let Some(decision) = route::decide(&text, st.on(), &st.svc, &st.database) else {
                if first {
                    st.ext.statements.remove(&name);
                    return Ok(Some(f));
                }
                fail(b, not_alone());
                return Ok(None);
            };
            match run::prepare(relay, st, &text, &decision, None).await? {
                Ok((_, prepared, _, _)) => {
                    let stmt = EngineStatement {
                        sql: text,
                        decision,
                        param_types: prepared.param_types.clone(),
                        schema: prepared.schema.clone(),
                    };
                    st.ext.statements.insert(name, Arc::new(stmt));
                    results::parse_complete(&mut b.out);
                }
                Err(Decline(why)) if first => {
                    st.ext.statements.remove(&name);
                    tracing::debug!(reason = %why, "engine declined; relaying");
                    if decision.reason == Reason::Asked {
                        run::declined_notice(relay, &why);
                    }
                    return Ok(Some(f));
                }
                Err(Decline(why)) => fail(
                    b,
                    PgError::error(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        format!("the engine cannot run this statement ({why})"),
                    )
                    .with_hint("Send it in a batch of its own, or add /*+ no_engine */."),
                ),
            }
        }
        tag::BIND => {
            let portal = get_cstr(&mut body).unwrap_or_default();
            let name = get_cstr(&mut body).unwrap_or_default();
            let Some(stmt) = st.ext.statements.get(&name).cloned() else {
                fail(b, missing_statement(&name));
                return Ok(None);
            };
            match bind(&stmt, body) {
                Ok((params, formats)) => {
                    st.ext.portals.insert(
                        portal,
                        EnginePortal {
                            stmt,
                            params,
                            formats,
                            running: None,
                            sent: 0,
                            done: false,
                            route: "federated",
                            started: None,
                        },
                    );
                    results::bind_complete(&mut b.out);
                }
                Err(e) => fail(b, e),
            }
        }
        tag::DESCRIBE => {
            let Some((&kind, mut rest)) = body.split_first() else {
                fail(
                    b,
                    PgError::error(SqlState::PROTOCOL_VIOLATION, "invalid Describe message"),
                );
                return Ok(None);
            };
            let name = get_cstr(&mut rest).unwrap_or_default();
            let (stmt, formats) = match kind {
                b'S' => match st.ext.statements.get(&name) {
                    Some(s) => (s.clone(), Vec::new()),
                    None => {
                        fail(b, missing_statement(&name));
                        return Ok(None);
                    }
                },
                _ => match st.ext.portals.get(&name) {
                    Some(p) => (p.stmt.clone(), p.formats.clone()),
                    None => {
                        fail(b, missing_portal(&name));
                        return Ok(None);
                    }
                },
            };
            if kind == b'S' {
                let oids: Vec<u32> = stmt
                    .param_types
                    .iter()
                    .map(|t| {
                        t.as_ref()
                            .and_then(helios_wire::arrow::pg_type)
                            .map_or(helios_wire::arrow::oid::TEXT, |t| t.oid)
                    })
                    .collect();
                results::parameter_description(&oids, &mut b.out);
            }
            if let Err(e) = helios_wire::arrow::row_description(&stmt.schema, &formats, &mut b.out)
            {
                fail(b, PgError::from(e));
            }
        }
        tag::EXECUTE => {
            let name = get_cstr(&mut body).unwrap_or_default();
            let max_rows = if body.len() >= 4 {
                i32::from_be_bytes([body[0], body[1], body[2], body[3]]).max(0) as u64
            } else {
                0
            };
            execute(relay, st, b, &name, max_rows, ctx).await?;
        }
        tag::CLOSE => {
            let Some((&kind, mut rest)) = body.split_first() else {
                fail(
                    b,
                    PgError::error(SqlState::PROTOCOL_VIOLATION, "invalid Close message"),
                );
                return Ok(None);
            };
            let name = get_cstr(&mut rest).unwrap_or_default();
            match kind {
                b'S' => {
                    st.ext.statements.remove(&name);
                }
                _ => {
                    st.ext.portals.remove(&name);
                }
            }
            results::close_complete(&mut b.out);
        }
        tag::FLUSH => flush(relay, b).await?,
        tag::SYNC => {
            if b.tx.open {
                run::end_tx(relay).await?;
            }
            // The implicit transaction ends, and its portals with it.
            st.ext.portals.clear();
            let status = relay.upstream_status();
            messages::ready_for_query(status, &mut b.out);
            flush(relay, b).await?;
        }
        _ => fail(b, not_alone()),
    }
    Ok(None)
}

/// Parameters (as text, which the engine converts to the statement's
/// types) and result formats.
fn bind(stmt: &EngineStatement, body: &[u8]) -> Result<(Vec<Option<String>>, Vec<i16>), PgError> {
    let tail = helios_wire::bind::read_bind_tail(body)
        .ok_or_else(|| PgError::error(SqlState::PROTOCOL_VIOLATION, "invalid Bind message"))?;
    if tail.params.len() != stmt.param_types.len() {
        return Err(PgError::error(
            SqlState::PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                tail.params.len(),
                stmt.param_types.len()
            ),
        ));
    }
    let mut params = Vec::with_capacity(tail.params.len());
    for (i, raw) in tail.params.iter().enumerate() {
        let Some(raw) = raw else {
            params.push(None);
            continue;
        };
        let value = if tail.param_format(i) == 1 {
            crate::embedded::params::binary_to_text(raw, stmt.param_types[i].as_ref())?
        } else {
            String::from_utf8(raw.to_vec()).map_err(|_| {
                PgError::error(
                    SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                    "invalid byte sequence for encoding \"UTF8\"",
                )
            })?
        };
        params.push(Some(value));
    }
    Ok((params, tail.result_formats))
}

async fn execute(
    relay: &mut Relay<'_>,
    st: &mut EngineState,
    b: &mut Batch,
    name: &str,
    max_rows: u64,
    ctx: &Ctx<'_>,
) -> io::Result<()> {
    let Some(mut portal) = st.ext.portals.remove(name) else {
        fail(b, missing_portal(name));
        return Ok(());
    };
    if portal.done {
        results::command_complete("SELECT 0", &mut b.out);
        st.ext.portals.insert(name.to_string(), portal);
        return Ok(());
    }
    if portal.running.is_none() {
        portal.started = Some(std::time::Instant::now());
        let stmt = portal.stmt.clone();
        let ready = run::prepare(relay, st, &stmt.sql, &stmt.decision, Some(&mut b.tx)).await?;
        let (engine, prepared, settings, registered) = match ready {
            Ok(r) => r,
            Err(Decline(why)) => {
                fail(
                    b,
                    PgError::error(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        format!("the engine can no longer run this statement ({why})"),
                    )
                    .with_hint("Prepare it again, or add /*+ no_engine */."),
                );
                return Ok(());
            }
        };
        tracing::debug!(
            accelerated = ?registered.accelerated,
            scanned = ?registered.scanned,
            "statement runs in the engine"
        );
        portal.route = if registered.scanned.is_empty() {
            "accelerated"
        } else {
            "federated"
        };
        let params = portal.params.clone();
        let running = Running::spawn(st.svc.handle(), async move {
            engine.execute(&prepared, &params).await
        });
        portal.running = Some((running, settings));
    }
    let _absorbing = ctx.cancel.absorb();
    let mut this_call = 0u64;
    let outcome = loop {
        let (running, settings) = portal.running.as_mut().expect("started above");
        let room = if max_rows > 0 {
            max_rows - this_call
        } else {
            0
        };
        let step = tokio::select! {
            step = running.next(room, &portal.formats, settings, &mut b.out) => step,
            _ = ctx.cancel.after(ctx.cancels_seen) => Step::Failed(PgError::error(
                SqlState::new("57014".to_string()),
                "canceling statement due to user request",
            )),
        };
        match step {
            Step::Rows(n) => {
                portal.sent += n;
                this_call += n;
                if b.out.len() >= FLUSH_AT {
                    flush(relay, b).await?;
                }
                if max_rows > 0 && this_call >= max_rows {
                    break None;
                }
            }
            Step::Done => {
                break Some(Ok(()));
            }
            Step::Failed(e) => break Some(Err(e)),
        }
    };
    match outcome {
        None => {
            // PortalSuspended.
            b.out.extend_from_slice(&[b's', 0, 0, 0, 4]);
        }
        Some(Ok(())) => {
            metrics::counter!("helios_engine_queries_total", "route" => portal.route, "status" => "ok")
                .increment(1);
            tracing::debug!(
                rows = portal.sent,
                route = portal.route,
                "engine statement done"
            );
            if let Some(started) = portal.started {
                st.record(&portal.stmt.sql, started.elapsed(), portal.sent, None);
            }
            results::command_complete(&format!("SELECT {}", portal.sent), &mut b.out);
            portal.running = None;
            portal.done = true;
        }
        Some(Err(e)) => {
            metrics::counter!("helios_engine_queries_total", "route" => portal.route, "status" => "error")
                .increment(1);
            if let Some(started) = portal.started {
                let code = e.code.code().to_string();
                st.record(
                    &portal.stmt.sql,
                    started.elapsed(),
                    portal.sent,
                    Some(&code),
                );
            }
            portal.running = None;
            fail(b, e);
            return Ok(());
        }
    }
    st.ext.portals.insert(name.to_string(), portal);
    Ok(())
}
