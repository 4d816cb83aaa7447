//! Helios's own client authentication: `trust`, `md5` and `scram-sha-256` with passwords and stored secrets.

use std::time::{Duration, Instant};

use crate::common::{Helios, PgServer};
use crate::support::{
    assert_password_failed, assert_psql_ok, current_user, login, psql_via, read_to_close, refused,
    shape, stderr,
};

// ------------------------------------------------------------------- trust

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_lets_in_any_user_the_upstream_knows_and_passes_its_refusals_on() {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    let h = Helios::start(&pg, "[auth]\nmethod = \"trust\"\n");
    let a = login(&h, "alice", None).await;
    assert_eq!(current_user(&a).await, "alice");
    let p = login(&h, "postgres", Some("anything")).await;
    assert_eq!(current_user(&p).await, "postgres");

    let e = refused(&h, "ghost", None).await;
    assert_eq!(e.severity(), "FATAL", "{e:?}");
    assert_eq!(e.code().code(), "28000", "{e:?}");
    assert_eq!(e.message(), "role \"ghost\" does not exist");
}

// ------------------------------------------------- md5 and scram-sha-256

/// The configured user gets in with the right password (tokio-postgres and
/// psql), not with a wrong one; unknown users fail exactly alike.
async fn check_password_method(method: &str) {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    let h = Helios::start(
        &pg,
        &format!(
            "[auth]\nmethod = \"{method}\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-Pw 1\"\n"
        ),
    );
    let a = login(&h, "alice", Some("alice-Pw 1")).await;
    assert_eq!(current_user(&a).await, "alice");

    let wrong = refused(&h, "alice", Some("alice-pw")).await;
    assert_password_failed(&wrong, "alice");
    let empty = refused(&h, "alice", Some("")).await;
    assert_password_failed(&empty, "alice");

    // Unknown to Helios: one the upstream does not know either, and one it
    // does (and would trust): both get exactly what a wrong password gets.
    for user in ["ghost", "postgres"] {
        let e = refused(&h, user, Some("alice-Pw 1")).await;
        assert_password_failed(&e, user);
        assert_eq!(
            shape(&e, user),
            shape(&wrong, "alice"),
            "{method}: an unknown user can be told from a wrong password"
        );
    }

    // psql, with PGPASSWORD.
    assert_psql_ok(
        &psql_via(&h, "alice", Some("alice-Pw 1"), "", "select current_user"),
        "alice",
    );
    let o = psql_via(&h, "alice", Some("nope"), "", "select current_user");
    assert!(!o.status.success(), "psql got in with a wrong password");
    assert!(
        stderr(&o).contains("password authentication failed for user \"alice\""),
        "{}",
        stderr(&o)
    );
    let o = psql_via(&h, "alice", None, "", "select current_user");
    assert!(!o.status.success(), "psql got in without a password");
    let log = h.log();
    for pw in ["alice-Pw 1", "alice-pw", "nope"] {
        assert!(!log.contains(pw), "the log shows a password ({pw}):\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_checks_the_configured_password() {
    check_password_method("md5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_checks_the_configured_password() {
    check_password_method("scram-sha-256").await;
}

/// `rolpassword` of a role made with `password_encryption = encryption`.
fn stored_secret(pg: &PgServer, role: &str, password: &str, encryption: &str) -> String {
    pg.psql(&format!(
        "set password_encryption = '{encryption}'; create role {role} login password '{password}'"
    ));
    pg.psql(&format!(
        "select rolpassword from pg_authid where rolname = '{role}'"
    ))
    .trim()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_checks_a_stored_scram_secret() {
    let pg = PgServer::start();
    let secret = stored_secret(&pg, "carol", "carol-pw", "scram-sha-256");
    assert!(secret.starts_with("SCRAM-SHA-256$4096:"), "{secret}");
    let h = Helios::start(
        &pg,
        &format!(
            "[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"carol\"\nsecret = \"{secret}\"\n"
        ),
    );
    let c = login(&h, "carol", Some("carol-pw")).await;
    assert_eq!(current_user(&c).await, "carol");
    assert_password_failed(&refused(&h, "carol", Some("carol-PW")).await, "carol");
    assert_psql_ok(
        &psql_via(&h, "carol", Some("carol-pw"), "", "select current_user"),
        "carol",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_checks_a_stored_md5_secret_and_a_stored_scram_secret() {
    let pg = PgServer::start();
    let md5 = stored_secret(&pg, "dave", "dave-pw", "md5");
    assert!(md5.starts_with("md5") && md5.len() == 35, "{md5}");
    let scram = stored_secret(&pg, "erin", "erin-pw", "scram-sha-256");
    let h = Helios::start(
        &pg,
        &format!(
            "[auth]\nmethod = \"md5\"\n\
             [[auth.users]]\nname = \"dave\"\nsecret = \"{md5}\"\n\
             [[auth.users]]\nname = \"erin\"\nsecret = \"{scram}\"\n"
        ),
    );
    let d = login(&h, "dave", Some("dave-pw")).await;
    assert_eq!(current_user(&d).await, "dave");
    assert_password_failed(&refused(&h, "dave", Some("erin-pw")).await, "dave");
    assert_psql_ok(
        &psql_via(&h, "dave", Some("dave-pw"), "", "select current_user"),
        "dave",
    );
    // A user with only a SCRAM secret is asked for SCRAM, as PostgreSQL does.
    let e = login(&h, "erin", Some("erin-pw")).await;
    assert_eq!(current_user(&e).await, "erin");
    assert_password_failed(&refused(&h, "erin", Some("dave-pw")).await, "erin");
    assert_psql_ok(
        &psql_via(&h, "erin", Some("erin-pw"), "", "select current_user"),
        "erin",
    );
}

/// The first authentication request of a startup for `user`, and for SCRAM
/// the server-first-message's salt and iteration count.
fn auth_questions(port: u16, user: &str) -> (Vec<u8>, Option<(String, String)>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut body = 196_608i32.to_be_bytes().to_vec();
    body.extend(format!("user\0{user}\0database\0postgres\0\0").as_bytes());
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend(body);
    s.write_all(&packet).unwrap();
    let read_msg = |s: &mut std::net::TcpStream| {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).unwrap();
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut b = vec![0u8; len - 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(
            head[0], b'R',
            "expected an authentication request for {user}"
        );
        b
    };
    let first = read_msg(&mut s);
    if first[..4] != 10i32.to_be_bytes() {
        return (first, None);
    }
    // SASLInitialResponse for SCRAM-SHA-256 with a fixed client nonce.
    let client_first = b"n,,n=,r=rOprNGfwEbeRWgbNEkqO";
    let mut p = b"SCRAM-SHA-256\0".to_vec();
    p.extend((client_first.len() as i32).to_be_bytes());
    p.extend(client_first);
    let mut m = vec![b'p'];
    m.extend(((p.len() + 4) as i32).to_be_bytes());
    m.extend(p);
    s.write_all(&m).unwrap();
    let cont = read_msg(&mut s);
    assert_eq!(cont[..4], 11i32.to_be_bytes(), "SASLContinue for {user}");
    let text = String::from_utf8_lossy(&cont[4..]).into_owned();
    let field = |k: &str| {
        text.split(',')
            .find_map(|f| f.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            .to_string()
    };
    (first, Some((field("s="), field("i="))))
}

#[test]
fn unknown_users_are_asked_the_same_questions_as_known_ones() {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    // SCRAM: same mechanisms, a salt of the same length that does not change
    // between attempts, the same iteration count.
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n",
    );
    let (alice_first, alice_scram) = auth_questions(h.port, "alice");
    let (ghost_first, ghost_scram) = auth_questions(h.port, "ghost");
    assert_eq!(ghost_first, alice_first, "different SASL mechanisms");
    let (alice_salt, alice_iter) = alice_scram.unwrap();
    let (ghost_salt, ghost_iter) = ghost_scram.unwrap();
    assert_eq!(ghost_iter, alice_iter, "different iteration counts");
    assert_eq!(
        ghost_salt.len(),
        alice_salt.len(),
        "salts of different lengths"
    );
    assert_eq!(auth_questions(h.port, "alice").1.unwrap().0, alice_salt);
    assert_eq!(
        auth_questions(h.port, "ghost").1.unwrap().0,
        ghost_salt,
        "an unknown user's salt changes between attempts (a real one's does not)"
    );
    assert_ne!(
        auth_questions(h.port, "ghost2").1.unwrap().0,
        ghost_salt,
        "every unknown user gets the same salt"
    );
    drop(h);

    // md5: an md5 challenge with a 4-byte salt for both.
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"md5\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n",
    );
    for user in ["alice", "ghost"] {
        let (first, _) = auth_questions(h.port, user);
        assert_eq!(first.len(), 8, "{user}: {first:?}");
        assert_eq!(
            first[..4],
            5i32.to_be_bytes(),
            "{user}: not an md5 challenge"
        );
    }
}

fn md5_helios_with_startup_timeout_1s(pg: &PgServer) -> Helios {
    Helios::start(
        pg,
        "[server]\nstartup_timeout = \"1s\"\n[auth]\nmethod = \"md5\"\n[[auth.users]]\nname = \"postgres\"\npassword = \"pw\"\n",
    )
}

fn startup_packet_for_postgres() -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    body.extend(b"user\0postgres\0database\0postgres\0\0");
    let mut v = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    v.extend(body);
    v
}

#[test]
fn a_client_silent_at_the_password_prompt_is_dropped_after_startup_timeout() {
    use std::io::Write;
    let pg = PgServer::start();
    let mut h = md5_helios_with_startup_timeout_1s(&pg);
    let startup = startup_packet_for_postgres();
    // Asked for a password, the client never answers.
    let t0 = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&startup).unwrap();
    let bytes = read_to_close(&mut s);
    let waited = t0.elapsed();
    assert_eq!(bytes.first(), Some(&b'R'), "asked for a password first");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "a client silent at the password prompt was dropped after {waited:?} (startup_timeout = 1s)"
    );
    // After the password request, at most a FATAL 08P01 (PostgreSQL just
    // hangs up); certainly no AuthenticationOk.
    let len = i32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
    let rest = &bytes[1 + len..];
    if !rest.is_empty() {
        let text = String::from_utf8_lossy(rest);
        assert!(
            rest[0] == b'E' && text.contains("FATAL") && text.contains("08P01"),
            "after the password request: {text:?}"
        );
    }
    assert!(h.is_alive());
}

#[test]
fn startup_timeout_bounds_negotiation_and_authentication_together() {
    use std::io::Write;
    let pg = PgServer::start();
    let mut h = md5_helios_with_startup_timeout_1s(&pg);
    let startup = startup_packet_for_postgres();
    // Slow to send the startup packet, then silent at the password prompt:
    // the whole startup still gets one startup_timeout, not one per step.
    let t0 = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    s.write_all(&startup).unwrap();
    read_to_close(&mut s);
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "the client had {waited:?} to finish startup and authentication (startup_timeout = 1s)"
    );
    assert!(h.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_past_the_limit_lock_the_address_out_whoever_it_names() {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-Pw 1\"\n[limits]\nauth_failures_per_minute = 3\n",
    );
    // Under the limit a good password still gets in.
    refused(&h, "alice", Some("guess-1")).await;
    let a = login(&h, "alice", Some("alice-Pw 1")).await;
    assert_eq!(current_user(&a).await, "alice");
    for guess in ["guess-2", "guess-3"] {
        let e = refused(&h, "alice", Some(guess)).await;
        assert_password_failed(&e, "alice");
    }
    // Three failures: the address is locked out, before any password
    // exchange, the same way for a known user with the right password, a
    // known user with a wrong one, and an unknown user.
    let mut refusals = Vec::new();
    for (user, pw) in [
        ("alice", "alice-Pw 1"),
        ("alice", "guess-4"),
        ("ghost", "guess-5"),
    ] {
        let e = refused(&h, user, Some(pw)).await;
        assert_eq!(e.code().code(), "53400", "{user}: {e:?}");
        assert_eq!(e.severity(), "FATAL");
        assert!(
            e.message().contains("too many failed login attempts")
                && e.message().contains("auth_failures_per_minute"),
            "{}",
            e.message()
        );
        refusals.push(e.message().split("retry in").next().unwrap().to_string());
    }
    assert!(
        refusals.windows(2).all(|w| w[0] == w[1]),
        "the refusal differs by user: {refusals:?}"
    );
    // The session already in is not affected.
    assert_eq!(current_user(&a).await, "alice");
    // A Unix-socket client has no address to lock out... and a client from
    // elsewhere is not locked out by this address's failures (unit-tested
    // in helios::limits; the tests have one address only).
}
