//! Shared set-up for the engine tests: fixtures, rows as text, notices,
//! and how a test tells that a statement ran in the engine.
//!
//! Helios runs with `RUST_LOG=helios=debug`; the engine logs "statement
//! runs in the engine" (with the tables it read from accelerated copies
//! and by scan) before it sends a row, and "engine statement done" with
//! `route="accelerated"` or `route="federated"` before ReadyForQuery. So
//! once the client has a statement's answer, its lines are in the log.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

use crate::common::{sqlstate, Helios, NoTls, PgServer};

/// A PostgreSQL with `setup` run on it, and Helios in front of it with
/// `extra` config appended.
pub fn start(setup: &str, extra: &str) -> (PgServer, Helios) {
    let pg = PgServer::start();
    if !setup.is_empty() {
        pg.psql(setup);
    }
    let h = Helios::start(&pg, extra);
    (pg, h)
}

/// As [`start`], with PostgreSQL logging every statement (to read the
/// COPY statements the scans ran from `postgres.log`).
pub fn start_logged(setup: &str, extra: &str) -> (PgServer, Helios) {
    let pg = PgServer::start_with(&["log_statement=all"]);
    if !setup.is_empty() {
        pg.psql(setup);
    }
    let h = Helios::start(&pg, extra);
    (pg, h)
}

/// Every row of a simple query, as text (NULL as None).
pub async fn rows(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The single value of a simple query.
pub async fn value(c: &Client, sql: &str) -> String {
    let r = rows(c, sql).await;
    assert_eq!(r.len(), 1, "{sql}: {r:?}");
    assert_eq!(r[0].len(), 1, "{sql}: {r:?}");
    r[0][0].clone().unwrap_or_else(|| panic!("{sql}: NULL"))
}

/// The SQLSTATE of a statement that must fail.
pub async fn sqlstate_of(c: &Client, sql: &str) -> String {
    let e = c
        .simple_query(sql)
        .await
        .expect_err(&format!("{sql} should fail"));
    sqlstate(&e).unwrap_or_else(|| panic!("{sql}: no SQLSTATE in {e:?}"))
}

/// Run statements, panicking with the statement on error.
pub async fn exec(c: &Client, sql: &str) {
    c.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// A client whose notices are collected (message texts, in order).
pub async fn connect_noticed(conn_str: &str) -> (Client, Arc<Mutex<Vec<String>>>) {
    let (client, mut conn) = tokio_postgres::connect(conn_str, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {conn_str}: {e}"));
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = futures_util::StreamExt::next(&mut messages).await {
            if let AsyncMessage::Notice(n) = m {
                sink.lock().unwrap().push(n.message().to_string());
            }
        }
    });
    (client, notices)
}

/// Take the notices collected so far.
pub fn take(notices: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *notices.lock().unwrap())
}

/// The start of the NOTICE sent when the client asked for the engine and
/// it could not run the statement.
pub const DECLINED: &str = "helios: the engine cannot run this statement (";

/// Helios's log without terminal colours.
pub fn plain_log(h: &Helios) -> String {
    let raw = h.log();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What the engine logged: statements it ran, and their routes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EngineLog {
    /// "statement runs in the engine" lines.
    pub runs: usize,
    /// `route=` of each "engine statement done", in order.
    pub routes: Vec<String>,
    /// "engine declined; relaying" lines.
    pub declined: usize,
}

pub fn engine_log(h: &Helios) -> EngineLog {
    let mut log = EngineLog::default();
    for line in plain_log(h).lines() {
        if line.contains("statement runs in the engine") {
            log.runs += 1;
        } else if line.contains("engine declined; relaying") {
            log.declined += 1;
        } else if line.contains("engine statement done") {
            let route = line
                .split("route=")
                .nth(1)
                .map(|r| r.trim().trim_matches('"').to_string())
                .unwrap_or_default();
            log.routes.push(route);
        }
    }
    log
}

/// How a statement was answered, as the engine's log tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Not looked at by the engine: relayed to PostgreSQL.
    Relayed,
    /// Routed to the engine, which could not run it: relayed.
    Declined,
    /// In the engine, reading the upstream by scan.
    Federated,
    /// In the engine, from accelerated copies only.
    Accelerated,
}

/// Run `sql` (simple protocol) and say where it ran, with its rows.
pub async fn run(h: &Helios, c: &Client, sql: &str) -> (Ran, Vec<Vec<Option<String>>>) {
    let before = engine_log(h);
    let got = rows(c, sql).await;
    (ran_since(h, &before, sql), got)
}

/// Run `sql`, which must fail, and say where it ran, with its SQLSTATE.
pub async fn run_err(h: &Helios, c: &Client, sql: &str) -> (Ran, String) {
    let before = engine_log(h);
    let code = sqlstate_of(c, sql).await;
    (ran_since(h, &before, sql), code)
}

/// Where the one statement since `before` ran.
pub fn ran_since(h: &Helios, before: &EngineLog, sql: &str) -> Ran {
    let after = engine_log(h);
    let runs = after.runs - before.runs;
    let declined = after.declined - before.declined;
    let routes = &after.routes[before.routes.len()..];
    assert!(
        runs <= 1 && declined <= 1 && routes.len() <= 1,
        "{sql}: more than one engine statement logged: {after:?} after {before:?}"
    );
    match (runs, declined) {
        (0, 0) => Ran::Relayed,
        // Declined before it ran, or when it failed before any row was
        // sent (PostgreSQL then answers).
        (_, 1) => Ran::Declined,
        _ => match routes.first().map(String::as_str) {
            Some("accelerated") => Ran::Accelerated,
            Some("federated") => Ran::Federated,
            // Failed before its end was logged (an error in the scan).
            _ => Ran::Federated,
        },
    }
}

/// The statements PostgreSQL logged (`log_statement = all`) that contain
/// `needle`, from `postgres.log`.
pub fn upstream_statements(pg: &PgServer, needle: &str) -> Vec<String> {
    let log = std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("statement: ") && l.contains(needle))
        .map(|l| l.split("statement: ").nth(1).unwrap_or(l).to_string())
        .collect()
}

/// Upper bound for anything a test waits on, so a hang fails instead.
pub async fn within<F: Future>(what: &str, secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Poll `check` every 50 ms until it returns `Some`, for up to `secs`.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
