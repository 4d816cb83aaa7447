//! Natural-language questions are statements too: counted under
//! `route="nl"` and audited, in both protocols.

use serde_json::Value;

use crate::common::llm::FakeLlm;
use crate::common::{Helios, PgServer};
use crate::http::scrape_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_are_counted_and_audited_in_both_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let pg = PgServer::start();
    pg.psql(
        "CREATE TABLE accounts (id int PRIMARY KEY); INSERT INTO accounts VALUES (1), (2), (3);",
    );
    let llm = FakeLlm::start().await;
    let h = Helios::start(
        &pg,
        &format!(
            "[audit]\nenabled = true\nfile = \"{}\"\n[nl]\n[[nl.providers]]\nkind = \"openai\"\nname = \"fake\"\nbase_url = \"{}\"\nmodel = \"m\"\napi_key = \"sk-test\"\ntimeout = \"5s\"\nmax_retries = 0\n",
            audit.display(),
            llm.base_url()
        ),
    );
    let c = h.connect().await;
    llm.reply_text("SELECT count(*) FROM accounts");
    let rows = c
        .simple_query("SELECT * FROM nl('how many accounts are there')")
        .await
        .unwrap();
    let n = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap();
    assert_eq!(n, "3");
    llm.reply_text("SELECT count(*) FROM accounts WHERE id > 1");
    // Parse/Bind/Describe portal/Execute/Sync in one batch (the columns are
    // known only once the question is translated).
    let rows = c
        .query_typed(
            "SELECT * FROM nl($1)",
            &[(
                &"how many accounts after the first",
                tokio_postgres::types::Type::TEXT,
            )],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 2);

    let m = scrape_until(&h, "two nl statements counted", |m| {
        m.value("helios_queries_total", &[("route", "nl"), ("status", "ok")]) >= 2.0
    })
    .await;
    assert_eq!(
        m.value("helios_queries_total", &[("route", "nl"), ("status", "ok")]),
        2.0
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let records: Vec<Value> = loop {
        let lines: Vec<Value> = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|r: &Value| r["route"] == "nl")
            .collect();
        if lines.len() >= 2 || std::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records
        .iter()
        .all(|r| r["status"] == "ok" && r["user"] == "postgres"));
}
