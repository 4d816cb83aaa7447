//! Memory and backpressure: Helios streams results and COPY data of hundreds
//! of megabytes, single values of hundreds of megabytes, and slow readers,
//! through bounded buffers.
//!
//! Each test starts its own Helios, so the peak resident memory of the
//! process (VmHWM) measures that test alone. The bound asserted is 64 MB for
//! the whole process (a debug build; it starts at a few MB), far below the
//! data relayed, so a relay that buffers a result, a value or a client that
//! does not read fails it.

mod common;

use std::io::{BufReader, Read};
use std::time::{Duration, Instant};

use common::raw::{self, RawConn};
use common::{Helios, PgServer};
use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_postgres::types::ToSql;

const MB: u64 = 1024 * 1024;
/// Peak resident memory allowed for the Helios process, in kB.
const PEAK_LIMIT_KB: u64 = 64 * 1024;
/// Upper bound on any single test's wait, so a hang fails instead of blocking CI.
const LIMIT: Duration = Duration::from_secs(120);

fn no_params() -> std::iter::Empty<&'static (dyn ToSql + Sync)> {
    std::iter::empty()
}

/// Assert that Helios's peak memory stayed bounded, and print the figures.
fn check_memory(what: &str, helios: &Helios, before: (u64, u64), bytes: u64, elapsed: Duration) {
    let (rss, hwm) = helios.rss_kb();
    eprintln!(
        "{what}: {:.0} MB in {:.2} s ({:.0} MB/s); Helios RSS {} kB -> {} kB, peak (VmHWM) {} kB -> {} kB",
        bytes as f64 / MB as f64,
        elapsed.as_secs_f64(),
        bytes as f64 / MB as f64 / elapsed.as_secs_f64(),
        before.0,
        rss,
        before.1,
        hwm
    );
    assert!(
        hwm < PEAK_LIMIT_KB,
        "{what}: Helios's peak RSS was {hwm} kB (it started at {} kB) for {} MB relayed; the limit is {PEAK_LIMIT_KB} kB",
        before.1,
        bytes / MB
    );
}

/// A buffered reader of backend messages that never holds a whole body:
/// headers are returned, bodies are read (or skipped) in pieces.
struct Messages<'a> {
    r: BufReader<&'a std::net::TcpStream>,
}

impl<'a> Messages<'a> {
    fn new(conn: &'a RawConn) -> Self {
        Messages {
            r: BufReader::with_capacity(256 * 1024, &conn.stream),
        }
    }

    /// The next message's tag and body length.
    fn header(&mut self) -> (u8, usize) {
        let mut h = [0u8; 5];
        self.r
            .read_exact(&mut h)
            .expect("a message header (connection closed or read timed out)");
        let len = i32::from_be_bytes([h[1], h[2], h[3], h[4]]);
        assert!(len >= 4, "bad message length {len}");
        (h[0], len as usize - 4)
    }

    fn body(&mut self, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.r.read_exact(&mut b).expect("a message body");
        b
    }

    /// Read `len` bytes, checking that each equals `byte`.
    fn expect_filled(&mut self, mut len: usize, byte: u8) {
        let pattern = vec![byte; 64 * 1024];
        let mut chunk = vec![0u8; 64 * 1024];
        while len > 0 {
            let n = len.min(chunk.len());
            self.r.read_exact(&mut chunk[..n]).expect("message data");
            assert!(chunk[..n] == pattern[..n], "corrupted data");
            len -= n;
        }
    }

    /// Read a whole message, failing on an ErrorResponse.
    fn next(&mut self) -> (u8, Vec<u8>) {
        let (tag, len) = self.header();
        let body = self.body(len);
        assert!(
            tag != b'E',
            "server error: {}",
            String::from_utf8_lossy(&body)
        );
        (tag, body)
    }
}

