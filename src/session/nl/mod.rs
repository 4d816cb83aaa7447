//! Natural-language requests inside a session.
//!
//! The relay hands over a client message when [`NlState::wants`] it: a Query
//! or Parse whose text is an NL request, or a Bind of an NL statement. Helios
//! then answers it itself — translating, checking and running the generated
//! statement read-only on the session's upstream connection — and gives
//! the connection back to the relay.
//!
//! - Simple protocol ([`simple`]): one Query, one answer.
//! - Extended protocol ([`batch`]): Helios takes the whole batch up to Sync.

mod batch;
mod simple;
mod upstream;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use helios_nl::conversation::Conversation;
use helios_nl::detect::{self, NlCall};
use helios_nl::translate::{ExplainError, Schema, Translation};
use helios_nl::{NlError, NlErrorKind};
use helios_wire::error::notice;
use helios_wire::frame::{get_cstr, tag, FrameError};
use helios_wire::{ErrorFields, PgError, Severity, SqlState};

pub use self::upstream::Side;
use super::relay::{Intercept, Relay, RelayEnd};
use crate::nl::{NlService, SchemaKey};
use crate::upstream::CancelSignal;
use crate::upstream::PoolKey;

/// A prepared NL statement (extended protocol).
#[derive(Debug, Clone)]
struct NlStatement {
    call: NlCall,
    /// Parameter types the client declared in Parse (0: unspecified).
    param_types: Vec<u32>,
    /// Made when the statement was described (a question in its text).
    translation: Option<Translation>,
}

/// A bound NL portal.
#[derive(Debug, Clone)]
struct NlPortal {
    /// The NL statement it was bound from.
    statement: String,
    call: NlCall,
    /// The question, with parameters substituted.
    question: Option<String>,
    result_formats: Vec<i16>,
    translation: Option<Translation>,
}

/// A session's natural-language state.
pub struct NlState {
    enabled: bool,
    conversation: Conversation,
    statements: HashMap<String, NlStatement>,
    portals: HashMap<String, NlPortal>,
}

impl NlState {
    pub fn new(service: Option<&NlService>) -> Self {
        NlState {
            enabled: service.is_some_and(|s| s.config().enabled),
            conversation: Conversation::new(service.map_or(0, |s| s.config().history_turns)),
            statements: HashMap::new(),
            portals: HashMap::new(),
        }
    }
}

