//! `GET /metrics` after a known workload: exact counter deltas, and gauges
//! that describe the clients and upstream connections open at scrape time.

use crate::support::{get, scrape, scrape_until, sqlstate_of, start, value, Metrics};

const HINTED: &str = "/*+ cache */ SELECT name FROM items WHERE id = 3";

fn delta(before: &Metrics, after: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_mixed_workload_exactly() {
    let (_pg, h) = start("");
    let c1 = h.connect().await;
    let c2 = h.connect().await;
    let c3 = h.connect().await;
    // Every client has been served once, so each holds its upstream connection.
    for c in [&c2, &c3] {
        assert_eq!(value(c, "SELECT 'warm'").await, "warm");
    }
    // Both warm-up statements counted (they are recorded just after their answer).
    let before = scrape_until(&h, "the warm-up statements", |m| {
        m.value(
            "helios_queries_total",
            &[("route", "upstream"), ("status", "ok")],
        ) >= 2.0
    })
    .await;

    // 5 statements that succeed upstream.
    for i in 1..=5 {
        assert_eq!(value(&c1, &format!("SELECT {i}")).await, i.to_string());
    }
    // One simple Query with two statements counts once.
    let multi = c1.simple_query("SELECT 1; SELECT 2").await.unwrap();
    assert_eq!(
        multi
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count(),
        2
    );
    // One that fails upstream.
    assert_eq!(
        sqlstate_of(&c1, "SELECT * FROM no_such_table").await,
        "42P01"
    );
    // A cacheable statement three times: one miss (relayed), two hits.
    for _ in 0..3 {
        assert_eq!(value(&c1, HINTED).await, "item 3");
    }

    let q = "helios_queries_total";
    let upstream_ok = [("route", "upstream"), ("status", "ok")];
    let upstream_err = [("route", "upstream"), ("status", "error")];
    let cache_ok = [("route", "cache"), ("status", "ok")];
    let cache_err = [("route", "cache"), ("status", "error")];
    let after = scrape_until(&h, "the workload's counters", |m| {
        delta(&before, m, q, &upstream_ok) >= 7.0
            && delta(&before, m, q, &upstream_err) >= 1.0
            && delta(&before, m, q, &cache_ok) >= 2.0
            && delta(&before, m, "helios_cache_hits_total", &[]) >= 2.0
            && m.get("helios_clients", &[("state", "idle")]) == Some(3.0)
    })
    .await;
    // 5 selects + the two-statement Query + the cache miss.
    assert_eq!(delta(&before, &after, q, &upstream_ok), 7.0, "{after:#?}");
    assert_eq!(delta(&before, &after, q, &upstream_err), 1.0, "{after:#?}");
    assert_eq!(delta(&before, &after, q, &cache_ok), 2.0, "{after:#?}");
    assert_eq!(delta(&before, &after, q, &cache_err), 0.0);
    assert_eq!(
        delta(&before, &after, "helios_cache_hits_total", &[]),
        2.0,
        "{after:#?}"
    );
    assert_eq!(
        delta(&before, &after, "helios_cache_misses_total", &[]),
        1.0,
        "{after:#?}"
    );
    // The latency histogram saw every statement, by route.
    let count = "helios_query_duration_seconds_count";
    assert_eq!(delta(&before, &after, count, &[("route", "upstream")]), 8.0);
    assert_eq!(delta(&before, &after, count, &[("route", "cache")]), 2.0);
    assert!(after.has("helios_query_duration_seconds_bucket"));
    assert!(after.get(count, &[("route", "upstream")]).is_some());
    let inf = after
        .0
        .iter()
        .find(|s| {
            s.name == "helios_query_duration_seconds_bucket"
                && s.labels.get("route").map(String::as_str) == Some("upstream")
                && s.labels.get("le").map(String::as_str) == Some("+Inf")
        })
        .map(|s| s.value);
    assert_eq!(
        inf,
        after.get(count, &[("route", "upstream")]),
        "+Inf bucket = count"
    );

    // Bytes both ways.
    for name in [
        "helios_client_bytes_received_total",
        "helios_client_bytes_sent_total",
    ] {
        assert!(
            delta(&before, &after, name, &[]) > 0.0,
            "{name}: {:?} -> {:?}",
            before.get(name, &[]),
            after.get(name, &[])
        );
    }

    // Gauges describe now: three idle clients, each holding its upstream connection.
    assert_eq!(after.get("helios_clients", &[("state", "idle")]), Some(3.0));
    assert_eq!(
        after.get("helios_clients", &[("state", "active")]),
        Some(0.0)
    );
    assert_eq!(
        after.get("helios_clients", &[("state", "waiting")]),
        Some(0.0)
    );
    assert_eq!(
        after.get("helios_clients", &[("state", "idle_in_transaction")]),
        Some(0.0)
    );
    let pool = |state| {
        after.get(
            "helios_pool_connections",
            &[
                ("database", "postgres"),
                ("user", "postgres"),
                ("state", state),
            ],
        )
    };
    assert_eq!(pool("active"), Some(3.0), "{after:#?}");
    assert_eq!(
        after.get(
            "helios_pool_waiting",
            &[("database", "postgres"), ("user", "postgres")]
        ),
        Some(0.0)
    );
    assert_eq!(after.get("helios_paused", &[]), Some(0.0));
    assert_eq!(after.get("helios_draining", &[]), Some(0.0));
    assert!(after.value("helios_uptime_seconds", &[]) > 0.0);
    assert_eq!(after.get("helios_cache_entries", &[]), Some(1.0));
    assert!(after.value("helios_cache_bytes", &[]) > 0.0);

    // A client that leaves: gauges follow at the next scrape.
    drop(c3);
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    loop {
        let m = scrape(&h).await;
        if m.get("helios_clients", &[("state", "idle")]) == Some(2.0) {
            assert_eq!(
                m.get(
                    "helios_pool_connections",
                    &[
                        ("database", "postgres"),
                        ("user", "postgres"),
                        ("state", "active")
                    ]
                ),
                Some(2.0),
                "{m:#?}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{m:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = (c1, c2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_is_prometheus_text_with_help_lines() {
    let (_pg, h) = start("");
    let c = h.connect().await;
    assert_eq!(value(&c, "SELECT 7").await, "7");
    let r = get(&h, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    assert!(
        r.body.contains("# TYPE helios_queries_total counter"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("# TYPE helios_query_duration_seconds histogram"),
        "{}",
        r.body
    );
    assert!(r.body.contains("# TYPE helios_clients gauge"), "{}", r.body);
    let labels = [("route", "upstream"), ("status", "ok")];
    let m = scrape_until(&h, "the SELECT to be counted", |m| {
        m.get("helios_queries_total", &labels).is_some()
    })
    .await;
    assert_eq!(m.get("helios_queries_total", &labels), Some(1.0));
}