/// Parse a DataRow of `(int4 text, text)` in text format: (g, value length,
/// whether the value is all `fill`).
fn row_g_and_value(body: &[u8], fill: u8) -> (u32, usize, bool) {
    assert_eq!(&body[..2], &2i16.to_be_bytes(), "two columns");
    let l1 = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
    let g: u32 = std::str::from_utf8(&body[6..6 + l1])
        .unwrap()
        .parse()
        .unwrap();
    let rest = &body[6 + l1..];
    let l2 = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
    let v = &rest[4..];
    assert_eq!(v.len(), l2);
    (g, l2, *v == *vec![fill; l2])
}

#[tokio::test]
async fn a_400_mb_result_streams_through_helios_in_bounded_memory() {
    const ROWS: u32 = 400_000;
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;
    let before = helios.rss_kb();
    let start = Instant::now();
    let expected = "x".repeat(1000);
    let (rows, bytes) = timeout(LIMIT, async {
        let stream = client
            .query_raw(
                &format!("select g, repeat('x', 1000) from generate_series(1, {ROWS}) g"),
                no_params(),
            )
            .await
            .unwrap();
        futures_util::pin_mut!(stream);
        let (mut rows, mut bytes) = (0u32, 0u64);
        while let Some(row) = stream.next().await {
            let row = row.unwrap();
            let g: i32 = row.get(0);
            let v: &str = row.get(1);
            rows += 1;
            assert_eq!(g as u32, rows, "rows arrive complete and in order");
            assert!(v == expected, "row {g} intact");
            bytes += v.len() as u64 + 4;
        }
        (rows, bytes)
    })
    .await
    .expect("the 400 MB result did not arrive within the time limit");
    assert_eq!(rows, ROWS);
    check_memory(
        "400 MB result (query_raw)",
        &helios,
        before,
        bytes,
        start.elapsed(),
    );
    // The session is still usable afterwards.
    let n: i64 = client
        .query_one("select 42::int8", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 42);
}

#[tokio::test]
async fn a_300_mb_copy_to_stdout_streams_in_bounded_memory() {
    const ROWS: u64 = 300_000;
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;
    let before = helios.rss_kb();
    let start = Instant::now();
    let (chunks, bytes, lines) = timeout(LIMIT, async {
        let stream = client
            .copy_out(&format!(
                "copy (select g, repeat('y', 1000) from generate_series(1, {ROWS}) g) to stdout"
            ))
            .await
            .unwrap();
        futures_util::pin_mut!(stream);
        let (mut chunks, mut bytes, mut lines) = (0u64, 0u64, 0u64);
        let ys = "y".repeat(1000);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            chunks += 1;
            bytes += chunk.len() as u64;
            // One row per CopyData: "<g>\t<1000 y>\n", in order.
            let want = format!("{chunks}\t{ys}\n");
            if chunk[..] == *want.as_bytes() {
                lines += 1;
            } else {
                panic!(
                    "CopyData #{chunks} is not row {chunks}: {:?}...",
                    String::from_utf8_lossy(&chunk[..chunk.len().min(40)])
                );
            }
        }
        (chunks, bytes, lines)
    })
    .await
    .expect("the COPY did not finish within the time limit");
    // Each line is "<g>\t<1000 y>\n".
    let expected: u64 = (1..=ROWS).map(|g| g.to_string().len() as u64 + 1002).sum();
    assert_eq!(lines, ROWS);
    assert_eq!(chunks, ROWS, "PostgreSQL sends one CopyData per row");
    assert_eq!(bytes, expected);
    check_memory(
        "300 MB COPY TO STDOUT",
        &helios,
        before,
        bytes,
        start.elapsed(),
    );
}

