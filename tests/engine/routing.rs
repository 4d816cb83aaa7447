//! Which statements go to the engine: hints, `SET helios.engine` (and
//! `SET LOCAL`), `[[engine.route]]` rules, `/*+ no_engine */`; what is
//! always relayed; the fallback to PostgreSQL, with its NOTICE when the
//! client asked.

use crate::support::*;

const ITEMS: &str =
    "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2)); \
     INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 200) g; \
     CREATE TABLE other (id int); INSERT INTO other VALUES (1), (2);";

const COUNT: &str = "SELECT count(*), sum(price) FROM items";

#[tokio::test(flavor = "multi_thread")]
async fn hints_route_and_no_engine_overrides() {
    let (_pg, h) = start(ITEMS, "");
    let c = h.connect().await;
    let want = vec![vec![Some("200".into()), Some("30150.00".into())]];

    // By default everything is relayed.
    assert_eq!(run(&h, &c, COUNT).await, (Ran::Relayed, want.clone()));
    // The hint, wherever the comment is.
    assert_eq!(
        run(&h, &c, &format!("/*+ engine */ {COUNT}")).await,
        (Ran::Federated, want.clone())
    );
    assert_eq!(
        run(
            &h,
            &c,
            "SELECT /*+ engine */ count(*), sum(price) FROM items"
        )
        .await,
        (Ran::Federated, want.clone())
    );
    // no_engine wins over the hint and over the session's setting.
    assert_eq!(
        run(&h, &c, &format!("/*+ engine no_engine */ {COUNT}")).await,
        (Ran::Relayed, want.clone())
    );
    exec(&c, "SET helios.engine = on").await;
    assert_eq!(run(&h, &c, COUNT).await, (Ran::Federated, want.clone()));
    assert_eq!(
        run(&h, &c, &format!("/*+ no_engine */ {COUNT}")).await,
        (Ran::Relayed, want.clone())
    );
    // A plain comment is not a hint.
    exec(&c, "SET helios.engine = off").await;
    assert_eq!(
        run(&h, &c, &format!("/* engine */ {COUNT}")).await,
        (Ran::Relayed, want)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn set_and_show_helios_engine_are_answered_by_helios() {
    let (_pg, h) = start(ITEMS, "[engine]\npartitions = 3\n");
    let c = h.connect().await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "off");
    assert_eq!(value(&c, "SHOW helios.engine_partitions").await, "3");

    exec(&c, "SET helios.engine = on").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "on");
    assert_eq!(run(&h, &c, COUNT).await.0, Ran::Federated);
    exec(&c, "SET helios.engine TO off").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "off");
    assert_eq!(run(&h, &c, COUNT).await.0, Ran::Relayed);
    exec(&c, "set HELIOS.ENGINE = 'on'").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "on");
    exec(&c, "RESET helios.engine").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "off");

    exec(&c, "SET helios.engine_partitions = 7").await;
    assert_eq!(value(&c, "SHOW helios.engine_partitions").await, "7");
    exec(&c, "SET helios.engine_partitions = default").await;
    assert_eq!(value(&c, "SHOW helios.engine_partitions").await, "3");

    // Bad values are refused and change nothing.
    sqlstate_of(&c, "SET helios.engine = maybe").await;
    sqlstate_of(&c, "SET helios.engine_partitions = 0").await;
    sqlstate_of(&c, "SET helios.engine_partitions = many").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "off");
    assert_eq!(value(&c, "SHOW helios.engine_partitions").await, "3");

    // PostgreSQL never heard of them: its own placeholder is unset.
    assert_eq!(
        rows(&c, "SELECT current_setting('helios.engine', true)").await,
        vec![vec![None]]
    );
    // Each session has its own setting.
    exec(&c, "SET helios.engine = on").await;
    let other = h.connect().await;
    assert_eq!(value(&other, "SHOW helios.engine").await, "off");
    assert_eq!(run(&h, &other, COUNT).await.0, Ran::Relayed);
}

