//! Idle client connections: how many a PostgreSQL-wire server (Helios, PgBouncer,
//! PostgreSQL) holds, and what each costs it in memory.
//!
//! Opens `--clients` connections at `--concurrency` at a time, each logging in
//! with a protocol-3.0 StartupMessage (trust authentication only) and reading
//! until ReadyForQuery; then holds them all idle. With `--pid`, the server's
//! VmRSS is read from /proc before the first connection and once all are
//! established and have been idle for a second: (after - before) / established
//! is the memory per idle client. After `--hold` seconds every connection is
//! checked (still open, nothing received); with `--query-every` each one also
//! runs `SELECT 1` once (at `--concurrency` at a time, each closing after its
//! answer, so a session-mode pool needs no more upstream connections than
//! that). Every wait is bounded: `--timeout` per connection, `--deadline` per
//! phase. Exits 1 if any connection failed.
//!
//!   cargo bench --bench idle_clients -- --port 6432 --clients 10000 --pid $(pgrep -n helios)
//!
//! The last line is machine-readable (`RESULT key=value ...`), for
//! benches/load.sh.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Parser, Debug)]
#[command(
    about = "Hold many idle PostgreSQL client connections; report the server's memory per client"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 6432)]
    port: u16,
    #[arg(long, default_value = "postgres")]
    user: String,
    #[arg(long, default_value = "postgres")]
    db: String,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Logins (and later queries) under way at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Seconds to keep holding every connection after the memory reading.
    #[arg(long, default_value_t = 5)]
    hold: u64,
    /// The server's process id: its VmRSS is read from /proc/<pid>/status.
    #[arg(long)]
    pid: Option<u32>,
    /// After holding, each connection runs `SELECT 1` once and checks the answer.
    #[arg(long)]
    query_every: bool,
    /// Seconds one connection may take to connect and log in (and to answer).
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Seconds each phase (the logins, the queries) may take in all; a
    /// connection whose turn has not come by then counts as failed.
    #[arg(long, default_value_t = 300)]
    deadline: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Why one connection failed: the key failures are counted under.
#[derive(Debug)]
struct Failure(String);

impl Failure {
    fn io(what: &str, e: std::io::Error) -> Self {
        Failure(format!("{what}: {e}"))
    }
}

/// One backend message: its type byte and body.
struct Message {
    tag: u8,
    body: Vec<u8>,
}

async fn read_message(s: &mut TcpStream) -> Result<Message, Failure> {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Failure("connection closed by the server".into())
        } else {
            Failure::io("read", e)
        }
    })?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if !(4..=1 << 20).contains(&len) {
        return Err(Failure(format!(
            "bad message length {len} (type {:?})",
            header[0] as char
        )));
    }
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body)
        .await
        .map_err(|e| Failure::io("read", e))?;
    Ok(Message {
        tag: header[0],
        body,
    })
}

/// "SQLSTATE SEVERITY: message" from an ErrorResponse body.
fn error_response(body: &[u8]) -> Failure {
    let (mut code, mut severity, mut message) = (String::new(), String::new(), String::new());
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(&tail[..end]).into_owned();
        match field {
            b'C' => code = value,
            b'V' => severity = value,
            b'S' if severity.is_empty() => severity = value,
            b'M' => message = value,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    Failure(format!("{code} {severity}: {message}"))
}

fn startup_message(user: &str, db: &str) -> Vec<u8> {
    let mut m = vec![0u8; 4];
    m.extend_from_slice(&196608u32.to_be_bytes()); // protocol 3.0
    for (k, v) in [
        ("user", user),
        ("database", db),
        ("application_name", "idle_clients"),
    ] {
        m.extend_from_slice(k.as_bytes());
        m.push(0);
        m.extend_from_slice(v.as_bytes());
        m.push(0);
    }
    m.push(0);
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_be_bytes());
    m
}

/// Connects and logs in; returns the connection once ReadyForQuery arrived.
async fn login(addr: &str, startup: &[u8]) -> Result<TcpStream, Failure> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::io("connect", e))?;
    s.set_nodelay(true).map_err(|e| Failure::io("nodelay", e))?;
    s.write_all(startup)
        .await
        .map_err(|e| Failure::io("write", e))?;
    loop {
        let m = read_message(&mut s).await?;
        match m.tag {
            b'R' => {
                let code = m
                    .body
                    .get(..4)
                    .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
                if code != Some(0) {
                    return Err(Failure(format!(
                        "authentication request {code:?}: only trust (AuthenticationOk) is supported"
                    )));
                }
            }
            b'E' => return Err(error_response(&m.body)),
            b'Z' => return Ok(s),
            b'S' | b'K' | b'N' => {}
            t => {
                return Err(Failure(format!(
                    "unexpected message {:?} during login",
                    t as char
                )))
            }
        }
    }
}