/// A client that stops reading mid-result: Helios must stop reading from the
/// upstream too (PostgreSQL ends up waiting to write), not buffer the rest.
#[test]
fn a_slow_reader_holds_back_the_upstream_instead_of_growing_memory() {
    const ROWS: u32 = 200_000;
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (mut conn, _) = RawConn::connect(
        helios.port,
        &[
            ("user", "postgres"),
            ("database", "postgres"),
            ("application_name", "slow-reader"),
        ],
    );
    let before = helios.rss_kb();
    let start = Instant::now();
    conn.send(&raw::query(&format!(
        "select g, repeat('s', 1000) from generate_series(1, {ROWS}) g"
    )));
    let mut msgs = Messages::new(&conn);
    let (tag, _) = msgs.next();
    assert_eq!(tag, b'T');
    let mut rows = 0u32;
    let mut bytes = 0u64;
    let mut paused = Duration::ZERO;
    let read_rows = |msgs: &mut Messages, n: u32, rows: &mut u32, bytes: &mut u64| {
        for _ in 0..n {
            let (tag, body) = msgs.next();
            assert_eq!(tag, b'D');
            let (g, len, ok) = row_g_and_value(&body, b's');
            *rows += 1;
            assert_eq!(g, *rows, "rows arrive complete and in order");
            assert!(len == 1000 && ok, "row {g} intact");
            *bytes += body.len() as u64 + 5;
        }
    };
    for (upto, pause_ms) in [(1_000u32, 1500u64), (60_000, 1000), (150_000, 500)] {
        read_rows(&mut msgs, upto - rows, &mut rows, &mut bytes);
        std::thread::sleep(Duration::from_millis(pause_ms));
        paused += Duration::from_millis(pause_ms);
        let (rss, hwm) = helios.rss_kb();
        // The upstream backend is still running the query, blocked writing
        // to Helios: the backpressure reached PostgreSQL.
        let activity = pg.psql(
            "select state || ':' || coalesce(wait_event, '') from pg_stat_activity \
             where application_name = 'slow-reader'",
        );
        eprintln!(
            "slow reader paused after {rows} rows: Helios RSS {rss} kB, peak {hwm} kB; upstream backend {}",
            activity.trim()
        );
        assert_eq!(
            activity.trim(),
            "active:ClientWrite",
            "the upstream backend should be blocked writing while the client does not read"
        );
        assert!(
            hwm < PEAK_LIMIT_KB,
            "Helios grew to {hwm} kB while the client was not reading"
        );
    }
    read_rows(&mut msgs, ROWS - rows, &mut rows, &mut bytes);
    let (tag, body) = msgs.next();
    assert_eq!((tag, body.as_slice()), (b'C', &b"SELECT 200000\0"[..]));
    let (tag, body) = msgs.next();
    assert_eq!((tag, body.as_slice()), (b'Z', &b"I"[..]));
    assert_eq!(rows, ROWS);
    eprintln!("slow reader: paused {:.1} s in total", paused.as_secs_f64());
    check_memory(
        "200 MB result, slow reader",
        &helios,
        before,
        bytes,
        start.elapsed(),
    );
}

/// One 300 MB value in one DataRow: Helios must pass the message through in
/// pieces, never holding it whole.
#[test]
fn a_300_mb_value_is_relayed_intact_in_bounded_memory() {
    const LEN: usize = 300 * 1024 * 1024;
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (mut conn, _) = RawConn::connect(
        helios.port,
        &[("user", "postgres"), ("database", "postgres")],
    );
    conn.stream.set_read_timeout(Some(LIMIT)).unwrap();
    let before = helios.rss_kb();
    let start = Instant::now();
    conn.send(&raw::query(&format!("select repeat('x', {LEN})")));
    let mut msgs = Messages::new(&conn);
    let (tag, _) = msgs.next();
    assert_eq!(tag, b'T');
    let (tag, len) = msgs.header();
    assert_eq!(tag, b'D', "a DataRow");
    assert_eq!(len, 2 + 4 + LEN, "DataRow length");
    let head = msgs.body(6);
    assert_eq!(&head[..2], &1i16.to_be_bytes());
    assert_eq!(
        i32::from_be_bytes(head[2..6].try_into().unwrap()) as usize,
        LEN
    );
    msgs.expect_filled(LEN, b'x');
    let (tag, body) = msgs.next();
    assert_eq!((tag, body.as_slice()), (b'C', &b"SELECT 1\0"[..]));
    let (tag, _) = msgs.next();
    assert_eq!(tag, b'Z');
    check_memory(
        "one 300 MB value",
        &helios,
        before,
        LEN as u64,
        start.elapsed(),
    );
}

