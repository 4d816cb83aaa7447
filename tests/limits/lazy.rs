//! `pool.lazy_attach`: logged-in clients that have sent nothing hold no
//! upstream connection, and get the same greeting a connection would give.

use std::time::{Duration, Instant};

use crate::common::raw::{self, Msg, RawConn};
use crate::common::{Helios, PgServer};

const LOGIN: &[(&str, &str)] = &[("user", "postgres"), ("database", "postgres")];

fn parameter_statuses(msgs: &[Msg]) -> Vec<Vec<u8>> {
    let mut p: Vec<Vec<u8>> = msgs
        .iter()
        .filter(|m| m.tag == b'S')
        .map(|m| m.body.clone())
        .collect();
    p.sort();
    p
}

fn helios_backends(pg: &PgServer) -> i64 {
    pg.psql(
        "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
    )
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn idle_clients_hold_no_upstream_connection_until_their_first_message() {
    let pg = PgServer::start();
    let h = Helios::start(
        &pg,
        "[pool]\nmax_size = 1\nacquire_timeout = \"20s\"\nlazy_attach = true\n",
    );
    // The first login is attached at once and teaches Helios the greeting.
    let (mut first, first_login) = RawConn::connect(h.port, LOGIN);
    first.send(&raw::query("select 1"));
    first.until_ready();
    first.send(&raw::terminate());
    first.until_closed();

    // Twenty more with the same parameters: all greeted at once, although
    // the pool allows one connection.
    let started = Instant::now();
    let mut idle: Vec<(RawConn, Vec<Msg>)> =
        (0..20).map(|_| RawConn::connect(h.port, LOGIN)).collect();
    assert!(started.elapsed() < Duration::from_secs(5));
    for (_, login) in &idle {
        assert_eq!(login.last().map(|m| m.tag), Some(b'Z'));
        assert_eq!(parameter_statuses(login), parameter_statuses(&first_login));
    }
    assert!(helios_backends(&pg) <= 1);

    // One speaks: it gets the connection, and its answer.
    let (c, _) = &mut idle[5];
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    c.send(&raw::query("select 'attached'"));
    let msgs = c.until_ready();
    assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
    // It leaves; a client that only says goodbye never takes a connection;
    // the next to speak gets the connection.
    c.send(&raw::terminate());
    c.until_closed();
    let (c, _) = &mut idle[0];
    c.send(&raw::terminate());
    c.until_closed();
    let (c, _) = &mut idle[7];
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    c.send(&raw::query("select pg_backend_pid()"));
    let msgs = c.until_ready();
    assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
    assert!(helios_backends(&pg) <= 1);
}
