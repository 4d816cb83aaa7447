//! The PostgreSQL protocol through Helios: a real driver (tokio-postgres) and
//! the raw protocol client, compared where it matters with a direct
//! connection to the same upstream.

mod common;

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::raw::{self, Msg, RawConn};
use common::{sqlstate, Helios, NoTls, PgServer};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

/// Upper bound for anything a test waits on.
const LIMIT: Duration = Duration::from_secs(20);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {LIMIT:?}: {what}"))
}

// ---------------------------------------------------------------------------
// Raw protocol helpers
// ---------------------------------------------------------------------------

const LOGIN: &[(&str, &str)] = &[("user", "postgres"), ("database", "postgres")];

/// Log in with the raw client; panics unless the login ends in ReadyForQuery.
fn login(port: u16, params: &[(&str, &str)]) -> (RawConn, Vec<Msg>) {
    let (c, msgs) = RawConn::connect(port, params);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    assert_eq!(
        msgs.last().map(|m| m.tag),
        Some(b'Z'),
        "login did not end in ReadyForQuery: {msgs:?}"
    );
    (c, msgs)
}

/// Read messages up to and including the first one tagged `tag`; panics if
/// the stream ends or stalls first.
fn until_tag(c: &mut RawConn, tag: u8) -> Vec<Msg> {
    let mut out = Vec::new();
    loop {
        let m = c.read_msg().unwrap_or_else(|| {
            panic!(
                "connection ended or stalled waiting for {:?}; got so far: {out:?}",
                tag as char
            )
        });
        let done = m.tag == tag;
        out.push(m);
        if done {
            return out;
        }
    }
}

/// Send `bytes` and read up to ReadyForQuery.
fn roundtrip(c: &mut RawConn, bytes: &[u8]) -> Vec<Msg> {
    c.send(bytes);
    until_tag(c, b'Z')
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn tags(msgs: &[Msg]) -> String {
    msgs.iter().map(|m| m.tag as char).collect()
}

/// The transaction status byte of the last message (a ReadyForQuery).
fn status(msgs: &[Msg]) -> char {
    let z = msgs.last().expect("no messages");
    assert_eq!(z.tag, b'Z', "last message is not ReadyForQuery: {msgs:?}");
    z.body[0] as char
}

fn data_row(m: &Msg) -> Vec<Option<Vec<u8>>> {
    assert_eq!(m.tag, b'D', "expected a DataRow, got {m:?}");
    let b = &m.body;
    let n = i16::from_be_bytes([b[0], b[1]]) as usize;
    let mut i = 2;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = i32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        i += 4;
        if len < 0 {
            out.push(None);
        } else {
            out.push(Some(b[i..i + len as usize].to_vec()));
            i += len as usize;
        }
    }
    assert_eq!(i, b.len(), "trailing bytes in DataRow {m:?}");
    out
}

/// Every DataRow in `msgs`, as text.
fn text_rows(msgs: &[Msg]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter(|m| m.tag == b'D')
        .map(|m| {
            data_row(m)
                .into_iter()
                .map(|v| v.map(|b| String::from_utf8(b).unwrap()))
                .collect()
        })
        .collect()
}

/// The single text value a one-row, one-column query returns, over a raw connection.
fn raw_value(c: &mut RawConn, sql: &str) -> String {
    let msgs = roundtrip(c, &raw::query(sql));
    let rows = text_rows(&msgs);
    assert_eq!(rows.len(), 1, "{sql}: {msgs:?}");
    rows[0][0].clone().unwrap_or_else(|| panic!("{sql}: NULL"))
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// The text of a message whose body is one C string (CommandComplete).
fn cstring(m: &Msg) -> String {
    let end = m.body.iter().position(|&b| b == 0).unwrap_or(m.body.len());
    String::from_utf8_lossy(&m.body[..end]).into_owned()
}

fn find(msgs: &[Msg], tag: u8) -> &Msg {
    msgs.iter()
        .find(|m| m.tag == tag)
        .unwrap_or_else(|| panic!("no {:?} message in {msgs:?}", tag as char))
}

/// The (pid, secret) of the BackendKeyData in a login's messages.
fn backend_key(msgs: &[Msg]) -> (i32, i32) {
    let k = find(msgs, b'K');
    (
        i32::from_be_bytes(k.body[0..4].try_into().unwrap()),
        i32::from_be_bytes(k.body[4..8].try_into().unwrap()),
    )
}

/// The ParameterStatus (name, value) pairs in `msgs`.
fn parameter_statuses(msgs: &[Msg]) -> Vec<(String, String)> {
    msgs.iter()
        .filter(|m| m.tag == b'S')
        .map(|m| {
            let mut parts = m.body.split(|&b| b == 0);
            let k = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
            let v = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
            (k, v)
        })
        .collect()
}

/// Run the same conversation on a direct connection and through Helios,
/// assert both saw exactly the same messages, and return them.
fn on_both(pg: &PgServer, helios: &Helios, f: impl Fn(&mut RawConn) -> Vec<Msg>) -> Vec<Msg> {
    let (mut direct, _) = login(pg.port, LOGIN);
    let (mut via, _) = login(helios.port, LOGIN);
    let expected = f(&mut direct);
    let got = f(&mut via);
    assert_eq!(
        got, expected,
        "messages through Helios (left) differ from a direct connection's (right)"
    );
    got
}

/// A StartupMessage asking for protocol 3.`minor`.
fn startup_minor(minor: u16, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = ((3i32 << 16) | minor as i32).to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn cancel_request(pid: i32, secret: i32) -> Vec<u8> {
    let mut v = 16i32.to_be_bytes().to_vec();
    v.extend_from_slice(&80_877_102i32.to_be_bytes());
    v.extend_from_slice(&pid.to_be_bytes());
    v.extend_from_slice(&secret.to_be_bytes());
    v
}

/// Send a CancelRequest and wait until the server has dealt with it (it
/// closes the connection when done).
fn send_cancel(port: u16, pid: i32, secret: i32) {
    let mut c = RawConn::open(port);
    c.send(&cancel_request(pid, secret));
    let rest = c.until_closed();
    assert!(
        rest.is_empty(),
        "a CancelRequest gets no answer, got {rest:?}"
    );
}

// ---------------------------------------------------------------------------
// tokio-postgres helpers
// ---------------------------------------------------------------------------

/// Connect, keeping the asynchronous messages (notices, notifications).
async fn connect_with_messages(conn_str: &str) -> (Client, mpsc::UnboundedReceiver<AsyncMessage>) {
    let (client, mut conn) = within("connect", tokio_postgres::connect(conn_str, NoTls))
        .await
        .unwrap_or_else(|e| panic!("connect {conn_str}: {e}"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(m)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            let _ = tx.send(m);
        }
    });
    (client, rx)
}

async fn next_message(rx: &mut mpsc::UnboundedReceiver<AsyncMessage>) -> AsyncMessage {
    within("an asynchronous message", rx.recv())
        .await
        .expect("connection ended before the message arrived")
}

/// The rows of a simple query, as text, one `Vec` per row.
async fn simple_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    within(sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// One text value from a one-row, one-column simple query.
async fn one(client: &Client, sql: &str) -> String {
    let rows = simple_rows(client, sql).await;
    assert_eq!(rows.len(), 1, "{sql}: expected one row, got {rows:?}");
    rows[0][0].clone().unwrap_or_else(|| panic!("{sql}: NULL"))
}

async fn backend_pid(client: &Client) -> i32 {
    one(client, "select pg_backend_pid()")
        .await
        .parse()
        .unwrap()
}

/// Wait (polling the server's own view) until a query with exactly this
/// text is running.
async fn wait_active(direct: &Client, query: &str) {
    within(&format!("\"{query}\" to be running"), async {
        loop {
            let n: i64 = direct
                .query_one(
                    "select count(*) from pg_stat_activity where state = 'active' and query = $1",
                    &[&query],
                )
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// Simple query
// ---------------------------------------------------------------------------

#[tokio::test]
async fn simple_query_runs_every_statement_of_a_multi_statement_string() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;
    let msgs = within(
        "multi-statement query",
        client.simple_query(
            "create temp table t (a int, b text); \
             insert into t values (1, 'x'), (2, null), (3, 'z'); \
             select a, b from t order by a; \
             select count(*) from t where b is not null",
        ),
    )
    .await
    .unwrap();
    let got: Vec<String> = msgs
        .iter()
        .map(|m| match m {
            SimpleQueryMessage::Row(r) => format!(
                "row {:?}",
                (0..r.len()).map(|i| r.get(i)).collect::<Vec<_>>()
            ),
            SimpleQueryMessage::CommandComplete(n) => format!("complete {n}"),
            SimpleQueryMessage::RowDescription(cols) => format!(
                "columns {:?}",
                cols.iter().map(|c| c.name()).collect::<Vec<_>>()
            ),
            _ => "other".to_string(),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "complete 0",
            "complete 3",
            "columns [\"a\", \"b\"]",
            "row [Some(\"1\"), Some(\"x\")]",
            "row [Some(\"2\"), None]",
            "row [Some(\"3\"), Some(\"z\")]",
            "complete 3",
            "columns [\"count\"]",
            "row [Some(\"2\")]",
            "complete 1",
        ]
    );
}

#[test]
fn simple_query_messages_and_empty_query_match_a_direct_connection() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        let mut all = roundtrip(c, &raw::query("select 1 as a; select 'x' as b, null as c"));
        all.extend(roundtrip(c, &raw::query("")));
        all.extend(roundtrip(c, &raw::query("  ;  ")));
        // An error stops the rest of the string.
        all.extend(roundtrip(
            c,
            &raw::query("select 'before'; select 1/0; select 'never'"),
        ));
        all
    });
    assert_eq!(tags(&msgs), "TDCTDCZIZIZTDCEZ");
    assert_eq!(
        text_rows(&msgs),
        vec![vec![s("1")], vec![s("x"), None], vec![s("before")]]
    );
    assert_eq!(cstring(&msgs[2]), "SELECT 1");
    assert_eq!(msgs[14].sqlstate().as_deref(), Some("22012"));
    assert_eq!(status(&msgs), 'I');
    // EmptyQueryResponse has an empty body.
    assert!(msgs[7].body.is_empty() && msgs[9].body.is_empty());
}

// ---------------------------------------------------------------------------
// Extended query
// ---------------------------------------------------------------------------

#[test]
fn extended_query_named_and_unnamed_statements_and_portals() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        // A named statement with a declared int4 parameter.
        let mut all = roundtrip(
            c,
            &cat(&[
                raw::parse(
                    "s_named",
                    "select x, x * $1 from generate_series(1, 3) x",
                    &[23],
                ),
                raw::sync(),
            ]),
        );
        // Unnamed portal of the named statement.
        all.extend(roundtrip(
            c,
            &cat(&[
                raw::bind("", "s_named", &[Some(b"10")], &[], &[]),
                raw::execute("", 0),
                raw::sync(),
            ]),
        ));
        // Named portal of the unnamed statement.
        all.extend(roundtrip(
            c,
            &cat(&[
                raw::parse("", "select $1::text || '!'", &[]),
                raw::bind("p_named", "", &[Some(b"hi")], &[], &[]),
                raw::execute("p_named", 0),
                raw::sync(),
            ]),
        ));
        // The unnamed statement is replaced; the named one is still there.
        all.extend(roundtrip(
            c,
            &cat(&[
                raw::parse("", "select 42", &[]),
                raw::bind("", "", &[], &[], &[]),
                raw::execute("", 0),
                raw::bind("", "s_named", &[Some(b"-2")], &[], &[]),
                raw::execute("", 0),
                raw::sync(),
            ]),
        ));
        all
    });
    assert_eq!(
        tags(&msgs),
        ["1Z", "2DDDCZ", "12DCZ", "12DC2DDDCZ"].concat()
    );
    assert_eq!(
        text_rows(&msgs),
        vec![
            vec![s("1"), s("10")],
            vec![s("2"), s("20")],
            vec![s("3"), s("30")],
            vec![s("hi!")],
            vec![s("42")],
            vec![s("1"), s("-2")],
            vec![s("2"), s("-4")],
            vec![s("3"), s("-6")],
        ]
    );
}

