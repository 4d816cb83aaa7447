//! Startup problems: bad startup packets, SSL/GSSENC requests, startup timeout, cancel requests.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::raw::{self, Msg, RawConn};
use crate::common::{Helios, PgServer};
use crate::support::{raw_login, raw_open, read_until_closed, the_fatal};

// ----------------------------------------------------------------- startup

fn untagged(code: i32, rest: &[u8]) -> Vec<u8> {
    let mut v = ((rest.len() + 8) as i32).to_be_bytes().to_vec();
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(rest);
    v
}

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

fn read_byte(c: &mut RawConn) -> u8 {
    let mut b = [0u8; 1];
    c.stream
        .read_exact(&mut b)
        .expect("a one-byte answer to the request");
    b[0]
}

#[test]
fn protocol_2_startup_is_refused_with_0a000() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    let mut c = raw_open(h.port);
    c.send(&untagged(
        2 << 16,
        b"user\0postgres\0database\0postgres\0\0",
    ));
    let msgs = read_until_closed(&mut c);
    let e = the_fatal(&msgs);
    assert_eq!(e.sqlstate().as_deref(), Some("0A000"), "{msgs:?}");
    assert!(
        e.field(b'M').unwrap_or_default().contains("2.0"),
        "the message should name the protocol asked for: {msgs:?}"
    );
    assert!(h.is_alive());
}

#[test]
fn startup_without_a_user_is_refused_with_28000() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    for params in [
        vec![("database", "postgres")],
        vec![("user", ""), ("database", "postgres")],
    ] {
        let mut c = raw_open(h.port);
        c.send(&raw::startup(&params));
        let msgs = read_until_closed(&mut c);
        let e = the_fatal(&msgs);
        assert_eq!(
            e.sqlstate().as_deref(),
            Some("28000"),
            "{params:?}: {msgs:?}"
        );
        assert_eq!(
            e.field(b'M').as_deref(),
            Some("no PostgreSQL user name specified in startup packet"),
            "{msgs:?}"
        );
    }
    assert!(h.is_alive());
}

#[test]
fn a_startup_packet_of_impossible_length_is_refused_with_08p01() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    for len in [4i32, -1, 10_001, 1 << 30] {
        let mut c = raw_open(h.port);
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend(196_608i32.to_be_bytes());
        c.send(&bytes);
        let msgs = read_until_closed(&mut c);
        let e = the_fatal(&msgs);
        assert_eq!(
            e.sqlstate().as_deref(),
            Some("08P01"),
            "length {len}: {msgs:?}"
        );
    }
    assert!(h.is_alive());
}

#[test]
fn gssenc_request_is_declined_then_a_normal_startup_works() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let mut c = raw_open(h.port);
    c.send(&untagged(GSSENC_REQUEST, b""));
    assert_eq!(read_byte(&mut c), b'N');
    c.send(&raw::startup(&[
        ("user", "postgres"),
        ("database", "postgres"),
    ]));
    let msgs = c.until_ready();
    assert_eq!(msgs.first().map(|m| m.tag), Some(b'R'), "{msgs:?}");
    assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
    c.send(&raw::query("select 1"));
    let msgs = c.until_ready();
    assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
}

#[test]
fn ssl_request_without_tls_is_declined_then_a_normal_startup_works() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let mut c = raw_open(h.port);
    c.send(&untagged(SSL_REQUEST, b""));
    assert_eq!(read_byte(&mut c), b'N');
    c.send(&raw::startup(&[
        ("user", "postgres"),
        ("database", "postgres"),
    ]));
    let msgs = c.until_ready();
    assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
    c.send(&raw::query("select 1"));
    assert!(c.until_ready().iter().any(|m| m.tag == b'D'));
}

#[test]
fn newer_protocol_minor_and_options_get_the_same_negotiate_protocol_version_as_postgres() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let packet = untagged(
        (3 << 16) | 2,
        b"user\0postgres\0database\0postgres\0_pq_.frobnicate\0on\0\0",
    );
    let first = |port: u16| {
        let mut c = raw_open(port);
        c.send(&packet);
        let msgs = c.until_ready();
        assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
        msgs.into_iter().next().unwrap()
    };
    let direct = first(pg.port);
    assert_eq!(
        direct.tag, b'v',
        "control: PostgreSQL negotiates: {direct:?}"
    );
    let via = first(h.port);
    assert_eq!(
        via, direct,
        "NegotiateProtocolVersion differs from PostgreSQL's"
    );
}

