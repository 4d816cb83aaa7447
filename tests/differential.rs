//! Differential test: every item of a corpus of statements and protocol
//! message sequences runs twice against the same PostgreSQL, once directly
//! and once through Helios, each time on a fresh raw connection, and the two
//! backend message streams must be identical byte for byte.
//!
//! Only process ids and cancel keys may differ, as the two runs talk to
//! different backends:
//! - BackendKeyData (`K`) is masked: Helios issues its own cancel key.
//! - The process id in a NotificationResponse (`A`) names the backend that
//!   sent the NOTIFY, whose pid differs between the runs. It is compared by
//!   what it means to the client: its own session (the pid equals the one in
//!   the BackendKeyData that client was given, as a client checks to ignore
//!   its own notifications) or another session. Channel and payload must
//!   match exactly.
//!
//! Everything else must match, including the startup stream (ParameterStatus
//! names, values and order), which is compared for every item: the first item
//! of a group gets a fresh upstream connection, later ones a pooled one that
//! Helios reset, so the comparison also checks that the reset restores what a
//! fresh connection reports.
//!
//! The corpus, one test per group: types and simple queries, errors and
//! notices, the extended protocol, COPY, transactions / FunctionCall /
//! LISTEN-NOTIFY / large values, session state that must not leak through
//! the pool, refused startups, and requests pipelined ahead of Terminate.
//! Each item also states what its direct stream must contain (SQLSTATEs,
//! message counts), so the corpus cannot quietly stop testing what it says.
//!
//! Determinism: both runs use the same startup parameters (with a fixed
//! TimeZone and DateStyle), nothing reads the clock, a pid, random() or a
//! transaction id; shared objects are created once per server before the
//! corpus runs, so the table and type OIDs in RowDescription are the same for
//! both runs; whatever an item writes is rolled back or lives in a temporary
//! table, and result sets have a defined order. Direct and Helios runs of one
//! item are sequential, never concurrent.

mod common;

use std::fmt::Write as _;
use std::io::{ErrorKind, Read};
use std::time::Duration;

use common::raw::{self, Msg, RawConn};
use common::{Helios, PgServer};

