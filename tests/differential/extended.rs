//! Corpus: the extended query protocol.

use crate::common::raw;
use crate::item::{item, pbe, Item};

pub(crate) fn extended_corpus() -> Vec<Item> {
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
