//! Who sees what through the engine: scans log in as the client, so
//! table and column privileges and row-level security are PostgreSQL's;
//! an error from a scan keeps PostgreSQL's SQLSTATE; accelerated copies
//! are read only by roles that may read the whole table.

use crate::common::{connect, PgServer};
use crate::support::*;

/// alice and bob see their own notes (2000 and 1000 of 3000); postgres,
/// a superuser, sees all. `secret` is alice's to read; nopriv reads
/// nothing but `open`; carol may read only `secret.id`.
const ROLES: &str = "CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; \
     CREATE ROLE nopriv LOGIN; CREATE ROLE carol LOGIN; \
     CREATE TABLE notes (id int, owner text NOT NULL, body text NOT NULL); \
     INSERT INTO notes SELECT g, CASE WHEN g % 3 = 0 THEN 'bob' ELSE 'alice' END, repeat('n', 100) || g \
       FROM generate_series(1, 3000) g; \
     ALTER TABLE notes ENABLE ROW LEVEL SECURITY; \
     CREATE POLICY own ON notes USING (owner = current_user); \
     GRANT SELECT ON notes TO alice, bob; \
     CREATE TABLE secret (id int, v text); \
     INSERT INTO secret SELECT g, 'v' || g FROM generate_series(1, 10) g; \
     GRANT SELECT ON secret TO alice; GRANT SELECT (id) ON secret TO carol; \
     CREATE TABLE open (id int); INSERT INTO open VALUES (1), (2), (3); \
     GRANT SELECT ON open TO PUBLIC; ANALYZE;";

/// Several partitions per scan, so each runs the role's checks.
const SPLIT: &str = "[engine]\nmin_partition_pages = 1\npartitions = 3\n";

fn direct(pg: &PgServer, user: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres",
        pg.port
    )
}

const BY_OWNER: &str =
    "SELECT owner, count(*), min(id), max(id) FROM notes GROUP BY owner ORDER BY owner";