/// A step that waits for a message that never comes fails after this long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Startup parameters of every connection unless an item overrides some.
const BASE_PARAMS: &[(&str, &str)] = &[
    ("user", "postgres"),
    ("database", "postgres"),
    ("application_name", "helios-difftest"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
];

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

/// What the test does next on a connection.
enum Step {
    Send(Vec<u8>),
    /// Read until this many ReadyForQuery messages have arrived.
    Ready(usize),
    /// Read until a message with one of these tags (inclusive).
    Until(&'static [u8]),
    /// Read until the server closes the connection.
    Closed,
    /// Run SQL in another session, directly (psql).
    Elsewhere(String),
    /// Close the socket at once, without Terminate, ending the item.
    Abort,
}

struct Item {
    name: String,
    params: Vec<(String, String)>,
    steps: Vec<Step>,
    /// What the direct stream must contain, so that an item cannot silently
    /// stop testing what its name says (checked on the direct run; the
    /// Helios run must then be identical).
    expect: Vec<Expect>,
    /// Helios answers this itself (the upstream never sees it): its errors
    /// are compared on severity, SQLSTATE and message only, as the source
    /// file, line and routine fields name PostgreSQL's code.
    answered_by_helios: bool,
}

enum Expect {
    /// The SQLSTATEs of the ErrorResponses, in order.
    Errors(&'static [&'static str]),
    /// How many messages of this tag.
    Count(u8, usize),
    /// The server refuses the startup with this SQLSTATE.
    StartupError(&'static str),
}

fn item(name: &str) -> Item {
    Item {
        name: name.to_string(),
        params: BASE_PARAMS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        steps: Vec::new(),
        expect: Vec::new(),
        answered_by_helios: false,
    }
}

impl Item {
    /// Override (or add) a startup parameter.
    fn param(mut self, k: &str, v: &str) -> Self {
        match self.params.iter_mut().find(|(name, _)| name == k) {
            Some((_, old)) => *old = v.to_string(),
            None => self.params.push((k.to_string(), v.to_string())),
        }
        self
    }

    fn errors(mut self, codes: &'static [&'static str]) -> Self {
        self.expect.push(Expect::Errors(codes));
        self
    }

    fn answered_by_helios(mut self) -> Self {
        self.answered_by_helios = true;
        self
    }

    fn startup_error(mut self, code: &'static str) -> Self {
        self.expect.push(Expect::StartupError(code));
        self
    }

    fn count(mut self, tag: u8, n: usize) -> Self {
        self.expect.push(Expect::Count(tag, n));
        self
    }

    /// A simple Query, read up to its ReadyForQuery.
    fn q(mut self, sql: &str) -> Self {
        self.steps.push(Step::Send(raw::query(sql)));
        self.steps.push(Step::Ready(1));
        self
    }

    /// Send these messages as one write.
    fn send(mut self, msgs: &[Vec<u8>]) -> Self {
        self.steps.push(Step::Send(msgs.concat()));
        self
    }

    fn ready(mut self, n: usize) -> Self {
        self.steps.push(Step::Ready(n));
        self
    }

    fn until(mut self, tags: &'static [u8]) -> Self {
        self.steps.push(Step::Until(tags));
        self
    }

    fn closed(mut self) -> Self {
        self.steps.push(Step::Closed);
        self
    }

    fn elsewhere(mut self, sql: &str) -> Self {
        self.steps.push(Step::Elsewhere(sql.to_string()));
        self
    }

    fn abort(mut self) -> Self {
        self.steps.push(Step::Abort);
        self
    }

    /// Extended-protocol messages followed by Sync, read up to ReadyForQuery.
    fn ext(self, msgs: &[Vec<u8>]) -> Self {
        let mut all = msgs.to_vec();
        all.push(raw::sync());
        self.send(&all).ready(1)
    }
}

/// Everything one run of an item received.
struct Transcript {
    startup: Vec<Msg>,
    msgs: Vec<Msg>,
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

fn run(port: u16, pg: &PgServer, item: &Item) -> Transcript {
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
fn own_pid(startup: &[Msg]) -> Option<[u8; 4]> {
    startup
        .iter()
        .find(|m| m.tag == b'K' && m.body.len() == 8)
        .map(|m| m.body[..4].try_into().unwrap())
}

/// Mask what may legitimately differ (see the module comment). `own` is the
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
fn diff(
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
fn check(pg: &PgServer, helios: &Helios, items: &[Item]) {
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

fn setup() -> (PgServer, Helios) {
    let pg = PgServer::start();
    pg.psql(SETUP);
    let helios = Helios::start(&pg, "");
    (pg, helios)
}

// ---------------------------------------------------------------------------
// Message builders beyond common::raw.

fn pbe(sql: &str) -> Vec<Vec<u8>> {
    vec![
        raw::parse("", sql, &[]),
        raw::bind("", "", &[], &[], &[]),
        raw::execute("", 0),
    ]
}

fn binary_copy_data() -> Vec<u8> {
    let mut v = b"PGCOPY\n\xff\r\n\0".to_vec();
    v.extend_from_slice(&0i32.to_be_bytes()); // flags
    v.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for (a, b) in [(7i32, Some("seven")), (8, None)] {
        v.extend_from_slice(&3i16.to_be_bytes());
        v.extend_from_slice(&4i32.to_be_bytes());
        v.extend_from_slice(&a.to_be_bytes());
        match b {
            Some(s) => {
                v.extend_from_slice(&(s.len() as i32).to_be_bytes());
                v.extend_from_slice(s.as_bytes());
            }
            None => v.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        v.extend_from_slice(&(-1i32).to_be_bytes()); // c: NULL
    }
    v.extend_from_slice(&(-1i16).to_be_bytes()); // trailer
    v
}

// ---------------------------------------------------------------------------
// The corpus.

fn types_corpus() -> Vec<Item> {
    let wide = (1..=400)
        .map(|i| format!("{i} as c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        item("integers").q(
            "select 1, (-2147483648)::int4, 9223372036854775807::int8, 32767::int2, 0::oid, 42::int8 / 5",
        ),
        item("numeric").q(
            "select 1.50::numeric, 'NaN'::numeric, 123456789012345678901234567890.123456789::numeric, \
             (-0.0001)::numeric(10, 4), 'Infinity'::numeric, 2::numeric / 3",
        ),
        item("floats").q(
            "select 0.1::float8, 1e300::float8, '-Infinity'::float4, 'NaN'::float8, 3.14159::real, 1.0e-10::float8",
        ),
        item("text with unicode").q(
            "select 'héllo wörld', '日本語テキスト', '🎉👍🏽', '', E'tab\\there\\nnewline', 'quote''s', \
             length('🎉'), upper('straße'), 'a' || null",
        ),
        item("bytea hex and escape")
            .q(r"select '\xdeadbeef00ff'::bytea, ''::bytea, convert_to('日本', 'UTF8')")
            .q(r"set bytea_output = escape; select '\x00015c41ff'::bytea"),
        item("arrays").q(
            r#"select array[1, 2, 3], array[['a', 'b'], ['c', null]], '{}'::int[], array[1.5, null]::numeric[],
                      '{"with space","quote\"d"}'::text[], '[0:1]={7,8}'::int[], array[true, false]"#,
        ),
        item("json and jsonb").q(
            r#"select '{"b": [1, 2.50, "x"], "a": null}'::jsonb, '{"z":1,  "a":2}'::json,
                      jsonb_build_object('k', array[1, 2]), '[]'::jsonb, jsonb_pretty('{"a": {"b": 1}}'),
                      '{"a": {"b": [10, 20]}}'::jsonb #> '{a,b,1}'"#,
        ),
        item("timestamps in a fixed time zone").q(
            "select '2024-02-29 13:45:01.123456+05'::timestamptz, '1999-12-31 23:59:59'::timestamp, \
             '2000-01-01'::date, '23:59:59.5'::time, '12:00+03'::timetz, 'infinity'::timestamptz, \
             '4713-01-01 BC'::date, extract(epoch from '2024-01-01 00:00:00+00'::timestamptz)",
        ),
        item("intervals").q(
            "select '1 year 2 mons 3 days 04:05:06.789'::interval, '-1 day'::interval, interval '1.5 hours', \
             '0'::interval, justify_interval('35 days 25 hours'), '2024-03-01'::date - '2024-02-01'::date",
        ),
        item("nulls and booleans")
            .q("select null, null::int, true, false, null::bool, 't'::bool and null, null is null"),
        item("composite types").q(
            "select row(1, 'a', null), (2, 'b c')::difftest_pair, row(row(1, 2), array[3]), \
             ((3, 'x')::difftest_pair).b",
        ),
        item("ranges and multiranges").q(
            "select int4range(1, 10), '[2024-01-01,2024-02-01)'::daterange, numrange(1.5, 2.5, '[]'), \
             'empty'::int4range, '(,5]'::int8range, '{[1,3),[5,7)}'::int4multirange, \
             tstzrange('2024-01-01 00:00+00', null)",
        ),
        item("assorted types").q(
            "select 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '192.168.0.1/24'::inet, '10.0.0.0/8'::cidr, \
             '08:00:2b:01:02:03'::macaddr, point(1.5, 2), '((0,0),(1,1))'::box, 'sad'::difftest_mood, \
             5::difftest_posint, B'1010'::bit(4), 12.34::money, 'x'::\"char\", 'abc'::name, 'int4'::regtype",
        ),
        item("text search").q(
            "select to_tsvector('english', 'The quick brown foxes jumped'), to_tsquery('english', 'fox & jump')",
        ),
        item("table rows (RowDescription names the table)")
            .q("select * from difftest_items order by id")
            .q("select i.name, c.id from difftest_items i left join difftest_child c on c.item_id = i.id order by 1"),
        item("a hundred rows").q("select g, g * 1.5, repeat('ab', g) from generate_series(1, 100) g"),
        item("a 400-column row").q(&format!("select {wide}")),
        item("multi-statement string")
            .q("select 1; select 'two', 2; values (3, 'three'), (4, 'four'); select where false"),
        item("multi-statement string failing in the middle")
            .q("select 1; select 1/0; select 3")
            .errors(&["22012"])
            .count(b'D', 1),
        item("multi-statement implicit transaction").q(
            "create temp table m (a int); insert into m values (1), (2); select count(*) from m; drop table m",
        ),
        item("empty queries")
            .q("")
            .q(";")
            .q("-- only a comment")
            .q("select 1;;")
            .count(b'I', 3),
        item("show and session functions")
            .q("show TimeZone")
            .q("show DateStyle")
            .q("select current_setting('application_name'), current_user, session_user, current_database()"),
        item("SET reports ParameterStatus")
            .q("set application_name = 'changed by SET'")
            .q("set TimeZone = 'America/New_York'; select '2024-07-01 12:00+00'::timestamptz")
            .q("set DateStyle = 'German'; select '2024-07-01'::date")
            .q("set IntervalStyle = 'iso_8601'; select '1 day 2 hours'::interval")
            .q("set standard_conforming_strings = off; select 'a\\\\b'")
            .q("reset all")
            .count(b'S', 10),
        item("client_encoding LATIN1")
            .q("set client_encoding = 'LATIN1'")
            .q("select 'héllo', 'ça', chr(233)")
            .q("select chr(26085)")
            .q("reset client_encoding")
            .errors(&["22P05"])
            .count(b'S', 2),
        item("SET SESSION AUTHORIZATION")
            .q("set session authorization difftest_user")
            .q("select current_user, session_user")
            .q("reset session authorization")
            .count(b'S', 4),
        item("SET LOCAL rolled back within one Query").q(
            "begin; set local TimeZone = 'Asia/Tokyo'; select '2024-01-01 00:00+00'::timestamptz; rollback",
        ),
        item("SET LOCAL rolled back, statement by statement")
            .q("begin")
            .q("set local TimeZone = 'Asia/Tokyo'")
            .q("select '2024-01-01 00:00+00'::timestamptz")
            .q("rollback")
            .count(b'S', 2),
        item("startup options parameter")
            .param("options", "-c statement_timeout=4321 -c search_path=public,pg_catalog")
            .q("show statement_timeout")
            .q("show search_path"),
        item("startup DateStyle German")
            .param("DateStyle", "German")
            .q("select '2024-07-01 10:11:12'::timestamp"),
        item("startup without application_name")
            .param("application_name", "")
            .q("select current_setting('application_name')"),
    ]
}

fn errors_corpus() -> Vec<Item> {
    vec![
        item("division by zero (22012)")
            .q("select 1/0")
            .errors(&["22012"]),
        item("undefined table with position (42P01)")
            .q("select * from no_such_table")
            .errors(&["42P01"]),
        item("syntax errors with position (42601)")
            .q("selec 1")
            .q("select 1 +")
            .q("select 'unterminated")
            .errors(&["42601", "42601", "42601"]),
        item("invalid input with position (22P02)")
            .q("select 'abc'::int")
            .errors(&["22P02"]),
        item("undefined column with hint (42703)")
            .q("select nam from difftest_items")
            .errors(&["42703"]),
        item("undefined function with hint (42883)")
            .q("select no_such_fn(1)")
            .errors(&["42883"]),
        item("unique violation with detail (23505)")
            .q("insert into difftest_items (id, name) values (1, 'dup')")
            .errors(&["23505"]),
        item("foreign key violation (23503)")
            .q("insert into difftest_child values (1, 99)")
            .errors(&["23503"]),
        item("check violation (23514)")
            .q("update difftest_items set qty = -1 where id = 1")
            .errors(&["23514"]),
        item("not-null violation (23502)")
            .q("insert into difftest_items (id, name) values (9, null)")
            .errors(&["23502"]),
        item("domain check (23514)")
            .q("select (-1)::difftest_posint")
            .errors(&["23514"]),
        item("RAISE EXCEPTION with custom SQLSTATE, detail, hint")
            .q("select difftest_fail('boom')")
            .errors(&["HX123"]),
        item("notices and warnings from a function")
            .q("select difftest_notice(21)")
            .count(b'N', 2),
        item("DO block notice, warning, info")
            .q(
                "do $$ begin raise notice 'from do'; raise warning 'warn % %', 1, 'two'; \
                 raise info 'info msg'; raise debug 'hidden'; end $$",
            )
            .count(b'N', 3),
        item("DDL notice")
            .q("drop table if exists no_such_table_xyz")
            .count(b'N', 1),
        item("client_min_messages hides notices")
            .q("set client_min_messages = warning")
            .q("select difftest_notice(1)")
            .count(b'N', 1),
        item("statement timeout (57014)")
            .q("set statement_timeout = '100ms'; select pg_sleep(3)")
            .errors(&["57014"]),
        item("100 kB error message")
            .q("select repeat('x', 100000)::int")
            .errors(&["22P02"]),
        // Helios reads ErrorResponse whole (to see its severity): one bigger
        // than the relay's 256 kB buffer must still go through intact.
        item("1 MB error message (bigger than a relay buffer)")
            .q("do $$ begin raise exception '%', repeat('e', 1000000); end $$")
            .q("select 'still usable'")
            .errors(&["P0001"])
            .count(b'D', 1),
        item("1 MB notice")
            .q("do $$ begin raise notice '%', repeat('n', 1000000); end $$")
            .count(b'N', 1),
        item("errors do not end the session")
            .q("select 1/0")
            .q("select 'after error'")
            .errors(&["22012"])
            .count(b'D', 1),
        item("FATAL: the backend terminates itself")
            .send(&[raw::query("select pg_terminate_backend(pg_backend_pid())")])
            .closed()
            .errors(&["57P01"]),
    ]
}

fn extended_corpus() -> Vec<Item> {
    let mut many = Vec::new();
    for i in 0..200 {
        let v = i.to_string();
        many.push(raw::bind("", "many", &[Some(v.as_bytes())], &[], &[]));
        many.push(raw::execute("", 0));
    }
    let mut many_msgs = vec![raw::parse("many", "select $1::int * 2", &[])];
    many_msgs.extend(many);
    vec![
        item("unnamed statement, text").ext(&[
            raw::parse("", "select $1::int + 1 as next, $2::text as t", &[]),
            raw::bind("", "", &[Some(b"41"), Some("héllo".as_bytes())], &[], &[]),
            raw::describe(b'P', ""),
            raw::execute("", 0),
        ]),
        item("named statement, Describe S, executed twice, closed")
            .ext(&[
                raw::parse("s1", "select $1::int4, $2::text, $3::numeric", &[23, 25, 0]),
                raw::describe(b'S', "s1"),
            ])
            .ext(&[
                raw::bind("", "s1", &[Some(b"1"), Some(b"one"), Some(b"1.5")], &[], &[]),
                raw::execute("", 0),
                raw::bind("", "s1", &[Some(b"2"), None, Some(b"NaN")], &[], &[]),
                raw::execute("", 0),
                raw::close(b'S', "s1"),
            ])
            .ext(&[raw::bind("", "s1", &[], &[], &[])]),
        item("binary results").ext(&[
            raw::parse(
                "",
                r#"select 42::int4, 'txt'::text, 1.5::float8, '\xdeadbeef'::bytea,
                          '2024-01-02 03:04:05.678+00'::timestamptz, array[1, 2]::int4[], '{"a": 1}'::jsonb,
                          12.345::numeric, true, '1 day 02:00'::interval, (1, 'x')::difftest_pair,
                          int4range(1, 5), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, null::int"#,
                &[],
            ),
            raw::bind("", "", &[], &[], &[1]),
            raw::describe(b'P', ""),
            raw::execute("", 0),
        ]),
        item("mixed result formats").ext(&[
            raw::parse("", "select 7::int8, 'seven'::text, 7.5::float4", &[]),
            raw::bind("", "", &[], &[], &[1, 0, 1]),
            raw::describe(b'P', ""),
            raw::execute("", 0),
        ]),
        item("binary parameters").ext(&[
            raw::parse("", "select $1::int4 * 2, $2::int8 + 1, $3 || '!', $4::bytea", &[23, 20, 25, 17]),
            raw::bind(
                "",
                "",
                &[
                    Some(&21i32.to_be_bytes()),
                    Some(&1234567890123i64.to_be_bytes()),
                    Some(b"bin"),
                    Some(&[0, 1, 2, 255]),
                ],
                &[1],
                &[1],
            ),
            raw::execute("", 0),
        ]),
        item("NULL parameters").ext(&[
            raw::parse("", "select $1::int is null, coalesce($2::text, 'dflt')", &[]),
            raw::bind("", "", &[None, None], &[], &[]),
            raw::execute("", 0),
        ]),
        item("max_rows and PortalSuspended").ext(&[
            raw::parse("", "select g from generate_series(1, 10) g", &[]),
            raw::bind("", "", &[], &[], &[]),
            raw::execute("", 3),
            raw::execute("", 3),
            raw::execute("", 0),
        ])
        .count(b's', 2)
        .count(b'D', 10),
        item("named portal across Syncs in a transaction")
            .q("begin")
            .ext(&[
                raw::parse("ps", "select g, repeat('r', g) from generate_series(1, 7) g", &[]),
                raw::bind("cur", "ps", &[], &[], &[]),
                raw::execute("cur", 2),
            ])
            .ext(&[raw::execute("cur", 2)])
            .ext(&[raw::execute("cur", 0)])
            .ext(&[raw::close(b'P', "cur"), raw::execute("cur", 0)])
            .q("commit")
            .count(b'D', 7)
            .errors(&["34000"]),
        item("Flush without Sync")
            .send(&[
                raw::parse("", "select 'flushed'", &[]),
                raw::bind("", "", &[], &[], &[]),
                raw::execute("", 0),
                raw::flush(),
            ])
            .until(b"C")
            .send(&[raw::sync()])
            .ready(1),
        item("Flush then PortalSuspended, then the rest")
            .send(&[
                raw::parse("", "select g from generate_series(1, 5) g", &[]),
                raw::bind("", "", &[], &[], &[]),
                raw::execute("", 2),
                raw::flush(),
            ])
            .until(b"s")
            .send(&[raw::execute("", 0), raw::sync()])
            .ready(1),
        item("error mid-pipeline skips until Sync")
            .ext(
                &[
                    pbe("select 1"),
                    pbe("select 1/0"),
                    pbe("select 3"),
                    vec![raw::describe(b'S', "nope")],
                ]
                .concat(),
            )
            .ext(&pbe("select 4"))
            .errors(&["22012"])
            .count(b'D', 2),
        item("Parse syntax error").ext(&[
            raw::parse("bad", "selec 1", &[]),
            raw::bind("", "bad", &[], &[], &[]),
            raw::execute("", 0),
        ]),
        item("Bind with the wrong number of parameters (08P01)")
            .ext(&[
                raw::parse("", "select $1::int", &[]),
                raw::bind("", "", &[], &[], &[]),
                raw::execute("", 0),
            ])
            .ext(&pbe("select 'recovered'"))
            .errors(&["08P01"]),
        item("Bind with an invalid parameter value (22P02)").ext(&[
            raw::parse("", "select $1::int", &[]),
            raw::bind("", "", &[Some(b"abc")], &[], &[]),
            raw::execute("", 0),
        ]),
        item("unknown statement and portal (26000, 34000)")
            .ext(&[raw::bind("", "nope", &[], &[], &[])])
            .ext(&[raw::describe(b'S', "nope")])
            .ext(&[raw::describe(b'P', "nope")])
            .ext(&[raw::execute("nope", 0)])
            .errors(&["26000", "26000", "34000", "34000"]),
        item("duplicate statement name (42P05)")
            .ext(&[raw::parse("dup", "select 1", &[])])
            .ext(&[raw::parse("dup", "select 2", &[])])
            .errors(&["42P05"]),
        item("several commands in one Parse (42601)").ext(&[raw::parse("", "select 1; select 2", &[])]),
        item("Close statement and portal").ext(&[
            raw::parse("c1", "select 1", &[]),
            raw::bind("p1", "c1", &[], &[], &[]),
            raw::close(b'P', "p1"),
            raw::close(b'S', "c1"),
            raw::close(b'S', "never_existed"),
            raw::bind("", "c1", &[], &[], &[]),
        ]),
        item("extended empty query")
            .ext(&[
                raw::parse("", "", &[]),
                raw::bind("", "", &[], &[], &[]),
                raw::describe(b'P', ""),
                raw::execute("", 0),
            ])
            .count(b'I', 1),
        item("DML with RETURNING, and NoData")
            .q("begin")
            .ext(&[
                raw::parse(
                    "",
                    "insert into difftest_items (id, name, qty) values ($1, $2, 1) returning *",
                    &[],
                ),
                raw::bind("", "", &[Some(b"10"), Some(b"ten")], &[], &[]),
                raw::describe(b'P', ""),
                raw::execute("", 0),
                raw::parse("", "update difftest_items set qty = qty + 1 where id > $1", &[23]),
                raw::bind("", "", &[Some(b"1")], &[], &[]),
                raw::describe(b'P', ""),
                raw::execute("", 1),
            ])
            .q("rollback"),
        item("Describe infers parameter types").ext(&[
            raw::parse("", "select $1 || $2::text, $3 + 1.5, $4 = any('{1,2}'::int[])", &[]),
            raw::describe(b'S', ""),
        ]),
        item("200 pipelined executions, one Sync")
            .ext(&many_msgs)
            .count(b'D', 200),
        item("implicit transaction in a pipeline rolls back")
            .ext(
                &[
                    pbe("insert into difftest_copy values (1, 'a', 1)"),
                    pbe("select count(*) from difftest_copy"),
                    pbe("select 1/0"),
                ]
                .concat(),
            )
            .q("select count(*) from difftest_copy")
            .errors(&["22012"]),
        item("SET through the extended protocol")
            .ext(&pbe("set application_name = 'ext'"))
            .count(b'S', 1),
        item("notice through the extended protocol").ext(&[
            raw::parse("", "select difftest_notice($1)", &[]),
            raw::bind("", "", &[Some(b"5")], &[], &[]),
            raw::execute("", 0),
        ]),
        item("extended protocol in a failed transaction")
            .q("begin")
            .q("select 1/0")
            .ext(&pbe("select 1"))
            .q("rollback")
            .errors(&["22012", "25P02"]),
        item("bare Sync and Flush")
            .send(&[raw::flush(), raw::sync()])
            .ready(1)
            .send(&[raw::sync(), raw::sync()])
            .ready(2)
            .count(b'Z', 3),
        item("simple query between extended batches")
            .ext(&[raw::parse("keep", "select 'kept'", &[])])
            .q("select 'simple'")
            .ext(&[raw::bind("", "keep", &[], &[], &[]), raw::execute("", 0)]),
    ]
}

fn copy_corpus() -> Vec<Item> {
    vec![
        item("COPY TO STDOUT, text").q(
            "copy (select g, 'row ' || g, null::int, E'tab\\there' from generate_series(1, 50) g) to stdout",
        ),
        item("COPY TO STDOUT, csv with header").q(
            "copy (select * from difftest_items order by id) to stdout with (format csv, header true)",
        ),
        item("COPY TO STDOUT, binary").q(
            "copy (select g::int4, repeat('b', g), g * 0.5 from generate_series(1, 20) g) to stdout with (format binary)",
        ),
        item("COPY table TO STDOUT").q("copy difftest_items to stdout"),
        item("COPY TO STDOUT failing midway")
            .q("copy (select 1 / (g - 3) from generate_series(1, 5) g) to stdout")
            .errors(&["22012"])
            .count(b'd', 2),
        item("COPY FROM STDIN, text, rows split across CopyData")
            .q("begin")
            .send(&[raw::query("copy difftest_copy from stdin")])
            .until(b"GZ")
            .send(&[
                raw::copy_data(b"1\tone\t1.5\n2\ttw"),
                raw::copy_data(b"o\t2.5\n3\t\\N\t\\N\n"),
                raw::copy_done(),
            ])
            .ready(1)
            .q("select * from difftest_copy order by a")
            .q("rollback")
            .count(b'D', 3),
        item("COPY FROM STDIN, csv with header")
            .q("begin")
            .send(&[raw::query(
                "copy difftest_copy (b, a) from stdin with (format csv, header true)",
            )])
            .until(b"GZ")
            .send(&[
                raw::copy_data(b"b,a\n\"quoted, comma\",1\n\"multi\nline\",2\n,3\n"),
                raw::copy_done(),
            ])
            .ready(1)
            .q("select a, b from difftest_copy order by a")
            .q("rollback")
            .count(b'D', 3),
        item("COPY FROM STDIN, binary")
            .q("begin")
            .send(&[raw::query("copy difftest_copy from stdin with (format binary)")])
            .until(b"GZ")
            .send(&[raw::copy_data(&binary_copy_data()), raw::copy_done()])
            .ready(1)
            .q("select * from difftest_copy order by a")
            .q("rollback")
            .count(b'D', 2),
        item("COPY FROM STDIN ended by CopyFail")
            .send(&[raw::query("copy difftest_copy from stdin")])
            .until(b"GZ")
            .send(&[raw::copy_data(b"1\tone\t1\n"), raw::copy_fail("client gave up")])
            .ready(1)
            .q("select count(*) from difftest_copy")
            .errors(&["57014"]),
        item("COPY FROM STDIN with bad data")
            .send(&[raw::query("copy difftest_copy from stdin")])
            .until(b"GZ")
            .send(&[
                raw::copy_data(b"1\tone\t1\nx\tbad\t2\n"),
                raw::copy_data(b"3\tthree\t3\n"),
                raw::copy_done(),
            ])
            .ready(1)
            .q("select count(*) from difftest_copy")
            .errors(&["22P02"]),
        item("COPY FROM STDIN of a missing table")
            .q("copy no_such_table from stdin")
            .errors(&["42P01"]),
        item("COPY FROM STDIN through the extended protocol")
            .q("begin")
            .send(&[
                raw::parse("", "copy difftest_copy from stdin", &[]),
                raw::bind("", "", &[], &[], &[]),
                raw::execute("", 0),
                raw::flush(),
            ])
            .until(b"GE")
            .send(&[
                raw::copy_data(b"5\tfive\t5.5\n"),
                raw::copy_done(),
                raw::sync(),
            ])
            .ready(1)
            .q("select * from difftest_copy")
            .q("rollback")
            .count(b'D', 1),
        item("COPY TO STDOUT through the extended protocol").ext(&pbe(
            "copy (select g, g::text || 'x' from generate_series(1, 10) g) to stdout with (format csv)",
        )),
        item("COPY TO STDOUT, 20k lines")
            .q("copy (select g, md5(g::text) from generate_series(1, 20000) g) to stdout")
            .count(b'd', 20000),
        item("COPY FROM STDIN, 1 MB in 64 kB CopyData")
            .q("begin")
            .send(&[raw::query("copy difftest_copy from stdin")])
            .until(b"GZ")
            .send(&{
                let data: Vec<u8> = (0..20000)
                    .flat_map(|i| format!("{i}\tvalue {i:040}\t{i}.5\n").into_bytes())
                    .collect();
                let mut msgs: Vec<Vec<u8>> = data.chunks(65536).map(raw::copy_data).collect();
                msgs.push(raw::copy_done());
                msgs
            })
            .ready(1)
            .q("select count(*), sum(a), max(b) from difftest_copy")
            .q("rollback"),
    ]
}

fn session_corpus(oids: &[&str]) -> Vec<Item> {
    let oid = |i: usize| oids[i].parse::<i32>().expect("function oid");
    vec![
        item("BEGIN/COMMIT on a temporary table")
            .q("create temp table tt (a int)")
            .q("begin")
            .q("insert into tt values (1), (2), (3)")
            .q("commit")
            .q("select count(*), sum(a) from tt"),
        item("BEGIN/ROLLBACK")
            .q("begin")
            .q("insert into difftest_items (id, name) values (50, 'temp row')")
            .q("select count(*) from difftest_items")
            .q("rollback")
            .q("select count(*) from difftest_items"),
        item("failed transaction (25P02) and COMMIT answering ROLLBACK")
            .q("begin")
            .q("select 1/0")
            .q("select 1")
            .q("commit")
            .errors(&["22012", "25P02"]),
        item("savepoints")
            .q("begin")
            .q("savepoint a")
            .q("select 1/0")
            .q("rollback to a")
            .q("select 2")
            .q("release a")
            .q("commit")
            .errors(&["22012"])
            .count(b'D', 1),
        item("transaction left open inside one Query").q("begin; select 1").q("rollback"),
        item("read-only transaction (25006)")
            .q("begin read only")
            .q("insert into difftest_copy values (1)")
            .q("rollback")
            .errors(&["25006"]),
        item("serializable transaction").q(
            "begin isolation level serializable; select count(*) from difftest_items; commit",
        ),
        item("COMMIT and ROLLBACK outside a transaction (warnings)")
            .q("commit")
            .q("rollback")
            .count(b'N', 2),
        item("FunctionCall int4pl")
            .send(&[raw::function_call(oid(0), &[b"2", b"40"])])
            .ready(1)
            .count(b'V', 1),
        item("FunctionCall md5(text) with unicode")
            .send(&[raw::function_call(oid(4), &["héllo wörld ☕".as_bytes()])])
            .ready(1)
            .count(b'V', 1),
        item("FunctionCall upper(text) without a collation (42P22)")
            .send(&[raw::function_call(oid(1), &[b"abc"])])
            .ready(1)
            .errors(&["42P22"]),
        item("FunctionCall raising division by zero")
            .send(&[raw::function_call(oid(2), &[b"1", b"0"])])
            .ready(1)
            .q("select 'after'")
            .errors(&["22012"]),
        item("FunctionCall of a function with notices")
            .send(&[raw::function_call(oid(3), &[b"4"])])
            .ready(1)
            .count(b'N', 2)
            .count(b'V', 1),
        item("FunctionCall of a missing function")
            .send(&[raw::function_call(0, &[])])
            .ready(1)
            .errors(&["42883"]),
        // A session's own notifications arrive before the ReadyForQuery of
        // the statement that committed them; the notifying pid is masked (see
        // the module comment).
        item("LISTEN/NOTIFY to self")
            .q("listen difftest_chan")
            .q("notify difftest_chan, 'hello'")
            .q("select pg_notify('difftest_chan', 'payload ☕')")
            .q("begin; notify difftest_chan, 'x'; notify difftest_chan, 'y'; notify difftest_chan, 'x'; commit")
            .q("begin")
            .q("notify difftest_chan, 'at commit'")
            .q("commit")
            .q("unlisten difftest_chan; notify difftest_chan, 'unheard'")
            .q("select 'next'")
            .count(b'A', 5),
        item("a 5 MB text value")
            .q("select repeat('abcde', 1048576), length(repeat('abcde', 1048576))")
            .count(b'D', 1),
        item("a 5 MB value, binary, extended").ext(&[
            raw::parse("", "select repeat('z', 5242880)::bytea", &[]),
            raw::bind("", "", &[], &[], &[1]),
            raw::execute("", 0),
        ]),
        item("20k rows")
            .q("select g, md5(g::text), g % 7 = 0 from generate_series(1, 20000) g")
            .count(b'D', 20000),
        item("20k rows fetched 1000 at a time").ext(&{
            let mut v = vec![
                raw::parse("", "select g, md5(g::text) from generate_series(1, 20000) g", &[]),
                raw::bind("", "", &[], &[], &[]),
            ];
            v.extend((0..21).map(|_| raw::execute("", 1000)));
            v
        })
        .count(b'D', 20000)
        .count(b's', 20),
        item("client sends Terminate in the middle of a transaction")
            .q("begin")
            .q("insert into difftest_copy values (1, 'left open', 1)"),
        item("state left by the previous item is gone")
            .q("select count(*) from difftest_copy")
            .q("show application_name")
            .count(b'D', 2),
    ]
}

/// Sessions that leave state behind, each followed by one that must not see
/// it: through Helios the second runs on the same (reset) upstream connection.
fn lifecycle_corpus() -> Vec<Item> {
    let pipelined: Vec<Vec<u8>> = (0..50)
        .map(|i| raw::query(&format!("select {i}")))
        .collect();
    vec![
        item("leaves a named prepared statement").ext(&[raw::parse(
            "pooled_stmt",
            "select 1",
            &[],
        )]),
        item("the statement name is free again")
            .ext(&[
                raw::parse("pooled_stmt", "select 2", &[]),
                raw::bind("", "pooled_stmt", &[], &[], &[]),
                raw::execute("", 0),
            ])
            .errors(&[])
            .count(b'D', 1),
        item("leaves a temporary table").q("create temp table leak_tt (a int)"),
        item("the temporary table is gone")
            .q("create temp table leak_tt (a int)")
            .errors(&[]),
        item("leaves a LISTEN").q("listen leak_chan"),
        item("the LISTEN is gone")
            .q("notify leak_chan, 'nobody listens'")
            .q("select 1")
            .count(b'A', 0),
        item("leaves an advisory lock").q("select pg_advisory_lock(4242)"),
        item("the advisory lock is released")
            .q("select count(*) from pg_locks where locktype = 'advisory'")
            .count(b'D', 1),
        item("leaves a cursor WITH HOLD").q("declare leak_cur cursor with hold for select 1"),
        item("the cursor is gone")
            .q("declare leak_cur cursor with hold for select 2")
            .q("fetch all from leak_cur")
            .errors(&[]),
        item("leaves SET ROLE and read-only default")
            .q("set role difftest_user")
            .q("set session characteristics as transaction read only"),
        item("role and read-only default are reset")
            .q("select current_user, current_setting('default_transaction_read_only')")
            .q("create temp table rw (a int)")
            .errors(&[]),
        item("leaves a failed transaction open")
            .q("begin")
            .q("select 1/0"),
        item("a failed transaction does not carry over")
            .q("select 'fresh'")
            .errors(&[]),
        item("client aborts in the middle of a result")
            .send(&[raw::query(
                "select g, repeat('a', 1000) from generate_series(1, 100000) g",
            )])
            .until(b"D")
            .abort(),
        item("after an aborted result the next session is clean")
            .q("select 'clean'")
            .count(b'D', 1),
        item("client aborts in the middle of COPY FROM STDIN")
            .send(&[raw::query("copy difftest_copy from stdin")])
            .until(b"GZ")
            .send(&[raw::copy_data(b"1\tpartial\t1\n")])
            .abort(),
        item("after an aborted COPY nothing was written")
            .q("select count(*) from difftest_copy")
            .count(b'D', 1),
        item("notification from another session while idle")
            .q("listen idle_chan")
            .elsewhere("notify idle_chan, 'from elsewhere'")
            .until(b"A")
            .q("select 'after'")
            .count(b'A', 1),
        item("50 simple queries in one write")
            .send(&pipelined)
            .ready(50)
            .count(b'D', 50),
        item("COPY data sent without waiting for CopyInResponse")
            .q("begin")
            .send(&[
                raw::query("copy difftest_copy from stdin"),
                raw::copy_data(b"1\teager\t1\n"),
                raw::copy_done(),
            ])
            .ready(1)
            .q("select b from difftest_copy")
            .q("rollback")
            .count(b'D', 1),
    ]
}

/// A client may write Terminate right behind requests it still wants
/// answered: PostgreSQL handles messages in order, so it answers them before
/// it reads the Terminate and closes.
fn terminate_corpus() -> Vec<Item> {
    vec![
        item("Query and Terminate in one write")
            .send(&[
                raw::query("select 'answered before goodbye'"),
                raw::terminate(),
            ])
            .closed()
            .count(b'D', 1),
        item("extended batch and Terminate in one write")
            .send(
                &[
                    pbe("select 'answered before goodbye'"),
                    vec![raw::sync(), raw::terminate()],
                ]
                .concat(),
            )
            .closed()
            .count(b'D', 1),
        item("COMMIT and Terminate in one write")
            .q("create temp table bye (a int)")
            .q("begin")
            .q("insert into bye values (1)")
            .send(&[raw::query("commit"), raw::terminate()])
            .closed()
            .count(b'Z', 4),
    ]
}

/// Startups that PostgreSQL refuses: the client must see the same refusal
/// (AuthenticationOk first where PostgreSQL sends it, then the FATAL error).
fn refused_startup_corpus() -> Vec<Item> {
    let without = |name: &str| {
        let mut it = item(name);
        it.params.retain(|(k, _)| k != "user");
        it
    };
    vec![
        item("unknown database")
            .param("database", "no_such_db")
            .startup_error("3D000"),
        item("unknown role")
            .param("user", "no_such_role")
            .startup_error("28000"),
        item("role without LOGIN")
            .param("user", "difftest_user")
            .startup_error("28000"),
        item("unknown startup parameter")
            .param("no_such_setting", "1")
            .startup_error("42704"),
        item("invalid parameter value")
            .param("DateStyle", "bogus")
            .startup_error("22023"),
        item("invalid option in options")
            .param("options", "-c no_such_setting=1")
            .startup_error("42704"),
        without("no user name")
            .answered_by_helios()
            .startup_error("28000"),
    ]
}

// ---------------------------------------------------------------------------
// Tests.

/// The comparison itself: it masks the cancel key, and tells a notifying
/// pid only as the client's own or another's; everything else counts.
#[test]
fn comparison_masks_only_the_cancel_key_and_the_notifying_pid() {
    let m = |tag: u8, body: &[u8]| Msg {
        tag,
        body: body.to_vec(),
    };
    fn none(msgs: &[Msg]) -> (&[Msg], Option<[u8; 4]>) {
        (msgs, None)
    }
    let row = m(b'D', b"\0\x01\0\0\0\x01x");
    let key_a = m(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]);
    let key_b = m(b'K', &[0, 0, 0, 9, 0, 0, 0, 8]);
    let (pid_a, pid_b) = (Some([0, 0, 0, 1]), Some([0, 0, 0, 9]));
    assert!(diff(
        "t",
        none(&[key_a.clone(), row.clone()]),
        none(&[key_b.clone(), row.clone()])
    )
    .is_none());
    // Each client's own pid, or two other sessions: the same.
    let notify = |pid: u8, payload: &[u8]| {
        let mut b = vec![0, 0, 0, pid];
        b.extend_from_slice(b"chan\0");
        b.extend_from_slice(payload);
        b.push(0);
        m(b'A', &b)
    };
    let own_a = [notify(1, b"p")];
    let own_b = [notify(9, b"p")];
    assert!(diff("t", (&own_a, pid_a), (&own_b, pid_b)).is_none());
    let other = [notify(5, b"p")];
    let another = [notify(7, b"p")];
    assert!(diff("t", (&other, pid_a), (&another, pid_b)).is_none());
    // The client's own notification shown as another session's: a difference.
    assert!(diff("t", (&own_a, pid_a), (&other, pid_b)).is_some());
    assert!(diff("t", (&own_a, pid_a), (&[notify(9, b"q")], pid_b)).is_some());
    let other_row = m(b'D', b"\0\x01\0\0\0\x01y");
    let d = diff(
        "t",
        none(&[key_a.clone(), row.clone()]),
        none(&[key_a.clone(), other_row]),
    )
    .unwrap();
    assert!(d.contains("message #1"), "{d}");
    assert!(diff(
        "t",
        none(std::slice::from_ref(&row)),
        none(&[row.clone(), row.clone()])
    )
    .is_some());
    assert!(
        diff("t", none(&[key_a]), none(&[])).is_some(),
        "a missing BackendKeyData is a difference"
    );
}

#[test]
fn startup_parameter_status_matches_direct() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    // Sessions with the default parameters, one of which changes every
    // reported setting it can, and sessions with only a user name (another
    // pooled upstream connection, fresh the first time).
    let changer = item("changer")
        .q("set application_name = 'changed'; set TimeZone = 'Asia/Tokyo'; set DateStyle = 'SQL, DMY'")
        .q("set IntervalStyle = 'sql_standard'; set client_encoding = 'LATIN1'");
    let plain = item("plain");
    let minimal = Item {
        name: "minimal".into(),
        params: vec![("user".into(), "postgres".into())],
        steps: Vec::new(),
        expect: Vec::new(),
        answered_by_helios: false,
    };
    // Sessions through Helios reuse one upstream connection (session
    // pooling), so the startups below with the default parameters are
    // greetings on a pooled connection, reset after the previous session.
    let upstream_pid = || {
        let it = item("pid").q("select pg_backend_pid()");
        let t = run(helios.port, &pg, &it);
        let row = t.msgs.iter().find(|m| m.tag == b'D').expect("a row");
        String::from_utf8_lossy(&row.body[6..]).into_owned()
    };
    let first = upstream_pid();
    assert_eq!(
        upstream_pid(),
        first,
        "the second session reuses the pooled upstream connection"
    );
    let mut report = String::new();
    for it in [&plain, &changer, &plain, &minimal, &plain, &minimal] {
        let d = run(pg.port, &pg, it);
        let h = run(helios.port, &pg, it);
        let names = |msgs: &[Msg]| -> Vec<String> {
            msgs.iter()
                .filter(|m| m.tag == b'S')
                .map(|m| String::from_utf8_lossy(&m.body).replace('\0', "="))
                .collect()
        };
        let tags: String = h.startup.iter().map(|m| m.tag as char).collect();
        eprintln!(
            "startup via Helios ({}): {tags}: {}",
            it.name,
            names(&h.startup).join(", ")
        );
        // The shape a driver expects: AuthenticationOk, ParameterStatus*,
        // BackendKeyData, ReadyForQuery(Idle).
        assert!(
            tags.starts_with('R')
                && tags.ends_with("KZ")
                && tags[1..tags.len() - 2].chars().all(|c| c == 'S'),
            "unexpected startup shape through Helios: {tags}"
        );
        assert_eq!(h.startup[0].body, 0i32.to_be_bytes(), "AuthenticationOk");
        assert_eq!(h.startup.last().unwrap().body, b"I");
        assert!(
            names(&d.startup).len() >= 10,
            "PostgreSQL reports its parameters"
        );
        let (dp, hp) = (own_pid(&d.startup), own_pid(&h.startup));
        if let Some(s) = diff("startup", (&d.startup, dp), (&h.startup, hp)) {
            let _ = writeln!(report, "item \"{}\":\n{s}", it.name);
        }
        if let Some(s) = diff("messages", (&d.msgs, dp), (&h.msgs, hp)) {
            let _ = writeln!(report, "item \"{}\":\n{s}", it.name);
        }
    }
    assert!(report.is_empty(), "startup streams differ:\n{report}");
}

#[test]
fn types_and_simple_queries_match_direct() {
    let (pg, helios) = setup();
    check(&pg, &helios, &types_corpus());
}

#[test]
fn errors_and_notices_match_direct() {
    let (pg, helios) = setup();
    check(&pg, &helios, &errors_corpus());
}

#[test]
fn extended_protocol_matches_direct() {
    let (pg, helios) = setup();
    check(&pg, &helios, &extended_corpus());
}

#[test]
fn copy_matches_direct() {
    let (pg, helios) = setup();
    check(&pg, &helios, &copy_corpus());
}

#[test]
fn transactions_function_calls_notify_and_large_values_match_direct() {
    let (pg, helios) = setup();
    let oids = pg.psql(
        "select 'int4pl'::regproc::oid, 'upper(text)'::regprocedure::oid, \
         'int4div'::regproc::oid, 'difftest_notice'::regproc::oid, 'md5(text)'::regprocedure::oid",
    );
    let oids: Vec<&str> = oids.trim().split('|').collect();
    assert_eq!(oids.len(), 5, "function oids: {oids:?}");
    check(&pg, &helios, &session_corpus(&oids));
}

#[test]
fn session_state_does_not_leak_through_the_pool() {
    let (pg, helios) = setup();
    check(&pg, &helios, &lifecycle_corpus());
}

#[test]
fn requests_written_before_terminate_are_answered() {
    let (pg, helios) = setup();
    check(&pg, &helios, &terminate_corpus());
}

#[test]
fn refused_startups_match_direct() {
    let (pg, helios) = setup();
    check(&pg, &helios, &refused_startup_corpus());
}

#[test]
fn corpus_is_broad() {
    let n = types_corpus().len()
        + errors_corpus().len()
        + extended_corpus().len()
        + copy_corpus().len()
        + session_corpus(&["1", "2", "3", "4", "5"]).len()
        + lifecycle_corpus().len()
        + terminate_corpus().len()
        + refused_startup_corpus().len();
    assert!(n >= 60, "only {n} items");
}
