//! The upstream circuit breaker: after `breaker_failures` failed connects in
//! a row, new sessions fail at once with 08006 until a trial connection
//! succeeds; once the upstream is back, sessions get in within a cooldown.

use std::time::{Duration, Instant};

use crate::common::{try_connect, Helios, PgServer};
use crate::{db_error, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_n_failed_connects_sessions_fail_fast_with_08006_until_the_upstream_is_back() {
    let pg = PgServer::start();
    let h = Helios::start_config(&format!(
        "[upstream]\nurl = \"{}\"\nconnect_retries = 0\nbreaker_failures = 2\nbreaker_cooldown = \"1s\"\n",
        pg.url()
    ));
    let cs = h.conn_str("postgres");
    let c = within(10, "connect", try_connect(&cs)).await.unwrap();
    c.simple_query("select 1").await.unwrap();
    drop(c);

    pg.kill();
    // Two failures that tried to connect...
    for _ in 0..2 {
        let e = within(10, "connect", try_connect(&cs)).await.unwrap_err();
        assert_eq!(db_error(&e).code().code(), "08001", "{e:?}");
    }
    // ...then the breaker is open: no attempt, an immediate 08006.
    let started = Instant::now();
    let e = within(10, "connect", try_connect(&cs)).await.unwrap_err();
    let e = db_error(&e);
    assert_eq!(e.code().code(), "08006", "{e:?}");
    assert!(
        e.message().contains("unavailable, retrying in"),
        "{}",
        e.message()
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    // Metrics say so.
    let metrics = http_get(h.admin_port, "/metrics");
    assert!(
        metrics.contains("helios_upstream_breaker_state 2"),
        "{metrics}"
    );

    // The upstream comes back: sessions get in within the cooldown (plus a
    // trial connect), without any action from anyone.
    let down_for = Duration::from_millis(1500);
    tokio::time::sleep(down_for).await;
    pg.restart();
    let back = Instant::now();
    loop {
        match within(10, "connect", try_connect(&cs)).await {
            Ok(c) => {
                c.simple_query("select 1").await.unwrap();
                break;
            }
            Err(e) => {
                let code = db_error(&e).code().code().to_string();
                assert!(
                    matches!(code.as_str(), "08006" | "08001" | "57P03"),
                    "{e:?}"
                );
                assert!(
                    back.elapsed() < Duration::from_secs(2),
                    "no session 2s after the upstream returned: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let metrics = http_get(h.admin_port, "/metrics");
    assert!(
        metrics.contains("helios_upstream_breaker_state 0"),
        "{metrics}"
    );
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
