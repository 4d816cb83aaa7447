//! Secrets stay secret: client and upstream passwords, the password in the
//! upstream URL, stored SCRAM secrets, the admin token and an LLM API key
//! never show in Helios's log (at trace level, every crate), its audit
//! file, `/metrics`, `/admin/*`, `SHOW HELIOS ...`, or any error or notice
//! a client gets; nor do password literals of `ALTER ROLE ... PASSWORD`
//! statements (the audit and slow-query logs redact literals).
//!
//! Every secret contains [`MARK`], which nothing else in these tests
//! does: a surface leaks if it contains the mark at all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

use crate::common::llm::FakeLlm;
use crate::common::{free_port, PgServer};
use crate::support::{no_auth_failure_limit, within};

const MARK: &str = "S3cr3t";

const SVC_URL_PW: &str = "SvcUrl-S3cr3t-pw-7f2a";
const SVC_CLIENT_PW: &str = "SvcClient-S3cr3t-pw-3d81";
const ALICE_CLIENT_PW: &str = "AliceClient-S3cr3t-pw-c2e9";
const ALICE_UP_PW: &str = "AliceUp-S3cr3t-pw-91c4";
const MALLORY_CLIENT_PW: &str = "MalloryClient-S3cr3t-pw-8a6f";
const MALLORY_WRONG_UP_PW: &str = "MalloryWrongUp-S3cr3t-pw-e413";
const CAROL_PW: &str = "Carol-S3cr3t-pw-0b7d";
const ADMIN_TOKEN: &str = "AdminToken-S3cr3t-7f2a-0123456789";
const API_KEY: &str = "sk-ApiKey-S3cr3t-7f2a-abcdef";
const WRONG_URL_PW: &str = "WrongUrl-S3cr3t-pw-6c1d";

// ------------------------------------------------------------------ helpers

/// Helios run with `log.level` in charge (no `RUST_LOG`), its stdout and
/// stderr kept in files. Killed on drop.
struct Traced {
    child: Child,
    port: u16,
    admin_port: u16,
    dir: tempfile::TempDir,
}

impl Traced {
    /// `toml` is the whole config but `[server] listen` and `[admin]
    /// listen`, which are added (the text must have no `[server]` or
    /// `[admin]` table of its own; use `server_extra` / `admin_extra`).
    fn start(toml: &str, server_extra: &str, admin_extra: &str) -> Traced {
        let dir = tempfile::Builder::new()
            .prefix("helios-secrets.")
            .tempdir()
            .unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let config = dir.path().join("helios.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n{server_extra}\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n{admin_extra}\n{toml}"
            ),
        )
        .unwrap();
        let child = Self::spawn(dir.path());
        let mut h = Traced {
            child,
            port,
            admin_port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", h.port)).is_err() {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("helios exited with {status}:\n{}", h.output());
            }
            assert!(Instant::now() < deadline, "helios did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        h
    }

    fn spawn(dir: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_helios"))
            .arg("--config")
            .arg(dir.join("helios.toml"))
            .env_remove("RUST_LOG")
            .env_remove("HELIOS_CONFIG")
            .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("starting helios")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("helios.toml")
    }

    /// Everything the process wrote.
    fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }

    fn conn_str(&self, user: &str, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres password='{password}' connect_timeout=10",
            self.port
        )
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the surfaces showed, by name, to be searched for secrets at the end.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    /// No surface shows any of `secrets` (and none shows [`MARK`]).
    fn assert_clean(&self, secrets: &[&str]) {
        let mut leaks = Vec::new();
        for (what, text) in &self.0 {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| secrets.iter().copied().chain([MARK]).any(|s| l.contains(s)))
                .collect();
            if lines.is_empty() {
                continue;
            }
            let mut shown: Vec<String> = Vec::new();
            for l in &lines {
                let l: String = l.chars().take(400).collect();
                if shown.len() < 6 && !shown.contains(&l) {
                    shown.push(l);
                }
            }
            leaks.push(format!(
                "{what}: {} line(s), e.g.\n  {}",
                lines.len(),
                shown.join("\n  ")
            ));
        }
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    }
}

