//! The DataFusion engine inside a session over the upstream.
//!
//! The relay hands over a simple Query when [`EngineState::wants`] it:
//! one of the engine's commands ([`command`]), or a statement the router
//! sends to the engine (`crate::engine::route`). Such a statement runs
//! ([`run`]) between transactions, with nothing else in flight: Helios
//! opens a read-only repeatable-read transaction on the client's own
//! connection, exports its snapshot, reads the catalog there, and every
//! scan partition imports that snapshot — so the answer is the one
//! PostgreSQL would have given at that moment, as that role. The extended
//! protocol is [`batch`]'s. Statements inside a transaction block are
//! relayed.

mod batch;
mod command;
mod run;

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use helios_wire::frame::{get_cstr, tag};
use helios_wire::results::{Column, ResultRows, Type};
use helios_wire::{messages, Frame, PgError, SqlState, TransactionStatus};
use tokio::io::AsyncWriteExt;

use self::command::Command;
use super::nl::client_side;
use super::relay::{Intercept, Relay};
use crate::engine::route::{self, RouteDecision};
use crate::engine::workers::WorkerLogin;
use crate::engine::EngineService;
use crate::upstream::CancelSignal;

/// What the session asked for with the message it wanted.
enum Wanted {
    Nothing,
    Command(Result<Command, String>),
    Run(RouteDecision),
    /// An extended-protocol message for the engine's statements.
    Batch,
}

pub struct EngineState {
    /// Metrics, stats, slow-query and audit logs.
    obs: Arc<crate::ops::SessionObserver>,
    svc: Arc<EngineService>,
    database: String,
    login: Arc<WorkerLogin>,
    /// `SET helios.engine` for the session, and `SET LOCAL` for the
    /// transaction under way.
    on_session: bool,
    on_local: Option<bool>,
    partitions_session: Option<usize>,
    partitions_local: Option<Option<usize>>,
    wanted: Wanted,
    /// The message a handler just gave back: not claimed again.
    given_back: bool,
    /// Statements and portals of the extended protocol.
    ext: batch::Extended,
    /// The advisor's per-shape statistics (`SHOW HELIOS QUERIES`), which
    /// count the statements the engine answers too.
    log: Option<Arc<helios_advisor::workload::QueryLog>>,
}

/// What a run needs from the session.
pub struct Ctx<'a> {
    pub cancel: &'a CancelSignal,
    pub cancels_seen: u64,
    pub max_message: usize,
}

impl EngineState {
    pub fn new(
        svc: Arc<EngineService>,
        database: &str,
        login: WorkerLogin,
        log: Option<Arc<helios_advisor::workload::QueryLog>>,
        obs: Arc<crate::ops::SessionObserver>,
    ) -> Self {
        EngineState {
            obs,
            svc,
            database: database.to_string(),
            login: Arc::new(login),
            on_session: false,
            on_local: None,
            partitions_session: None,
            partitions_local: None,
            wanted: Wanted::Nothing,
            given_back: false,
            ext: batch::Extended::default(),
            log,
        }
    }

    /// A statement the engine answered, for `SHOW HELIOS QUERIES` (when
    /// it succeeded) and the operations observers.
    fn record(&self, text: &str, took: std::time::Duration, rows: u64, error: Option<&str>) {
        let fingerprint = helios_planner::cacheable::fingerprint(text);
        if let (Some(log), None) = (&self.log, error) {
            log.record(fingerprint, text, took, rows, false);
        }
        self.obs.record(&crate::ops::QueryRecord {
            fingerprint: Some(fingerprint),
            text,
            route: crate::ops::Route::Engine,
            took,
            rows,
            error,
        });
    }

    fn on(&self) -> bool {
        self.on_local.unwrap_or(self.on_session)
    }

    fn partitions(&self) -> Option<usize> {
        self.partitions_local.unwrap_or(self.partitions_session)
    }
}

impl Intercept for EngineState {
    fn wants(&mut self, frame: &[u8], in_flight: u32) -> bool {
        self.wanted = Wanted::Nothing;
        if std::mem::take(&mut self.given_back) {
            return false;
        }
        if frame[0] != tag::QUERY {
            return self.wants_extended(frame, in_flight);
        }
        // A simple Query ends the unnamed statement and portal.
        self.ext.statements.remove("");
        self.ext.portals.remove("");
        let body = &frame[5..];
        let Some(end) = body.iter().position(|&b| b == 0) else {
            return false;
        };
        let Ok(text) = std::str::from_utf8(&body[..end]) else {
            return false;
        };
        if let Some(cmd) = command::parse(text) {
            self.wanted = Wanted::Command(cmd);
            return true;
        }
        // A statement runs in the engine only with nothing in flight.
        if in_flight > 0 {
            return false;
        }
        match route::decide(text, self.on(), &self.svc, &self.database) {
            Some(d) => {
                self.wanted = Wanted::Run(d);
                true
            }
            None => false,
        }
    }

