//! Who gets in: client authentication (`trust`, `md5`, `scram-sha-256`,
//! password passthrough to the upstream), Helios's own login to a
//! password-protected upstream, and TLS for clients.

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{pg_bindir, try_connect, Helios, PgServer};
use tokio_postgres::error::DbError;
use tokio_postgres::{Client, SimpleQueryMessage};

// ---------------------------------------------------------------- helpers

async fn within<F: Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs}s"))
}

fn db_error(e: &tokio_postgres::Error) -> &DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("expected an error from the server, got: {e:?}"))
}

/// A connection string for `user` (with `password`, if any) through Helios.
fn cs(h: &Helios, user: &str, password: Option<&str>) -> String {
    match password {
        Some(p) => format!(
            "{} password='{}'",
            h.conn_str(user),
            p.replace('\\', "\\\\").replace('\'', "\\'")
        ),
        None => h.conn_str(user),
    }
}

async fn login(h: &Helios, user: &str, password: Option<&str>) -> Client {
    within(20, "connect", try_connect(&cs(h, user, password)))
        .await
        .unwrap_or_else(|e| panic!("{user} with {password:?} should get in: {e:?}"))
}

/// The error a login gets; fails the test if the login succeeds.
async fn refused(h: &Helios, user: &str, password: Option<&str>) -> DbError {
    match within(20, "connect", try_connect(&cs(h, user, password))).await {
        Ok(_) => panic!("{user} with password {password:?} must not get in"),
        Err(e) => db_error(&e).clone(),
    }
}

