//! Arrays in text format; expected strings printed by PostgreSQL 15.18
//! (`SELECT array[...]`, see `tests.rs`).

use std::sync::Arc;

use datafusion::arrow::array::*;
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::*;

use super::tests::{encode_field, field_for, settings, tagged, text, text_field, text_with};
use super::*;

fn list_of<T: Array + 'static>(values: T, offsets: &[i32], nulls: Option<Vec<bool>>) -> ArrayRef {
    let item = Arc::new(Field::new("item", values.data_type().clone(), true));
    Arc::new(ListArray::new(
        item,
        OffsetBuffer::new(ScalarBuffer::from(offsets.to_vec())),
        Arc::new(values),
        nulls.map(Into::into),
    ))
}

/// `SELECT array[...]`.
#[test]
fn arrays() {
    // array[1,2,null]::int4[], '{}'::int4[], NULL
    let a = list_of(
        Int32Array::from(vec![Some(1), Some(2), None]),
        &[0, 3, 3, 3],
        Some(vec![true, true, false]),
    );
    assert_eq!(text(a), ["{1,2,NULL}", "{}", "NULL"]);
    // array['a b','"q"',null,'']::text[] and the other quoting cases
    let a = list_of(
        StringArray::from(vec![
            Some("a b"),
            Some("\"q\""),
            None,
            Some(""),
            Some("NULL"),
            Some("null"),
            Some("a,b"),
            Some("{x}"),
            Some("back\\slash"),
            Some("tab\tx"),
            Some("nl\nx"),
            Some("é"),
            Some(" lead"),
        ]),
        &[0, 4, 13],
        None,
    );
    assert_eq!(
        text(a),
        [
            r#"{"a b","\"q\"",NULL,""}"#,
            "{\"NULL\",\"null\",\"a,b\",\"{x}\",\"back\\\\slash\",\"tab\tx\",\"nl\nx\",é,\" lead\"}",
        ]
    );
    // array[[1,2],[3,4]]::int8[] as List<List<Int64>> and as FixedSizeList
    let inner = list_of(Int64Array::from(vec![1, 2, 3, 4]), &[0, 2, 4], None);
    let a = list_of(ListArray::from(inner.to_data()), &[0, 2], None);
    assert_eq!(text(a), ["{{1,2},{3,4}}"]);
    let item = Arc::new(Field::new("item", DataType::Int64, true));
    let fixed =
        FixedSizeListArray::new(item, 2, Arc::new(Int64Array::from(vec![1, 2, 3, 4])), None);
    let a = list_of(fixed, &[0, 2], None);
    assert_eq!(text(a), ["{{1,2},{3,4}}"]);
    // array[[['a']],[['b']]]::text[], array[[null,2],[3,null]]::int2[]
    let l1 = list_of(StringArray::from(vec!["a", "b"]), &[0, 1, 2], None);
    let l2 = list_of(ListArray::from(l1.to_data()), &[0, 1, 2], None);
    let a = list_of(ListArray::from(l2.to_data()), &[0, 2], None);
    assert_eq!(text(a), ["{{{a}},{{b}}}"]);
    let inner = list_of(
        Int16Array::from(vec![None, Some(2), Some(3), None]),
        &[0, 2, 4],
        None,
    );
    let a = list_of(ListArray::from(inner.to_data()), &[0, 2], None);
    assert_eq!(text(a), ["{{NULL,2},{3,NULL}}"]);
    // array[[]]::int[] is empty
    let inner = list_of(Int32Array::from(Vec::<i32>::new()), &[0, 0], None);
    let a = list_of(ListArray::from(inner.to_data()), &[0, 1], None);
    assert_eq!(text(a), ["{}"]);
}

