//! Helios's admin commands over SQL, for any client:
//!
//! ```text
//! SHOW HELIOS STATS | POOLS | CLIENTS | SERVERS | CONFIG | VERSION
//! HELIOS RELOAD | HELIOS PAUSE | HELIOS RESUME      (admin.users only: else 42501)
//! ```
//!
//! (`SHOW HELIOS QUERIES` belongs to the advisor, `SHOW HELIOS CACHES` to
//! the cache.) Columns follow PgBouncer's `SHOW` where it has the same
//! notion. This module parses and answers; the session modules carry the
//! answer over either protocol.

use std::time::{Duration, SystemTime};

use helios_wire::results::{Column, ResultRows, Type};
use helios_wire::{PgError, SqlState};

use crate::server::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Stats,
    Pools,
    Clients,
    Servers,
    Config,
    Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminCommand {
    Show(Show),
    Reload,
    Pause,
    Resume,
}

/// The command a statement text is, if it is one of these.
pub fn parse(text: &str) -> Option<AdminCommand> {
    let text = strip_comments(text);
    let words: Vec<String> = text
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Some(match words.as_slice() {
        ["SHOW", "HELIOS", "STATS"] => AdminCommand::Show(Show::Stats),
        ["SHOW", "HELIOS", "POOLS"] => AdminCommand::Show(Show::Pools),
        ["SHOW", "HELIOS", "CLIENTS"] => AdminCommand::Show(Show::Clients),
        ["SHOW", "HELIOS", "SERVERS"] => AdminCommand::Show(Show::Servers),
        ["SHOW", "HELIOS", "CONFIG"] => AdminCommand::Show(Show::Config),
        ["SHOW", "HELIOS", "VERSION"] => AdminCommand::Show(Show::Version),
        ["HELIOS", "RELOAD"] => AdminCommand::Reload,
        ["HELIOS", "PAUSE"] => AdminCommand::Pause,
        ["HELIOS", "RESUME"] => AdminCommand::Resume,
        _ => return None,
    })
}

/// Leading `/* ... */` and `-- ...` comments (drivers and tools add them).
fn strip_comments(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return s;
        }
    }
}

/// A value in an answer row.
pub enum Cell {
    Text(String),
    Int(i64),
    Bool(bool),
    Null,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}
impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Int(n)
    }
}
impl From<u64> for Cell {
    fn from(n: u64) -> Cell {
        Cell::Int(n.min(i64::MAX as u64) as i64)
    }
}
impl From<usize> for Cell {
    fn from(n: usize) -> Cell {
        Cell::Int(n as i64)
    }
}
impl From<bool> for Cell {
    fn from(b: bool) -> Cell {
        Cell::Bool(b)
    }
}

/// What a command answers: rows (or none) and its CommandComplete tag.
pub struct Answer {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    pub tag: String,
    /// A NOTICE to send first.
    pub notice: Option<String>,
}

impl Answer {
    fn done(tag: &str, notice: Option<String>) -> Answer {
        Answer {
            columns: Vec::new(),
            rows: Vec::new(),
            tag: tag.to_string(),
            notice,
        }
    }

    /// The RowDescription (none for a command without rows).
    pub fn describe(&self, formats: &[i16], out: &mut bytes::BytesMut) {
        if !self.columns.is_empty() {
            ResultRows::new(&self.columns, formats).describe(out);
        }
    }

    /// The rows and CommandComplete.
    pub fn encode_rows(&self, formats: &[i16], out: &mut bytes::BytesMut) {
        if self.columns.is_empty() {
            helios_wire::results::command_complete(&self.tag, out);
            return;
        }
        let mut rows = ResultRows::new(&self.columns, formats);
        for row in &self.rows {
            for cell in row {
                match cell {
                    Cell::Text(s) => rows.push(s),
                    Cell::Int(n) => rows.push(n),
                    Cell::Bool(b) => rows.push(b),
                    Cell::Null => rows.push(&None::<String>),
                }
            }
            rows.end_row(out);
        }
        rows.complete("SHOW", out);
    }
}

