//! The engine under concurrent writes and cancels: every partition of a
//! scan reads the one snapshot the session exported, and a cancel request
//! stops a running engine statement.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{sqlstate, NoTls};
use crate::support::*;

/// 50,000 rows in 100 accounts (500 each), each holding 10: the total is
/// 500,000 whatever transfers between accounts happen.
const LEDGER: &str =
    "CREATE TABLE ledger (id bigserial PRIMARY KEY, acct int NOT NULL, v int NOT NULL); \
     INSERT INTO ledger (acct, v) SELECT g % 100, 10 FROM generate_series(1, 50000) g; \
     ANALYZE ledger;";

/// While another connection commits inserts of 1,000 rows (v = 0) and
/// transfers that rewrite whole accounts (new row versions all over the
/// table), the engine's count over 4 partitions is always a multiple of
/// 1,000 and the total never moves: all partitions saw one commit point.
#[tokio::test(flavor = "multi_thread")]
async fn all_partitions_read_one_snapshot_under_concurrent_writes() {
    let (pg, h) = start_logged(LEDGER, "[engine]\nmin_partition_pages = 1\n");
    let c = h.connect().await;
    exec(&c, "SET helios.engine_partitions = 4").await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let w = pg.connect().await;
        tokio::spawn(async move {
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let (a, b) = (n % 100, (n * 7 + 3) % 100);
                w.batch_execute(&format!(
                    "INSERT INTO ledger (acct, v) SELECT g % 100, 0 FROM generate_series(1, 1000) g; \
                     BEGIN; UPDATE ledger SET v = v + 1 WHERE acct = {a}; \
                     UPDATE ledger SET v = v - 1 WHERE acct = {b}; COMMIT;"
                ))
                .await
                .expect("the writer's transaction");
                n += 1;
            }
            n
        })
    };

    let mut counts = Vec::new();
    for _ in 0..15 {
        let (ran, got) = run(
            &h,
            &c,
            "/*+ engine */ SELECT count(*), sum(v), count(DISTINCT id) FROM ledger",
        )
        .await;
        assert_eq!(ran, Ran::Federated);
        let count: u64 = got[0][0].as_deref().unwrap().parse().unwrap();
        assert_eq!(count % 1000, 0, "a count between commits: {got:?}");
        assert_eq!(
            got[0][1].as_deref(),
            Some("500000"),
            "a total between commits: {got:?}"
        );
        assert_eq!(
            got[0][2].as_deref().map(|d| d.parse::<u64>().unwrap()),
            Some(count),
            "a row seen twice: {got:?}"
        );
        counts.push(count);
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.await.unwrap();
    assert!(rounds >= 2, "the writer hardly ran: {rounds}");
    counts.dedup();
    assert!(
        counts.len() >= 2,
        "the reads should have seen the writer's commits: {counts:?}"
    );

    // Each read ran as 4 COPYs over ctid ranges in one imported snapshot.
    let copies = upstream_statements(&pg, "FROM \"public\".\"ledger\"");
    assert!(copies.len() >= 60, "{} COPYs", copies.len());
    assert!(
        copies
            .iter()
            .all(|s| s.contains("SET TRANSACTION SNAPSHOT") && s.contains("ctid")),
        "{:#?}",
        &copies[..4]
    );

    // Quiet now: the engine and PostgreSQL agree.
    let sql = "SELECT count(*), sum(v), min(v), max(v) FROM ledger";
    assert_eq!(
        run(&h, &c, &format!("/*+ engine */ {sql}")).await.1,
        rows(&pg.connect().await, sql).await
    );
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 here.
    let ticks = f[11] + f[12];
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_engine_statement_stops_and_the_session_goes_on() {
    let (_pg, h) = start(
        "CREATE TABLE big (x int); INSERT INTO big SELECT g FROM generate_series(1, 200000) g; \
         CREATE TABLE mid (x int); INSERT INTO mid SELECT g FROM generate_series(1, 20000) g; ANALYZE;",
        "",
    );
    let c = h.connect().await;
    // 4 billion pairs: far longer than the test waits, in steps of one
    // batch against the smaller side (a cancel takes effect between steps).
    let slow = "/*+ engine */ SELECT count(*) FROM big a, mid b WHERE a.x + b.x < 0";
    let token = c.cancel_token();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        token.cancel_query(NoTls).await.expect("cancel request");
    });
    let before = engine_log(&h);
    let e = within("the cancelled statement", 60, c.simple_query(slow))
        .await
        .expect_err("a cancelled statement fails");
    canceller.await.unwrap();
    let took = started.elapsed();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    assert!(
        took < Duration::from_secs(10),
        "the cancel took effect after {took:?}"
    );
    assert_eq!(ran_since(&h, &before, slow), Ran::Federated);

    // The work stops: after the step in hand (a join step can take a
    // moment, longer on a loaded machine), Helios goes (nearly) idle,
    // well before the statement could have finished.
    let pid = h.child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cpu = cpu_time(pid);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let used = cpu_time(pid) - cpu;
        if used < Duration::from_millis(150) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Helios kept computing after the cancel: {used:?} of CPU in 0.5 s, 10 s later"
        );
    }

    // The session carries on, relayed and in the engine.
    assert_eq!(value(&c, "SELECT count(*) FROM big").await, "200000");
    exec(&c, "BEGIN; SELECT 1; COMMIT").await;
    assert_eq!(
        run(&h, &c, "/*+ engine */ SELECT count(*), max(x) FROM big").await,
        (
            Ran::Federated,
            vec![vec![Some("200000".into()), Some("200000".into())]]
        )
    );
    // A cancel with nothing running changes nothing.
    c.cancel_token().cancel_query(NoTls).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        run(&h, &c, "/*+ engine */ SELECT min(x) FROM big").await.1,
        vec![vec![Some("1".into())]]
    );
}

