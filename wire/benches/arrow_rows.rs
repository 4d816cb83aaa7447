//! Arrow batches to DataRows: the cost per row of answering from Arrow
//! results. A 100k-row batch of (int8, float8, text, timestamp, numeric) in
//! text format, as most clients ask for it. Run: `cargo bench -p helios-wire
//! --bench arrow_rows`; criterion reports rows/s as elements/s.

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datafusion::arrow::array::{
    Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use helios_wire::arrow::{encode_batch, TextSettings};

const ROWS: usize = 100_000;

fn batch() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
    ]);
    let ids: Vec<i64> = (0..ROWS as i64).map(|i| i * 7919).collect();
    let scores: Vec<f64> = (0..ROWS).map(|i| i as f64 / 3.0).collect();
    let names: Vec<String> = (0..ROWS).map(|i| format!("customer {i}")).collect();
    let at: Vec<i64> = (0..ROWS as i64)
        .map(|i| 1_709_643_845_250_000 + i * 1_234_567)
        .collect();
    let amounts: Vec<i128> = (0..ROWS as i128).map(|i| i * 1013 - 50_000).collect();
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Float64Array::from(scores)),
            Arc::new(StringArray::from(names)),
            Arc::new(TimestampMicrosecondArray::from(at)),
            Arc::new(
                Decimal128Array::from(amounts)
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
        ],
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let batch = batch();
    let settings = TextSettings::default();
    let mut g = c.benchmark_group("arrow_rows");
    g.throughput(Throughput::Elements(ROWS as u64));
    for (name, format) in [("text", 0i16), ("binary", 1)] {
        let mut out = BytesMut::with_capacity(16 << 20);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encode_batch(black_box(&batch), &[format], &settings, &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