/// The columns a command answers with, for Describe.
pub fn columns(cmd: AdminCommand) -> Vec<Column> {
    let cols = |spec: &[(&str, Type)]| {
        spec.iter()
            .map(|(n, t)| Column::new(n, t.clone()))
            .collect::<Vec<_>>()
    };
    match cmd {
        AdminCommand::Show(Show::Stats) => cols(&[
            ("database", Type::TEXT),
            ("total_query_count", Type::INT8),
            ("total_error_count", Type::INT8),
            ("total_cache_hits", Type::INT8),
            ("total_engine_queries", Type::INT8),
            ("total_received", Type::INT8),
            ("total_sent", Type::INT8),
            ("total_query_time", Type::INT8),
            ("total_wait_time", Type::INT8),
            ("avg_query_time", Type::INT8),
            ("avg_wait_time", Type::INT8),
        ]),
        AdminCommand::Show(Show::Pools) => cols(&[
            ("database", Type::TEXT),
            ("user", Type::TEXT),
            ("cl_active", Type::INT8),
            ("cl_waiting", Type::INT8),
            ("sv_active", Type::INT8),
            ("sv_idle", Type::INT8),
            ("maxwait", Type::INT8),
            ("maxwait_us", Type::INT8),
            ("pool_mode", Type::TEXT),
        ]),
        AdminCommand::Show(Show::Clients) => cols(&[
            ("id", Type::INT8),
            ("user", Type::TEXT),
            ("database", Type::TEXT),
            ("state", Type::TEXT),
            ("addr", Type::TEXT),
            ("tls", Type::BOOL),
            ("application_name", Type::TEXT),
            ("connect_time", Type::TEXT),
            ("state_duration", Type::TEXT),
            ("requests", Type::INT8),
            ("remote_pid", Type::INT8),
        ]),
        AdminCommand::Show(Show::Servers) => cols(&[
            ("user", Type::TEXT),
            ("database", Type::TEXT),
            ("state", Type::TEXT),
            ("addr", Type::TEXT),
            ("tls", Type::BOOL),
            ("connect_time", Type::TEXT),
            ("remote_pid", Type::INT8),
            ("client_id", Type::INT8),
        ]),
        AdminCommand::Show(Show::Config) => cols(&[
            ("key", Type::TEXT),
            ("value", Type::TEXT),
            ("default", Type::TEXT),
            ("changeable", Type::BOOL),
        ]),
        AdminCommand::Show(Show::Version) => cols(&[("version", Type::TEXT)]),
        AdminCommand::Reload | AdminCommand::Pause | AdminCommand::Resume => Vec::new(),
    }
}

/// Run a command for `user`, whose own client connection is `client_id`
/// (`HELIOS PAUSE` does not wait for the session that asked).
pub async fn run(
    server: &Server,
    user: &str,
    client_id: Option<u64>,
    cmd: AdminCommand,
) -> Result<Answer, PgError> {
    let columns = columns(cmd);
    let rows = match cmd {
        AdminCommand::Show(what) => show(server, what),
        other => {
            if !server.config_now().admin.users.iter().any(|u| u == user) {
                return Err(PgError::error(
                    SqlState::INSUFFICIENT_PRIVILEGE,
                    format!(
                        "permission denied: only admin users may run {}",
                        verb(other)
                    ),
                )
                .with_hint("List the user in [admin] users in Helios's configuration."));
            }
            return act(server, other, client_id).await;
        }
    };
    Ok(Answer {
        columns,
        rows,
        tag: "SHOW".into(),
        notice: None,
    })
}

fn verb(cmd: AdminCommand) -> &'static str {
    match cmd {
        AdminCommand::Reload => "HELIOS RELOAD",
        AdminCommand::Pause => "HELIOS PAUSE",
        AdminCommand::Resume => "HELIOS RESUME",
        AdminCommand::Show(_) => "SHOW HELIOS",
    }
}

async fn act(
    server: &Server,
    cmd: AdminCommand,
    client_id: Option<u64>,
) -> Result<Answer, PgError> {
    match cmd {
        AdminCommand::Reload => match server.reload() {
            Ok(report) => Ok(Answer::done("HELIOS RELOAD", Some(report.describe()))),
            Err(e) => Err(PgError::error(
                SqlState::CONFIG_FILE_ERROR,
                format!("configuration not reloaded: {e}"),
            )
            .with_hint("The running configuration is unchanged.")),
        },
        AdminCommand::Pause => {
            server.ops.lifecycle.set_paused(true);
            tracing::info!("paused: new requests wait for HELIOS RESUME");
            // Wait until nothing is under way, as PgBouncer's PAUSE does,
            // but not forever: a session idle in a transaction may never end it.
            let limit = server.config_now().server.shutdown_timeout;
            let deadline = tokio::time::Instant::now() + limit;
            let mut busy = server.ops.clients.busy(client_id);
            while busy > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                busy = server.ops.clients.busy(client_id);
            }
            let notice = (busy > 0).then(|| {
                format!("{busy} client(s) still have a transaction under way after {}; their next transaction waits", humantime::format_duration(limit))
            });
            Ok(Answer::done("HELIOS PAUSE", notice))
        }
        AdminCommand::Resume => {
            let was = server.ops.lifecycle.set_paused(false);
            tracing::info!("resumed");
            Ok(Answer::done(
                "HELIOS RESUME",
                (!was).then(|| "Helios was not paused".to_string()),
            ))
        }
        AdminCommand::Show(_) => unreachable!("handled by run"),
    }
}

