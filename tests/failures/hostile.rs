//! Hostile clients: frames cut short, lengths that lie, gigabyte length
//! prefixes, garbage (HTTP, TLS) instead of a startup packet, TLS
//! confusion, floods of stalled connections, and password guessing by
//! timing. Each gets a prompt PostgreSQL error (or a prompt close), nothing
//! it sent reaches the upstream, Helios's memory stays flat, and a normal
//! client gets in right after.
//!
//! Where PostgreSQL defines the answer (framing it does itself), the bytes
//! are sent to PostgreSQL directly as well and the two answers compared.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::common::llm::FakeLlm;
use crate::common::raw::{self, Msg};
use crate::common::{Helios, PgServer};
use crate::support::{
    no_auth_failure_limit, parse_msgs, postgres_log, raw_login, raw_open, scalar,
    wait_no_busy_upstream_sessions, wait_no_upstream_sessions, within,
};

// ------------------------------------------------------------------ helpers

fn be32(n: i32) -> [u8; 4] {
    n.to_be_bytes()
}

/// A tagged message whose length field says `len`, whatever the body is.
fn with_len_field(tag: u8, len: i32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(be32(len));
    v.extend_from_slice(body);
    v
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// What a server said before it closed the connection.
#[derive(Debug)]
struct Heard {
    bytes: Vec<u8>,
    closed: bool,
    took: Duration,
}

impl Heard {
    fn msgs(&self) -> Vec<Msg> {
        parse_msgs(&self.bytes)
    }
}

/// Read until the server closes the connection, for at most `secs`.
fn until_closed(s: &mut TcpStream, secs: u64) -> Heard {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Heard {
                bytes,
                closed: false,
                took: t0.elapsed(),
            };
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Heard {
                    bytes,
                    closed: false,
                    took: t0.elapsed(),
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    Heard {
        bytes,
        closed: true,
        took: t0.elapsed(),
    }
}

/// The answer in a form two servers can be compared by: errors by severity,
/// SQLSTATE and message; other messages whole.
fn summary(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .map(|m| match m.tag {
            b'E' | b'N' => format!(
                "{} {} {} {}",
                m.tag as char,
                m.field(b'S').unwrap_or_default(),
                m.sqlstate().unwrap_or_default(),
                m.field(b'M').unwrap_or_default()
            ),
            _ => format!("{m:?}"),
        })
        .collect()
}

const PROBE: &str = "select 'still here'";

/// Log in on `port`, send `bytes` and then a probe query in the same write,
/// and read until the probe is answered or the server closes the session.
fn after_login(port: u16, bytes: &[u8]) -> (Vec<String>, bool) {
    let mut c = raw_login(port);
    let mut all = bytes.to_vec();
    all.extend(raw::query(PROBE));
    c.send(&all);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let msgs = parse_msgs(&got);
        // The probe's row, then a whole ReadyForQuery.
        let probe_done = msgs
            .iter()
            .position(|m| m.tag == b'D' && m.body.ends_with(b"still here"))
            .is_some_and(|i| msgs[i..].iter().any(|m| m.tag == b'Z' && m.body.len() == 1));
        if probe_done {
            return (summary(&msgs), false);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "neither closed nor answered the probe within 10s: {msgs:?}"
        );
        c.stream.set_read_timeout(Some(left)).unwrap();
        match c.stream.read(&mut buf) {
            Ok(0) => return (summary(&parse_msgs(&got)), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return (summary(&parse_msgs(&got)), true)
            }
            Err(e) => panic!("read: {e}; so far {:?}", parse_msgs(&got)),
        }
    }
}

/// Helios answers `bytes` (sent after login) exactly as PostgreSQL does.
fn same_as_postgres(pg: &PgServer, h: &Helios, what: &str, bytes: &[u8]) -> (Vec<String>, bool) {
    let via = after_login(h.port, bytes);
    let direct = after_login(pg.port, bytes);
    assert_eq!(
        via, direct,
        "{what}: Helios (left) answers differently from PostgreSQL (right)"
    );
    via
}

fn rows_in_t(pg: &PgServer) -> String {
    pg.psql("select coalesce(string_agg(x::text, ',' order by x), '') from t")
        .trim()
        .to_string()
}

/// Resident memory, its peak, and the peak of the address space, in kB.
fn memory_kb(h: &Helios) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", h.child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("VmPeak:"))
}

