//! The audit log: one JSON line per statement, in a file of its own, rotated
//! by size. Owns the record type, the writer thread and its rotation, and
//! [`redact_literals`], which keeps literal values (passwords, personal data)
//! out of the file when `audit.redact_literals` is set.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::config::AuditConfig;

/// One statement, as the audit log records it.
pub struct AuditRecord {
    pub user: String,
    pub database: String,
    pub client: String, // peer address, e.g. "127.0.0.1:50412" or "[local]"
    pub application_name: String,
    pub fingerprint: u64,    // written as 16 lowercase hex digits
    pub statement: String,   // already redacted by the caller when configured
    pub route: &'static str, // "upstream", "cache", "engine", "admin", "nl", "embedded"
    pub rows: u64,
    pub status: String, // "ok" or a SQLSTATE such as "42P01"
    pub duration_us: u64,
}

enum Msg {
    // Timestamped when queued, not when written, so a backlog cannot skew it.
    Record(AuditRecord, SystemTime),
    Flush(mpsc::Sender<()>),
}

/// Handle to the audit log (`Send + Sync`). Dropping it closes the queue; the
/// writer thread then flushes and ends. Drop does not join the thread, so it
/// never blocks an async worker: call [`AuditLog::flush`] first at shutdown.
pub struct AuditLog {
    tx: SyncSender<Msg>,
    redact: bool,
}

impl AuditLog {
    /// Open (create, append) the file and start the writer thread ("helios-audit").
    pub fn open(cfg: &AuditConfig) -> anyhow::Result<AuditLog> {
        let (file, size) = open_file(&cfg.file, false)
            .with_context(|| format!("opening audit log {}", cfg.file.display()))?;
        let writer = Writer {
            path: cfg.file.clone(),
            out: Some(BufWriter::new(file)),
            size,
            max_size: cfg.max_size as u64,
            keep: cfg.keep,
            failing: false,
        };
        // Bounded so that a slow disk costs records, never session latency.
        let (tx, rx) = mpsc::sync_channel(65536);
        std::thread::Builder::new()
            .name("helios-audit".into())
            .spawn(move || writer.run(rx))
            .context("starting the audit log writer thread")?;
        let redact = cfg.redact_literals;
        Ok(AuditLog { tx, redact })
    }

    /// Queue a record; never blocks (a full queue drops and counts it).
    pub fn write(&self, rec: AuditRecord) {
        let msg = Msg::Record(rec, SystemTime::now());
        if self.tx.try_send(msg).is_err() {
            metrics::counter!("helios_audit_dropped_total").increment(1);
        }
    }

    /// Whether literals are to be redacted (`audit.redact_literals`).
    pub fn redacts(&self) -> bool {
        self.redact
    }

    /// Block until every record queued before this call is written and
    /// flushed, or 5 s have passed.
    pub fn flush(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let (ack_tx, ack_rx) = mpsc::channel();
        let mut msg = Msg::Flush(ack_tx);
        // Poll rather than a blocking send, which could wait forever on a wedged disk.
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => msg = m,
                Err(_) => return,
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

struct Writer {
    path: PathBuf,
    out: Option<BufWriter<File>>, // None after a failed reopen; retried per record
    size: u64,                    // tracked, not asked of the file system per record
    max_size: u64,
    keep: usize,
    failing: bool, // an error was logged: a full disk warns once, not per statement
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        // Flush when the queue runs dry: under load the BufWriter batches
        // writes, while a quiet log still reaches the disk promptly.
        while let Ok(first) = rx.recv() {
            for msg in std::iter::once(first).chain(rx.try_iter()) {
                match msg {
                    Msg::Record(rec, at) => self.record(&rec, at),
                    Msg::Flush(ack) => {
                        self.flush();
                        let _ = ack.send(());
                    }
                }
            }
            self.flush();
        }
        self.flush();
    }

    fn record(&mut self, rec: &AuditRecord, at: SystemTime) {
        // Keys in this order; json!() would sort them.
        #[derive(serde::Serialize)]
        struct Line<'a> {
            ts: String,
            user: &'a str,
            database: &'a str,
            client: &'a str,
            application_name: &'a str,
            fingerprint: String,
            statement: &'a str,
            route: &'a str,
            rows: u64,
            status: &'a str,
            duration_ms: f64,
        }
        let line = Line {
            ts: format_ts(at.duration_since(UNIX_EPOCH).unwrap_or_default()),
            user: &rec.user,
            database: &rec.database,
            client: &rec.client,
            application_name: &rec.application_name,
            fingerprint: format!("{:016x}", rec.fingerprint),
            statement: &rec.statement,
            route: rec.route,
            rows: rec.rows,
            status: &rec.status,
            duration_ms: rec.duration_us as f64 / 1000.0,
        };
        let Ok(mut buf) = serde_json::to_vec(&line) else {
            return;
        };
        buf.push(b'\n');
        // Lines are never split: an empty file takes one whatever its size.
        if self.size > 0 && self.size + buf.len() as u64 > self.max_size {
            self.rotate();
        }
        if self.out.is_none() {
            self.reopen(false);
        }
        let Some(out) = self.out.as_mut() else { return };
        match out.write_all(&buf) {
            Ok(()) => {
                self.size += buf.len() as u64;
                self.failing = false;
                metrics::counter!("helios_audit_records_total").increment(1);
            }
            Err(e) => self.fail("writing", e),
        }
    }

