//! The relay's per-byte work: finding message boundaries and looking inside
//! the few messages routing needs. Run: `cargo bench -p helios-wire`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use helios_wire::frame::{tag, FrameScanner, FrameVisitor, TagSet};
use std::hint::black_box;

fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t];
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// What the relay does with the frames it inspects: read the status byte.
struct Status(u8);

impl FrameVisitor for Status {
    fn frame(&mut self, _offset: usize, frame: &[u8]) {
        if frame[0] == tag::READY_FOR_QUERY {
            self.0 = frame[5];
        }
    }
}

const INSPECT: TagSet = TagSet::empty()
    .with(tag::READY_FOR_QUERY)
    .with(tag::PARAMETER_STATUS)
    .with(tag::ERROR_RESPONSE);

/// Scan `stream` delivered in `chunk`-byte reads, as the relay sees it.
fn relay_scan(stream: &[u8], chunk: usize) -> u8 {
    let mut scanner = FrameScanner::backend(INSPECT, TagSet::empty());
    let mut v = Status(0);
    let mut buf: Vec<u8> = Vec::with_capacity(chunk * 2);
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        scanner.scan(&buf, &mut v).unwrap();
        let n = scanner.ready();
        buf.drain(..n);
        scanner.advance(n);
    }
    v.0
}

fn pgbench_reply() -> Vec<u8> {
    // RowDescription, one DataRow, CommandComplete, ReadyForQuery: `pgbench -S`.
    let mut out = msg(b'T', &[0u8; 27]);
    out.extend(msg(
        b'D',
        &[0, 1, 0, 0, 0, 6, b'1', b'2', b'3', b'4', b'5', b'6'],
    ));
    out.extend(msg(b'C', b"SELECT 1\0"));
    out.extend(msg(b'Z', b"I"));
    out
}

fn big_result(rows: usize, width: usize) -> Vec<u8> {
    let mut out = msg(b'T', &[0u8; 27]);
    let mut row = vec![0, 1];
    row.extend_from_slice(&(width as i32).to_be_bytes());
    row.extend(std::iter::repeat_n(b'x', width));
    let row = msg(b'D', &row);
    for _ in 0..rows {
        out.extend_from_slice(&row);
    }
    out.extend(msg(b'C', b"SELECT 1\0"));
    out.extend(msg(b'Z', b"I"));
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scan");
    let reply = pgbench_reply();
    g.throughput(Throughput::Bytes(reply.len() as u64));
    g.bench_function("pgbench_reply", |b| {
        b.iter(|| relay_scan(black_box(&reply), 64 * 1024))
    });
    for width in [16usize, 100, 1000] {
        let result = big_result(4 * 1024 * 1024 / (width + 11), width);
        g.throughput(Throughput::Bytes(result.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("result_4MB_rows_of", width),
            &result,
            |b, r| b.iter(|| relay_scan(black_box(r), 32 * 1024)),
        );
    }
    // A client pipelining queries: every header checked against the limit.
    let mut queries = Vec::new();
    for _ in 0..10_000 {
        queries.extend(msg(
            b'Q',
            b"SELECT abalance FROM pgbench_accounts WHERE aid = 1\0",
        ));
    }
    g.throughput(Throughput::Bytes(queries.len() as u64));
    g.bench_function("client_queries", |b| {
        b.iter(|| {
            let mut s =
                FrameScanner::frontend(1 << 30, TagSet::empty(), TagSet::empty().with(b'X'));
            struct Count(u32);
            impl FrameVisitor for Count {
                fn header(&mut self, _: u8, _: usize) -> Result<(), helios_wire::FrameError> {
                    self.0 += 1;
                    Ok(())
                }
            }
            let mut v = Count(0);
            s.scan(black_box(&queries), &mut v).unwrap();
            v.0
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