#[tokio::test(flavor = "multi_thread")]
async fn set_local_lasts_until_the_transaction_ends() {
    let (_pg, h) = start(ITEMS, "");
    let c = h.connect().await;
    exec(&c, "BEGIN").await;
    exec(&c, "SET LOCAL helios.engine = on").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "on");
    // Inside a transaction block statements are relayed all the same.
    assert_eq!(run(&h, &c, COUNT).await.0, Ran::Relayed);
    exec(&c, "SET LOCAL helios.engine_partitions = 5").await;
    assert_eq!(value(&c, "SHOW helios.engine_partitions").await, "5");
    exec(&c, "COMMIT").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "off");
    assert_ne!(value(&c, "SHOW helios.engine_partitions").await, "5");
    assert_eq!(run(&h, &c, COUNT).await.0, Ran::Relayed);

    // A rollback ends it too; the session's setting comes back.
    exec(&c, "SET helios.engine = on").await;
    exec(&c, "BEGIN").await;
    exec(&c, "SET LOCAL helios.engine = off").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "off");
    exec(&c, "ROLLBACK").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "on");
    assert_eq!(run(&h, &c, COUNT).await.0, Ran::Federated);

    // Outside a transaction block SET LOCAL changes nothing (as PostgreSQL's).
    exec(&c, "SET LOCAL helios.engine = off").await;
    assert_eq!(value(&c, "SHOW helios.engine").await, "on");
}

#[tokio::test(flavor = "multi_thread")]
async fn route_rules_send_statements_naming_their_tables() {
    let (_pg, h) = start(ITEMS, "[[engine.route]]\ntables = [\"items\"]\n");
    let (c, notices) = connect_noticed(&h.conn_str("postgres")).await;
    assert_eq!(
        run(&h, &c, COUNT).await,
        (
            Ran::Federated,
            vec![vec![Some("200".into()), Some("30150.00".into())]]
        )
    );
    assert_eq!(
        run(&h, &c, "SELECT count(*) FROM public.items WHERE id <= 10")
            .await
            .1,
        vec![vec![Some("10".into())]]
    );
    assert_eq!(
        run(
            &h,
            &c,
            "SELECT o.id, i.name FROM other o JOIN items i ON i.id = o.id ORDER BY o.id"
        )
        .await,
        (
            Ran::Federated,
            vec![
                vec![Some("1".into()), Some("item 1".into())],
                vec![Some("2".into()), Some("item 2".into())]
            ]
        )
    );
    // Other tables, and statements opting out, are relayed.
    assert_eq!(
        run(&h, &c, "SELECT count(*) FROM other").await.0,
        Ran::Relayed
    );
    assert_eq!(
        run(&h, &c, &format!("/*+ no_engine */ {COUNT}")).await.0,
        Ran::Relayed
    );
    // What the engine cannot run under a rule is relayed without a NOTICE:
    // the client did not ask.
    let (ran, code) = run_err(&h, &c, "SELECT nope FROM items").await;
    assert_eq!((ran, code.as_str()), (Ran::Declined, "42703"));
    assert_eq!(take(&notices), Vec::<String>::new());
}