    fn flush(&mut self) {
        if let Some(Err(e)) = self.out.as_mut().map(|o| o.flush()) {
            self.fail("flushing", e);
        }
    }

    /// `file` → `file.1` → ... → `file.<keep>`; renaming onto the last
    /// replaces, and so deletes, the oldest.
    fn rotate(&mut self) {
        self.flush();
        self.out = None; // closed before renaming, as Windows requires
        for n in (0..self.keep).rev() {
            match fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => self.fail("rotating", e),
                _ => {}
            }
        }
        self.reopen(self.keep == 0);
    }

    fn reopen(&mut self, truncate: bool) {
        match open_file(&self.path, truncate) {
            Ok((file, size)) => (self.out, self.size) = (Some(BufWriter::new(file)), size),
            Err(e) => self.fail("reopening", e),
        }
    }

    fn fail(&mut self, what: &str, e: io::Error) {
        if !std::mem::replace(&mut self.failing, true) {
            let path = self.path.display();
            tracing::warn!(%path, error = %e, "audit log: {what} failed; records may be lost");
        }
    }
}

/// The file, appended to (or truncated), and its length.
fn open_file(path: &Path, truncate: bool) -> io::Result<(File, u64)> {
    let mut opts = OpenOptions::new();
    let file = opts
        .create(true)
        .write(true)
        .append(!truncate)
        .truncate(truncate)
        .open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// `file.<n>`; `file` itself for 0.
fn rotated(path: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return path.to_owned();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    s.into()
}

/// RFC 3339 UTC with milliseconds, e.g. "2026-12-07T12:00:00.123Z".
fn format_ts(since_epoch: Duration) -> String {
    let (secs, ms) = (since_epoch.as_secs(), since_epoch.subsec_millis());
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Howard Hinnant's civil_from_days (proleptic Gregorian, 400-year eras).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, min, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
}

/// Replace every literal in `sql` with `?`: numbers, '...' strings (with ''
/// escapes), E'...', U&'...', B'...', X'...' and N'...' strings, and
/// dollar-quoted strings. Everything else (identifiers, keywords, operators,
/// `$1` parameters, comments, whitespace) is kept byte for byte. Never
/// panics; from anything it cannot tokenize (an unterminated string, quoted
/// identifier or comment) to the end, the text becomes one `?`: the rest may
/// be an unterminated secret.
pub fn redact_literals(sql: &str) -> String {
    let b = sql.as_bytes();
    let at = |k: usize| b.get(k).copied().unwrap_or(0);
    let (mut out, mut i) = (String::with_capacity(sql.len()), 0);
    while i < b.len() {
        // Identifiers are consumed whole, so a letter seen here starts one,
        // and `e'` is an escape string rather than the end of `name'`.
        let token = match (b[i].to_ascii_lowercase(), at(i + 1), at(i + 2)) {
            (b'-', b'-', _) => {
                let eol = b[i..].iter().position(|&c| c == b'\n');
                Some((eol.map_or(b.len(), |e| i + e), false))
            }
            (b'/', b'*', _) => comment_end(b, i).map(|e| (e, false)),
            (b'\'', ..) => quoted_end(b, i, false).map(|e| (e, true)),
            (b'"', ..) => quoted_end(b, i, false).map(|e| (e, false)),
            // E'...' is the only kind in which a backslash escapes the quote.
            (b'e', b'\'', _) => quoted_end(b, i + 1, true).map(|e| (e, true)),
            (b'b' | b'x' | b'n', b'\'', _) => quoted_end(b, i + 1, false).map(|e| (e, true)),
            (b'u', b'&', q @ (b'\'' | b'"')) => {
                quoted_end(b, i + 2, false).map(|e| (e, q == b'\''))
            }
            (b'$', ..) => dollar_end(sql, i),
            (b'0'..=b'9', ..) | (b'.', b'0'..=b'9', _) => Some((number_end(b, i), true)),
            (c, ..) if ident_start(c) => {
                let len = b[i..].iter().position(|&c| !ident_cont(c));
                Some((len.map_or(b.len(), |n| i + n), false))
            }
            // Operators and whitespace go a byte at a time, so that a `--` or
            // `/*` right after an operator (`1+-- x`) is still seen.
            _ => Some((i + 1, false)),
        };
        let Some((end, literal)) = token else {
            out.push('?');
            break;
        };
        // Every token ends at an ASCII byte or the end of the text: these
        // slices fall on char boundaries.
        out.push_str(if literal { "?" } else { &sql[i..end] });
        i = end;
    }
    out
}

/// PostgreSQL's identifiers start with a letter, `_` or any non-ASCII byte.
fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn ident_cont(c: u8) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// End of the text quoted from `open`: a doubled quote is an escaped quote,
/// and with `backslash`, so is `\'`.
fn quoted_end(b: &[u8], open: usize, backslash: bool) -> Option<usize> {
    let (q, mut j) = (b[open], open + 1);
    while j < b.len() {
        match b[j] {
            b'\\' if backslash => j += 2,
            c if c == q && b.get(j + 1) == Some(&q) => j += 2,
            c if c == q => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// PostgreSQL's block comments nest, unlike the SQL standard's.
fn comment_end(b: &[u8], i: usize) -> Option<usize> {
    let (mut j, mut depth) = (i + 2, 1);
    while j < b.len() {
        match (b[j], b.get(j + 1)) {
            (b'/', Some(b'*')) => (depth, j) = (depth + 1, j + 2),
            (b'*', Some(b'/')) if depth == 1 => return Some(j + 2),
            (b'*', Some(b'/')) => (depth, j) = (depth - 1, j + 2),
            _ => j += 1,
        }
    }
    None
}

/// `$1` (kept), `$$...$$` or `$tag$...$tag$` (a literal), or a lone `$`.
fn dollar_end(sql: &str, i: usize) -> Option<(usize, bool)> {
    let rest = &sql.as_bytes()[i + 1..];
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 {
        return Some((i + 1 + digits, false));
    }
    // A tag is an identifier without `$`.
    let tag = match rest.first() {
        Some(&c) if ident_start(c) => rest
            .iter()
            .take_while(|&&c| c != b'$' && ident_cont(c))
            .count(),
        _ => 0,
    };
    if rest.get(tag) != Some(&b'$') {
        return Some((i + 1, false));
    }
    let delim = &sql[i..i + tag + 2];
    let body = i + delim.len();
    sql[body..]
        .find(delim)
        .map(|p| (body + p + delim.len(), true))
}

/// Integers, decimals, exponents, and PostgreSQL 16's `0x1F`, `0o17`, `0b1`
/// and `1_000`.
fn number_end(b: &[u8], i: usize) -> usize {
    let at = |k: usize| b.get(k).copied().unwrap_or(0);
    let digits = |mut j: usize| {
        while at(j).is_ascii_digit() || (at(j) == b'_' && at(j + 1).is_ascii_digit()) {
            j += 1;
        }
        j
    };
    if at(i) == b'0' && b"xXoObB".contains(&at(i + 1)) && at(i + 2).is_ascii_alphanumeric() {
        let len = b[i + 2..]
            .iter()
            .position(|&c| !c.is_ascii_alphanumeric() && c != b'_');
        return len.map_or(b.len(), |n| i + 2 + n);
    }
    let mut j = digits(i);
    // `1..2` is `1` then `..`, as PostgreSQL lexes it; `1.` alone is 1.0.
    if at(j) == b'.' && at(j + 1) != b'.' {
        j = digits(j + 1);
    }
    let sign = usize::from(matches!(at(j + 1), b'+' | b'-'));
    if matches!(at(j), b'e' | b'E') && at(j + 1 + sign).is_ascii_digit() {
        j = digits(j + 1 + sign);
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_literals() {
        // `input => expected`, one case a line.
        let table = r#"
            SELECT 1 => SELECT ?
            select * from t1 where a = -1 => select * from t1 where a = -?
            select 1.5e-3, .5, 2., 1E+10, 3e => select ?, ?, ?, ?, ?e
            select 0x1F, 0b101, 1_000_000, 1..2, t.5 => select ?, ?, ?, ?.?, t?
            select 'it''s', E'a\'b', e'\\', 'a\' => select ?, ?, ?, ?
            select "a1", "we""ird" from "T" => select "a1", "we""ird" from "T"
            select a1b2, _x9, col$1, café1 from s.t_2 => select a1b2, _x9, col$1, café1 from s.t_2
            select x::int4, y::numeric(10,2) => select x::int4, y::numeric(?,?)
            select $1, $2::text from t where id = $10 => select $1, $2::text from t where id = $10
            select $$it's$$, $tag$a $$ b$tag$ || 'c', $ => select ?, ? || ?, $
            /* a /* nested 1 */ 'b' */ select 3 => /* a /* nested 1 */ 'b' */ select ?
            select B'1010', X'1F', b'0', N'hi', 'é' => select ?, ?, ?, ?, ?
            select U&'d\0061t', U&"d\0061t" => select ?, U&"d\0061t"
            select date '2024-01-01' + interval '1 day' => select date ? + interval ?
            insert into t values (1,'a'),(2,'b') => insert into t values (?,?),(?,?)
            select a from t where b = 'x' and c = 'oops => select a from t where b = ? and c = ?
            select E'\' => select ?
            select $q$never closed => select ?
            select 1 /* unterminated 'x' => select ? ?
            select "open => select ?
        "#;
        for case in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (sql, want) = case.split_once(" => ").unwrap();
            assert_eq!(redact_literals(sql), want, "redacting {sql:?}");
        }
        // Line comments end at the newline; whitespace is kept exactly.
        assert_eq!(
            redact_literals("select 1 -- 42 'x\n,2--3"),
            "select ? -- 42 'x\n,?--3"
        );
        assert_eq!(
            redact_literals("SELECT\n\t1\r\n , 'a';"),
            "SELECT\n\t?\r\n , ?;"
        );
        assert_eq!(redact_literals(""), "");
    }

    #[test]
    fn formats_timestamps() {
        let ts = |ms: u64| format_ts(Duration::from_millis(ms));
        assert_eq!(ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ts(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(ts(1_796_644_800_123), "2026-12-07T12:00:00.123Z");
    }

    const KEYS: &str = "ts user database client application_name fingerprint statement route \
                        rows status duration_ms";

    fn open(dir: &Path, max_size: usize, keep: usize) -> (AuditLog, PathBuf) {
        let file = dir.join("audit.log");
        let cfg = AuditConfig {
            enabled: true,
            file: file.clone(),
            redact_literals: true,
            max_size,
            keep,
        };
        (AuditLog::open(&cfg).unwrap(), file)
    }

    fn record(n: u64) -> AuditRecord {
        AuditRecord {
            user: "alice".into(),
            database: "shop".into(),
            client: "127.0.0.1:50412".into(),
            application_name: "psql".into(),
            fingerprint: 0xdead_beef,
            statement: format!("select * from orders where id = ? /* {n} */"),
            route: "upstream",
            rows: n,
            status: "ok".into(),
            duration_us: 1234,
        }
    }

    #[test]
    fn write_then_flush_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (log, file) = open(dir.path(), 1 << 20, 2);
        assert!(log.redacts());
        log.write(AuditRecord {
            route: "cache",
            status: "42P01".into(),
            ..record(7)
        });
        log.flush();
        let text = fs::read_to_string(file).unwrap();
        let line = text.strip_suffix('\n').unwrap();
        let key_at = |k: &str| line.find(&format!("\"{k}\":")).unwrap();
        let pos: Vec<_> = KEYS.split_whitespace().map(key_at).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "key order in {line}");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(
            (ts.len(), &ts[10..11], &ts[19..20], &ts[23..]),
            (24, "T", ".", "Z")
        );
        let want = serde_json::json!({
            "ts": ts, "user": "alice", "database": "shop", "client": "127.0.0.1:50412",
            "application_name": "psql", "fingerprint": "00000000deadbeef",
            "statement": "select * from orders where id = ? /* 7 */", "route": "cache",
            "rows": 7, "status": "42P01", "duration_ms": 1.234,
        });
        assert_eq!(v, want);
    }

    #[test]
    fn rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let (log, file) = open(dir.path(), 4096, 2);
        (0..200).for_each(|n| log.write(record(n)));
        log.flush();
        assert!(!rotated(&file, 3).exists());
        let mut rows = Vec::new();
        for n in [2, 1, 0] {
            let text = fs::read_to_string(rotated(&file, n)).unwrap();
            assert!(text.len() <= 4096, "file.{n} holds {} bytes", text.len());
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let mut keys: Vec<_> = v.as_object().unwrap().keys().map(String::as_str).collect();
                let mut want: Vec<_> = KEYS.split_whitespace().collect();
                keys.sort_unstable();
                want.sort_unstable();
                assert_eq!(keys, want, "{line}");
                rows.push(v["rows"].as_u64().unwrap());
            }
        }
        // The newest records survive, in order, without gaps.
        assert_eq!(rows.last(), Some(&199));
        assert!(rows.windows(2).all(|w| w[1] == w[0] + 1), "{rows:?}");

        // keep = 0: no rotated files, the one file restarts.
        let dir = tempfile::tempdir().unwrap();
        let (log, file) = open(dir.path(), 4096, 0);
        (0..100).for_each(|n| log.write(record(n)));
        log.flush();
        let text = fs::read_to_string(&file).unwrap();
        assert!(!rotated(&file, 1).exists() && text.len() <= 4096);
        assert!(text.ends_with("\"rows\":99,\"status\":\"ok\",\"duration_ms\":1.234}\n"));
    }
}