/// `engine.max_connections = 1`: partitions take turns on one upstream
/// connection — joins and unions over partitioned scans still finish, in
/// two sessions at once — and the connection stays open for the next
/// statement, marked `helios-engine` in `pg_stat_activity`.
#[tokio::test(flavor = "multi_thread")]
async fn scans_share_a_bounded_set_of_connections() {
    let (pg, h) = start(
        "CREATE TABLE a (id int, g int); INSERT INTO a SELECT x, x % 50 FROM generate_series(1, 40000) x; \
         CREATE TABLE b (id int, v int); INSERT INTO b SELECT x, x FROM generate_series(1, 40000) x; \
         ANALYZE;",
        "[engine]\nmax_connections = 1\nmin_partition_pages = 1\npartitions = 4\n",
    );
    let direct = pg.connect().await;
    let engine_conns =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'helios-engine'";
    assert_eq!(value(&direct, engine_conns).await, "0");
    let statements = [
        "SELECT a.g, count(*), sum(b.v) FROM a JOIN b ON a.id = b.id GROUP BY a.g ORDER BY a.g",
        "SELECT count(*) FROM a WHERE id IN (SELECT id FROM b WHERE v % 7 = 0)",
        "SELECT id FROM a UNION ALL SELECT id FROM b ORDER BY 1 DESC LIMIT 3",
    ];
    let one = h.connect().await;
    let two = h.connect().await;
    for sql in statements {
        let want = rows(&direct, sql).await;
        let hinted = format!("/*+ engine */ {sql}");
        let (x, y) = within(
            sql,
            60,
            futures_util::future::join(rows(&one, &hinted), rows(&two, &hinted)),
        )
        .await;
        assert_eq!(x, want, "{sql}");
        assert_eq!(y, want, "{sql}");
    }
    assert_eq!(engine_log(&h).runs, 6);
    assert_eq!(value(&direct, engine_conns).await, "1");
}