#[test]
fn execute_with_max_rows_suspends_the_portal_and_flush_delivers_without_sync() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        let mut all = Vec::new();
        // No Sync: only Flush makes the server send; Helios must pass the
        // messages on without waiting for a ReadyForQuery.
        c.send(&cat(&[
            raw::parse("", "select generate_series(1, 5)", &[]),
            raw::bind("c", "", &[], &[], &[]),
            raw::execute("c", 2),
            raw::flush(),
        ]));
        all.extend(until_tag(c, b's'));
        c.send(&cat(&[raw::execute("c", 2), raw::flush()]));
        all.extend(until_tag(c, b's'));
        all.extend(roundtrip(c, &cat(&[raw::execute("c", 0), raw::sync()])));
        all
    });
    assert_eq!(tags(&msgs), "12DDsDDsDCZ");
    assert_eq!(
        text_rows(&msgs),
        vec![
            vec![s("1")],
            vec![s("2")],
            vec![s("3")],
            vec![s("4")],
            vec![s("5")]
        ]
    );
    assert!(msgs[4].body.is_empty(), "PortalSuspended has no body");
    assert_eq!(cstring(&msgs[9]), "SELECT 1");
    assert_eq!(status(&msgs), 'I');
}

#[test]
fn portal_suspended_inside_a_transaction_survives_sync() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        let mut all = roundtrip(c, &raw::query("begin"));
        all.extend(roundtrip(
            c,
            &cat(&[
                raw::parse("", "select generate_series(1, 5)", &[]),
                raw::bind("cur", "", &[], &[], &[]),
                raw::execute("cur", 2),
                raw::sync(),
            ]),
        ));
        all.extend(roundtrip(c, &cat(&[raw::execute("cur", 0), raw::sync()])));
        all.extend(roundtrip(c, &raw::query("commit")));
        all
    });
    assert_eq!(tags(&msgs), "CZ12DDsZDDDCZCZ");
    let statuses: Vec<char> = msgs
        .iter()
        .filter(|m| m.tag == b'Z')
        .map(|m| m.body[0] as char)
        .collect();
    assert_eq!(statuses, vec!['T', 'T', 'T', 'I']);
    assert_eq!(
        text_rows(&msgs),
        vec![
            vec![s("1")],
            vec![s("2")],
            vec![s("3")],
            vec![s("4")],
            vec![s("5")]
        ]
    );
    assert_eq!(cstring(&msgs[11]), "SELECT 3");
}

#[test]
fn describe_statement_and_portal_then_close() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        let mut all = roundtrip(
            c,
            &cat(&[
                raw::parse("s1", "select $1::int4 + 1 as n, 'ab'::text as t", &[]),
                raw::describe(b'S', "s1"),
                raw::sync(),
            ]),
        );
        all.extend(roundtrip(
            c,
            &cat(&[
                raw::bind("p1", "s1", &[Some(b"41")], &[], &[1]),
                raw::describe(b'P', "p1"),
                raw::execute("p1", 0),
                raw::close(b'P', "p1"),
                raw::close(b'S', "s1"),
                raw::sync(),
            ]),
        ));
        // Closed: binding it again is an error.
        all.extend(roundtrip(
            c,
            &cat(&[raw::bind("", "s1", &[Some(b"1")], &[], &[]), raw::sync()]),
        ));
        // A statement returning no rows describes as NoData.
        all.extend(roundtrip(
            c,
            &cat(&[
                raw::parse("s2", "create temp table dx (a int)", &[]),
                raw::describe(b'S', "s2"),
                raw::sync(),
            ]),
        ));
        all
    });
    assert_eq!(tags(&msgs), "1tTZ2TDC33ZEZ1tnZ");
    // ParameterDescription: one parameter, int4.
    assert_eq!(msgs[1].body, [0, 1, 0, 0, 0, 23]);
    // Statement RowDescription: columns n and t, text format (0) until bound.
    let row_desc_names = |m: &Msg| -> Vec<String> {
        let n = i16::from_be_bytes([m.body[0], m.body[1]]) as usize;
        let mut i = 2;
        let mut names = Vec::new();
        for _ in 0..n {
            let end = i + m.body[i..].iter().position(|&b| b == 0).unwrap();
            names.push(String::from_utf8_lossy(&m.body[i..end]).into_owned());
            let fmt = i16::from_be_bytes([m.body[end + 17], m.body[end + 18]]);
            names.push(format!("format {fmt}"));
            i = end + 19;
        }
        names
    };
    assert_eq!(row_desc_names(&msgs[2]), ["n", "format 0", "t", "format 0"]);
    // The portal was bound with binary results.
    assert_eq!(row_desc_names(&msgs[5]), ["n", "format 1", "t", "format 1"]);
    assert_eq!(
        data_row(&msgs[6]),
        vec![Some(42i32.to_be_bytes().to_vec()), Some(b"ab".to_vec())]
    );
    let err = &msgs[11];
    assert_eq!(err.sqlstate().as_deref(), Some("26000"));
    assert_eq!(
        err.field(b'M').as_deref(),
        Some("prepared statement \"s1\" does not exist")
    );
}

