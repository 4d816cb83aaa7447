//! Frames cut short, during startup and after login.

use super::*;

// ------------------------------------------------------- frames cut short

#[test]
fn startup_packets_cut_short_are_dropped_at_once_and_reach_nothing() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "[server]\nstartup_timeout = \"10s\"\n");
    let full = startup_for("postgres");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("half a length", vec![0, 0]),
        ("a length and nothing", be32(full.len() as i32).to_vec()),
        ("the startup packet but its last 9 bytes", {
            full[..full.len() - 9].to_vec()
        }),
        ("an SSLRequest cut in its code", SSL_REQUEST[..6].to_vec()),
        ("an SSLRequest, then half a startup packet", {
            let mut v = SSL_REQUEST.to_vec();
            v.extend(&full[..10]);
            v
        }),
    ];
    for (what, bytes) in &cases {
        for (server, port) in [("Helios", h.port), ("PostgreSQL", pg.port)] {
            let mut s = connect(port);
            s.write_all(bytes).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let heard = until_closed(&mut s, 3);
            assert!(
                heard.closed,
                "{server}, {what}: still open 3s after the client stopped sending"
            );
            // 'N' to the SSLRequest, then at most an error.
            let rest = heard.bytes.strip_prefix(b"N").unwrap_or(&heard.bytes);
            let msgs = parse_msgs(rest);
            assert!(
                msgs.iter().all(|m| m.tag == b'E'),
                "{server}, {what}: only an error may be sent: {msgs:?}"
            );
        }
    }
    // Nothing got as far as an upstream session.
    assert_eq!(upstream_client_sessions(&pg), 0);
    assert!(h.is_alive());
    let mut c = raw_login(h.port);
    c.send(&raw::query("select 1"));
    assert!(c.until_ready().iter().any(|m| m.tag == b'D'));
}

/// One session through Helios (pool of one upstream connection): `setup`
/// messages answered first, then `hostile` bytes, then the client stops
/// sending. The session must end without running any of it.
fn cut_short(h: &Helios, setup: &[u8], hostile: &[u8], what: &str) {
    let mut c = raw_login(h.port);
    if !setup.is_empty() {
        c.send(setup);
        // CopyInResponse, or ReadyForQuery.
        let m = c.read_msg().expect("an answer to the setup");
        assert!(
            m.tag == b'G' || m.tag == b'Z' || m.tag == b'1',
            "{what}: {m:?}"
        );
    }
    let mut w = c.stream.try_clone().unwrap();
    let bytes = hostile.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
        let _ = w.shutdown(Shutdown::Write);
    });
    let heard = until_closed(&mut c.stream, 5);
    writer.join().unwrap();
    assert!(
        heard.closed,
        "{what}: the session is still open 5s after its client stopped sending"
    );
    assert!(
        heard.took < Duration::from_secs(3),
        "{what}: took {:?} to end",
        heard.took
    );
}

#[test]
fn messages_cut_short_after_login_never_run_and_leave_no_dirty_upstream_connection() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    // One upstream connection: a session after a hostile one gets the same
    // connection if it went back to the pool. It must only go back clean.
    let mut h = Helios::start(
        &pg,
        "[pool]\nmax_size = 1\nacquire_timeout = \"5s\"\n[server]\nstartup_timeout = \"10s\"\n",
    );
    let insert1 = raw::query("insert into t values (1)");
    // A Query too big to be held whole (over 1 MB): its start is relayed
    // before its end has arrived.
    let big = {
        let mut sql = "insert into t values (2) /* ".to_string();
        sql.push_str(&"x".repeat(2 << 20));
        sql.push_str(" */");
        raw::query(&sql)
    };
    let copy = {
        let mut v = raw::copy_data(b"3\n");
        v.extend(with_len_field(b'd', 1000, b"4\n5\n"));
        v
    };
    let unsynced = {
        let mut v = raw::parse("", "insert into t values (6)", &[]);
        v.extend(raw::bind("", "", &[], &[], &[]));
        v.extend(raw::execute("", 0));
        v.extend(raw::flush());
        v.extend([b'S', 0, 0]);
        v
    };
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("a Query cut in its header", vec![], insert1[..3].to_vec()),
        (
            "a Query cut before its terminator",
            vec![],
            insert1[..insert1.len() - 1].to_vec(),
        ),
        (
            "a 2 MB Query cut at 1.5 MB",
            vec![],
            big[..3 << 19].to_vec(),
        ),
        (
            "COPY data, then a CopyData cut short",
            raw::query("copy t from stdin"),
            copy,
        ),
        (
            "an executed insert whose Sync is cut in its header",
            vec![],
            unsynced,
        ),
    ];
    for (what, setup, hostile) in &cases {
        cut_short(&h, setup, hostile, what);
        // The next session gets in, and its upstream connection is sane.
        let mut n = raw_login(h.port);
        n.send(&raw::query("select count(*) from t"));
        let msgs = n.until_ready();
        assert!(
            msgs.iter().all(|m| m.tag != b'E') && msgs.iter().any(|m| m.tag == b'D'),
            "after {what}, the next session's query failed: {msgs:?}"
        );
        n.send(&raw::terminate());
        assert_eq!(rows_in_t(&pg), "", "after {what}, rows were written");
    }
    wait_no_busy_upstream_sessions(&pg);
    assert_eq!(rows_in_t(&pg), "", "rows were written");
    let log = postgres_log(&pg);
    assert!(
        !log.contains("invalid frontend message type"),
        "bytes were relayed out of frame:\n{log}"
    );
    assert!(h.is_alive());
}
