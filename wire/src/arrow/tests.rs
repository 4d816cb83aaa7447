//! Text format. Every expected string below was printed by PostgreSQL 15.18
//! (`psql -At`, default settings unless the test sets one) for the same
//! value, e.g. `SELECT '2024-03-05 13:04:05.25'::timestamp`.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::*;

use super::*;

/// The values of each DataRow in `out` (NULL as `None`); other messages are
/// skipped.
pub(super) fn data_rows(mut out: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
    let mut rows = Vec::new();
    while !out.is_empty() {
        let tag = out.get_u8();
        let len = out.get_i32() as usize - 4;
        let (mut body, rest) = out.split_at(len);
        out = rest;
        if tag != b'D' {
            continue;
        }
        let n = body.get_i16();
        let mut row = Vec::new();
        for _ in 0..n {
            let l = body.get_i32();
            if l < 0 {
                row.push(None);
            } else {
                row.push(Some(body[..l as usize].to_vec()));
                body.advance(l as usize);
            }
        }
        assert!(body.is_empty(), "DataRow length matches its values");
        rows.push(row);
    }
    rows
}

/// Encodes a one-column batch of `field` in `format`; the column's values.
pub(super) fn encode_field(
    field: Field,
    array: ArrayRef,
    format: i16,
    settings: &TextSettings,
) -> Result<Vec<Option<Vec<u8>>>, EncodeError> {
    let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array]).unwrap();
    let mut out = BytesMut::new();
    encode_batch(&batch, &[format], settings, &mut out)?;
    Ok(data_rows(&out)
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect())
}

pub(super) fn field_for(array: &ArrayRef) -> Field {
    Field::new("c", array.data_type().clone(), true)
}

/// The text of each value, `NULL` for NULL, under `settings`.
pub(super) fn text_with(array: ArrayRef, settings: &TextSettings) -> Vec<String> {
    let f = field_for(&array);
    text_field(f, array, settings)
}

pub(super) fn text_field(field: Field, array: ArrayRef, settings: &TextSettings) -> Vec<String> {
    encode_field(field, array, 0, settings)
        .unwrap()
        .into_iter()
        .map(|v| v.map_or("NULL".to_string(), |b| String::from_utf8(b).unwrap()))
        .collect()
}

pub(super) fn text(array: ArrayRef) -> Vec<String> {
    text_with(array, &TextSettings::default())
}

pub(super) fn settings(f: impl FnOnce(&mut TextSettings)) -> TextSettings {
    let mut s = TextSettings::default();
    f(&mut s);
    s
}

#[test]
fn booleans_and_integers() {
    let a: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), Some(false), None]));
    assert_eq!(text(a), ["t", "f", "NULL"]);
    let a: ArrayRef = Arc::new(Int8Array::from(vec![-128, 0, 127]));
    assert_eq!(text(a), ["-128", "0", "127"]);
    let a: ArrayRef = Arc::new(Int32Array::from(vec![i32::MIN, -1, i32::MAX]));
    assert_eq!(text(a), ["-2147483648", "-1", "2147483647"]);
    let a: ArrayRef = Arc::new(Int64Array::from(vec![i64::MIN, i64::MAX]));
    assert_eq!(text(a), ["-9223372036854775808", "9223372036854775807"]);
    let a: ArrayRef = Arc::new(UInt32Array::from(vec![u32::MAX]));
    assert_eq!(text(a), ["4294967295"]);
    // 18446744073709551615::numeric
    let a: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX, 0]));
    assert_eq!(text(a), ["18446744073709551615", "0"]);
}

const F8: [f64; 28] = [
    0.1,
    1e20,
    1.5e-7,
    100.0,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    -0.0,
    0.0,
    1e15,
    1e14,
    123456789012345.6,
    0.0001,
    1e-5,
    0.00012345,
    f64::MAX,
    5e-324,
    f64::MIN_POSITIVE,
    -2.5,
    std::f64::consts::PI,
    1e22,
    1e21,
    123456789.0,
    0.30000000000000004,
    -1e-300,
    9007199254740992.0,
    1e16,
    12345678901234567000.0,
];

