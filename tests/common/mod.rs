//! The test harness: a real PostgreSQL per test, and the real Helios binary in
//! front of it.
//!
//! - [`PgServer::start`] copies a data directory made once by `initdb` (kept
//!   in the temp dir, keyed by version) and starts `postgres` on a free port
//!   with `fsync=off`. As root, everything PostgreSQL runs as `postgres`.
//! - [`Helios::start`] writes a config file and starts the `helios` binary
//!   Cargo built for this test run, and waits until it accepts connections.
//!
//! Both are stopped when dropped.

#![allow(dead_code)]

pub mod llm;
pub mod raw;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use tokio_postgres::NoTls;

/// Directory with the PostgreSQL server binaries.
pub fn pg_bindir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.join("initdb").exists() {
                return dir;
            }
        }
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
            .unwrap_or_default();
        dirs.retain(|d| d.join("initdb").exists());
        dirs.sort_by_key(|d| {
            d.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        dirs.pop().expect(
            "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin); run .ci/run or apt-get install postgresql",
        )
    })
    .clone()
}

fn is_root() -> bool {
    // SAFETY-free check: root's home and uid show in `id -u`.
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

/// A command for a PostgreSQL server binary, run as `postgres` when we are root.
fn pg_command(program: &str) -> Command {
    let path = pg_bindir().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn give_to_postgres(path: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "chown {} to postgres failed", path.display());
    }
}

fn run_ok(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free TCP port on 127.0.0.1, never one this process handed out
/// before: the kernel may offer a just-released port again, and a Helios
/// listening on it (or its admin endpoint) would then collide with the next.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A data directory made by initdb once per machine and PostgreSQL version.
fn template() -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let version = String::from_utf8_lossy(
                &Command::new(pg_bindir().join("postgres"))
                    .arg("--version")
                    .output()
                    .expect("postgres --version")
                    .stdout,
            )
            .split_whitespace()
            .last()
            .unwrap_or("unknown")
            .to_string();
            let root = std::env::temp_dir().join(format!("helios-pg-template-{version}"));
            if root.join("data/PG_VERSION").exists() {
                return root;
            }
            // Build next to it, then rename: concurrent test processes race safely.
            let tmp = std::env::temp_dir().join(format!(
                "helios-pg-template-{version}.{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).unwrap();
            give_to_postgres(&tmp);
            let mut c = pg_command("initdb");
            c.arg("-D").arg(tmp.join("data")).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]);
            run_ok(c, "initdb");
            if std::fs::rename(&tmp, &root).is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            root
        })
        .clone()
}

/// A running PostgreSQL, stopped on drop.
pub struct PgServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl PgServer {
    pub fn start() -> PgServer {
        Self::start_with(&[])
    }

    /// Start with extra `-c name=value` settings.
    pub fn start_with(settings: &[&str]) -> PgServer {
        let dir = tempfile::Builder::new()
            .prefix("helios-test-pg.")
            .tempdir()
            .unwrap();
        run_ok(
            {
                let mut c = Command::new("cp");
                c.arg("-a").arg(template().join("data")).arg(dir.path());
                c
            },
            "copying the template data directory",
        );
        give_to_postgres(dir.path());
        for attempt in 0.. {
            let port = free_port();
            let mut opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                dir.path().display()
            );
            for s in settings {
                opts.push_str(&format!(" -c {s}"));
            }
            let mut c = pg_command("pg_ctl");
            c.arg("-D")
                .arg(dir.path().join("data"))
                .arg("-l")
                .arg(dir.path().join("postgres.log"))
                .args(["-w", "-t", "30", "-o", &opts, "start"])
                .stdout(Stdio::null());
            let out = c.output().expect("pg_ctl start");
            if out.status.success() {
                return PgServer { dir, port };
            }
            assert!(
                attempt < 3,
                "PostgreSQL did not start:\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(dir.path().join("postgres.log")).unwrap_or_default()
            );
        }
        unreachable!()
    }

    /// libpq-style connection string for a direct connection.
    pub fn conn_str(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// The upstream URL Helios should use (TCP).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The directory holding the Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Run SQL directly (psql), panicking on error; returns stdout.
    pub fn psql(&self, sql: &str) -> String {
        let out = psql(self.port, "postgres", &["-c", sql]);
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stop immediately (a crash, as far as clients can tell).
    pub fn kill(&self) {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.status();
    }

    /// Start again after [`PgServer::kill`], on the same port.
    pub fn restart(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("postgres.log"))
            .args(["-w", "-t", "30", "-o", &opts, "start"])
            .stdout(Stdio::null());
        run_ok(c, "pg_ctl restart");
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.conn_str()).await
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// psql (the client), with `-X -q -v ON_ERROR_STOP=1 -At`, against 127.0.0.1:port.
pub fn psql(port: u16, user: &str, args: &[&str]) -> Output {
    Command::new(pg_bindir().join("psql"))
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-h",
            "127.0.0.1",
        ])
        .args(["-p", &port.to_string(), "-U", user, "-d", "postgres"])
        .args(args)
        .env_remove("PGPASSWORD")
        .output()
        .expect("running psql")
}

