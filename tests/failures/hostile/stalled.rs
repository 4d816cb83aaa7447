//! Floods of stalled clients.

use super::*;

// ----------------------------------------------- floods of stalled clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_stalled_startups_do_not_keep_a_normal_client_out() {
    let pg = PgServer::start();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[server]\nstartup_timeout = \"4s\"\n[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"postgres\"\npassword = \"pw-ok\"\n{}",
            no_auth_failure_limit()
        ),
    );
    helios_answers_with_password(&h).await;
    // Upstream sessions before the flood (the warm-up's, pooled or ending).
    let before = upstream_client_sessions(&pg);
    let (rss0, hwm0, _) = memory_kb(&h);
    let t0 = Instant::now();
    let port = h.port;
    let stalled: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        let mut v = Vec::new();
        for i in 0..200 {
            let mut s = connect(port);
            if i % 2 == 0 {
                // Half a startup packet.
                let full = startup_for("postgres");
                s.write_all(&full[..full.len() / 2]).unwrap();
            } else {
                // A whole one, then silence at the password prompt.
                s.write_all(&startup_for("postgres")).unwrap();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).unwrap();
                assert_eq!(b[0], b'R');
            }
            v.push(s);
        }
        v
    })
    .await
    .unwrap();
    let opened = t0.elapsed();

    // While they stall, a normal client gets in and is answered promptly.
    let t1 = Instant::now();
    helios_answers_with_password(&h).await;
    let took = t1.elapsed();
    let (rss1, hwm1, _) = memory_kb(&h);
    eprintln!(
        "200 stalled clients opened in {opened:?}; a normal login and query took {took:?}; \
         RSS {rss0} -> {rss1} kB (peak +{} kB)",
        hwm1 - hwm0
    );
    assert!(
        took < Duration::from_secs(2),
        "a normal client waited {took:?} behind 200 stalled ones"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "the flood took too long to set up to test anything ({:?})",
        t0.elapsed()
    );
    assert!(
        hwm1 - hwm0 < 64 << 10,
        "200 stalled clients cost {} MB",
        (hwm1 - hwm0) >> 10
    );
    let during = upstream_client_sessions(&pg);
    assert!(
        during <= before + 1,
        "stalled clients got upstream sessions: {before} before the flood, {during} during it"
    );

    // startup_timeout ends them all.
    let closed = tokio::task::spawn_blocking(move || {
        stalled
            .into_iter()
            .map(|mut s| until_closed(&mut s, 8).closed)
            .filter(|c| *c)
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 200, "stalled clients outlived startup_timeout");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "closing the stalled clients took {:?}",
        t0.elapsed()
    );
    assert!(h.is_alive());
    helios_answers_with_password(&h).await;
}

async fn helios_answers_with_password(h: &Helios) {
    let c = within(
        10,
        "login",
        crate::common::try_connect(&format!("{} password=pw-ok", h.conn_str("postgres"))),
    )
    .await
    .unwrap_or_else(|e| panic!("a normal client cannot log in: {e:?}"));
    assert_eq!(scalar(&c, "select 1").await.as_deref(), Some("1"));
}