#[test]
fn binary_parameters_and_binary_results_are_exact() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        roundtrip(
            c,
            &cat(&[
                raw::parse(
                    "",
                    "select $1::int8 * 2, $2::bytea, $3::float8 / 2, $4::int4, $1::text",
                    &[20, 17, 701, 23],
                ),
                raw::bind(
                    "",
                    "",
                    &[
                        Some(&(-4_611_686_018_427_387_904i64).to_be_bytes()),
                        Some(b"\x00\x01\xff\n"),
                        Some(&3.0f64.to_be_bytes()),
                        None,
                    ],
                    &[1],
                    &[1, 1, 1, 1, 0],
                ),
                raw::execute("", 0),
                raw::sync(),
            ]),
        )
    });
    assert_eq!(tags(&msgs), "12DCZ");
    assert_eq!(
        data_row(&msgs[2]),
        vec![
            Some(i64::MIN.to_be_bytes().to_vec()),
            Some(b"\x00\x01\xff\n".to_vec()),
            Some(1.5f64.to_be_bytes().to_vec()),
            None,
            Some(b"-4611686018427387904".to_vec()),
        ]
    );
}

#[tokio::test]
async fn tokio_postgres_binary_values_come_back_exactly() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;

    // Values made by the server, read in binary.
    let row = within(
        "typed select",
        client.query_one(
            "select 9223372036854775807::int8, -1.5e300::float8, '\\xdeadbeef00'::bytea, \
             'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid::text, null::int4, \
             array[1, null, 3]::int4[], '2024-02-29 12:34:56.789012+00'::timestamptz, \
             '2024-02-29 12:34:56.789012'::timestamp, true, 'héllo ☃'::text, \
             'Infinity'::float8, array['a', 'b c', '']::text[], 32767::int2, \
             1.25::float4, 'x'::\"char\"",
            &[],
        ),
    )
    .await
    .unwrap();
    let ts = UNIX_EPOCH + Duration::from_secs(1_709_210_096) + Duration::from_micros(789_012);
    assert_eq!(row.get::<_, i64>(0), i64::MAX);
    assert_eq!(row.get::<_, f64>(1), -1.5e300);
    assert_eq!(row.get::<_, Vec<u8>>(2), vec![0xde, 0xad, 0xbe, 0xef, 0x00]);
    assert_eq!(
        row.get::<_, String>(3),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    );
    assert_eq!(row.get::<_, Option<i32>>(4), None);
    assert_eq!(
        row.get::<_, Vec<Option<i32>>>(5),
        vec![Some(1), None, Some(3)]
    );
    assert_eq!(row.get::<_, SystemTime>(6), ts);
    assert_eq!(row.get::<_, SystemTime>(7), ts);
    assert!(row.get::<_, bool>(8));
    assert_eq!(row.get::<_, String>(9), "héllo ☃");
    assert_eq!(row.get::<_, f64>(10), f64::INFINITY);
    assert_eq!(row.get::<_, Vec<String>>(11), vec!["a", "b c", ""]);
    assert_eq!(row.get::<_, i16>(12), 32767);
    assert_eq!(row.get::<_, f32>(13), 1.25);
    assert_eq!(row.get::<_, i8>(14), b'x' as i8);

    // Values sent as binary parameters: the server must read them right (the
    // text casts) and send them back unchanged.
    let bytes: Vec<u8> = vec![0, 255, 10, 0];
    let when = UNIX_EPOCH + Duration::from_secs(86_400 * 365) + Duration::from_micros(1);
    let arr: Vec<Option<i32>> = vec![Some(-1), None, Some(i32::MAX)];
    let row = within(
        "binary parameters",
        client.query_one(
            "select $1::int8, $1::int8::text, $2::float8, $2::float8::text, $3::bytea, \
             length($3::bytea), $4::text, $5::int4, $5::int4 is null, $6::int4[], \
             $6::int4[]::text, $7::timestamptz, $7::timestamptz at time zone 'UTC', $8::bool",
            &[
                &i64::MIN,
                &0.1f64,
                &bytes,
                &"tab\there\nnewline \u{1F600}",
                &None::<i32>,
                &arr,
                &when,
                &false,
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, i64>(0), i64::MIN);
    assert_eq!(row.get::<_, String>(1), "-9223372036854775808");
    assert_eq!(row.get::<_, f64>(2), 0.1);
    assert_eq!(row.get::<_, String>(3), "0.1");
    assert_eq!(row.get::<_, Vec<u8>>(4), bytes);
    assert_eq!(row.get::<_, i32>(5), 4);
    assert_eq!(row.get::<_, String>(6), "tab\there\nnewline \u{1F600}");
    assert_eq!(row.get::<_, Option<i32>>(7), None);
    assert!(row.get::<_, bool>(8));
    assert_eq!(row.get::<_, Vec<Option<i32>>>(9), arr);
    assert_eq!(row.get::<_, String>(10), "{-1,NULL,2147483647}");
    assert_eq!(row.get::<_, SystemTime>(11), when);
    assert_eq!(row.get::<_, SystemTime>(12), when);
    assert!(!row.get::<_, bool>(13));
}

#[tokio::test]
async fn tokio_postgres_prepared_statements_and_pipelined_queries() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;
    let stmt = within(
        "prepare",
        client.prepare("select $1::int4 * 3, repeat('x', $1::int4)"),
    )
    .await
    .unwrap();
    for n in [0i32, 1, 7] {
        let row = within("execute prepared", client.query_one(&stmt, &[&n]))
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), n * 3);
        assert_eq!(row.get::<_, String>(1), "x".repeat(n as usize));
    }
    // tokio-postgres pipelines concurrent queries on one connection.
    let queries = (0..50i32).map(|i| {
        let client = &client;
        let stmt = &stmt;
        async move {
            let row = client.query_one(stmt, &[&i]).await.unwrap();
            (i, row.get::<_, i32>(0))
        }
    });
    let results = within("pipelined queries", futures_util::future::join_all(queries)).await;
    for (i, got) in results {
        assert_eq!(got, i * 3, "pipelined query {i}");
    }
    // A result larger than Helios's relay buffers, streamed through.
    let rows = within(
        "large result",
        client.query(
            "select g, repeat(md5(g::text), 20) from generate_series(1, 20000) g",
            &[],
        ),
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 20_000);
    let total: i64 = rows.iter().map(|r| r.get::<_, i32>(0) as i64).sum();
    assert_eq!(total, 20_000 * 20_001 / 2);
    assert_eq!(rows[19_999].get::<_, String>(1).len(), 640);
}

#[tokio::test]
async fn messages_larger_than_the_relay_buffers_pass_both_ways() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;
    // A 3 MB parameter (one Bind message) echoed back in one DataRow.
    let big: String = (0..3_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let row = within(
        "big parameter",
        client.query_one("select $1::text, length($1::text)", &[&big]),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, i32>(1), 3_000_000);
    assert!(
        row.get::<_, String>(0) == big,
        "the 3 MB value came back changed"
    );
    // A 1 MB query string (one Query message).
    let sql = format!("select length('{}')", "q".repeat(1 << 20));
    assert_eq!(one(&client, &sql).await, (1 << 20).to_string());
    // A 5 MB value made by the server.
    let row = within(
        "big result",
        client.query_one("select repeat('0123456789', 500000)", &[]),
    )
    .await
    .unwrap();
    assert!(row.get::<_, String>(0) == "0123456789".repeat(500_000));
}

// ---------------------------------------------------------------------------
// COPY
// ---------------------------------------------------------------------------

