//! The upstream stopped in the middle of a large result.

use super::*;

/// How a stream of backend messages ended.
#[derive(Debug, PartialEq)]
enum End {
    Closed,
    /// Closed in the middle of a message.
    ClosedMidMessage,
}

/// Read until `buf` is full or the stream ends: bytes read.
fn read_fully(s: &mut std::net::TcpStream, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break
            }
            Err(e) => panic!("the connection was not closed ({e})"),
        }
    }
    n
}

/// Messages until the server closes: DataRows counted, the rest kept.
fn drain(c: &mut RawConn) -> (u64, Vec<Msg>, End) {
    let (mut rows, mut kept) = (0, Vec::new());
    loop {
        let mut header = [0u8; 5];
        match read_fully(&mut c.stream, &mut header) {
            0 => return (rows, kept, End::Closed),
            5 => {}
            _ => return (rows, kept, End::ClosedMidMessage),
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        if read_fully(&mut c.stream, &mut body) < body.len() {
            return (rows, kept, End::ClosedMidMessage);
        }
        if header[0] == b'D' {
            rows += 1;
        } else {
            kept.push(Msg {
                tag: header[0],
                body,
            });
        }
    }
}

/// PostgreSQL is stopped (immediate) while a client reads a large result
/// through Helios: the client hears promptly, the cut result never looks
/// complete, and Helios serves again once PostgreSQL is back. Where the
/// stream broke between messages, the last one is a FATAL error (08006 from
/// Helios, or the upstream's own 57P01/57P02). A backend killed this way
/// usually dies in the middle of sending a row (PostgreSQL drops its own
/// "terminating connection" warning while a send is under way), and clients
/// connected directly see the same cut; no message can follow half a row.
#[test]
fn upstream_stopped_mid_result_ends_it_with_an_error_and_helios_serves_after() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    let mut a = raw_login(h.port);
    a.send(&raw::query(BIG));
    read_rows(&mut a, 100);
    let reader = std::thread::spawn(move || drain(&mut a));
    wait_for_direct(&pg, BIG_RUNNING, "1", 10);
    let t = Instant::now();
    pg.kill();
    let (rows, msgs, end) = reader.join().unwrap();
    let took = t.elapsed();
    eprintln!(
        "upstream stopped mid-result: {rows} more rows, then {msgs:?} ({end:?}) after {} ms",
        took.as_millis()
    );
    assert!(
        took < Duration::from_secs(8),
        "the client heard only after {took:?}"
    );
    assert!(
        msgs.iter().all(|m| m.tag != b'C' && m.tag != b'Z'),
        "the cut result looks complete: {msgs:?}"
    );
    if end == End::Closed {
        let last = (msgs.last()).unwrap_or_else(|| panic!("closed between rows without an error"));
        assert_eq!(last.tag, b'E', "{msgs:?}");
        assert_eq!(last.field(b'S').as_deref(), Some("FATAL"), "{msgs:?}");
        assert!(
            matches!(
                last.sqlstate().as_deref(),
                Some("08006" | "57P01" | "57P02")
            ),
            "{msgs:?}"
        );
    }
    assert!(
        h.is_alive(),
        "Helios exited when its upstream died mid-result"
    );

    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !psql(pg.port, "postgres", &["-c", "select 1"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "PostgreSQL did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut b = raw_login(h.port);
    b.send(&raw::query("select 42"));
    let msgs = b.until_ready();
    assert!(
        msgs.iter()
            .any(|m| m.tag == b'D' && m.body.ends_with(b"42")),
        "{msgs:?}"
    );
    assert!(h.is_alive());
}
