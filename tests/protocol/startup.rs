//! Startup: parameters, the login greeting, login errors and protocol 3.2 negotiation.

use std::time::Duration;

use crate::common::raw::{self, Msg, RawConn};
use crate::common::{self, Helios, PgServer};
use crate::support::{
    find, login, parameter_statuses, roundtrip, s, simple_rows, startup_minor, tags, text_rows,
    until_tag, within,
};

// ---------------------------------------------------------------------------
// Startup
// ---------------------------------------------------------------------------

#[tokio::test]
async fn startup_parameters_reach_the_upstream() {
    let pg = PgServer::start();
    pg.psql(
        "create schema helios_s; create table helios_s.only_here (v text); \
         insert into helios_s.only_here values ('found')",
    );
    let helios = Helios::start(&pg, "");
    let client = common::connect(&format!(
        "{} application_name=helios_app options='-c search_path=helios_s,public -c work_mem=5MB'",
        helios.conn_str("postgres")
    ))
    .await;
    let rows = simple_rows(
        &client,
        "select current_setting('application_name'), current_setting('search_path'), \
         current_setting('work_mem'), (select v from only_here)",
    )
    .await;
    assert_eq!(
        rows,
        vec![vec![
            s("helios_app"),
            s("helios_s,public"),
            s("5MB"),
            s("found")
        ]]
    );
    // The server sees it too.
    let direct = pg.connect().await;
    let n: i64 = within(
        "pg_stat_activity",
        direct.query_one(
            "select count(*) from pg_stat_activity where application_name = 'helios_app'",
            &[],
        ),
    )
    .await
    .unwrap()
    .get(0);
    assert_eq!(n, 1);
}

#[test]
fn the_login_greeting_matches_a_direct_connections_except_the_key() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let params = &[
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", "greeting test"),
        ("DateStyle", "SQL, DMY"),
    ];
    let (_d, direct) = login(pg.port, params);
    let (_h, via) = login(helios.port, params);
    assert_eq!(tags(&via), tags(&direct));
    let without_key =
        |msgs: &[Msg]| -> Vec<Msg> { msgs.iter().filter(|m| m.tag != b'K').cloned().collect() };
    assert_eq!(without_key(&via), without_key(&direct));
    assert!(parameter_statuses(&via)
        .contains(&("application_name".to_string(), "greeting test".to_string())));
    assert!(parameter_statuses(&via).contains(&("DateStyle".to_string(), "SQL, DMY".to_string())));
    assert_eq!(find(&via, b'K').body.len(), 8);
}

#[test]
fn login_errors_from_the_upstream_pass_through_unchanged() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    for (params, code, message) in [
        (
            vec![("user", "postgres"), ("database", "no_such_db")],
            "3D000",
            "database \"no_such_db\" does not exist",
        ),
        (
            vec![("user", "no_such_role"), ("database", "postgres")],
            "28000",
            "role \"no_such_role\" does not exist",
        ),
        (
            vec![
                ("user", "postgres"),
                ("database", "postgres"),
                ("options", "-c no_such.setting=1 -c work_mem=bogus"),
            ],
            "22023",
            "invalid value for parameter \"work_mem\": \"bogus\"",
        ),
    ] {
        let mut seen = Vec::new();
        for port in [pg.port, helios.port] {
            let mut c = RawConn::open(port);
            c.stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .unwrap();
            c.send(&raw::startup(&params));
            seen.push(c.until_closed());
        }
        // PostgreSQL (trust) says AuthenticationOk first, then the error;
        // so must Helios, and the error must be the upstream's own.
        let (direct, via) = (&seen[0], &seen[1]);
        assert_eq!(tags(direct), "RE", "direct: {direct:?}");
        assert_eq!(via, direct, "through Helios");
        let via: Vec<Msg> = via.iter().filter(|m| m.tag != b'R').cloned().collect();
        assert_eq!(
            via[0], direct[1],
            "{params:?}: Helios's error differs from PostgreSQL's"
        );
        assert_eq!(via[0].field(b'S').as_deref(), Some("FATAL"));
        assert_eq!(via[0].sqlstate().as_deref(), Some(code));
        assert_eq!(via[0].field(b'M').as_deref(), Some(message));
    }
}

#[test]
fn protocol_3_2_startup_gets_negotiate_protocol_version_then_works() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    // PostgreSQL 15 answers with the newest version it speaks, 3.0 (as a
    // full version code, 0x00030000), and the options it did not recognize.
    for (params, expected_v) in [
        (
            vec![("user", "postgres"), ("database", "postgres")],
            b"\0\x03\0\0\0\0\0\0".to_vec(),
        ),
        (
            vec![
                ("user", "postgres"),
                ("_pq_.helios_test", "1"),
                ("database", "postgres"),
            ],
            b"\0\x03\0\0\0\0\0\x01_pq_.helios_test\0".to_vec(),
        ),
    ] {
        let mut firsts = Vec::new();
        for port in [pg.port, helios.port] {
            let mut c = RawConn::open(port);
            c.stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .unwrap();
            c.send(&startup_minor(2, &params));
            let msgs = until_tag(&mut c, b'Z');
            assert_eq!(msgs[0].tag, b'v', "port {port}: {msgs:?}");
            assert_eq!(msgs[1].tag, b'R', "port {port}: {msgs:?}");
            assert_eq!(msgs[1].body, [0, 0, 0, 0], "AuthenticationOk");
            let q = roundtrip(&mut c, &raw::query("select 'works'"));
            assert_eq!(text_rows(&q), vec![vec![s("works")]]);
            firsts.push(msgs[0].clone());
        }
        assert_eq!(
            firsts[1], firsts[0],
            "NegotiateProtocolVersion differs from the upstream's"
        );
        assert_eq!(firsts[1].body, expected_v);
    }
}
