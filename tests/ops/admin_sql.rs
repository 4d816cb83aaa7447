//! Helios's admin commands over SQL: `SHOW HELIOS ...` for anyone (both
//! protocols), `HELIOS RELOAD/PAUSE/RESUME` for `[admin] users` only.

use tokio_postgres::Client;

use crate::common::{self, Helios, PgServer};
use crate::support::{get, poll, sqlstate_of, table, value, Table, TOKEN};

const URL_SECRET: &str = "UrlSecret-9f8e7d";
const USER_SECRET: &str = "BobSecret-1a2b3c";

/// PostgreSQL with `items` and a role `alice`; Helios with secrets in its
/// config (upstream URL password, a user password, the admin token) and
/// `postgres` as its only admin user.
fn start() -> (PgServer, Helios) {
    let pg = PgServer::start();
    pg.psql(
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items VALUES (1, 'one'); \
         CREATE ROLE alice LOGIN; GRANT SELECT ON items TO alice;",
    );
    let h = Helios::start_config(&format!(
        "[upstream]\nurl = \"postgres://postgres:{URL_SECRET}@127.0.0.1:{}/postgres\"\n\
         connect_retries = 0\n\
         [auth]\nmethod = \"trust\"\n\
         [[auth.users]]\nname = \"bob\"\npassword = \"{USER_SECRET}\"\n\
         [admin]\ntoken = \"{TOKEN}\"\nusers = [\"postgres\"]\n",
        pg.port
    ));
    (pg, h)
}

async fn connect_as(h: &Helios, user: &str, app: &str) -> Client {
    common::connect(&format!("{} application_name={app}", h.conn_str(user))).await
}

