//! Simple query protocol: multi-statement strings, empty queries and deep pipelines.

use tokio_postgres::SimpleQueryMessage;

use crate::common::raw;
use crate::common::{Helios, PgServer};
use crate::support::{
    cstring, login, on_both, roundtrip, s, status, tags, text_rows, until_tag, within, LOGIN,
};

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