#[tokio::test(flavor = "multi_thread")]
async fn row_level_security_applies_to_each_role() {
    let (pg, h) = start(ROLES, SPLIT);
    for (user, count) in [("alice", "2000"), ("bob", "1000"), ("postgres", "3000")] {
        let c = connect(&h.conn_str(user)).await;
        let d = connect(&direct(&pg, user)).await;
        let (ran, got) = run(&h, &c, "/*+ engine */ SELECT count(*) FROM notes").await;
        assert_eq!(
            (ran, got),
            (Ran::Federated, vec![vec![Some(count.to_string())]]),
            "{user}"
        );
        let (ran, got) = run(&h, &c, &format!("/*+ engine */ {BY_OWNER}")).await;
        assert_eq!(ran, Ran::Federated, "{user}");
        assert_eq!(got, rows(&d, BY_OWNER).await, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_privileges_fail_with_postgres_sqlstate() {
    let (pg, h) = start(ROLES, SPLIT);
    let c = connect(&h.conn_str("nopriv")).await;
    let d = connect(&direct(&pg, "nopriv")).await;
    let sql = "SELECT count(*), max(v) FROM secret";
    assert_eq!(sqlstate_of(&d, sql).await, "42501");
    // The scan's COPY is refused; its error reaches the client as is.
    assert_eq!(
        run_err(&h, &c, &format!("/*+ engine */ {sql}")).await,
        (Ran::Federated, "42501".to_string())
    );
    let e = c
        .simple_query(&format!("/*+ engine */ {sql}"))
        .await
        .unwrap_err();
    let msg = e.as_db_error().map(|d| d.message().to_string());
    assert!(
        msg.as_deref()
            .is_some_and(|m| m.contains("permission denied for table secret")),
        "{msg:?}"
    );
    // The session carries on, in and out of the engine.
    assert_eq!(
        run(&h, &c, "/*+ engine */ SELECT sum(id) FROM open").await,
        (Ran::Federated, vec![vec![Some("6".into())]])
    );
    exec(&c, "BEGIN; SELECT 1; COMMIT").await;
    // A join with a readable table fails the same way.
    assert_eq!(
        run_err(
            &h,
            &c,
            "/*+ engine */ SELECT count(*) FROM open o JOIN secret s ON s.id = o.id"
        )
        .await,
        (Ran::Federated, "42501".to_string())
    );

    // Column privileges: carol may read secret.id, not secret.v.
    let c = connect(&h.conn_str("carol")).await;
    let d = connect(&direct(&pg, "carol")).await;
    for sql in ["SELECT sum(id) FROM secret", "SELECT count(*) FROM secret"] {
        let (ran, got) = run(&h, &c, &format!("/*+ engine */ {sql}")).await;
        assert_eq!(ran, Ran::Federated, "{sql}");
        assert_eq!(got, rows(&d, sql).await, "{sql}");
    }
    assert_eq!(sqlstate_of(&d, "SELECT max(v) FROM secret").await, "42501");
    assert_eq!(
        run_err(&h, &c, "/*+ engine */ SELECT max(v) FROM secret").await,
        (Ran::Federated, "42501".to_string())
    );
}

/// `SET ROLE` changes who the statement runs as in PostgreSQL; a scan on
/// a connection of its own must run as that role too, not as the login.
#[tokio::test(flavor = "multi_thread")]
async fn set_role_is_honoured_by_the_scans() {
    let (pg, h) = start(ROLES, SPLIT);
    let c = h.connect().await;
    let d = pg.connect().await;
    for set in [
        "SET ROLE alice",
        "SET ROLE bob",
        "SET SESSION AUTHORIZATION alice",
    ] {
        exec(&c, set).await;
        exec(&d, set).await;
        let want = rows(&d, BY_OWNER).await;
        let (ran, got) = run(&h, &c, &format!("/*+ engine */ {BY_OWNER}")).await;
        assert_eq!((ran, got), (Ran::Federated, want), "after {set}");
        exec(&c, "RESET SESSION AUTHORIZATION; RESET ROLE").await;
        exec(&d, "RESET SESSION AUTHORIZATION; RESET ROLE").await;
    }
    assert_eq!(
        run(&h, &c, "/*+ engine */ SELECT count(*) FROM notes").await,
        (Ran::Federated, vec![vec![Some("3000".into())]]),
        "back to postgres"
    );
    exec(&c, "SET ROLE nopriv").await;
    assert_eq!(
        run_err(&h, &c, "/*+ engine */ SELECT count(*) FROM secret").await,
        (Ran::Federated, "42501".to_string())
    );
    // SET LOCAL ROLE, in a transaction, ends with it; a statement after
    // it runs as the login again.
    exec(&c, "RESET ROLE; BEGIN; SET LOCAL ROLE bob; COMMIT").await;
    assert_eq!(
        run(&h, &c, "/*+ engine */ SELECT count(*) FROM notes").await,
        (Ran::Federated, vec![vec![Some("3000".into())]])
    );
}

fn accel_state(rows: &[Vec<Option<String>>], table: &str) -> Option<(String, Option<String>)> {
    rows.iter()
        .find(|r| r[0].as_deref() == Some(table))
        .map(|r| (r[2].clone().unwrap_or_default(), r[3].clone()))
}

async fn wait_ready(c: &tokio_postgres::Client, table: &str) -> String {
    eventually(&format!("{table} to be ready"), 15, || async {
        let all = rows(c, "SHOW HELIOS ACCELERATIONS").await;
        match accel_state(&all, table) {
            Some((state, rows)) if state == "ready" => rows,
            Some((state, _)) if state.starts_with("failed") => panic!("{table}: {state}"),
            _ => None,
        }
    })
    .await
}

/// A copy loaded by a superuser holds every row: a role that row-level
/// security limits never reads it, and gets its own rows by scan.
#[tokio::test(flavor = "multi_thread")]
async fn accelerated_copies_are_not_read_by_limited_roles() {
    let (_pg, h) = start(ROLES, SPLIT);
    let admin = h.connect().await;
    exec(&admin, "CREATE HELIOS ACCELERATION ON notes").await;
    exec(&admin, "CREATE HELIOS ACCELERATION ON secret").await;
    assert_eq!(wait_ready(&admin, "public.notes").await, "3000");
    wait_ready(&admin, "public.secret").await;
    let sql = "/*+ engine */ SELECT count(*) FROM notes";
    assert_eq!(
        run(&h, &admin, sql).await,
        (Ran::Accelerated, vec![vec![Some("3000".into())]])
    );
    let alice = connect(&h.conn_str("alice")).await;
    assert_eq!(
        run(&h, &alice, sql).await,
        (Ran::Federated, vec![vec![Some("2000".into())]])
    );
    // Without the privilege, the copy does not answer either.
    let nopriv = connect(&h.conn_str("nopriv")).await;
    assert_eq!(
        run_err(&h, &nopriv, "/*+ engine */ SELECT count(*) FROM secret").await,
        (Ran::Federated, "42501".to_string())
    );
    assert_eq!(
        run(&h, &alice, "/*+ engine */ SELECT count(*) FROM secret").await,
        (Ran::Accelerated, vec![vec![Some("10".into())]])
    );
}

/// A copy is loaded as the role that created it. Created by a role that
/// row-level security limits, it holds only that role's rows, and must
/// not stand in for the whole table for anyone else.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_loaded_by_a_limited_role_does_not_answer_for_others() {
    let (_pg, h) = start(ROLES, SPLIT);
    let alice = connect(&h.conn_str("alice")).await;
    exec(&alice, "CREATE HELIOS ACCELERATION ON notes").await;
    // Alice sees 2,000 of the 3,000 rows: a copy others would read must
    // hold every row, so hers is refused, and says why.
    let state = eventually("the load to fail", 15, || async {
        let all = rows(&alice, "SHOW HELIOS ACCELERATIONS").await;
        match accel_state(&all, "public.notes") {
            Some((state, _)) if state.starts_with("failed") => Some(state),
            _ => None,
        }
    })
    .await;
    assert!(state.contains("alice cannot read all of"), "{state}");
    let admin = h.connect().await;
    let (ran, got) = run(&h, &admin, "/*+ engine */ SELECT count(*) FROM notes").await;
    assert_eq!(
        (ran, got),
        (Ran::Federated, vec![vec![Some("3000".into())]])
    );
    let bob = connect(&h.conn_str("bob")).await;
    let (ran, got) = run(&h, &bob, "/*+ engine */ SELECT count(*) FROM notes").await;
    assert_eq!(
        (ran, got),
        (Ran::Federated, vec![vec![Some("1000".into())]])
    );
}

/// Names resolve through the session's search_path, as PostgreSQL's.
#[tokio::test(flavor = "multi_thread")]
async fn names_resolve_through_the_search_path() {
    let (_pg, h) = start(
        "CREATE TABLE open (id int); INSERT INTO open VALUES (1); \
         CREATE SCHEMA other; CREATE TABLE other.open (id int); \
         INSERT INTO other.open VALUES (10), (20);",
        "",
    );
    let c = h.connect().await;
    let sql = "/*+ engine */ SELECT sum(id) FROM open";
    assert_eq!(
        run(&h, &c, sql).await,
        (Ran::Federated, vec![vec![Some("1".into())]])
    );
    exec(&c, "SET search_path = other, public").await;
    assert_eq!(
        run(&h, &c, sql).await,
        (Ran::Federated, vec![vec![Some("30".into())]])
    );
    assert_eq!(
        run(
            &h,
            &c,
            "/*+ engine */ SELECT a.id, b.id FROM public.open a, other.open b ORDER BY b.id"
        )
        .await
        .1,
        vec![
            vec![Some("1".into()), Some("10".into())],
            vec![Some("1".into()), Some("20".into())]
        ]
    );
}