/// `SELECT x::float8::text` for the literals of `F8` under each
/// extra_float_digits.
#[test]
fn float8() {
    let cases: [(i32, &str); 5] = [
        (1, "0.1 1e+20 1.5e-07 100 Infinity -Infinity NaN -0 0 1e+15 100000000000000 123456789012345.6 0.0001 1e-05 0.00012345 1.7976931348623157e+308 5e-324 2.2250738585072014e-308 -2.5 3.141592653589793 1e+22 1e+21 123456789 0.30000000000000004 -1e-300 9.007199254740992e+15 1e+16 1.2345678901234567e+19"),
        (3, "0.1 1e+20 1.5e-07 100 Infinity -Infinity NaN -0 0 1e+15 100000000000000 123456789012345.6 0.0001 1e-05 0.00012345 1.7976931348623157e+308 5e-324 2.2250738585072014e-308 -2.5 3.141592653589793 1e+22 1e+21 123456789 0.30000000000000004 -1e-300 9.007199254740992e+15 1e+16 1.2345678901234567e+19"),
        (0, "0.1 1e+20 1.5e-07 100 Infinity -Infinity NaN -0 0 1e+15 100000000000000 123456789012346 0.0001 1e-05 0.00012345 1.79769313486232e+308 4.94065645841247e-324 2.2250738585072e-308 -2.5 3.14159265358979 1e+22 1e+21 123456789 0.3 -1e-300 9.00719925474099e+15 1e+16 1.23456789012346e+19"),
        (-4, "0.1 1e+20 1.5e-07 100 Infinity -Infinity NaN -0 0 1e+15 1e+14 1.2345678901e+14 0.0001 1e-05 0.00012345 1.7976931349e+308 4.9406564584e-324 2.2250738585e-308 -2.5 3.1415926536 1e+22 1e+21 123456789 0.3 -1e-300 9.0071992547e+15 1e+16 1.2345678901e+19"),
        (-15, "0.1 1e+20 1e-07 1e+02 Infinity -Infinity NaN -0 0 1e+15 1e+14 1e+14 0.0001 1e-05 0.0001 2e+308 5e-324 2e-308 -2 3 1e+22 1e+21 1e+08 0.3 -1e-300 9e+15 1e+16 1e+19"),
    ];
    for (efd, expected) in cases {
        let a: ArrayRef = Arc::new(Float64Array::from(F8.to_vec()));
        let s = settings(|s| s.extra_float_digits = efd);
        assert_eq!(
            text_with(a, &s).join(" "),
            expected,
            "extra_float_digits {efd}"
        );
    }
}

#[test]
#[allow(clippy::excessive_precision)]
fn float4() {
    let values: Vec<f32> = vec![
        0.1,
        1e6,
        100000.0,
        0.0001,
        1e-5,
        3.4028235e38,
        1.4e-45,
        123456.7,
        1234567.0,
        f32::NAN,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        std::f32::consts::PI,
        16777217.0,
        0.3,
        1e-40,
        -2.5,
    ];
    let cases: [(i32, &str); 4] = [
        (1, "0.1 1e+06 100000 0.0001 1e-05 3.4028235e+38 1e-45 123456.7 1.234567e+06 NaN -0 Infinity -Infinity 3.1415927 1.6777216e+07 0.3 1e-40 -2.5"),
        (0, "0.1 1e+06 100000 0.0001 1e-05 3.40282e+38 1.4013e-45 123457 1.23457e+06 NaN -0 Infinity -Infinity 3.14159 1.67772e+07 0.3 9.99995e-41 -2.5"),
        (-1, "0.1 1e+06 1e+05 0.0001 1e-05 3.4028e+38 1.4013e-45 1.2346e+05 1.2346e+06 NaN -0 Infinity -Infinity 3.1416 1.6777e+07 0.3 9.9999e-41 -2.5"),
        (-15, "0.1 1e+06 1e+05 0.0001 1e-05 3e+38 1e-45 1e+05 1e+06 NaN -0 Infinity -Infinity 3 2e+07 0.3 1e-40 -2"),
    ];
    for (efd, expected) in cases {
        let a: ArrayRef = Arc::new(Float32Array::from(values.clone()));
        let s = settings(|s| s.extra_float_digits = efd);
        assert_eq!(
            text_with(a, &s).join(" "),
            expected,
            "extra_float_digits {efd}"
        );
    }
    // Float16 goes out as the float4 of the same value.
    let a = cast(&Float32Array::from(vec![1.5]), &DataType::Float16).unwrap();
    assert_eq!(text(a), ["1.5"]);
}

