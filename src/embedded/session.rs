//! One client of the embedded database: the simple and the extended query
//! protocol answered from DataFusion, with PostgreSQL's message sequences,
//! transaction states and error recovery (after an error in an extended
//! batch, everything up to Sync is skipped).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use helios_wire::frame::{get_cstr, read_frame_buffered, tag};
use helios_wire::results::{
    bind_complete, close_complete, command_complete, no_data, parameter_description,
    parse_complete, Column, ResultRows, Type,
};
use helios_wire::{messages, ClientStream, PgError, SqlState, TransactionStatus};
use tokio::io::AsyncWriteExt;

use super::commands::{self, Local, ShowWhat};
use super::execute::{Running, Step};
use super::settings::Settings;
use super::EmbeddedDb;

/// Reply bytes are written once this many are waiting.
const FLUSH_AT: usize = 64 * 1024;

/// A parsed statement.
#[derive(Clone)]
enum Statement {
    Local(Local),
    Query(Arc<helios_planner::engine::Prepared>),
}

/// A bound statement, possibly part-way through its rows.
struct Portal {
    statement: Statement,
    params: Vec<Option<String>>,
    formats: Vec<i16>,
    running: Option<Running>,
    sent: u64,
    /// All its rows were sent: executing it again sends none.
    done: bool,
    /// When it started running (for SHOW HELIOS QUERIES).
    started: Option<std::time::Instant>,
}

pub struct Session<'a> {
    db: &'a EmbeddedDb,
    stream: &'a mut ClientStream,
    rbuf: BytesMut,
    out: BytesMut,
    settings: Settings,
    status: TransactionStatus,
    statements: HashMap<String, Statement>,
    portals: HashMap<String, Portal>,
    /// An extended-protocol error: skip messages until Sync.
    skipping: bool,
    max_message: usize,
    /// Raised by the client's cancel requests.
    cancel: std::sync::Arc<crate::upstream::CancelSignal>,
    /// ADVISE and natural language.
    features: super::features::Features<'a>,
    /// Helios shutting down: the session ends when idle (FATAL 57P01).
    phase: Option<tokio::sync::watch::Receiver<crate::ops::Phase>>,
    /// Metrics, stats, slow-query and audit logs.
    obs: Option<std::sync::Arc<crate::ops::SessionObserver>>,
}

type Io<T> = std::io::Result<T>;

impl<'a> Session<'a> {
    pub fn new(
        db: &'a EmbeddedDb,
        stream: &'a mut ClientStream,
        settings: Settings,
        max_message: usize,
        cancel: std::sync::Arc<crate::upstream::CancelSignal>,
        features: super::features::Features<'a>,
    ) -> Self {
        Session {
            db,
            stream,
            rbuf: BytesMut::new(),
            out: BytesMut::with_capacity(FLUSH_AT),
            settings,
            status: TransactionStatus::Idle,
            statements: HashMap::new(),
            portals: HashMap::new(),
            skipping: false,
            max_message,
            cancel,
            features,
            phase: None,
            obs: None,
        }
    }

    /// Report each statement to the operations observers.
    pub fn with_observer(
        mut self,
        obs: Option<std::sync::Arc<crate::ops::SessionObserver>>,
    ) -> Self {
        self.obs = obs;
        self
    }

    /// End the session when Helios shuts down.
    pub fn with_phase(
        mut self,
        phase: Option<tokio::sync::watch::Receiver<crate::ops::Phase>>,
    ) -> Self {
        self.phase = phase;
        self
    }

