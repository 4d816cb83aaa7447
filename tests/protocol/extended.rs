//! Extended query protocol: statements, portals, Describe/Close, binary values and large messages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::raw::{self, Msg};
use crate::common::{Helios, PgServer};
use crate::support::{
    cat, cstring, data_row, on_both, one, roundtrip, s, status, tags, text_rows, until_tag, within,
};

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
