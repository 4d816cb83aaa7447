//! Shared helpers: timeouts, the raw-protocol helpers and the tokio-postgres helpers.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

use crate::common::raw::{self, Msg, RawConn};
use crate::common::{Helios, NoTls, PgServer};

/// Upper bound for anything a test waits on.
const LIMIT: Duration = Duration::from_secs(20);

pub(crate) async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {LIMIT:?}: {what}"))
}

// ---------------------------------------------------------------------------
// Raw protocol helpers
// ---------------------------------------------------------------------------

pub(crate) const LOGIN: &[(&str, &str)] = &[("user", "postgres"), ("database", "postgres")];

/// Log in with the raw client; panics unless the login ends in ReadyForQuery.
pub(crate) fn login(port: u16, params: &[(&str, &str)]) -> (RawConn, Vec<Msg>) {
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
pub(crate) fn until_tag(c: &mut RawConn, tag: u8) -> Vec<Msg> {
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
pub(crate) fn roundtrip(c: &mut RawConn, bytes: &[u8]) -> Vec<Msg> {
    c.send(bytes);
    until_tag(c, b'Z')
}

pub(crate) fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

pub(crate) fn tags(msgs: &[Msg]) -> String {
    msgs.iter().map(|m| m.tag as char).collect()
}

/// The transaction status byte of the last message (a ReadyForQuery).
pub(crate) fn status(msgs: &[Msg]) -> char {
    let z = msgs.last().expect("no messages");
    assert_eq!(z.tag, b'Z', "last message is not ReadyForQuery: {msgs:?}");
    z.body[0] as char
}

pub(crate) fn data_row(m: &Msg) -> Vec<Option<Vec<u8>>> {
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
pub(crate) fn text_rows(msgs: &[Msg]) -> Vec<Vec<Option<String>>> {
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
pub(crate) fn raw_value(c: &mut RawConn, sql: &str) -> String {
    let msgs = roundtrip(c, &raw::query(sql));
    let rows = text_rows(&msgs);
    assert_eq!(rows.len(), 1, "{sql}: {msgs:?}");
    rows[0][0].clone().unwrap_or_else(|| panic!("{sql}: NULL"))
}

pub(crate) fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// The text of a message whose body is one C string (CommandComplete).
pub(crate) fn cstring(m: &Msg) -> String {
    let end = m.body.iter().position(|&b| b == 0).unwrap_or(m.body.len());
    String::from_utf8_lossy(&m.body[..end]).into_owned()
}

pub(crate) fn find(msgs: &[Msg], tag: u8) -> &Msg {
    msgs.iter()
        .find(|m| m.tag == tag)
        .unwrap_or_else(|| panic!("no {:?} message in {msgs:?}", tag as char))
}

/// The (pid, secret) of the BackendKeyData in a login's messages.
pub(crate) fn backend_key(msgs: &[Msg]) -> (i32, i32) {
    let k = find(msgs, b'K');
    (
        i32::from_be_bytes(k.body[0..4].try_into().unwrap()),
        i32::from_be_bytes(k.body[4..8].try_into().unwrap()),
    )
}

/// The ParameterStatus (name, value) pairs in `msgs`.
pub(crate) fn parameter_statuses(msgs: &[Msg]) -> Vec<(String, String)> {
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
pub(crate) fn on_both(
    pg: &PgServer,
    helios: &Helios,
    f: impl Fn(&mut RawConn) -> Vec<Msg>,
) -> Vec<Msg> {
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
pub(crate) fn startup_minor(minor: u16, params: &[(&str, &str)]) -> Vec<u8> {
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
pub(crate) fn send_cancel(port: u16, pid: i32, secret: i32) {
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
pub(crate) async fn connect_with_messages(
    conn_str: &str,
) -> (Client, mpsc::UnboundedReceiver<AsyncMessage>) {
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

pub(crate) async fn next_message(rx: &mut mpsc::UnboundedReceiver<AsyncMessage>) -> AsyncMessage {
    within("an asynchronous message", rx.recv())
        .await
        .expect("connection ended before the message arrived")
}

/// The rows of a simple query, as text, one `Vec` per row.
pub(crate) async fn simple_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
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
pub(crate) async fn one(client: &Client, sql: &str) -> String {
    let rows = simple_rows(client, sql).await;
    assert_eq!(rows.len(), 1, "{sql}: expected one row, got {rows:?}");
    rows[0][0].clone().unwrap_or_else(|| panic!("{sql}: NULL"))
}

pub(crate) async fn backend_pid(client: &Client) -> i32 {
    one(client, "select pg_backend_pid()")
        .await
        .parse()
        .unwrap()
}

/// Wait (polling the server's own view) until a query with exactly this
/// text is running.
pub(crate) async fn wait_active(direct: &Client, query: &str) {
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
// tokio-postgres COPY helpers
// ---------------------------------------------------------------------------

pub(crate) async fn copy_in(client: &Client, sql: &str, chunks: &[&[u8]]) -> u64 {
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

pub(crate) async fn copy_out(client: &Client, sql: &str) -> Vec<u8> {
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
