//! The comparison machinery: setup, running an item, masking and diffing the two streams.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read};
use std::time::Duration;

use crate::common::raw::{self, Msg, RawConn};
use crate::common::{Helios, PgServer};
use crate::item::{Expect, Item, Step};

/// A step that waits for a message that never comes fails after this long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Objects shared by the items, created directly before any item runs.
const SETUP: &str = r#"
create role difftest_user;
create type difftest_pair as (a int, b text);
create type difftest_mood as enum ('sad', 'ok', 'happy');
create domain difftest_posint as int check (value > 0);
create table difftest_items (
    id int primary key,
    name text not null,
    qty int check (qty >= 0),
    price numeric(10, 2),
    tags text[],
    meta jsonb,
    created timestamptz
);
insert into difftest_items values
    (1, 'apple', 10, 1.25, '{red,fruit}', '{"origin": "NZ"}', '2024-01-02 03:04:05+00'),
    (2, 'bread', 0, 3.50, '{}', null, '2023-12-31 23:59:59.999999+00'),
    (3, 'café ☕', 7, 2.00, '{hot,"two words"}', '{"size": [1, 2, 3]}', null);
create table difftest_child (id int primary key, item_id int references difftest_items (id));
create table difftest_copy (a int, b text, c numeric);
grant all on difftest_items, difftest_child, difftest_copy to difftest_user;
create function difftest_notice(n int) returns int language plpgsql as $$
begin
    raise notice 'notice %', n;
    raise warning 'warning % with detail', n using detail = 'some detail', hint = 'some hint';
    return n * 2;
end $$;
create function difftest_fail(msg text) returns int language plpgsql as $$
begin
    raise exception 'custom failure: %', msg
        using errcode = 'HX123', detail = 'the detail', hint = 'the hint';
end $$;
"#;

/// Everything one run of an item received.
pub(crate) struct Transcript {
    pub(crate) startup: Vec<Msg>,
    pub(crate) msgs: Vec<Msg>,
}

/// A pseudo-message recording how a read ended (tag 0 never occurs on the wire).
fn end_marker(what: &str) -> Msg {
    Msg {
        tag: 0,
        body: what.as_bytes().to_vec(),
    }
}

/// The next message, or a marker saying why there is none.
fn next_msg(c: &mut RawConn) -> Result<Msg, Msg> {
    let mut header = [0u8; 5];
    if let Err(e) = c.stream.read_exact(&mut header) {
        return Err(end_marker(match e.kind() {
            ErrorKind::UnexpectedEof => "<connection closed>",
            ErrorKind::WouldBlock | ErrorKind::TimedOut => "<read timed out>",
            _ => "<read failed>",
        }));
    }
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len < 4 {
        return Err(end_marker("<invalid message length>"));
    }
    let mut body = vec![0u8; len as usize - 4];
    if c.stream.read_exact(&mut body).is_err() {
        return Err(end_marker("<connection closed mid-message>"));
    }
    Ok(Msg {
        tag: header[0],
        body,
    })
}

pub(crate) fn run(port: u16, pg: &PgServer, item: &Item) -> Transcript {
    let mut c = RawConn::open(port);
    c.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let params: Vec<(&str, &str)> = item
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    c.send(&raw::startup(&params));
    let mut startup = Vec::new();
    loop {
        match next_msg(&mut c) {
            Ok(m) => {
                let done = m.tag == b'Z' || m.tag == b'E';
                startup.push(m);
                if done {
                    break;
                }
            }
            Err(end) => {
                startup.push(end);
                return Transcript {
                    startup,
                    msgs: Vec::new(),
                };
            }
        }
    }
    if startup.last().is_some_and(|m| m.tag == b'E') {
        // Refused: the server closes the connection.
        let mut msgs = Vec::new();
        loop {
            match next_msg(&mut c) {
                Ok(m) => msgs.push(m),
                Err(end) => {
                    msgs.push(end);
                    return Transcript { startup, msgs };
                }
            }
        }
    }
    let mut msgs = Vec::new();
    let mut closed = false;
    'steps: for step in &item.steps {
        match step {
            Step::Send(bytes) => c.send(bytes),
            Step::Ready(n) => {
                let mut seen = 0;
                while seen < *n {
                    match next_msg(&mut c) {
                        Ok(m) => {
                            seen += usize::from(m.tag == b'Z');
                            msgs.push(m);
                        }
                        Err(end) => {
                            msgs.push(end);
                            break 'steps;
                        }
                    }
                }
            }
            Step::Until(tags) => loop {
                match next_msg(&mut c) {
                    Ok(m) => {
                        let done = tags.contains(&m.tag);
                        msgs.push(m);
                        if done {
                            break;
                        }
                    }
                    Err(end) => {
                        msgs.push(end);
                        break 'steps;
                    }
                }
            },
            Step::Elsewhere(sql) => {
                pg.psql(sql);
            }
            Step::Abort => {
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                msgs.push(end_marker("<aborted by the client>"));
                closed = true;
                break 'steps;
            }
            Step::Closed => loop {
                match next_msg(&mut c) {
                    Ok(m) => msgs.push(m),
                    Err(end) => {
                        msgs.push(end);
                        closed = true;
                        break 'steps;
                    }
                }
            },
        }
    }
    if !closed {
        // Terminate: both must close without another word. Reading to the end
        // also makes sure Helios has released (and reset) its upstream
        // connection before the next item starts.
        c.send(&raw::terminate());
        loop {
            match next_msg(&mut c) {
                Ok(m) => msgs.push(m),
                Err(end) => {
                    msgs.push(end);
                    break;
                }
            }
        }
    }
    Transcript { startup, msgs }
}