/// `SELECT x::numeric(p,s)`.
#[test]
fn numerics() {
    let a: ArrayRef = Arc::new(
        Decimal128Array::from(vec![12345, -12345, -5, 0, 5, 100])
            .with_precision_and_scale(10, 2)
            .unwrap(),
    );
    // 123.45::numeric(10,2), -123.45, -0.05, 0, 0.05, 1
    assert_eq!(
        text(a),
        ["123.45", "-123.45", "-0.05", "0.00", "0.05", "1.00"]
    );
    let a: ArrayRef = Arc::new(
        Decimal128Array::from(vec![12345, -7, 0])
            .with_precision_and_scale(5, 0)
            .unwrap(),
    );
    assert_eq!(text(a), ["12345", "-7", "0"]);
    // 1.5::numeric(10,3)
    let a: ArrayRef = Arc::new(
        Decimal64Array::from(vec![1500])
            .with_precision_and_scale(10, 3)
            .unwrap(),
    );
    assert_eq!(text(a), ["1.500"]);
    // 12300::numeric(5,-2), 0::numeric(5,-2)
    let a: ArrayRef = Arc::new(
        Decimal32Array::from(vec![123, 0])
            .with_precision_and_scale(5, -2)
            .unwrap(),
    );
    assert_eq!(text(a), ["12300", "0"]);
    // The widest Decimal128 and a Decimal256 beyond it.
    let a: ArrayRef = Arc::new(
        Decimal128Array::from(vec![-99999999999999999999999999999999999999i128])
            .with_precision_and_scale(38, 10)
            .unwrap(),
    );
    assert_eq!(text(a), ["-9999999999999999999999999999.9999999999"]);
    let big = i256::from_i128(i128::MAX).wrapping_mul(i256::from_i128(1000));
    let a: ArrayRef = Arc::new(
        Decimal256Array::from(vec![big, i256::from_i128(-1)])
            .with_precision_and_scale(76, 4)
            .unwrap(),
    );
    assert_eq!(
        text(a),
        ["17014118346046923173168730371588410572.7000", "-0.0001"]
    );
}

#[test]
fn bytea_hex_and_escape() {
    let a: ArrayRef = Arc::new(BinaryArray::from(vec![&[1u8, 2, 0xff][..], &[]]));
    assert_eq!(text(a), ["\\x0102ff", "\\x"]);
    // SET bytea_output = escape; SELECT E'\\x00015c7f80ff41222c'::bytea
    let bytes = [0x00u8, 0x01, 0x5c, 0x7f, 0x80, 0xff, 0x41, 0x22, 0x2c];
    let escape = settings(|s| s.bytea_hex = false);
    for a in [
        Arc::new(LargeBinaryArray::from(vec![&bytes[..]])) as ArrayRef,
        Arc::new(BinaryViewArray::from(vec![&bytes[..]])),
        Arc::new(FixedSizeBinaryArray::try_from_iter([bytes].into_iter()).unwrap()),
    ] {
        assert_eq!(text_with(a, &escape), ["\\000\\001\\\\\\177\\200\\377A\","]);
    }
}

pub(super) fn tagged(name: &str, dt: DataType, pg: &str) -> Field {
    Field::new(name, dt, true).with_metadata([(PG_TYPE_KEY.to_string(), pg.to_string())].into())
}

#[test]
fn strings_json_and_uuids() {
    let a: ArrayRef = Arc::new(StringArray::from(vec![Some("héllo"), Some(""), None]));
    assert_eq!(text(a), ["héllo", "", "NULL"]);
    let a: ArrayRef = Arc::new(StringViewArray::from(vec![
        "a much longer string than twelve bytes",
    ]));
    assert_eq!(text(a), ["a much longer string than twelve bytes"]);
    // '{"b": 1,  "a": [1, 2]}'::json is kept as written.
    let json = r#"{"b": 1,  "a": [1, 2]}"#;
    let a: ArrayRef = Arc::new(LargeStringArray::from(vec![json]));
    let s = TextSettings::default();
    assert_eq!(
        text_field(tagged("j", DataType::LargeUtf8, "json"), a, &s),
        [json]
    );
    // 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid and '{a0eebc99...}'::uuid
    let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let a: ArrayRef = Arc::new(StringArray::from(vec![
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "{a0eebc999c0b4ef8bb6d6bb9bd380a11}",
        "a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11",
    ]));
    assert_eq!(
        text_field(tagged("u", DataType::Utf8, "uuid"), a, &s),
        [canonical; 3]
    );
    let bytes: [u8; 16] = [
        0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a,
        0x11,
    ];
    let a: ArrayRef = Arc::new(FixedSizeBinaryArray::try_from_iter([bytes].into_iter()).unwrap());
    let f = Field::new("u", DataType::FixedSizeBinary(16), true)
        .with_metadata([("ARROW:extension:name".to_string(), "arrow.uuid".to_string())].into());
    assert_eq!(text_field(f, a, &s), [canonical]);
    let a: ArrayRef = Arc::new(StringArray::from(vec![
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
    ]));
    let e = encode_field(tagged("u", DataType::Utf8, "uuid"), a, 0, &s).unwrap_err();
    assert!(
        e.to_string().contains("invalid input syntax for type uuid"),
        "{e}"
    );
}

