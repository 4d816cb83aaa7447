//! Binary format. Values are decoded with postgres-types where it has a
//! decoder; the rest are compared with the bytes PostgreSQL 15.18's `*send`
//! functions return for the same value (`SELECT numeric_send(123.45::numeric(10,2))`).

use std::sync::Arc;

use bytes::BytesMut;
use datafusion::arrow::array::*;
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::*;
use postgres_types::{FromSql, Type};

use super::tests::{data_rows, encode_field};
use super::*;

fn binary_field(field: Field, array: ArrayRef) -> Vec<Option<Vec<u8>>> {
    encode_field(field, array, 1, &TextSettings::default()).unwrap()
}

fn binary(array: ArrayRef) -> Vec<Option<Vec<u8>>> {
    let f = Field::new("c", array.data_type().clone(), true);
    binary_field(f, array)
}

/// Each non-NULL value decoded as `T` from PostgreSQL type `ty`.
fn decoded<T: for<'a> FromSql<'a>>(array: ArrayRef, ty: &Type) -> Vec<Option<T>> {
    binary(array)
        .into_iter()
        .map(|v| v.map(|b| T::from_sql(ty, &b).unwrap()))
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn one(array: ArrayRef) -> Vec<u8> {
    binary(array).remove(0).unwrap()
}

#[test]
fn scalars_decode_with_postgres_types() {
    let a: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]));
    assert_eq!(
        decoded::<bool>(a, &Type::BOOL),
        [Some(true), None, Some(false)]
    );
    let a: ArrayRef = Arc::new(Int8Array::from(vec![-128, 127]));
    assert_eq!(decoded::<i16>(a, &Type::INT2), [Some(-128), Some(127)]);
    let a: ArrayRef = Arc::new(UInt16Array::from(vec![u16::MAX]));
    assert_eq!(decoded::<i32>(a, &Type::INT4), [Some(65535)]);
    let a: ArrayRef = Arc::new(UInt32Array::from(vec![u32::MAX]));
    assert_eq!(decoded::<i64>(a, &Type::INT8), [Some(4294967295)]);
    let a: ArrayRef = Arc::new(Int64Array::from(vec![i64::MIN, i64::MAX]));
    assert_eq!(
        decoded::<i64>(a, &Type::INT8),
        [Some(i64::MIN), Some(i64::MAX)]
    );
    let a: ArrayRef = Arc::new(Float32Array::from(vec![1.5, f32::NEG_INFINITY]));
    assert_eq!(
        decoded::<f32>(a, &Type::FLOAT4),
        [Some(1.5), Some(f32::NEG_INFINITY)]
    );
    let a: ArrayRef = Arc::new(Float64Array::from(vec![0.1, -0.0]));
    let got = decoded::<f64>(a, &Type::FLOAT8);
    assert_eq!(got[0], Some(0.1));
    assert!(got[1].unwrap().is_sign_negative());
    let a: ArrayRef = Arc::new(StringArray::from(vec!["héllo", ""]));
    assert_eq!(
        decoded::<String>(a, &Type::TEXT),
        [Some("héllo".into()), Some("".into())]
    );
    let a: ArrayRef = Arc::new(BinaryViewArray::from(vec![&[1u8, 2, 0xff][..]]));
    assert_eq!(
        decoded::<Vec<u8>>(a, &Type::BYTEA),
        [Some(vec![1, 2, 0xff])]
    );
    // A timestamp: µs since 2000-01-01, also what SystemTime decodes.
    let a: ArrayRef =
        Arc::new(TimestampMicrosecondArray::from(vec![1709643845250000]).with_timezone("UTC"));
    let t = decoded::<std::time::SystemTime>(a, &Type::TIMESTAMPTZ)[0].unwrap();
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap();
    assert_eq!(since.as_micros(), 1709643845250000);
}

#[test]
fn arrays_decode_with_postgres_types() {
    let ints = Int32Array::from(vec![Some(1), Some(2), None]);
    let a: ArrayRef = Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Int32, true)),
        OffsetBuffer::new(ScalarBuffer::from(vec![0, 3, 3])),
        Arc::new(ints),
        None,
    ));
    assert_eq!(
        decoded::<Vec<Option<i32>>>(a, &Type::INT4_ARRAY),
        [Some(vec![Some(1), Some(2), None]), Some(vec![])]
    );
    let a: ArrayRef = Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Utf8, true)),
        OffsetBuffer::new(ScalarBuffer::from(vec![0, 2])),
        Arc::new(StringArray::from(vec!["a b", "\"q\""])),
        None,
    ));
    assert_eq!(
        decoded::<Vec<String>>(a, &Type::TEXT_ARRAY),
        [Some(vec!["a b".to_string(), "\"q\"".to_string()])]
    );
}

