//! Session pooling: what a reused upstream connection must and must not carry over.

use crate::common::raw;
use crate::common::{self, sqlstate, Helios, PgServer};
use crate::support::{
    backend_key, backend_pid, cat, copy_in, cstring, find, login, on_both, one, parameter_statuses,
    raw_value, roundtrip, s, status, tags, text_rows, until_tag, within, LOGIN,
};

// ---------------------------------------------------------------------------
// Session pooling
// ---------------------------------------------------------------------------

/// Helios with one upstream connection per (database, user): a second client
/// waits for the first's connection, so reuse is deterministic.
const ONE_CONNECTION: &str = "[pool]\nmax_size = 1\n";

#[tokio::test]
async fn the_next_client_reuses_the_connection_without_the_previous_session_state() {
    let pg = PgServer::start();
    pg.psql(
        "create role helios_low nologin; create sequence seq; \
         grant usage on sequence seq to helios_low",
    );
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let first = helios.connect().await;
    let pid = backend_pid(&first).await;
    within(
        "session state",
        first.batch_execute(
            "set work_mem = '77MB'; create temp table leftover (a int); \
             prepare p as select 'from the first client'; listen first_channel; \
             set session characteristics as transaction read only; \
             select pg_advisory_lock(42); select nextval('seq'); \
             set session authorization helios_low",
        ),
    )
    .await
    .unwrap();
    assert_eq!(one(&first, "show work_mem").await, "77MB");
    assert_eq!(one(&first, "execute p").await, "from the first client");
    // tokio-postgres's own named statements (s0, s1, ...) exist now too.
    within("prepare", first.prepare("select 1")).await.unwrap();
    drop(first);

    let second = helios.connect().await;
    assert_eq!(
        backend_pid(&second).await,
        pid,
        "the upstream connection was not reused"
    );
    assert_eq!(one(&second, "show work_mem").await, "4MB");
    assert_eq!(
        one(&second, "select to_regclass('leftover') is null").await,
        "t"
    );
    assert_eq!(
        one(
            &second,
            "select count(*) from pg_prepared_statements where name = 'p'"
        )
        .await,
        "0"
    );
    let e = within("execute p", second.simple_query("execute p"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("26000"), "{e}");
    assert_eq!(
        one(&second, "select count(*) from pg_listening_channels()").await,
        "0"
    );
    assert_eq!(one(&second, "show transaction_read_only").await, "off");
    assert_eq!(
        one(&second, "select session_user || ',' || current_user").await,
        "postgres,postgres"
    );
    assert_eq!(
        one(
            &second,
            "select count(*) from pg_locks where locktype = 'advisory'"
        )
        .await,
        "0"
    );
    let e = within("currval", second.simple_query("select currval('seq')"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{e}");
    // The driver's statement names do not collide with the first client's.
    let stmt = within("prepare", second.prepare("select 2::int4"))
        .await
        .unwrap();
    let row = within("query", second.query_one(&stmt, &[])).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_is_reused_after_a_client_used_copy_from_stdin() {
    let pg = PgServer::start();
    pg.psql("create table copied (v int)");
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let port = helios.port;

    // Simple-protocol COPY (what psql's \copy does), then leave.
    let pid = tokio::task::spawn_blocking(move || {
        let (mut c, _) = login(port, LOGIN);
        let pid = raw_value(&mut c, "select pg_backend_pid()");
        c.send(&raw::query("copy copied from stdin"));
        until_tag(&mut c, b'G');
        let msgs = roundtrip(&mut c, &cat(&[raw::copy_data(b"1\n2\n"), raw::copy_done()]));
        assert_eq!(tags(&msgs), "CZ");
        c.send(&raw::terminate());
        assert!(c.until_closed().is_empty());
        pid.parse::<i32>().unwrap()
    })
    .await
    .unwrap();

    // The next raw client (same startup parameters) gets the same connection.
    let again = tokio::task::spawn_blocking(move || {
        let (mut c, _) = login(port, LOGIN);
        let pid = raw_value(&mut c, "select pg_backend_pid()");
        c.send(&raw::terminate());
        assert!(c.until_closed().is_empty());
        pid.parse::<i32>().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        again, pid,
        "the upstream connection was closed instead of pooled after a simple-protocol COPY"
    );

    // tokio-postgres sends other startup parameters (client_encoding, ...),
    // so it has a connection of its own.
    let second = helios.connect().await;
    let pid = backend_pid(&second).await;
    // Extended-protocol COPY, as tokio-postgres and libpq's PQexecParams do
    // it: Bind, Execute, Sync, CopyData..., CopyDone, Sync.
    let n = copy_in(&second, "copy copied from stdin", &[b"3\n4\n5\n"]).await;
    assert_eq!(n, 3);
    assert_eq!(one(&second, "select count(*) from copied").await, "5");
    drop(second);

    let third = helios.connect().await;
    assert_eq!(
        backend_pid(&third).await,
        pid,
        "the upstream connection was closed instead of pooled after an extended-protocol COPY"
    );
}

#[test]
fn extended_protocol_copy_in_answers_two_syncs_with_one_ready_for_query() {
    // The server swallows a Sync that arrives while it is in COPY IN mode
    // (drivers send one right after Execute, not knowing it is a COPY).
    let pg = PgServer::start();
    pg.psql("create table ext_copy (v int)");
    let helios = Helios::start(&pg, "");
    let msgs = on_both(&pg, &helios, |c| {
        c.send(&cat(&[
            raw::parse("", "copy ext_copy from stdin", &[]),
            raw::bind("", "", &[], &[], &[]),
            raw::execute("", 0),
            raw::sync(),
        ]));
        let mut all = until_tag(c, b'G');
        all.extend(roundtrip(
            c,
            &cat(&[raw::copy_data(b"7\n"), raw::copy_done(), raw::sync()]),
        ));
        // The next request gets exactly its own answer.
        all.extend(roundtrip(c, &raw::query("select 'next'")));
        all
    });
    assert_eq!(tags(&msgs), "12GCZTDCZ");
    assert_eq!(cstring(&msgs[3]), "COPY 1");
    assert_eq!(text_rows(&msgs), vec![vec![s("next")]]);
}

#[test]
fn a_protocol_violation_after_an_extended_protocol_copy_still_ends_the_session() {
    let pg = PgServer::start();
    pg.psql("create table pv_copy (v int)");
    let helios = Helios::start(&pg, "");
    let extended_copy = cat(&[
        raw::parse("", "copy pv_copy from stdin", &[]),
        raw::bind("", "", &[], &[], &[]),
        raw::execute("", 0),
        raw::sync(),
    ]);
    for (server, port) in [("direct", pg.port), ("helios", helios.port)] {
        for with_copy in [false, true] {
            let (mut c, _) = login(port, LOGIN);
            if with_copy {
                c.send(&extended_copy);
                until_tag(&mut c, b'G');
                let msgs = roundtrip(
                    &mut c,
                    &cat(&[raw::copy_data(b"1\n"), raw::copy_done(), raw::sync()]),
                );
                assert_eq!(tags(&msgs), "CZ", "{server}");
            }
            // '!' is no frontend message type.
            c.send(&raw::msg(b'!', b""));
            let rest = c.until_closed();
            assert_eq!(
                tags(&rest),
                "E",
                "{server}, after a COPY: {with_copy}: expected a FATAL error and the end \
                 of the connection, got {rest:?}"
            );
            assert_eq!(rest[0].field(b'S').as_deref(), Some("FATAL"), "{server}");
            assert_eq!(rest[0].sqlstate().as_deref(), Some("08P01"), "{server}");
        }
    }
}

#[test]
fn a_reused_connection_greets_with_the_startup_parameter_values() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let params = &[
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", "greeter"),
    ];
    let (mut a, greeting_a) = login(helios.port, params);
    let pid_a = raw_value(&mut a, "select pg_backend_pid()");
    let changed = roundtrip(
        &mut a,
        &raw::query(
            "set application_name = 'changed'; set TimeZone = 'Asia/Tokyo'; \
             set DateStyle = 'SQL, DMY'",
        ),
    );
    assert_eq!(parameter_statuses(&changed).len(), 3);
    a.send(&raw::terminate());
    assert!(a.until_closed().is_empty());

    let (mut b, greeting_b) = login(helios.port, params);
    let pid_b = raw_value(&mut b, "select pg_backend_pid()");
    assert_eq!(pid_b, pid_a, "the upstream connection was not reused");
    let ps_a = parameter_statuses(&greeting_a);
    let ps_b = parameter_statuses(&greeting_b);
    assert!(
        ps_a.contains(&("application_name".into(), "greeter".into())),
        "{ps_a:?}"
    );
    let mut sorted_a = ps_a.clone();
    let mut sorted_b = ps_b.clone();
    sorted_a.sort();
    sorted_b.sort();
    assert_eq!(
        sorted_b, sorted_a,
        "the second client's greeting shows the first's settings"
    );
    let initial = |name: &str| {
        ps_a.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in the greeting"))
    };
    let rows = text_rows(&roundtrip(
        &mut b,
        &raw::query(
            "select current_setting('application_name'), current_setting('TimeZone'), \
             current_setting('DateStyle')",
        ),
    ));
    assert_eq!(
        rows,
        vec![vec![
            s("greeter"),
            Some(initial("TimeZone")),
            Some(initial("DateStyle"))
        ]]
    );
}

#[tokio::test]
async fn clients_with_different_application_names_do_not_share_a_connection() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let a = common::connect(&format!(
        "{} application_name=app_a",
        helios.conn_str("postgres")
    ))
    .await;
    let pid_a = backend_pid(&a).await;
    drop(a);
    let b = common::connect(&format!(
        "{} application_name=app_b",
        helios.conn_str("postgres")
    ))
    .await;
    let pid_b = backend_pid(&b).await;
    assert_ne!(pid_a, pid_b, "app_b was given app_a's upstream connection");
    assert_eq!(
        one(&b, "select current_setting('application_name')").await,
        "app_b"
    );
    drop(b);
    // And the same parameters do share one (the control for the above).
    let b2 = common::connect(&format!(
        "{} application_name=app_b",
        helios.conn_str("postgres")
    ))
    .await;
    assert_eq!(backend_pid(&b2).await, pid_b);
}

#[tokio::test]
async fn a_client_leaving_inside_a_transaction_does_not_leave_it_open() {
    let pg = PgServer::start();
    pg.psql("create table lt (v int)");
    let helios = Helios::start(&pg, ONE_CONNECTION);
    let direct = pg.connect().await;

    let a = helios.connect().await;
    within(
        "open transaction",
        a.batch_execute("begin; insert into lt values (1); lock table lt in access exclusive mode"),
    )
    .await
    .unwrap();
    drop(a);

    let b = helios.connect().await;
    assert_eq!(
        one(&b, "select txid_current_if_assigned() is null").await,
        "t"
    );
    assert_eq!(one(&b, "select count(*) from lt").await, "0");
    within("insert", b.batch_execute("insert into lt values (2)"))
        .await
        .unwrap();
    // Autocommitted: visible to everyone at once.
    let row = within(
        "direct select",
        direct.query_one("select string_agg(v::text, ',') from lt", &[]),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("2"));
}

#[test]
fn a_client_leaving_mid_copy_or_mid_pipeline_does_not_disturb_the_next() {
    let pg = PgServer::start();
    pg.psql("create table mc (v int)");
    let helios = Helios::start(&pg, ONE_CONNECTION);

    // Leaves (closes the socket) in the middle of COPY FROM STDIN.
    let (mut a, _) = login(helios.port, LOGIN);
    a.send(&raw::query("copy mc from stdin"));
    until_tag(&mut a, b'G');
    a.send(&raw::copy_data(b"1\n2\n"));
    drop(a);

    let (mut b, _) = login(helios.port, LOGIN);
    let msgs = roundtrip(&mut b, &raw::query("select count(*) from mc"));
    assert_eq!(tags(&msgs), "TDCZ", "{msgs:?}");
    assert_eq!(text_rows(&msgs), vec![vec![s("0")]]);
    assert_eq!(status(&msgs), 'I');

    // Leaves after a Parse and Bind with no Sync.
    b.send(&cat(&[
        raw::parse("half", "insert into mc values (99)", &[]),
        raw::bind("", "half", &[], &[], &[]),
        raw::flush(),
    ]));
    assert_eq!(tags(&until_tag(&mut b, b'2')), "12");
    drop(b);

    let (mut c, _) = login(helios.port, LOGIN);
    let msgs = roundtrip(
        &mut c,
        &cat(&[
            raw::parse("half", "select count(*) from mc", &[]),
            raw::bind("", "half", &[], &[], &[]),
            raw::execute("", 0),
            raw::sync(),
        ]),
    );
    assert_eq!(tags(&msgs), "12DCZ", "{msgs:?}");
    assert_eq!(text_rows(&msgs), vec![vec![s("0")]]);
    assert_eq!(status(&msgs), 'I');

    // Executes an INSERT but never sends Sync, then says goodbye: PostgreSQL
    // rolls such a write back; it must not be committed on the client's behalf.
    c.send(&cat(&[
        raw::parse("", "insert into mc values (99)", &[]),
        raw::bind("", "", &[], &[], &[]),
        raw::execute("", 0),
        raw::flush(),
    ]));
    let msgs = until_tag(&mut c, b'C');
    assert_eq!(tags(&msgs), "12C");
    assert_eq!(cstring(&msgs[2]), "INSERT 0 1");
    c.send(&raw::terminate());
    assert!(c.until_closed().is_empty());

    let (mut d, _) = login(helios.port, LOGIN);
    let msgs = roundtrip(&mut d, &raw::query("select count(*) from mc"));
    assert_eq!(
        text_rows(&msgs),
        vec![vec![s("0")]],
        "a write the client never synced was committed"
    );
    assert_eq!(status(&msgs), 'I');
    assert_eq!(pg.psql("select count(*) from mc"), "0\n");
}

#[test]
fn a_notification_to_oneself_carries_the_pid_the_client_was_given() {
    // libpq programs skip their own notifications by comparing be_pid with
    // PQbackendPID(): the pid must be the one in Helios's BackendKeyData.
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let (mut c, greeting) = login(
        helios.port,
        &[("user", "postgres"), ("database", "postgres")],
    );
    let (pid, _) = backend_key(&greeting);
    let msgs = roundtrip(&mut c, &raw::query("listen ch; notify ch, 'hi'"));
    let n = find(&msgs, b'A');
    assert_eq!(i32::from_be_bytes(n.body[..4].try_into().unwrap()), pid);
    assert_eq!(&n.body[4..], b"ch\0hi\0");
    // Another session's notification keeps that session's server pid.
    let (mut other, _) = login(
        helios.port,
        &[
            ("user", "postgres"),
            ("database", "postgres"),
            ("application_name", "other"),
        ],
    );
    let other_pid = raw_value(&mut other, "select pg_backend_pid()");
    roundtrip(&mut other, &raw::query("notify ch, 'from other'"));
    let n = until_tag(&mut c, b'A');
    let n = n.last().unwrap();
    assert_eq!(
        i32::from_be_bytes(n.body[..4].try_into().unwrap()).to_string(),
        other_pid
    );
}