/// The first column of the first row of a simple query.
async fn scalar(client: &Client, sql: &str) -> Option<String> {
    let msgs = within(20, sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

async fn current_user(c: &Client) -> String {
    scalar(c, "select current_user").await.unwrap()
}

fn assert_password_failed(e: &DbError, user: &str) {
    assert_eq!(e.severity(), "FATAL", "{e:?}");
    assert_eq!(e.code().code(), "28P01", "{e:?}");
    assert_eq!(
        e.message(),
        format!("password authentication failed for user \"{user}\""),
        "{e:?}"
    );
}

/// Everything a client sees of a failed login, with the user's name taken out.
fn shape(e: &DbError, user: &str) -> (String, String, String, Option<String>, Option<String>) {
    (
        e.severity().to_string(),
        e.code().code().to_string(),
        e.message().replace(user, "<user>"),
        e.detail().map(str::to_string),
        e.hint().map(str::to_string),
    )
}

/// Run a command, failing the test if it takes longer than `secs`.
fn run_bounded(mut cmd: Command, secs: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {secs}s:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// psql with a libpq connection string, never prompting for a password.
fn psql_conninfo(conninfo: &str, password: Option<&str>, sql: &str) -> Output {
    let mut c = Command::new(pg_bindir().join("psql"));
    c.args([
        "-X",
        "-q",
        "-At",
        "-w",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
        "-c",
        sql,
    ])
    .env("PGCONNECT_TIMEOUT", "10");
    for var in [
        "PGPASSWORD",
        "PGSSLMODE",
        "PGCHANNELBINDING",
        "PGSERVICE",
        "PGPASSFILE",
    ] {
        c.env_remove(var);
    }
    c.env("PGPASSFILE", "/nonexistent");
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    run_bounded(c, 30)
}

fn psql_via(h: &Helios, user: &str, password: Option<&str>, extra: &str, sql: &str) -> Output {
    let conninfo = format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres {extra}",
        h.port
    );
    psql_conninfo(&conninfo, password, sql)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_psql_ok(o: &Output, want: &str) {
    assert!(o.status.success(), "psql failed: {}", stderr(o));
    assert_eq!(stdout(o), want);
}

/// Make the upstream ask every user but `postgres` for a password (`method`
/// is a pg_hba.conf method), and wait until it does.
fn require_passwords(pg: &PgServer, method: &str, probe_user: &str) {
    let hba = pg.dir.path().join("data").join("pg_hba.conf");
    std::fs::write(
        &hba,
        format!(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 {method}\nhost all all ::1/128 {method}\n"
        ),
    )
    .unwrap();
    assert_eq!(pg.psql("select pg_reload_conf()").trim(), "t");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = common::psql(pg.port, probe_user, &["-w", "-c", "select 1"]);
        if !o.status.success() && stderr(&o).contains("password") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the upstream does not ask {probe_user} for a password after the reload: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn postgres_log(pg: &PgServer) -> String {
    std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default()
}

// ------------------------------------------------------------------- trust

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_lets_in_any_user_the_upstream_knows_and_passes_its_refusals_on() {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    let h = Helios::start(&pg, "[auth]\nmethod = \"trust\"\n");
    let a = login(&h, "alice", None).await;
    assert_eq!(current_user(&a).await, "alice");
    let p = login(&h, "postgres", Some("anything")).await;
    assert_eq!(current_user(&p).await, "postgres");

    let e = refused(&h, "ghost", None).await;
    assert_eq!(e.severity(), "FATAL", "{e:?}");
    assert_eq!(e.code().code(), "28000", "{e:?}");
    assert_eq!(e.message(), "role \"ghost\" does not exist");
}

// ------------------------------------------------- md5 and scram-sha-256

/// The configured user gets in with the right password (tokio-postgres and
/// psql), not with a wrong one; unknown users fail exactly alike.
async fn check_password_method(method: &str) {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    let h = Helios::start(
        &pg,
        &format!(
            "[auth]\nmethod = \"{method}\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-Pw 1\"\n"
        ),
    );
    let a = login(&h, "alice", Some("alice-Pw 1")).await;
    assert_eq!(current_user(&a).await, "alice");

    let wrong = refused(&h, "alice", Some("alice-pw")).await;
    assert_password_failed(&wrong, "alice");
    let empty = refused(&h, "alice", Some("")).await;
    assert_password_failed(&empty, "alice");

    // Unknown to Helios: one the upstream does not know either, and one it
    // does (and would trust): both get exactly what a wrong password gets.
    for user in ["ghost", "postgres"] {
        let e = refused(&h, user, Some("alice-Pw 1")).await;
        assert_password_failed(&e, user);
        assert_eq!(
            shape(&e, user),
            shape(&wrong, "alice"),
            "{method}: an unknown user can be told from a wrong password"
        );
    }

    // psql, with PGPASSWORD.
    assert_psql_ok(
        &psql_via(&h, "alice", Some("alice-Pw 1"), "", "select current_user"),
        "alice",
    );
    let o = psql_via(&h, "alice", Some("nope"), "", "select current_user");
    assert!(!o.status.success(), "psql got in with a wrong password");
    assert!(
        stderr(&o).contains("password authentication failed for user \"alice\""),
        "{}",
        stderr(&o)
    );
    let o = psql_via(&h, "alice", None, "", "select current_user");
    assert!(!o.status.success(), "psql got in without a password");
    let log = h.log();
    for pw in ["alice-Pw 1", "alice-pw", "nope"] {
        assert!(!log.contains(pw), "the log shows a password ({pw}):\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_checks_the_configured_password() {
    check_password_method("md5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_checks_the_configured_password() {
    check_password_method("scram-sha-256").await;
}

/// `rolpassword` of a role made with `password_encryption = encryption`.
fn stored_secret(pg: &PgServer, role: &str, password: &str, encryption: &str) -> String {
    pg.psql(&format!(
        "set password_encryption = '{encryption}'; create role {role} login password '{password}'"
    ));
    pg.psql(&format!(
        "select rolpassword from pg_authid where rolname = '{role}'"
    ))
    .trim()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_checks_a_stored_scram_secret() {
    let pg = PgServer::start();
    let secret = stored_secret(&pg, "carol", "carol-pw", "scram-sha-256");
    assert!(secret.starts_with("SCRAM-SHA-256$4096:"), "{secret}");
    let h = Helios::start(
        &pg,
        &format!(
            "[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"carol\"\nsecret = \"{secret}\"\n"
        ),
    );
    let c = login(&h, "carol", Some("carol-pw")).await;
    assert_eq!(current_user(&c).await, "carol");
    assert_password_failed(&refused(&h, "carol", Some("carol-PW")).await, "carol");
    assert_psql_ok(
        &psql_via(&h, "carol", Some("carol-pw"), "", "select current_user"),
        "carol",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_checks_a_stored_md5_secret_and_a_stored_scram_secret() {
    let pg = PgServer::start();
    let md5 = stored_secret(&pg, "dave", "dave-pw", "md5");
    assert!(md5.starts_with("md5") && md5.len() == 35, "{md5}");
    let scram = stored_secret(&pg, "erin", "erin-pw", "scram-sha-256");
    let h = Helios::start(
        &pg,
        &format!(
            "[auth]\nmethod = \"md5\"\n\
             [[auth.users]]\nname = \"dave\"\nsecret = \"{md5}\"\n\
             [[auth.users]]\nname = \"erin\"\nsecret = \"{scram}\"\n"
        ),
    );
    let d = login(&h, "dave", Some("dave-pw")).await;
    assert_eq!(current_user(&d).await, "dave");
    assert_password_failed(&refused(&h, "dave", Some("erin-pw")).await, "dave");
    assert_psql_ok(
        &psql_via(&h, "dave", Some("dave-pw"), "", "select current_user"),
        "dave",
    );
    // A user with only a SCRAM secret is asked for SCRAM, as PostgreSQL does.
    let e = login(&h, "erin", Some("erin-pw")).await;
    assert_eq!(current_user(&e).await, "erin");
    assert_password_failed(&refused(&h, "erin", Some("dave-pw")).await, "erin");
    assert_psql_ok(
        &psql_via(&h, "erin", Some("erin-pw"), "", "select current_user"),
        "erin",
    );
}

// ------------------------------------------------------- passthrough

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_lets_the_upstream_decide_and_never_shares_a_connection_across_passwords() {
    let pg = PgServer::start();
    pg.psql("create role alice login password 'alice-pw'");
    require_passwords(&pg, "scram-sha-256", "alice");
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"upstream\"\n[pool]\nmax_size = 1\nacquire_timeout = \"5s\"\n",
    );

    let a = login(&h, "alice", Some("alice-pw")).await;
    assert_eq!(current_user(&a).await, "alice");
    let pid = scalar(&a, "select pg_backend_pid()").await;
    drop(a);
    // Every passthrough login is the upstream's to judge: even the same
    // password gets a fresh login, never the connection left behind.
    let a = login(&h, "alice", Some("alice-pw")).await;
    assert_ne!(scalar(&a, "select pg_backend_pid()").await, pid);
    drop(a);
    // So a password change takes effect at once.
    pg.psql("alter role alice password 'alice-new'");
    let e = refused(&h, "alice", Some("alice-pw")).await;
    assert_password_failed(&e, "alice");
    pg.psql("alter role alice password 'alice-pw'");

    // A wrong password must not get the connection the right one left behind.
    let log_before = postgres_log(&pg).len();
    let e = refused(&h, "alice", Some("alice-PW")).await;
    assert_password_failed(&e, "alice");
    assert!(
        postgres_log(&pg)[log_before..]
            .contains("password authentication failed for user \"alice\""),
        "the upstream did not see (and refuse) the wrong password"
    );
    let e = refused(&h, "alice", Some("")).await;
    assert_eq!(e.code().code(), "28P01", "{e:?}");

    // An unknown role: the upstream's answer.
    let e = refused(&h, "ghost", Some("x")).await;
    assert_eq!(e.code().code(), "28P01", "{e:?}");

    // The right password still works, from tokio-postgres and psql.
    let a = login(&h, "alice", Some("alice-pw")).await;
    assert_eq!(current_user(&a).await, "alice");
    drop(a);
    assert_psql_ok(
        &psql_via(&h, "alice", Some("alice-pw"), "", "select current_user"),
        "alice",
    );
    let o = psql_via(&h, "alice", Some("bad"), "", "select current_user");
    assert!(!o.status.success(), "psql got in with a wrong password");
    // Not even at debug level does a password reach the log.
    let log = h.log();
    for pw in ["alice-pw", "alice-PW"] {
        assert!(!log.contains(pw), "the log shows a password ({pw}):\n{log}");
    }
}

/// The address of a non-loopback interface, if the machine has one.
fn non_loopback_ipv4() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// A Helios process started with its own command line; killed on drop.
struct Proc {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            for line in std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .lines()
            {
                eprintln!("helios| {line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_refuses_cleartext_passwords_over_unencrypted_non_local_tcp() {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("no non-loopback IPv4 address: nothing to test here");
        return;
    };
    let pg = PgServer::start();
    pg.psql("create role alice login password 'alice-pw'");
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = dir.path().join("helios.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"0.0.0.0:{port}\"\n[upstream]\nurl = \"{}\"\nconnect_retries = 0\n[auth]\nmethod = \"upstream\"\n",
            pg.url()
        ),
    )
    .unwrap();
    let log = dir.path().join("helios.log");
    let child = Command::new(env!("CARGO_BIN_EXE_helios"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "helios=debug,info")
        .env_remove("HELIOS_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _proc = Proc {
        child,
        log,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((ip, port)).is_err() {
        assert!(Instant::now() < deadline, "helios did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }

    let conn = format!("host={ip} port={port} user=alice password=alice-pw dbname=postgres");
    let e = match within(20, "connect", try_connect(&conn)).await {
        Ok(_) => panic!("a cleartext password was accepted over plain TCP from {ip}"),
        Err(e) => db_error(&e).clone(),
    };
    assert_eq!(e.severity(), "FATAL", "{e:?}");
    assert_eq!(e.code().code(), "28000", "{e:?}");
    assert_eq!(
        e.message(),
        "password passthrough needs an encrypted or local connection"
    );
    // From loopback it is fine.
    let c = within(
        20,
        "connect",
        try_connect(&format!(
            "host=127.0.0.1 port={port} user=alice password=alice-pw dbname=postgres"
        )),
    )
    .await
    .unwrap();
    assert_eq!(current_user(&c).await, "alice");
}

// ------------------------------------------- Helios's own upstream login

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helios_logs_into_a_password_protected_upstream_with_the_configured_passwords() {
    let pg = PgServer::start();
    pg.psql("create role alice login password 'alice-pw'"); // SCRAM-stored
    pg.psql("create role bob login password 'bob-upstream'");
    pg.psql("create role carl login password 'carl-upstream'");
    pg.psql("set password_encryption = 'md5'; create role dave login password 'dave-pw'"); // md5-stored
    pg.psql("create role frank login password 'frank-pw'");
    // hba "md5": md5 for md5-stored passwords, SCRAM for SCRAM-stored ones.
    require_passwords(&pg, "md5", "alice");

    // Clients checked with md5; Helios logs in upstream with the password.
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"md5\"\n\
         [[auth.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n\
         [[auth.users]]\nname = \"bob\"\npassword = \"bob-client\"\nupstream_password = \"bob-upstream\"\n\
         [[auth.users]]\nname = \"carl\"\npassword = \"carl-client\"\n\
         [[auth.users]]\nname = \"dave\"\npassword = \"dave-pw\"\n",
    );
    for (user, pw) in [
        ("alice", "alice-pw"),
        ("bob", "bob-client"),
        ("dave", "dave-pw"),
    ] {
        let c = login(&h, user, Some(pw)).await;
        assert_eq!(current_user(&c).await, user);
    }
    // bob's client password is not his upstream password, nor the reverse.
    assert_password_failed(&refused(&h, "bob", Some("bob-upstream")).await, "bob");
    // carl gets past Helios, but the upstream refuses Helios's password for
    // him: its own error, passed on.
    let e = refused(&h, "carl", Some("carl-client")).await;
    assert_password_failed(&e, "carl");
    assert!(
        postgres_log(&pg).contains("password authentication failed for user \"carl\""),
        "the refusal should have come from the upstream"
    );
    drop(h);

    // Clients trusted; Helios logs in with upstream_password where it has one.
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"trust\"\n\
         [[auth.users]]\nname = \"bob\"\nupstream_password = \"bob-upstream\"\n\
         [[auth.users]]\nname = \"dave\"\nupstream_password = \"dave-pw\"\n\
         [[auth.users]]\nname = \"carl\"\nupstream_password = \"wrong\"\n",
    );
    for user in ["bob", "dave"] {
        let c = login(&h, user, None).await;
        assert_eq!(current_user(&c).await, user);
    }
    assert_password_failed(&refused(&h, "carl", None).await, "carl");
    // frank: no password anywhere in Helios; the upstream wants one.
    let e = refused(&h, "frank", None).await;
    assert_eq!(e.severity(), "FATAL", "{e:?}");
    assert_eq!(e.code().code(), "28P01", "{e:?}");
    // A password the client sends is not used with method = "trust".
    let e = refused(&h, "frank", Some("frank-pw")).await;
    assert_eq!(e.code().code(), "28P01", "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_urls_password_is_used_for_the_urls_own_user_only() {
    let pg = PgServer::start();
    pg.psql("create role svc login password 'svc-pw'");
    pg.psql("create role alice login password 'svc-pw'");
    require_passwords(&pg, "scram-sha-256", "svc");
    let h = Helios::start_config(&format!(
        "[upstream]\nurl = \"postgres://svc:svc-pw@127.0.0.1:{}/postgres\"\nconnect_retries = 0\n",
        pg.port
    ));
    let c = login(&h, "svc", None).await;
    assert_eq!(current_user(&c).await, "svc");
    let e = refused(&h, "alice", None).await;
    assert_eq!(e.code().code(), "28P01", "{e:?}");
}

// --------------------------------------------------------------------- TLS

/// A self-signed certificate and key for localhost, made with openssl.
fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let version = Command::new("openssl").arg("version").output();
    assert!(
        matches!(&version, Ok(o) if o.status.success()),
        "the openssl command is needed for the TLS tests (apt-get install openssl)"
    );
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let mut c = Command::new("openssl");
    c.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .args(["-days", "2", "-subj", "/CN=localhost"])
    .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]);
    let o = run_bounded(c, 30);
    assert!(o.status.success(), "openssl: {}", stderr(&o));
    (cert, key)
}

fn tls_toml(dir: &Path) -> String {
    let (cert, key) = self_signed_cert(dir);
    format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_connects_over_tls_with_sslmode_require() {
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let h = Helios::start(&pg, &tls_toml(dir.path()));

    let o = psql_via(&h, "postgres", None, "sslmode=require", "\\conninfo");
    assert!(o.status.success(), "psql over TLS failed: {}", stderr(&o));
    assert!(
        stdout(&o).contains("SSL connection (protocol: TLSv1."),
        "\\conninfo does not show TLS: {}",
        stdout(&o)
    );
    assert_psql_ok(
        &psql_via(&h, "postgres", None, "sslmode=require", "select 1"),
        "1",
    );
    // Big enough to span many TLS records, both ways.
    assert_psql_ok(
        &psql_via(
            &h,
            "postgres",
            None,
            "sslmode=require",
            "select sum(length(repeat('x', i))) from generate_series(1, 2000) i",
        ),
        "2001000",
    );
    // Plain connections still work alongside.
    let c = login(&h, "postgres", None).await;
    assert_eq!(scalar(&c, "select 1").await.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_fails_without_tls_configured() {
    let pg = PgServer::start();
    let h = Helios::start(&pg, "");
    let o = psql_via(&h, "postgres", None, "sslmode=require", "select 1");
    assert!(!o.status.success(), "TLS without a certificate configured?");
    assert!(
        stderr(&o).contains("server does not support SSL, but SSL was required"),
        "{}",
        stderr(&o)
    );
    // sslmode=prefer falls back to plain text.
    assert_psql_ok(
        &psql_via(&h, "postgres", None, "sslmode=prefer", "select 1"),
        "1",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_over_tls_with_channel_binding() {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    let dir = tempfile::tempdir().unwrap();
    let h = Helios::start(
        &pg,
        &format!(
            "{}[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n",
            tls_toml(dir.path())
        ),
    );
    assert_psql_ok(
        &psql_via(
            &h,
            "alice",
            Some("alice-pw"),
            "sslmode=require channel_binding=require",
            "select current_user",
        ),
        "alice",
    );
    let o = psql_via(
        &h,
        "alice",
        Some("wrong"),
        "sslmode=require channel_binding=require",
        "select 1",
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("password authentication failed for user \"alice\""),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_over_tls() {
    let pg = PgServer::start();
    pg.psql("create role alice login password 'alice-pw'");
    require_passwords(&pg, "scram-sha-256", "alice");
    let dir = tempfile::tempdir().unwrap();
    let h = Helios::start(
        &pg,
        &format!("{}[auth]\nmethod = \"upstream\"\n", tls_toml(dir.path())),
    );
    assert_psql_ok(
        &psql_via(
            &h,
            "alice",
            Some("alice-pw"),
            "sslmode=require",
            "select current_user",
        ),
        "alice",
    );
    let o = psql_via(&h, "alice", Some("nope"), "sslmode=require", "select 1");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("password authentication failed for user \"alice\""),
        "{}",
        stderr(&o)
    );
}

/// A raw connection's bytes until the server closes it; fails the test if
/// it stays open past the read timeout.
fn read_to_close(s: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return bytes,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}

#[test]
fn a_broken_or_silent_tls_handshake_is_dropped_and_helios_goes_on() {
    use std::io::{Read, Write};
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[server]\nstartup_timeout = \"1s\"\n{}",
            tls_toml(dir.path())
        ),
    );
    let ssl_request = {
        let mut v = 8i32.to_be_bytes().to_vec();
        v.extend(80_877_103i32.to_be_bytes());
        v
    };
    let open = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&ssl_request).unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(b[0], b'S', "TLS is configured: SSLRequest gets 'S'");
        s
    };
    // Not TLS after 'S'.
    let mut junk = open();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_to_close(&mut junk);
    // Nothing after 'S': dropped after startup_timeout.
    let t0 = Instant::now();
    let mut silent = open();
    read_to_close(&mut silent);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "a client silent after 'S' was dropped after {waited:?} (startup_timeout = 1s)"
    );
    assert!(h.is_alive());
    assert_psql_ok(
        &psql_via(&h, "postgres", None, "sslmode=require", "select 1"),
        "1",
    );
}

/// The first authentication request of a startup for `user`, and for SCRAM
/// the server-first-message's salt and iteration count.
fn auth_questions(port: u16, user: &str) -> (Vec<u8>, Option<(String, String)>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut body = 196_608i32.to_be_bytes().to_vec();
    body.extend(format!("user\0{user}\0database\0postgres\0\0").as_bytes());
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend(body);
    s.write_all(&packet).unwrap();
    let read_msg = |s: &mut std::net::TcpStream| {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).unwrap();
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut b = vec![0u8; len - 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(
            head[0], b'R',
            "expected an authentication request for {user}"
        );
        b
    };
    let first = read_msg(&mut s);
    if first[..4] != 10i32.to_be_bytes() {
        return (first, None);
    }
    // SASLInitialResponse for SCRAM-SHA-256 with a fixed client nonce.
    let client_first = b"n,,n=,r=rOprNGfwEbeRWgbNEkqO";
    let mut p = b"SCRAM-SHA-256\0".to_vec();
    p.extend((client_first.len() as i32).to_be_bytes());
    p.extend(client_first);
    let mut m = vec![b'p'];
    m.extend(((p.len() + 4) as i32).to_be_bytes());
    m.extend(p);
    s.write_all(&m).unwrap();
    let cont = read_msg(&mut s);
    assert_eq!(cont[..4], 11i32.to_be_bytes(), "SASLContinue for {user}");
    let text = String::from_utf8_lossy(&cont[4..]).into_owned();
    let field = |k: &str| {
        text.split(',')
            .find_map(|f| f.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            .to_string()
    };
    (first, Some((field("s="), field("i="))))
}

#[test]
fn unknown_users_are_asked_the_same_questions_as_known_ones() {
    let pg = PgServer::start();
    pg.psql("create role alice login");
    // SCRAM: same mechanisms, a salt of the same length that does not change
    // between attempts, the same iteration count.
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n",
    );
    let (alice_first, alice_scram) = auth_questions(h.port, "alice");
    let (ghost_first, ghost_scram) = auth_questions(h.port, "ghost");
    assert_eq!(ghost_first, alice_first, "different SASL mechanisms");
    let (alice_salt, alice_iter) = alice_scram.unwrap();
    let (ghost_salt, ghost_iter) = ghost_scram.unwrap();
    assert_eq!(ghost_iter, alice_iter, "different iteration counts");
    assert_eq!(
        ghost_salt.len(),
        alice_salt.len(),
        "salts of different lengths"
    );
    assert_eq!(auth_questions(h.port, "alice").1.unwrap().0, alice_salt);
    assert_eq!(
        auth_questions(h.port, "ghost").1.unwrap().0,
        ghost_salt,
        "an unknown user's salt changes between attempts (a real one's does not)"
    );
    assert_ne!(
        auth_questions(h.port, "ghost2").1.unwrap().0,
        ghost_salt,
        "every unknown user gets the same salt"
    );
    drop(h);

    // md5: an md5 challenge with a 4-byte salt for both.
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"md5\"\n[[auth.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n",
    );
    for user in ["alice", "ghost"] {
        let (first, _) = auth_questions(h.port, user);
        assert_eq!(first.len(), 8, "{user}: {first:?}");
        assert_eq!(
            first[..4],
            5i32.to_be_bytes(),
            "{user}: not an md5 challenge"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_over_the_unix_socket() {
    let pg = PgServer::start();
    pg.psql("create role alice login password 'alice-pw'");
    require_passwords(&pg, "scram-sha-256", "alice");
    let sock = tempfile::tempdir().unwrap();
    let h = Helios::start(
        &pg,
        &format!(
            "[server]\nunix_socket_dir = \"{}\"\n[auth]\nmethod = \"upstream\"\n",
            sock.path().display()
        ),
    );
    let conn = |pw: &str| {
        format!(
            "host={} port={} user=alice password={pw} dbname=postgres",
            sock.path().display(),
            h.port
        )
    };
    let c = within(20, "unix connect", try_connect(&conn("alice-pw")))
        .await
        .unwrap_or_else(|e| panic!("over the Unix socket: {e:?}"));
    assert_eq!(current_user(&c).await, "alice");
    let e = match within(20, "unix connect", try_connect(&conn("wrong"))).await {
        Ok(_) => panic!("a wrong password got in"),
        Err(e) => db_error(&e).clone(),
    };
    assert_password_failed(&e, "alice");
}

fn md5_helios_with_startup_timeout_1s(pg: &PgServer) -> Helios {
    Helios::start(
        pg,
        "[server]\nstartup_timeout = \"1s\"\n[auth]\nmethod = \"md5\"\n[[auth.users]]\nname = \"postgres\"\npassword = \"pw\"\n",
    )
}

fn startup_packet_for_postgres() -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    body.extend(b"user\0postgres\0database\0postgres\0\0");
    let mut v = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    v.extend(body);
    v
}

#[test]
fn a_client_silent_at_the_password_prompt_is_dropped_after_startup_timeout() {
    use std::io::Write;
    let pg = PgServer::start();
    let mut h = md5_helios_with_startup_timeout_1s(&pg);
    let startup = startup_packet_for_postgres();
    // Asked for a password, the client never answers.
    let t0 = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&startup).unwrap();
    let bytes = read_to_close(&mut s);
    let waited = t0.elapsed();
    assert_eq!(bytes.first(), Some(&b'R'), "asked for a password first");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "a client silent at the password prompt was dropped after {waited:?} (startup_timeout = 1s)"
    );
    // After the password request, at most a FATAL 08P01 (PostgreSQL just
    // hangs up); certainly no AuthenticationOk.
    let len = i32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
    let rest = &bytes[1 + len..];
    if !rest.is_empty() {
        let text = String::from_utf8_lossy(rest);
        assert!(
            rest[0] == b'E' && text.contains("FATAL") && text.contains("08P01"),
            "after the password request: {text:?}"
        );
    }
    assert!(h.is_alive());
}

#[test]
fn startup_timeout_bounds_negotiation_and_authentication_together() {
    use std::io::Write;
    let pg = PgServer::start();
    let mut h = md5_helios_with_startup_timeout_1s(&pg);
    let startup = startup_packet_for_postgres();
    // Slow to send the startup packet, then silent at the password prompt:
    // the whole startup still gets one startup_timeout, not one per step.
    let t0 = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    s.write_all(&startup).unwrap();
    read_to_close(&mut s);
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "the client had {waited:?} to finish startup and authentication (startup_timeout = 1s)"
    );
    assert!(h.is_alive());
}

#[test]
fn plaintext_sent_along_with_an_ssl_request_never_starts_a_session() {
    use std::io::Write;
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[server]\nstartup_timeout = \"2s\"\n{}",
            tls_toml(dir.path())
        ),
    );
    let mut bytes = 8i32.to_be_bytes().to_vec();
    bytes.extend(80_877_103i32.to_be_bytes());
    let mut body = 196_608i32.to_be_bytes().to_vec();
    body.extend(b"user\0postgres\0database\0postgres\0\0");
    bytes.extend(((body.len() + 4) as i32).to_be_bytes());
    bytes.extend(body);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&bytes).unwrap();
    let got = read_to_close(&mut s);
    // AuthenticationOk in the clear would mean the plaintext startup was served.
    let auth_ok = [b'R', 0, 0, 0, 8, 0, 0, 0, 0];
    assert!(
        !got.windows(auth_ok.len()).any(|w| w == auth_ok),
        "a plaintext startup injected after SSLRequest was served: {got:?}"
    );
    assert!(h.is_alive());
}
