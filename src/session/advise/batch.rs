//! The advisor's commands in the extended protocol (how JDBC and most
//! drivers send every statement): Helios takes the client's messages up to
//! and including Sync and answers each as PostgreSQL would — ParseComplete,
//! BindComplete, ParameterDescription and RowDescription (or NoData),
//! rows and CommandComplete, CloseComplete, ReadyForQuery.
//!
//! Such statements and their portals live here; the upstream never hears
//! of them. A batch that also carries messages for the upstream (other
//! statements) is refused with 0A000: the command's own queries must not
//! run in the middle of the client's pipeline.

use std::io;

use bytes::BytesMut;
use helios_wire::frame::{get_cstr, tag};
use helios_wire::results::{self, ResultRows};
use helios_wire::{messages, Frame, PgError, SqlState};
use tokio::io::AsyncWriteExt;

use super::command::{self, Command};
use super::run;
use super::AdviseState;
use crate::session::nl::{client_side, next_batch_frame};
use crate::session::relay::Relay;

/// Messages read looking for the batch's Sync, at most.
const MAX_BATCH: usize = 64;

struct Batch {
    out: BytesMut,
    /// An error was reported: skip to Sync, as PostgreSQL does.
    failed: bool,
}

pub(super) async fn handle(
    relay: &mut Relay<'_>,
    st: &mut AdviseState,
    first: Frame,
    max_message: usize,
) -> io::Result<()> {
    let mut b = Batch {
        out: BytesMut::new(),
        failed: false,
    };
    if relay.take_handover_unsynced() {
        // Messages relayed just before, without a Sync: their replies are
        // owed first, and Helios cannot answer in between.
        fail(
            &mut b,
            PgError::error(
                SqlState::FEATURE_NOT_SUPPORTED,
                "Helios's advisor commands cannot share a Sync batch with other statements",
            ),
        );
    }
    let mut next = Some(first);
    let mut read = 1;
    while let Some(f) = next.take() {
        let sync = f.tag == tag::SYNC;
        if !b.failed || sync {
            step(relay, st, &mut b, f).await?;
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

fn fail(b: &mut Batch, e: PgError) {
    e.encode(&mut b.out);
    b.failed = true;
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

fn not_ours() -> PgError {
    PgError::error(
        SqlState::FEATURE_NOT_SUPPORTED,
        "Helios's advisor commands cannot share a Sync batch with other statements",
    )
}

async fn step(
    relay: &mut Relay<'_>,
    st: &mut AdviseState,
    b: &mut Batch,
    f: Frame,
) -> io::Result<()> {
    let mut body = &f.body[..];
    match f.tag {
        tag::PARSE => {
            let name = get_cstr(&mut body).unwrap_or_default();
            let text = get_cstr(&mut body).unwrap_or_default();
            match command::parse(&text) {
                Some(Ok(cmd)) => {
                    st.names.insert(name.clone());
                    st.statements.insert(name, cmd);
                    results::parse_complete(&mut b.out);
                }
                Some(Err(m)) => fail(b, PgError::error(SqlState::SYNTAX_ERROR, m)),
                None => fail(b, not_ours()),
            }
        }
        tag::BIND => {
            let portal = get_cstr(&mut body).unwrap_or_default();
            let stmt = get_cstr(&mut body).unwrap_or_default();
            let Some(cmd) = st.statements.get(&stmt).cloned() else {
                fail(b, not_ours());
                return Ok(());
            };
            // The commands take no parameters.
            let Some(formats) = helios_wire::bind::read_bind_tail(body)
                .filter(|t| t.params.is_empty())
                .map(|t| t.result_formats)
            else {
                fail(
                    b,
                    PgError::error(
                        SqlState::PROTOCOL_VIOLATION,
                        format!(
                            "bind message supplies parameters, but prepared statement \"{stmt}\" requires 0"
                        ),
                    ),
                );
                return Ok(());
            };
            st.portals.insert(portal, (cmd, formats));
            results::bind_complete(&mut b.out);
        }
        tag::DESCRIBE => {
            let Some((&kind, mut rest)) = body.split_first() else {
                fail(b, not_ours());
                return Ok(());
            };
            let name = get_cstr(&mut rest).unwrap_or_default();
            let found = match kind {
                b'S' => st.statements.get(&name).map(|c| (c.clone(), Vec::new())),
                _ => st.portals.get(&name).cloned(),
            };
            let Some((cmd, formats)) = found else {
                fail(b, not_ours());
                return Ok(());
            };
            if kind == b'S' {
                results::parameter_description(&[], &mut b.out);
            }
            match run::columns(&cmd) {
                Some(cols) => ResultRows::new(&cols, &formats).describe(&mut b.out),
                None => results::no_data(&mut b.out),
            }
        }
        tag::EXECUTE => {
            let portal = get_cstr(&mut body).unwrap_or_default();
            let Some((cmd, formats)) = st.portals.get(&portal).cloned() else {
                fail(b, not_ours());
                return Ok(());
            };
            // The rows go out as they are; the RowDescription came with
            // Describe (or the client knows it).
            let mut description = BytesMut::new();
            let mut rows = BytesMut::new();
            run::run(relay, st, &cmd, &formats, &mut description, &mut rows).await?;
            b.failed |= rows.first() == Some(&b'E');
            b.out.extend_from_slice(&rows);
            // A command runs once: executing the portal again finds it done.
            if matches!(cmd, Command::SetNotices { .. }) {
                st.portals.remove(&portal);
            }
        }
        tag::CLOSE => {
            let Some((&kind, mut rest)) = body.split_first() else {
                fail(b, not_ours());
                return Ok(());
            };
            let name = get_cstr(&mut rest).unwrap_or_default();
            match kind {
                b'S' => {
                    st.statements.remove(&name);
                    st.names.remove(&name);
                }
                _ => {
                    st.portals.remove(&name);
                }
            }
            results::close_complete(&mut b.out);
        }
        tag::FLUSH => flush(relay, b).await?,
        tag::SYNC => {
            let status = relay.upstream_status();
            messages::ready_for_query(status, &mut b.out);
            flush(relay, b).await?;
        }
        _ => fail(b, not_ours()),
    }
    Ok(())
}
