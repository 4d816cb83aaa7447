//! TLS confusion: SSLRequest followed by plaintext, a bare ClientHello.

use super::*;

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
