//! Shared helpers: logging in through Helios, psql runs, upstream pg_hba setup.

use std::future::Future;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, pg_bindir, try_connect, Helios, PgServer};
use tokio_postgres::error::DbError;
use tokio_postgres::{Client, SimpleQueryMessage};

pub(crate) async fn within<F: Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs}s"))
}

pub(crate) fn db_error(e: &tokio_postgres::Error) -> &DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("expected an error from the server, got: {e:?}"))
}

/// A connection string for `user` (with `password`, if any) through Helios.
pub(crate) fn cs(h: &Helios, user: &str, password: Option<&str>) -> String {
    match password {
        Some(p) => format!(
            "{} password='{}'",
            h.conn_str(user),
            p.replace('\\', "\\\\").replace('\'', "\\'")
        ),
        None => h.conn_str(user),
    }
}

pub(crate) async fn login(h: &Helios, user: &str, password: Option<&str>) -> Client {
    within(20, "connect", try_connect(&cs(h, user, password)))
        .await
        .unwrap_or_else(|e| panic!("{user} with {password:?} should get in: {e:?}"))
}

/// The error a login gets; fails the test if the login succeeds.
pub(crate) async fn refused(h: &Helios, user: &str, password: Option<&str>) -> DbError {
    match within(20, "connect", try_connect(&cs(h, user, password))).await {
        Ok(_) => panic!("{user} with password {password:?} must not get in"),
        Err(e) => db_error(&e).clone(),
    }
}

/// The first column of the first row of a simple query.
pub(crate) async fn scalar(client: &Client, sql: &str) -> Option<String> {
    let msgs = within(20, sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

pub(crate) async fn current_user(c: &Client) -> String {
    scalar(c, "select current_user").await.unwrap()
}

pub(crate) fn assert_password_failed(e: &DbError, user: &str) {
    assert_eq!(e.severity(), "FATAL", "{e:?}");
    assert_eq!(e.code().code(), "28P01", "{e:?}");
    assert_eq!(
        e.message(),
        format!("password authentication failed for user \"{user}\""),
        "{e:?}"
    );
}

/// Everything a client sees of a failed login, with the user's name taken out.
pub(crate) fn shape(
    e: &DbError,
    user: &str,
) -> (String, String, String, Option<String>, Option<String>) {
    (
        e.severity().to_string(),
        e.code().code().to_string(),
        e.message().replace(user, "<user>"),
        e.detail().map(str::to_string),
        e.hint().map(str::to_string),
    )
}

/// Run a command, failing the test if it takes longer than `secs`.
pub(crate) fn run_bounded(mut cmd: Command, secs: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {secs}s:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// psql with a libpq connection string, never prompting for a password.
pub(crate) fn psql_conninfo(conninfo: &str, password: Option<&str>, sql: &str) -> Output {
    let mut c = Command::new(pg_bindir().join("psql"));
    c.args([
        "-X",
        "-q",
        "-At",
        "-w",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
        "-c",
        sql,
    ])
    .env("PGCONNECT_TIMEOUT", "10");
    for var in [
        "PGPASSWORD",
        "PGSSLMODE",
        "PGCHANNELBINDING",
        "PGSERVICE",
        "PGPASSFILE",
    ] {
        c.env_remove(var);
    }
    c.env("PGPASSFILE", "/nonexistent");
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    run_bounded(c, 30)
}

pub(crate) fn psql_via(
    h: &Helios,
    user: &str,
    password: Option<&str>,
    extra: &str,
    sql: &str,
) -> Output {
    let conninfo = format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres {extra}",
        h.port
    );
    psql_conninfo(&conninfo, password, sql)
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn assert_psql_ok(o: &Output, want: &str) {
    assert!(o.status.success(), "psql failed: {}", stderr(o));
    assert_eq!(stdout(o), want);
}

/// Make the upstream ask every user but `postgres` for a password (`method`
/// is a pg_hba.conf method), and wait until it does.
pub(crate) fn require_passwords(pg: &PgServer, method: &str, probe_user: &str) {
    let hba = pg.dir.path().join("data").join("pg_hba.conf");
    std::fs::write(
        &hba,
        format!(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 {method}\nhost all all ::1/128 {method}\n"
        ),
    )
    .unwrap();
    assert_eq!(pg.psql("select pg_reload_conf()").trim(), "t");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = common::psql(pg.port, probe_user, &["-w", "-c", "select 1"]);
        if !o.status.success() && stderr(&o).contains("password") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the upstream does not ask {probe_user} for a password after the reload: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn postgres_log(pg: &PgServer) -> String {
    std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default()
}

/// A raw connection's bytes until the server closes it; fails the test if
/// it stays open past the read timeout.
pub(crate) fn read_to_close(s: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return bytes,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}
