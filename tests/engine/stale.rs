//! When an accelerated copy stops answering: a write through Helios —
//! naming the table or reaching it through a function, a trigger, a view,
//! DDL — makes it stale at once, so no answer shows the old rows; the
//! copy is reloaded and used again.

use std::time::{Duration, Instant};

use crate::accelerate::{pair, ready, state_of, ITEMS, SUM};
use crate::support::*;

/// A write through Helios makes the copy stale at once: answers never show
/// the old value, and the copy is reloaded and used again.
#[tokio::test(flavor = "multi_thread")]
async fn writes_through_helios_make_the_copy_stale_until_reloaded() {
    let (_pg, h) = start(ITEMS, "");
    let c = h.connect().await;
    let writer = h.connect().await;
    exec(&c, "CREATE HELIOS ACCELERATION ON items").await;
    let loaded = ready(&c, "public.items", None).await;
    assert_eq!(loaded.refresh, None);
    let hinted = format!("/*+ engine */ {SUM}");
    assert_eq!(
        run(&h, &c, &hinted).await,
        (Ran::Accelerated, pair("200", "30150.00"))
    );

    for (round, (write, want)) in [
        ("UPDATE items SET price = price + 1000 WHERE id = 1", pair("200", "31150.00")),
        (
            "BEGIN; INSERT INTO items VALUES (201, 'new', 1); DELETE FROM items WHERE id = 2; COMMIT",
            pair("200", "31148.00"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let before = state_of(&c, "public.items").await.unwrap().last_refresh;
        exec(&writer, write).await;
        // Not fresh any more (unless already reloaded since).
        let a = state_of(&c, "public.items").await.unwrap();
        assert!(
            matches!(a.state.as_str(), "stale" | "refreshing")
                || (a.state == "ready" && a.last_refresh != before),
            "round {round}: {a:?}"
        );
        // Every answer from now on is the new one, by scan or by a reload.
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut routes = Vec::new();
        loop {
            let (ran, got) = run(&h, &c, &hinted).await;
            assert_eq!(got, want, "round {round}: {ran:?} after {write}");
            routes.push(ran);
            if ran == Ran::Accelerated {
                break;
            }
            assert!(Instant::now() < deadline, "never reloaded: {routes:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let a = ready(&c, "public.items", before.as_deref()).await;
        assert_eq!(a.rows.as_deref(), Some("200"));
    }
}

/// Writes that reach the table without the statement naming it, through
/// Helios: the copy must not answer with the old rows afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn indirect_writes_through_helios_make_the_copy_stale() {
    let (pg, h) = start(
        &format!(
            "{ITEMS} CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS \
               'UPDATE items SET price = price + 1 WHERE id = 1 RETURNING 1'; \
             CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS \
               'BEGIN UPDATE items SET price = price + 10 WHERE id = 2; RETURN NEW; END'; \
             CREATE TRIGGER touch AFTER INSERT ON other FOR EACH ROW EXECUTE FUNCTION touch(); \
             CREATE VIEW cheap AS SELECT * FROM items WHERE price < 10;"
        ),
        "",
    );
    let c = h.connect().await;
    let direct = pg.connect().await;
    exec(&c, "CREATE HELIOS ACCELERATION ON items").await;
    ready(&c, "public.items", None).await;
    let sql = "SELECT count(*), sum(price), max(name) FROM items";
    let hinted = format!("/*+ engine */ {sql}");
    assert_eq!(run(&h, &c, &hinted).await.0, Ran::Accelerated);
    for write in [
        "SELECT bump()",
        "INSERT INTO other VALUES (3)",
        "UPDATE cheap SET price = price + 100 WHERE id = 3",
        "ALTER TABLE items ADD COLUMN extra int DEFAULT 7",
        "TRUNCATE items",
    ] {
        exec(&c, write).await;
        let want = rows(&direct, sql).await;
        let (ran, got) = run(&h, &c, &hinted).await;
        assert_eq!(got, want, "after {write} ({ran:?})");
        let a = ready(&c, "public.items", None).await;
        let (ran, got) = run(&h, &c, &hinted).await;
        assert_eq!(
            (ran, got),
            (Ran::Accelerated, want),
            "reloaded after {write}"
        );
        assert_eq!(
            a.rows,
            rows(&direct, "SELECT count(*) FROM items").await[0][0]
        );
    }
    // The new column is in the reloaded copy.
    exec(&c, "INSERT INTO items VALUES (1, 'back', 2)").await;
    ready(&c, "public.items", None).await;
    let (ran, got) = run(&h, &c, "/*+ engine */ SELECT * FROM items").await;
    assert_eq!(
        got,
        vec![vec![
            Some("1".into()),
            Some("back".into()),
            Some("2.00".into()),
            Some("7".into())
        ]],
        "{ran:?}"
    );
}

/// With the result cache off, Helios still sees its own writes: an
/// accelerated copy must not answer with rows a write through Helios
/// changed.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_cache_off_no_table_is_accelerated() {
    // Without the cache's write tracking a copy could go stale unseen, so
    // Helios keeps none: CREATE says why, and the statement still answers.
    let (_pg, h) = start(ITEMS, "[cache]\nmode = \"off\"\n");
    let c = h.connect().await;
    assert_eq!(
        sqlstate_of(&c, "CREATE HELIOS ACCELERATION ON items").await,
        "55000"
    );
    exec(&c, "UPDATE items SET price = price + 1000 WHERE id = 1").await;
    let (ran, got) = run(&h, &c, &format!("/*+ engine */ {SUM}")).await;
    assert_eq!((ran, got), (Ran::Federated, pair("200", "31150.00")));
}
