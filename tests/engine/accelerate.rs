//! Accelerated tables: Arrow copies of upstream tables in Helios's memory.
//!
//! A copy answers when it is fresh: `route="accelerated"` in the log, and
//! — the crisp signal — a change made on the upstream behind Helios's
//! back does not show until the copy is refreshed. (Writes through Helios
//! make it stale: `stale`.)

use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::common::{Helios, PgServer};
use crate::support::*;

pub const ITEMS: &str =
    "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2)); \
     INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 200) g; \
     CREATE TABLE other (id int); INSERT INTO other VALUES (1), (2);";

pub const SUM: &str = "SELECT count(*), sum(price) FROM items";

pub fn pair(count: &str, sum: &str) -> Vec<Vec<Option<String>>> {
    vec![vec![Some(count.to_string()), Some(sum.to_string())]]
}

/// A row of `SHOW HELIOS ACCELERATIONS`, by column name.
#[derive(Debug, Clone)]
pub struct Accel {
    pub state: String,
    pub rows: Option<String>,
    pub bytes: Option<String>,
    pub partitions: Option<String>,
    pub refresh: Option<String>,
    pub last_refresh: Option<String>,
    pub load_ms: Option<String>,
}

async fn show(c: &Client) -> Vec<(String, Accel)> {
    let mut out = Vec::new();
    for m in c.simple_query("SHOW HELIOS ACCELERATIONS").await.unwrap() {
        if let SimpleQueryMessage::Row(r) = m {
            let names: Vec<&str> = r.columns().iter().map(|c| c.name()).collect();
            assert_eq!(
                names,
                [
                    "table",
                    "database",
                    "state",
                    "rows",
                    "bytes",
                    "partitions",
                    "refresh",
                    "last_refresh",
                    "load_ms",
                    "staleness_s"
                ]
            );
            let get = |n: &str| r.get(n).map(str::to_string);
            assert_eq!(get("database").as_deref(), Some("postgres"));
            out.push((
                get("table").unwrap(),
                Accel {
                    state: get("state").unwrap(),
                    rows: get("rows"),
                    bytes: get("bytes"),
                    partitions: get("partitions"),
                    refresh: get("refresh"),
                    last_refresh: get("last_refresh"),
                    load_ms: get("load_ms"),
                },
            ));
        }
    }
    out
}

pub async fn state_of(c: &Client, table: &str) -> Option<Accel> {
    show(c)
        .await
        .into_iter()
        .find(|(t, _)| t == table)
        .map(|x| x.1)
}