/// The other direction: one 200 MB Bind message from the client.
#[test]
fn a_200_mb_parameter_is_relayed_upstream_in_bounded_memory() {
    const LEN: usize = 200 * 1024 * 1024;
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (mut conn, _) = RawConn::connect(
        helios.port,
        &[("user", "postgres"), ("database", "postgres")],
    );
    conn.stream.set_read_timeout(Some(LIMIT)).unwrap();
    let before = helios.rss_kb();
    let start = Instant::now();
    let value = vec![b'p'; LEN];
    let mut batch = raw::parse(
        "",
        &format!("select octet_length($1::text), $1::text = repeat('p', {LEN})"),
        &[],
    );
    batch.extend(raw::bind("", "", &[Some(&value)], &[], &[]));
    batch.extend(raw::execute("", 0));
    batch.extend(raw::sync());
    drop(value);
    conn.send(&batch);
    drop(batch);
    let mut msgs = Messages::new(&conn);
    let tags: Vec<(u8, Vec<u8>)> = (0..5).map(|_| msgs.next()).collect();
    let shape: String = tags.iter().map(|(t, _)| *t as char).collect();
    assert_eq!(shape, "12DCZ");
    let row = &tags[2].1;
    let expected_len = LEN.to_string();
    let mut want = 2i16.to_be_bytes().to_vec();
    want.extend((expected_len.len() as i32).to_be_bytes());
    want.extend(expected_len.as_bytes());
    want.extend(1i32.to_be_bytes());
    want.push(b't');
    assert_eq!(
        row, &want,
        "PostgreSQL received the 200 MB parameter intact"
    );
    check_memory(
        "one 200 MB parameter (client to server)",
        &helios,
        before,
        LEN as u64,
        start.elapsed(),
    );
}

#[tokio::test]
async fn a_100_mb_copy_from_stdin_lands_in_bounded_memory() {
    const ROWS: u64 = 1_000_000;
    let pg = PgServer::start();
    pg.psql("create unlogged table big (id int8, v text)");
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;
    let before = helios.rss_kb();
    let start = Instant::now();
    let pad = "v".repeat(100);
    let (sent, written) = timeout(LIMIT, async {
        let sink = client
            .copy_in::<_, std::io::Cursor<Vec<u8>>>("copy big (id, v) from stdin")
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        let mut sent = 0u64;
        let mut chunk = Vec::with_capacity(128 * 1024);
        for id in 1..=ROWS {
            chunk.extend_from_slice(id.to_string().as_bytes());
            chunk.push(b'\t');
            chunk.extend_from_slice(pad.as_bytes());
            chunk.push(b'\n');
            if chunk.len() >= 120 * 1024 || id == ROWS {
                sent += chunk.len() as u64;
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(128 * 1024));
                sink.send(std::io::Cursor::new(full)).await.unwrap();
            }
        }
        let written = sink.finish().await.unwrap();
        (sent, written)
    })
    .await
    .expect("the COPY FROM STDIN did not finish within the time limit");
    let elapsed = start.elapsed();
    assert!(sent >= 100 * 1000 * 1000, "sent {sent} bytes");
    assert_eq!(written, ROWS, "COPY reports every row");
    let row = client
        .query_one(
            "select count(*), sum(id)::text, count(distinct id), min(length(v)), max(length(v)) from big",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), ROWS as i64, "rows in the table");
    assert_eq!(
        row.get::<_, String>(1),
        (ROWS * (ROWS + 1) / 2).to_string(),
        "sum of ids"
    );
    assert_eq!(row.get::<_, i64>(2), ROWS as i64, "distinct ids");
    assert_eq!(
        (row.get::<_, i32>(3), row.get::<_, i32>(4)),
        (100, 100),
        "values intact"
    );
    check_memory("100 MB COPY FROM STDIN", &helios, before, sent, elapsed);
}

