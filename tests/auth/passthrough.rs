//! Password passthrough (`method = "upstream"`): the upstream judges every login.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, try_connect, Helios, PgServer};
use crate::support::{
    assert_password_failed, assert_psql_ok, current_user, db_error, login, postgres_log, psql_via,
    refused, require_passwords, scalar, within,
};

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
            "[server]\nlisten = \"0.0.0.0:{port}\"\n[upstream]\nurl = \"{}\"\nconnect_retries = 0\n[auth]\nmethod = \"upstream\"\n[admin]\nenabled = false\n",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_over_the_unix_socket() {
    let pg = PgServer::start();
    pg.psql("create role alice login password 'alice-pw'");
    require_passwords(&pg, "scram-sha-256", "alice");
    let sock = tempfile::tempdir().unwrap();
    let h = Helios::start(
        &pg,
        &format!(
            "[server]\nunix_socket_dir = \"{}\"\n[auth]\nmethod = \"upstream\"\n[admin]\nenabled = false\n",
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
