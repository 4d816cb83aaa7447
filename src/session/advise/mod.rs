//! The query advisor inside a session.
//!
//! The relay hands over a message when [`AdviseState::wants`] it:
//!
//! - one of the advisor's commands ([`command`]) in a Query, or in a Parse
//!   (and the Bind/Describe/Execute/Close of a statement parsed from one):
//!   answered by Helios, simple ([`simple`]) or extended ([`batch`]);
//! - with `helios.advise` on, any other Query or Parse: its static findings
//!   go to the client as NOTICEs, then the message is relayed as it is.
//!
//! The advisor's own queries (catalog, EXPLAIN, HypoPG) run on the
//! session's connection, as its role, only outside transaction blocks.

mod batch;
pub mod command;
mod run;

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use helios_advisor::Severity;
use helios_wire::error::notice_with;
use helios_wire::frame::{get_cstr, tag};
use helios_wire::{messages, Frame, PgError, SqlState, TransactionStatus};
use tokio::io::AsyncWriteExt;

use self::command::Command;
use super::nl::client_side;
use super::relay::{Intercept, Relay};
use crate::advisor::AdvisorService;

/// What the session asked for with the message it wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Nothing,
    Command,
    Batch,
    Notices,
}

pub struct AdviseState {
    svc: Arc<AdvisorService>,
    database: String,
    user: String,
    /// `SET helios.advise` for the session, and `SET LOCAL` for the
    /// transaction under way.
    notices_session: bool,
    notices_local: Option<bool>,
    /// Statements parsed from a command (extended protocol), by name.
    statements: HashMap<String, Command>,
    /// Portals bound to them: the command and the result formats.
    portals: HashMap<String, (Command, Vec<i16>)>,
    /// Names of statements `wants` claimed, so a Bind of them is claimed too.
    names: HashSet<String>,
    wanted: Wanted,
    /// The message a handler just gave back: not claimed again.
    given_back: bool,
}

impl AdviseState {
    pub fn new(svc: Arc<AdvisorService>, database: &str, user: &str) -> Self {
        AdviseState {
            svc,
            database: database.to_string(),
            user: user.to_string(),
            notices_session: false,
            notices_local: None,
            statements: HashMap::new(),
            portals: HashMap::new(),
            names: HashSet::new(),
            wanted: Wanted::Nothing,
            given_back: false,
        }
    }

    fn notices(&self) -> bool {
        self.notices_local.unwrap_or(self.notices_session)
    }

    fn set_notices(&mut self, on: Option<bool>, local: bool, status: TransactionStatus) {
        let on = on.unwrap_or(false);
        if local {
            // Outside a transaction block SET LOCAL changes nothing, as in
            // PostgreSQL (which warns).
            if status != TransactionStatus::Idle {
                self.notices_local = Some(on);
            }
        } else {
            self.notices_session = on;
            if status != TransactionStatus::Idle {
                self.notices_local = None;
            }
        }
    }
}

/// A Query or Parse text.
fn text_of(body: &[u8]) -> Option<&str> {
    let end = body.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&body[..end]).ok()
}

impl Intercept for AdviseState {
    fn wants(&mut self, frame: &[u8], _in_flight: u32) -> bool {
        self.wanted = Wanted::Nothing;
        if std::mem::take(&mut self.given_back) {
            return false;
        }
        let mut body = &frame[5..];
        match frame[0] {
            tag::QUERY => {
                let Some(text) = text_of(body) else {
                    return false;
                };
                if command::parse(text).is_some() {
                    self.wanted = Wanted::Command;
                } else if self.notices() {
                    self.wanted = Wanted::Notices;
                }
            }
            tag::PARSE => {
                let name = get_cstr(&mut body).unwrap_or_default();
                let Some(text) = text_of(body) else {
                    return false;
                };
                if command::parse(text).is_some() {
                    self.names.insert(name);
                    self.wanted = Wanted::Batch;
                } else {
                    self.names.remove(&name);
                    if self.notices() {
                        self.wanted = Wanted::Notices;
                    }
                }
            }
            tag::BIND => {
                let portal = get_cstr(&mut body).unwrap_or_default();
                let stmt = get_cstr(&mut body).unwrap_or_default();
                if self.names.contains(&stmt) {
                    self.wanted = Wanted::Batch;
                } else {
                    self.portals.remove(&portal);
                }
            }
            tag::DESCRIBE | tag::CLOSE | tag::EXECUTE => {
                let (kind, mut name) = match frame[0] {
                    tag::EXECUTE => (b'P', body),
                    _ => match body.split_first() {
                        Some((&k, rest)) => (k, rest),
                        None => return false,
                    },
                };
                let name = get_cstr(&mut name).unwrap_or_default();
                let ours = match kind {
                    b'S' => self.names.contains(&name),
                    _ => self.portals.contains_key(&name),
                };
                if ours {
                    self.wanted = Wanted::Batch;
                }
            }
            _ => {}
        }
        self.wanted != Wanted::Nothing
    }

