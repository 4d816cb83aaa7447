//! Shared set-up for the cache tests.

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Helios, PgServer};

const ITEMS: &str =
    "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2)); \
     INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 20) g;";

/// A PostgreSQL with a small table `items(id, name, price)` and Helios in
/// front of it with `extra` config appended (e.g. `[cache]\nmode = "auto"`).
pub fn start(extra: &str) -> (PgServer, Helios) {
    start_with("", extra)
}

/// As [`start`], with more SQL run on the upstream before Helios starts.
pub fn start_with(setup: &str, extra: &str) -> (PgServer, Helios) {
    let pg = PgServer::start();
    pg.psql(ITEMS);
    if !setup.is_empty() {
        pg.psql(setup);
    }
    let h = Helios::start(&pg, extra);
    (pg, h)
}

pub const AUTO: &str = "[cache]\nmode = \"auto\"\n";
pub const NOTIFY: &str = "[cache]\nmode = \"auto\"\ninvalidation = \"notify\"\n";

/// `invalidation = "notify"`: items (and `setup`'s tables), the triggers of
/// `helios install-invalidation`, then Helios.
pub fn start_notify(setup: &str) -> (PgServer, Helios) {
    let pg = PgServer::start();
    pg.psql(ITEMS);
    if !setup.is_empty() {
        pg.psql(setup);
    }
    install_invalidation(&pg);
    let h = Helios::start(&pg, NOTIFY);
    (pg, h)
}

/// Run `helios install-invalidation` the way an operator would.
pub fn install_invalidation(pg: &PgServer) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("helios.toml");
    std::fs::write(
        &config,
        format!("[upstream]\nurl = \"{}\"\n{NOTIFY}", pg.url()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_helios"))
        .arg("install-invalidation")
        .arg("--config")
        .arg(&config)
        .env_remove("HELIOS_CONFIG")
        .output()
        .expect("running helios install-invalidation");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "install-invalidation failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As superuser it must also watch DDL; the DDL tests depend on it.
    assert!(stdout.contains("DDL event trigger installed"), "{stdout}");
}

/// Upper bound for anything a test waits on, so a hang fails instead.
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A change made straight on the upstream, which Helios (in `writes` mode)
/// does not see: a cached read still shows the old value.
pub fn change_behind_helios(pg: &PgServer, sql: &str) {
    pg.psql(sql);
}

/// Read `q` through Helios, change the upstream behind its back, read
/// again: the second read must show the first value, i.e. it came from the
/// cache. Returns that value. Tests of invalidation start with this, so a
/// later "new value" cannot be explained by the entry never having existed.
pub async fn assert_cached(
    pg: &PgServer,
    c: &tokio_postgres::Client,
    q: &str,
    behind: &str,
) -> String {
    let first = one(c, q).await;
    change_behind_helios(pg, behind);
    assert_eq!(
        one(c, q).await,
        first,
        "{q}: expected a hit after `{behind}`"
    );
    first
}

/// `SHOW HELIOS CACHES` as (query, hits, misses, entries).
pub async fn caches(c: &tokio_postgres::Client) -> Vec<(String, i64, i64, i64)> {
    c.simple_query("SHOW HELIOS CACHES")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((
                r.get("query").unwrap().to_string(),
                r.get("hits").unwrap().parse().unwrap(),
                r.get("misses").unwrap().parse().unwrap(),
                r.get("entries").unwrap().parse().unwrap(),
            )),
            _ => None,
        })
        .collect()
}

/// Hits counted for the statement shape whose listed query is `q` (0 if unlisted).
pub async fn hits(c: &tokio_postgres::Client, q: &str) -> i64 {
    caches(c)
        .await
        .into_iter()
        .filter(|r| r.0 == q)
        .map(|r| r.1)
        .sum()
}

/// Read `q` until `SHOW HELIOS CACHES` counts a hit for it: in notify mode
/// Helios relays without caching until its listener is connected, and a
/// behind-the-back change cannot reveal a hit there (it is notified).
pub async fn wait_cached(c: &tokio_postgres::Client, q: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        one(c, q).await;
        if hits(c, q).await > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{q} was never served from the cache: {:?}",
            caches(c).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first column of every row of a simple query, as text.
pub async fn column(c: &tokio_postgres::Client, sql: &str) -> Vec<Option<String>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .collect()
}

pub async fn one(c: &tokio_postgres::Client, sql: &str) -> String {
    column(c, sql)
        .await
        .into_iter()
        .next()
        .flatten()
        .unwrap_or_else(|| panic!("{sql}: no value"))
}

/// Run statements, panicking with the statement on error.
pub async fn exec(c: &tokio_postgres::Client, sql: &str) {
    c.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
