//! The upstream stopped, or the copying backend killed or canceled, during COPY IN.

use super::*;

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
