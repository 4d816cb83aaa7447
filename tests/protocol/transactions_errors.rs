//! Transaction status, errors, notices, ParameterStatus and FunctionCall.

use tokio_postgres::AsyncMessage;

use crate::common::raw::{self, Msg, RawConn};
use crate::common::{sqlstate, Helios, PgServer};
use crate::support::{
    cat, connect_with_messages, login, next_message, on_both, one, parameter_statuses, roundtrip,
    s, tags, text_rows, until_tag, within, LOGIN,
};

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