fn show(server: &Server, what: Show) -> Vec<Vec<Cell>> {
    match what {
        Show::Stats => server
            .ops
            .stats
            .snapshot()
            .into_iter()
            .map(|(db, s)| {
                use std::sync::atomic::Ordering::Relaxed;
                let queries = s.queries.load(Relaxed);
                let waits = s.waits.load(Relaxed);
                let qt = s.query_time.load(Relaxed);
                let wt = s.wait_time.load(Relaxed);
                vec![
                    db.into(),
                    queries.into(),
                    s.errors.load(Relaxed).into(),
                    s.cache_hits.load(Relaxed).into(),
                    s.engine_queries.load(Relaxed).into(),
                    s.received.load(Relaxed).into(),
                    s.sent.load(Relaxed).into(),
                    qt.into(),
                    wt.into(),
                    (qt / queries.max(1)).into(),
                    (wt / waits.max(1)).into(),
                ]
            })
            .collect(),
        Show::Pools => pools(server),
        Show::Clients => server
            .ops
            .clients
            .snapshot()
            .into_iter()
            .map(|c| {
                let pid = c.upstream_pid.load(std::sync::atomic::Ordering::Relaxed);
                vec![
                    (c.id as i64).into(),
                    c.user.lock().expect("user").clone().into(),
                    c.database.lock().expect("database").clone().into(),
                    c.state().as_str().into(),
                    c.addr.clone().into(),
                    c.tls.into(),
                    c.application_name.lock().expect("app").clone().into(),
                    timestamp(c.connected_at).into(),
                    secs(c.in_state_for()).into(),
                    c.requests.load(std::sync::atomic::Ordering::Relaxed).into(),
                    if pid == 0 {
                        Cell::Null
                    } else {
                        (pid as i64).into()
                    },
                ]
            })
            .collect(),
        Show::Servers => servers(server),
        Show::Config => {
            let defaults = crate::ops::reload::flatten_redacted(&crate::config::Config::default());
            crate::ops::reload::flatten_redacted(&server.config_now())
                .into_iter()
                .map(|(k, v)| {
                    let default = defaults
                        .iter()
                        .find(|(dk, _)| *dk == k)
                        .map_or(Cell::Null, |(_, dv)| dv.clone().into());
                    let live = crate::ops::reload::is_live(&k);
                    vec![k.into(), v.into(), default, live.into()]
                })
                .collect()
        }
        Show::Version => vec![vec![crate::ops::version().into()]],
    }
}

fn pools(server: &Server) -> Vec<Vec<Cell>> {
    let Some(pool) = &server.pool else {
        return Vec::new();
    };
    let clients = server.ops.clients.snapshot();
    pool.shard_stats()
        .into_iter()
        .map(|s| {
            let mine = clients.iter().filter(|c| {
                *c.database.lock().expect("database") == s.key.database
                    && *c.user.lock().expect("user") == s.key.user
            });
            let (mut active, mut waiting, mut maxwait) = (0usize, 0usize, Duration::ZERO);
            for c in mine {
                match c.state() {
                    crate::ops::ClientState::Waiting => {
                        waiting += 1;
                        maxwait = maxwait.max(c.in_state_for());
                    }
                    crate::ops::ClientState::Startup => {}
                    _ => active += 1,
                }
            }
            vec![
                s.key.database.clone().into(),
                s.key.user.clone().into(),
                active.into(),
                waiting.into(),
                s.in_use.into(),
                s.idle.into(),
                (maxwait.as_secs() as i64).into(),
                (i64::from(maxwait.subsec_micros())).into(),
                "session".into(),
            ]
        })
        .collect()
}

fn servers(server: &Server) -> Vec<Vec<Cell>> {
    let Some(pool) = &server.pool else {
        return Vec::new();
    };
    let addr = pool.target().describe();
    let mut rows = Vec::new();
    for c in server.ops.clients.snapshot() {
        let pid = c.upstream_pid.load(std::sync::atomic::Ordering::Relaxed);
        if pid == 0 {
            continue;
        }
        let us = c
            .upstream_connected_us
            .load(std::sync::atomic::Ordering::Relaxed);
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(us);
        rows.push(vec![
            c.user.lock().expect("user").clone().into(),
            c.database.lock().expect("database").clone().into(),
            "active".into(),
            addr.clone().into(),
            c.upstream_tls
                .load(std::sync::atomic::Ordering::Relaxed)
                .into(),
            timestamp(at).into(),
            (pid as i64).into(),
            (c.id as i64).into(),
        ]);
    }
    for i in pool.idle_conns() {
        rows.push(vec![
            i.key.user.into(),
            i.key.database.into(),
            "idle".into(),
            i.endpoint.into(),
            i.tls.into(),
            timestamp(i.connected_at).into(),
            (i.pid as i64).into(),
            Cell::Null,
        ]);
    }
    rows
}

fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// `2026-12-07 12:00:00 UTC`.
pub fn timestamp(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.replace('T', " ").replace('Z', " UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_commands_and_nothing_else() {
        assert_eq!(
            parse("show helios stats;"),
            Some(AdminCommand::Show(Show::Stats))
        );
        assert_eq!(
            parse("/* app */ SHOW  HELIOS\n POOLS"),
            Some(AdminCommand::Show(Show::Pools))
        );
        assert_eq!(parse("helios reload"), Some(AdminCommand::Reload));
        assert_eq!(parse("HELIOS PAUSE ;"), Some(AdminCommand::Pause));
        assert_eq!(parse("SHOW HELIOS QUERIES"), None);
        assert_eq!(parse("SHOW HELIOS CACHES"), None);
        assert_eq!(parse("select 'HELIOS RELOAD'"), None);
        assert_eq!(parse("SHOW search_path"), None);
    }
}
