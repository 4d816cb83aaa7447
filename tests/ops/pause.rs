//! `HELIOS PAUSE` holds every new request until `HELIOS RESUME`; the held
//! query then completes normally.

use std::time::Duration;

use crate::support::{get, poll, scrape, start, value, within, Session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_new_requests_until_resume() {
    let (_pg, h) = start("[admin]\nusers = [\"postgres\"]\n");
    let admin = Session::open(&h.conn_str("postgres")).await;
    let other = h.connect().await;
    assert_eq!(value(&other, "SELECT 1").await, "1");

    within("HELIOS PAUSE", admin.client.simple_query("HELIOS PAUSE"))
        .await
        .expect("HELIOS PAUSE");

    // Paused: not ready, and the gauge says so.
    let r = get(&h, "/health/readiness").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.json()["checks"]["lifecycle"]["state"],
        "paused",
        "{}",
        r.body
    );
    assert_eq!(scrape(&h).await.get("helios_paused", &[]), Some(1.0));

    // Another client's query waits.
    let held = tokio::spawn(async move {
        let r = other.simple_query("SELECT 41 + 1").await;
        (other, r)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !held.is_finished(),
        "a query completed while Helios was paused"
    );
    // It is counted as waiting.
    let waiting = poll("the held client to show as waiting", || async {
        let m = scrape(&h).await;
        let n = m.value("helios_clients", &[("state", "waiting")]);
        (n >= 1.0).then_some(n)
    })
    .await;
    assert_eq!(waiting, 1.0);

    // RESUME (from the session that paused): the held query completes.
    within(
        "HELIOS RESUME from the pausing session",
        admin.client.simple_query("HELIOS RESUME"),
    )
    .await
    .expect("HELIOS RESUME");
    let (other, result) = within("the held query after RESUME", held)
        .await
        .expect("held task");
    let msgs = result.expect("the held query after RESUME");
    let row = msgs
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row, "42");
    // Both sessions carry on; Helios is ready again.
    assert_eq!(value(&other, "SELECT 2").await, "2");
    assert_eq!(value(&admin.client, "SELECT 3").await, "3");
    let r = get(&h, "/health/readiness").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(scrape(&h).await.get("helios_paused", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_another_session_releases_held_requests() {
    let (_pg, h) = start("[admin]\nusers = [\"postgres\"]\n");
    let pauser = h.connect().await;
    let waiter = h.connect().await;
    let resumer = h.connect().await;
    within("HELIOS PAUSE", pauser.simple_query("HELIOS PAUSE"))
        .await
        .expect("HELIOS PAUSE");
    let held = tokio::spawn(async move { waiter.query_one("SELECT 6 * 7", &[]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !held.is_finished(),
        "an extended-protocol query ran while paused"
    );
    within(
        "HELIOS RESUME from a third session",
        resumer.simple_query("HELIOS RESUME"),
    )
    .await
    .expect("HELIOS RESUME");
    let row = within("the held query after RESUME", held)
        .await
        .expect("held task")
        .expect("the held query after RESUME");
    assert_eq!(row.get::<_, i32>(0), 42);
}
