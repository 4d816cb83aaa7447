//! Lengths that lie, and Binds whose parameters do not match their bytes.

use super::*;

// ---------------------------------------------------------- lengths that lie

#[test]
fn lengths_that_lie_are_framed_exactly_as_postgres_frames_them() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "");
    let select1 = b"select 1\0";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            // The length covers `select 1`; what follows is read as the
            // next message: type 'i'.
            "a length shorter than the body",
            {
                let mut v = raw::msg(b'Q', select1);
                v.extend(b"insert into t values (1)\0");
                v
            },
            "FATAL 08P01 invalid frontend message type 105",
        ),
        (
            // The length stops before the terminator: the string has none;
            // its NUL is the next message's type.
            "a length that leaves the terminator out",
            {
                let mut v = with_len_field(b'Q', 4 + 8, b"select 1\0");
                v.extend(raw::query("insert into t values (2)"));
                v
            },
            "FATAL 08P01 invalid frontend message type 0",
        ),
        (
            "a Query whose string has no terminator",
            raw::msg(b'Q', b"insert into t values (3)"),
            "ERROR 08P01 invalid string in message",
        ),
        (
            "a Query with a second statement after its terminator",
            raw::msg(b'Q', b"select 1\0insert into t values (4)\0"),
            "ERROR 08P01 invalid message format",
        ),
        (
            "a Query with two terminators",
            raw::msg(b'Q', b"insert into t values (5)\0\0"),
            "ERROR 08P01 invalid message format",
        ),
    ];
    for (what, bytes, want) in &cases {
        let (got, closed) = same_as_postgres(&pg, &h, what, bytes);
        assert!(
            got.iter().any(|m| m.ends_with(want)),
            "{what}: expected {want:?} in {got:?}"
        );
        assert_eq!(closed, want.starts_with("FATAL"), "{what}: {got:?}");
        assert_eq!(rows_in_t(&pg), "", "{what}: a hidden statement ran");
    }
    assert!(h.is_alive());
    helios_answers_blocking(&h);
}

/// A Bind body after the portal and statement names.
fn bind_tail(formats: &[i16], count: i16, values: &[&[u8]], lens: Option<&[i32]>) -> Vec<u8> {
    let mut b = vec![0u8, 0u8]; // unnamed portal, unnamed statement
    b.extend((formats.len() as i16).to_be_bytes());
    for f in formats {
        b.extend(f.to_be_bytes());
    }
    b.extend(count.to_be_bytes());
    for (i, v) in values.iter().enumerate() {
        let len = lens.map_or(v.len() as i32, |l| l[i]);
        b.extend(len.to_be_bytes());
        b.extend_from_slice(v);
    }
    b.extend(0i16.to_be_bytes()); // result formats
    b
}

/// The malformed Binds: what, body.
fn bad_binds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "a count of 2 with one value",
            bind_tail(&[], 2, &[b"7"], None),
        ),
        (
            "a count of 2 with two values",
            bind_tail(&[], 2, &[b"7", b"8"], None),
        ),
        ("a count of 0 and no value", bind_tail(&[], 0, &[], None)),
        (
            "a value length past the end",
            bind_tail(&[], 1, &[b"7"], Some(&[100])),
        ),
        (
            "a value length of -2",
            bind_tail(&[], 1, &[b"7"], Some(&[-2])),
        ),
        ("a count of -1", bind_tail(&[], -1, &[b"7"], None)),
        (
            "3 parameter formats for one parameter",
            bind_tail(&[0, 0, 0], 1, &[b"7"], None),
        ),
        ("bytes after the result formats", {
            let mut b = bind_tail(&[], 1, &[b"7"], None);
            b.extend(b"xx");
            b
        }),
        ("a statement name without terminator", b"\0stmt".to_vec()),
    ]
}

#[test]
fn binds_whose_parameters_do_not_match_their_bytes_are_refused_as_postgres_refuses_them() {
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let mut h = Helios::start(&pg, "");
    for (what, body) in bad_binds() {
        let mut bytes = raw::parse("", "insert into t values ($1::int)", &[]);
        bytes.extend(raw::msg(b'B', &body));
        bytes.extend(raw::execute("", 0));
        bytes.extend(raw::sync());
        let (got, closed) = same_as_postgres(&pg, &h, what, &bytes);
        assert!(!closed, "{what}: {got:?}");
        assert!(
            got.iter().any(|m| m.starts_with("E ERROR 08P01")),
            "{what}: expected a protocol violation: {got:?}"
        );
        assert_eq!(rows_in_t(&pg), "", "{what}: the insert ran");
    }
    assert!(h.is_alive());
    helios_answers_blocking(&h);
}

#[test]
fn a_malformed_bind_of_a_question_is_refused_and_asks_the_model_nothing() {
    // Helios answers `nl($1)` itself, so it reads the Bind itself: it must
    // refuse what PostgreSQL would refuse (08P01), before asking the model.
    let pg = PgServer::start();
    pg.psql("create table t (x int)");
    let llm = FakeLlm::start_blocking();
    let mut h = Helios::start(
        &pg,
        &format!(
            "[nl]\n[[nl.providers]]\nkind = \"openai\"\nname = \"fake\"\nbase_url = \"{}\"\nmodel = \"m\"\napi_key = \"sk-test\"\ntimeout = \"5s\"\nmax_retries = 0\n",
            llm.base_url()
        ),
    );
    let mut failures = Vec::new();
    for (what, body) in bad_binds() {
        let calls = llm.calls();
        let mut bytes = raw::parse("", "SELECT * FROM nl($1)", &[]);
        bytes.extend(raw::msg(b'B', &body));
        bytes.extend(raw::execute("", 0));
        bytes.extend(raw::sync());
        let (got, closed) = after_login(h.port, &bytes);
        let errors: Vec<&String> = got.iter().filter(|m| m.starts_with("E ")).collect();
        if closed || errors.len() != 1 || !errors[0].starts_with("E ERROR 08P01") {
            failures.push(format!("{what}: expected one ERROR 08P01, got {got:?}"));
        }
        if llm.calls() != calls {
            failures.push(format!("{what}: the model was asked"));
        }
    }
    assert_eq!(rows_in_t(&pg), "");
    assert!(h.is_alive());
    helios_answers_blocking(&h);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
