//! LISTEN/NOTIFY delivery and CancelRequest handling.

use std::time::{Duration, Instant};

use tokio_postgres::AsyncMessage;

use crate::common::raw::{self, Msg};
use crate::common::{sqlstate, Helios, NoTls, PgServer};
use crate::support::{
    backend_key, backend_pid, connect_with_messages, login, next_message, one, raw_value,
    roundtrip, s, send_cancel, tags, text_rows, until_tag, wait_active, within, LOGIN,
};

// ---------------------------------------------------------------------------
// LISTEN / NOTIFY
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_a_listening_client_through_helios() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (listener, mut messages) = connect_with_messages(&helios.conn_str("postgres")).await;
    let notifier = helios.connect().await;
    within("listen", listener.batch_execute("listen chan_a"))
        .await
        .unwrap();
    let sender_pid = backend_pid(&notifier).await;
    within(
        "notify",
        notifier.batch_execute(
            "notify other_chan, 'not for you'; notify chan_a, 'hello, world'; \
             select pg_notify('chan_a', 'second ☃')",
        ),
    )
    .await
    .unwrap();
    // Delivered in order; the channel not listened to never shows up first.
    let mut got = Vec::new();
    for _ in 0..2 {
        match next_message(&mut messages).await {
            AsyncMessage::Notification(n) => got.push((
                n.channel().to_string(),
                n.payload().to_string(),
                n.process_id(),
            )),
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            ("chan_a".to_string(), "hello, world".to_string(), sender_pid),
            ("chan_a".to_string(), "second ☃".to_string(), sender_pid),
        ]
    );
    // Still a working session.
    assert_eq!(one(&listener, "select 'ok'").await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_reaches_an_idle_raw_client_unprompted() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let port = helios.port;
    let mut raw_client = tokio::task::spawn_blocking(move || {
        let (mut c, _) = login(port, LOGIN);
        let msgs = roundtrip(&mut c, &raw::query("listen \"Mixed Case\""));
        assert_eq!(tags(&msgs), "CZ");
        c
    })
    .await
    .unwrap();
    let notifier = helios.connect().await;
    let sender_pid = backend_pid(&notifier).await;
    within(
        "notify",
        notifier.batch_execute("notify \"Mixed Case\", 'payload 1'"),
    )
    .await
    .unwrap();
    // The raw client has sent nothing since; the 'A' must arrive anyway.
    let m = tokio::task::spawn_blocking(move || raw_client.read_msg())
        .await
        .unwrap()
        .expect("no NotificationResponse arrived");
    let mut want = sender_pid.to_be_bytes().to_vec();
    want.extend_from_slice(b"Mixed Case\0payload 1\0");
    assert_eq!(
        m,
        Msg {
            tag: b'A',
            body: want
        }
    );
}

// ---------------------------------------------------------------------------
// Cancel
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_interrupts_a_running_query() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let direct = pg.connect().await;
    let client = helios.connect().await;
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let r = client.simple_query("select pg_sleep(30)").await;
        (client, r)
    });
    wait_active(&direct, "select pg_sleep(30)").await;
    within("cancel request", token.cancel_query(NoTls))
        .await
        .unwrap();
    let (client, result) = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the canceled query was still running 10s after the cancel")
        .unwrap();
    let err = result.expect_err("the query was not canceled");
    assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{err}");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "canceling statement due to user request"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // The session goes on.
    assert_eq!(one(&client, "select 'still here'").await, "still here");
}

#[test]
fn backend_key_data_is_helios_own_not_the_upstreams() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (mut a, login_a) = login(helios.port, LOGIN);
    let (mut b, login_b) = login(helios.port, LOGIN);
    let (pid_a, secret_a) = backend_key(&login_a);
    let (pid_b, _) = backend_key(&login_b);
    let upstream_a: i32 = raw_value(&mut a, "select pg_backend_pid()")
        .parse()
        .unwrap();
    let upstream_b: i32 = raw_value(&mut b, "select pg_backend_pid()")
        .parse()
        .unwrap();
    // As on a direct connection, the key's pid is the backend's pid...
    assert_eq!(pid_a, upstream_a);
    assert_eq!(pid_b, upstream_b);
    assert_ne!(pid_a, pid_b, "two live clients share a cancel key");
    // ...but the secret is Helios's: sent straight to PostgreSQL, the key
    // cancels nothing, so it cannot be used to bypass Helios.
    a.send(&raw::query("select pg_sleep(3)"));
    std::thread::sleep(Duration::from_millis(300));
    send_cancel(pg.port, pid_a, secret_a);
    let msgs = until_tag(&mut a, b'Z');
    assert!(
        msgs.iter().all(|m| m.tag != b'E'),
        "the client's key canceled a query directly on PostgreSQL: {msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_with_a_wrong_secret_or_a_departed_clients_key_does_nothing() {
    let pg = PgServer::start();
    // One upstream connection, so the second client gets the first's.
    let helios = Helios::start(&pg, "[pool]\nmax_size = 1\n");
    let port = helios.port;
    let direct = pg.connect().await;

    // First client: note its key, then leave (Helios closes the socket once
    // the connection is back in the pool).
    let (old_pid, old_secret, old_upstream) = tokio::task::spawn_blocking(move || {
        let (mut c, msgs) = login(port, LOGIN);
        let (pid, secret) = backend_key(&msgs);
        let up = raw_value(&mut c, "select pg_backend_pid()");
        c.send(&raw::terminate());
        assert!(c.until_closed().is_empty());
        (pid, secret, up)
    })
    .await
    .unwrap();

    // Second client on the same upstream connection.
    let (mut c, pid, secret, upstream) = tokio::task::spawn_blocking(move || {
        let (mut c, msgs) = login(port, LOGIN);
        let (pid, secret) = backend_key(&msgs);
        let up = raw_value(&mut c, "select pg_backend_pid()");
        (c, pid, secret, up)
    })
    .await
    .unwrap();
    assert_eq!(
        upstream, old_upstream,
        "with max_size = 1 the connection is reused"
    );

    let sql = "select pg_sleep(2), 'finished'";
    c.send(&raw::query(sql));
    wait_active(&direct, sql).await;
    let wrong_secret = secret.wrapping_add(1);
    tokio::task::spawn_blocking(move || {
        send_cancel(port, pid, wrong_secret);
        send_cancel(port, old_pid, old_secret);
    })
    .await
    .unwrap();
    let (msgs, mut c) = tokio::task::spawn_blocking(move || (until_tag(&mut c, b'Z'), c))
        .await
        .unwrap();
    assert_eq!(
        tags(&msgs),
        "TDCZ",
        "a cancel with a bad key interrupted the query: {msgs:?}"
    );
    assert_eq!(text_rows(&msgs)[0][1], s("finished"));

    // The control: the same steps with the right key do cancel.
    let sql = "select pg_sleep(20), 'not finished'";
    c.send(&raw::query(sql));
    wait_active(&direct, sql).await;
    let msgs = tokio::task::spawn_blocking(move || {
        send_cancel(port, pid, secret);
        until_tag(&mut c, b'Z')
    })
    .await
    .unwrap();
    assert_eq!(tags(&msgs), "TEZ", "{msgs:?}");
    assert_eq!(msgs[1].sqlstate().as_deref(), Some("57014"));
}
