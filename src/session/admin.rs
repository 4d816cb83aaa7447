//! Helios's admin commands (`SHOW HELIOS STATS`, `HELIOS RELOAD`, ... see
//! [`crate::ops::commands`]) inside a relayed session, in the simple
//! protocol and the extended one (`[Parse] Bind [Describe] Execute Sync`,
//! as JDBC and other drivers send them; a named statement can be executed
//! again in later batches).

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use helios_wire::error::notice;
use helios_wire::frame::{get_cstr, tag};
use helios_wire::{messages, results, Frame, PgError, SqlState};
use tokio::io::AsyncWriteExt;

use super::nl::{client_side, next_batch_frame, Side};
use super::relay::Relay;
use crate::ops::commands::{self, AdminCommand, Answer};
use crate::ops::{QueryRecord, Route, SessionObserver};
use crate::server::Server;

/// Messages read before a Sync at most.
const MAX_BATCH: usize = 1000;

pub struct AdminState {
    server: Arc<Server>,
    user: String,
    /// The session's own entry in the client registry.
    client_id: u64,
    obs: Arc<SessionObserver>,
    /// Prepared admin commands, by statement name.
    statements: HashMap<String, (AdminCommand, String)>,
    /// Portals bound to them, with their result formats.
    portals: HashMap<String, (AdminCommand, String, Vec<i16>)>,
}

impl AdminState {
    pub fn new(server: Arc<Server>, user: &str, client_id: u64, obs: Arc<SessionObserver>) -> Self {
        AdminState {
            server,
            user: user.to_string(),
            client_id,
            obs,
            statements: HashMap::new(),
            portals: HashMap::new(),
        }
    }

    /// Whether this client message is an admin command (or uses one).
    pub fn wants(&mut self, frame: &[u8]) -> bool {
        let mut body = &frame[5..];
        match frame[0] {
            tag::QUERY => get_cstr(&mut body).is_some_and(|t| commands::parse(&t).is_some()),
            tag::PARSE => {
                let _name = get_cstr(&mut body);
                get_cstr(&mut body).is_some_and(|t| commands::parse(&t).is_some())
            }
            tag::BIND => {
                let _portal = get_cstr(&mut body);
                get_cstr(&mut body).is_some_and(|s| self.statements.contains_key(&s))
            }
            tag::DESCRIBE => match body.split_first() {
                Some((b'S', mut name)) => {
                    get_cstr(&mut name).is_some_and(|n| self.statements.contains_key(&n))
                }
                Some((b'P', mut name)) => {
                    get_cstr(&mut name).is_some_and(|n| self.portals.contains_key(&n))
                }
                _ => false,
            },
            tag::CLOSE => {
                // Never known upstream: forget it, and let PostgreSQL answer
                // CloseComplete (closing what does not exist is no error).
                if let Some((kind, mut name)) = body.split_first() {
                    if let Some(n) = get_cstr(&mut name) {
                        if *kind == b'S' {
                            self.statements.remove(&n);
                        } else {
                            self.portals.remove(&n);
                        }
                    }
                }
                false
            }
            _ => false,
        }
    }

    async fn answer(&self, cmd: AdminCommand, text: &str) -> Result<Answer, PgError> {
        let started = Instant::now();
        let result = commands::run(&self.server, &self.user, Some(self.client_id), cmd).await;
        let code = result.as_ref().err().map(|e| e.code.code().to_string());
        self.obs.record(&QueryRecord {
            fingerprint: Some(helios_planner::cacheable::fingerprint(text)),
            text,
            route: Route::Admin,
            took: started.elapsed(),
            rows: result.as_ref().map_or(0, |a| a.rows.len() as u64),
            error: code.as_deref(),
        });
        result
    }
}

pub async fn handle(
    relay: &mut Relay<'_>,
    st: &mut AdminState,
    frame: Frame,
    max_message: usize,
) -> io::Result<()> {
    if frame.tag == tag::QUERY {
        return simple(relay, st, frame).await;
    }
    batch(relay, st, frame, max_message).await
}

async fn simple(relay: &mut Relay<'_>, st: &mut AdminState, frame: Frame) -> io::Result<()> {
    let text = get_cstr(&mut &frame.body[..]).unwrap_or_default();
    let mut out = BytesMut::new();
    if relay.take_handover_unsynced() {
        // Parse/Describe/Close came first without a Sync: their replies go first.
        let (_, conn, to_client) = relay.parts();
        let failed = Side::new(conn, to_client).sync_owed(&mut out).await?;
        relay.mark_synced();
        if failed {
            return finish(relay, out, false).await;
        }
    }
    let cmd = commands::parse(&text).expect("wants() checked");
    match st.answer(cmd, &text).await {
        Ok(a) => {
            if let Some(n) = &a.notice {
                notice("NOTICE", SqlState::SUCCESSFUL_COMPLETION, n, &mut out);
            }
            a.describe(&[], &mut out);
            a.encode_rows(&[], &mut out);
        }
        Err(e) => e.encode(&mut out),
    }
    finish(relay, out, true).await
}

