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

#[path = "../common/mod.rs"]
mod common;

mod compare;
mod copy;
mod extended;
mod item;
mod lifecycle;
mod session;
mod simple;

use std::fmt::Write as _;

use crate::common::raw::Msg;
use crate::common::{Helios, PgServer};
use crate::compare::{check, diff, own_pid, run, setup};
use crate::copy::copy_corpus;
use crate::extended::extended_corpus;
use crate::item::{item, Item};
use crate::lifecycle::{lifecycle_corpus, refused_startup_corpus, terminate_corpus};
use crate::session::session_corpus;
use crate::simple::{errors_corpus, types_corpus};

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