async fn copy_in(client: &Client, sql: &str, chunks: &[&[u8]]) -> u64 {
    within(sql, async {
        let sink = client.copy_in::<_, Bytes>(sql).await.unwrap();
        let mut sink = std::pin::pin!(sink);
        for chunk in chunks {
            sink.send(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        sink.finish().await.unwrap()
    })
    .await
}

async fn copy_out(client: &Client, sql: &str) -> Vec<u8> {
    within(sql, async {
        let stream = client.copy_out(sql).await.unwrap();
        let mut stream = std::pin::pin!(stream);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    })
    .await
}

/// COPY BINARY data for rows of (int4, text-or-NULL).
fn pgcopy_binary(rows: &[(i32, Option<&str>)]) -> Vec<u8> {
    let mut v = b"PGCOPY\n\xff\r\n\0".to_vec();
    v.extend_from_slice(&0i32.to_be_bytes()); // flags
    v.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for (id, name) in rows {
        v.extend_from_slice(&2i16.to_be_bytes());
        v.extend_from_slice(&4i32.to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        match name {
            Some(n) => {
                v.extend_from_slice(&(n.len() as i32).to_be_bytes());
                v.extend_from_slice(n.as_bytes());
            }
            None => v.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    v.extend_from_slice(&(-1i16).to_be_bytes());
    v
}

#[tokio::test]
async fn copy_from_stdin_in_text_csv_and_binary() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;
    within(
        "create",
        client.batch_execute("create table items (id int primary key, name text)"),
    )
    .await
    .unwrap();

    // Text, split mid-row across CopyData messages, with NULL and escapes.
    let n = copy_in(
        &client,
        "copy items from stdin",
        &[b"1\tone\n2\t\\N\n3\ttab\\there", b"\n4\tback\\\\slash\n"],
    )
    .await;
    assert_eq!(n, 4);
    // CSV with a header, quotes and an embedded comma and newline.
    let n = copy_in(
        &client,
        "copy items from stdin (format csv, header true)",
        &[b"id,name\n10,\"a, b\"\n11,\"multi\nline\"\n12,\n"],
    )
    .await;
    assert_eq!(n, 3);
    // Binary.
    let data = pgcopy_binary(&[(20, Some("bin")), (21, None), (22, Some(""))]);
    let (a, b) = data.split_at(13);
    let n = copy_in(&client, "copy items from stdin (format binary)", &[a, b]).await;
    assert_eq!(n, 3);

    let rows = within(
        "select",
        client.query("select id, name from items order by id", &[]),
    )
    .await
    .unwrap();
    let got: Vec<(i32, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let want: Vec<(i32, Option<String>)> = vec![
        (1, Some("one".into())),
        (2, None),
        (3, Some("tab\there".into())),
        (4, Some("back\\slash".into())),
        (10, Some("a, b".into())),
        (11, Some("multi\nline".into())),
        (12, None),
        (20, Some("bin".into())),
        (21, None),
        (22, Some("".into())),
    ];
    assert_eq!(got, want);

    // Many megabytes in many CopyData messages.
    let chunks: Vec<Vec<u8>> = (0..100)
        .map(|c| {
            (0..1000)
                .map(|r| format!("{}\t{}\n", 1000 + c * 1000 + r, "w".repeat(100)))
                .collect::<String>()
                .into_bytes()
        })
        .collect();
    let chunk_refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let n = copy_in(&client, "copy items from stdin", &chunk_refs).await;
    assert_eq!(n, 100_000);
    assert_eq!(
        simple_rows(
            &client,
            "select count(*), sum(id), sum(length(name)) from items where id >= 1000"
        )
        .await,
        vec![vec![s("100000"), s("5099950000"), s("10000000")]]
    );
    within(
        "cleanup",
        client.batch_execute("delete from items where id >= 1000"),
    )
    .await
    .unwrap();

    // A failing COPY (duplicate key) reports the upstream's error and the
    // session goes on.
    let sink = client
        .copy_in::<_, Bytes>("copy items from stdin")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(Bytes::from_static(b"100\tnew\n1\tdup\n"))
        .await
        .unwrap();
    let err = within("failing copy", sink.finish()).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("23505"), "{err}");
    assert_eq!(one(&client, "select count(*) from items").await, "10");
}

#[tokio::test]
async fn copy_to_stdout_returns_exact_bytes() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;
    let text = copy_out(
        &client,
        "copy (select g, case when g = 2 then null else 'v' || g end, E'a\\tb' \
         from generate_series(1, 3) g) to stdout",
    )
    .await;
    assert_eq!(text, b"1\tv1\ta\\tb\n2\t\\N\ta\\tb\n3\tv3\ta\\tb\n");

    let csv = copy_out(
        &client,
        "copy (select 1 as id, 'x, \"y\"' as s union all select 2, null) to stdout \
         (format csv, header true)",
    )
    .await;
    assert_eq!(csv, b"id,s\n1,\"x, \"\"y\"\"\"\n2,\n");

    let bin = copy_out(
        &client,
        "copy (select 7::int4, 'ab'::text union all select -1, null) to stdout (format binary)",
    )
    .await;
    assert_eq!(bin, pgcopy_binary(&[(7, Some("ab")), (-1, None)]));

    // Larger than the relay buffers, and every byte accounted for.
    let big = copy_out(
        &client,
        "copy (select g, repeat('z', 100) from generate_series(1, 50000) g) to stdout",
    )
    .await;
    let expected_len: usize = (1..=50_000usize)
        .map(|g| g.to_string().len() + 1 + 100 + 1)
        .sum();
    assert_eq!(big.len(), expected_len);
    assert!(big.ends_with(format!("50000\t{}\n", "z".repeat(100)).as_bytes()));
}

#[test]
fn copy_fail_gives_the_upstreams_57014_and_the_session_goes_on() {
    let pg = PgServer::start();
    pg.psql("create table cf (a int)");
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        c.send(&raw::query("copy cf from stdin"));
        let mut all = until_tag(c, b'G');
        c.send(&cat(&[
            raw::copy_data(b"1\n2\n"),
            raw::copy_fail("client gave up"),
        ]));
        all.extend(until_tag(c, b'Z'));
        all.extend(roundtrip(c, &raw::query("select count(*) from cf")));
        all
    });
    assert_eq!(tags(&msgs), "GEZTDCZ");
    let err = &msgs[1];
    assert_eq!(err.field(b'S').as_deref(), Some("ERROR"));
    assert_eq!(err.sqlstate().as_deref(), Some("57014"));
    assert_eq!(
        err.field(b'M').as_deref(),
        Some("COPY from stdin failed: client gave up")
    );
    assert_eq!(status(&msgs[..3]), 'I');
    assert_eq!(text_rows(&msgs), vec![vec![s("0")]]);
}

// ---------------------------------------------------------------------------
// LISTEN / NOTIFY
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_a_listening_client_through_helios() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (listener, mut messages) = connect_with_messages(&helios.conn_str("postgres")).await;
    let notifier = helios.connect().await;
    within("listen", listener.batch_execute("listen chan_a"))
        .await
        .unwrap();
    let sender_pid = backend_pid(&notifier).await;
    within(
        "notify",
        notifier.batch_execute(
            "notify other_chan, 'not for you'; notify chan_a, 'hello, world'; \
             select pg_notify('chan_a', 'second ☃')",
        ),
    )
    .await
    .unwrap();
    // Delivered in order; the channel not listened to never shows up first.
    let mut got = Vec::new();
    for _ in 0..2 {
        match next_message(&mut messages).await {
            AsyncMessage::Notification(n) => got.push((
                n.channel().to_string(),
                n.payload().to_string(),
                n.process_id(),
            )),
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            ("chan_a".to_string(), "hello, world".to_string(), sender_pid),
            ("chan_a".to_string(), "second ☃".to_string(), sender_pid),
        ]
    );
    // Still a working session.
    assert_eq!(one(&listener, "select 'ok'").await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_reaches_an_idle_raw_client_unprompted() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let port = helios.port;
    let mut raw_client = tokio::task::spawn_blocking(move || {
        let (mut c, _) = login(port, LOGIN);
        let msgs = roundtrip(&mut c, &raw::query("listen \"Mixed Case\""));
        assert_eq!(tags(&msgs), "CZ");
        c
    })
    .await
    .unwrap();
    let notifier = helios.connect().await;
    let sender_pid = backend_pid(&notifier).await;
    within(
        "notify",
        notifier.batch_execute("notify \"Mixed Case\", 'payload 1'"),
    )
    .await
    .unwrap();
    // The raw client has sent nothing since; the 'A' must arrive anyway.
    let m = tokio::task::spawn_blocking(move || raw_client.read_msg())
        .await
        .unwrap()
        .expect("no NotificationResponse arrived");
    let mut want = sender_pid.to_be_bytes().to_vec();
    want.extend_from_slice(b"Mixed Case\0payload 1\0");
    assert_eq!(
        m,
        Msg {
            tag: b'A',
            body: want
        }
    );
}

// ---------------------------------------------------------------------------
// Cancel
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_interrupts_a_running_query() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let direct = pg.connect().await;
    let client = helios.connect().await;
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let r = client.simple_query("select pg_sleep(30)").await;
        (client, r)
    });
    wait_active(&direct, "select pg_sleep(30)").await;
    within("cancel request", token.cancel_query(NoTls))
        .await
        .unwrap();
    let (client, result) = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the canceled query was still running 10s after the cancel")
        .unwrap();
    let err = result.expect_err("the query was not canceled");
    assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{err}");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "canceling statement due to user request"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // The session goes on.
    assert_eq!(one(&client, "select 'still here'").await, "still here");
}