fn int(t: &Table, row: &[Option<String>], col: &str) -> i64 {
    t.cell(row, col)
        .unwrap_or_else(|| panic!("{col} is NULL"))
        .parse()
        .unwrap_or_else(|e| panic!("{col}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admin_users_may_reload_pause_or_resume() {
    let (_pg, h) = start();
    let alice = connect_as(&h, "alice", "ops-alice").await;
    for cmd in [
        "HELIOS RELOAD",
        "HELIOS PAUSE",
        "HELIOS RESUME",
        "helios pause;",
    ] {
        assert_eq!(sqlstate_of(&alice, cmd).await, "42501", "{cmd}");
    }
    // The extended protocol is checked the same way.
    let e = alice
        .execute("HELIOS PAUSE", &[])
        .await
        .expect_err("HELIOS PAUSE over the extended protocol");
    assert_eq!(common::sqlstate(&e).as_deref(), Some("42501"), "{e}");
    // Nothing was paused: Helios is ready and alice is still served.
    let r = get(&h, "/health/readiness").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["checks"]["lifecycle"]["state"], "running");
    assert_eq!(value(&alice, "SELECT name FROM items").await, "one");

    // An admin user may.
    let admin = connect_as(&h, "postgres", "ops-admin").await;
    admin
        .simple_query("HELIOS RELOAD")
        .await
        .expect("HELIOS RELOAD as an admin user");
    assert_eq!(value(&admin, "SELECT 1").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_commands_answer_anyone_with_their_columns() {
    let (pg, h) = start();
    let alice = connect_as(&h, "alice", "ops-alice").await;
    let admin = connect_as(&h, "postgres", "ops-admin").await;
    let alice_pid = value(&alice, "SELECT pg_backend_pid()").await;
    let admin_pid = value(&admin, "SELECT pg_backend_pid()").await;
    assert_ne!(alice_pid, admin_pid);
    // The admin session sits in a transaction while alice looks.
    admin.batch_execute("BEGIN").await.unwrap();
    assert_eq!(value(&admin, "SELECT count(*) FROM items").await, "1");

    // VERSION
    let v = table(&alice, "SHOW HELIOS VERSION").await;
    assert_eq!(v.columns, ["version"]);
    assert_eq!(v.rows.len(), 1);
    assert!(
        v.rows[0][0].as_deref().unwrap().starts_with("Helios "),
        "{v:?}"
    );

    // STATS: what alice's statements add to database postgres.
    let stats_cols = [
        "database",
        "total_query_count",
        "total_error_count",
        "total_cache_hits",
        "total_engine_queries",
        "total_received",
        "total_sent",
        "total_query_time",
        "total_wait_time",
        "avg_query_time",
        "avg_wait_time",
    ];
    let s0 = table(&alice, "SHOW HELIOS STATS").await;
    assert_eq!(s0.columns, stats_cols);
    for i in 1..=3 {
        assert_eq!(value(&alice, &format!("SELECT {i}")).await, i.to_string());
    }
    assert_eq!(sqlstate_of(&alice, "SELECT * FROM nope").await, "42P01");
    let s1 = table(&alice, "SHOW HELIOS STATS").await;
    let (r0, r1) = (
        s0.rows_where("database", "postgres")[0].clone(),
        s1.rows_where("database", "postgres")[0].clone(),
    );
    let d = |col: &str| int(&s1, &r1, col) - int(&s0, &r0, col);
    // 3 selects + 1 error + the first SHOW HELIOS STATS itself.
    assert_eq!(d("total_query_count"), 5, "{s0:?}\n{s1:?}");
    assert_eq!(d("total_error_count"), 1, "{s0:?}\n{s1:?}");
    assert_eq!(d("total_cache_hits"), 0);
    assert_eq!(d("total_engine_queries"), 0);
    assert!(d("total_received") > 0, "{s0:?}\n{s1:?}");
    assert!(d("total_sent") > 0, "{s0:?}\n{s1:?}");
    assert!(d("total_query_time") > 0, "{s0:?}\n{s1:?}");

    // POOLS: one client and one upstream connection per (database, user).
    let p = table(&alice, "SHOW HELIOS POOLS").await;
    assert_eq!(
        p.columns,
        [
            "database",
            "user",
            "cl_active",
            "cl_waiting",
            "sv_active",
            "sv_idle",
            "maxwait",
            "maxwait_us",
            "pool_mode"
        ]
    );
    for user in ["alice", "postgres"] {
        let rows: Vec<_> = p
            .rows
            .iter()
            .filter(|r| {
                p.cell(r, "database") == Some("postgres") && p.cell(r, "user") == Some(user)
            })
            .collect();
        assert_eq!(rows.len(), 1, "{user}: {p:?}");
        let r = rows[0];
        assert_eq!(int(&p, r, "cl_active"), 1, "{user}: {p:?}");
        assert_eq!(int(&p, r, "cl_waiting"), 0, "{user}: {p:?}");
        assert_eq!(int(&p, r, "sv_active"), 1, "{user}: {p:?}");
        assert_eq!(int(&p, r, "sv_idle"), 0, "{user}: {p:?}");
        assert_eq!(p.cell(r, "pool_mode"), Some("session"));
    }

    // CLIENTS: each client with its upstream backend's pid.
    let c = table(&alice, "SHOW HELIOS CLIENTS").await;
    assert_eq!(
        c.columns,
        [
            "id",
            "user",
            "database",
            "state",
            "addr",
            "tls",
            "application_name",
            "connect_time",
            "state_duration",
            "requests",
            "remote_pid",
        ]
    );
    assert_eq!(c.rows.len(), 2, "{c:?}");
    let me = c.rows_where("remote_pid", &alice_pid);
    assert_eq!(me.len(), 1, "alice's pid {alice_pid}: {c:?}");
    let me = me[0];
    assert_eq!(c.cell(me, "user"), Some("alice"));
    assert_eq!(c.cell(me, "database"), Some("postgres"));
    assert_eq!(c.cell(me, "application_name"), Some("ops-alice"));
    assert_eq!(c.cell(me, "tls"), Some("f"));
    assert!(
        c.cell(me, "addr").unwrap().starts_with("127.0.0.1"),
        "{c:?}"
    );
    assert!(int(&c, me, "requests") >= 1, "{c:?}");
    let other = c.rows_where("remote_pid", &admin_pid);
    assert_eq!(other.len(), 1, "admin's pid {admin_pid}: {c:?}");
    assert_eq!(c.cell(other[0], "user"), Some("postgres"));
    assert_eq!(
        c.cell(other[0], "state"),
        Some("idle in transaction"),
        "{c:?}"
    );
    assert_eq!(c.cell(other[0], "application_name"), Some("ops-admin"));
    let alice_id = c.cell(me, "id").unwrap().to_string();

    // SERVERS: the upstream connections, tied to their clients.
    let s = table(&alice, "SHOW HELIOS SERVERS").await;
    assert_eq!(
        s.columns,
        [
            "user",
            "database",
            "state",
            "addr",
            "tls",
            "connect_time",
            "remote_pid",
            "client_id"
        ]
    );
    let mine = s.rows_where("remote_pid", &alice_pid);
    assert_eq!(mine.len(), 1, "{s:?}");
    assert_eq!(s.cell(mine[0], "user"), Some("alice"));
    assert_eq!(s.cell(mine[0], "database"), Some("postgres"));
    assert_eq!(s.cell(mine[0], "state"), Some("active"));
    assert_eq!(s.cell(mine[0], "client_id"), Some(alice_id.as_str()));
    assert!(
        s.cell(mine[0], "addr")
            .unwrap_or("")
            .contains(&pg.port.to_string()),
        "{s:?}"
    );
    assert_eq!(s.rows_where("remote_pid", &admin_pid).len(), 1, "{s:?}");

    // A client whose statement is under way shows as active.
    let sleeper = connect_as(&h, "postgres", "ops-sleeper").await;
    let sleeping =
        tokio::spawn(async move { sleeper.simple_query("SELECT pg_sleep(2)").await.map(|_| ()) });
    poll("the sleeping client to show as active", || async {
        let c = table(&alice, "SHOW HELIOS CLIENTS").await;
        let r = c.rows_where("application_name", "ops-sleeper");
        (r.len() == 1 && c.cell(r[0], "state") == Some("active")).then_some(())
    })
    .await;
    sleeping.await.unwrap().expect("pg_sleep");

    admin.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_helios_config_marks_reloadable_keys_and_redacts_secrets() {
    let (_pg, h) = start();
    let alice = connect_as(&h, "alice", "ops-alice").await;
    let t = table(&alice, "SHOW HELIOS CONFIG").await;
    assert_eq!(t.columns, ["key", "value", "default", "changeable"]);
    let row = |key: &str| {
        let rows = t.rows_where("key", key);
        assert_eq!(rows.len(), 1, "{key}: {t:?}");
        rows[0].clone()
    };
    let r = row("cache.ttl");
    assert_eq!(t.cell(&r, "value"), Some("5m"));
    assert_eq!(t.cell(&r, "default"), Some("5m"));
    assert_eq!(t.cell(&r, "changeable"), Some("t"));
    let r = row("server.listen");
    assert_eq!(
        t.cell(&r, "value"),
        Some(format!("127.0.0.1:{}", h.port).as_str())
    );
    assert_eq!(t.cell(&r, "changeable"), Some("f"));
    for key in [
        "server.max_client_conn",
        "server.shutdown_timeout",
        "auth.method",
        "pool.acquire_timeout",
        "pool.reset_query",
        "log.level",
        "log.slow_query_threshold",
        "admin.token",
        "admin.users",
    ] {
        assert_eq!(t.cell(&row(key), "changeable"), Some("t"), "{key}");
    }
    for key in [
        "pool.max_size",
        "upstream.url",
        "cache.mode",
        "admin.listen",
    ] {
        assert_eq!(t.cell(&row(key), "changeable"), Some("f"), "{key}");
    }
    assert_eq!(t.cell(&row("admin.token"), "value"), Some("<redacted>"));
    let url = t.cell(&row("upstream.url"), "value").unwrap().to_string();
    assert!(url.contains("<redacted>"), "{url}");
    assert!(url.contains("127.0.0.1"), "{url}");
    let users: Vec<_> = t
        .rows
        .iter()
        .filter(|r| r[0].as_deref().unwrap_or("").starts_with("auth.users"))
        .collect();
    assert!(!users.is_empty(), "no auth.users in {t:?}");
    // No secret appears anywhere.
    for r in &t.rows {
        for cell in r.iter().flatten() {
            for secret in [URL_SECRET, USER_SECRET, TOKEN] {
                assert!(!cell.contains(secret), "{secret} shown in {r:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_commands_work_over_the_extended_protocol() {
    let (_pg, h) = start();
    let alice = connect_as(&h, "alice", "ops-alice").await;
    let rows = alice.query("SHOW HELIOS VERSION", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].columns()[0].name(), "version");
    let version: String = rows[0].get("version");
    assert!(version.starts_with("Helios "), "{version}");

    // A prepared statement, executed twice; integers are int8.
    let stmt = alice.prepare("SHOW HELIOS STATS").await.unwrap();
    assert_eq!(stmt.columns()[1].name(), "total_query_count");
    assert_eq!(
        stmt.columns()[1].type_(),
        &tokio_postgres::types::Type::INT8
    );
    let first = alice.query(&stmt, &[]).await.unwrap();
    let second = alice.query(&stmt, &[]).await.unwrap();
    let count = |rows: &[tokio_postgres::Row]| -> i64 {
        rows.iter()
            .find(|r| r.get::<_, String>("database") == "postgres")
            .expect("a row for database postgres")
            .get("total_query_count")
    };
    assert_eq!(count(&second) - count(&first), 1);

    let rows = alice.query("SHOW HELIOS CLIENTS", &[]).await.unwrap();
    let pid: i32 = alice
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        rows.iter().any(
            |r| r.get::<_, Option<i64>>("remote_pid") == Some(i64::from(pid))
                && r.get::<_, String>("user") == "alice"
                && !r.get::<_, bool>("tls")
        ),
        "pid {pid} not in SHOW HELIOS CLIENTS"
    );
}