fn upstream_client_sessions(pg: &PgServer) -> u32 {
    pg.psql(
        "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
    )
    .trim()
    .parse()
    .unwrap()
}

/// A self-signed certificate for localhost, as `[tls]` TOML.
fn tls_toml(dir: &std::path::Path) -> String {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let o = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/CN=localhost"])
        .output()
        .expect("the openssl command is needed for the TLS cases");
    assert!(
        o.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

fn startup_for(user: &str) -> Vec<u8> {
    raw::startup(&[("user", user), ("database", "postgres")])
}

/// A TLS 1.2/1.3 ClientHello record, as a client that skips SSLRequest
/// sends it (fixed random, one cipher suite, SNI localhost).
fn client_hello() -> Vec<u8> {
    let sni = b"localhost";
    let mut ext = Vec::new();
    ext.extend([0x00, 0x00]); // server_name
    ext.extend(((sni.len() + 5) as u16).to_be_bytes());
    ext.extend(((sni.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend((sni.len() as u16).to_be_bytes());
    ext.extend(sni);
    let mut hello = vec![0x03, 0x03];
    hello.extend([0x42; 32]); // random
    hello.push(0); // session id
    hello.extend([0x00, 0x02, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    hello.extend([0x01, 0x00]); // compression: null
    hello.extend((ext.len() as u16).to_be_bytes());
    hello.extend(ext);
    let mut hs = vec![0x01];
    hs.extend(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend(hello);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

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

// ---------------------------------------------------------- lengths that lie

#[test]
fn lengths_that_lie_are_framed_exactly_as_postgres_frames_them() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "");
    let select1 = b"select 1\0";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            // The length covers `select 1`; what follows is read as the
            // next message: type 'i'.
            "a length shorter than the body",
            {
                let mut v = raw::msg(b'Q', select1);
                v.extend(b"insert into t values (1)\0");
                v
            },
            "FATAL 08P01 invalid frontend message type 105",
        ),
        (
            // The length stops before the terminator: the string has none;
            // its NUL is the next message's type.
            "a length that leaves the terminator out",
            {
                let mut v = with_len_field(b'Q', 4 + 8, b"select 1\0");
                v.extend(raw::query("insert into t values (2)"));
                v
            },
            "FATAL 08P01 invalid frontend message type 0",
        ),
        (
            "a Query whose string has no terminator",
            raw::msg(b'Q', b"insert into t values (3)"),
            "ERROR 08P01 invalid string in message",
        ),
        (
            "a Query with a second statement after its terminator",
            raw::msg(b'Q', b"select 1\0insert into t values (4)\0"),
            "ERROR 08P01 invalid message format",
        ),
        (
            "a Query with two terminators",
            raw::msg(b'Q', b"insert into t values (5)\0\0"),
            "ERROR 08P01 invalid message format",
        ),
    ];
    for (what, bytes, want) in &cases {
        let (got, closed) = same_as_postgres(&pg, &h, what, bytes);
        assert!(
            got.iter().any(|m| m.ends_with(want)),
            "{what}: expected {want:?} in {got:?}"
        );
        assert_eq!(closed, want.starts_with("FATAL"), "{what}: {got:?}");
        assert_eq!(rows_in_t(&pg), "", "{what}: a hidden statement ran");
    }
    assert!(h.is_alive());
    helios_answers_blocking(&h);
}

/// A Bind body after the portal and statement names.
fn bind_tail(formats: &[i16], count: i16, values: &[&[u8]], lens: Option<&[i32]>) -> Vec<u8> {
    let mut b = vec![0u8, 0u8]; // unnamed portal, unnamed statement
    b.extend((formats.len() as i16).to_be_bytes());
    for f in formats {
        b.extend(f.to_be_bytes());
    }
    b.extend(count.to_be_bytes());
    for (i, v) in values.iter().enumerate() {
        let len = lens.map_or(v.len() as i32, |l| l[i]);
        b.extend(len.to_be_bytes());
        b.extend_from_slice(v);
    }
    b.extend(0i16.to_be_bytes()); // result formats
    b
}

/// The malformed Binds: what, body.
fn bad_binds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "a count of 2 with one value",
            bind_tail(&[], 2, &[b"7"], None),
        ),
        (
            "a count of 2 with two values",
            bind_tail(&[], 2, &[b"7", b"8"], None),
        ),
        ("a count of 0 and no value", bind_tail(&[], 0, &[], None)),
        (
            "a value length past the end",
            bind_tail(&[], 1, &[b"7"], Some(&[100])),
        ),
        (
            "a value length of -2",
            bind_tail(&[], 1, &[b"7"], Some(&[-2])),
        ),
        ("a count of -1", bind_tail(&[], -1, &[b"7"], None)),
        (
            "3 parameter formats for one parameter",
            bind_tail(&[0, 0, 0], 1, &[b"7"], None),
        ),
        ("bytes after the result formats", {
            let mut b = bind_tail(&[], 1, &[b"7"], None);
            b.extend(b"xx");
            b
        }),
        ("a statement name without terminator", b"\0stmt".to_vec()),
    ]
}

#[test]
fn binds_whose_parameters_do_not_match_their_bytes_are_refused_as_postgres_refuses_them() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "");
    for (what, body) in bad_binds() {
        let mut bytes = raw::parse("", "insert into t values ($1::int)", &[]);
        bytes.extend(raw::msg(b'B', &body));
        bytes.extend(raw::execute("", 0));
        bytes.extend(raw::sync());
        let (got, closed) = same_as_postgres(&pg, &h, what, &bytes);
        assert!(!closed, "{what}: {got:?}");
        assert!(
            got.iter().any(|m| m.starts_with("E ERROR 08P01")),
            "{what}: expected a protocol violation: {got:?}"
        );
        assert_eq!(rows_in_t(&pg), "", "{what}: the insert ran");
    }
    assert!(h.is_alive());
    helios_answers_blocking(&h);
}