#[test]
fn nulls_dictionaries_and_unsupported_types() {
    let a: ArrayRef = Arc::new(NullArray::new(2));
    assert_eq!(text(a), ["NULL", "NULL"]);
    let a: ArrayRef = Arc::new(
        vec![Some("x"), None, Some("y"), Some("x")]
            .into_iter()
            .collect::<DictionaryArray<Int8Type>>(),
    );
    assert_eq!(pg_type(a.data_type()).unwrap().oid, oid::TEXT);
    assert_eq!(text(a), ["x", "NULL", "y", "x"]);
    let a: ArrayRef = Arc::new(StructArray::from(vec![(
        Arc::new(Field::new("x", DataType::Int32, false)),
        Arc::new(Int32Array::from(vec![1])) as ArrayRef,
    )]));
    let e = encode_field(
        Field::new("s", a.data_type().clone(), true),
        a,
        0,
        &TextSettings::default(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "column 1 (\"s\") of type Struct(\"x\": non-null Int32): no PostgreSQL type holds these values");
    let pg: PgError = e.into();
    assert_eq!(pg.code, SqlState::FEATURE_NOT_SUPPORTED);
}

#[test]
fn unimplemented_styles_are_refused_in_text_only() {
    let a: ArrayRef = Arc::new(Date32Array::from(vec![0]));
    let sql = settings(|s| {
        assert!(s.set("DateStyle", "SQL, DMY"));
    });
    let e = encode_field(field_for(&a), a.clone(), 0, &sql).unwrap_err();
    assert!(e.to_string().contains("DateStyle"), "{e}");
    assert!(encode_field(field_for(&a), a, 1, &sql).is_ok());
    let a: ArrayRef = Arc::new(IntervalYearMonthArray::from(vec![1]));
    let iso = settings(|s| {
        assert!(s.set("intervalstyle", "iso_8601"));
    });
    assert!(encode_field(field_for(&a), a, 0, &iso).is_err());
}

#[test]
pub(super) fn settings_from_parameter_status() {
    let mut s = TextSettings::default();
    assert!(s.set("extra_float_digits", "0"));
    assert!(s.set("TimeZone", "Europe/Berlin"));
    assert!(s.set("DateStyle", "ISO, DMY"));
    assert!(s.set("bytea_output", "escape"));
    assert!(!s.set("application_name", "x"));
    assert_eq!(s.extra_float_digits, 0);
    assert_eq!(s.timezone, "Europe/Berlin");
    assert!(s.datestyle_iso && !s.bytea_hex && s.intervalstyle_postgres);
}

#[test]
fn format_codes_follow_bind_rules() {
    let schema = Schema::new(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Int32, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int32Array::from(vec![7])),
            Arc::new(Int32Array::from(vec![8])),
        ],
    )
    .unwrap();
    let s = TextSettings::default();
    let mut out = BytesMut::new();
    encode_batch(&batch, &[0, 1], &s, &mut out).unwrap();
    assert_eq!(
        data_rows(&out),
        [[Some(b"7".to_vec()), Some(vec![0, 0, 0, 8])]]
    );
    let mut out = BytesMut::new();
    encode_batch(&batch, &[1], &s, &mut out).unwrap();
    assert_eq!(
        data_rows(&out),
        [[Some(vec![0, 0, 0, 7]), Some(vec![0, 0, 0, 8])]]
    );
    let e = encode_batch(&batch, &[0, 1, 0], &s, &mut out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bind message has 3 result formats but query has 2 columns"
    );
    let e = encode_batch(&batch, &[2], &s, &mut out).unwrap_err();
    assert_eq!(e.to_string(), "unsupported format code: 2");
}

