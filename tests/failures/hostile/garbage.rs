//! Garbage instead of a startup packet.

use super::*;

// ----------------------------------------------- garbage instead of startup

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