    async fn flush(&mut self) -> Io<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        self.stream.flush().await
    }

    async fn maybe_flush(&mut self) -> Io<()> {
        if self.out.len() >= FLUSH_AT {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    fn ready(&mut self) {
        messages::ready_for_query(self.status, &mut self.out);
    }

    fn error(&mut self, e: &PgError) {
        e.encode(&mut self.out);
        if self.status == TransactionStatus::InTransaction {
            self.status = TransactionStatus::Failed;
        }
    }

    /// Serve until the client leaves.
    pub async fn run(&mut self) -> Io<()> {
        loop {
            let in_tx = self.status != TransactionStatus::Idle;
            let read = tokio::select! {
                r = read_frame_buffered(self.stream, &mut self.rbuf, self.max_message) => r,
                _ = shutdown_due(&mut self.phase, in_tx) => {
                    crate::session::shutdown_error().encode(&mut self.out);
                    return self.flush().await;
                }
            };
            let frame = match read {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    let err = PgError::fatal(SqlState::PROTOCOL_VIOLATION, e.to_string());
                    err.encode(&mut self.out);
                    return self.flush().await;
                }
                Err(e) => return Err(e),
            };
            let mut body = &frame.body[..];
            if self.skipping && frame.tag != tag::SYNC && frame.tag != tag::TERMINATE {
                continue;
            }
            match frame.tag {
                tag::QUERY => {
                    let text = get_cstr(&mut body).unwrap_or_default();
                    self.simple_query(&text).await?;
                    self.ready();
                    self.flush().await?;
                }
                tag::PARSE => self.parse(&mut body).await,
                tag::BIND => self.bind(&mut body),
                tag::DESCRIBE => self.describe(&mut body),
                tag::EXECUTE => self.execute(&mut body).await?,
                tag::CLOSE => self.close(&mut body),
                tag::SYNC => {
                    self.skipping = false;
                    // An implicit transaction ends at Sync: its portals go.
                    if self.status == TransactionStatus::Idle {
                        self.portals.clear();
                    }
                    self.ready();
                    self.flush().await?;
                }
                tag::FLUSH => self.flush().await?,
                tag::TERMINATE => return self.flush().await,
                // Outside COPY, PostgreSQL ignores these.
                tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => {}
                tag::FUNCTION_CALL => {
                    self.error(&PgError::error(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        "the fast-path function call interface is not supported",
                    ));
                    self.ready();
                    self.flush().await?;
                }
                other => {
                    let e = PgError::fatal(
                        SqlState::PROTOCOL_VIOLATION,
                        format!("invalid frontend message type {}", other as char),
                    );
                    e.encode(&mut self.out);
                    return self.flush().await;
                }
            }
        }
    }

    /// A simple Query: its statements in order, stopping at the first error.
    async fn simple_query(&mut self, text: &str) -> Io<()> {
        // A statement that is only an NL comment (`-- nl: ...`) is one
        // statement, though it has no tokens.
        let statements = match self.features.is_nl_comment(text) {
            true => vec![text.to_string()],
            false => commands::split(text),
        };
        if statements.is_empty() {
            // EmptyQueryResponse.
            self.out.extend_from_slice(&[b'I', 0, 0, 0, 4]);
            return Ok(());
        }
        for sql in &statements {
            let stmt = match self.prepare(sql).await {
                Ok(s) => s,
                Err(e) => {
                    self.error(&e);
                    return Ok(());
                }
            };
            let mut portal = Portal {
                statement: stmt,
                params: Vec::new(),
                formats: Vec::new(),
                running: None,
                sent: 0,
                done: false,
                started: None,
            };
            if !self.run_portal(&mut portal, 0, true).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Read a statement: a local command, or planned by DataFusion.
    async fn prepare(&mut self, sql: &str) -> Result<Statement, PgError> {
        if let Some(local) = commands::read(sql) {
            // A comment-only statement reads as empty, unless it is a question.
            if !(matches!(local, Local::Empty) && self.features.is_nl_comment(sql)) {
                return Ok(Statement::Local(local));
            }
        }
        if self.status == TransactionStatus::Failed {
            return Err(aborted());
        }
        let sql = match self.features.answer(self.db, sql, &mut self.out).await {
            None => sql.to_string(),
            Some(Err(e)) => return Err(e),
            Some(Ok(super::features::Special::Sql(generated))) => generated,
            Some(Ok(super::features::Special::Done(tag))) => {
                return Ok(Statement::Local(Local::Done(tag)))
            }
            Some(Ok(super::features::Special::Rows(batch))) => {
                return self
                    .db
                    .prepared_rows(sql, batch)
                    .map(|p| Statement::Query(Arc::new(p)))
                    .map_err(engine_error)
            }
        };
        self.db
            .prepare(&sql)
            .await
            .map(|p| Statement::Query(Arc::new(p)))
            .map_err(engine_error)
    }

    async fn parse(&mut self, body: &mut &[u8]) {
        let name = get_cstr(body).unwrap_or_default();
        let sql = get_cstr(body).unwrap_or_default();
        match self.prepare(&sql).await {
            Ok(stmt) => {
                self.statements.insert(name, stmt);
                parse_complete(&mut self.out);
            }
            Err(e) => {
                self.error(&e);
                self.skipping = true;
            }
        }
    }

    fn bind(&mut self, body: &mut &[u8]) {
        match self.read_bind(body) {
            Ok((name, portal)) => {
                self.portals.insert(name, portal);
                bind_complete(&mut self.out);
            }
            Err(e) => {
                self.error(&e);
                self.skipping = true;
            }
        }
    }

    fn read_bind(&mut self, body: &mut &[u8]) -> Result<(String, Portal), PgError> {
        let bad = || PgError::error(SqlState::PROTOCOL_VIOLATION, "invalid Bind message");
        let portal = get_cstr(body).ok_or_else(bad)?;
        let name = get_cstr(body).ok_or_else(bad)?;
        let statement = self.statements.get(&name).cloned().ok_or_else(|| {
            PgError::error(
                SqlState::new("26000"),
                format!("prepared statement \"{name}\" does not exist"),
            )
        })?;
        let take_i16 = |b: &mut &[u8]| (b.len() >= 2).then(|| b.get_i16()).ok_or_else(bad);
        let nf = take_i16(body)?.max(0) as usize;
        let mut param_formats = Vec::with_capacity(nf);
        for _ in 0..nf {
            param_formats.push(take_i16(body)?);
        }
        let np = take_i16(body)?.max(0) as usize;
        let types = match &statement {
            Statement::Query(p) => p.param_types.clone(),
            Statement::Local(_) => Vec::new(),
        };
        if np != types.len() {
            return Err(PgError::error(
                SqlState::PROTOCOL_VIOLATION,
                format!(
                    "bind message supplies {np} parameters, but prepared statement \"{name}\" requires {}",
                    types.len()
                ),
            ));
        }
        let mut params = Vec::with_capacity(np);
        for (i, ty) in types.iter().enumerate() {
            if body.len() < 4 {
                return Err(bad());
            }
            let len = body.get_i32();
            if len < 0 {
                params.push(None);
                continue;
            }
            let len = len as usize;
            if body.len() < len {
                return Err(bad());
            }
            let raw = &body[..len];
            let format = match nf {
                0 => 0,
                1 => param_formats[0],
                _ => param_formats.get(i).copied().unwrap_or(0),
            };
            let value = if format == 1 {
                super::params::binary_to_text(raw, ty.as_ref())?
            } else {
                String::from_utf8(raw.to_vec()).map_err(|_| {
                    PgError::error(
                        SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                        "invalid byte sequence for encoding \"UTF8\"",
                    )
                })?
            };
            params.push(Some(value));
            body.advance(len);
        }
        let nr = take_i16(body)?.max(0) as usize;
        let mut formats = Vec::with_capacity(nr);
        for _ in 0..nr {
            formats.push(take_i16(body)?);
        }
        Ok((
            portal,
            Portal {
                statement,
                params,
                formats,
                running: None,
                sent: 0,
                done: false,
                started: None,
            },
        ))
    }

    fn describe(&mut self, body: &mut &[u8]) {
        let kind = if body.is_empty() { 0 } else { body.get_u8() };
        let name = get_cstr(body).unwrap_or_default();
        let (statement, formats) = match kind {
            b'S' => match self.statements.get(&name) {
                Some(s) => (s.clone(), Vec::new()),
                None => {
                    self.error(&PgError::error(
                        SqlState::new("26000"),
                        format!("prepared statement \"{name}\" does not exist"),
                    ));
                    self.skipping = true;
                    return;
                }
            },
            b'P' => match self.portals.get(&name) {
                Some(p) => (p.statement.clone(), p.formats.clone()),
                None => {
                    self.error(&PgError::error(
                        SqlState::new("34000"),
                        format!("portal \"{name}\" does not exist"),
                    ));
                    self.skipping = true;
                    return;
                }
            },
            _ => {
                self.error(&PgError::error(
                    SqlState::PROTOCOL_VIOLATION,
                    "invalid DESCRIBE message subtype",
                ));
                self.skipping = true;
                return;
            }
        };
        if kind == b'S' {
            let oids: Vec<u32> = match &statement {
                Statement::Query(p) => p
                    .param_types
                    .iter()
                    .map(|t| {
                        t.as_ref()
                            .and_then(helios_wire::arrow::pg_type)
                            .map_or(Type::TEXT.oid(), |t| t.oid)
                    })
                    .collect(),
                Statement::Local(_) => Vec::new(),
            };
            parameter_description(&oids, &mut self.out);
        }
        match &statement {
            Statement::Query(p) => {
                if let Err(e) =
                    helios_wire::arrow::row_description(&p.schema, &formats, &mut self.out)
                {
                    self.error(&PgError::error(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        e.to_string(),
                    ));
                    self.skipping = true;
                }
            }
            Statement::Local(Local::Show(what)) => {
                ResultRows::new(&show_columns(what), &formats).describe(&mut self.out)
            }
            Statement::Local(_) => no_data(&mut self.out),
        }
    }

    async fn execute(&mut self, body: &mut &[u8]) -> Io<()> {
        let name = get_cstr(body).unwrap_or_default();
        let max_rows = if body.len() >= 4 {
            body.get_i32().max(0)
        } else {
            0
        } as u64;
        let Some(mut portal) = self.portals.remove(&name) else {
            self.error(&PgError::error(
                SqlState::new("34000"),
                format!("portal \"{name}\" does not exist"),
            ));
            self.skipping = true;
            return Ok(());
        };
        let ok = self.run_portal(&mut portal, max_rows, false).await?;
        if !ok {
            self.skipping = true;
        }
        self.portals.insert(name, portal);
        Ok(())
    }

    fn close(&mut self, body: &mut &[u8]) {
        let kind = if body.is_empty() { 0 } else { body.get_u8() };
        let name = get_cstr(body).unwrap_or_default();
        match kind {
            b'S' => {
                self.statements.remove(&name);
            }
            _ => {
                self.portals.remove(&name);
            }
        }
        close_complete(&mut self.out);
    }

    /// Run (or go on running) a portal; `describe` sends its RowDescription
    /// first (the simple protocol). False after an error.
    async fn run_portal(&mut self, portal: &mut Portal, max_rows: u64, describe: bool) -> Io<bool> {
        let stmt = portal.statement.clone();
        match stmt {
            Statement::Local(local) => Ok(self.local(&local, &portal.formats, describe)),
            Statement::Query(prepared) => {
                if self.status == TransactionStatus::Failed {
                    self.error(&aborted());
                    return Ok(false);
                }
                if portal.done {
                    command_complete("SELECT 0", &mut self.out);
                    return Ok(true);
                }
                if portal.running.is_none() {
                    portal.started = Some(std::time::Instant::now());
                    match self.db.start(&prepared, &portal.params).await {
                        Ok(r) => portal.running = Some(r),
                        Err(e) => {
                            self.error(&engine_error(e));
                            return Ok(false);
                        }
                    }
                    if describe {
                        if let Err(e) = helios_wire::arrow::row_description(
                            &prepared.schema,
                            &portal.formats,
                            &mut self.out,
                        ) {
                            self.error(&PgError::error(
                                SqlState::FEATURE_NOT_SUPPORTED,
                                e.to_string(),
                            ));
                            return Ok(false);
                        }
                    }
                }
                let text = self.settings.text();
                let running = portal.running.as_mut().expect("started above");
                let mut this_call = 0u64;
                // A cancel from now on stops this execution (earlier ones
                // were for statements that have finished).
                let cancel = self.cancel.clone();
                let seen = cancel.seen();
                loop {
                    let room = if max_rows > 0 {
                        max_rows - this_call
                    } else {
                        0
                    };
                    let step = tokio::select! {
                        step = running.next(room, &portal.formats, &text, &mut self.out) => step,
                        _ = cancel.after(seen) => Step::Failed(PgError::error(
                            SqlState::new("57014"),
                            "canceling statement due to user request",
                        )),
                    };
                    match step {
                        Step::Rows(n) => {
                            portal.sent += n;
                            this_call += n;
                            self.maybe_flush().await?;
                            if max_rows > 0 && this_call >= max_rows {
                                // PortalSuspended: PostgreSQL does not look
                                // ahead, also when those were the last rows.
                                self.out.extend_from_slice(&[b's', 0, 0, 0, 4]);
                                return Ok(true);
                            }
                        }
                        Step::Done => {
                            command_complete(&format!("SELECT {}", portal.sent), &mut self.out);
                            if let Some(started) = portal.started {
                                let fingerprint =
                                    helios_planner::cacheable::fingerprint(&prepared.sql);
                                self.db.log.record(
                                    fingerprint,
                                    &prepared.sql,
                                    started.elapsed(),
                                    portal.sent,
                                    false,
                                );
                                self.observe(
                                    fingerprint,
                                    &prepared.sql,
                                    started,
                                    portal.sent,
                                    None,
                                );
                            }
                            portal.running = None;
                            portal.done = true;
                            return Ok(true);
                        }
                        Step::Failed(e) => {
                            if let Some(started) = portal.started {
                                let fingerprint =
                                    helios_planner::cacheable::fingerprint(&prepared.sql);
                                let code = e.code.code().to_string();
                                self.observe(
                                    fingerprint,
                                    &prepared.sql,
                                    started,
                                    portal.sent,
                                    Some(&code),
                                );
                            }
                            portal.running = None;
                            self.error(&e);
                            return Ok(false);
                        }
                    }
                }
            }
        }
    }

    /// A statement ran: the operations observers hear of it.
    fn observe(
        &self,
        fingerprint: u64,
        text: &str,
        started: std::time::Instant,
        rows: u64,
        error: Option<&str>,
    ) {
        if let Some(obs) = &self.obs {
            obs.record(&crate::ops::QueryRecord {
                fingerprint: Some(fingerprint),
                text,
                route: crate::ops::Route::Embedded,
                took: started.elapsed(),
                rows,
                error,
            });
        }
    }

    /// A local command's reply; false after an error.
    fn local(&mut self, local: &Local, formats: &[i16], describe: bool) -> bool {
        let in_tx = self.status != TransactionStatus::Idle;
        let result: Result<&str, PgError> = match local {
            Local::Empty => {
                self.out.extend_from_slice(&[b'I', 0, 0, 0, 4]);
                return true;
            }
            Local::Begin => {
                if in_tx {
                    messages_warning(
                        "25001",
                        "there is already a transaction in progress",
                        &mut self.out,
                    );
                }
                if self.status == TransactionStatus::Idle {
                    self.status = TransactionStatus::InTransaction;
                }
                Ok("BEGIN")
            }
            Local::Commit | Local::Rollback => {
                let tag = if *local == Local::Commit && self.status != TransactionStatus::Failed {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                };
                if !in_tx {
                    messages_warning(
                        "25P01",
                        "there is no transaction in progress",
                        &mut self.out,
                    );
                }
                self.status = TransactionStatus::Idle;
                for (name, value) in self.settings.end_transaction() {
                    messages::parameter_status(name, &value, &mut self.out);
                }
                Ok(tag)
            }
            Local::Savepoint(tag) => {
                if !in_tx {
                    Err(PgError::error(
                        SqlState::new("25P01"),
                        format!("{} can only be used in transaction blocks", tag),
                    ))
                } else {
                    if *tag == "ROLLBACK" {
                        self.status = TransactionStatus::InTransaction;
                    }
                    Ok(tag)
                }
            }
            _ if self.status == TransactionStatus::Failed => Err(aborted()),
            Local::Set { name, value, local } => {
                match self.settings.set(name, value.as_deref(), *local, in_tx) {
                    Ok(Some((n, v))) => {
                        messages::parameter_status(n, &v, &mut self.out);
                        Ok("SET")
                    }
                    Ok(None) => Ok("SET"),
                    Err(e) => Err(e),
                }
            }
            Local::SetIgnored => Ok("SET"),
            Local::Done(tag) => Ok(tag),
            Local::Reset(name) => match self.settings.reset(name.as_deref()) {
                Ok(reported) => {
                    for (n, v) in reported {
                        messages::parameter_status(n, &v, &mut self.out);
                    }
                    Ok("RESET")
                }
                Err(e) => Err(e),
            },
            Local::Show(what) => {
                let cols = show_columns(what);
                let rows: Vec<Vec<String>> = match what {
                    ShowWhat::All => self
                        .settings
                        .all()
                        .into_iter()
                        .map(|(n, v)| vec![n.to_string(), v, String::new()])
                        .collect(),
                    ShowWhat::One(name) => match self.settings.get(name) {
                        Some(v) => vec![vec![v.to_string()]],
                        None => {
                            self.error(&PgError::error(
                                SqlState::new("42704"),
                                format!("unrecognized configuration parameter \"{name}\""),
                            ));
                            return false;
                        }
                    },
                };
                let mut rr = ResultRows::new(&cols, formats);
                if describe {
                    rr.describe(&mut self.out);
                }
                for row in rows {
                    for v in row {
                        rr.push(&v);
                    }
                    rr.end_row(&mut self.out);
                }
                command_complete("SHOW", &mut self.out);
                return true;
            }
            Local::Discard => {
                if in_tx {
                    Err(PgError::error(
                        SqlState::new("25001"),
                        "DISCARD ALL cannot run inside a transaction block",
                    ))
                } else {
                    self.statements.clear();
                    self.portals.clear();
                    let reported = self.settings.reset(None).unwrap_or_default();
                    for (n, v) in reported {
                        messages::parameter_status(n, &v, &mut self.out);
                    }
                    Ok("DISCARD ALL")
                }
            }
            Local::Deallocate(name) => {
                match name {
                    Some(n) => {
                        if self.statements.remove(n).is_none() {
                            self.error(&PgError::error(
                                SqlState::new("26000"),
                                format!("prepared statement \"{n}\" does not exist"),
                            ));
                            return false;
                        }
                    }
                    None => self.statements.clear(),
                }
                Ok("DEALLOCATE")
            }
        };
        match result {
            Ok(tag) => {
                command_complete(tag, &mut self.out);
                true
            }
            Err(e) => {
                self.error(&e);
                false
            }
        }
    }
}

fn show_columns(what: &ShowWhat) -> Vec<Column> {
    match what {
        ShowWhat::All => vec![
            Column::new("name", Type::TEXT),
            Column::new("setting", Type::TEXT),
            Column::new("description", Type::TEXT),
        ],
        ShowWhat::One(name) => vec![Column::new(&Settings::display_name(name), Type::TEXT)],
    }
}

fn messages_warning(code: &str, message: &str, out: &mut BytesMut) {
    helios_wire::error::notice("WARNING", SqlState::new(code.to_string()), message, out);
}

fn aborted() -> PgError {
    PgError::error(
        SqlState::new("25P02"),
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// A DataFusion-side error as the client sees it.
pub fn engine_error(e: helios_planner::engine::EngineError) -> PgError {
    let mut err = PgError::error(SqlState::new(e.sqlstate.to_string()), e.message);
    if let Some(d) = e.detail {
        err = err.with_detail(d);
    }
    err
}

/// Resolves when Helios is shutting down and this session should end: at
/// once when it is idle, at the drain deadline when a transaction is open.
async fn shutdown_due(
    phase: &mut Option<tokio::sync::watch::Receiver<crate::ops::Phase>>,
    in_tx: bool,
) {
    let Some(rx) = phase else {
        return std::future::pending().await;
    };
    loop {
        let p = *rx.borrow_and_update();
        if let Some(deadline) = p.draining {
            if in_tx {
                tokio::time::sleep_until(deadline.into()).await;
            }
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