#[test]
fn a_malformed_bind_of_a_question_is_refused_and_asks_the_model_nothing() {
    // Helios answers `nl($1)` itself, so it reads the Bind itself: it must
    // refuse what PostgreSQL would refuse (08P01), before asking the model.
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let llm = FakeLlm::start_blocking();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[nl]\n[[nl.providers]]\nkind = \"openai\"\nname = \"fake\"\nbase_url = \"{}\"\nmodel = \"m\"\napi_key = \"sk-test\"\ntimeout = \"5s\"\nmax_retries = 0\n",
            llm.base_url()
        ),
    );
    let mut failures = Vec::new();
    for (what, body) in bad_binds() {
        let calls = llm.calls();
        let mut bytes = raw::parse("", "SELECT * FROM nl($1)", &[]);
        bytes.extend(raw::msg(b'B', &body));
        bytes.extend(raw::execute("", 0));
        bytes.extend(raw::sync());
        let (got, closed) = after_login(h.port, &bytes);
        let errors: Vec<&String> = got.iter().filter(|m| m.starts_with("E ")).collect();
        if closed || errors.len() != 1 || !errors[0].starts_with("E ERROR 08P01") {
            failures.push(format!("{what}: expected one ERROR 08P01, got {got:?}"));
        }
        if llm.calls() != calls {
            failures.push(format!("{what}: the model was asked"));
        }
    }
    assert_eq!(rows_in_t(&pg), "");
    assert!(h.is_alive());
    helios_answers_blocking(&h);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn helios_answers_blocking(h: &Helios) {
    let mut c = raw_login(h.port);
    c.send(&raw::query("select 1"));
    let msgs = c.until_ready();
    assert!(
        msgs.iter().any(|m| m.tag == b'D') && msgs.iter().all(|m| m.tag != b'E'),
        "{msgs:?}"
    );
}

// ------------------------------------------------- gigabyte length prefixes