    fn upstream_ready(&mut self, status: TransactionStatus) {
        if status == TransactionStatus::Idle {
            self.on_local = None;
            self.partitions_local = None;
        }
    }
}

impl EngineState {
    /// Parse of a statement the router sends to the engine, and Bind,
    /// Describe, Execute, Close of the engine's statements and portals.
    fn wants_extended(&mut self, frame: &[u8], in_flight: u32) -> bool {
        let mut body = &frame[5..];
        let ours = match frame[0] {
            tag::PARSE => {
                let name = get_cstr(&mut body).unwrap_or_default();
                let text = get_cstr(&mut body).unwrap_or_default();
                let routed = in_flight == 0
                    && command::parse(&text).is_none()
                    && route::decide(&text, self.on(), &self.svc, &self.database).is_some();
                if !routed {
                    self.ext.statements.remove(&name);
                }
                routed
            }
            tag::BIND => {
                let portal = get_cstr(&mut body).unwrap_or_default();
                let name = get_cstr(&mut body).unwrap_or_default();
                let ours = self.ext.statements.contains_key(&name);
                if !ours {
                    self.ext.portals.remove(&portal);
                }
                ours
            }
            tag::DESCRIBE | tag::CLOSE => match body.split_first() {
                Some((&b'S', mut rest)) => self
                    .ext
                    .statements
                    .contains_key(&get_cstr(&mut rest).unwrap_or_default()),
                Some((_, mut rest)) => self
                    .ext
                    .portals
                    .contains_key(&get_cstr(&mut rest).unwrap_or_default()),
                None => false,
            },
            tag::EXECUTE => self
                .ext
                .portals
                .contains_key(&get_cstr(&mut body).unwrap_or_default()),
            _ => false,
        };
        if ours {
            self.wanted = Wanted::Batch;
        }
        ours
    }
}

/// Handle the message the relay handed over for the engine.
pub async fn handle(relay: &mut Relay<'_>, st: &mut EngineState, ctx: &Ctx<'_>) -> io::Result<()> {
    let frame = relay.take_client_frame();
    match std::mem::replace(&mut st.wanted, Wanted::Nothing) {
        Wanted::Command(cmd) => answer(relay, st, cmd).await,
        Wanted::Run(decision) => {
            // Only between transactions, with no unsynced messages.
            if relay.upstream_status() != TransactionStatus::Idle || relay.take_handover_unsynced()
            {
                return give_back(relay, st, frame);
            }
            run::run(relay, st, frame, decision, ctx).await
        }
        Wanted::Batch => batch::handle(relay, st, frame, ctx, ctx.max_message).await,
        Wanted::Nothing => give_back(relay, st, frame),
    }
}

fn give_back(relay: &mut Relay<'_>, st: &mut EngineState, frame: Frame) -> io::Result<()> {
    st.given_back = true;
    relay.pass_client_frames(&[frame]);
    Ok(())
}

