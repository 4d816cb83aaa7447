//! The audit log (one JSON line per statement, literals redacted) and the
//! slow-query log.

use std::path::Path;

use serde_json::Value;

use crate::common::{self, Helios, PgServer};
use crate::support::{poll, scrape, sqlstate_of, value, Session};

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Wait for the audit record whose statement contains `needle`.
async fn record(path: &Path, needle: &str) -> Value {
    poll(&format!("an audit record for {needle:?}"), || async {
        audit_lines(path)
            .into_iter()
            .find(|r| r["statement"].as_str().is_some_and(|s| s.contains(needle)))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_records_each_statement_with_literals_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let pg = PgServer::start();
    pg.psql(
        "CREATE TABLE accounts (id int PRIMARY KEY, secret text); \
         INSERT INTO accounts VALUES (42, 'hunter2'), (43, 'swordfish'); \
         CREATE ROLE alice LOGIN; GRANT SELECT ON accounts TO alice;",
    );
    let h = Helios::start(
        &pg,
        &format!(
            "[audit]\nenabled = true\nfile = \"{}\"\nredact_literals = true\n",
            path.display()
        ),
    );
    let c = common::connect(&format!(
        "{} application_name=audit-app",
        h.conn_str("postgres")
    ))
    .await;
    let alice = common::connect(&h.conn_str("alice")).await;

    assert_eq!(
        value(&c, "SELECT secret FROM accounts WHERE id = 42").await,
        "hunter2"
    );
    assert_eq!(
        sqlstate_of(&c, "SELECT * FROM missing_table WHERE id = 7").await,
        "42P01"
    );
    assert_eq!(
        value(&alice, "SELECT id FROM accounts WHERE secret = 'swordfish'").await,
        "43"
    );
    for _ in 0..2 {
        assert_eq!(
            value(
                &c,
                "/*+ cache */ SELECT count(*) FROM accounts WHERE id > 40"
            )
            .await,
            "2"
        );
    }
    assert!(value(&c, "SHOW HELIOS VERSION")
        .await
        .starts_with("Helios "));

    // The successful read.
    let r = record(&path, "FROM accounts WHERE id = ").await;
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "application_name",
            "client",
            "database",
            "duration_ms",
            "fingerprint",
            "route",
            "rows",
            "statement",
            "status",
            "ts",
            "user"
        ],
        "{r}"
    );
    let statement = r["statement"].as_str().unwrap();
    assert!(statement.contains("id = ?"), "{statement}");
    assert!(!statement.contains("42"), "{statement}");
    assert_eq!(r["user"], "postgres", "{r}");
    assert_eq!(r["database"], "postgres", "{r}");
    assert_eq!(r["application_name"], "audit-app", "{r}");
    assert_eq!(r["route"], "upstream", "{r}");
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["rows"], 1, "{r}");
    assert!(r["duration_ms"].is_number(), "{r}");
    assert!(r["ts"].as_str().is_some_and(|t| !t.is_empty()), "{r}");
    assert!(
        r["client"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{r}"
    );
    let fp = r["fingerprint"].as_str().unwrap();
    assert!(
        fp.len() == 16 && fp.chars().all(|c| c.is_ascii_hexdigit()),
        "fingerprint {fp}"
    );

    // The failed one: its SQLSTATE, and no literal.
    let r = record(&path, "missing_table").await;
    assert_eq!(r["status"], "42P01", "{r}");
    assert_eq!(r["route"], "upstream", "{r}");
    let statement = r["statement"].as_str().unwrap();
    assert!(
        statement.contains("id = ?") && !statement.contains('7'),
        "{statement}"
    );

    // Another user; a string literal is redacted as well.
    let r = record(&path, "WHERE secret = ").await;
    assert_eq!(r["user"], "alice", "{r}");
    assert_eq!(r["status"], "ok", "{r}");
    let statement = r["statement"].as_str().unwrap();
    assert!(!statement.contains("swordfish"), "{statement}");
    assert!(statement.contains("secret = ?"), "{statement}");

    // The cached statement: a miss (upstream), then a hit (cache).
    poll("both audit records of the cached statement", || async {
        let routes: Vec<String> = audit_lines(&path)
            .into_iter()
            .filter(|r| {
                r["statement"]
                    .as_str()
                    .is_some_and(|s| s.contains("count(*)"))
            })
            .map(|r| r["route"].as_str().unwrap_or("").to_string())
            .collect();
        (routes.len() >= 2).then(|| assert_eq!(routes, ["upstream", "cache"]))
    })
    .await;
    let r = record(&path, "SHOW HELIOS VERSION").await;
    assert_eq!(r["route"], "admin", "{r}");

    // Nothing anywhere in the file holds a literal value.
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in ["hunter2", "swordfish", "= 42", "= 7"] {
        assert!(!text.contains(secret), "{secret} in the audit log:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_queries_are_logged_and_the_threshold_reloads() {
    let pg = PgServer::start();
    let h = Helios::start(
        &pg,
        "[log]\nslow_query_threshold = \"100ms\"\n[admin]\nusers = [\"postgres\"]\n",
    );
    let admin = Session::open(&h.conn_str("postgres")).await;
    let c = &admin.client;
    assert_eq!(value(c, "SELECT 'fast'").await, "fast");
    assert_eq!(value(c, "SELECT pg_sleep(0.3)::text").await, "");

    let slow_lines = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("slow query"))
            .map(str::to_string)
            .collect()
    };
    let lines = poll("a slow query log line", || async {
        let l = slow_lines(&h.log());
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(lines[0].contains("pg_sleep"), "{}", lines[0]);
    assert!(!lines[0].contains("fast"), "{}", lines[0]);
    assert_eq!(
        scrape(&h).await.get("helios_slow_queries_total", &[]),
        Some(1.0)
    );

    // Raised to 1s by a reload: the same statement is no longer slow.
    let text = std::fs::read_to_string(h.config_path()).unwrap();
    std::fs::write(
        h.config_path(),
        text.replace(
            "slow_query_threshold = \"100ms\"",
            "slow_query_threshold = \"1s\"",
        ),
    )
    .unwrap();
    c.simple_query("HELIOS RELOAD")
        .await
        .expect("HELIOS RELOAD");
    assert!(
        admin
            .notices()
            .iter()
            .any(|n| n.contains("log.slow_query_threshold")),
        "{:?}",
        admin.notices()
    );
    assert_eq!(value(c, "SELECT pg_sleep(0.3)::text").await, "");
    // A marker statement after it, so the log has caught up when it shows.
    assert_eq!(value(c, "SELECT pg_sleep(1.1)::text").await, "");
    poll("the 1.1 s statement's slow query line", || async {
        (slow_lines(&h.log()).len() >= 2).then_some(())
    })
    .await;
    let lines = slow_lines(&h.log());
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        scrape(&h).await.get("helios_slow_queries_total", &[]),
        Some(2.0)
    );
}
