//! Faults while work is under way: the upstream restarted under load, killed
//! during a COPY or in the middle of a large result; clients that vanish
//! mid-result or mid-transaction; a cancel during a COPY. After each, the
//! upstream holds exactly what committed transactions wrote (checked on
//! PostgreSQL directly), and Helios stays up and serves.

use std::collections::BTreeSet;
use std::io::{Cursor, ErrorKind, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_postgres::NoTls;

use crate::common::raw::{self, Msg, RawConn};
use crate::common::{psql, try_connect, Helios, PgServer};
use crate::support::{
    helios_answers, raw_login, scalar, wait_for_direct, wait_no_busy_upstream_sessions, within,
};

/// A large result: about 1 GB of rows, far more than any buffer on the way.
const BIG: &str = "SELECT g, repeat('x', 500) FROM generate_series(1, 2000000) g";
/// Finds [`BIG`] in pg_stat_activity (but not the query asking).
const BIG_RUNNING: &str = "select count(*) from pg_stat_activity \
     where query like 'SELECT g, repeat(%' and state = 'active' and pid <> pg_backend_pid()";

/// Whether an error is the connection going away (or not being there):
/// closed, I/O, SQLSTATE class 08, or the server shutting down or starting.
fn connection_level(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(c) => c.code().starts_with("08") || matches!(c.code(), "57P01" | "57P02" | "57P03"),
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Poll PostgreSQL directly, a new connection each time, until it answers
/// `select 1`; the instant it first did.
async fn wait_direct_up(pg: &PgServer, secs: u64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = Duration::from_secs(2);
        if let Ok(Ok(c)) = tokio::time::timeout(t, try_connect(&pg.conn_str())).await {
            if let Ok(Ok(_)) = tokio::time::timeout(t, c.simple_query("select 1")).await {
                return Instant::now();
            }
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not accept connections within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Poll `cond` every 10 ms for up to `secs`.
async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "waited {secs}s for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Run a blocking harness call (pg_ctl) off the runtime's worker threads.
async fn blocking(pg: &Arc<PgServer>, f: fn(&PgServer)) {
    let pg = pg.clone();
    within(60, "pg_ctl", tokio::task::spawn_blocking(move || f(&pg)))
        .await
        .unwrap();
}

/// All `(a, b)` rows of a two-integer-column query, directly on PostgreSQL.
async fn direct_pairs(pg: &PgServer, sql: &str) -> BTreeSet<(i32, i32)> {
    let c = within(20, "connect directly", try_connect(&pg.conn_str()))
        .await
        .unwrap();
    within(20, sql, c.query(sql, &[]))
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

// ------------------------------------------------ restart under load

const CLIENTS: i32 = 8;

#[derive(Debug)]
struct ClientError {
    client: i32,
    step: &'static str,
    /// When the connection attempt began, or when the session that failed
    /// was established.
    began: Instant,
    at: Instant,
    /// SQLSTATE, or None (closed, I/O, timeout).
    code: Option<String>,
    connection_level: bool,
    text: String,
}

#[derive(Default)]
struct Outcomes {
    /// (client, seq) whose COMMIT returned Ok.
    committed: BTreeSet<(i32, i32)>,
    /// The error came during COMMIT and was the connection going away.
    unknown: BTreeSet<(i32, i32)>,
    /// Never committed: failed before COMMIT, or COMMIT failed with a
    /// statement error.
    absent: BTreeSet<(i32, i32)>,
    errors: Vec<ClientError>,
    /// The first successful statement after PostgreSQL came back.
    first_ok_after_restart: Option<Instant>,
}

struct Load {
    out: Mutex<Outcomes>,
    commits: Vec<AtomicUsize>,
    /// PostgreSQL accepts connections again after the restart.
    restarted: AtomicBool,
    stop: AtomicBool,
}

impl Load {
    fn commits(&self) -> Vec<usize> {
        self.commits
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }

    fn errors_since(&self, t: Instant) -> Vec<usize> {
        let out = self.out.lock().unwrap();
        (0..CLIENTS)
            .map(|id| {
                (out.errors.iter())
                    .filter(|e| e.client == id && e.at >= t)
                    .count()
            })
            .collect()
    }

    fn ok(&self) {
        if self.restarted.load(Ordering::SeqCst) {
            let mut out = self.out.lock().unwrap();
            out.first_ok_after_restart.get_or_insert_with(Instant::now);
        }
    }

    fn error(
        &self,
        client: i32,
        step: &'static str,
        began: Instant,
        e: Option<&tokio_postgres::Error>,
    ) {
        let err = ClientError {
            client,
            step,
            began,
            at: Instant::now(),
            code: e.and_then(|e| e.code()).map(|c| c.code().to_string()),
            connection_level: e.is_some_and(connection_level),
            text: e.map_or_else(|| "no answer within 15s".into(), describe),
        };
        self.out.lock().unwrap().errors.push(err);
    }
}

/// One client: connect if not connected, then `BEGIN; INSERT; COMMIT`, in
/// a loop; on an error, drop the session and connect again.
async fn ledger_client(id: i32, conn_str: String, load: Arc<Load>) {
    const LIMIT: Duration = Duration::from_secs(15);
    let mut session: Option<(tokio_postgres::Client, Instant)> = None;
    let mut seq = 0;
    while !load.stop.load(Ordering::SeqCst) {
        let Some((client, since)) = &session else {
            let began = Instant::now();
            match tokio::time::timeout(LIMIT, try_connect(&conn_str)).await {
                Ok(Ok(c)) => session = Some((c, Instant::now())),
                Ok(Err(e)) => {
                    load.error(id, "connect", began, Some(&e));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => load.error(id, "connect", began, None),
            }
            continue;
        };
        seq += 1;
        let key = (id, seq);
        let mut failed = None;
        for step in ["BEGIN", "INSERT", "COMMIT"] {
            let r = match step {
                "INSERT" => {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&id, &seq];
                    let insert =
                        client.execute("INSERT INTO ledger (client, seq) VALUES ($1, $2)", &params);
                    tokio::time::timeout(LIMIT, insert)
                        .await
                        .map(|r| r.map(drop))
                }
                _ => tokio::time::timeout(LIMIT, client.simple_query(step))
                    .await
                    .map(|r| r.map(drop)),
            };
            match r {
                Ok(Ok(())) => load.ok(),
                Ok(Err(e)) => {
                    failed = Some((step, Some(e)));
                    break;
                }
                Err(_) => {
                    failed = Some((step, None));
                    break;
                }
            }
        }
        match failed {
            None => {
                load.out.lock().unwrap().committed.insert(key);
                load.commits[id as usize].fetch_add(1, Ordering::SeqCst);
            }
            Some((step, e)) => {
                let unknown = step == "COMMIT" && e.as_ref().is_none_or(connection_level);
                {
                    let mut out = load.out.lock().unwrap();
                    if unknown {
                        out.unknown.insert(key);
                    } else {
                        out.absent.insert(key);
                    }
                }
                load.error(id, step, *since, e.as_ref());
                session = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// PostgreSQL is stopped with `-m immediate` (its backends die at once)
/// and started again while eight clients run transactions through Helios.
/// Errors come only from sessions on the dead backends and from connection
/// attempts during the outage; once PostgreSQL accepts connections, a new
/// session through Helios works within 2 s, and none fails after that; the
/// table holds every transaction whose COMMIT returned Ok, none that failed
/// before or at COMMIT with a statement error, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_restarted_under_load_loses_no_commit_and_helios_recovers_within_2s() {
    // A commit acknowledged is on disk: PostgreSQL itself would lose
    // asynchronous commits in an immediate shutdown.
    let pg = Arc::new(PgServer::start_with(&["synchronous_commit=on"]));
    assert_eq!(pg.psql("show synchronous_commit").trim(), "on");
    pg.psql(
        "create table ledger (client int not null, seq int not null, primary key (client, seq))",
    );
    let mut h = Helios::start(&pg, "");
    let load = Arc::new(Load {
        out: Mutex::default(),
        commits: (0..CLIENTS).map(|_| AtomicUsize::new(0)).collect(),
        restarted: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(ledger_client(id, h.conn_str("postgres"), load.clone())))
        .collect();

    wait_until(20, "every client to commit 20 transactions", || {
        load.commits().iter().all(|&n| n >= 20)
    })
    .await;
    {
        let out = load.out.lock().unwrap();
        assert!(
            out.errors.is_empty(),
            "errors before any fault: {:?}",
            out.errors
        );
    }

    let t_kill = Instant::now();
    blocking(&pg, PgServer::kill).await;
    let t_down = Instant::now();
    // Every session was attached to a backend that died: each client has
    // seen it end (and is now failing to connect).
    wait_until(10, "every client to see its session end", || {
        load.errors_since(t_kill).iter().all(|&n| n >= 2)
    })
    .await;

    let t_restart = Instant::now();
    let restart = {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.restart())
    };
    let t_ready = wait_direct_up(&pg, 30).await;
    load.restarted.store(true, Ordering::SeqCst);
    within(30, "pg_ctl start", restart).await.unwrap();

    // A new session and a statement through Helios, as soon as possible.
    let mut probe_failures = Vec::new();
    let t_probe_ok = loop {
        let connected = within(
            20,
            "connect through Helios",
            try_connect(&h.conn_str("postgres")),
        )
        .await;
        match connected {
            Ok(c) => match within(20, "select 1", c.simple_query("select 1")).await {
                Ok(_) => break Instant::now(),
                Err(e) => probe_failures.push(describe(&e)),
            },
            Err(e) => probe_failures.push(describe(&e)),
        }
        assert!(
            t_ready.elapsed() < Duration::from_secs(10),
            "no session through Helios worked within 10s of PostgreSQL accepting connections: {probe_failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let recovered = t_probe_ok - t_ready;

    // The load goes on: every client commits again, several times.
    let after = load.commits();
    wait_until(20, "every client to commit 20 more transactions", || {
        load.commits().iter().zip(&after).all(|(n, a)| n - a >= 20)
    })
    .await;
    load.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        within(40, "a client task to stop", t).await.unwrap();
    }

    assert!(h.is_alive(), "Helios exited when its upstream restarted");
    helios_answers(&h).await;

    let out = std::mem::take(&mut *load.out.lock().unwrap());
    let t_recovered = out
        .first_ok_after_restart
        .map_or(t_probe_ok, |t| t.min(t_probe_ok));
    // Milliseconds since the kill (negative: before it).
    let ms = |t: Instant| match t.checked_duration_since(t_kill) {
        Some(d) => d.as_millis() as i64,
        None => -(t_kill.duration_since(t).as_millis() as i64),
    };
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for e in &out.errors {
        *codes
            .entry(e.code.clone().unwrap_or_else(|| "-".into()))
            .or_default() += 1;
    }
    eprintln!(
        "restart under load: {} commits, {} unknown outcomes; {} client errors {codes:?}; \
         down after {} ms, restart began at {} ms, PostgreSQL ready at {} ms, \
         first success through Helios at {} ms: {} ms after ready ({} failed probes: {:?})",
        out.committed.len(),
        out.unknown.len(),
        out.errors.len(),
        ms(t_down),
        ms(t_restart),
        ms(t_ready),
        ms(t_probe_ok),
        recovered.as_millis(),
        probe_failures.len(),
        probe_failures.iter().take(3).collect::<Vec<_>>(),
    );

    assert!(
        recovered < Duration::from_secs(2),
        "the first session through Helios worked {recovered:?} after PostgreSQL was ready (failures meanwhile: {probe_failures:?})"
    );
    let show = |e: &ClientError| {
        format!(
            "client {} {} at {} ms (session/attempt began at {} ms): {}",
            e.client,
            e.step,
            ms(e.at),
            ms(e.began),
            e.text
        )
    };
    let not_connection: Vec<String> = (out.errors.iter())
        .filter(|e| !e.connection_level)
        .map(show)
        .collect();
    assert!(
        not_connection.is_empty(),
        "errors other than the connection going away: {not_connection:#?}"
    );
    let outside: Vec<String> = (out.errors.iter())
        .filter(|e| {
            e.at < t_kill || e.began >= t_recovered || e.at > t_recovered + Duration::from_secs(2)
        })
        .map(show)
        .collect();
    assert!(
        outside.is_empty(),
        "errors outside the restart window (recovered at {} ms): {outside:#?}",
        ms(t_recovered)
    );

    // The ledger, read on PostgreSQL directly.
    let table = direct_pairs(&pg, "select client, seq from ledger").await;
    let lost: Vec<_> = out.committed.difference(&table).collect();
    assert!(
        lost.is_empty(),
        "committed (COMMIT returned Ok) but missing: {lost:?}"
    );
    let unexpected: Vec<_> = (table.iter())
        .filter(|k| !out.committed.contains(k) && !out.unknown.contains(k))
        .collect();
    assert!(
        unexpected.is_empty(),
        "rows whose transaction never committed: {unexpected:?} (of them, failed before or at COMMIT: {:?})",
        unexpected
            .iter()
            .filter(|k| out.absent.contains(k))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "restart under load: of {} unknown outcomes, {} committed",
        out.unknown.len(),
        out.unknown.intersection(&table).count()
    );
}

// ------------------------------------------------ COPY interrupted

/// `COPY t FROM STDIN` rows `ids`, as tab-separated text.
fn copy_rows(ids: std::ops::RangeInclusive<i32>) -> Cursor<Vec<u8>> {
    let mut v = Vec::new();
    for id in ids {
        v.extend_from_slice(format!("{id}\tcopied row {id}\n").as_bytes());
    }
    Cursor::new(v)
}

/// The table `t` with 1000 rows copied and one inserted through Helios,
/// committed.
async fn committed_before(h: &Helios) {
    let c = h.connect().await;
    let sink = within(
        10,
        "copy_in",
        c.copy_in::<_, Cursor<Vec<u8>>>("COPY t (id, v) FROM STDIN"),
    )
    .await
    .unwrap();
    futures_util::pin_mut!(sink);
    within(10, "send", sink.send(copy_rows(1..=1000)))
        .await
        .unwrap();
    assert_eq!(within(10, "finish", sink.finish()).await.unwrap(), 1000);
    within(
        10,
        "insert",
        c.execute("INSERT INTO t VALUES (1001, 'inserted')", &[]),
    )
    .await
    .unwrap();
}

/// Start a COPY through Helios and send rows 100001.. until PostgreSQL has
/// processed some of them; `fault` strikes; then keep sending. The COPY
/// must fail (not hang), and none of its rows become visible.
async fn copy_interrupted(pg: &Arc<PgServer>, h: &mut Helios, fault: impl AsyncFnOnce()) {
    committed_before(h).await;
    let c = h.connect().await;
    let sink = within(
        10,
        "copy_in",
        c.copy_in::<_, Cursor<Vec<u8>>>("COPY t (id, v) FROM STDIN"),
    )
    .await
    .unwrap();
    futures_util::pin_mut!(sink);
    let mut next = 100_001;
    let mut send_chunk = async || {
        let chunk = copy_rows(next..=next + 999);
        next += 1000;
        tokio::time::timeout(Duration::from_secs(10), sink.send(chunk))
            .await
            .expect("a COPY chunk was not taken within 10s")
    };
    for _ in 0..10 {
        send_chunk().await.unwrap();
    }
    wait_for_direct(
        pg,
        "select coalesce(max(tuples_processed), 0) >= 5000 from pg_stat_progress_copy",
        "t",
        10,
    );

    let t_fault = Instant::now();
    fault().await;
    // Keep sending for a while: the error must come, on a send or at the end.
    let mut err = None;
    for _ in 0..50 {
        if let Err(e) = send_chunk().await {
            err = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = match err {
        Some(e) => e,
        None => match within(10, "finishing the interrupted COPY", sink.finish()).await {
            Ok(n) => panic!("the interrupted COPY reported success ({n} rows)"),
            Err(e) => e,
        },
    };
    eprintln!(
        "COPY interrupted: error {:?} after {} ms",
        describe(&err),
        t_fault.elapsed().as_millis()
    );
    assert!(connection_level(&err), "{}", describe(&err));
    assert!(h.is_alive(), "Helios exited during the COPY");
}

/// `t` on PostgreSQL: row count, rows of the interrupted COPY, sum of ids.
fn t_contents(pg: &PgServer) -> String {
    pg.psql("select count(*), count(*) filter (where id > 100000), sum(id) from t")
        .trim()
        .to_string()
}

/// What [`committed_before`] wrote: 1000 copied rows and one inserted.
const T_BEFORE: &str = "1001|0|501501";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_stopped_during_copy_in_fails_the_copy_and_commits_none_of_it() {
    let pg = Arc::new(PgServer::start_with(&["synchronous_commit=on"]));
    pg.psql("create table t (id int primary key, v text)");
    let mut h = Helios::start(&pg, "");
    copy_interrupted(&pg, &mut h, async || blocking(&pg, PgServer::kill).await).await;
    blocking(&pg, PgServer::restart).await;
    wait_direct_up(&pg, 20).await;
    assert_eq!(
        t_contents(&pg),
        T_BEFORE,
        "count, rows of the COPY, sum(id)"
    );
    helios_answers(&h).await;
    assert!(h.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_backend_killed_during_copy_in_fails_the_copy_and_commits_none_of_it() {
    let pg = Arc::new(PgServer::start_with(&["synchronous_commit=on"]));
    pg.psql("create table t (id int primary key, v text)");
    let mut h = Helios::start(&pg, "");
    let kill_backend = async || {
        let pid = pg.psql("select pid from pg_stat_progress_copy");
        let pid = pid.trim();
        let ok = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -KILL {pid}");
    };
    copy_interrupted(&pg, &mut h, kill_backend).await;
    // PostgreSQL restarts by itself after a backend crash.
    wait_direct_up(&pg, 20).await;
    assert_eq!(
        t_contents(&pg),
        T_BEFORE,
        "count, rows of the COPY, sum(id)"
    );
    helios_answers(&h).await;
    assert!(h.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_copy_in_fails_it_with_57014_and_the_session_goes_on() {
    let pg = PgServer::start();
    pg.psql("create table t (id int primary key, v text)");
    let mut h = Helios::start(&pg, "");
    let c = h.connect().await;
    let sink = within(
        10,
        "copy_in",
        c.copy_in::<_, Cursor<Vec<u8>>>("COPY t (id, v) FROM STDIN"),
    )
    .await
    .unwrap();
    futures_util::pin_mut!(sink);
    let mut next = 1;
    for _ in 0..10 {
        within(10, "send", sink.send(copy_rows(next..=next + 999)))
            .await
            .unwrap();
        next += 1000;
    }
    wait_for_direct(
        &pg,
        "select coalesce(max(tuples_processed), 0) >= 5000 from pg_stat_progress_copy",
        "t",
        10,
    );
    within(10, "cancel", c.cancel_token().cancel_query(NoTls))
        .await
        .unwrap();
    // PostgreSQL notices the cancel while it reads more rows.
    let mut err = None;
    for _ in 0..500 {
        let sent = within(10, "send", sink.send(copy_rows(next..=next + 999))).await;
        next += 1000;
        if let Err(e) = sent {
            err = Some(e);
            break;
        }
        if pg.psql("select count(*) from pg_stat_progress_copy").trim() == "0" {
            break;
        }
    }
    let err = match err {
        Some(e) => e,
        None => within(10, "finish", sink.finish())
            .await
            .expect_err("the canceled COPY reported success"),
    };
    assert_eq!(
        err.code().map(|c| c.code()),
        Some("57014"),
        "{}",
        describe(&err)
    );
    // The session goes on, outside any transaction.
    assert_eq!(
        scalar(&c, "select count(*) from t").await.as_deref(),
        Some("0")
    );
    within(
        10,
        "insert",
        c.execute("insert into t values (0, 'after')", &[]),
    )
    .await
    .unwrap();
    assert_eq!(pg.psql("select count(*), sum(id) from t").trim(), "1|0");
    assert!(h.is_alive());
}

// ------------------------------------------------ clients that vanish

/// Read the first `n` rows of a result, checking nothing went wrong.
fn read_rows(c: &mut RawConn, n: usize) {
    let mut rows = 0;
    while rows < n {
        let m = c.read_msg().expect("the result ended early");
        assert_ne!(m.tag, b'E', "{m:?}");
        if m.tag == b'D' {
            rows += 1;
        }
    }
}

/// A second client logs in through Helios (whose pool holds one connection)
/// and runs a statement; how long that took.
fn next_client_gets_in(h: &Helios) -> Duration {
    let t = Instant::now();
    let (mut c, msgs) = RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
    assert_eq!(
        msgs.last().map(|m| m.tag),
        Some(b'Z'),
        "the next client did not get the upstream connection: {msgs:?}"
    );
    c.send(&raw::query("select 42"));
    let msgs = c.until_ready();
    assert!(
        msgs.iter()
            .any(|m| m.tag == b'D' && m.body.ends_with(b"42")),
        "{msgs:?}"
    );
    t.elapsed()
}

/// With one upstream connection, a client reads the start of a huge result
/// and hangs up: the connection is freed at once (the query does not run
/// on), and the next client gets it.
#[test]
fn a_client_gone_mid_result_frees_the_only_upstream_connection_at_once() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"8s\"\n");
    let mut a = raw_login(h.port);
    a.send(&raw::query(BIG));
    read_rows(&mut a, 100);
    wait_for_direct(&pg, BIG_RUNNING, "1", 10);
    drop(a);
    let waited = next_client_gets_in(&h);
    eprintln!(
        "client gone mid-result: next client in after {} ms",
        waited.as_millis()
    );
    assert!(
        waited < Duration::from_secs(3),
        "the next client waited {waited:?} for the only upstream connection"
    );
    wait_for_direct(&pg, BIG_RUNNING, "0", 3);
    assert!(h.is_alive());
}

/// Clients that vanish in the middle of a transaction — idle in it, or
/// reading a large result in it over the extended protocol — leave no
/// uncommitted write behind, and the next client (one upstream connection)
/// gets a fresh session, outside any transaction, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_transaction_leaves_no_uncommitted_write() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"8s\"\n");
    for (x, mid_result) in [(1, false), (2, true)] {
        let what = if mid_result {
            "reading a result in a transaction"
        } else {
            "idle in a transaction"
        };
        let (a, conn) = within(
            10,
            "connect",
            tokio_postgres::connect(&h.conn_str("postgres"), NoTls),
        )
        .await
        .unwrap();
        let conn = tokio::spawn(conn);
        within(
            10,
            "begin; insert",
            a.batch_execute(&format!("BEGIN; INSERT INTO t VALUES ({x})")),
        )
        .await
        .unwrap();
        let mut rows = None;
        if mid_result {
            let stream = within(10, "query_raw", a.query_raw(BIG, std::iter::empty::<i32>()))
                .await
                .unwrap();
            let mut stream = Box::pin(stream);
            for _ in 0..100 {
                within(10, "a row", stream.next())
                    .await
                    .expect("rows")
                    .unwrap();
            }
            rows = Some(stream);
            wait_for_direct(&pg, BIG_RUNNING, "1", 10);
        }
        // The client vanishes: its socket closes, no Terminate.
        conn.abort();
        let _ = conn.await;
        drop(rows);
        drop(a);

        let t = Instant::now();
        let b = within(10, what, try_connect(&h.conn_str("postgres")))
            .await
            .unwrap_or_else(|e| panic!("{what}: the next client did not get in: {e:?}"));
        assert_eq!(
            scalar(&b, "select count(*) from t").await.as_deref(),
            Some("0"),
            "{what}: the next client sees the vanished client's uncommitted row"
        );
        let waited = t.elapsed();
        eprintln!(
            "client gone {what}: next client in after {} ms",
            waited.as_millis()
        );
        assert!(waited < Duration::from_secs(3), "{what}: waited {waited:?}");
        // Its own write commits on its own (it is not inside the old transaction).
        within(10, "insert", b.execute("INSERT INTO t VALUES (-1)", &[]))
            .await
            .unwrap();
        assert_eq!(
            pg.psql("select array_agg(x) from t").trim(),
            "{-1}",
            "{what}"
        );
        wait_for_direct(&pg, BIG_RUNNING, "0", 3);
        pg.psql("delete from t");
    }
    assert!(h.is_alive());
}

/// Read messages up to and including the first with tag `want`, failing
/// on an error.
fn read_until_tag(c: &mut RawConn, want: u8) {
    loop {
        let m = c
            .read_msg()
            .unwrap_or_else(|| panic!("closed before {:?}", want as char));
        assert_ne!(m.tag, b'E', "{m:?}");
        if m.tag == want {
            return;
        }
    }
}

/// A way for a client to leave, by name.
type LeavingClient = (&'static str, fn(&PgServer, &mut RawConn));

/// Clients that leave with a write under way that only they could have
/// completed — vanishing in a COPY (half-way through a CopyData message),
/// after an extended-protocol INSERT with no Sync yet (an open implicit
/// transaction), or with half a Sync sent; saying Terminate inside a
/// transaction — leave nothing committed, and the next client (one
/// upstream connection) starts afresh.
#[test]
fn a_client_gone_mid_copy_or_mid_pipeline_commits_nothing() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "[pool]\nmax_size = 1\nacquire_timeout = \"8s\"\n");
    let cases: [LeavingClient; 4] = [
        ("half-way through a COPY", |pg, a| {
            a.send(&raw::query("COPY t (x) FROM STDIN"));
            read_until_tag(a, b'G');
            for _ in 0..100 {
                a.send(&raw::copy_data(b"1\n2\n3\n"));
            }
            wait_for_direct(
                pg,
                "select coalesce(max(tuples_processed), 0) from pg_stat_progress_copy",
                "300",
                10,
            );
            // A CopyData message announcing 1000 bytes, with 10 of them.
            let mut partial = raw::copy_data(&[b'4'; 1000]);
            partial.truncate(15);
            a.send(&partial);
        }),
        ("after an INSERT with no Sync", |_, a| {
            a.send(&raw::parse("", "INSERT INTO t VALUES (7)", &[]));
            a.send(&raw::bind("", "", &[], &[], &[]));
            a.send(&raw::execute("", 0));
            a.send(&raw::flush());
            read_until_tag(a, b'C');
        }),
        ("after an INSERT and half a Sync", |_, a| {
            a.send(&raw::parse("", "INSERT INTO t VALUES (8)", &[]));
            a.send(&raw::bind("", "", &[], &[], &[]));
            a.send(&raw::execute("", 0));
            a.send(&raw::flush());
            read_until_tag(a, b'C');
            a.send(&raw::sync()[..3]);
        }),
        ("with Terminate inside a transaction", |_, a| {
            a.send(&raw::query("BEGIN; INSERT INTO t VALUES (9)"));
            a.until_ready();
            a.send(&raw::terminate());
        }),
    ];
    for (what, act) in cases {
        let mut a = raw_login(h.port);
        act(&pg, &mut a);
        // The write is under way, not visible.
        assert_eq!(pg.psql("select count(*) from t").trim(), "0", "{what}");
        drop(a);

        let (mut b, msgs) =
            RawConn::connect(h.port, &[("user", "postgres"), ("database", "postgres")]);
        assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{what}: {msgs:?}");
        b.send(&raw::query("select count(*) from t"));
        let msgs = b.until_ready();
        assert!(
            msgs.iter().any(|m| m.tag == b'D' && m.body.ends_with(b"0")),
            "{what}: the next client sees the vanished client's write: {msgs:?}"
        );
        assert_eq!(
            msgs.last().map(|m| m.body.as_slice()),
            Some(&b"I"[..]),
            "{what}: the next client is inside a transaction: {msgs:?}"
        );
        b.send(&raw::query("INSERT INTO t VALUES (-1)"));
        let msgs = b.until_ready();
        assert!(msgs.iter().all(|m| m.tag != b'E'), "{what}: {msgs:?}");
        drop(b);
        wait_no_busy_upstream_sessions(&pg);
        assert_eq!(
            pg.psql("select coalesce(array_agg(x), '{}') from t").trim(),
            "{-1}",
            "{what}: only the next client's write is in the table"
        );
        pg.psql("delete from t");
    }
    assert!(h.is_alive());
}

// ------------------------------------------------ upstream dies mid-result

/// How a stream of backend messages ended.
#[derive(Debug, PartialEq)]
enum End {
    Closed,
    /// Closed in the middle of a message.
    ClosedMidMessage,
}

/// Read until `buf` is full or the stream ends: bytes read.
fn read_fully(s: &mut std::net::TcpStream, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break
            }
            Err(e) => panic!("the connection was not closed ({e})"),
        }
    }
    n
}

/// Messages until the server closes: DataRows counted, the rest kept.
fn drain(c: &mut RawConn) -> (u64, Vec<Msg>, End) {
    let (mut rows, mut kept) = (0, Vec::new());
    loop {
        let mut header = [0u8; 5];
        match read_fully(&mut c.stream, &mut header) {
            0 => return (rows, kept, End::Closed),
            5 => {}
            _ => return (rows, kept, End::ClosedMidMessage),
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        if read_fully(&mut c.stream, &mut body) < body.len() {
            return (rows, kept, End::ClosedMidMessage);
        }
        if header[0] == b'D' {
            rows += 1;
        } else {
            kept.push(Msg {
                tag: header[0],
                body,
            });
        }
    }
}

/// PostgreSQL is stopped (immediate) while a client reads a large result
/// through Helios: the client hears promptly, the cut result never looks
/// complete, and Helios serves again once PostgreSQL is back. Where the
/// stream broke between messages, the last one is a FATAL error (08006 from
/// Helios, or the upstream's own 57P01/57P02). A backend killed this way
/// usually dies in the middle of sending a row (PostgreSQL drops its own
/// "terminating connection" warning while a send is under way), and clients
/// connected directly see the same cut; no message can follow half a row.
#[test]
fn upstream_stopped_mid_result_ends_it_with_an_error_and_helios_serves_after() {
    let pg = PgServer::start();
    let mut h = Helios::start(&pg, "");
    let mut a = raw_login(h.port);
    a.send(&raw::query(BIG));
    read_rows(&mut a, 100);
    let reader = std::thread::spawn(move || drain(&mut a));
    wait_for_direct(&pg, BIG_RUNNING, "1", 10);
    let t = Instant::now();
    pg.kill();
    let (rows, msgs, end) = reader.join().unwrap();
    let took = t.elapsed();
    eprintln!(
        "upstream stopped mid-result: {rows} more rows, then {msgs:?} ({end:?}) after {} ms",
        took.as_millis()
    );
    assert!(
        took < Duration::from_secs(8),
        "the client heard only after {took:?}"
    );
    assert!(
        msgs.iter().all(|m| m.tag != b'C' && m.tag != b'Z'),
        "the cut result looks complete: {msgs:?}"
    );
    if end == End::Closed {
        let last = (msgs.last()).unwrap_or_else(|| panic!("closed between rows without an error"));
        assert_eq!(last.tag, b'E', "{msgs:?}");
        assert_eq!(last.field(b'S').as_deref(), Some("FATAL"), "{msgs:?}");
        assert!(
            matches!(
                last.sqlstate().as_deref(),
                Some("08006" | "57P01" | "57P02")
            ),
            "{msgs:?}"
        );
    }
    assert!(
        h.is_alive(),
        "Helios exited when its upstream died mid-result"
    );

    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !psql(pg.port, "postgres", &["-c", "select 1"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "PostgreSQL did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut b = raw_login(h.port);
    b.send(&raw::query("select 42"));
    let msgs = b.until_ready();
    assert!(
        msgs.iter()
            .any(|m| m.tag == b'D' && m.body.ends_with(b"42")),
        "{msgs:?}"
    );
    assert!(h.is_alive());
}
