//! Gigabyte length prefixes and messages over max_message_size.

use super::*;

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