#[test]
fn backend_key_data_is_helios_own_not_the_upstreams() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (mut a, login_a) = login(helios.port, LOGIN);
    let (mut b, login_b) = login(helios.port, LOGIN);
    let (pid_a, secret_a) = backend_key(&login_a);
    let (pid_b, _) = backend_key(&login_b);
    let upstream_a: i32 = raw_value(&mut a, "select pg_backend_pid()")
        .parse()
        .unwrap();
    let upstream_b: i32 = raw_value(&mut b, "select pg_backend_pid()")
        .parse()
        .unwrap();
    // As on a direct connection, the key's pid is the backend's pid...
    assert_eq!(pid_a, upstream_a);
    assert_eq!(pid_b, upstream_b);
    assert_ne!(pid_a, pid_b, "two live clients share a cancel key");
    // ...but the secret is Helios's: sent straight to PostgreSQL, the key
    // cancels nothing, so it cannot be used to bypass Helios.
    a.send(&raw::query("select pg_sleep(3)"));
    std::thread::sleep(Duration::from_millis(300));
    send_cancel(pg.port, pid_a, secret_a);
    let msgs = until_tag(&mut a, b'Z');
    assert!(
        msgs.iter().all(|m| m.tag != b'E'),
        "the client's key canceled a query directly on PostgreSQL: {msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_with_a_wrong_secret_or_a_departed_clients_key_does_nothing() {
    let pg = PgServer::start();
    // One upstream connection, so the second client gets the first's.
    let helios = Helios::start(&pg, "[pool]\nmax_size = 1\n");
    let port = helios.port;
    let direct = pg.connect().await;

    // First client: note its key, then leave (Helios closes the socket once
    // the connection is back in the pool).
    let (old_pid, old_secret, old_upstream) = tokio::task::spawn_blocking(move || {
        let (mut c, msgs) = login(port, LOGIN);
        let (pid, secret) = backend_key(&msgs);
        let up = raw_value(&mut c, "select pg_backend_pid()");
        c.send(&raw::terminate());
        assert!(c.until_closed().is_empty());
        (pid, secret, up)
    })
    .await
    .unwrap();

    // Second client on the same upstream connection.
    let (mut c, pid, secret, upstream) = tokio::task::spawn_blocking(move || {
        let (mut c, msgs) = login(port, LOGIN);
        let (pid, secret) = backend_key(&msgs);
        let up = raw_value(&mut c, "select pg_backend_pid()");
        (c, pid, secret, up)
    })
    .await
    .unwrap();
    assert_eq!(
        upstream, old_upstream,
        "with max_size = 1 the connection is reused"
    );

    let sql = "select pg_sleep(2), 'finished'";
    c.send(&raw::query(sql));
    wait_active(&direct, sql).await;
    let wrong_secret = secret.wrapping_add(1);
    tokio::task::spawn_blocking(move || {
        send_cancel(port, pid, wrong_secret);
        send_cancel(port, old_pid, old_secret);
    })
    .await
    .unwrap();
    let (msgs, mut c) = tokio::task::spawn_blocking(move || (until_tag(&mut c, b'Z'), c))
        .await
        .unwrap();
    assert_eq!(
        tags(&msgs),
        "TDCZ",
        "a cancel with a bad key interrupted the query: {msgs:?}"
    );
    assert_eq!(text_rows(&msgs)[0][1], s("finished"));

    // The control: the same steps with the right key do cancel.
    let sql = "select pg_sleep(20), 'not finished'";
    c.send(&raw::query(sql));
    wait_active(&direct, sql).await;
    let msgs = tokio::task::spawn_blocking(move || {
        send_cancel(port, pid, secret);
        until_tag(&mut c, b'Z')
    })
    .await
    .unwrap();
    assert_eq!(tags(&msgs), "TEZ", "{msgs:?}");
    assert_eq!(msgs[1].sqlstate().as_deref(), Some("57014"));
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

#[test]
fn ready_for_query_reports_idle_in_transaction_and_failed() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        let mut all = Vec::new();
        for sql in [
            "select 1",
            "begin",
            "select 2",
            "select 1/0",
            "select 3",
            "rollback",
            "select 4",
        ] {
            all.extend(roundtrip(c, &raw::query(sql)));
        }
        // Extended protocol: an error skips to Sync; the pipeline after it recovers.
        all.extend(roundtrip(
            c,
            &cat(&[
                raw::parse("", "select nope_col", &[]),
                raw::bind("", "", &[], &[], &[]),
                raw::execute("", 0),
                raw::sync(),
                raw::parse("", "select 5", &[]),
                raw::bind("", "", &[], &[], &[]),
                raw::execute("", 0),
                raw::sync(),
            ]),
        ));
        all.extend(until_tag(c, b'Z'));
        all
    });
    let statuses: String = msgs
        .iter()
        .filter(|m| m.tag == b'Z')
        .map(|m| m.body[0] as char)
        .collect();
    assert_eq!(statuses, "ITTEEIIII");
    let codes: Vec<String> = msgs.iter().filter_map(|m| m.sqlstate()).collect();
    assert_eq!(codes, ["22012", "25P02", "42703"]);
    assert_eq!(
        msgs.iter()
            .find(|m| m.sqlstate().as_deref() == Some("25P02"))
            .unwrap()
            .field(b'M')
            .as_deref(),
        Some("current transaction is aborted, commands ignored until end of transaction block")
    );
    assert_eq!(
        text_rows(&msgs),
        vec![vec![s("1")], vec![s("2")], vec![s("4")], vec![s("5")]]
    );
}

#[tokio::test]
async fn commit_rollback_and_failed_transactions() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let a = helios.connect().await;
    let b = helios.connect().await;
    within("create", a.batch_execute("create table tx (v int unique)"))
        .await
        .unwrap();

    within("begin", a.batch_execute("begin; insert into tx values (1)"))
        .await
        .unwrap();
    assert_eq!(
        one(&b, "select count(*) from tx").await,
        "0",
        "uncommitted row visible"
    );
    within("commit", a.batch_execute("commit")).await.unwrap();
    assert_eq!(one(&b, "select count(*) from tx").await, "1");

    within("begin", a.batch_execute("begin; insert into tx values (2)"))
        .await
        .unwrap();
    within("rollback", a.batch_execute("rollback"))
        .await
        .unwrap();
    assert_eq!(
        one(&b, "select string_agg(v::text, ',') from tx").await,
        "1"
    );

    // An error puts the transaction in the failed state until ROLLBACK.
    within("begin", a.batch_execute("begin; insert into tx values (3)"))
        .await
        .unwrap();
    let e = within("dup", a.execute("insert into tx values (1)", &[]))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("23505"));
    let e = within("after error", a.query("select 1", &[]))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"));
    within("rollback", a.batch_execute("rollback"))
        .await
        .unwrap();
    assert_eq!(
        one(&a, "select string_agg(v::text, ',') from tx").await,
        "1"
    );

    // The driver's transaction API.
    let mut a = a;
    let t = within("transaction", a.transaction()).await.unwrap();
    within("insert", t.execute("insert into tx values (4)", &[]))
        .await
        .unwrap();
    within("commit", t.commit()).await.unwrap();
    assert_eq!(
        one(&b, "select string_agg(v::text, ',' order by v) from tx").await,
        "1,4"
    );
}