    fn upstream_ready(&mut self, status: TransactionStatus) {
        if status == TransactionStatus::Idle {
            // SET LOCAL ends with its transaction; so do portals.
            self.notices_local = None;
            self.portals.clear();
        }
    }
}

/// Handle the message the relay handed over for the advisor.
pub async fn handle(
    relay: &mut Relay<'_>,
    st: &mut AdviseState,
    max_message: usize,
) -> io::Result<()> {
    let frame = relay.take_client_frame();
    match st.wanted {
        Wanted::Command => simple(relay, st, frame).await,
        Wanted::Batch => batch::handle(relay, st, frame, max_message).await,
        Wanted::Notices => notices(relay, st, frame).await,
        Wanted::Nothing => {
            relay.pass_client_frames(&[frame]);
            Ok(())
        }
    }
}

/// A command in a simple Query: its answer, then ReadyForQuery.
async fn simple(relay: &mut Relay<'_>, st: &mut AdviseState, frame: Frame) -> io::Result<()> {
    let text = get_cstr(&mut &frame.body[..]).unwrap_or_default();
    let mut out = BytesMut::new();
    match command::parse(&text) {
        None => {
            relay.pass_client_frames(&[frame]);
            return Ok(());
        }
        Some(Err(m)) => PgError::error(SqlState::SYNTAX_ERROR, m).encode(&mut out),
        Some(Ok(cmd)) => {
            let mut description = BytesMut::new();
            run::run(relay, st, &cmd, &[], &mut description, &mut out).await?;
            description.extend_from_slice(&out);
            out = description;
        }
    }
    let status = relay.upstream_status();
    messages::ready_for_query(status, &mut out);
    let (client, _, to_client) = relay.parts();
    if !to_client.is_empty() {
        let pending = std::mem::take(to_client);
        client.write_all(&pending).await.map_err(client_side)?;
    }
    client.write_all(&out).await.map_err(client_side)?;
    client.flush().await.map_err(client_side)
}

/// `helios.advise` mode: the statement's static findings as NOTICEs (in
/// front of its own reply), then the statement goes upstream as it is.
async fn notices(relay: &mut Relay<'_>, st: &mut AdviseState, frame: Frame) -> io::Result<()> {
    let mut body = &frame.body[..];
    if frame.tag == tag::PARSE {
        let _ = get_cstr(&mut body);
    }
    let text = get_cstr(&mut body).unwrap_or_default();
    let may_query = run::idle(relay);
    if let Some(snap) = run::snapshot(relay, st, may_query).await? {
        if let Ok(stmts) = helios_planner::sql::parse(&text) {
            if let [stmt] = stmts.as_slice() {
                metrics::counter!("helios_advisor_analyses_total", "kind" => "notices")
                    .increment(1);
                let findings = snap.analyzer.findings(&text, stmt, &st.svc.options);
                let (_, _, to_client) = relay.parts();
                for f in &findings {
                    let (severity, code) = match f.severity {
                        Severity::Info => ("NOTICE", "00000"),
                        Severity::Warning | Severity::Critical => ("WARNING", "01000"),
                    };
                    notice_with(
                        severity,
                        SqlState::new(code),
                        &format!("helios advise: {} [{}, {}]", f.title, f.severity, f.rule),
                        Some(&f.detail),
                        f.suggestion.as_deref(),
                        to_client,
                    );
                }
            }
        }
    }
    st.given_back = true;
    relay.pass_client_frames(&[frame]);
    Ok(())
}