/// A client that keeps the notices it gets.
async fn open(conn_str: &str) -> Result<(Client, Arc<Mutex<Vec<String>>>), tokio_postgres::Error> {
    let (client, mut conn) = within(
        20,
        "connect",
        tokio_postgres::connect(conn_str, tokio_postgres::NoTls),
    )
    .await?;
    let notices = Arc::new(Mutex::new(Vec::new()));
    let n = notices.clone();
    tokio::spawn(async move {
        while let Some(Ok(m)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let AsyncMessage::Notice(d) = m {
                n.lock().unwrap().push(format!("{d:?}"));
            }
        }
    });
    Ok((client, notices))
}

/// Log in; a failure is recorded as what the client saw.
async fn login(h: &Traced, user: &str, pw: &str, seen: &mut Seen) -> Option<Client> {
    match open(&h.conn_str(user, pw)).await {
        Ok((c, _)) => Some(c),
        Err(e) => {
            seen.add(format!("the error {user} got logging in"), format!("{e:?}"));
            None
        }
    }
}

/// Run `sql`; rows, errors and the like are recorded.
async fn run(c: &Client, sql: &str, seen: &mut Seen) -> bool {
    match within(20, sql, c.simple_query(sql)).await {
        Ok(msgs) => {
            let mut text = String::new();
            for m in msgs {
                if let SimpleQueryMessage::Row(r) = m {
                    for i in 0..r.len() {
                        text.push_str(r.get(i).unwrap_or("NULL"));
                        text.push('|');
                    }
                    text.push('\n');
                }
            }
            seen.add(format!("the rows of {sql}"), text);
            true
        }
        Err(e) => {
            seen.add(format!("the error of {sql}"), format!("{e:?}"));
            false
        }
    }
}

