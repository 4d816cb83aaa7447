//! Health probes: liveness, startup, readiness — the upstream going down and
//! coming back, and the embedded demo database (no upstream).

use crate::common::{self, Helios};
use crate::support::{
    get, poll, scrape, scrape_until, start, table, try_http, value, HttpResponse,
};

async fn readiness(h: &Helios) -> HttpResponse {
    get(h, "/health/readiness").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_upstream_down_and_back() {
    let (pg, h) = start("");

    let live = get(&h, "/health/liveness").await;
    assert_eq!(live.status, 200, "{}", live.body);
    assert_eq!(live.json()["status"], "ok");
    let started = get(&h, "/health/startup").await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.json()["status"], "started");

    let r = readiness(&h).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["status"], "ready", "{j}");
    assert_eq!(j["checks"]["lifecycle"]["status"], "ok", "{j}");
    assert_eq!(j["checks"]["lifecycle"]["state"], "running", "{j}");
    assert_eq!(j["checks"]["config"]["status"], "ok", "{j}");
    assert_eq!(j["checks"]["upstream"]["status"], "ok", "{j}");
    let target = j["checks"]["upstream"]["target"]
        .as_str()
        .unwrap_or_else(|| panic!("no upstream target: {j}"));
    assert!(target.contains(&pg.port.to_string()), "{target}");

    // The upstream stops: readiness fails (the probe result lives 1 s).
    pg.kill();
    let down = poll("readiness to turn 503 with the upstream down", || async {
        let r = readiness(&h).await;
        (r.status == 503).then_some(r)
    })
    .await;
    let j = down.json();
    assert_eq!(j["status"], "not ready", "{j}");
    assert_eq!(j["checks"]["upstream"]["status"], "fail", "{j}");
    let error = j["checks"]["upstream"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no upstream error string: {j}"));
    assert!(!error.is_empty(), "{j}");
    // Helios itself is alive, and still running (not paused or draining).
    assert_eq!(j["checks"]["lifecycle"]["state"], "running", "{j}");
    assert_eq!(get(&h, "/health/liveness").await.status, 200);
    assert_eq!(
        scrape(&h).await.get("helios_upstream_up", &[]),
        Some(0.0),
        "helios_upstream_up while the upstream is down"
    );

    // It comes back: readiness recovers, and clients are served again.
    pg.restart();
    let up = poll("readiness to turn 200 with the upstream back", || async {
        let r = readiness(&h).await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(up.json()["status"], "ready");
    assert_eq!(up.json()["checks"]["upstream"]["status"], "ok");
    assert_eq!(scrape(&h).await.get("helios_upstream_up", &[]), Some(1.0));
    let c = h.connect().await;
    // (Not `items`: an immediate stop may lose the unsynced table.)
    assert_eq!(value(&c, "SELECT 'back'").await, "back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_404_and_probes_need_no_token() {
    let (_pg, h) = start(&format!("[admin]\ntoken = \"{}\"\n", crate::support::TOKEN));
    for path in [
        "/health/liveness",
        "/health/readiness",
        "/health/startup",
        "/metrics",
    ] {
        let r = get(&h, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = get(&h, "/no/such/path").await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_demo_database_is_ready_and_answers_admin_commands() {
    // No [upstream]: the embedded demo database.
    let h = Helios::start_config("");
    let c = common::connect(&format!(
        "host=127.0.0.1 port={} user=helios dbname=helios",
        h.port
    ))
    .await;
    // Its statements are counted under route="embedded".
    let labels = [("route", "embedded"), ("status", "ok")];
    let before = scrape(&h).await.value("helios_queries_total", &labels);
    assert_eq!(value(&c, "SELECT count(*) FROM regions").await, "5");
    let m = scrape_until(&h, "the SELECT to be counted", |m| {
        m.value("helios_queries_total", &labels) > before
    })
    .await;
    assert_eq!(
        m.value("helios_queries_total", &labels) - before,
        1.0,
        "{m:#?}"
    );

    let v = table(&c, "SHOW HELIOS VERSION").await;
    assert_eq!(v.columns, ["version"]);
    assert_eq!(v.rows.len(), 1, "{v:?}");
    let version = v.rows[0][0].clone().unwrap();
    assert!(version.starts_with("Helios "), "{version}");
    // The extended protocol too.
    let rows = c.query("SHOW HELIOS VERSION", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>("version"), version);

    let r = try_http(h.admin_port, "GET", "/health/readiness", None)
        .await
        .expect("admin endpoint of the embedded database");
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["status"], "ready", "{j}");
    assert_eq!(j["checks"]["upstream"]["status"], "ok", "{j}");
    assert_eq!(j["checks"]["lifecycle"]["state"], "running", "{j}");
}
