//! Corpus: COPY FROM STDIN and COPY TO STDOUT.

use crate::common::raw;
use crate::item::{item, pbe, Item};

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

pub(crate) fn copy_corpus() -> Vec<Item> {
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