/// Field names, oids, typlen, typmod and format codes, as PostgreSQL sends
/// them for `SELECT 1::int4 AS a, 'x'::text AS b, 1.5::numeric(10,2) AS c,
/// array[1::int8] AS d, now() AS e` (typmod of numeric(10,2) is 655366).
#[test]
fn row_description_bytes() {
    let schema = Schema::new(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Utf8, true),
        Field::new("c", DataType::Decimal128(10, 2), true),
        Field::new_list("d", Field::new("item", DataType::Int64, true), true),
        Field::new(
            "e",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]);
    let mut out = BytesMut::new();
    row_description(&schema, &[0, 1, 0, 1, 0], &mut out).unwrap();
    let mut expected = vec![b'T', 0, 0, 0, 0, 0, 5];
    for (name, oid, typlen, typmod, format) in [
        ("a", 23u32, 4i16, -1i32, 0i16),
        ("b", 25, -1, -1, 1),
        ("c", 1700, -1, 655366, 0),
        ("d", 1016, -1, -1, 1),
        ("e", 1184, 8, -1, 0),
    ] {
        expected.extend_from_slice(name.as_bytes());
        expected.push(0);
        expected.extend_from_slice(&0u32.to_be_bytes());
        expected.extend_from_slice(&0i16.to_be_bytes());
        expected.extend_from_slice(&oid.to_be_bytes());
        expected.extend_from_slice(&typlen.to_be_bytes());
        expected.extend_from_slice(&typmod.to_be_bytes());
        expected.extend_from_slice(&format.to_be_bytes());
    }
    let len = (expected.len() - 1) as i32;
    expected[1..5].copy_from_slice(&len.to_be_bytes());
    assert_eq!(&out[..], &expected[..]);

    let bad = Schema::new(vec![
        Field::new("m", DataType::Utf8, true),
        Field::new_map(
            "n",
            "entries",
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Utf8, true),
            false,
            true,
        ),
    ]);
    let e = row_description(&bad, &[], &mut out).unwrap_err();
    assert!(
        e.to_string().starts_with("column 2 (\"n\") of type Map("),
        "{e}"
    );
}

#[test]
fn type_mapping() {
    let t = |dt: DataType| pg_type(&dt).map(|t| (t.oid, t.typlen, t.typmod));
    assert_eq!(t(DataType::Boolean), Some((16, 1, -1)));
    assert_eq!(t(DataType::Int8), Some((21, 2, -1)));
    assert_eq!(t(DataType::UInt16), Some((23, 4, -1)));
    assert_eq!(t(DataType::UInt32), Some((20, 8, -1)));
    assert_eq!(t(DataType::UInt64), Some((1700, -1, -1)));
    assert_eq!(t(DataType::Float16), Some((700, 4, -1)));
    assert_eq!(t(DataType::Float64), Some((701, 8, -1)));
    // numeric(38,10): ((38 << 16) | 10) + 4; PostgreSQL 15's numeric(5,-2): 329726
    assert_eq!(t(DataType::Decimal256(38, 10)), Some((1700, -1, 2490382)));
    assert_eq!(t(DataType::Decimal128(5, -2)), Some((1700, -1, 329730)));
    assert_eq!(t(DataType::Utf8View), Some((25, -1, -1)));
    assert_eq!(t(DataType::FixedSizeBinary(16)), Some((17, -1, -1)));
    assert_eq!(t(DataType::Date64), Some((1082, 4, -1)));
    assert_eq!(t(DataType::Time32(TimeUnit::Second)), Some((1083, 8, -1)));
    assert_eq!(
        t(DataType::Timestamp(TimeUnit::Nanosecond, None)),
        Some((1114, 8, -1))
    );
    assert_eq!(
        t(DataType::Duration(TimeUnit::Second)),
        Some((1186, 16, -1))
    );
    assert_eq!(t(DataType::Null), Some((25, -1, -1)));
    let list = |dt: DataType| DataType::List(Arc::new(Field::new("item", dt, true)));
    assert_eq!(t(list(DataType::Int32)), Some((1007, -1, -1)));
    assert_eq!(t(list(list(DataType::Utf8))), Some((1009, -1, -1)));
    assert_eq!(
        t(list(DataType::Timestamp(
            TimeUnit::Second,
            Some("UTC".into())
        ))),
        Some((1185, -1, -1))
    );
    assert_eq!(
        t(list(DataType::Dictionary(
            Box::new(DataType::Int32),
            Box::new(DataType::Utf8)
        ))),
        Some((1009, -1, -1))
    );
    assert_eq!(
        t(DataType::Dictionary(
            Box::new(DataType::Int32),
            Box::new(DataType::Float32)
        )),
        Some((700, 4, -1))
    );
    assert_eq!(t(list(DataType::Struct(Fields::empty()))), None);
    let f = tagged("j", DataType::Utf8, "jsonb");
    assert_eq!(field_pg_type(&f).map(|t| t.oid), Some(3802));
    let f = Field::new_list("u", tagged("item", DataType::Utf8, "uuid"), true);
    assert_eq!(
        field_pg_type(&f).map(|t| (t.oid, t.name)),
        Some((2951, "_uuid"))
    );
}