/// Runs `SELECT 1` and checks the one row "1"; then says goodbye.
async fn select_one(mut s: TcpStream) -> Result<(), Failure> {
    const QUERY: &[u8] = b"SELECT 1\0";
    let mut q = vec![b'Q'];
    q.extend_from_slice(&(4 + QUERY.len() as u32).to_be_bytes());
    q.extend_from_slice(QUERY);
    s.write_all(&q).await.map_err(|e| Failure::io("write", e))?;
    let mut value = None;
    let mut error = None;
    loop {
        let m = read_message(&mut s).await?;
        match m.tag {
            b'T' | b'C' | b'N' | b'S' => {}
            b'D' => {
                // int16 column count, int32 length, the text.
                value = m.body.get(6..).map(|v| v.to_vec());
            }
            b'E' => error = Some(error_response(&m.body)),
            b'Z' => break,
            t => {
                return Err(Failure(format!(
                    "unexpected message {:?} answering SELECT 1",
                    t as char
                )))
            }
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    if value.as_deref() != Some(b"1") {
        return Err(Failure(format!(
            "SELECT 1 answered {:?}",
            value.map(|v| String::from_utf8_lossy(&v).into_owned())
        )));
    }
    let _ = s.write_all(&[b'X', 0, 0, 0, 4]).await;
    Ok(())
}

/// A connection that has been idle: still open with nothing to read?
fn check_idle(s: &mut TcpStream) -> Result<(), Failure> {
    let mut buf = [0u8; 4096];
    // The runtime has seen any event on the socket by now: a read that is
    // not ready at once means the server sent nothing and did not close.
    match s.read(&mut buf).now_or_never() {
        None => Ok(()),
        Some(Ok(0)) => Err(Failure("closed by the server while idle".into())),
        Some(Ok(n)) if buf[0] == b'E' && n > 5 => Err(error_response(&buf[5..n])),
        Some(Ok(_)) => Err(Failure(format!(
            "unexpected message {:?} while idle",
            buf[0] as char
        ))),
        Some(Err(e)) => Err(Failure::io("read while idle", e)),
    }
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; returns it.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn raise_nofile_limit() -> Option<u64> {
    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }
    const RLIMIT_NOFILE: i32 = 7;
    unsafe extern "C" {
        fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
    }
    let mut l = RLimit { cur: 0, max: 0 };
    // SAFETY: plain libc calls with a valid, properly laid out struct rlimit.
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut l) != 0 {
            return None;
        }
        if l.cur < l.max {
            let raised = RLimit {
                cur: l.max,
                max: l.max,
            };
            if setrlimit(RLIMIT_NOFILE, &raised) == 0 {
                l.cur = l.max;
            }
        }
    }
    Some(l.cur)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn raise_nofile_limit() -> Option<u64> {
    None
}

type Failures = BTreeMap<String, usize>;

/// Runs `work` under `timeout`, unless the phase's `deadline` has passed.
async fn bounded<T>(
    work: impl std::future::Future<Output = Result<T, Failure>>,
    what: &str,
    timeout: Duration,
    deadline: Instant,
) -> Result<T, Failure> {
    let now = Instant::now();
    if now >= deadline {
        return Err(Failure(format!(
            "{what}: not started, the phase deadline passed"
        )));
    }
    match tokio::time::timeout(timeout.min(deadline - now), work).await {
        Ok(r) => r,
        Err(_) if now + timeout <= deadline => Err(Failure(format!(
            "{what}: no answer within {}s",
            timeout.as_secs()
        ))),
        Err(_) => Err(Failure(format!("{what}: cut off by the phase deadline"))),
    }
}

fn add_failure(failures: &mut Failures, phase: &str, f: Failure) {
    *failures.entry(format!("{phase}: {}", f.0)).or_default() += 1;
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let nofile = raise_nofile_limit();
    if let Some(n) = nofile {
        if (n as usize) < args.clients + 64 {
            eprintln!(
                "warning: open-file limit {n} is below {} clients (raise the hard limit: ulimit -Hn)",
                args.clients
            );
        }
    }
    let addr = format!("{}:{}", args.host, args.port);
    let startup = Arc::new(startup_message(&args.user, &args.db));
    let timeout = Duration::from_secs(args.timeout);
    let phase = Duration::from_secs(args.deadline);
    let concurrency = args.concurrency.max(1);
    let mut failures = Failures::new();

    let rss_before = args.pid.and_then(rss_kb);
    println!(
        "idle_clients: {} clients to {addr} (user {}, database {}), {concurrency} at a time; open-file limit {}",
        args.clients,
        args.user,
        args.db,
        nofile.map_or("?".into(), |n| n.to_string())
    );

    // Log in, `concurrency` at a time.
    let started = Instant::now();
    let deadline = started + phase;
    let gate = Arc::new(Semaphore::new(concurrency));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let (gate, addr, startup) = (gate.clone(), addr.clone(), startup.clone());
        let (done, failed) = (done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let r = bounded(login(&addr, &startup), "ReadyForQuery", timeout, deadline).await;
            match &r {
                Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                Err(_) => failed.fetch_add(1, Ordering::Relaxed),
            };
            r
        }));
    }
    let progress = {
        let (done, failed, n) = (done.clone(), failed.clone(), args.clients);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!(
                    "  ... {} established, {} failed of {n}",
                    done.load(Ordering::Relaxed),
                    failed.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut conns = Vec::with_capacity(args.clients);
    for t in tasks {
        match t.await.expect("login task panicked") {
            Ok(s) => conns.push(s),
            Err(f) => add_failure(&mut failures, "login", f),
        }
    }
    progress.abort();
    let login_secs = started.elapsed().as_secs_f64();
    let established = conns.len();
    println!(
        "established: {established} of {} in {login_secs:.1}s ({:.0} logins/s)",
        args.clients,
        established as f64 / login_secs.max(1e-9)
    );

    // Memory once every connection sat idle for a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = args.pid.and_then(rss_kb);
    let per_client = match (rss_before, rss_idle) {
        (Some(b), Some(a)) if established > 0 => {
            Some((a as i64 - b as i64) * 1024 / established as i64)
        }
        _ => None,
    };
    if let (Some(pid), Some(b), Some(a)) = (args.pid, rss_before, rss_idle) {
        println!(
            "server pid {pid} VmRSS: {b} kB before, {a} kB with {established} idle clients: {} bytes per idle client",
            per_client.unwrap_or(0)
        );
    } else if let Some(pid) = args.pid {
        println!("server pid {pid}: VmRSS not readable");
    }

    if args.hold > 0 {
        println!("holding {established} idle connections for {}s", args.hold);
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }
    let mut alive = Vec::with_capacity(conns.len());
    for mut s in conns {
        match check_idle(&mut s) {
            Ok(()) => alive.push(s),
            Err(f) => add_failure(&mut failures, "idle", f),
        }
    }
    println!("still open after holding: {} of {established}", alive.len());

    let mut answered = None;
    if args.query_every {
        let started = Instant::now();
        let deadline = started + phase;
        let n = alive.len();
        let mut tasks = Vec::with_capacity(n);
        for s in alive.drain(..) {
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                bounded(select_one(s), "answer", timeout, deadline).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.expect("query task panicked") {
                Ok(()) => ok += 1,
                Err(f) => add_failure(&mut failures, "SELECT 1", f),
            }
        }
        println!(
            "SELECT 1 answered correctly on {ok} of {n} connections ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
        answered = Some(ok);
    } else {
        for mut s in alive.drain(..) {
            let _ = s.write_all(&[b'X', 0, 0, 0, 4]).now_or_never();
        }
    }

    // And once they are gone: is the memory given back?
    let rss_closed = match args.pid {
        Some(pid) => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let r = rss_kb(pid);
            if let Some(r) = r {
                println!("server pid {pid} VmRSS: {r} kB a second after all closed");
            }
            r
        }
        None => None,
    };

    let failed_total: usize = failures.values().sum();
    if failed_total > 0 {
        println!("failures: {failed_total}");
        for (why, n) in &failures {
            println!("  {n:>6}  {why}");
        }
    } else {
        println!("failures: none");
    }
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    println!(
        "RESULT clients={} established={established} failed={failed_total} answered={} rss_before_kb={} rss_idle_kb={} rss_closed_kb={} bytes_per_client={} login_secs={login_secs:.1}",
        args.clients,
        opt(answered.map(|n| n as i64)),
        opt(rss_before.map(|v| v as i64)),
        opt(rss_idle.map(|v| v as i64)),
        opt(rss_closed.map(|v| v as i64)),
        opt(per_client),
    );
    if failed_total > 0 {
        std::process::exit(1);
    }
}
