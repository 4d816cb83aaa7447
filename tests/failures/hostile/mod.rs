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

fn helios_answers_blocking(h: &Helios) {
    let mut c = raw_login(h.port);
    c.send(&raw::query("select 1"));
    let msgs = c.until_ready();
    assert!(
        msgs.iter().any(|m| m.tag == b'D') && msgs.iter().all(|m| m.tag != b'E'),
        "{msgs:?}"
    );
}

/// Fixed pseudo-random bytes (a linear congruential generator).
fn noise(n: usize, mut seed: u32) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as u8
        })
        .collect()
}

mod cut_short;
mod garbage;
mod gigabyte;
mod lengths;
mod stalled;
mod timing;
mod tls;
