//! Who sees what: roles and row-level security, search_path and TimeZone,
//! volatile functions, transactions, opting out.
//!
//! Each test first shows the statement *is* cached in the situation where
//! it may be, so "not shared" below cannot mean "never cached at all".

use crate::common::sqlstate;
use crate::support::*;

const Q3: &str = "SELECT name FROM items WHERE id = 3";

/// Two roles, one table with a policy: each sees only its own rows.
const RLS: &str = "CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; \
     CREATE TABLE notes (owner text NOT NULL, body text NOT NULL); \
     INSERT INTO notes VALUES ('alice', 'a1'), ('alice', 'a2'), ('bob', 'b1'); \
     ALTER TABLE notes ENABLE ROW LEVEL SECURITY; \
     CREATE POLICY own ON notes USING (owner = current_user); \
     GRANT SELECT ON notes TO alice, bob;";

const NOTES: &str = "SELECT string_agg(body, ',' ORDER BY body) FROM notes";

#[tokio::test(flavor = "multi_thread")]
async fn row_level_security_never_leaks_between_roles() {
    let (pg, h) = start_with(RLS, AUTO);
    let alice = crate::common::connect(&h.conn_str("alice")).await;
    let bob = crate::common::connect(&h.conn_str("bob")).await;
    // Alice's answer is cached for alice...
    assert_eq!(
        assert_cached(
            &pg,
            &alice,
            NOTES,
            "INSERT INTO notes VALUES ('alice', 'a3')"
        )
        .await,
        "a1,a2"
    );
    // ... and never served to bob, who asks the very same text.
    assert_eq!(one(&bob, NOTES).await, "b1");
    assert_eq!(one(&bob, NOTES).await, "b1");
    assert_eq!(one(&alice, NOTES).await, "a1,a2", "alice's entry is intact");
    // Both roles' entries are listed under the one statement shape.
    let row = caches(&alice)
        .await
        .into_iter()
        .find(|r| r.0 == NOTES)
        .expect("listed");
    assert_eq!(row.3, 2, "one entry per role: {row:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn set_role_and_reset_switch_what_a_session_sees() {
    let (_pg, h) = start_with(RLS, AUTO);
    let c = h.connect().await;
    exec(&c, "SET ROLE alice").await;
    assert_eq!(one(&c, NOTES).await, "a1,a2");
    assert_eq!(one(&c, NOTES).await, "a1,a2");
    exec(&c, "SET ROLE bob").await;
    assert_eq!(one(&c, NOTES).await, "b1");
    exec(&c, "SET SESSION AUTHORIZATION alice").await;
    assert_eq!(one(&c, NOTES).await, "a1,a2");
    // Back to the superuser, who bypasses the policy.
    exec(&c, "RESET SESSION AUTHORIZATION").await;
    assert_eq!(one(&c, NOTES).await, "a1,a2,b1");
    // Same for a role switch through set_config() in a query.
    assert_eq!(
        one(&c, "SELECT set_config('role', 'bob', false)").await,
        "bob"
    );
    assert_eq!(one(&c, NOTES).await, "b1");
    exec(&c, "RESET ROLE").await;
    assert_eq!(one(&c, NOTES).await, "a1,a2,b1");
    // A role without the privilege gets the upstream's error, not a hit.
    exec(&c, "CREATE ROLE carol; SET ROLE carol").await;
    let e = c.simple_query(NOTES).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42501"));
}

#[tokio::test(flavor = "multi_thread")]
async fn search_path_chooses_the_table_and_never_shares_entries() {
    let (pg, h) = start_with(
        "CREATE SCHEMA a; CREATE SCHEMA b; \
         CREATE TABLE a.t (v text); INSERT INTO a.t VALUES ('from a'); \
         CREATE TABLE b.t (v text); INSERT INTO b.t VALUES ('from b');",
        AUTO,
    );
    let (ca, cb) = (h.connect().await, h.connect().await);
    exec(&ca, "SET search_path = a").await;
    exec(&cb, "SET search_path = b").await;
    let q = "SELECT v FROM t";
    assert_eq!(
        assert_cached(&pg, &ca, q, "INSERT INTO a.t VALUES ('zz')").await,
        "from a"
    );
    assert_eq!(one(&cb, q).await, "from b");
    // Switching back and forth in one session follows the path too.
    exec(&ca, "SET search_path = b").await;
    assert_eq!(one(&ca, q).await, "from b");
    exec(&ca, "SET search_path = a").await;
    assert_eq!(one(&ca, q).await, "from a");
}

#[tokio::test(flavor = "multi_thread")]
async fn timezone_and_output_settings_never_share_entries() {
    let (pg, h) = start_with(
        "CREATE TABLE events (id int, at timestamptz, d date, f float8); \
         INSERT INTO events VALUES (1, '2024-03-01 12:00:00+00', '2024-03-01', 0.1::float8 + 0.2::float8);",
        AUTO,
    );
    let (utc, tokyo) = (h.connect().await, h.connect().await);
    exec(&utc, "SET TimeZone = 'UTC'").await;
    exec(&tokyo, "SET TimeZone = 'Asia/Tokyo'").await;
    let q = "SELECT at::text FROM events WHERE id = 1";
    assert_eq!(
        assert_cached(
            &pg,
            &utc,
            q,
            "INSERT INTO events VALUES (2, now(), now(), 1)"
        )
        .await,
        "2024-03-01 12:00:00+00"
    );
    assert_eq!(one(&tokyo, q).await, "2024-03-01 21:00:00+09");
    // DateStyle and extra_float_digits change the text of results too.
    let d = "SELECT d FROM events WHERE id = 1";
    let first = column(&utc, d).await;
    assert_eq!(first, vec![Some("2024-03-01".to_string())]);
    exec(&utc, "SET DateStyle = 'SQL, DMY'").await;
    assert_eq!(column(&utc, d).await, vec![Some("01/03/2024".to_string())]);
    exec(&utc, "SET DateStyle = 'ISO, MDY'").await;
    assert_eq!(column(&utc, d).await, vec![Some("2024-03-01".to_string())]);
    let f = "SELECT f FROM events WHERE id = 1";
    exec(&utc, "SET extra_float_digits = 1").await;
    assert_eq!(one(&utc, f).await, "0.30000000000000004");
    exec(&utc, "SET extra_float_digits = 0").await;
    assert_eq!(one(&utc, f).await, "0.3");
    exec(&utc, "RESET extra_float_digits").await;
    assert_eq!(one(&utc, f).await, "0.30000000000000004");
}

/// Statements whose answer depends on the moment, chance or a sequence.
#[tokio::test(flavor = "multi_thread")]
async fn volatile_and_time_dependent_statements_are_never_cached() {
    let (_pg, h) = start_with(
        "CREATE SEQUENCE seq; \
         CREATE FUNCTION bump() RETURNS bigint VOLATILE LANGUAGE sql AS 'SELECT nextval(''seq'')'; \
         CREATE FUNCTION peek() RETURNS bigint STABLE LANGUAGE sql AS 'SELECT last_value FROM seq'; \
         CREATE FUNCTION twice(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2'; \
         CREATE VIEW ticking AS SELECT id, bump() AS n FROM items;",
        AUTO,
    );
    let c = h.connect().await;
    // Each of these would repeat its first answer if it were cached.
    for q in [
        "SELECT clock_timestamp()::text",
        "SELECT random()::text",
        "SELECT now()::text FROM items WHERE id = 1",
        "SELECT 'now'::timestamptz::text",
        "SELECT nextval('seq')::text",
        "SELECT bump()::text FROM items WHERE id = 1",
        "SELECT n::text FROM ticking WHERE id = 1",
        "SELECT gen_random_uuid()::text",
    ] {
        let a = one(&c, q).await;
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = one(&c, q).await;
        assert_ne!(a, b, "{q} answered twice the same: cached?");
    }
    // STABLE is not enough: it may read anything (here a sequence).
    let p = "SELECT peek()::text FROM items WHERE id = 1";
    let before = one(&c, p).await;
    one(&c, "SELECT nextval('seq')").await;
    assert_ne!(one(&c, p).await, before, "a STABLE function was cached");
    // current_date and friends are refused by name, with no catalog look.
    let stats = caches(&c).await;
    for q in ["SELECT clock_timestamp()::text", "SELECT random()::text"] {
        assert!(
            stats.iter().all(|r| r.0 != q || r.1 == 0),
            "{q} hit: {stats:?}"
        );
    }
    // An IMMUTABLE function is fine.
    let imm = "SELECT twice(id) FROM items WHERE id = 4";
    assert_eq!(one(&c, imm).await, "8");
    assert_eq!(one(&c, imm).await, "8");
    assert_eq!(hits(&c, imm).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_tables_are_never_cached() {
    let (_pg, h) = start(AUTO);
    let c = h.connect().await;
    exec(
        &c,
        "CREATE TEMP TABLE scratch (v int); INSERT INTO scratch VALUES (1)",
    )
    .await;
    let q = "SELECT sum(v) FROM scratch";
    assert_eq!(one(&c, q).await, "1");
    assert_eq!(one(&c, q).await, "1");
    assert_eq!(hits(&c, q).await, 0);
    // A temp table shadowing a permanent one: still the session's own rows.
    exec(
        &c,
        "CREATE TEMP TABLE items (id int, name text); INSERT INTO items VALUES (3, 'temp')",
    )
    .await;
    assert_eq!(one(&c, Q3).await, "temp");
    let other = h.connect().await;
    assert_eq!(one(&other, Q3).await, "item 3");
    assert_eq!(one(&other, Q3).await, "item 3");
    assert_eq!(one(&c, Q3).await, "temp");
}

#[tokio::test(flavor = "multi_thread")]
async fn inside_a_transaction_the_session_sees_its_own_writes() {
    let (_pg, h) = start(AUTO);
    let c = h.connect().await;
    assert_eq!(one(&c, Q3).await, "item 3");
    assert_eq!(one(&c, Q3).await, "item 3");
    assert_eq!(hits(&c, Q3).await, 1);
    exec(&c, "BEGIN; UPDATE items SET name = 'mine' WHERE id = 3").await;
    assert_eq!(one(&c, Q3).await, "mine");
    // Reads inside the block are relayed, not counted as hits or stored.
    let other = h.connect().await;
    assert_eq!(one(&other, Q3).await, "item 3");
    exec(
        &c,
        "SAVEPOINT s; UPDATE items SET name = 'inner' WHERE id = 3",
    )
    .await;
    assert_eq!(one(&c, Q3).await, "inner");
    exec(&c, "ROLLBACK TO SAVEPOINT s").await;
    assert_eq!(one(&c, Q3).await, "mine");
    exec(&c, "COMMIT").await;
    assert_eq!(one(&c, Q3).await, "mine");
    assert_eq!(one(&other, Q3).await, "mine");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_can_opt_out() {
    let (pg, h) = start(AUTO);
    let c = h.connect().await;
    assert_cached(&pg, &c, Q3, "UPDATE items SET name = 'behind' WHERE id = 3").await;
    // /*+ no_cache */ reads the upstream.
    assert_eq!(one(&c, &format!("/*+ no_cache */ {Q3}")).await, "behind");
    // SET helios.cache = off: this session reads the upstream...
    exec(&c, "SET helios.cache = off").await;
    assert_eq!(one(&c, "SHOW helios.cache").await, "off");
    assert_eq!(one(&c, Q3).await, "behind");
    pg.psql("UPDATE items SET name = 'behind 2' WHERE id = 3");
    assert_eq!(one(&c, Q3).await, "behind 2");
    // ... while others still share the cache.
    let other = h.connect().await;
    assert_eq!(one(&other, Q3).await, "item 3");
    exec(&c, "RESET helios.cache").await;
    assert_eq!(one(&c, Q3).await, "item 3");
    // SET LOCAL lasts for one transaction.
    exec(&c, "BEGIN; SET LOCAL helios.cache = off; COMMIT").await;
    assert_eq!(one(&c, Q3).await, "item 3");
}

#[tokio::test(flavor = "multi_thread")]
async fn explicit_mode_caches_hinted_and_ruled_statements_only() {
    let (pg, h) =
        start("[cache]\nmode = \"explicit\"\n[[cache.rules]]\ntable = \"items\"\nttl = \"1m\"\n");
    let c = h.connect().await;
    pg.psql("CREATE TABLE other (id int, v text); INSERT INTO other VALUES (1, 'old')");
    // items is named by a rule.
    assert_cached(&pg, &c, Q3, "UPDATE items SET name = 'behind' WHERE id = 3").await;
    // other is not: every read goes upstream...
    let q = "SELECT v FROM other WHERE id = 1";
    assert_eq!(one(&c, q).await, "old");
    pg.psql("UPDATE other SET v = 'new'");
    assert_eq!(one(&c, q).await, "new");
    // ... unless hinted.
    let hinted = "/*+ cache(ttl=30s) */ SELECT v FROM other WHERE id = 1";
    assert_cached(&pg, &c, hinted, "UPDATE other SET v = 'newer'").await;
    assert_eq!(one(&c, q).await, "newer");
}

#[tokio::test(flavor = "multi_thread")]
async fn mode_off_never_caches() {
    let (pg, h) = start("[cache]\nmode = \"off\"\n");
    let c = h.connect().await;
    let hinted = format!("/*+ cache */ {Q3}");
    assert_eq!(one(&c, &hinted).await, "item 3");
    pg.psql("UPDATE items SET name = 'behind' WHERE id = 3");
    assert_eq!(one(&c, &hinted).await, "behind");
    assert_eq!(one(&c, Q3).await, "behind");
}
