//! Reloading the configuration: `HELIOS RELOAD`, `POST /admin/reload`,
//! SIGHUP. Live settings apply at once, the rest is reported as needing a
//! restart, an invalid file changes nothing, and no connection is dropped.

use crate::common::{free_port, Helios, PgServer};
use crate::support::{
    config_value, edit_config, get, http, poll, scrape, signal, sqlstate_of, start, value, Session,
    TOKEN,
};

fn config() -> String {
    format!("[cache]\nttl = \"5m\"\n[admin]\nusers = [\"postgres\"]\ntoken = \"{TOKEN}\"\n")
}

const HINTED: &str = "/*+ cache */ SELECT name FROM items WHERE id = 2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helios_reload_applies_cache_ttl_live_and_rejects_a_broken_file() {
    let (pg, h) = start(&config());
    let admin = Session::open(&h.conn_str("postgres")).await;
    let other = h.connect().await;
    assert_eq!(config_value(&other, "cache.ttl").await, "5m");

    edit_config(&h, "ttl = \"5m\"", "ttl = \"2s\"");
    admin
        .client
        .simple_query("HELIOS RELOAD")
        .await
        .expect("HELIOS RELOAD");
    let notices = admin.notices();
    assert!(
        notices.iter().any(|n| n.contains("cache.ttl")),
        "the NOTICE should list cache.ttl: {notices:?}"
    );
    // Applied, seen by every session; both connections still work.
    assert_eq!(config_value(&admin.client, "cache.ttl").await, "2s");
    assert_eq!(config_value(&other, "cache.ttl").await, "2s");
    assert_eq!(
        value(&admin.client, "SELECT 'still here'").await,
        "still here"
    );
    assert_eq!(value(&other, "SELECT 'me too'").await, "me too");
    assert!(admin.ended().is_none());

    // The new TTL governs results cached from now on: a cached read hides a
    // change made behind Helios's back only until it expires.
    assert_eq!(value(&other, HINTED).await, "item 2");
    pg.psql("UPDATE items SET name = 'renamed' WHERE id = 2");
    assert_eq!(
        value(&other, HINTED).await,
        "item 2",
        "expected a cache hit"
    );
    poll(
        "the cached result to expire after the reloaded 2s ttl",
        || async { (value(&other, HINTED).await == "renamed").then_some(()) },
    )
    .await;

    // A broken file: rejected with F0000, nothing changes.
    std::fs::write(h.config_path(), "[cache\nttl = \"1s\"\n").unwrap();
    assert_eq!(sqlstate_of(&admin.client, "HELIOS RELOAD").await, "F0000");
    assert_eq!(config_value(&admin.client, "cache.ttl").await, "2s");
    assert_eq!(value(&other, "SELECT 1").await, "1");
    // Over HTTP too.
    let r = http(h.admin_port, "POST", "/admin/reload", Some(TOKEN)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let j = r.json();
    assert_eq!(j["status"], "rejected", "{j}");
    assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
    assert_eq!(config_value(&other, "cache.ttl").await, "2s");
    // Helios keeps serving with the configuration it has.
    assert_eq!(get(&h, "/health/readiness").await.status, 200);
    let m = scrape(&h).await;
    assert_eq!(
        m.get("helios_config_reloads_total", &[("status", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("helios_config_reloads_total", &[("status", "error")]),
        Some(2.0)
    );
    assert!(admin.ended().is_none(), "the admin session was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_over_http_reports_what_needs_a_restart() {
    let (_pg, h) = start(&config());
    let c = h.connect().await;
    let old_listen = format!("listen = \"127.0.0.1:{}\"", h.port);
    let new_port = free_port();
    edit_config(&h, "ttl = \"5m\"", "ttl = \"30s\"");
    edit_config(
        &h,
        &old_listen,
        &format!("listen = \"127.0.0.1:{new_port}\""),
    );

    // Without the token: refused, nothing reloaded.
    let r = http(h.admin_port, "POST", "/admin/reload", None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(config_value(&c, "cache.ttl").await, "5m");

    let r = http(h.admin_port, "POST", "/admin/reload", Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["status"], "reloaded", "{j}");
    assert_eq!(j["applied"], serde_json::json!(["cache.ttl"]), "{j}");
    assert_eq!(
        j["restart_needed"],
        serde_json::json!(["server.listen"]),
        "{j}"
    );

    assert_eq!(config_value(&c, "cache.ttl").await, "30s");
    assert_eq!(
        config_value(&c, "server.listen").await,
        format!("127.0.0.1:{}", h.port)
    );
    // Still listening where it was; the open connection goes on.
    let fresh = h.connect().await;
    assert_eq!(value(&fresh, "SELECT 'same port'").await, "same port");
    assert_eq!(
        value(&c, "SELECT 'same connection'").await,
        "same connection"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", new_port)).is_err(),
        "Helios listens on the new port without a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_configuration() {
    let pg = PgServer::start();
    pg.psql("CREATE ROLE alice LOGIN");
    let mut h = Helios::start(&pg, &config());
    let alice = Session::open(&h.conn_str("alice")).await;
    assert_eq!(sqlstate_of(&alice.client, "HELIOS RELOAD").await, "42501");

    edit_config(
        &h,
        "users = [\"postgres\"]",
        "users = [\"postgres\", \"alice\"]",
    );
    edit_config(&h, "ttl = \"5m\"", "ttl = \"45s\"");
    signal(h.child.id(), "HUP");
    poll("SIGHUP to apply cache.ttl", || async {
        (config_value(&alice.client, "cache.ttl").await == "45s").then_some(())
    })
    .await;
    let users = config_value(&alice.client, "admin.users").await;
    assert!(users.contains("alice"), "{users}");

    // alice is an admin user now, on the connection she already had.
    alice
        .client
        .simple_query("HELIOS RELOAD")
        .await
        .expect("HELIOS RELOAD by alice after SIGHUP");
    assert!(alice.ended().is_none());
    assert!(h.is_alive(), "SIGHUP ended Helios:\n{}", h.log());
    assert_eq!(
        scrape(&h)
            .await
            .get("helios_config_reloads_total", &[("status", "ok")]),
        Some(2.0)
    );
}
