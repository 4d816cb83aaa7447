//! The result cache's in-memory work on the hot path: a lookup that hits
//! (with the generation check that makes it valid) and the copy of a relayed
//! reply into a capture. Run: `cargo bench -p helios-cache --bench store`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use helios_cache::{CacheKey, Capture, CaptureEnd, Context, Limits, Lookup, Request, ResultCache};

fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// RowDescription of one text column.
fn row_description(name: &str) -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(&16384u32.to_be_bytes()); // table oid
    body.extend_from_slice(&2u16.to_be_bytes()); // column number
    body.extend_from_slice(&25u32.to_be_bytes()); // type: text
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&0u16.to_be_bytes());
    msg(b'T', &body)
}

fn data_row(value: &[u8]) -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(&(value.len() as u32).to_be_bytes());
    body.extend_from_slice(value);
    msg(b'D', &body)
}

/// RowDescription, `rows` DataRows of `width` bytes, CommandComplete,
/// ReadyForQuery: a simple Query's whole reply.
fn reply(rows: usize, width: usize) -> Vec<u8> {
    let mut out = row_description("abalance");
    let row = data_row(&vec![b'x'; width]);
    for _ in 0..rows {
        out.extend_from_slice(&row);
    }
    out.extend(msg(b'C', format!("SELECT {rows}\0").as_bytes()));
    out.extend(msg(b'Z', b"I"));
    out
}

fn captured(wire: &[u8]) -> helios_cache::entry::CapturedReply {
    match Capture::new(8 << 20).feed(wire) {
        Some(CaptureEnd::Complete(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn cache() -> ResultCache {
    ResultCache::new(Limits {
        max_memory: 1 << 30,
        max_entries: 1_000_000,
        max_entry_size: 8 << 20,
    })
}

/// A key for `pgbench -S`'s statement with this aid: simple, or a Bind of
/// the prepared statement with the aid as a text parameter.
fn key(c: &ResultCache, aid: u32, extended: bool) -> CacheKey {
    let context = c.context(Context {
        database: "postgres".into(),
        role: "postgres".into(),
        settings: "0123456789abcdef0123456789abcdef".into(),
    });
    let request = if extended {
        let value = aid.to_string();
        let mut bind = 0u16.to_be_bytes().to_vec(); // parameter formats: all text
        bind.extend_from_slice(&1u16.to_be_bytes());
        bind.extend_from_slice(&(value.len() as u32).to_be_bytes());
        bind.extend_from_slice(value.as_bytes());
        bind.extend_from_slice(&0u16.to_be_bytes()); // result formats: all text
        Request::Extended {
            text: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;".into(),
            param_types: Arc::from(&[][..]),
            bind: Bytes::from(bind),
        }
    } else {
        Request::Simple(format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};").into())
    };
    CacheKey { context, request }
}

/// Store the reply `wire` under `k`, depending on `pgbench_accounts`.
fn fill(c: &ResultCache, k: &CacheKey, wire: &[u8]) {
    let Lookup::Fill(ticket) = c.lookup(k) else {
        panic!("expected a miss")
    };
    let snapshot = c.generations.snapshot("postgres", ["pgbench_accounts"]);
    let stats = c.statement(1, "SELECT abalance FROM pgbench_accounts WHERE aid = $1");
    assert!(c.store(
        ticket,
        captured(wire),
        snapshot,
        Duration::from_secs(3600),
        stats
    ));
}

fn lookup(crit: &mut Criterion) {
    // ~100 bytes: RowDescription (34), one DataRow, CommandComplete, ReadyForQuery.
    let wire = reply(1, 40);
    let mut g = crit.benchmark_group("lookup_hit");
    for (name, extended) in [("simple", false), ("extended", true)] {
        // One entry, or 100,000 of them (pgbench -S at scale 1, warmed).
        for entries in [1u32, 100_000] {
            let c = cache();
            for aid in 1..=entries {
                fill(&c, &key(&c, aid, extended), &wire);
            }
            c.usage(); // settle moka's pending maintenance
            let k = key(&c, entries / 2 + 1, extended);
            g.bench_with_input(
                BenchmarkId::new(format!("{name}_{}B_reply", wire.len()), entries),
                &k,
                |b, k| {
                    b.iter(|| match c.lookup(black_box(k)) {
                        Lookup::Hit(h) => h,
                        _ => panic!("expected a hit"),
                    })
                },
            );
        }
    }
    g.finish();
}

fn capture(crit: &mut Criterion) {
    let mut g = crit.benchmark_group("capture_feed");
    for width in [16usize, 100] {
        let wire = reply(1000, width);
        g.throughput(Throughput::Bytes(wire.len() as u64));
        // The whole reply in one read, and in the 8 KiB pieces a relay might see.
        for chunk in [wire.len(), 8 * 1024] {
            let id = BenchmarkId::new(
                format!("1000_rows_of_{width}B"),
                if chunk == wire.len() {
                    "one_read".to_string()
                } else {
                    format!("{}KiB_reads", chunk / 1024)
                },
            );
            g.bench_with_input(id, &wire, |b, wire| {
                b.iter(|| {
                    let mut c = Capture::new(8 << 20);
                    for piece in black_box(wire).chunks(chunk) {
                        if let Some(end) = c.feed(piece) {
                            return end;
                        }
                    }
                    panic!("the reply did not end")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, lookup, capture);
criterion_main!(benches);