/// Send `bytes`, keep the connection open, and expect one FATAL 08P01
/// within 2 s; memory must not grow by what the length announced. `Err`
/// says what went wrong.
fn refusal(h: &Helios, c: &mut TcpStream, bytes: &[u8], what: &str) -> Result<(), String> {
    let (_, hwm0, peak0) = memory_kb(h);
    let t0 = Instant::now();
    c.write_all(bytes).unwrap();
    let heard = until_closed(c, 5);
    let took = t0.elapsed();
    let (rss, hwm, peak) = memory_kb(h);
    let (hwm_growth, vm_growth) = (hwm - hwm0, peak.saturating_sub(peak0));
    let msgs = heard.msgs();
    eprintln!(
        "{what}: closed {} after {took:?}; RSS {rss} kB, peak RSS +{hwm_growth} kB, peak VM +{vm_growth} kB; {:?}",
        heard.closed,
        summary(&msgs)
    );
    if !heard.closed {
        return Err(format!("{what}: not refused within 5s (got {msgs:?})"));
    }
    let errors: Vec<&Msg> = msgs.iter().filter(|m| m.tag == b'E').collect();
    if !(errors.len() == 1
        && errors[0].sqlstate().as_deref() == Some("08P01")
        && errors[0].field(b'S').as_deref() == Some("FATAL"))
    {
        return Err(format!(
            "{what}: expected one FATAL 08P01, got {:?}",
            summary(&msgs)
        ));
    }
    if took >= Duration::from_secs(2) {
        return Err(format!("{what}: refused after {took:?}"));
    }
    if hwm_growth >= 64 << 10 {
        return Err(format!(
            "{what}: Helios's resident memory peaked {} MB higher",
            hwm_growth >> 10
        ));
    }
    if vm_growth >= 512 << 10 {
        return Err(format!(
            "{what}: Helios's address space grew by {} MB (the announced message was allocated)",
            vm_growth >> 10
        ));
    }
    Ok(())
}

fn refused_without_allocating(h: &Helios, c: &mut TcpStream, bytes: &[u8], what: &str) {
    if let Err(e) = refusal(h, c, bytes, what) {
        panic!("{e}");
    }
}

