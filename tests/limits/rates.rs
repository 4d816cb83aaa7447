//! Rate limits: statements per user and per address, connections per
//! address. Over a limit the client gets 53400 naming the setting, the
//! statement never reaches the upstream, and the session goes on.

use std::time::Duration;

use crate::common::raw::{self, RawConn};
use crate::common::{connect, try_connect, Helios, PgServer};
use crate::{db_error, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_over_the_users_rate_get_53400_and_never_reach_the_upstream() {
    let pg = PgServer::start();
    pg.psql("create table rated (v int)");
    let h = Helios::start(
        &pg,
        "[limits]\nqueries_per_second_per_user = 5\n[cache]\nmode = \"off\"\n",
    );
    let a = connect(&h.conn_str("postgres")).await;
    // A second session of the same user shares the allowance.
    let b = connect(&h.conn_str("postgres")).await;

    let (mut ok, mut refused) = (0, 0);
    for i in 0..40 {
        let c = if i % 2 == 0 { &a } else { &b };
        match c
            .simple_query(&format!("insert into rated values ({i})"))
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => {
                let e = db_error(&e);
                assert_eq!(e.code().code(), "53400", "{e:?}");
                assert!(
                    e.message().contains("queries_per_second_per_user"),
                    "{}",
                    e.message()
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "nothing was refused ({ok} went through)");
    // 5 at once, plus what a second of loop refills at 5 per second.
    assert!((5..=15).contains(&ok), "{ok} went through");
    // Exactly the statements that were answered OK ran.
    let n: i64 = pg
        .psql("select count(*) from rated")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, ok);

    // The extended protocol: refused the same way, and the session goes on.
    let mut ext_refused = false;
    for _ in 0..20 {
        if let Err(e) = a.query("select $1::int", &[&1i32]).await {
            assert_eq!(db_error(&e).code().code(), "53400");
            ext_refused = true;
            break;
        }
    }
    assert!(ext_refused, "extended-protocol statements were not limited");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let row = a.query_one("select $1::int + 1", &[&41i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);

    // Another user is not limited by this one's use.
    pg.psql("create role other login superuser");
    let o = connect(&h.conn_str("other")).await;
    for _ in 0..3 {
        o.simple_query("select 1").await.unwrap();
    }
}

#[test]
fn a_refused_batch_is_skipped_to_its_sync_as_after_any_error() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[limits]\nqueries_per_second_per_address = 1\n");
    let (mut c, _) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    c.send(&raw::query("select 1"));
    let first = c.until_ready();
    assert!(first.iter().all(|m| m.tag != b'E'), "{first:?}");
    // Over the rate at once: Parse/Bind/Describe/Execute/Sync in one write.
    let mut batch = raw::parse("", "select 2", &[]);
    batch.extend(raw::bind("", "", &[], &[], &[]));
    batch.extend(raw::describe(b'P', ""));
    batch.extend(raw::execute("", 0));
    batch.extend(raw::sync());
    c.send(&batch);
    let msgs = c.until_ready();
    let tags: String = msgs.iter().map(|m| m.tag as char).collect();
    assert_eq!(tags, "EZ", "{msgs:?}");
    assert_eq!(msgs[0].sqlstate().as_deref(), Some("53400"));
    assert!(msgs[0]
        .field(b'M')
        .unwrap()
        .contains("queries_per_second_per_address"));
    assert_eq!(msgs[1].body, b"I");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_addresss_rate_are_refused_with_fatal_53400() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[limits]\nconnections_per_second_per_address = 3\n");
    let mut clients = Vec::new();
    let mut refusals = Vec::new();
    for _ in 0..8 {
        match within(10, "connect", try_connect(&h.conn_str("postgres"))).await {
            Ok(c) => clients.push(c),
            Err(e) => refusals.push(db_error(&e).clone()),
        }
    }
    assert!(
        (3..=5).contains(&clients.len()),
        "{} connections got in",
        clients.len()
    );
    for e in &refusals {
        assert_eq!(e.code().code(), "53400");
        assert_eq!(e.severity(), "FATAL");
        assert!(e.message().contains("connections_per_second_per_address"));
    }
    // The ones that got in work, and a second later new ones get in again.
    clients[0].simple_query("select 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = within(10, "connect", try_connect(&h.conn_str("postgres")))
        .await
        .expect("after a second the address may connect again");
    c.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_rates_for_running_sessions() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[limits]\nqueries_per_second_per_user = 1000\n");
    let c = connect(&h.conn_str("postgres")).await;
    for _ in 0..20 {
        c.simple_query("select 1").await.unwrap();
    }
    let config = std::fs::read_to_string(h.config_path()).unwrap();
    std::fs::write(
        h.config_path(),
        config.replace(
            "queries_per_second_per_user = 1000",
            "queries_per_second_per_user = 2",
        ),
    )
    .unwrap();
    sighup(h.child.id());
    let mut refused = false;
    for _ in 0..100 {
        if let Err(e) = c.simple_query("select 1").await {
            assert_eq!(db_error(&e).code().code(), "53400");
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the reloaded rate was not applied");
}

fn sighup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
