//! Password guessing by timing.

use super::*;

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