#[test]
fn gigabyte_length_prefixes_are_refused_at_once_without_allocating() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "");
    helios_answers_blocking(&h);
    let mut failures = Vec::new();
    // Startup packets announcing a gigabyte.
    for len in [0x3FFF_FFFF, 0x7FFF_FFFF] {
        let mut c = connect(h.port);
        let mut bytes = be32(len).to_vec();
        bytes.extend(be32(196_608));
        bytes.extend(b"user\0postgres\0");
        failures.extend(refusal(&h, &mut c, &bytes, &format!("startup length {len:#x}")).err());
    }
    // After login: a Query, a Bind, a CopyData. PostgreSQL takes no
    // message whose length field exceeds 1 GB - 2 (PQ_LARGE_MESSAGE_LIMIT):
    // neither length is worth relaying.
    for tag in [b'Q', b'B', b'd'] {
        for len in [0x3FFF_FFFF, 0x7FFF_FFFF] {
            let mut c = raw_login(h.port);
            let bytes = with_len_field(tag, len, b"insert into t values (1)");
            let what = format!("'{}' length {len:#x} after login", tag as char);
            failures.extend(refusal(&h, &mut c.stream, &bytes, &what).err());
        }
    }
    wait_no_upstream_sessions(&pg);
    let log = postgres_log(&pg);
    if log.contains("invalid message length") {
        failures.push(format!(
            "a gigabyte header reached the upstream, which refused it:\n{}",
            log.lines()
                .filter(|l| l.contains("invalid message length"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    assert_eq!(rows_in_t(&pg), "");
    assert!(h.is_alive());
    helios_answers_blocking(&h);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_gigabyte_password_message_is_refused_at_once_without_allocating() {
    let pg = PgServer::start();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"postgres\"\npassword = \"pw\"\n{}",
            no_auth_failure_limit()
        ),
    );
    for len in [0x3FFF_FFFF, 0x7FFF_FFFF] {
        let mut c = connect(h.port);
        c.write_all(&startup_for("postgres")).unwrap();
        let mut head = [0u8; 1];
        c.read_exact(&mut head).unwrap();
        assert_eq!(head[0], b'R', "asked for a password first");
        // The rest of the SASL request.
        let mut len_bytes = [0u8; 4];
        c.read_exact(&mut len_bytes).unwrap();
        let mut rest = vec![0u8; i32::from_be_bytes(len_bytes) as usize - 4];
        c.read_exact(&mut rest).unwrap();
        let bytes = with_len_field(b'p', len, b"SCRAM-SHA-256\0");
        refused_without_allocating(&h, &mut c, &bytes, &format!("password length {len:#x}"));
    }
    assert_eq!(upstream_client_sessions(&pg), 0);
    assert!(h.is_alive());
}

#[test]
fn a_query_over_max_message_size_is_refused_on_its_header_alone() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "[server]\nmax_message_size = \"1MB\"\n");
    let mut c = raw_login(h.port);
    // A 2 MB Query's header and its first bytes; the rest never comes.
    let bytes = with_len_field(b'Q', 2 << 20, b"insert into t values (1) /* ");
    refused_without_allocating(&h, &mut c.stream, &bytes, "2 MB Query, 1 MB limit");
    wait_no_upstream_sessions(&pg);
    assert_eq!(rows_in_t(&pg), "");
    assert!(h.is_alive());
    helios_answers_blocking(&h);
}

// ----------------------------------------------- garbage instead of startup

/// Fixed pseudo-random bytes (a linear congruential generator).
fn noise(n: usize, mut seed: u32) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_instead_of_a_startup_packet_is_refused_at_once_as_postgres_refuses_it() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "[server]\nstartup_timeout = \"10s\"\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", noise(64, 7)),
        ("more random bytes", noise(4096, 11)),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\n\r\n".to_vec(),
        ),
        ("a TLS ClientHello without SSLRequest", client_hello()),
        ("an SSH greeting", b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()),
        ("a plausible length, then an unknown protocol", {
            let mut v = be32(16).to_vec();
            v.extend([0xde, 0xad, 0xbe, 0xef]);
            v.extend(noise(8, 3));
            v
        }),
        ("protocol 3.0 without terminators", {
            let mut v = be32(8 + 13).to_vec();
            v.extend(be32(196_608));
            v.extend(b"user\0postgres");
            v
        }),
    ];
    for (what, bytes) in &cases {
        let mut heard = Vec::new();
        for port in [h.port, pg.port] {
            let mut s = connect(port);
            s.write_all(bytes).unwrap();
            let got = until_closed(&mut s, 3);
            assert!(
                got.closed && got.took < Duration::from_secs(2),
                "{what} on port {port}: not refused within 2s ({:?})",
                got.msgs()
            );
            heard.push(summary(&got.msgs()));
        }
        let (via, direct) = (&heard[0], &heard[1]);
        eprintln!("{what}: Helios {via:?}, PostgreSQL {direct:?}");
        if direct.is_empty() {
            // PostgreSQL hangs up without a word (it logs the problem);
            // Helios may say why, as a single FATAL protocol violation.
            assert!(
                via.is_empty() || (via.len() == 1 && via[0].starts_with("E FATAL 08P01 ")),
                "{what}: Helios said {via:?}"
            );
        } else {
            assert_eq!(via, direct, "{what}: Helios (left) and PostgreSQL (right)");
        }
    }
    assert_eq!(upstream_client_sessions(&pg), 0);
    assert!(h.is_alive());
    helios_answers_blocking(&h);
}

// ------------------------------------------------------------ TLS confusion

/// Without TLS configured, an SSLRequest and the startup packet in one
/// write: Helios declines ('N') and serves the startup that followed (no
/// byte lost). PostgreSQL 15 instead ends such a connection ("received
/// unencrypted data after SSL request", 08P01) even after 'N'; with no TLS
/// on offer there is nothing to protect, so either is safe: shown, not
/// required.
#[test]
fn without_tls_an_ssl_request_pipelined_with_the_startup_is_declined_and_the_startup_served() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let mut bytes = SSL_REQUEST.to_vec();
    bytes.extend(startup_for("postgres"));

    let mut direct = connect(pg.port);
    direct.write_all(&bytes).unwrap();
    let heard = until_closed(&mut direct, 2);
    eprintln!(
        "PostgreSQL answers {:?} then {:?}",
        heard.bytes.first().map(|&b| b as char),
        summary(&parse_msgs(heard.bytes.get(1..).unwrap_or_default()))
    );

    let mut c = raw_open(h.port);
    c.send(&bytes);
    let mut b = [0u8; 1];
    c.stream.read_exact(&mut b).unwrap();
    assert_eq!(b[0], b'N');
    let msgs = c.until_ready();
    assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
    c.send(&raw::query("select 1"));
    assert!(c.until_ready().iter().any(|m| m.tag == b'D'), "no row");
}