/// With the engine on, everything that is not one read-only query outside
/// a transaction block is relayed, and answers as PostgreSQL does.
#[tokio::test(flavor = "multi_thread")]
async fn only_single_read_only_queries_outside_transactions_are_routed() {
    let (_pg, h) = start(ITEMS, "");
    let c = h.connect().await;
    exec(&c, "SET helios.engine = on").await;
    let relayed = [
        "INSERT INTO other VALUES (3)",
        "UPDATE other SET id = id WHERE id = 3",
        "SELECT id FROM other WHERE id = 3 FOR UPDATE",
        "SELECT count(*) FROM items; SELECT count(*) FROM other",
        "SELECT id INTO copied FROM other",
        "WITH gone AS (DELETE FROM other WHERE id = 3 RETURNING id) SELECT count(*) FROM gone",
        "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'items'",
        "SELECT count(*) FROM pg_class WHERE relname = 'items'",
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'items'",
        "SELECT count(*) FROM pg_stat_activity",
        "CREATE TEMP TABLE scratch AS SELECT * FROM items",
        "EXPLAIN SELECT count(*) FROM items",
    ];
    for sql in relayed {
        assert_eq!(run(&h, &c, sql).await.0, Ran::Relayed, "{sql}");
    }
    assert_eq!(value(&c, "SELECT count(*) FROM copied").await, "3");
    assert_eq!(value(&c, "SELECT count(*) FROM other").await, "2");

    // Inside a transaction block.
    exec(&c, "BEGIN").await;
    assert_eq!(
        run(&h, &c, COUNT).await,
        (
            Ran::Relayed,
            vec![vec![Some("200".into()), Some("30150.00".into())]]
        )
    );
    exec(&c, "COMMIT").await;

    // The extended protocol runs in the engine too (see `extended`).
    let before = engine_log(&h);
    let r = c
        .query("SELECT count(*) FROM items WHERE id > $1", &[&100i32])
        .await
        .unwrap();
    assert_eq!(r[0].get::<_, i64>(0), 100);
    assert_eq!(ran_since(&h, &before, "extended"), Ran::Federated);

    // And after all that, a read still goes to the engine.
    assert_eq!(run(&h, &c, COUNT).await.0, Ran::Federated);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_engine_cannot_run_is_relayed_with_a_notice_when_asked() {
    let (_pg, h) = start(ITEMS, "");
    let (c, notices) = connect_noticed(&h.conn_str("postgres")).await;

    // PostgreSQL's own errors, after the NOTICE.
    let (ran, code) = run_err(&h, &c, "/*+ engine */ SELECT nope FROM items").await;
    assert_eq!((ran, code.as_str()), (Ran::Declined, "42703"));
    let n = take(&notices);
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(n[0].starts_with(DECLINED), "{n:?}");
    assert!(n[0].ends_with("it was sent to PostgreSQL"), "{n:?}");

    let (ran, code) = run_err(&h, &c, "/*+ engine */ SELECT count(*) FROM missing").await;
    assert_eq!((ran, code.as_str()), (Ran::Declined, "42P01"));
    assert!(take(&notices)[0].starts_with(DECLINED));

    // A function DataFusion lacks: PostgreSQL answers.
    exec(&c, "SET helios.engine = on").await;
    assert_eq!(
        run(
            &h,
            &c,
            "SELECT quote_ident(name) FROM items WHERE id = 7 ORDER BY 1"
        )
        .await,
        (Ran::Declined, vec![vec![Some("\"item 7\"".into())]])
    );
    let n = take(&notices);
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(n[0].starts_with(DECLINED), "{n:?}");

    // The session is fine afterwards: idle, no transaction left open.
    exec(&c, "BEGIN; INSERT INTO other VALUES (9); ROLLBACK").await;
    assert_eq!(value(&c, "SELECT count(*) FROM other").await, "2");
    assert_eq!(run(&h, &c, COUNT).await.0, Ran::Federated);
    assert_eq!(take(&notices), Vec::<String>::new());
}

/// Partitions and pushdown, seen in the COPY statements PostgreSQL ran.
#[tokio::test(flavor = "multi_thread")]
async fn scans_are_split_into_partitions_with_filters_and_limits_pushed() {
    let setup = "CREATE TABLE wide (id int, pad text); \
         INSERT INTO wide SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g; \
         ANALYZE wide;";
    let (pg, h) = start_logged(setup, "[engine]\nmin_partition_pages = 1\npartitions = 2\n");
    let c = h.connect().await;

    exec(&c, "SET helios.engine_partitions = 4").await;
    let (ran, got) = run(&h, &c, "/*+ engine */ SELECT count(*), sum(id) FROM wide").await;
    assert_eq!(ran, Ran::Federated);
    assert_eq!(
        got,
        vec![vec![Some("5000".into()), Some("12502500".into())]]
    );
    let copies = upstream_statements(&pg, "FROM \"public\".\"wide\"");
    assert_eq!(copies.len(), 4, "{copies:#?}");
    assert!(
        copies.iter().all(|s| s.contains("SET TRANSACTION SNAPSHOT")
            && s.contains("ctid")
            && s.contains("(FORMAT binary)")),
        "{copies:#?}"
    );
    // Only the column the statement reads.
    assert!(copies.iter().all(|s| !s.contains("\"pad\"")), "{copies:#?}");

    // One partition: one COPY, no ctid range; the filter and LIMIT pushed.
    exec(&c, "SET helios.engine_partitions = 1").await;
    let (ran, got) = run(
        &h,
        &c,
        "/*+ engine */ SELECT id FROM wide WHERE id BETWEEN 10 AND 12 ORDER BY id",
    )
    .await;
    assert_eq!(ran, Ran::Federated);
    assert_eq!(
        got,
        vec![
            vec![Some("10".into())],
            vec![Some("11".into())],
            vec![Some("12".into())]
        ]
    );
    // (DataFusion writes BETWEEN as two comparisons.)
    let copies = upstream_statements(&pg, "(\"id\" >= 10)");
    assert_eq!(copies.len(), 1, "{copies:#?}");
    assert!(
        copies[0].contains(
            "COPY (SELECT \"id\" FROM \"public\".\"wide\" WHERE (\"id\" >= 10) AND (\"id\" <= 12)) TO STDOUT"
        ),
        "{copies:#?}"
    );
    let (_, got) = run(&h, &c, "/*+ engine */ SELECT id, pad FROM wide LIMIT 3").await;
    assert_eq!(got.len(), 3);
    let copies = upstream_statements(&pg, "LIMIT 3)");
    assert_eq!(copies.len(), 1, "{copies:#?}");

    // The default comes from the config.
    exec(&c, "RESET helios.engine_partitions").await;
    assert_eq!(value(&c, "SHOW helios.engine_partitions").await, "2");
}

/// Statements a client pipelines (sent before the previous answer came)
/// are answered in order, each seeing what the ones before it did.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_statements_answer_in_order() {
    let (_pg, h) = start(ITEMS, "");
    let c = h.connect().await;
    let (a, b, w, d) = tokio::join!(
        rows(&c, "/*+ engine */ SELECT sum(id) FROM items"),
        rows(&c, "/*+ engine */ SELECT count(*) FROM items"),
        rows(&c, "INSERT INTO items VALUES (1000, 'late', 1)"),
        rows(&c, "/*+ engine */ SELECT max(id), count(*) FROM items"),
    );
    assert_eq!(a, vec![vec![Some("20100".into())]]);
    assert_eq!(b, vec![vec![Some("200".into())]]);
    assert!(w.is_empty());
    assert_eq!(d, vec![vec![Some("1000".into()), Some("201".into())]]);
    // Whether each ran in the engine or was relayed for being pipelined,
    // the answers are the ones above; at least the first ran in the engine.
    assert!(engine_log(&h).runs >= 1);
}

/// A session's temporary table is visible only on its own connection;
/// the scans run on others, so the statement must be relayed.
#[tokio::test(flavor = "multi_thread")]
async fn temporary_tables_are_answered() {
    let (_pg, h) = start(ITEMS, "");
    let c = h.connect().await;
    exec(
        &c,
        "CREATE TEMP TABLE mine AS SELECT generate_series(1, 10) AS x",
    )
    .await;
    let (ran, got) = run(&h, &c, "/*+ engine */ SELECT count(*), sum(x) FROM mine").await;
    assert_eq!(
        got,
        vec![vec![Some("10".into()), Some("55".into())]],
        "{ran:?}"
    );
    let (ran, got) = run(
        &h,
        &c,
        "/*+ engine */ SELECT count(*) FROM mine m JOIN items i ON i.id = m.x",
    )
    .await;
    assert_eq!(got, vec![vec![Some("10".into())]], "{ran:?}");
}