/// `SELECT array[x, ...]` for element types whose text needs quoting.
#[test]
fn arrays_of_other_types() {
    let a = list_of(
        TimestampMicrosecondArray::from(vec![Some(1709643845250000), None]),
        &[0, 2],
        None,
    );
    assert_eq!(text(a), [r#"{"2024-03-05 13:04:05.25",NULL}"#]);
    let a = list_of(
        TimestampMicrosecondArray::from(vec![1709643845250000]).with_timezone("UTC"),
        &[0, 1],
        None,
    );
    assert_eq!(text(a), [r#"{"2024-03-05 13:04:05.25+00"}"#]);
    let a = list_of(Date32Array::from(vec![19787]), &[0, 1], None);
    assert_eq!(text(a), ["{2024-03-05}"]);
    let a = list_of(BinaryArray::from(vec![&[1u8][..], &[]]), &[0, 2], None);
    assert_eq!(text(a), [r#"{"\\x01","\\x"}"#]);
    let a = list_of(
        Float64Array::from(vec![0.1, f64::NAN, f64::NEG_INFINITY]),
        &[0, 3],
        None,
    );
    assert_eq!(text(a), ["{0.1,NaN,-Infinity}"]);
    let a = list_of(BooleanArray::from(vec![true, false]), &[0, 2], None);
    assert_eq!(text(a), ["{t,f}"]);
    let a = list_of(
        IntervalMonthDayNanoArray::from(vec![
            IntervalMonthDayNano::new(0, 1, 0),
            IntervalMonthDayNano::new(0, 0, 0),
        ]),
        &[0, 2],
        None,
    );
    assert_eq!(text(a), [r#"{"1 day",00:00:00}"#]);
    let a = list_of(
        Decimal128Array::from(vec![150, -200])
            .with_precision_and_scale(10, 2)
            .unwrap(),
        &[0, 2],
        None,
    );
    assert_eq!(text(a), ["{1.50,-2.00}"]);
    let a = list_of(
        Time64MicrosecondArray::from(vec![47045000000]),
        &[0, 1],
        None,
    );
    assert_eq!(text(a), ["{13:04:05}"]);
    let a = list_of(Float32Array::from(vec![1.5]), &[0, 1], None);
    assert_eq!(text(a), ["{1.5}"]);
    // array['{"a": 1}'::json, '[1,"x"]'], array['a0eebc99-...'::uuid]
    let s = TextSettings::default();
    let item = tagged("item", DataType::Utf8, "json");
    let a: ArrayRef = Arc::new(ListArray::new(
        Arc::new(item.clone()),
        OffsetBuffer::new(ScalarBuffer::from(vec![0, 2])),
        Arc::new(StringArray::from(vec![r#"{"a": 1}"#, r#"[1,"x"]"#])),
        None,
    ));
    let f = Field::new("j", DataType::List(Arc::new(item)), true);
    assert_eq!(text_field(f, a, &s), [r#"{"{\"a\": 1}","[1,\"x\"]"}"#]);
    let a = list_of(
        StringArray::from(vec!["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"]),
        &[0, 1],
        None,
    );
    let f = tagged("u", a.data_type().clone(), "uuid");
    assert_eq!(
        text_field(f, a, &s),
        ["{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"]
    );
    // SET bytea_output = escape; SELECT array[E'\\x5c41'::bytea]
    let a = list_of(BinaryArray::from(vec![&b"\\A"[..]]), &[0, 1], None);
    assert_eq!(
        text_with(a, &settings(|s| s.bytea_hex = false)),
        [r#"{"\\\\A"}"#]
    );
}

#[test]
fn ragged_and_null_sub_lists_are_refused() {
    let inner = list_of(Int32Array::from(vec![1, 2, 3]), &[0, 2, 3], None);
    let a = list_of(ListArray::from(inner.to_data()), &[0, 2], None);
    let e = encode_field(field_for(&a), a, 0, &TextSettings::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("sub-arrays with matching dimensions"),
        "{e}"
    );
    let inner = list_of(
        Int32Array::from(vec![1, 2]),
        &[0, 2, 2],
        Some(vec![true, false]),
    );
    let a = list_of(ListArray::from(inner.to_data()), &[0, 2], None);
    let e = encode_field(field_for(&a), a, 1, &TextSettings::default()).unwrap_err();
    assert!(e.to_string().contains("NULL sub-list"), "{e}");
}
