//! The extended protocol, message by message (what drivers other than
//! tokio-postgres send): named statements, Describe before Bind, binary
//! results, Flush before Sync, Close, and the unnamed statement being
//! replaced by an ordinary one.

use super::support::Shop;
use crate::common::raw::{bind, close, describe, execute, msg, parse, sync, Msg, RawConn};

fn tags(msgs: &[Msg]) -> String {
    msgs.iter().map(|m| m.tag as char).collect()
}

/// Read messages until one with this tag (inclusive).
fn until(c: &mut RawConn, tag: u8) -> Vec<Msg> {
    let mut out = Vec::new();
    while let Some(m) = c.read_msg() {
        let done = m.tag == tag;
        out.push(m);
        if done {
            return out;
        }
    }
    panic!(
        "connection closed before {:?}: got {}",
        tag as char,
        tags(&out)
    );
}

fn connect(shop: &Shop) -> RawConn {
    let (c, msgs) = RawConn::connect(
        shop.helios.port,
        &[("user", "postgres"), ("database", "postgres")],
    );
    assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{}", tags(&msgs));
    c
}

#[test]
fn a_named_nl_statement_described_bound_and_executed_with_flush_then_sync() {
    let shop = Shop::start("");
    shop.llm.reply_text("SELECT count(*) AS n FROM orders");
    let mut c = connect(&shop);

    // Describe before Bind: one text parameter, and no columns yet (the
    // question is not known).
    let mut m = parse("ask", "SELECT * FROM nl($1)", &[]);
    m.extend(describe(b'S', "ask"));
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(tags(&got), "1tnZ");
    assert_eq!(
        got[1].body,
        [0, 1, 0, 0, 0, 25],
        "one parameter of type text"
    );

    // Bind with a binary result, describe the portal, execute, and Flush:
    // the answer comes before Sync is sent.
    let mut m = bind("", "ask", &[Some(b"how many orders")], &[], &[1]);
    m.extend(describe(b'P', ""));
    m.extend(execute("", 0));
    m.extend(msg(b'H', &[]));
    c.send(&m);
    let got = until(&mut c, b'C');
    assert_eq!(
        tags(&got),
        "2TNDC",
        "BindComplete, RowDescription, the SQL notice, a row, done"
    );
    assert!(String::from_utf8_lossy(&got[2].body).contains("SELECT count(*) AS n FROM orders"));
    assert_eq!(
        got[3].body,
        [0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3],
        "count 3 as binary int8"
    );
    c.send(&sync());
    let got = c.until_ready();
    assert_eq!(tags(&got), "Z");
    assert_eq!(got[0].body, b"I");

    // Close it; a Bind afterwards is PostgreSQL's own 26000.
    let mut m = close(b'S', "ask");
    m.extend(sync());
    c.send(&m);
    assert_eq!(tags(&c.until_ready()), "3Z");
    let mut m = bind("", "ask", &[Some(b"how many orders")], &[], &[]);
    m.extend(execute("", 0));
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(tags(&got), "EZ");
    assert_eq!(got[0].sqlstate().as_deref(), Some("26000"));
    assert_eq!(shop.llm.calls(), 1);
}

#[test]
fn an_ordinary_unnamed_statement_replaces_an_nl_one() {
    let shop = Shop::start("");
    let mut c = connect(&shop);
    let mut m = parse("", "SELECT * FROM nl_sql($1)", &[]);
    m.extend(sync());
    c.send(&m);
    assert_eq!(tags(&c.until_ready()), "1Z");

    let mut m = parse("", "SELECT 41 + 1", &[]);
    m.extend(bind("", "", &[], &[], &[]));
    m.extend(execute("", 0));
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(tags(&got), "12DCZ");
    assert_eq!(got[2].body, [0, 1, 0, 0, 0, 2, b'4', b'2']);
    assert_eq!(shop.llm.calls(), 0);
}

#[test]
fn an_nl_portal_cannot_share_a_batch_with_an_ordinary_execute() {
    let shop = Shop::start("");
    shop.llm.reply_text("SELECT 1");
    let mut c = connect(&shop);
    let mut m = parse("", "SELECT * FROM nl('one')", &[]);
    m.extend(bind("", "", &[], &[], &[]));
    m.extend(parse("plain", "SELECT 2", &[]));
    m.extend(bind("p2", "plain", &[], &[], &[]));
    m.extend(execute("p2", 0));
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(
        tags(&got),
        "1212EZ",
        "the ordinary Execute is refused, the rest answered"
    );
    assert_eq!(got[4].sqlstate().as_deref(), Some("0A000"));
    // Nothing is stuck: a simple query works.
    c.send(&crate::common::raw::query("select 3"));
    assert_eq!(tags(&c.until_ready()), "TDCZ");
}

#[test]
fn an_nl_request_after_a_close_in_the_same_batch_is_answered() {
    // pgjdbc closes statements it no longer needs at the start of the next batch.
    let shop = Shop::start("");
    shop.llm.reply_text("SELECT count(*) FROM orders");
    let mut c = connect(&shop);
    let mut m = parse("old", "SELECT 1", &[]);
    m.extend(sync());
    c.send(&m);
    assert_eq!(tags(&c.until_ready()), "1Z");
    let mut m = close(b'S', "old");
    m.extend(parse("", "SELECT * FROM nl($1)", &[]));
    m.extend(bind("", "", &[Some(b"how many orders")], &[], &[]));
    m.extend(describe(b'P', ""));
    m.extend(execute("", 0));
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(tags(&got), "312TNDCZ");
    assert_eq!(got[5].body, [0, 1, 0, 0, 0, 1, b'3']);
    // The statement really was closed upstream.
    let mut m = bind("", "old", &[], &[], &[]);
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(got[0].sqlstate().as_deref(), Some("26000"));
}