// ---------------------------------------------------------------------------
// Errors, notices, parameter status
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_identical_to_a_direct_connections() {
    let pg = PgServer::start();
    pg.psql("create table uv (id int primary key); insert into uv values (1)");
    let helios = Helios::start(&pg, "");

    // With the driver: the SQLSTATE, and the session survives each error.
    let client = helios.connect().await;
    for (sql, code) in [
        ("select * from no_such_table", "42P01"),
        ("select * frm uv", "42601"),
        ("insert into uv values (1)", "23505"),
        ("select 1/0", "22012"),
    ] {
        let e = within(sql, client.simple_query(sql)).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some(code), "{sql}: {e}");
        let e = within(sql, client.query(sql, &[])).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some(code), "{sql} (extended): {e}");
    }
    assert_eq!(one(&client, "select 'alive'").await, "alive");

    // Byte for byte, every field.
    let helios_port = helios.port;
    let pg_port = pg.port;
    let msgs = tokio::task::spawn_blocking(move || {
        let run = |c: &mut RawConn| {
            let mut all = Vec::new();
            for sql in [
                "select * from no_such_table",
                "select * frm uv",
                "insert into uv values (1)",
                "select 1/0",
            ] {
                all.extend(roundtrip(c, &raw::query(sql)));
            }
            all
        };
        let (mut d, _) = login(pg_port, LOGIN);
        let (mut h, _) = login(helios_port, LOGIN);
        let direct = run(&mut d);
        let via = run(&mut h);
        assert_eq!(via, direct, "errors through Helios differ from direct ones");
        via
    })
    .await
    .unwrap();
    assert_eq!(tags(&msgs), "EZEZEZEZ");
    let fields = |m: &Msg| {
        (
            m.field(b'S'),
            m.field(b'V'),
            m.sqlstate(),
            m.field(b'M'),
            m.field(b'P'),
        )
    };
    let o = |v: &str| Some(v.to_string());
    assert_eq!(
        fields(&msgs[0]),
        (
            o("ERROR"),
            o("ERROR"),
            o("42P01"),
            o("relation \"no_such_table\" does not exist"),
            o("15")
        )
    );
    assert_eq!(
        fields(&msgs[2]),
        (
            o("ERROR"),
            o("ERROR"),
            o("42601"),
            o("syntax error at or near \"frm\""),
            o("10")
        )
    );
    assert_eq!(
        fields(&msgs[4]),
        (
            o("ERROR"),
            o("ERROR"),
            o("23505"),
            o("duplicate key value violates unique constraint \"uv_pkey\""),
            None
        )
    );
    assert_eq!(
        msgs[4].field(b'D').as_deref(),
        Some("Key (id)=(1) already exists.")
    );
    assert_eq!(
        fields(&msgs[6]),
        (
            o("ERROR"),
            o("ERROR"),
            o("22012"),
            o("division by zero"),
            None
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_arrive_with_their_fields() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (client, mut messages) = connect_with_messages(&helios.conn_str("postgres")).await;
    within(
        "do block",
        client.batch_execute(
            "do $$ begin raise notice 'hello %', 42; \
             raise warning 'careful' using detail = 'the detail', hint = 'a hint'; end $$",
        ),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        match next_message(&mut messages).await {
            AsyncMessage::Notice(n) => got.push((
                n.severity().to_string(),
                n.code().code().to_string(),
                n.message().to_string(),
                n.detail().map(str::to_string),
                n.hint().map(str::to_string),
            )),
            other => panic!("expected a notice, got {other:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            (
                "NOTICE".into(),
                "00000".into(),
                "hello 42".into(),
                None,
                None
            ),
            (
                "WARNING".into(),
                "01000".into(),
                "careful".into(),
                Some("the detail".into()),
                Some("a hint".into())
            ),
        ]
    );

    // Raw: the NoticeResponse bytes are the upstream's.
    let (pg_port, helios_port) = (pg.port, helios.port);
    let msgs = tokio::task::spawn_blocking(move || {
        let run =
            |c: &mut RawConn| roundtrip(c, &raw::query("do $$ begin raise notice 'n1'; end $$"));
        let (mut d, _) = login(pg_port, LOGIN);
        let (mut h, _) = login(helios_port, LOGIN);
        let direct = run(&mut d);
        let via = run(&mut h);
        assert_eq!(via, direct);
        via
    })
    .await
    .unwrap();
    assert_eq!(tags(&msgs), "NCZ");
    assert_eq!(msgs[0].field(b'M').as_deref(), Some("n1"));
}

#[test]
fn parameter_status_is_reported_when_a_reported_setting_changes() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        let mut all = roundtrip(c, &raw::query("set application_name = 'helios_ps_test'"));
        all.extend(roundtrip(c, &raw::query("set TimeZone = 'Asia/Tokyo'")));
        all.extend(roundtrip(c, &raw::query("set DateStyle = 'German'")));
        all.extend(roundtrip(c, &raw::query("reset application_name")));
        all
    });
    assert_eq!(tags(&msgs), "CSZCSZCSZCSZ");
    assert_eq!(
        parameter_statuses(&msgs),
        vec![
            ("application_name".to_string(), "helios_ps_test".to_string()),
            ("TimeZone".to_string(), "Asia/Tokyo".to_string()),
            ("DateStyle".to_string(), "German, DMY".to_string()),
            ("application_name".to_string(), "".to_string()),
        ]
    );
}

// ---------------------------------------------------------------------------
// FunctionCall
// ---------------------------------------------------------------------------

#[test]
fn function_call_returns_the_functions_result() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (mut c, _) = login(helios.port, LOGIN);
    let abs_oid: i32 = text_rows(&roundtrip(
        &mut c,
        &raw::query("select 'abs(int4)'::regprocedure::oid"),
    ))[0][0]
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let div_oid: i32 = text_rows(&roundtrip(
        &mut c,
        &raw::query("select 'int4div(int4,int4)'::regprocedure::oid"),
    ))[0][0]
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let msgs = on_both(&pg, &helios, |c| {
        let mut all = roundtrip(c, &raw::function_call(abs_oid, &[b"-42"]));
        all.extend(roundtrip(c, &raw::function_call(div_oid, &[b"7", b"0"])));
        all.extend(roundtrip(c, &raw::function_call(div_oid, &[b"7", b"2"])));
        all
    });
    assert_eq!(tags(&msgs), "VZEZVZ");
    // FunctionCallResponse: length 2, "42".
    assert_eq!(msgs[0].body, b"\0\0\0\x0242");
    assert_eq!(msgs[2].sqlstate().as_deref(), Some("22012"));
    assert_eq!(msgs[4].body, b"\0\0\0\x013");
}

// ---------------------------------------------------------------------------
// Startup
// ---------------------------------------------------------------------------

#[tokio::test]
async fn startup_parameters_reach_the_upstream() {
    let pg = PgServer::start();
    pg.psql(
        "create schema helios_s; create table helios_s.only_here (v text); \
         insert into helios_s.only_here values ('found')",
    );
    let helios = Helios::start(&pg, "");
    let client = common::connect(&format!(
        "{} application_name=helios_app options='-c search_path=helios_s,public -c work_mem=5MB'",
        helios.conn_str("postgres")
    ))
    .await;
    let rows = simple_rows(
        &client,
        "select current_setting('application_name'), current_setting('search_path'), \
         current_setting('work_mem'), (select v from only_here)",
    )
    .await;
    assert_eq!(
        rows,
        vec![vec![
            s("helios_app"),
            s("helios_s,public"),
            s("5MB"),
            s("found")
        ]]
    );
    // The server sees it too.
    let direct = pg.connect().await;
    let n: i64 = within(
        "pg_stat_activity",
        direct.query_one(
            "select count(*) from pg_stat_activity where application_name = 'helios_app'",
            &[],
        ),
    )
    .await
    .unwrap()
    .get(0);
    assert_eq!(n, 1);
}

#[test]
fn the_login_greeting_matches_a_direct_connections_except_the_key() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let params = &[
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", "greeting test"),
        ("DateStyle", "SQL, DMY"),
    ];
    let (_d, direct) = login(pg.port, params);
    let (_h, via) = login(helios.port, params);
    assert_eq!(tags(&via), tags(&direct));
    let without_key =
        |msgs: &[Msg]| -> Vec<Msg> { msgs.iter().filter(|m| m.tag != b'K').cloned().collect() };
    assert_eq!(without_key(&via), without_key(&direct));
    assert!(parameter_statuses(&via)
        .contains(&("application_name".to_string(), "greeting test".to_string())));
    assert!(parameter_statuses(&via).contains(&("DateStyle".to_string(), "SQL, DMY".to_string())));
    assert_eq!(find(&via, b'K').body.len(), 8);
}

#[test]
fn login_errors_from_the_upstream_pass_through_unchanged() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    for (params, code, message) in [
        (
            vec![("user", "postgres"), ("database", "no_such_db")],
            "3D000",
            "database \"no_such_db\" does not exist",
        ),
        (
            vec![("user", "no_such_role"), ("database", "postgres")],
            "28000",
            "role \"no_such_role\" does not exist",
        ),
        (
            vec![
                ("user", "postgres"),
                ("database", "postgres"),
                ("options", "-c no_such.setting=1 -c work_mem=bogus"),
            ],
            "22023",
            "invalid value for parameter \"work_mem\": \"bogus\"",
        ),
    ] {
        let mut seen = Vec::new();
        for port in [pg.port, helios.port] {
            let mut c = RawConn::open(port);
            c.stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .unwrap();
            c.send(&raw::startup(&params));
            seen.push(c.until_closed());
        }
        // PostgreSQL (trust) says AuthenticationOk first, then the error;
        // so must Helios, and the error must be the upstream's own.
        let (direct, via) = (&seen[0], &seen[1]);
        assert_eq!(tags(direct), "RE", "direct: {direct:?}");
        assert_eq!(via, direct, "through Helios");
        let via: Vec<Msg> = via.iter().filter(|m| m.tag != b'R').cloned().collect();
        assert_eq!(
            via[0], direct[1],
            "{params:?}: Helios's error differs from PostgreSQL's"
        );
        assert_eq!(via[0].field(b'S').as_deref(), Some("FATAL"));
        assert_eq!(via[0].sqlstate().as_deref(), Some(code));
        assert_eq!(via[0].field(b'M').as_deref(), Some(message));
    }
}