impl Intercept for NlState {
    fn wants(&mut self, frame: &[u8], _in_flight: u32) -> bool {
        if !self.enabled {
            return false;
        }
        let mut body = &frame[5..];
        match frame[0] {
            tag::QUERY => nl_text(body),
            tag::PARSE => {
                let name = get_cstr(&mut body).unwrap_or_default();
                let ours = nl_text(body);
                if !ours {
                    // An ordinary statement replaces an NL one of the same
                    // name (the unnamed one, typically): its Binds are not ours.
                    self.statements.remove(&name);
                }
                ours
            }
            tag::BIND => {
                let _portal = get_cstr(&mut body);
                get_cstr(&mut body).is_some_and(|s| self.statements.contains_key(&s))
            }
            // Describing or closing an NL statement or portal: the upstream
            // has never heard of it.
            tag::DESCRIBE | tag::CLOSE => {
                let Some((&kind, mut name)) = body.split_first() else {
                    return false;
                };
                let name = get_cstr(&mut name).unwrap_or_default();
                match kind {
                    b'S' => self.statements.contains_key(&name),
                    b'P' => self.portals.contains_key(&name),
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

/// Whether a Query/Parse text (NUL-terminated) is an NL request.
fn nl_text(text: &[u8]) -> bool {
    let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(text.len())];
    detect::might_be_nl(text) && detect::detect(&String::from_utf8_lossy(text)).is_some()
}

/// What a handler needs from the session.
pub struct Ctx<'a> {
    pub service: &'a NlService,
    pub key: &'a PoolKey,
    pub max_message: usize,
    /// Cancel requests for this session, and how many there were when this
    /// request was handed over: any later one cancels it.
    pub cancel: &'a CancelSignal,
    pub cancels_seen: u64,
    /// Metrics, stats, slow-query and audit logs.
    pub obs: &'a crate::ops::SessionObserver,
}

impl Ctx<'_> {
    /// A question answered (route `nl`): `error` is its SQLSTATE if it failed.
    pub(super) fn record(
        &self,
        question_sql: &str,
        started: std::time::Instant,
        error: Option<&str>,
    ) {
        self.obs.record(&crate::ops::QueryRecord {
            fingerprint: None,
            text: question_sql,
            route: crate::ops::Route::Nl,
            took: started.elapsed(),
            rows: 0,
            error,
        });
    }
}

/// Answer the message the relay handed over (it sits at the front of the
/// client buffer). `Err`: a connection broke; the session ends.
pub async fn handle(relay: &mut Relay<'_>, nl: &mut NlState, ctx: &Ctx<'_>) -> std::io::Result<()> {
    let frame = relay.take_client_frame();
    match frame.tag {
        tag::QUERY => simple::handle(relay, nl, ctx, frame).await,
        _ => batch::handle(relay, nl, ctx, frame).await,
    }
}

/// The client-facing error for a failed NL request.
fn nl_error(e: &NlError) -> PgError {
    let mut pg = PgError::new(
        Severity::Error,
        SqlState::new(e.sqlstate()),
        e.message.clone(),
    );
    pg.detail = e.detail.clone();
    pg.hint = e.hint.clone();
    pg
}

/// The NOTICE that carries the generated SQL, before the rows.
fn sql_notice(t: &Translation, out: &mut BytesMut) {
    let how = if t.cached {
        "cached".to_string()
    } else {
        format!(
            "{}, {} attempt{}",
            t.provider,
            t.attempts,
            if t.attempts == 1 { "" } else { "s" }
        )
    };
    notice(
        "NOTICE",
        SqlState::SUCCESSFUL_COMPLETION,
        &format!("nl: {} -- ({how})", t.sql),
        out,
    );
}

/// Load (or reuse) the schema and translate, over the session's connection.
/// The outer `Err`: the upstream connection broke; the session ends.
async fn translate(
    side: &mut Side<'_>,
    nl: &NlState,
    ctx: &Ctx<'_>,
    question: &str,
) -> io::Result<Result<Translation, NlError>> {
    let schema = match schema(side, ctx).await? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let mut explainer = Explainer {
        side,
        timeout: ctx.service.config().statement_timeout,
        broken: None,
        cancel: ctx.cancel,
        cancels_seen: ctx.cancels_seen,
    };
    let result = ctx
        .service
        .translator
        .translate(question, &schema, &nl.conversation, &mut explainer)
        .await;
    match explainer.broken {
        Some(e) => Err(e),
        None => Ok(result),
    }
}

/// The catalog snapshot for this session's database, role and search_path,
/// read (in a guarded read-only transaction) when missing or stale.
async fn schema(side: &mut Side<'_>, ctx: &Ctx<'_>) -> io::Result<Result<Arc<Schema>, NlError>> {
    let catalog_error = |e: ErrorFields| {
        NlError::new(
            NlErrorKind::Catalog,
            format!("could not read the schema: {}", e.message),
        )
    };
    let who = match side
        .query("SELECT current_user, current_setting('search_path')")
        .await?
    {
        Ok(rows) => rows.into_iter().next().unwrap_or_default(),
        Err(e) => return Ok(Err(catalog_error(e))),
    };
    let key = SchemaKey {
        database: ctx.key.database.clone(),
        role: who.first().cloned().flatten().unwrap_or_default(),
        search_path: who.get(1).cloned().flatten().unwrap_or_default(),
    };
    if let Some(s) = ctx.service.cached_schema(&key) {
        return Ok(Ok(s));
    }
    if let Err(e) = side
        .begin_guarded(ctx.service.config().statement_timeout)
        .await?
    {
        return Ok(Err(catalog_error(e)));
    }
    let loaded = ctx.service.load_schema(&key, side).await;
    side.healthy()?;
    side.rollback().await?;
    Ok(loaded)
}

/// EXPLAIN on the upstream, for the translator.
struct Explainer<'a, 'b> {
    side: &'a mut Side<'b>,
    timeout: std::time::Duration,
    /// The connection failed: the session ends after the translation does.
    broken: Option<io::Error>,
    cancel: &'a CancelSignal,
    cancels_seen: u64,
}

/// Errors that say nothing about the statement (a cancel, a timeout waiting
/// for a lock, a deadlock): they end the request instead of going back to
/// the model as a correction.
const INTERRUPTIONS: &[&str] = &["57014", "55P03", "40P01", "40001", "25P02"];

#[async_trait::async_trait]
impl helios_nl::translate::Upstream for Explainer<'_, '_> {
    async fn explain(&mut self, sql: &str) -> Result<(), ExplainError> {
        match self.side.explain(sql, self.timeout).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if INTERRUPTIONS.contains(&e.code.as_str()) => {
                Err(ExplainError::Interrupted(e.message))
            }
            Ok(Err(e)) => Err(ExplainError::Rejected(format!(
                "the database says: {}",
                e.message
            ))),
            Err(e) => {
                let message = e.to_string();
                self.broken = Some(e);
                Err(ExplainError::Broken(message))
            }
        }
    }

    /// Called while the model is asked, with the upstream idle: a cancel
    /// now is taken here and not forwarded.
    async fn cancelled(&mut self) {
        let _absorbing = self.cancel.absorb();
        self.cancel.after(self.cancels_seen).await
    }
}

/// The client's next message in an extended-protocol batch a handler
/// answers: a frontend message, or a client-side error (an unknown message
/// type, or the client gone before its Sync).
pub async fn next_batch_frame(
    relay: &mut Relay<'_>,
    max_message: usize,
) -> io::Result<helios_wire::Frame> {
    match relay
        .read_client_frame(max_message)
        .await
        .map_err(client_side)?
    {
        Some(f) if helios_wire::frame::is_frontend_tag(f.tag) => Ok(f),
        Some(f) => Err(client_side(io::Error::new(
            io::ErrorKind::InvalidData,
            FrameError::BadTag { tag: f.tag },
        ))),
        None => Err(client_side(io::ErrorKind::UnexpectedEof.into())),
    }
}

/// An I/O error on the client's side of the session, as opposed to the
/// upstream's: the session ends as the client's doing.
#[derive(Debug)]
pub struct ClientSide(pub io::Error);

impl std::fmt::Display for ClientSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ClientSide {}

/// Mark an error as the client's.
pub fn client_side(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), ClientSide(e))
}

/// How the session ends after a handler failed with `e`.
pub fn relay_end(e: io::Error) -> RelayEnd {
    if let Some(ClientSide(inner)) = e.get_ref().and_then(|i| i.downcast_ref::<ClientSide>()) {
        if let Some(fe) = inner.get_ref().and_then(|i| i.downcast_ref::<FrameError>()) {
            return RelayEnd::ClientProtocol(fe.clone());
        }
        return RelayEnd::ClientFailed(e);
    }
    RelayEnd::UpstreamFailed(e)
}
