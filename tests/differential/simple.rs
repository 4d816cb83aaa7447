//! Corpus: types and simple queries, errors and notices.

use crate::common::raw;
use crate::item::{item, Item};

pub(crate) fn types_corpus() -> Vec<Item> {
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

pub(crate) fn errors_corpus() -> Vec<Item> {
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