#[test]
fn with_tls_plaintext_after_s_or_a_bare_client_hello_never_starts_a_session() {
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[server]\nstartup_timeout = \"10s\"\n{}",
            tls_toml(dir.path())
        ),
    );
    // After 'S', a plaintext startup packet (and a query) instead of a
    // ClientHello: the handshake fails at once, no session starts.
    let mut s = connect(h.port);
    s.write_all(&SSL_REQUEST).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(b[0], b'S');
    let mut plain = startup_for("postgres");
    plain.extend(raw::query("select 1"));
    s.write_all(&plain).unwrap();
    let heard = until_closed(&mut s, 5);
    assert!(
        heard.closed && heard.took < Duration::from_secs(2),
        "plaintext after 'S': not dropped within 2s ({heard:?})"
    );
    // Whatever came back (a TLS alert) is no PostgreSQL message.
    assert!(
        !heard.bytes.starts_with(b"R") && !heard.bytes.windows(2).any(|w| w == b"Z\0"),
        "plaintext after 'S' was served: {:?}",
        heard.bytes
    );

    // A ClientHello with no SSLRequest before it (direct TLS, which
    // PostgreSQL 17 clients may try): refused at once, as a bad length.
    let mut s = connect(h.port);
    s.write_all(&client_hello()).unwrap();
    let heard = until_closed(&mut s, 5);
    assert!(
        heard.closed && heard.took < Duration::from_secs(2),
        "bare ClientHello: not dropped within 2s ({heard:?})"
    );
    let msgs = heard.msgs();
    assert!(
        msgs.iter()
            .all(|m| m.tag == b'E' && m.sqlstate().as_deref() == Some("08P01")),
        "bare ClientHello: {msgs:?}"
    );

    assert_eq!(upstream_client_sessions(&pg), 0);
    assert!(h.is_alive());
    helios_answers_blocking(&h);
}

// ----------------------------------------------- floods of stalled clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_stalled_startups_do_not_keep_a_normal_client_out() {
    let pg = PgServer::start();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[server]\nstartup_timeout = \"4s\"\n[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"postgres\"\npassword = \"pw-ok\"\n{}",
            no_auth_failure_limit()
        ),
    );
    helios_answers_with_password(&h).await;
    // Upstream sessions before the flood (the warm-up's, pooled or ending).
    let before = upstream_client_sessions(&pg);
    let (rss0, hwm0, _) = memory_kb(&h);
    let t0 = Instant::now();
    let port = h.port;
    let stalled: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        let mut v = Vec::new();
        for i in 0..200 {
            let mut s = connect(port);
            if i % 2 == 0 {
                // Half a startup packet.
                let full = startup_for("postgres");
                s.write_all(&full[..full.len() / 2]).unwrap();
            } else {
                // A whole one, then silence at the password prompt.
                s.write_all(&startup_for("postgres")).unwrap();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).unwrap();
                assert_eq!(b[0], b'R');
            }
            v.push(s);
        }
        v
    })
    .await
    .unwrap();
    let opened = t0.elapsed();

    // While they stall, a normal client gets in and is answered promptly.
    let t1 = Instant::now();
    helios_answers_with_password(&h).await;
    let took = t1.elapsed();
    let (rss1, hwm1, _) = memory_kb(&h);
    eprintln!(
        "200 stalled clients opened in {opened:?}; a normal login and query took {took:?}; \
         RSS {rss0} -> {rss1} kB (peak +{} kB)",
        hwm1 - hwm0
    );
    assert!(
        took < Duration::from_secs(2),
        "a normal client waited {took:?} behind 200 stalled ones"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "the flood took too long to set up to test anything ({:?})",
        t0.elapsed()
    );
    assert!(
        hwm1 - hwm0 < 64 << 10,
        "200 stalled clients cost {} MB",
        (hwm1 - hwm0) >> 10
    );
    let during = upstream_client_sessions(&pg);
    assert!(
        during <= before + 1,
        "stalled clients got upstream sessions: {before} before the flood, {during} during it"
    );

    // startup_timeout ends them all.
    let closed = tokio::task::spawn_blocking(move || {
        stalled
            .into_iter()
            .map(|mut s| until_closed(&mut s, 8).closed)
            .filter(|c| *c)
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 200, "stalled clients outlived startup_timeout");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "closing the stalled clients took {:?}",
        t0.elapsed()
    );
    assert!(h.is_alive());
    helios_answers_with_password(&h).await;
}

