//! Corpus: state that must not leak through the pool, Terminate, and refused startups.

use crate::common::raw;
use crate::item::{item, pbe, Item};

/// Sessions that leave state behind, each followed by one that must not see
/// it: through Helios the second runs on the same (reset) upstream connection.
pub(crate) fn lifecycle_corpus() -> Vec<Item> {
    let pipelined: Vec<Vec<u8>> = (0..50)
        .map(|i| raw::query(&format!("select {i}")))
        .collect();
    vec![
        item("leaves a named prepared statement").ext(&[raw::parse(
            "pooled_stmt",
            "select 1",
            &[],
        )]),
        item("the statement name is free again")
            .ext(&[
                raw::parse("pooled_stmt", "select 2", &[]),
                raw::bind("", "pooled_stmt", &[], &[], &[]),
                raw::execute("", 0),
            ])
            .errors(&[])
            .count(b'D', 1),
        item("leaves a temporary table").q("create temp table leak_tt (a int)"),
        item("the temporary table is gone")
            .q("create temp table leak_tt (a int)")
            .errors(&[]),
        item("leaves a LISTEN").q("listen leak_chan"),
        item("the LISTEN is gone")
            .q("notify leak_chan, 'nobody listens'")
            .q("select 1")
            .count(b'A', 0),
        item("leaves an advisory lock").q("select pg_advisory_lock(4242)"),
        item("the advisory lock is released")
            .q("select count(*) from pg_locks where locktype = 'advisory'")
            .count(b'D', 1),
        item("leaves a cursor WITH HOLD").q("declare leak_cur cursor with hold for select 1"),
        item("the cursor is gone")
            .q("declare leak_cur cursor with hold for select 2")
            .q("fetch all from leak_cur")
            .errors(&[]),
        item("leaves SET ROLE and read-only default")
            .q("set role difftest_user")
            .q("set session characteristics as transaction read only"),
        item("role and read-only default are reset")
            .q("select current_user, current_setting('default_transaction_read_only')")
            .q("create temp table rw (a int)")
            .errors(&[]),
        item("leaves a failed transaction open")
            .q("begin")
            .q("select 1/0"),
        item("a failed transaction does not carry over")
            .q("select 'fresh'")
            .errors(&[]),
        item("client aborts in the middle of a result")
            .send(&[raw::query(
                "select g, repeat('a', 1000) from generate_series(1, 100000) g",
            )])
            .until(b"D")
            .abort(),
        item("after an aborted result the next session is clean")
            .q("select 'clean'")
            .count(b'D', 1),
        item("client aborts in the middle of COPY FROM STDIN")
            .send(&[raw::query("copy difftest_copy from stdin")])
            .until(b"GZ")
            .send(&[raw::copy_data(b"1\tpartial\t1\n")])
            .abort(),
        item("after an aborted COPY nothing was written")
            .q("select count(*) from difftest_copy")
            .count(b'D', 1),
        item("notification from another session while idle")
            .q("listen idle_chan")
            .elsewhere("notify idle_chan, 'from elsewhere'")
            .until(b"A")
            .q("select 'after'")
            .count(b'A', 1),
        item("50 simple queries in one write")
            .send(&pipelined)
            .ready(50)
            .count(b'D', 50),
        item("COPY data sent without waiting for CopyInResponse")
            .q("begin")
            .send(&[
                raw::query("copy difftest_copy from stdin"),
                raw::copy_data(b"1\teager\t1\n"),
                raw::copy_done(),
            ])
            .ready(1)
            .q("select b from difftest_copy")
            .q("rollback")
            .count(b'D', 1),
    ]
}

/// A client may write Terminate right behind requests it still wants
/// answered: PostgreSQL handles messages in order, so it answers them before
/// it reads the Terminate and closes.
pub(crate) fn terminate_corpus() -> Vec<Item> {
    vec![
        item("Query and Terminate in one write")
            .send(&[
                raw::query("select 'answered before goodbye'"),
                raw::terminate(),
            ])
            .closed()
            .count(b'D', 1),
        item("extended batch and Terminate in one write")
            .send(
                &[
                    pbe("select 'answered before goodbye'"),
                    vec![raw::sync(), raw::terminate()],
                ]
                .concat(),
            )
            .closed()
            .count(b'D', 1),
        item("COMMIT and Terminate in one write")
            .q("create temp table bye (a int)")
            .q("begin")
            .q("insert into bye values (1)")
            .send(&[raw::query("commit"), raw::terminate()])
            .closed()
            .count(b'Z', 4),
    ]
}

/// Startups that PostgreSQL refuses: the client must see the same refusal
/// (AuthenticationOk first where PostgreSQL sends it, then the FATAL error).
pub(crate) fn refused_startup_corpus() -> Vec<Item> {
    let without = |name: &str| {
        let mut it = item(name);
        it.params.retain(|(k, _)| k != "user");
        it
    };
    vec![
        item("unknown database")
            .param("database", "no_such_db")
            .startup_error("3D000"),
        item("unknown role")
            .param("user", "no_such_role")
            .startup_error("28000"),
        item("role without LOGIN")
            .param("user", "difftest_user")
            .startup_error("28000"),
        item("unknown startup parameter")
            .param("no_such_setting", "1")
            .startup_error("42704"),
        item("invalid parameter value")
            .param("DateStyle", "bogus")
            .startup_error("22023"),
        item("invalid option in options")
            .param("options", "-c no_such_setting=1")
            .startup_error("42704"),
        without("no user name")
            .answered_by_helios()
            .startup_error("28000"),
    ]
}