/// Write `out` (and a ReadyForQuery when `ready`) after what the upstream
/// sent the client meanwhile.
pub(super) async fn finish(
    relay: &mut Relay<'_>,
    mut out: BytesMut,
    ready: bool,
) -> io::Result<()> {
    if ready {
        messages::ready_for_query(relay.upstream_status(), &mut out);
    }
    let (client, _, to_client) = relay.parts();
    if !to_client.is_empty() {
        let pending = std::mem::take(to_client);
        client.write_all(&pending).await.map_err(client_side)?;
    }
    client.write_all(&out).await.map_err(client_side)?;
    client.flush().await.map_err(client_side)
}

fn not_ours() -> PgError {
    PgError::error(
        SqlState::FEATURE_NOT_SUPPORTED,
        "Helios's admin commands cannot share a Sync batch with other statements",
    )
    .with_hint("Send the command in a batch of its own (Parse/Bind/Execute/Sync).")
}

/// An extended-protocol batch, up to and including its Sync.
async fn batch(
    relay: &mut Relay<'_>,
    st: &mut AdminState,
    first: Frame,
    max_message: usize,
) -> io::Result<()> {
    let mut out = BytesMut::new();
    // After an error PostgreSQL skips to Sync; so does this.
    let mut failed = false;
    if relay.take_handover_unsynced() {
        not_ours().encode(&mut out);
        failed = true;
    }
    let mut next = Some(first);
    let mut read = 1;
    while let Some(f) = next.take() {
        if f.tag == tag::SYNC {
            return finish(relay, out, true).await;
        }
        if f.tag == tag::FLUSH {
            finish(relay, std::mem::take(&mut out), false).await?;
        } else if !failed {
            if let Err(e) = step(st, &mut out, f).await {
                e.encode(&mut out);
                failed = true;
            }
        }
        if read >= MAX_BATCH && !failed {
            PgError::error(SqlState::new("54000"), "too many messages before Sync")
                .encode(&mut out);
            failed = true;
        }
        read += 1;
        next = Some(next_batch_frame(relay, max_message).await?);
    }
    Ok(())
}

async fn step(st: &mut AdminState, out: &mut BytesMut, f: Frame) -> Result<(), PgError> {
    let mut body = &f.body[..];
    match f.tag {
        tag::PARSE => {
            let name = get_cstr(&mut body).unwrap_or_default();
            let text = get_cstr(&mut body).unwrap_or_default();
            let cmd = commands::parse(&text).ok_or_else(not_ours)?;
            st.statements.insert(name, (cmd, text));
            results::parse_complete(out);
        }
        tag::BIND => {
            let portal = get_cstr(&mut body).unwrap_or_default();
            let stmt = get_cstr(&mut body).unwrap_or_default();
            let (cmd, text) = st.statements.get(&stmt).cloned().ok_or_else(not_ours)?;
            let formats = helios_wire::bind::read_bind_tail(body)
                .map(|t| t.result_formats)
                .unwrap_or_default();
            st.portals.insert(portal, (cmd, text, formats));
            results::bind_complete(out);
        }
        tag::DESCRIBE => {
            let (kind, mut rest) = body.split_first().ok_or_else(not_ours)?;
            let name = get_cstr(&mut rest).unwrap_or_default();
            let (cmd, formats) = if *kind == b'S' {
                let (cmd, _) = st.statements.get(&name).ok_or_else(not_ours)?;
                results::parameter_description(&[], out);
                (*cmd, Vec::new())
            } else {
                let (cmd, _, formats) = st.portals.get(&name).ok_or_else(not_ours)?;
                (*cmd, formats.clone())
            };
            let columns = commands::columns(cmd);
            if columns.is_empty() {
                results::no_data(out);
            } else {
                helios_wire::results::ResultRows::new(&columns, &formats).describe(out);
            }
        }
        tag::EXECUTE => {
            let portal = get_cstr(&mut body).unwrap_or_default();
            let (cmd, text, formats) = st.portals.get(&portal).cloned().ok_or_else(not_ours)?;
            let a = st.answer(cmd, &text).await?;
            if let Some(n) = &a.notice {
                notice("NOTICE", SqlState::SUCCESSFUL_COMPLETION, n, out);
            }
            a.encode_rows(&formats, out);
        }
        tag::CLOSE => {
            if let Some((kind, mut rest)) = body.split_first() {
                let name = get_cstr(&mut rest).unwrap_or_default();
                if *kind == b'S' {
                    st.statements.remove(&name);
                } else {
                    st.portals.remove(&name);
                }
            }
            results::close_complete(out);
        }
        _ => return Err(not_ours()),
    }
    Ok(())
}