/// `SELECT numeric_send(x)`.
#[test]
fn numerics_match_numeric_send() {
    let dec = |v: Vec<i128>, p: u8, s: i8| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(p, s)
                .unwrap(),
        )
    };
    let cases: [(ArrayRef, &str); 13] = [
        (dec(vec![12345], 10, 2), "0002000000000002007b1194"), // 123.45::numeric(10,2)
        (dec(vec![-5], 5, 2), "0001ffff4000000201f4"),         // -0.05::numeric(5,2)
        (dec(vec![0], 5, 2), "0000000000000002"),              // 0::numeric(5,2)
        (dec(vec![12345], 5, 0), "000200010000000000010929"),  // 12345
        (dec(vec![12], 10, 5), "0002ffff00000005000107d0"),    // 0.00012
        (dec(vec![10000], 5, 0), "00010001000000000001"),      // 10000
        (dec(vec![1500], 10, 3), "000200000000000300011388"),  // 1.5::numeric(10,3)
        (
            dec(vec![1234567890001], 20, 4),
            "0004000200000004000109291a850001",
        ), // 123456789.0001
        (
            dec(vec![100000000000000000000], 21, 0),
            "00010005000000000001",
        ), // 1e20::numeric(21,0)
        (dec(vec![-123], 20, 12), "0001fffd4000000c007b"),     // -0.000000000123::numeric(20,12)
        (dec(vec![123], 5, -2), "0002000100000000000108fc"),   // 12300::numeric(5,-2)
        (
            dec(vec![-99999999999999999999999999999999999999], 38, 10),
            "000a00064000000a270f270f270f270f270f270f270f270f270f26ac",
        ),
        (
            Arc::new(UInt64Array::from(vec![u64::MAX])),
            "000500040000000007341a5802e103bb064f", // 18446744073709551615::numeric
        ),
    ];
    for (a, expected) in cases {
        assert_eq!(one(a), hex(expected), "{expected}");
    }
    let big = i256::from_i128(i128::MAX).wrapping_mul(i256::from_i128(1000));
    let a: ArrayRef = Arc::new(
        Decimal256Array::from(vec![big, i256::from_i128(-1)])
            .with_precision_and_scale(76, 4)
            .unwrap(),
    );
    let got = binary(a);
    // 17014118346046923173168730371588410572.7000::numeric(76,4), -0.0001::numeric(76,4)
    assert_eq!(
        got[0].as_deref(),
        Some(&hex("000b0009000000040011008d072a179e240f1c94221a0e832289023c1b58")[..])
    );
    assert_eq!(got[1].as_deref(), Some(&hex("0001ffff400000040001")[..]));
}