/// Wait until `table`'s copy is ready (and, with `after`, loaded again
/// since that `last_refresh`).
pub async fn ready(c: &Client, table: &str, after: Option<&str>) -> Accel {
    eventually(&format!("{table} ready"), 15, || async {
        let a = state_of(c, table).await?;
        assert!(!a.state.starts_with("failed"), "{table}: {a:?}");
        (a.state == "ready" && (after.is_none() || a.last_refresh.as_deref() != after)).then_some(a)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn create_show_query_refresh_and_drop() {
    let (pg, h) = start(ITEMS, "");
    let c = h.connect().await;
    assert!(show(&c).await.is_empty());

    exec(&c, "CREATE HELIOS ACCELERATION ON items REFRESH 60s").await;
    let a = ready(&c, "public.items", None).await;
    assert_eq!(a.rows.as_deref(), Some("200"));
    assert_eq!(a.refresh.as_deref(), Some("1m"));
    assert!(a.bytes.unwrap().parse::<u64>().unwrap() > 0);
    assert!(a.partitions.unwrap().parse::<u64>().unwrap() >= 1);
    assert!(a.last_refresh.is_some() && a.load_ms.is_some());

    // Hinted statements read the copy; the upstream is not asked.
    assert_eq!(
        run(&h, &c, &format!("/*+ engine */ {SUM}")).await,
        (Ran::Accelerated, pair("200", "30150.00"))
    );
    pg.psql("UPDATE items SET price = 0 WHERE id = 1");
    assert_eq!(
        run(&h, &c, &format!("/*+ engine */ {SUM}")).await,
        (Ran::Accelerated, pair("200", "30150.00")),
        "a change behind Helios's back does not show in the copy"
    );
    // Joined with a table that is not accelerated: that one is scanned.
    assert_eq!(
        run(
            &h,
            &c,
            "/*+ engine */ SELECT i.name FROM items i JOIN other o ON o.id = i.id ORDER BY 1"
        )
        .await,
        (
            Ran::Federated,
            vec![vec![Some("item 1".into())], vec![Some("item 2".into())]]
        )
    );
    // Without the hint (engine.auto is off) PostgreSQL answers.
    assert_eq!(
        run(&h, &c, SUM).await,
        (Ran::Relayed, pair("200", "30148.50"))
    );
    // REFRESH reloads it.
    let before = a.last_refresh.clone();
    exec(&c, "REFRESH HELIOS ACCELERATION items").await;
    ready(&c, "public.items", before.as_deref()).await;
    assert_eq!(
        run(&h, &c, &format!("/*+ engine */ {SUM}")).await,
        (Ran::Accelerated, pair("200", "30148.50"))
    );

    // Errors, with PostgreSQL's SQLSTATEs.
    assert_eq!(
        sqlstate_of(&c, "CREATE HELIOS ACCELERATION ON items").await,
        "42710"
    );
    assert_eq!(
        sqlstate_of(&c, "CREATE HELIOS ACCELERATION ON public.ITEMS").await,
        "42710"
    );
    assert_eq!(
        sqlstate_of(&c, "REFRESH HELIOS ACCELERATION nothing").await,
        "42704"
    );
    assert_eq!(
        sqlstate_of(&c, "DROP HELIOS ACCELERATION ON nothing").await,
        "42704"
    );
    assert_eq!(
        sqlstate_of(&c, "CREATE HELIOS ACCELERATION ON other REFRESH never").await,
        "42601"
    );
    assert_eq!(show(&c).await.len(), 1);

    exec(&c, "DROP HELIOS ACCELERATION ON items").await;
    assert!(show(&c).await.is_empty());
    assert_eq!(
        sqlstate_of(&c, "DROP HELIOS ACCELERATION items").await,
        "42704"
    );
    assert_eq!(
        run(&h, &c, &format!("/*+ engine */ {SUM}")).await,
        (Ran::Federated, pair("200", "30148.50"))
    );

    // A table that does not exist: the load fails and says why.
    exec(&c, "CREATE HELIOS ACCELERATION ON missing").await;
    let state = eventually("the load to fail", 15, || async {
        state_of(&c, "public.missing")
            .await
            .map(|a| a.state)
            .filter(|s| s.starts_with("failed:"))
    })
    .await;
    assert!(state.contains("does not exist"), "{state}");
}

/// The configured accelerations of `[[engine.accelerate]]`, with
/// `engine.auto`: analytical statements over them run from the copy
/// without a hint.
fn auto_helios(pg: &PgServer, extra: &str) -> Helios {
    Helios::start(
        pg,
        &format!("[engine]\nauto = true\n{extra}\n[[engine.accelerate]]\ntable = \"items\"\n"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_routes_analytics_over_accelerated_tables() {
    let pg = PgServer::start();
    pg.psql(ITEMS);
    let h = auto_helios(&pg, "");
    let (c, notices) = connect_noticed(&h.conn_str("postgres")).await;
    let a = ready(&c, "public.items", None).await;
    assert_eq!(a.rows.as_deref(), Some("200"));

    assert_eq!(
        run(&h, &c, SUM).await,
        (Ran::Accelerated, pair("200", "30150.00"))
    );
    // The copy answered: a change behind Helios's back does not show...
    pg.psql("UPDATE items SET price = 0 WHERE id = 200");
    assert_eq!(
        run(&h, &c, SUM).await,
        (Ran::Accelerated, pair("200", "30150.00"))
    );
    // ... until the copy is refreshed.
    exec(&c, "REFRESH HELIOS ACCELERATION items").await;
    ready(&c, "public.items", a.last_refresh.as_deref()).await;
    assert_eq!(
        run(&h, &c, SUM).await,
        (Ran::Accelerated, pair("200", "29850.00"))
    );

    // Not analytical, other tables, transactions, opting out: relayed.
    for sql in [
        "SELECT name FROM items WHERE id = 3",
        "SELECT count(*) FROM items i JOIN other o ON o.id = i.id",
        "/*+ no_engine */ SELECT count(*), sum(price) FROM items",
    ] {
        assert_eq!(run(&h, &c, sql).await.0, Ran::Relayed, "{sql}");
    }
    exec(&c, "BEGIN").await;
    assert_eq!(
        run(&h, &c, SUM).await,
        (Ran::Relayed, pair("200", "29850.00"))
    );
    exec(&c, "COMMIT").await;

    // Stale after a write through Helios: relayed (no NOTICE: nobody
    // asked), with the new value; then the reloaded copy answers again.
    exec(&c, "DELETE FROM items WHERE id = 1").await;
    let (ran, got) = run(&h, &c, SUM).await;
    assert_eq!(got, pair("199", "29848.50"), "{ran:?}");
    assert!(matches!(ran, Ran::Declined | Ran::Accelerated), "{ran:?}");
    eventually("the reloaded copy to answer", 15, || async {
        let (ran, got) = run(&h, &c, SUM).await;
        assert_eq!(got, pair("199", "29848.50"));
        (ran == Ran::Accelerated).then_some(())
    })
    .await;
    assert_eq!(take(&notices), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_over_the_memory_limit_fails_and_queries_still_answer() {
    let pg = PgServer::start();
    pg.psql(ITEMS);
    let h = auto_helios(&pg, "memory_limit = \"1kB\"");
    let (c, notices) = connect_noticed(&h.conn_str("postgres")).await;
    let state = eventually("the load to fail", 15, || async {
        let a = state_of(&c, "public.items").await?;
        assert_ne!(a.state, "ready");
        a.state.starts_with("failed:").then_some(a.state)
    })
    .await;
    assert!(state.contains("engine.memory_limit"), "{state}");

    // engine.auto has no copy to use: PostgreSQL answers, silently.
    assert_eq!(
        run(&h, &c, SUM).await,
        (Ran::Declined, pair("200", "30150.00"))
    );
    assert_eq!(take(&notices), Vec::<String>::new());
    // Asked for, the engine scans the upstream.
    assert_eq!(
        run(&h, &c, &format!("/*+ engine */ {SUM}")).await,
        (Ran::Federated, pair("200", "30150.00"))
    );
    // The failed load holds no memory: a two-row table fits under 1 kB.
    exec(&c, "CREATE HELIOS ACCELERATION ON other").await;
    let a = ready(&c, "public.other", None).await;
    assert!(a.bytes.unwrap().parse::<u64>().unwrap() <= 1024);
    assert_eq!(
        run(&h, &c, "/*+ engine */ SELECT sum(id) FROM other").await,
        (Ran::Accelerated, vec![vec![Some("3".into())]])
    );
    assert!(state_of(&c, "public.items")
        .await
        .unwrap()
        .state
        .starts_with("failed:"));
}

/// Configured accelerations load as the `[upstream] url`'s user: without
/// one, Helios says so at startup.
#[tokio::test(flavor = "multi_thread")]
async fn configured_accelerations_need_a_user_in_the_upstream_url() {
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("helios.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n[upstream]\nurl = \"postgres://127.0.0.1:{}/postgres\"\n\
             [admin]\nenabled = false\n[[engine.accelerate]]\ntable = \"items\"\n",
            crate::common::free_port(),
            pg.port
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_helios"))
        .arg("--config")
        .arg(&config)
        .env_remove("HELIOS_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("helios started without a user to load accelerations as");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("[upstream] url needs a user"), "{err}");
}