/// Both directions at once: COPY data flows up while a trigger sends a
/// notice per row back down. The relay must keep both moving.
#[tokio::test]
async fn copy_in_with_a_notice_per_row_flows_both_ways() {
    const ROWS: u64 = 100_000;
    let pg = PgServer::start();
    pg.psql(
        "create table noisy (id int8, v text);
         create function noisy_notice() returns trigger language plpgsql as $$
         begin raise notice 'row % arrived with % bytes', new.id, length(new.v); return new; end $$;
         create trigger noisy_notice before insert on noisy for each row execute function noisy_notice();",
    );
    let helios = Helios::start(&pg, "");
    let (client, mut connection) =
        tokio_postgres::connect(&helios.conn_str("postgres"), common::NoTls)
            .await
            .unwrap();
    let notices = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(m) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notice(_) = m.unwrap() {
                n += 1;
            }
        }
        n
    });
    let before = helios.rss_kb();
    let start = Instant::now();
    let pad = "w".repeat(100);
    let (sent, written) = timeout(LIMIT, async {
        let sink = client
            .copy_in::<_, std::io::Cursor<Vec<u8>>>("copy noisy (id, v) from stdin")
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        let mut sent = 0u64;
        let mut chunk = Vec::new();
        for id in 1..=ROWS {
            chunk.extend_from_slice(format!("{id}\t{pad}\n").as_bytes());
            if chunk.len() >= 64 * 1024 || id == ROWS {
                sent += chunk.len() as u64;
                sink.send(std::io::Cursor::new(std::mem::take(&mut chunk)))
                    .await
                    .unwrap();
            }
        }
        (sent, sink.finish().await.unwrap())
    })
    .await
    .expect("COPY with notices did not finish within the time limit (stuck?)");
    let elapsed = start.elapsed();
    assert_eq!(written, ROWS);
    let count: i64 = client
        .query_one("select count(*) from noisy", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, ROWS as i64);
    drop(client);
    let notices = timeout(LIMIT, notices).await.unwrap().unwrap();
    assert_eq!(notices, ROWS, "one notice per row reached the client");
    check_memory(
        "COPY FROM STDIN with a notice per row (both directions)",
        &helios,
        before,
        sent,
        elapsed,
    );
}

/// Many sessions streaming big results at once: memory is bounded per
/// session, so the total stays small too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_large_results_stay_bounded() {
    const SESSIONS: u32 = 16;
    const ROWS: u32 = 25_000;
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        clients.push(helios.connect().await);
    }
    let before = helios.rss_kb();
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            tokio::spawn(async move {
                let fill = (b'a' + i as u8) as char;
                let expected = fill.to_string().repeat(1000);
                let stream = client
                    .query_raw(
                        &format!(
                            "select g, repeat('{fill}', 1000) from generate_series(1, {ROWS}) g"
                        ),
                        no_params(),
                    )
                    .await
                    .unwrap();
                futures_util::pin_mut!(stream);
                let mut rows = 0u32;
                while let Some(row) = stream.next().await {
                    let row = row.unwrap();
                    rows += 1;
                    assert_eq!(row.get::<_, i32>(0) as u32, rows);
                    assert!(
                        row.get::<_, &str>(1) == expected,
                        "session {i} got another's data"
                    );
                }
                rows
            })
        })
        .collect();
    let mut total = 0u64;
    for t in tasks {
        let rows = timeout(LIMIT, t)
            .await
            .expect("a session did not finish within the time limit")
            .unwrap();
        assert_eq!(rows, ROWS);
        total += rows as u64;
    }
    check_memory(
        "16 concurrent 25 MB results",
        &helios,
        before,
        total * 1004,
        start.elapsed(),
    );
}