#[test]
fn a_described_nl_statement_runs_the_sql_it_was_described_with() {
    let shop = Shop::start("");
    shop.llm
        .reply_text("SELECT id, name FROM customers ORDER BY id");
    let mut c = connect(&shop);
    let mut m = parse("s", "-- nl: list the customers", &[]);
    m.extend(describe(b'S', "s"));
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(tags(&got), "1tTZ");
    for _ in 0..3 {
        let mut m = bind("", "s", &[], &[], &[]);
        m.extend(execute("", 0));
        m.extend(sync());
        c.send(&m);
        let got = c.until_ready();
        assert_eq!(tags(&got), "2NDDDCZ");
    }
    assert_eq!(shop.llm.calls(), 1, "translated once, at Describe");
}

#[test]
fn malformed_describe_and_a_simple_query_inside_an_nl_batch_get_postgres_answers() {
    let shop = Shop::start("");
    let mut c = connect(&shop);
    // A Describe with no body: 08P01, the batch skips to Sync, the session lives.
    let mut m = parse("", "SELECT nl_reset()", &[]);
    m.extend(msg(b'D', &[]));
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(tags(&got), "1EZ");
    assert_eq!(got[1].sqlstate().as_deref(), Some("08P01"));
    // A simple Query in the middle of the batch is answered at once.
    let mut m = parse("", "SELECT nl_reset()", &[]);
    m.extend(crate::common::raw::query("select 7"));
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(tags(&got), "1TDCZ");
    c.send(&sync());
    assert_eq!(tags(&c.until_ready()), "Z");
    c.send(&crate::common::raw::query("select 8"));
    assert_eq!(tags(&c.until_ready()), "TDCZ");
}

#[test]
fn a_described_nl_statement_never_runs_inside_the_clients_transaction() {
    let shop = Shop::start("");
    shop.llm.reply_text("SELECT id FROM customers ORDER BY id");
    let mut c = connect(&shop);
    let mut m = parse("s", "-- nl: list the customers", &[]);
    m.extend(describe(b'S', "s"));
    m.extend(sync());
    c.send(&m);
    assert_eq!(tags(&c.until_ready()), "1tTZ");
    c.send(&crate::common::raw::query(
        "BEGIN; INSERT INTO customers VALUES (9, 'Eve', 'Rome')",
    ));
    assert_eq!(tags(&c.until_ready()), "CCZ");
    let mut m = bind("", "s", &[], &[], &[]);
    m.extend(execute("", 0));
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(tags(&got), "2EZ");
    assert_eq!(got[1].sqlstate().as_deref(), Some("25001"));
    assert_eq!(got[2].body, b"T", "the client's transaction is still open");
    c.send(&crate::common::raw::query("COMMIT"));
    assert_eq!(tags(&c.until_ready()), "CZ");
    assert_eq!(
        shop.pg
            .psql("select count(*) from customers where id = 9")
            .trim(),
        "1"
    );
}

#[test]
fn a_simple_nl_query_after_unsynced_parse_gets_the_replies_in_order() {
    let shop = Shop::start("");
    shop.llm.reply_text("SELECT count(*) FROM orders");
    let mut c = connect(&shop);
    let mut m = parse("x", "SELECT 1", &[]);
    m.extend(crate::common::raw::query(
        "SELECT * FROM nl('how many orders')",
    ));
    c.send(&m);
    assert_eq!(tags(&c.until_ready()), "1NTDCZ");
    // After an error, PostgreSQL ignores everything up to Sync, the NL
    // Query included.
    let mut m = parse("bad", "SELEC 1", &[]);
    m.extend(crate::common::raw::query(
        "SELECT * FROM nl('how many orders')",
    ));
    m.extend(sync());
    c.send(&m);
    let got = c.until_ready();
    assert_eq!(tags(&got), "EZ");
    assert_eq!(got[0].sqlstate().as_deref(), Some("42601"));
    assert_eq!(shop.llm.calls(), 1);
    c.send(&crate::common::raw::query("select 1"));
    assert_eq!(tags(&c.until_ready()), "TDCZ");
}

#[test]
fn a_client_leaving_mid_nl_batch_does_not_poison_the_pooled_connection() {
    let shop = Shop::start("[pool]\nmax_size = 1\nreset_query = \"\"");
    let mut c = connect(&shop);
    let mut m = parse("n", "SELECT * FROM nl($1)", &[]);
    m.extend(parse("bad", "SELEC 1", &[]));
    c.send(&m);
    // The bad Parse goes upstream (which then ignores all until Sync); the
    // client leaves without sending Sync.
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(c);
    // The next client gets the (only) connection, or a fresh one, in a usable state.
    let mut next = connect(&shop);
    next.send(&crate::common::raw::query("select 42"));
    let got = next.until_ready();
    assert_eq!(tags(&got), "TDCZ");
}