/// The pid in the BackendKeyData among these startup messages.
pub(crate) fn own_pid(startup: &[Msg]) -> Option<[u8; 4]> {
    startup
        .iter()
        .find(|m| m.tag == b'K' && m.body.len() == 8)
        .map(|m| m.body[..4].try_into().unwrap())
}

/// Mask what may legitimately differ (see the crate comment in main.rs). `own` is the
/// pid the client was given in its BackendKeyData.
fn normalize(m: &Msg, own: Option<[u8; 4]>) -> Msg {
    let mut m = m.clone();
    match m.tag {
        b'K' if m.body.len() == 8 => m.body = b"<backend key>".to_vec(),
        b'A' if m.body.len() >= 4 => {
            let label: &[u8; 4] = if own.is_some_and(|p| m.body[..4] == p) {
                b"<own"
            } else {
                b"<oth"
            };
            m.body[..4].copy_from_slice(label);
        }
        _ => {}
    }
    m
}

/// An ErrorResponse reduced to its severity, SQLSTATE and message fields.
fn error_essentials(m: &Msg) -> Msg {
    if m.tag != b'E' {
        return m.clone();
    }
    let mut body = Vec::new();
    for code in [b'S', b'V', b'C', b'M'] {
        if let Some(v) = m.field(code) {
            body.push(code);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    Msg { tag: b'E', body }
}

/// A message for a person: tag, length and the body with non-printable
/// bytes escaped, cut short when long.
fn show(m: &Msg) -> String {
    if m.tag == 0 {
        return String::from_utf8_lossy(&m.body).into_owned();
    }
    const MAX: usize = 400;
    let mut s = format!("'{}' len={} ", m.tag as char, m.body.len());
    for &b in m.body.iter().take(MAX) {
        match b {
            0 => s.push_str("\\0"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    if m.body.len() > MAX {
        let _ = write!(s, "... (+{} bytes)", m.body.len() - MAX);
    }
    s
}

/// `None` when equal (after masking), else a readable description of the
/// first difference.
pub(crate) fn diff(
    what: &str,
    (direct, direct_pid): (&[Msg], Option<[u8; 4]>),
    (helios, helios_pid): (&[Msg], Option<[u8; 4]>),
) -> Option<String> {
    let d: Vec<Msg> = direct.iter().map(|m| normalize(m, direct_pid)).collect();
    let h: Vec<Msg> = helios.iter().map(|m| normalize(m, helios_pid)).collect();
    if d == h {
        return None;
    }
    let i = d.iter().zip(&h).take_while(|(a, b)| a == b).count();
    let mut s = format!(
        "  {what}: {} messages direct, {} through Helios; first difference at message #{i}\n",
        d.len(),
        h.len()
    );
    if i > 0 {
        let _ = writeln!(s, "    before it (same): {}", show(&d[i - 1]));
    }
    let _ = writeln!(
        s,
        "    direct: {}",
        d.get(i).map(show).unwrap_or_else(|| "<no message>".into())
    );
    let _ = writeln!(
        s,
        "    helios: {}",
        h.get(i).map(show).unwrap_or_else(|| "<no message>".into())
    );
    for (label, msgs) in [("direct", &d), ("helios", &h)] {
        let rest: Vec<String> = msgs.iter().skip(i + 1).take(3).map(show).collect();
        if !rest.is_empty() {
            let _ = writeln!(s, "    {label} then: {}", rest.join(" | "));
        }
    }
    Some(s)
}

/// Run every item directly and through Helios; panic listing every item
/// whose streams differ.
pub(crate) fn check(pg: &PgServer, helios: &Helios, items: &[Item]) {
    let mut failures = Vec::new();
    let mut total_msgs = 0;
    let mut timeouts = 0;
    for it in items {
        if timeouts >= 3 {
            failures.push(format!(
                "item \"{}\" and later ones not run: 3 items timed out already",
                it.name
            ));
            break;
        }
        let mut direct = run(pg.port, pg, it);
        let mut through = run(helios.port, pg, it);
        if it.answered_by_helios {
            for t in [&mut direct, &mut through] {
                t.startup = t.startup.iter().map(error_essentials).collect();
                t.msgs = t.msgs.iter().map(error_essentials).collect();
            }
        }
        total_msgs += direct.msgs.len();
        let mut report = String::new();
        let timed_out = |t: &Transcript| {
            t.startup
                .iter()
                .chain(&t.msgs)
                .any(|m| m.tag == 0 && m.body == b"<read timed out>")
        };
        timeouts += usize::from(timed_out(&direct) || timed_out(&through));
        let (dp, hp) = (own_pid(&direct.startup), own_pid(&through.startup));
        if let Some(d) = diff("startup", (&direct.startup, dp), (&through.startup, hp)) {
            report.push_str(&d);
        }
        if let Some(d) = diff("messages", (&direct.msgs, dp), (&through.msgs, hp)) {
            report.push_str(&d);
        }
        // The corpus must exercise what it claims to: every run gets past
        // startup and ends with the connection closed.
        let refused = it
            .expect
            .iter()
            .any(|e| matches!(e, Expect::StartupError(_)));
        if !refused && direct.startup.last().is_none_or(|m| m.tag != b'Z') {
            let _ = writeln!(report, "  direct startup did not reach ReadyForQuery");
        }
        if !direct.msgs.last().is_some_and(|m| {
            m.tag == 0 && (m.body == b"<connection closed>" || m.body == b"<aborted by the client>")
        }) {
            let _ = writeln!(
                report,
                "  direct run did not end with the connection closed"
            );
        }
        for e in &it.expect {
            match e {
                Expect::Errors(codes) => {
                    let got: Vec<String> = direct
                        .msgs
                        .iter()
                        .filter(|m| m.tag == b'E')
                        .map(|m| m.sqlstate().unwrap_or_default())
                        .collect();
                    if got != *codes {
                        let _ = writeln!(
                            report,
                            "  corpus: expected errors {codes:?} directly, got {got:?}"
                        );
                    }
                }
                Expect::StartupError(code) => {
                    let got = direct
                        .startup
                        .last()
                        .filter(|m| m.tag == b'E')
                        .and_then(|m| m.sqlstate());
                    if got.as_deref() != Some(*code) {
                        let _ = writeln!(
                            report,
                            "  corpus: expected the startup to fail with {code} directly, got {got:?}"
                        );
                    }
                }
                Expect::Count(tag, n) => {
                    let got = direct.msgs.iter().filter(|m| m.tag == *tag).count();
                    if got != *n {
                        let _ = writeln!(
                            report,
                            "  corpus: expected {n} '{}' messages directly, got {got}",
                            *tag as char
                        );
                    }
                }
            }
        }
        if !report.is_empty() {
            failures.push(format!("item \"{}\":\n{report}", it.name));
        }
    }
    eprintln!(
        "differential: {} items, {} backend messages each way, {} differ",
        items.len(),
        total_msgs,
        failures.len()
    );
    if !failures.is_empty() {
        panic!(
            "{} of {} items differ between direct PostgreSQL and Helios:\n\n{}",
            failures.len(),
            items.len(),
            failures.join("\n")
        );
    }
}

pub(crate) fn setup() -> (PgServer, Helios) {
    let pg = PgServer::start();
    pg.psql(SETUP);
    let helios = Helios::start(&pg, "");
    (pg, helios)
}