async fn helios_answers_with_password(h: &Helios) {
    let c = within(
        10,
        "login",
        crate::common::try_connect(&format!("{} password=pw-ok", h.conn_str("postgres"))),
    )
    .await
    .unwrap_or_else(|e| panic!("a normal client cannot log in: {e:?}"));
    assert_eq!(scalar(&c, "select 1").await.as_deref(), Some("1"));
}

// ------------------------------------------------ password guessing timing

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn read_one(s: &mut TcpStream) -> Msg {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).expect("a message");
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).unwrap();
    Msg { tag: head[0], body }
}

/// One SCRAM login with a wrong proof: how long the whole exchange took,
/// and how long the server took to judge the proof.
fn scram_guess(port: u16, user: &str, n: usize) -> (Duration, Duration) {
    let t0 = Instant::now();
    let mut s = connect(port);
    s.write_all(&startup_for(user)).unwrap();
    let m = read_one(&mut s);
    assert!(
        m.tag == b'R' && m.body[..4] == be32(10),
        "{user}: expected a SASL request, got {m:?}"
    );
    let client_nonce = base64(&noise(18, n as u32));
    let first = format!("n,,n=,r={client_nonce}");
    let mut p = b"SCRAM-SHA-256\0".to_vec();
    p.extend(be32(first.len() as i32));
    p.extend(first.as_bytes());
    s.write_all(&raw::msg(b'p', &p)).unwrap();
    let m = read_one(&mut s);
    assert!(
        m.tag == b'R' && m.body[..4] == be32(11),
        "{user}: expected SASLContinue, got {m:?}"
    );
    let server_first = String::from_utf8_lossy(&m.body[4..]).into_owned();
    let nonce = server_first
        .split(',')
        .find_map(|f| f.strip_prefix("r="))
        .expect("a nonce");
    let last = format!("c=biws,r={nonce},p={}", base64(&noise(32, 1000 + n as u32)));
    let t1 = Instant::now();
    s.write_all(&raw::msg(b'p', last.as_bytes())).unwrap();
    let m = read_one(&mut s);
    let judged = t1.elapsed();
    assert_eq!(m.tag, b'E', "{user}: a wrong proof got {m:?}");
    assert_eq!(m.sqlstate().as_deref(), Some("28P01"), "{user}: {m:?}");
    (t0.elapsed(), judged)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn a_wrong_password_and_an_unknown_user_take_the_same_time() {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    let mut h = Helios::start(
        &pg,
        &format!(
            "[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n{}",
            no_auth_failure_limit()
        ),
    );
    // Warm up both paths.
    scram_guess(h.port, "alice", 0);
    scram_guess(h.port, "alicf", 0);
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 1..=30 {
        // Interleaved, alternating which goes first.
        let order = if i % 2 == 0 {
            ["alice", "alicf"]
        } else {
            ["alicf", "alice"]
        };
        for user in order {
            let t = scram_guess(h.port, user, i);
            if user == "alice" {
                known.push(t);
            } else {
                unknown.push(t);
            }
        }
    }
    let totals = (
        median(known.iter().map(|t| t.0).collect()),
        median(unknown.iter().map(|t| t.0).collect()),
    );
    let judged = (
        median(known.iter().map(|t| t.1).collect()),
        median(unknown.iter().map(|t| t.1).collect()),
    );
    eprintln!(
        "median login with a wrong password: known user {:?}, unknown user {:?}; \
         proof judged in {:?} vs {:?}",
        totals.0, totals.1, judged.0, judged.1
    );
    for (what, (k, u)) in [("whole exchange", totals), ("judging the proof", judged)] {
        let (k, u) = (k.as_secs_f64(), u.as_secs_f64());
        assert!(
            k <= 3.0 * u && u <= 3.0 * k,
            "{what}: a known user takes {k:.6}s, an unknown one {u:.6}s: guessable"
        );
    }
    assert!(h.is_alive());
}