#[test]
fn a_client_that_sends_nothing_is_dropped_after_startup_timeout() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "[server]\nstartup_timeout = \"1s\"\n");
    let t0 = Instant::now();
    let mut silent = raw_open(h.port);
    let mut partial = raw_open(h.port);
    // Half a startup packet: the length, then nothing.
    partial.send(&64i32.to_be_bytes());

    for (what, c) in [("silent", &mut silent), ("partial", &mut partial)] {
        let msgs = read_until_closed(c);
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "{what} client dropped too early ({waited:?})"
        );
        assert!(
            waited < Duration::from_secs(5),
            "{what} client dropped only after {waited:?}"
        );
        assert!(
            msgs.iter().all(|m| m.tag == b'E'),
            "{what}: nothing but an error may be sent: {msgs:?}"
        );
    }
    assert!(h.is_alive());
    let mut n = raw_login(h.port);
    n.send(&raw::query("select 1"));
    assert!(n.until_ready().iter().all(|m| m.tag != b'E'));
}

#[test]
fn cancel_with_a_wrong_key_does_nothing_and_the_right_key_cancels() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    let (mut c, msgs) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let k = msgs
        .iter()
        .find(|m| m.tag == b'K')
        .unwrap_or_else(|| panic!("no BackendKeyData: {msgs:?}"));
    let pid = i32::from_be_bytes(k.body[0..4].try_into().unwrap());
    let secret = i32::from_be_bytes(k.body[4..8].try_into().unwrap());

    let send_cancel = |pid: i32, secret: i32| {
        let mut cc = raw_open(h.port);
        let mut body = pid.to_be_bytes().to_vec();
        body.extend(secret.to_be_bytes());
        cc.send(&untagged(CANCEL_REQUEST, &body));
        // Helios answers nothing and closes.
        let msgs = read_until_closed(&mut cc);
        assert!(msgs.is_empty(), "a cancel request gets no answer: {msgs:?}");
    };

    c.send(&raw::query("select pg_sleep(1.5)"));
    std::thread::sleep(Duration::from_millis(200));
    send_cancel(pid, secret ^ 0x5a5a);
    send_cancel(pid.wrapping_add(1), secret);
    send_cancel(0, 0);
    let msgs = c.until_ready();
    assert!(
        msgs.iter().all(|m| m.tag != b'E'),
        "a cancel with a wrong key interrupted the query: {msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.tag == b'C'), "{msgs:?}");

    // Control: the right key does cancel.
    c.send(&raw::query("select pg_sleep(10)"));
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    send_cancel(pid, secret);
    let msgs = c.until_ready();
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "cancel took too long"
    );
    let e = msgs
        .iter()
        .find(|m| m.tag == b'E')
        .unwrap_or_else(|| panic!("the right key did not cancel: {msgs:?}"));
    assert_eq!(e.sqlstate().as_deref(), Some("57014"), "{msgs:?}");

    // The session goes on.
    c.send(&raw::query("select 1"));
    assert!(c.until_ready().iter().all(|m| m.tag != b'E'));
    assert!(h.is_alive());
}

#[test]
fn a_cancel_key_of_a_session_that_ended_does_not_cancel_the_next_session_on_its_connection() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"5s\"\n");
    let key_and_pid = |c: &mut RawConn, msgs: &[Msg]| {
        let k = msgs.iter().find(|m| m.tag == b'K').expect("BackendKeyData");
        c.send(&raw::query("select pg_backend_pid()"));
        let rows = c.until_ready();
        let pid = rows
            .iter()
            .find(|m| m.tag == b'D')
            .map(|m| m.body[6..].to_vec())
            .expect("a pid");
        (k.body.clone(), pid)
    };
    let (mut a, msgs) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    let (a_key, a_pid) = key_and_pid(&mut a, &msgs);
    a.send(&raw::terminate());
    read_until_closed(&mut a);

    let (mut b, msgs) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    b.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (b_key, b_pid) = key_and_pid(&mut b, &msgs);
    assert_eq!(
        b_pid, a_pid,
        "B should reuse A's upstream connection (max_size = 1)"
    );
    assert_ne!(b_key, a_key, "each session gets a key of its own");

    b.send(&raw::query("select pg_sleep(1.5)"));
    std::thread::sleep(Duration::from_millis(200));
    let mut cc = raw_open(h.port);
    cc.send(&untagged(CANCEL_REQUEST, &a_key));
    read_until_closed(&mut cc);
    let msgs = b.until_ready();
    assert!(
        msgs.iter().all(|m| m.tag != b'E'),
        "the ended session's key cancelled the next session's query: {msgs:?}"
    );
}