/// `SELECT date_send(x)`, `time_send`, `timestamp_send`, `interval_send`, ...
#[test]
fn temporal_and_other_types_match_send() {
    let a: ArrayRef = Arc::new(Date32Array::from(vec![19787, -735160]));
    assert_eq!(binary(a), [Some(hex("0000227e")), Some(hex("fff49d7b"))]);
    let a: ArrayRef = Arc::new(Time64NanosecondArray::from(vec![
        47045500000000,
        86400000000000,
    ]));
    assert_eq!(
        binary(a),
        [Some(hex("0000000af4215c60")), Some(hex("000000141dd76000"))]
    );
    let a: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
        1709643845250,
        -63517780800000,
    ]));
    assert_eq!(
        binary(a),
        [Some(hex("0002b5e83edecbd0")), Some(hex("ff1af9e8fb46d000"))]
    );
    let a: ArrayRef =
        Arc::new(TimestampMicrosecondArray::from(vec![1709643845250000]).with_timezone("+02:00"));
    assert_eq!(one(a), hex("0002b5e83edecbd0"));
    // '1 year 2 mons 3 days 04:05:06.5', '-100:05:00', '-1 mons +1 day', '1 day'
    let a: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
        IntervalMonthDayNano::new(14, 3, 14706500000000),
        IntervalMonthDayNano::new(0, 0, -360300000000000),
        IntervalMonthDayNano::new(-1, 1, 0),
    ]));
    assert_eq!(
        binary(a),
        [
            Some(hex("000000036c9361a0000000030000000e")),
            Some(hex("ffffffac1c724d000000000000000000")),
            Some(hex("000000000000000000000001ffffffff")),
        ]
    );
    let a: ArrayRef = Arc::new(IntervalDayTimeArray::from(vec![
        IntervalDayTime::new(1, 0),
        IntervalDayTime::new(-1, 7_200_000),
    ]));
    assert_eq!(
        binary(a),
        [
            Some(hex("00000000000000000000000100000000")),
            Some(hex("00000001ad274800ffffffff00000000"))
        ]
    );
    let a: ArrayRef = Arc::new(Float32Array::from(vec![1.5]));
    assert_eq!(one(a), hex("3fc00000"));
    let a: ArrayRef = Arc::new(Int16Array::from(vec![-2]));
    assert_eq!(one(a), hex("fffe"));
    // uuid_send, jsonb_send('{"a": 1}'), json_send('{"a":1}')
    let tagged = |pg: &str, dt: DataType| {
        Field::new("c", dt, true).with_metadata([(PG_TYPE_KEY.to_string(), pg.to_string())].into())
    };
    let a: ArrayRef = Arc::new(StringArray::from(vec![
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
    ]));
    assert_eq!(
        binary_field(tagged("uuid", DataType::Utf8), a),
        [Some(hex("a0eebc999c0b4ef8bb6d6bb9bd380a11"))]
    );
    let a: ArrayRef = Arc::new(StringArray::from(vec![r#"{"a": 1}"#]));
    assert_eq!(
        binary_field(tagged("jsonb", DataType::Utf8), a),
        [Some(hex("017b2261223a20317d"))]
    );
    let a: ArrayRef = Arc::new(StringArray::from(vec![r#"{"a":1}"#]));
    assert_eq!(
        binary_field(tagged("json", DataType::Utf8), a),
        [Some(hex("7b2261223a317d"))]
    );
}

fn list(values: ArrayRef, offsets: Vec<i32>) -> ArrayRef {
    Arc::new(ListArray::new(
        Arc::new(Field::new("item", values.data_type().clone(), true)),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        values,
        None,
    ))
}

/// `SELECT array_send(x)`.
#[test]
fn arrays_match_array_send() {
    let cases: [(ArrayRef, &str); 8] = [
        // array[1,2,null]::int4[]
        (
            list(Arc::new(Int32Array::from(vec![Some(1), Some(2), None])), vec![0, 3]),
            "000000010000000100000017000000030000000100000004000000010000000400000002ffffffff",
        ),
        // array[[1,2],[3,4]]::int8[]
        (
            list(list(Arc::new(Int64Array::from(vec![1, 2, 3, 4])), vec![0, 2, 4]), vec![0, 2]),
            "00000002000000000000001400000002000000010000000200000001000000080000000000000001000000080000000000000002000000080000000000000003000000080000000000000004",
        ),
        // '{}'::int4[]
        (list(Arc::new(Int32Array::from(Vec::<i32>::new())), vec![0, 0]), "000000000000000000000017"),
        // array[[]]::int[]
        (
            list(list(Arc::new(Int32Array::from(Vec::<i32>::new())), vec![0, 0]), vec![0, 1]),
            "000000000000000000000017",
        ),
        // array['a',null]::text[]
        (
            list(Arc::new(StringArray::from(vec![Some("a"), None])), vec![0, 2]),
            "00000001000000010000001900000002000000010000000161ffffffff",
        ),
        // array[[null,'b'],['c','d']]::text[]
        (
            list(
                list(Arc::new(StringArray::from(vec![None, Some("b"), Some("c"), Some("d")])), vec![0, 2, 4]),
                vec![0, 2],
            ),
            "00000002000000010000001900000002000000010000000200000001ffffffff000000016200000001630000000164",
        ),
        // array[true,false]
        (
            list(Arc::new(BooleanArray::from(vec![true, false])), vec![0, 2]),
            "000000010000000000000010000000020000000100000001010000000100",
        ),
        // array[1.50,null,-2.00]::numeric(10,2)[]
        (
            list(
                Arc::new(Decimal128Array::from(vec![Some(150), None, Some(-200)]).with_precision_and_scale(10, 2).unwrap()),
                vec![0, 3],
            ),
            "0000000100000001000006a400000003000000010000000c000200000000000200011388ffffffff0000000a00010000400000020002",
        ),
    ];
    for (a, expected) in cases {
        assert_eq!(one(a), hex(expected), "{expected}");
    }
    // array['2024-03-05 13:04:05.25'::timestamp], array['a0eebc99-...'::uuid]
    let a = list(
        Arc::new(TimestampMicrosecondArray::from(vec![1709643845250000])),
        vec![0, 1],
    );
    assert_eq!(
        one(a),
        hex("00000001000000000000045a0000000100000001000000080002b5e83edecbd0")
    );
    let item = Field::new("item", DataType::Utf8, true)
        .with_metadata([(PG_TYPE_KEY.to_string(), "uuid".to_string())].into());
    let a: ArrayRef = Arc::new(ListArray::new(
        Arc::new(item.clone()),
        OffsetBuffer::new(ScalarBuffer::from(vec![0, 1])),
        Arc::new(StringArray::from(vec![
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ])),
        None,
    ));
    let f = Field::new("u", DataType::List(Arc::new(item)), true);
    assert_eq!(
        binary_field(f, a),
        [Some(hex(
            "000000010000000000000b86000000010000000100000010a0eebc999c0b4ef8bb6d6bb9bd380a11"
        ))]
    );
}

/// A whole 10,000-row batch of mixed types in one call: every row arrives,
/// and the allocations are per batch, not per row or value.
#[test]
fn large_batch_in_one_pass_without_per_row_allocation() {
    const N: usize = 10_000;
    let ids: Vec<i64> = (0..N as i64).collect();
    let floats: Vec<f64> = (0..N).map(|i| i as f64 / 7.0).collect();
    let names: Vec<String> = (0..N).map(|i| format!("name {i}")).collect();
    let ts: Vec<i64> = (0..N as i64)
        .map(|i| 1709643845250000 + i * 1_000_001)
        .collect();
    let nums: Vec<i128> = (0..N as i128).map(|i| i * 101 - 5000).collect();
    let items: Vec<Option<i32>> = (0..2 * N as i32)
        .map(|i| (i % 3 != 0).then_some(i))
        .collect();
    let offsets: Vec<i32> = (0..=N as i32).map(|i| 2 * i).collect();
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("f", DataType::Float64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new(
            "tz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("n", DataType::Decimal128(12, 2), false),
        Field::new_list("l", Field::new("item", DataType::Int32, true), false),
        Field::new("d", DataType::Date32, false),
        Field::new("i", DataType::Interval(IntervalUnit::MonthDayNano), false),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Float64Array::from(floats)),
            Arc::new(StringArray::from(names)),
            Arc::new(TimestampMicrosecondArray::from(ts.clone())),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(
                Decimal128Array::from(nums)
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
            list(Arc::new(Int32Array::from(items)), offsets),
            Arc::new(Date32Array::from((0..N as i32).collect::<Vec<_>>())),
            Arc::new(IntervalMonthDayNanoArray::from(
                (0..N as i32)
                    .map(|i| IntervalMonthDayNano::new(i, -i, 1000))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let settings = TextSettings {
        timezone: "Europe/Berlin".to_string(),
        ..TextSettings::default()
    };
    for formats in [&[0i16][..], &[1]] {
        let mut out = BytesMut::with_capacity(4 << 20);
        let before = alloc_count::get();
        encode_batch(&batch, formats, &settings, &mut out).unwrap();
        let allocations = alloc_count::get() - before;
        // Per batch (unpacked arrays, column readers, scratch): 7-8 in practice.
        assert!(allocations <= 16, "{allocations} allocations for {N} rows");
        let rows = data_rows(&out);
        assert_eq!(rows.len(), N);
        if formats == [0] {
            let row: Vec<String> = rows[9999]
                .iter()
                .map(|v| String::from_utf8(v.clone().unwrap()).unwrap())
                .collect();
            // 9999/7.0::float8, 1709643845250000 + 9999 * 1000001 µs in
            // Europe/Berlin, 1004899::numeric(12,2) / 100, '1970-01-01'::date + 9999, ...
            assert_eq!(
                row,
                [
                    "9999",
                    "1428.4285714285713",
                    "name 9999",
                    "2024-03-05 15:50:44.259999",
                    "2024-03-05 16:50:44.259999+01",
                    "10048.99",
                    "{NULL,19999}",
                    "1997-05-18",
                    "833 years 3 mons -9999 days +00:00:00.000001",
                ]
            );
        }
    }
}

/// Counts this thread's heap allocations (tests run on several threads).
mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    pub fn get() -> usize {
        COUNT.with(Cell::get)
    }

    struct Counting;

    fn bump() {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }

    // SAFETY: forwards to the system allocator unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            bump();
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            bump();
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;
}
