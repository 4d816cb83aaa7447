//! TLS for clients: psql over TLS, channel binding, broken handshakes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Helios, PgServer};
use crate::support::{
    assert_psql_ok, login, psql_via, read_to_close, refused, require_passwords, run_bounded,
    scalar, stderr, stdout,
};

// --------------------------------------------------------------------- TLS

/// A self-signed certificate and key for localhost, made with openssl.
fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let version = Command::new("openssl").arg("version").output();
    assert!(
        matches!(&version, Ok(o) if o.status.success()),
        "the openssl command is needed for the TLS tests (apt-get install openssl)"
    );
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let mut c = Command::new("openssl");
    c.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .args(["-days", "2", "-subj", "/CN=localhost"])
    .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]);
    let o = run_bounded(c, 30);
    assert!(o.status.success(), "openssl: {}", stderr(&o));
    (cert, key)
}

fn tls_toml(dir: &Path) -> String {
    let (cert, key) = self_signed_cert(dir);
    format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_connects_over_tls_with_sslmode_require() {
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let h = Helios::start(&pg, &tls_toml(dir.path()));

    let o = psql_via(&h, "postgres", None, "sslmode=require", "\\conninfo");
    assert!(o.status.success(), "psql over TLS failed: {}", stderr(&o));
    assert!(
        stdout(&o).contains("SSL connection (protocol: TLSv1."),
        "\\conninfo does not show TLS: {}",
        stdout(&o)
    );
    assert_psql_ok(
        &psql_via(&h, "postgres", None, "sslmode=require", "select 1"),
        "1",
    );
    // Big enough to span many TLS records, both ways.
    assert_psql_ok(
        &psql_via(
            &h,
            "postgres",
            None,
            "sslmode=require",
            "select sum(length(repeat('x', i))) from generate_series(1, 2000) i",
        ),
        "2001000",
    );
    // Plain connections still work alongside.
    let c = login(&h, "postgres", None).await;
    assert_eq!(scalar(&c, "select 1").await.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_fails_without_tls_configured() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let o = psql_via(&h, "postgres", None, "sslmode=require", "select 1");
    assert!(!o.status.success(), "TLS without a certificate configured?");
    assert!(
        stderr(&o).contains("server does not support SSL, but SSL was required"),
        "{}",
        stderr(&o)
    );
    // sslmode=prefer falls back to plain text.
    assert_psql_ok(
        &psql_via(&h, "postgres", None, "sslmode=prefer", "select 1"),
        "1",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_over_tls_with_channel_binding() {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    let dir = tempfile::tempdir().unwrap();
    let h = Helios::start(
        &pg,
        &format!(
            "{}[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n",
            tls_toml(dir.path())
        ),
    );
    assert_psql_ok(
        &psql_via(
            &h,
            "alice",
            Some("alice-pw"),
            "sslmode=require channel_binding=require",
            "select current_user",
        ),
        "alice",
    );
    let o = psql_via(
        &h,
        "alice",
        Some("wrong"),
        "sslmode=require channel_binding=require",
        "select 1",
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("password authentication failed for user \"alice\""),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_over_tls() {
    let pg = PgServer::start();
    pg.psql("create role alice login password 'alice-pw'");
    require_passwords(&pg, "scram-sha-256", "alice");
    let dir = tempfile::tempdir().unwrap();
    let h = Helios::start(
        &pg,
        &format!("{}[auth]\nmethod = \"upstream\"\n", tls_toml(dir.path())),
    );
    assert_psql_ok(
        &psql_via(
            &h,
            "alice",
            Some("alice-pw"),
            "sslmode=require",
            "select current_user",
        ),
        "alice",
    );
    let o = psql_via(&h, "alice", Some("nope"), "sslmode=require", "select 1");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("password authentication failed for user \"alice\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_broken_or_silent_tls_handshake_is_dropped_and_helios_goes_on() {
    use std::io::{Read, Write};
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[server]\nstartup_timeout = \"1s\"\n{}",
            tls_toml(dir.path())
        ),
    );
    let ssl_request = {
        let mut v = 8i32.to_be_bytes().to_vec();
        v.extend(80_877_103i32.to_be_bytes());
        v
    };
    let open = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&ssl_request).unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(b[0], b'S', "TLS is configured: SSLRequest gets 'S'");
        s
    };
    // Not TLS after 'S'.
    let mut junk = open();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_to_close(&mut junk);
    // Nothing after 'S': dropped after startup_timeout.
    let t0 = Instant::now();
    let mut silent = open();
    read_to_close(&mut silent);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "a client silent after 'S' was dropped after {waited:?} (startup_timeout = 1s)"
    );
    assert!(h.is_alive());
    assert_psql_ok(
        &psql_via(&h, "postgres", None, "sslmode=require", "select 1"),
        "1",
    );
}

#[test]
fn plaintext_sent_along_with_an_ssl_request_never_starts_a_session() {
    use std::io::Write;
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[server]\nstartup_timeout = \"2s\"\n{}",
            tls_toml(dir.path())
        ),
    );
    let mut bytes = 8i32.to_be_bytes().to_vec();
    bytes.extend(80_877_103i32.to_be_bytes());
    let mut body = 196_608i32.to_be_bytes().to_vec();
    body.extend(b"user\0postgres\0database\0postgres\0\0");
    bytes.extend(((body.len() + 4) as i32).to_be_bytes());
    bytes.extend(body);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&bytes).unwrap();
    let got = read_to_close(&mut s);
    // AuthenticationOk in the clear would mean the plaintext startup was served.
    let auth_ok = [b'R', 0, 0, 0, 8, 0, 0, 0, 0];
    assert!(
        !got.windows(auth_ok.len()).any(|w| w == auth_ok),
        "a plaintext startup injected after SSLRequest was served: {got:?}"
    );
    assert!(h.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_refuses_plain_connections_with_28000() {
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let h = Helios::start(
        &pg,
        &format!("{}require_tls = true\n", tls_toml(dir.path())),
    );
    let o = psql_via(&h, "postgres", None, "sslmode=disable", "select 1");
    assert!(!o.status.success(), "a plain connection got in");
    assert!(
        stderr(&o).contains("Helios requires SSL (tls.require_tls)"),
        "{}",
        stderr(&o)
    );
    let e = refused(&h, "postgres", None).await;
    assert_eq!(e.code().code(), "28000", "{e:?}");
    // Over TLS it works, and sslmode=prefer finds TLS.
    assert_psql_ok(
        &psql_via(&h, "postgres", None, "sslmode=require", "select 1"),
        "1",
    );
    assert_psql_ok(
        &psql_via(&h, "postgres", None, "sslmode=prefer", "select 1"),
        "1",
    );
}
