//! `/admin/*` over HTTP: bearer-token auth, the running configuration with
//! secrets redacted, clearing the result cache.

use crate::common::{Helios, PgServer};
use crate::support::{http, scrape, scrape_until, start, value, Metrics, TOKEN};

const URL_SECRET: &str = "UpstreamPw-77aa11";
const USER_SECRET: &str = "CarolPw-33bb22";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_config_needs_the_token_and_redacts_every_secret() {
    let pg = PgServer::start();
    let h = Helios::start_config(&format!(
        "[upstream]\nurl = \"postgres://postgres:{URL_SECRET}@127.0.0.1:{}/postgres\"\n\
         connect_retries = 0\n\
         [[auth.users]]\nname = \"carol\"\npassword = \"{USER_SECRET}\"\n\
         [cache]\nttl = \"42s\"\n\
         [admin]\ntoken = \"{TOKEN}\"\n",
        pg.port
    ));
    let port = h.admin_port;
    for (what, token) in [
        ("no token", None),
        ("a wrong token", Some("ops-test-token-0123456789abcdeX")),
        ("a prefix of the token", Some(&TOKEN[..TOKEN.len() - 1])),
    ] {
        for (method, path) in [
            ("GET", "/admin/config"),
            ("POST", "/admin/reload"),
            ("POST", "/admin/cache/clear"),
        ] {
            let r = http(port, method, path, token).await;
            assert_eq!(r.status, 401, "{method} {path} with {what}: {}", r.body);
            for secret in [URL_SECRET, USER_SECRET, TOKEN] {
                assert!(!r.body.contains(secret), "{method} {path}: {}", r.body);
            }
        }
    }

    let r = http(port, "GET", "/admin/config", Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = &r.body;
    for secret in [URL_SECRET, USER_SECRET, TOKEN] {
        assert!(!body.contains(secret), "{secret} in /admin/config:\n{body}");
    }
    assert!(body.contains("<redacted>"), "{body}");
    // It is the running configuration.
    assert!(body.contains("ttl = \"42s\""), "{body}");
    assert!(body.contains(&format!("127.0.0.1:{}", h.port)), "{body}");
    assert!(body.contains("carol"), "{body}");
    assert!(
        body.contains(&format!(
            "postgres://postgres:<redacted>@127.0.0.1:{}",
            pg.port
        )),
        "{body}"
    );
    // SQL clients still work (the upstream password was never needed: trust).
    let c = h.connect().await;
    assert_eq!(value(&c, "SELECT 1").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_admin_actions_are_401() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    for token in [None, Some(TOKEN)] {
        let r = http(h.admin_port, "GET", "/admin/config", token).await;
        assert_eq!(r.status, 401, "token {token:?}: {}", r.body);
        let r = http(h.admin_port, "POST", "/admin/cache/clear", token).await;
        assert_eq!(r.status, 401, "token {token:?}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_clear_empties_the_result_cache() {
    let (pg, h) = start(&format!("[admin]\ntoken = \"{TOKEN}\"\n"));
    let c = h.connect().await;
    let q = "/*+ cache */ SELECT name FROM items WHERE id = 4";
    let m0 = scrape(&h).await;
    assert_eq!(value(&c, q).await, "item 4");
    // Changed behind Helios's back: the cached result still shows.
    pg.psql("UPDATE items SET name = 'changed' WHERE id = 4");
    assert_eq!(value(&c, q).await, "item 4", "expected a cache hit");
    let hits = |m: &Metrics| m.value("helios_cache_hits_total", &[]);
    let misses = |m: &Metrics| m.value("helios_cache_misses_total", &[]);
    let m1 = scrape_until(&h, "a miss and a hit", |m| {
        hits(m) - hits(&m0) >= 1.0 && misses(m) - misses(&m0) >= 1.0
    })
    .await;
    assert_eq!(hits(&m1) - hits(&m0), 1.0);
    assert_eq!(misses(&m1) - misses(&m0), 1.0);
    assert_eq!(m1.get("helios_cache_entries", &[]), Some(1.0));

    let r = http(h.admin_port, "POST", "/admin/cache/clear", Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A miss again: the upstream's current value.
    assert_eq!(value(&c, q).await, "changed");
    let m2 = scrape_until(&h, "a miss after the clear", |m| {
        misses(m) - misses(&m1) >= 1.0
    })
    .await;
    assert_eq!(misses(&m2) - misses(&m1), 1.0, "{m2:#?}");
    assert_eq!(hits(&m2) - hits(&m1), 0.0, "{m2:#?}");
    assert_eq!(
        m2.get("helios_cache_invalidations_total", &[("cause", "clear")]),
        Some(1.0)
    );
    // And it is cached again.
    assert_eq!(value(&c, q).await, "changed");
    let m3 = scrape_until(&h, "a hit after the refill", |m| hits(m) > hits(&m2)).await;
    assert_eq!(hits(&m3) - hits(&m2), 1.0);
}
