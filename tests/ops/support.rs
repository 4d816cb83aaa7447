//! Shared helpers for the operations tests: set-up, SQL result helpers, a
//! client connection that keeps its notices and how it ended, polling,
//! signals (and, re-exported, the HTTP client and metrics parser of `http`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

use crate::common::{self, Helios, PgServer};
pub use crate::http::*;

/// How long anything a test waits for may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A token long enough for `admin.token`.
pub const TOKEN: &str = "ops-test-token-0123456789abcdef";

/// A PostgreSQL with `items(id, name)` (ids 1..=5, names `item <id>`) and
/// Helios in front of it with `extra` TOML appended.
pub fn start(extra: &str) -> (PgServer, Helios) {
    let pg = PgServer::start();
    pg.psql(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL); \
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5) g;",
    );
    let h = Helios::start(&pg, extra);
    (pg, h)
}

// ---------------------------------------------------------------- SQL

/// A simple query's result: column names and rows as text.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Table {
    pub fn col(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns))
    }

    /// `row`'s value in column `name`.
    pub fn cell<'a>(&self, row: &'a [Option<String>], name: &str) -> Option<&'a str> {
        row[self.col(name)].as_deref()
    }

    /// Rows whose column `name` is `value`.
    pub fn rows_where(&self, name: &str, value: &str) -> Vec<&Vec<Option<String>>> {
        let i = self.col(name);
        self.rows
            .iter()
            .filter(|r| r[i].as_deref() == Some(value))
            .collect()
    }
}

pub async fn table(c: &Client, sql: &str) -> Table {
    let msgs = within(sql, c.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut t = Table {
        columns: Vec::new(),
        rows: Vec::new(),
    };
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                t.columns = cols.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(r) => {
                t.rows
                    .push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
            _ => {}
        }
    }
    t
}

/// The single value of a simple query.
pub async fn value(c: &Client, sql: &str) -> String {
    let t = table(c, sql).await;
    assert_eq!(t.rows.len(), 1, "{sql}: {:?}", t.rows);
    t.rows[0][0].clone().unwrap_or_default()
}

/// The SQLSTATE of a statement that must fail (simple protocol).
pub async fn sqlstate_of(c: &Client, sql: &str) -> String {
    let e = within(sql, c.simple_query(sql))
        .await
        .expect_err(&format!("{sql} should fail"));
    common::sqlstate(&e).unwrap_or_else(|| panic!("{sql}: no SQLSTATE in {e}"))
}

/// `SHOW HELIOS CONFIG`'s value for `key`.
pub async fn config_value(c: &Client, key: &str) -> String {
    let t = table(c, "SHOW HELIOS CONFIG").await;
    let rows = t.rows_where("key", key);
    assert_eq!(rows.len(), 1, "{key} in SHOW HELIOS CONFIG: {:?}", t.rows);
    t.cell(rows[0], "value").unwrap_or_default().to_string()
}

/// A client connection that records its NOTICEs and how it ended.
pub struct Session {
    pub client: Client,
    notices: Arc<Mutex<Vec<String>>>,
    /// `Some(sqlstate)` once the connection ended (`Some(None)`: no error).
    ended: Arc<Mutex<Option<Option<String>>>>,
}

impl Session {
    pub async fn open(conn_str: &str) -> Session {
        let (client, mut conn) = tokio_postgres::connect(conn_str, common::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect {conn_str}: {e}"));
        let notices = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(None));
        let (n, e) = (notices.clone(), ended.clone());
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notice(d))) => {
                        n.lock().unwrap().push(d.message().to_string());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        *e.lock().unwrap() = Some(common::sqlstate(&err));
                        return;
                    }
                    None => {
                        *e.lock().unwrap() = Some(None);
                        return;
                    }
                }
            }
        });
        Session {
            client,
            notices,
            ended,
        }
    }

    pub fn notices(&self) -> Vec<String> {
        self.notices.lock().unwrap().clone()
    }

    /// `None` while open; `Some(sqlstate of the error it ended with)`.
    pub fn ended(&self) -> Option<Option<String>> {
        self.ended.lock().unwrap().clone()
    }

    /// Wait until the server has closed the connection; the SQLSTATE it
    /// gave (if it sent an error).
    pub async fn wait_ended(&self, what: &str) -> Option<String> {
        poll(what, || async { self.ended() }).await
    }
}

// ---------------------------------------------------------------- waiting

/// Fail instead of hanging.
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?}: {what}"))
}

/// Call `f` until it gives `Some`, for up to [`DEADLINE`].
pub async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Send `sig` ("TERM", "HUP", ...) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Wait for the Helios process to exit; its exit status.
pub async fn wait_exit(h: &mut Helios) -> std::process::ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = h.child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "helios did not exit within {DEADLINE:?}:\n{}",
            h.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rewrite Helios's config file with `from` replaced by `to` (which must be there).
pub fn edit_config(h: &Helios, from: &str, to: &str) {
    let path = h.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in the config:\n{text}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}
