//! Corpus: transactions, FunctionCall, LISTEN/NOTIFY and large values.

use crate::common::raw;
use crate::item::{item, Item};

pub(crate) fn session_corpus(oids: &[&str]) -> Vec<Item> {
    let oid = |i: usize| oids[i].parse::<i32>().expect("function oid");
    vec![
        item("BEGIN/COMMIT on a temporary table")
            .q("create temp table tt (a int)")
            .q("begin")
            .q("insert into tt values (1), (2), (3)")
            .q("commit")
            .q("select count(*), sum(a) from tt"),
        item("BEGIN/ROLLBACK")
            .q("begin")
            .q("insert into difftest_items (id, name) values (50, 'temp row')")
            .q("select count(*) from difftest_items")
            .q("rollback")
            .q("select count(*) from difftest_items"),
        item("failed transaction (25P02) and COMMIT answering ROLLBACK")
            .q("begin")
            .q("select 1/0")
            .q("select 1")
            .q("commit")
            .errors(&["22012", "25P02"]),
        item("savepoints")
            .q("begin")
            .q("savepoint a")
            .q("select 1/0")
            .q("rollback to a")
            .q("select 2")
            .q("release a")
            .q("commit")
            .errors(&["22012"])
            .count(b'D', 1),
        item("transaction left open inside one Query").q("begin; select 1").q("rollback"),
        item("read-only transaction (25006)")
            .q("begin read only")
            .q("insert into difftest_copy values (1)")
            .q("rollback")
            .errors(&["25006"]),
        item("serializable transaction").q(
            "begin isolation level serializable; select count(*) from difftest_items; commit",
        ),
        item("COMMIT and ROLLBACK outside a transaction (warnings)")
            .q("commit")
            .q("rollback")
            .count(b'N', 2),
        item("FunctionCall int4pl")
            .send(&[raw::function_call(oid(0), &[b"2", b"40"])])
            .ready(1)
            .count(b'V', 1),
        item("FunctionCall md5(text) with unicode")
            .send(&[raw::function_call(oid(4), &["héllo wörld ☕".as_bytes()])])
            .ready(1)
            .count(b'V', 1),
        item("FunctionCall upper(text) without a collation (42P22)")
            .send(&[raw::function_call(oid(1), &[b"abc"])])
            .ready(1)
            .errors(&["42P22"]),
        item("FunctionCall raising division by zero")
            .send(&[raw::function_call(oid(2), &[b"1", b"0"])])
            .ready(1)
            .q("select 'after'")
            .errors(&["22012"]),
        item("FunctionCall of a function with notices")
            .send(&[raw::function_call(oid(3), &[b"4"])])
            .ready(1)
            .count(b'N', 2)
            .count(b'V', 1),
        item("FunctionCall of a missing function")
            .send(&[raw::function_call(0, &[])])
            .ready(1)
            .errors(&["42883"]),
        // A session's own notifications arrive before the ReadyForQuery of
        // the statement that committed them; the notifying pid is masked (see
        // the crate comment in main.rs).
        item("LISTEN/NOTIFY to self")
            .q("listen difftest_chan")
            .q("notify difftest_chan, 'hello'")
            .q("select pg_notify('difftest_chan', 'payload ☕')")
            .q("begin; notify difftest_chan, 'x'; notify difftest_chan, 'y'; notify difftest_chan, 'x'; commit")
            .q("begin")
            .q("notify difftest_chan, 'at commit'")
            .q("commit")
            .q("unlisten difftest_chan; notify difftest_chan, 'unheard'")
            .q("select 'next'")
            .count(b'A', 5),
        item("a 5 MB text value")
            .q("select repeat('abcde', 1048576), length(repeat('abcde', 1048576))")
            .count(b'D', 1),
        item("a 5 MB value, binary, extended").ext(&[
            raw::parse("", "select repeat('z', 5242880)::bytea", &[]),
            raw::bind("", "", &[], &[], &[1]),
            raw::execute("", 0),
        ]),
        item("20k rows")
            .q("select g, md5(g::text), g % 7 = 0 from generate_series(1, 20000) g")
            .count(b'D', 20000),
        item("20k rows fetched 1000 at a time").ext(&{
            let mut v = vec![
                raw::parse("", "select g, md5(g::text) from generate_series(1, 20000) g", &[]),
                raw::bind("", "", &[], &[], &[]),
            ];
            v.extend((0..21).map(|_| raw::execute("", 1000)));
            v
        })
        .count(b'D', 20000)
        .count(b's', 20),
        item("client sends Terminate in the middle of a transaction")
            .q("begin")
            .q("insert into difftest_copy values (1, 'left open', 1)"),
        item("state left by the previous item is gone")
            .q("select count(*) from difftest_copy")
            .q("show application_name")
            .count(b'D', 2),
    ]
}