/// Write `out` (after anything pending for the client), then ReadyForQuery.
async fn finish(relay: &mut Relay<'_>, mut out: BytesMut) -> io::Result<()> {
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

fn table_arg(t: &str) -> (String, String) {
    crate::engine::split_table(t)
}

async fn answer(
    relay: &mut Relay<'_>,
    st: &mut EngineState,
    cmd: Result<Command, String>,
) -> io::Result<()> {
    let mut out = BytesMut::new();
    let in_tx = relay.upstream_status() != TransactionStatus::Idle;
    let cmd = match cmd {
        Ok(c) => c,
        Err(m) => {
            PgError::error(SqlState::SYNTAX_ERROR, m).encode(&mut out);
            return finish(relay, out).await;
        }
    };
    let show = |name: &str, value: String, out: &mut BytesMut| {
        let cols = [Column::new(name, Type::TEXT)];
        let mut rows = ResultRows::new(&cols, &[]);
        rows.describe(out);
        rows.push(&value);
        rows.end_row(out);
        helios_wire::results::command_complete("SHOW", out);
    };
    match cmd {
        Command::SetEngine { on, local } => {
            let on = on.unwrap_or(false);
            if local {
                if in_tx {
                    st.on_local = Some(on);
                }
            } else {
                st.on_session = on;
                st.on_local = None;
            }
            helios_wire::results::command_complete("SET", &mut out);
        }
        Command::SetPartitions { n, local } => {
            if local {
                if in_tx {
                    st.partitions_local = Some(n);
                }
            } else {
                st.partitions_session = n;
                st.partitions_local = None;
            }
            helios_wire::results::command_complete("SET", &mut out);
        }
        Command::ShowEngine => show(
            "helios.engine",
            if st.on() { "on" } else { "off" }.into(),
            &mut out,
        ),
        Command::ShowPartitions => show(
            "helios.engine_partitions",
            st.partitions()
                .unwrap_or_else(|| st.svc.config.partitions())
                .to_string(),
            &mut out,
        ),
        Command::CreateAcceleration { .. } if !st.svc.accelerations.sees_writes() => {
            PgError::error(
                SqlState::new("55000".to_string()),
                crate::engine::NEEDS_CACHE,
            )
            .encode(&mut out);
        }
        Command::CreateAcceleration { table, refresh } => {
            let (schema, name) = table_arg(&table);
            let added = st.svc.accelerations.add(
                st.svc.handle(),
                &st.database,
                &schema,
                &name,
                refresh,
                (*st.login).clone(),
            );
            if added {
                helios_wire::results::command_complete("CREATE HELIOS ACCELERATION", &mut out);
            } else {
                PgError::error(
                    SqlState::new("42710".to_string()),
                    format!("table \"{schema}.{name}\" is already accelerated"),
                )
                .encode(&mut out);
            }
        }
        Command::DropAcceleration { table } => {
            let (schema, name) = table_arg(&table);
            if st.svc.accelerations.remove(&st.database, &schema, &name) {
                helios_wire::results::command_complete("DROP HELIOS ACCELERATION", &mut out);
            } else {
                not_accelerated(&schema, &name, &mut out);
            }
        }
        Command::RefreshAcceleration { table } => {
            let (schema, name) = table_arg(&table);
            if st
                .svc
                .accelerations
                .refresh_now(&st.database, &schema, &name)
            {
                helios_wire::results::command_complete("REFRESH HELIOS ACCELERATION", &mut out);
            } else {
                not_accelerated(&schema, &name, &mut out);
            }
        }
        Command::ShowAccelerations => accelerations(st, &mut out),
    }
    finish(relay, out).await
}

fn not_accelerated(schema: &str, name: &str, out: &mut BytesMut) {
    PgError::error(
        SqlState::new("42704".to_string()),
        format!("table \"{schema}.{name}\" is not accelerated"),
    )
    .with_hint("SHOW HELIOS ACCELERATIONS lists the accelerated tables.")
    .encode(out);
}

fn accelerations(st: &EngineState, out: &mut BytesMut) {
    let cols = [
        Column::new("table", Type::TEXT),
        Column::new("database", Type::TEXT),
        Column::new("state", Type::TEXT),
        Column::new("rows", Type::INT8),
        Column::new("bytes", Type::INT8),
        Column::new("partitions", Type::INT8),
        Column::new("refresh", Type::TEXT),
        Column::new("last_refresh", Type::TEXT),
        Column::new("load_ms", Type::FLOAT8),
        Column::new("staleness_s", Type::FLOAT8),
    ];
    let mut rows = ResultRows::new(&cols, &[]);
    rows.describe(out);
    let all = st.svc.accelerations.status();
    for a in &all {
        rows.push(&a.table);
        rows.push(&a.database);
        rows.push(&a.state);
        rows.push(&a.rows);
        rows.push(&a.bytes);
        rows.push(&a.partitions);
        rows.push(&a.refresh);
        rows.push(
            &a.last_refresh
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
        );
        rows.push(&a.load_ms.map(|v| (v * 10.0).round() / 10.0));
        rows.push(&a.staleness_s.map(|v| (v * 10.0).round() / 10.0));
        rows.end_row(out);
    }
    rows.complete("SHOW", out);
}

/// Get the text of a Query frame.
fn query_text(frame: &Frame) -> String {
    get_cstr(&mut &frame.body[..]).unwrap_or_default()
}