#[test]
fn a_deep_pipeline_of_simple_queries_is_answered_in_order() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (mut c, _) = login(helios.port, LOGIN);
    let n = 2000;
    let batch: Vec<u8> = (0..n)
        .map(|i| raw::query(&format!("select {i}")))
        .collect::<Vec<_>>()
        .concat();
    c.send(&batch);
    for i in 0..n {
        let msgs = until_tag(&mut c, b'Z');
        assert_eq!(tags(&msgs), "TDCZ", "answer {i}");
        assert_eq!(
            text_rows(&msgs),
            vec![vec![Some(i.to_string())]],
            "answer {i}"
        );
    }
    let msgs = roundtrip(&mut c, &raw::query("select 'done'"));
    assert_eq!(text_rows(&msgs), vec![vec![s("done")]]);
}

#[test]
fn protocol_3_2_startup_gets_negotiate_protocol_version_then_works() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    // PostgreSQL 15 answers with the newest version it speaks, 3.0 (as a
    // full version code, 0x00030000), and the options it did not recognize.
    for (params, expected_v) in [
        (
            vec![("user", "postgres"), ("database", "postgres")],
            b"\0\x03\0\0\0\0\0\0".to_vec(),
        ),
        (
            vec![
                ("user", "postgres"),
                ("_pq_.helios_test", "1"),
                ("database", "postgres"),
            ],
            b"\0\x03\0\0\0\0\0\x01_pq_.helios_test\0".to_vec(),
        ),
    ] {
        let mut firsts = Vec::new();
        for port in [pg.port, helios.port] {
            let mut c = RawConn::open(port);
            c.stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .unwrap();
            c.send(&startup_minor(2, &params));
            let msgs = until_tag(&mut c, b'Z');
            assert_eq!(msgs[0].tag, b'v', "port {port}: {msgs:?}");
            assert_eq!(msgs[1].tag, b'R', "port {port}: {msgs:?}");
            assert_eq!(msgs[1].body, [0, 0, 0, 0], "AuthenticationOk");
            let q = roundtrip(&mut c, &raw::query("select 'works'"));
            assert_eq!(text_rows(&q), vec![vec![s("works")]]);
            firsts.push(msgs[0].clone());
        }
        assert_eq!(
            firsts[1], firsts[0],
            "NegotiateProtocolVersion differs from the upstream's"
        );
        assert_eq!(firsts[1].body, expected_v);
    }
}

// ---------------------------------------------------------------------------
// Session pooling
// ---------------------------------------------------------------------------

/// Helios with one upstream connection per (database, user): a second client
/// waits for the first's connection, so reuse is deterministic.
const ONE_CONNECTION: &str = "[pool]\nmax_size = 1\n";

