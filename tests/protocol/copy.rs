//! COPY FROM STDIN and COPY TO STDOUT, including CopyFail.

use bytes::Bytes;
use futures_util::SinkExt;

use crate::common::raw;
use crate::common::{sqlstate, Helios, PgServer};
use crate::support::{
    cat, copy_in, copy_out, on_both, one, roundtrip, s, simple_rows, status, tags, text_rows,
    until_tag, within,
};

// ---------------------------------------------------------------------------
// COPY
// ---------------------------------------------------------------------------

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