/// One HTTP/1.1 request (`Connection: close`); the whole answer, head and body.
fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n{auth}\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Make the upstream ask every user but `postgres` for a SCRAM password.
fn require_passwords(pg: &PgServer) {
    let hba = pg.dir.path().join("data").join("pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    assert_eq!(pg.psql("select pg_reload_conf()").trim(), "t");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = crate::common::psql(pg.port, "svc", &["-w", "-c", "select 1"]);
        if !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("password") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the upstream does not ask for passwords"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Poll `f` for up to 10 s until it is true.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "waited 10s for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn upstream_roles(pg: &PgServer) -> String {
    pg.psql(&format!(
        "create role svc login createrole password '{SVC_URL_PW}';
         create role alice login password '{ALICE_UP_PW}';
         create role mallory login password 'mallory-upstream';
         create role carol login password '{CAROL_PW}';
         create table items (id int); insert into items values (1), (2);
         grant select on items to public;"
    ));
    // Carol's stored SCRAM secret, for Helios's `secret`.
    pg.psql("select rolpassword from pg_authid where rolname = 'carol'")
        .trim()
        .to_string()
}

// -------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_shows_in_logs_audit_metrics_show_output_http_answers_or_errors() {
    let pg = PgServer::start();
    let carol_secret = upstream_roles(&pg);
    assert!(carol_secret.starts_with("SCRAM-SHA-256$"), "{carol_secret}");
    // Its StoredKey and ServerKey (the salt is no secret).
    let carol_keys: Vec<String> = carol_secret
        .rsplit('$')
        .next()
        .unwrap()
        .split(':')
        .map(str::to_string)
        .collect();
    require_passwords(&pg);
    let llm = FakeLlm::start().await;
    let audit = tempfile::tempdir().unwrap();
    let audit_file = audit.path().join("audit.log");
    let h = Traced::start(
        &format!(
            "[upstream]\nurl = \"postgres://svc:{SVC_URL_PW}@127.0.0.1:{}/postgres\"\nconnect_retries = 0\n\
             [auth]\nmethod = \"scram-sha-256\"\n\
             [[auth.users]]\nname = \"svc\"\npassword = \"{SVC_CLIENT_PW}\"\nupstream_password = \"{SVC_URL_PW}\"\n\
             [[auth.users]]\nname = \"alice\"\npassword = \"{ALICE_CLIENT_PW}\"\nupstream_password = \"{ALICE_UP_PW}\"\n\
             [[auth.users]]\nname = \"mallory\"\npassword = \"{MALLORY_CLIENT_PW}\"\nupstream_password = \"{MALLORY_WRONG_UP_PW}\"\n\
             [[auth.users]]\nname = \"carol\"\nsecret = \"{carol_secret}\"\nupstream_password = \"{CAROL_PW}\"\n\
             [log]\nlevel = \"trace\"\nslow_query_threshold = \"100ms\"\n\
             [audit]\nenabled = true\nfile = \"{}\"\n\
             [nl]\n[[nl.providers]]\nkind = \"openai\"\nname = \"fake\"\nbase_url = \"{}\"\nmodel = \"m\"\napi_key = \"{API_KEY}\"\ntimeout = \"5s\"\nmax_retries = 0\n\
             {}",
            pg.port,
            audit_file.display(),
            llm.base_url(),
            no_auth_failure_limit(),
        ),
        "",
        &format!("token = \"{ADMIN_TOKEN}\"\nusers = [\"alice\"]\n"),
    );
    let mut seen = Seen::default();

    // Logins: right and wrong passwords, an unknown user, a user whose
    // upstream password is wrong (the upstream refuses Helios).
    let mut logins = Vec::new();
    for (user, pw) in [
        ("svc", SVC_CLIENT_PW),
        ("alice", ALICE_CLIENT_PW),
        ("carol", CAROL_PW),
    ] {
        match login(&h, user, pw, &mut seen).await {
            Some(c) => logins.push(c),
            None => panic!("{user} cannot log in: {:?}", seen.0.last()),
        }
    }
    let (carol, alice, svc) = (
        logins.pop().unwrap(),
        logins.pop().unwrap(),
        logins.pop().unwrap(),
    );
    for (user, pw) in [
        ("svc", "Guess1-S3cr3t-pw-aa01"),
        ("svc", SVC_URL_PW),
        ("alice", ALICE_UP_PW),
        ("ghost", "Guess2-S3cr3t-pw-bb02"),
        ("mallory", MALLORY_CLIENT_PW),
    ] {
        assert!(
            login(&h, user, pw, &mut seen).await.is_none(),
            "{user} got in with {pw}"
        );
    }
    assert!(
        seen.0
            .iter()
            .any(|(w, t)| w.contains("mallory") && t.contains("28P01")),
        "mallory's upstream login should have failed"
    );

    // Statements with password literals, in every quoting, in both
    // protocols, failing, and slow.
    for sql in [
        "select current_user, count(*) from items".to_string(),
        "CREATE ROLE bob LOGIN PASSWORD 'CreateLit-S3cr3t-pw-1'".to_string(),
        "ALTER ROLE bob PASSWORD 'AlterLit-S3cr3t-pw-2'".to_string(),
        "ALTER ROLE bob WITH PASSWORD E'EscLit-S3cr3t-pw-\\'3'".to_string(),
        "ALTER ROLE bob PASSWORD $pw$DollarLit-S3cr3t-pw-4$pw$".to_string(),
        "ALTER ROLE nobody PASSWORD 'FailLit-S3cr3t-pw-5'".to_string(),
        "ALTER ROLE bob PASSWORD 'SyntaxLit-S3cr3t-pw-6' oops".to_string(),
        "ALTER ROLE bob PASSWORD 'SlowLit-S3cr3t-pw-7'; SELECT pg_sleep(0.3)".to_string(),
    ] {
        run(&svc, &sql, &mut seen).await;
    }
    match svc
        .execute("ALTER ROLE bob PASSWORD 'ExtLit-S3cr3t-pw-8'", &[])
        .await
    {
        Ok(_) => {}
        Err(e) => seen.add("the extended-protocol ALTER ROLE's error", format!("{e:?}")),
    }
    run(&carol, "select current_user", &mut seen).await;

    // A question, answered and failing.
    llm.reply_text("SELECT count(*) FROM items");
    assert!(
        run(
            &svc,
            "SELECT * FROM nl('how many items are there')",
            &mut seen
        )
        .await
    );
    llm.reply_status(
        401,
        "{\"error\": {\"message\": \"Incorrect API key provided\"}}",
    );
    run(
        &svc,
        "SELECT * FROM nl('how many items are left')",
        &mut seen,
    )
    .await;
    assert_eq!(
        llm.requests()[0]
            .header("authorization")
            .map(str::to_string),
        Some(format!("Bearer {API_KEY}")),
        "control: the provider got the key"
    );

    // What operators see.
    for sql in [
        "SHOW HELIOS CONFIG",
        "SHOW HELIOS CLIENTS",
        "SHOW HELIOS SERVERS",
        "SHOW HELIOS POOLS",
        "SHOW HELIOS STATS",
        "SHOW HELIOS VERSION",
    ] {
        assert!(run(&alice, sql, &mut seen).await, "{sql} failed");
    }
    run(&svc, "HELIOS RELOAD", &mut seen).await; // not an admin user
                                                 // A reload that changes secrets (a client password, the token).
    let text = std::fs::read_to_string(h.config_path()).unwrap();
    std::fs::write(
        h.config_path(),
        text.replace(SVC_CLIENT_PW, "SvcClient2-S3cr3t-pw-4e92")
            .replace(ADMIN_TOKEN, "AdminToken2-S3cr3t-7f2a-0123456789"),
    )
    .unwrap();
    let (admin, notices) = open(&h.conn_str("alice", ALICE_CLIENT_PW))
        .await
        .expect("alice gets in");
    assert!(run(&admin, "HELIOS RELOAD", &mut seen).await);
    let notices = notices.lock().unwrap().clone();
    assert!(
        notices.iter().any(|n| n.contains("auth.users")),
        "control: the reload applied the new password: {notices:?}"
    );
    seen.add("HELIOS RELOAD's notices", notices.join("\n"));
    let token = "AdminToken2-S3cr3t-7f2a-0123456789";

    let port = h.admin_port;
    let answers = tokio::task::spawn_blocking(move || {
        [
            ("GET", "/metrics", None),
            ("GET", "/admin/config", Some(token)),
            ("GET", "/admin/config", None),
            ("GET", "/admin/config", Some(&token[..token.len() - 1])),
            ("POST", "/admin/reload", Some(token)),
            ("GET", "/health/live", None),
            ("GET", "/health/ready", None),
        ]
        .map(|(m, p, t)| {
            (
                format!("{m} {p} (token: {})", t.is_some()),
                http(port, m, p, t),
            )
        })
    })
    .await
    .unwrap();
    assert!(
        answers[1].1.starts_with("HTTP/1.1 200") && answers[1].1.contains("<redacted>"),
        "control: /admin/config with the token: {}",
        answers[1].1
    );
    for (what, body) in answers {
        seen.add(what, body);
    }

    // The records are all written (controls: they exist, redacted).
    eventually("the audit records of the ALTER ROLE statements", || {
        let a = std::fs::read_to_string(&audit_file).unwrap_or_default();
        a.matches("PASSWORD ?").count() >= 6 && a.contains("nl(?)")
    })
    .await;
    eventually("the slow query's log line", || {
        h.output()
            .lines()
            .any(|l| l.contains("slow query") && l.contains("pg_sleep"))
    })
    .await;
    drop((svc, alice, carol, admin));
    seen.add(
        "the audit file",
        std::fs::read_to_string(&audit_file).unwrap(),
    );
    let output = h.output();
    assert!(
        output.contains("TRACE") || output.contains("trace"),
        "control: the log is at trace level"
    );
    seen.add("Helios's log", output);

    let mut secrets = vec![
        SVC_URL_PW,
        SVC_CLIENT_PW,
        ALICE_CLIENT_PW,
        ALICE_UP_PW,
        MALLORY_CLIENT_PW,
        MALLORY_WRONG_UP_PW,
        CAROL_PW,
        ADMIN_TOKEN,
        API_KEY,
    ];
    secrets.extend(carol_keys.iter().map(String::as_str));
    seen.assert_clean(&secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_in_the_upstream_url_and_password_passthrough_leak_nothing() {
    let pg = PgServer::start();
    upstream_roles(&pg);
    require_passwords(&pg);
    let mut seen = Seen::default();

    // The URL's password is wrong: Helios's own upstream logins fail, in
    // the JSON log format this time.
    let h = Traced::start(
        &format!(
            "[upstream]\nurl = \"postgres://svc:{WRONG_URL_PW}@127.0.0.1:{}/postgres\"\nconnect_retries = 0\n\
             [log]\nlevel = \"trace\"\nformat = \"json\"\n",
            pg.port
        ),
        "",
        "",
    );
    assert!(login(&h, "svc", "", &mut seen).await.is_none());
    assert!(
        seen.0.iter().any(|(_, t)| t.contains("28P01")),
        "control: the upstream refused the URL's password"
    );
    let port = h.admin_port;
    for (what, text) in tokio::task::spawn_blocking(move || {
        [
            (
                "GET /health/ready",
                http(port, "GET", "/health/ready", None),
            ),
            ("GET /metrics", http(port, "GET", "/metrics", None)),
        ]
    })
    .await
    .unwrap()
    {
        seen.add(what, text);
    }
    seen.add("Helios's log (wrong URL password)", h.output());
    drop(h);

    // Passthrough: the client's password goes to the upstream as is
    // (over loopback, which Helios accepts as local).
    let h = Traced::start(
        &format!(
            "[upstream]\nurl = \"postgres://postgres@127.0.0.1:{}/postgres\"\nconnect_retries = 0\n\
             [auth]\nmethod = \"upstream\"\n[log]\nlevel = \"trace\"\n{}",
            pg.port,
            no_auth_failure_limit()
        ),
        "",
        "",
    );
    let alice = login(&h, "alice", ALICE_UP_PW, &mut seen)
        .await
        .expect("alice gets in with her upstream password");
    run(&alice, "select current_user", &mut seen).await;
    assert!(login(&h, "alice", "Guess3-S3cr3t-pw-cc03", &mut seen)
        .await
        .is_none());
    assert!(login(&h, "ghost", "Guess4-S3cr3t-pw-dd04", &mut seen)
        .await
        .is_none());
    run(&alice, "SHOW HELIOS CLIENTS", &mut seen).await;
    run(&alice, "SHOW HELIOS SERVERS", &mut seen).await;
    drop(alice);
    seen.add("Helios's log (passthrough)", h.output());
    seen.assert_clean(&[WRONG_URL_PW, ALICE_UP_PW]);
}

/// A config edit that breaks the file: the reload (and a start with that
/// file) is refused with an error naming the problem. The error must not
/// quote the secret on the broken line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_does_not_quote_the_secrets_of_the_file() {
    let pg = PgServer::start();
    let good = format!(
        "[upstream]\nurl = \"postgres://postgres@127.0.0.1:{}/postgres\"\nconnect_retries = 0\n\
         [auth]\nmethod = \"scram-sha-256\"\n\
         [[auth.users]]\nname = \"postgres\"\npassword = \"Good-pw-1234\"\n",
        pg.port
    );
    let h = Traced::start(
        &format!("{good}{}", no_auth_failure_limit()),
        "",
        "token = \"admin-token-0123456789abcdef\"\nusers = [\"postgres\"]\n",
    );
    let (c, _) = open(&h.conn_str("postgres", "Good-pw-1234"))
        .await
        .expect("postgres gets in");
    let mut seen = Seen::default();
    let broken = [
        (
            "an unterminated string",
            "password = \"Unterminated-S3cr3t-pw-5a5a\n",
        ),
        (
            "a stray character after the string",
            "password = \"Stray-S3cr3t-pw-6b6b\"x\n",
        ),
        (
            "an unterminated ${ in the value",
            "password = \"Dollar${Brace-S3cr3t-pw-7c7c\"\n",
        ),
        (
            "a number instead of a string",
            "password = 123\nsecret = [\"List-S3cr3t-pw-8d8d\"]\n",
        ),
    ];
    for (what, line) in broken {
        let text = std::fs::read_to_string(h.config_path()).unwrap();
        let edited = text.replace("password = \"Good-pw-1234\"\n", line);
        assert_ne!(edited, text);
        std::fs::write(h.config_path(), &edited).unwrap();
        assert!(
            !run(&c, "HELIOS RELOAD", &mut seen).await,
            "{what}: the reload was accepted"
        );
        let port = h.admin_port;
        let answer = tokio::task::spawn_blocking(move || {
            http(
                port,
                "POST",
                "/admin/reload",
                Some("admin-token-0123456789abcdef"),
            )
        })
        .await
        .unwrap();
        seen.add(format!("POST /admin/reload with {what}"), answer);
        // Starting with that file fails too, saying why on stderr.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("helios.toml"), &edited).unwrap();
        let mut child = Traced::spawn(dir.path());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{what}: helios started with a broken file");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(!status.success(), "{what}: helios started");
        let out = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
        assert!(!out.trim().is_empty(), "{what}: no error on stderr");
        seen.add(format!("stderr of a start with {what}"), out);
        std::fs::write(h.config_path(), &text).unwrap();
    }
    // The running config is untouched: the good password still works.
    drop(c);
    assert!(open(&h.conn_str("postgres", "Good-pw-1234")).await.is_ok());
    seen.add("Helios's log", h.output());
    seen.assert_clean(&[]);
}