/// Connect with tokio-postgres and drive the connection in the background.
pub async fn connect(conn_str: &str) -> tokio_postgres::Client {
    try_connect(conn_str)
        .await
        .unwrap_or_else(|e| panic!("connect {conn_str}: {e}"))
}

pub async fn try_connect(conn_str: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conn_str, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A running Helios, killed on drop.
pub struct Helios {
    pub child: Child,
    pub port: u16,
    /// The admin HTTP endpoint's port.
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Helios {
    /// Helios in front of `pg` (over TCP), with extra TOML appended to the
    /// generated config (sections other than `[server]`/`[upstream]` main keys).
    pub fn start(pg: &PgServer, extra_toml: &str) -> Helios {
        Self::start_config(&format!(
            "[upstream]\nurl = \"{}\"\nconnect_retries = 0\n{extra_toml}",
            pg.url()
        ))
    }

    /// Helios with exactly this config, plus `[server] listen` set to a free port
    /// (a `[server]` table in `toml` is merged: write its keys under
    /// `[server]` anywhere in the text).
    pub fn start_config(toml: &str) -> Helios {
        let dir = tempfile::Builder::new()
            .prefix("helios-test.")
            .tempdir()
            .unwrap();
        let port = free_port();
        let admin_port = free_port();
        // Every instance gets its own admin port (the default, 9930, would
        // be shared by tests running side by side).
        let toml = if toml.contains("[admin]") {
            toml.replace(
                "[admin]",
                &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\""),
            )
        } else {
            format!("{toml}\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n")
        };
        let toml = if toml.contains("[server]") {
            toml.replace(
                "[server]",
                &format!("[server]\nlisten = \"127.0.0.1:{port}\""),
            )
        } else {
            format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{toml}")
        };
        let config = dir.path().join("helios.toml");
        std::fs::write(&config, &toml).unwrap();
        let log = dir.path().join("helios.log");
        let child = Command::new(env!("CARGO_BIN_EXE_helios"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "helios=debug,info")
            .env_remove("HELIOS_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting helios");
        let mut h = Helios {
            child,
            port,
            admin_port,
            dir,
            log,
        };
        h.wait_ready();
        h
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("helios exited with {status} at startup:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("helios did not start listening:\n{}", self.log());
    }

    /// The configuration file Helios was started with (tests rewrite it
    /// and reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("helios.toml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Print Helios's log lines (for a failing test's output).
    pub fn dump_log(&self) {
        let f = std::fs::File::open(&self.log).unwrap();
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            eprintln!("helios| {line}");
        }
    }

    pub fn conn_str(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres",
            self.port
        )
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.conn_str("postgres")).await
    }

    /// Resident memory now and at its peak, in kB (Linux).
    pub fn rss_kb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Helios {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.dump_log();
        }
    }
}

/// The SQLSTATE of a tokio-postgres error, if the server sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_string())
}