#[tokio::test]
async fn the_next_client_reuses_the_connection_without_the_previous_session_state() {
    let pg = PgServer::start();
    pg.psql(
        "create role helios_low nologin; create sequence seq; \
         grant usage on sequence seq to helios_low",
    );
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let first = helios.connect().await;
    let pid = backend_pid(&first).await;
    within(
        "session state",
        first.batch_execute(
            "set work_mem = '77MB'; create temp table leftover (a int); \
             prepare p as select 'from the first client'; listen first_channel; \
             set session characteristics as transaction read only; \
             select pg_advisory_lock(42); select nextval('seq'); \
             set session authorization helios_low",
        ),
    )
    .await
    .unwrap();
    assert_eq!(one(&first, "show work_mem").await, "77MB");
    assert_eq!(one(&first, "execute p").await, "from the first client");
    // tokio-postgres's own named statements (s0, s1, ...) exist now too.
    within("prepare", first.prepare("select 1")).await.unwrap();
    drop(first);

    let second = helios.connect().await;
    assert_eq!(
        backend_pid(&second).await,
        pid,
        "the upstream connection was not reused"
    );
    assert_eq!(one(&second, "show work_mem").await, "4MB");
    assert_eq!(
        one(&second, "select to_regclass('leftover') is null").await,
        "t"
    );
    assert_eq!(
        one(
            &second,
            "select count(*) from pg_prepared_statements where name = 'p'"
        )
        .await,
        "0"
    );
    let e = within("execute p", second.simple_query("execute p"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("26000"), "{e}");
    assert_eq!(
        one(&second, "select count(*) from pg_listening_channels()").await,
        "0"
    );
    assert_eq!(one(&second, "show transaction_read_only").await, "off");
    assert_eq!(
        one(&second, "select session_user || ',' || current_user").await,
        "postgres,postgres"
    );
    assert_eq!(
        one(
            &second,
            "select count(*) from pg_locks where locktype = 'advisory'"
        )
        .await,
        "0"
    );
    let e = within("currval", second.simple_query("select currval('seq')"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{e}");
    // The driver's statement names do not collide with the first client's.
    let stmt = within("prepare", second.prepare("select 2::int4"))
        .await
        .unwrap();
    let row = within("query", second.query_one(&stmt, &[])).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_is_reused_after_a_client_used_copy_from_stdin() {
    let pg = PgServer::start();
    pg.psql("create table copied (v int)");
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let port = helios.port;

    // Simple-protocol COPY (what psql's \copy does), then leave.
    let pid = tokio::task::spawn_blocking(move || {
        let (mut c, _) = login(port, LOGIN);
        let pid = raw_value(&mut c, "select pg_backend_pid()");
        c.send(&raw::query("copy copied from stdin"));
        until_tag(&mut c, b'G');
        let msgs = roundtrip(&mut c, &cat(&[raw::copy_data(b"1\n2\n"), raw::copy_done()]));
        assert_eq!(tags(&msgs), "CZ");
        c.send(&raw::terminate());
        assert!(c.until_closed().is_empty());
        pid.parse::<i32>().unwrap()
    })
    .await
    .unwrap();

    // The next raw client (same startup parameters) gets the same connection.
    let again = tokio::task::spawn_blocking(move || {
        let (mut c, _) = login(port, LOGIN);
        let pid = raw_value(&mut c, "select pg_backend_pid()");
        c.send(&raw::terminate());
        assert!(c.until_closed().is_empty());
        pid.parse::<i32>().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        again, pid,
        "the upstream connection was closed instead of pooled after a simple-protocol COPY"
    );

    // tokio-postgres sends other startup parameters (client_encoding, ...),
    // so it has a connection of its own.
    let second = helios.connect().await;
    let pid = backend_pid(&second).await;
    // Extended-protocol COPY, as tokio-postgres and libpq's PQexecParams do
    // it: Bind, Execute, Sync, CopyData..., CopyDone, Sync.
    let n = copy_in(&second, "copy copied from stdin", &[b"3\n4\n5\n"]).await;
    assert_eq!(n, 3);
    assert_eq!(one(&second, "select count(*) from copied").await, "5");
    drop(second);

    let third = helios.connect().await;
    assert_eq!(
        backend_pid(&third).await,
        pid,
        "the upstream connection was closed instead of pooled after an extended-protocol COPY"
    );
}

#[test]
fn extended_protocol_copy_in_answers_two_syncs_with_one_ready_for_query() {
    // The server swallows a Sync that arrives while it is in COPY IN mode
    // (drivers send one right after Execute, not knowing it is a COPY).
    let pg = PgServer::start();
    pg.psql("create table ext_copy (v int)");
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        c.send(&cat(&[
            raw::parse("", "copy ext_copy from stdin", &[]),
            raw::bind("", "", &[], &[], &[]),
            raw::execute("", 0),
            raw::sync(),
        ]));
        let mut all = until_tag(c, b'G');
        all.extend(roundtrip(
            c,
            &cat(&[raw::copy_data(b"7\n"), raw::copy_done(), raw::sync()]),
        ));
        // The next request gets exactly its own answer.
        all.extend(roundtrip(c, &raw::query("select 'next'")));
        all
    });
    assert_eq!(tags(&msgs), "12GCZTDCZ");
    assert_eq!(cstring(&msgs[3]), "COPY 1");
    assert_eq!(text_rows(&msgs), vec![vec![s("next")]]);
}

#[test]
fn a_protocol_violation_after_an_extended_protocol_copy_still_ends_the_session() {
    let pg = PgServer::start();
    pg.psql("create table pv_copy (v int)");
    let helios = Helios::start(&pg, "");
    let extended_copy = cat(&[
        raw::parse("", "copy pv_copy from stdin", &[]),
        raw::bind("", "", &[], &[], &[]),
        raw::execute("", 0),
        raw::sync(),
    ]);
    for (server, port) in [("direct", pg.port), ("helios", helios.port)] {
        for with_copy in [false, true] {
            let (mut c, _) = login(port, LOGIN);
            if with_copy {
                c.send(&extended_copy);
                until_tag(&mut c, b'G');
                let msgs = roundtrip(
                    &mut c,
                    &cat(&[raw::copy_data(b"1\n"), raw::copy_done(), raw::sync()]),
                );
                assert_eq!(tags(&msgs), "CZ", "{server}");
            }
            // '!' is no frontend message type.
            c.send(&raw::msg(b'!', b""));
            let rest = c.until_closed();
            assert_eq!(
                tags(&rest),
                "E",
                "{server}, after a COPY: {with_copy}: expected a FATAL error and the end \
                 of the connection, got {rest:?}"
            );
            assert_eq!(rest[0].field(b'S').as_deref(), Some("FATAL"), "{server}");
            assert_eq!(rest[0].sqlstate().as_deref(), Some("08P01"), "{server}");
        }
    }
}

#[test]
fn a_reused_connection_greets_with_the_startup_parameter_values() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let params = &[
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", "greeter"),
    ];
    let (mut a, greeting_a) = login(helios.port, params);
    let pid_a = raw_value(&mut a, "select pg_backend_pid()");
    let changed = roundtrip(
        &mut a,
        &raw::query(
            "set application_name = 'changed'; set TimeZone = 'Asia/Tokyo'; \
             set DateStyle = 'SQL, DMY'",
        ),
    );
    assert_eq!(parameter_statuses(&changed).len(), 3);
    a.send(&raw::terminate());
    assert!(a.until_closed().is_empty());

    let (mut b, greeting_b) = login(helios.port, params);
    let pid_b = raw_value(&mut b, "select pg_backend_pid()");
    assert_eq!(pid_b, pid_a, "the upstream connection was not reused");
    let ps_a = parameter_statuses(&greeting_a);
    let ps_b = parameter_statuses(&greeting_b);
    assert!(
        ps_a.contains(&("application_name".into(), "greeter".into())),
        "{ps_a:?}"
    );
    let mut sorted_a = ps_a.clone();
    let mut sorted_b = ps_b.clone();
    sorted_a.sort();
    sorted_b.sort();
    assert_eq!(
        sorted_b, sorted_a,
        "the second client's greeting shows the first's settings"
    );
    let initial = |name: &str| {
        ps_a.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in the greeting"))
    };
    let rows = text_rows(&roundtrip(
        &mut b,
        &raw::query(
            "select current_setting('application_name'), current_setting('TimeZone'), \
             current_setting('DateStyle')",
        ),
    ));
    assert_eq!(
        rows,
        vec![vec![
            s("greeter"),
            Some(initial("TimeZone")),
            Some(initial("DateStyle"))
        ]]
    );
}

#[tokio::test]
async fn clients_with_different_application_names_do_not_share_a_connection() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let a = common::connect(&format!(
        "{} application_name=app_a",
        helios.conn_str("postgres")
    ))
    .await;
    let pid_a = backend_pid(&a).await;
    drop(a);
    let b = common::connect(&format!(
        "{} application_name=app_b",
        helios.conn_str("postgres")
    ))
    .await;
    let pid_b = backend_pid(&b).await;
    assert_ne!(pid_a, pid_b, "app_b was given app_a's upstream connection");
    assert_eq!(
        one(&b, "select current_setting('application_name')").await,
        "app_b"
    );
    drop(b);
    // And the same parameters do share one (the control for the above).
    let b2 = common::connect(&format!(
        "{} application_name=app_b",
        helios.conn_str("postgres")
    ))
    .await;
    assert_eq!(backend_pid(&b2).await, pid_b);
}

#[tokio::test]
async fn a_client_leaving_inside_a_transaction_does_not_leave_it_open() {
    let pg = PgServer::start();
    pg.psql("create table lt (v int)");
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let direct = pg.connect().await;

    let a = helios.connect().await;
    within(
        "open transaction",
        a.batch_execute("begin; insert into lt values (1); lock table lt in access exclusive mode"),
    )
    .await
    .unwrap();
    drop(a);

    let b = helios.connect().await;
    assert_eq!(
        one(&b, "select txid_current_if_assigned() is null").await,
        "t"
    );
    assert_eq!(one(&b, "select count(*) from lt").await, "0");
    within("insert", b.batch_execute("insert into lt values (2)"))
        .await
        .unwrap();
    // Autocommitted: visible to everyone at once.
    let row = within(
        "direct select",
        direct.query_one("select string_agg(v::text, ',') from lt", &[]),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("2"));
}

#[test]
fn a_client_leaving_mid_copy_or_mid_pipeline_does_not_disturb_the_next() {
    let pg = PgServer::start();
    pg.psql("create table mc (v int)");
    let helios = Helios::start(&pg, ONE_CONNECTION);

    // Leaves (closes the socket) in the middle of COPY FROM STDIN.
    let (mut a, _) = login(helios.port, LOGIN);
    a.send(&raw::query("copy mc from stdin"));
    until_tag(&mut a, b'G');
    a.send(&raw::copy_data(b"1\n2\n"));
    drop(a);

    let (mut b, _) = login(helios.port, LOGIN);
    let msgs = roundtrip(&mut b, &raw::query("select count(*) from mc"));
    assert_eq!(tags(&msgs), "TDCZ", "{msgs:?}");
    assert_eq!(text_rows(&msgs), vec![vec![s("0")]]);
    assert_eq!(status(&msgs), 'I');

    // Leaves after a Parse and Bind with no Sync.
    b.send(&cat(&[
        raw::parse("half", "insert into mc values (99)", &[]),
        raw::bind("", "half", &[], &[], &[]),
        raw::flush(),
    ]));
    assert_eq!(tags(&until_tag(&mut b, b'2')), "12");
    drop(b);

    let (mut c, _) = login(helios.port, LOGIN);
    let msgs = roundtrip(
        &mut c,
        &cat(&[
            raw::parse("half", "select count(*) from mc", &[]),
            raw::bind("", "half", &[], &[], &[]),
            raw::execute("", 0),
            raw::sync(),
        ]),
    );
    assert_eq!(tags(&msgs), "12DCZ", "{msgs:?}");
    assert_eq!(text_rows(&msgs), vec![vec![s("0")]]);
    assert_eq!(status(&msgs), 'I');

    // Executes an INSERT but never sends Sync, then says goodbye: PostgreSQL
    // rolls such a write back; it must not be committed on the client's behalf.
    c.send(&cat(&[
        raw::parse("", "insert into mc values (99)", &[]),
        raw::bind("", "", &[], &[], &[]),
        raw::execute("", 0),
        raw::flush(),
    ]));
    let msgs = until_tag(&mut c, b'C');
    assert_eq!(tags(&msgs), "12C");
    assert_eq!(cstring(&msgs[2]), "INSERT 0 1");
    c.send(&raw::terminate());
    assert!(c.until_closed().is_empty());

    let (mut d, _) = login(helios.port, LOGIN);
    let msgs = roundtrip(&mut d, &raw::query("select count(*) from mc"));
    assert_eq!(
        text_rows(&msgs),
        vec![vec![s("0")]],
        "a write the client never synced was committed"
    );
    assert_eq!(status(&msgs), 'I');
    assert_eq!(pg.psql("select count(*) from mc"), "0\n");
}

#[test]
fn a_notification_to_oneself_carries_the_pid_the_client_was_given() {
    // libpq programs skip their own notifications by comparing be_pid with
    // PQbackendPID(): the pid must be the one in Helios's BackendKeyData.
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (mut c, greeting) = login(
        helios.port,
        &[("user", "postgres"), ("database", "postgres")],
    );
    let (pid, _) = backend_key(&greeting);
    let msgs = roundtrip(&mut c, &raw::query("listen ch; notify ch, 'hi'"));
    let n = find(&msgs, b'A');
    assert_eq!(i32::from_be_bytes(n.body[..4].try_into().unwrap()), pid);
    assert_eq!(&n.body[4..], b"ch\0hi\0");
    // Another session's notification keeps that session's server pid.
    let (mut other, _) = login(
        helios.port,
        &[
            ("user", "postgres"),
            ("database", "postgres"),
            ("application_name", "other"),
        ],
    );
    let other_pid = raw_value(&mut other, "select pg_backend_pid()");
    roundtrip(&mut other, &raw::query("notify ch, 'from other'"));
    let n = until_tag(&mut c, b'A');
    let n = n.last().unwrap();
    assert_eq!(
        i32::from_be_bytes(n.body[..4].try_into().unwrap()).to_string(),
        other_pid
    );
}
