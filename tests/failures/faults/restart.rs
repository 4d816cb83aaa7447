//! The upstream restarted under a load of committing clients.

use super::*;

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
