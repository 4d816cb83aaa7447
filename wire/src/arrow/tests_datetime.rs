//! Dates, times, timestamps and intervals in text format; expected strings
//! printed by PostgreSQL 15.18 (see `tests.rs`).

use std::sync::Arc;

use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::*;

use super::tests::{encode_field, field_for, settings, text, text_with};
use super::*;

/// `SELECT x::date` and `x - '1970-01-01'::date` gave the day numbers.
#[test]
fn dates() {
    let days = vec![
        19787, -735160, -719162, -719163, 0, -1, 2932896, 2932897, -2440588, 11016, 2145042905,
    ];
    let a: ArrayRef = Arc::new(Date32Array::from(days.clone()));
    let expected = [
        "2024-03-05",
        "0044-03-15 BC",
        "0001-01-01",
        "0001-12-31 BC",
        "1970-01-01",
        "1969-12-31",
        "9999-12-31",
        "10000-01-01",
        "4714-11-24 BC",
        "2000-02-29",
        "5874897-12-31",
    ];
    assert_eq!(text(a), expected);
    let ms: Vec<i64> = days[..10]
        .iter()
        .map(|d| i64::from(*d) * 86_400_000 + 1)
        .collect();
    let a: ArrayRef = Arc::new(Date64Array::from(ms));
    assert_eq!(text(a), expected[..10]);
    // Outside PostgreSQL's range: refused, as PostgreSQL cannot hold it.
    let a: ArrayRef = Arc::new(Date32Array::from(vec![2145042906]));
    let e = encode_field(
        Field::new("d", DataType::Date32, true),
        a,
        0,
        &TextSettings::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("date out of range"), "{e}");
}

/// `SELECT x::time`.
#[test]
fn times() {
    let us = |h: i64, m: i64, s: i64, f: i64| ((h * 60 + m) * 60 + s) * 1_000_000 + f;
    let a: ArrayRef = Arc::new(Time64MicrosecondArray::from(vec![
        us(13, 4, 5, 0),
        us(13, 4, 5, 123456),
        us(13, 4, 5, 500000),
        us(13, 4, 5, 123000),
        0,
        us(24, 0, 0, 0),
        us(23, 59, 59, 999999),
    ]));
    assert_eq!(
        text(a),
        [
            "13:04:05",
            "13:04:05.123456",
            "13:04:05.5",
            "13:04:05.123",
            "00:00:00",
            "24:00:00",
            "23:59:59.999999"
        ]
    );
    let a: ArrayRef = Arc::new(Time32SecondArray::from(vec![47045]));
    assert_eq!(text(a), ["13:04:05"]);
    let a: ArrayRef = Arc::new(Time32MillisecondArray::from(vec![47045123]));
    assert_eq!(text(a), ["13:04:05.123"]);
    // '13:04:05.1234565'::time → 13:04:05.123456 (half to even), '...575' → .123458
    let a: ArrayRef = Arc::new(Time64NanosecondArray::from(vec![
        47045123456500,
        47045123457500,
    ]));
    assert_eq!(text(a), ["13:04:05.123456", "13:04:05.123458"]);
}

/// µs since 1970 from `extract(epoch from x) * 1000000`.
const TS_MICROS: [i64; 9] = [
    1709643845250000,
    -63517780800000000,
    0,
    -1,
    951868799500000,
    -2208988800000000,
    -62135596800000000,
    -62135596801000000,
    -210866803200000000,
];

#[test]
fn timestamps() {
    let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(TS_MICROS.to_vec()));
    assert_eq!(
        text(a),
        [
            "2024-03-05 13:04:05.25",
            "0044-03-15 12:00:00 BC",
            "1970-01-01 00:00:00",
            "1969-12-31 23:59:59.999999",
            "2000-02-29 23:59:59.5",
            "1900-01-01 00:00:00",
            "0001-01-01 00:00:00",
            "0001-12-31 23:59:59 BC",
            "4714-11-24 00:00:00 BC",
        ]
    );
    let a: ArrayRef = Arc::new(TimestampSecondArray::from(vec![1709643845]));
    assert_eq!(text(a), ["2024-03-05 13:04:05"]);
    let a: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1709643845250]));
    assert_eq!(text(a), ["2024-03-05 13:04:05.25"]);
    // The last nanosecond timestamp: '2262-04-11 23:47:16.854775807' rounds
    // to ...854776 in PostgreSQL, as here.
    let a: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
        i64::MAX,
        1709643845250000001,
    ]));
    assert_eq!(
        text(a),
        ["2262-04-11 23:47:16.854776", "2024-03-05 13:04:05.25"]
    );
    let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![TS_MICROS[8] - 1]));
    let e = encode_field(field_for(&a), a, 0, &TextSettings::default()).unwrap_err();
    assert!(e.to_string().contains("timestamp out of range"), "{e}");
}

/// `SET timezone = ...; SELECT to_timestamp(x / 1e6)` for these µs.
#[test]
fn timestamptz_in_session_time_zones() {
    let micros = vec![
        1709643845250000,
        -63517780800000000,
        0,
        -1,
        1720184645000000,
        -5364662400000000,
        4118083200000000,
    ];
    let cases: [(&str, &str); 14] = [
        ("UTC", "2024-03-05 13:04:05.25+00 | 0044-03-15 12:00:00+00 BC | 1970-01-01 00:00:00+00 | 1969-12-31 23:59:59.999999+00 | 2024-07-05 13:04:05+00 | 1800-01-01 00:00:00+00 | 2100-07-01 00:00:00+00"),
        ("+05:30", "2024-03-05 07:34:05.25-05:30 | 0044-03-15 06:30:00-05:30 BC | 1969-12-31 18:30:00-05:30 | 1969-12-31 18:29:59.999999-05:30 | 2024-07-05 07:34:05-05:30 | 1799-12-31 18:30:00-05:30 | 2100-06-30 18:30:00-05:30"),
        ("<+05:30>-05:30", "2024-03-05 18:34:05.25+05:30 | 0044-03-15 17:30:00+05:30 BC | 1970-01-01 05:30:00+05:30 | 1970-01-01 05:29:59.999999+05:30 | 2024-07-05 18:34:05+05:30 | 1800-01-01 05:30:00+05:30 | 2100-07-01 05:30:00+05:30"),
        ("2", "2024-03-05 15:04:05.25+02 | 0044-03-15 14:00:00+02 BC | 1970-01-01 02:00:00+02 | 1970-01-01 01:59:59.999999+02 | 2024-07-05 15:04:05+02 | 1800-01-01 02:00:00+02 | 2100-07-01 02:00:00+02"),
        ("+2", "2024-03-05 15:04:05.25+02 | 0044-03-15 14:00:00+02 BC | 1970-01-01 02:00:00+02 | 1970-01-01 01:59:59.999999+02 | 2024-07-05 15:04:05+02 | 1800-01-01 02:00:00+02 | 2100-07-01 02:00:00+02"),
        ("UTC+3", "2024-03-05 10:04:05.25-03 | 0044-03-15 09:00:00-03 BC | 1969-12-31 21:00:00-03 | 1969-12-31 20:59:59.999999-03 | 2024-07-05 10:04:05-03 | 1799-12-31 21:00:00-03 | 2100-06-30 21:00:00-03"),
        ("-0", "2024-03-05 13:04:05.25+00 | 0044-03-15 12:00:00+00 BC | 1970-01-01 00:00:00+00 | 1969-12-31 23:59:59.999999+00 | 2024-07-05 13:04:05+00 | 1800-01-01 00:00:00+00 | 2100-07-01 00:00:00+00"),
        ("Europe/Berlin", "2024-03-05 14:04:05.25+01 | 0044-03-15 12:53:28+00:53:28 BC | 1970-01-01 01:00:00+01 | 1970-01-01 00:59:59.999999+01 | 2024-07-05 15:04:05+02 | 1800-01-01 00:53:28+00:53:28 | 2100-07-01 02:00:00+02"),
        ("europe/berlin", "2024-03-05 14:04:05.25+01 | 0044-03-15 12:53:28+00:53:28 BC | 1970-01-01 01:00:00+01 | 1970-01-01 00:59:59.999999+01 | 2024-07-05 15:04:05+02 | 1800-01-01 00:53:28+00:53:28 | 2100-07-01 02:00:00+02"),
        ("America/St_Johns", "2024-03-05 09:34:05.25-03:30 | 0044-03-15 08:29:08-03:30:52 BC | 1969-12-31 20:30:00-03:30 | 1969-12-31 20:29:59.999999-03:30 | 2024-07-05 10:34:05-02:30 | 1799-12-31 20:29:08-03:30:52 | 2100-06-30 21:30:00-02:30"),
        ("Asia/Kolkata", "2024-03-05 18:34:05.25+05:30 | 0044-03-15 17:53:28+05:53:28 BC | 1970-01-01 05:30:00+05:30 | 1970-01-01 05:29:59.999999+05:30 | 2024-07-05 18:34:05+05:30 | 1800-01-01 05:53:28+05:53:28 | 2100-07-01 05:30:00+05:30"),
        ("America/New_York", "2024-03-05 08:04:05.25-05 | 0044-03-15 07:03:58-04:56:02 BC | 1969-12-31 19:00:00-05 | 1969-12-31 18:59:59.999999-05 | 2024-07-05 09:04:05-04 | 1799-12-31 19:03:58-04:56:02 | 2100-06-30 20:00:00-04"),
        ("Etc/GMT-3", "2024-03-05 16:04:05.25+03 | 0044-03-15 15:00:00+03 BC | 1970-01-01 03:00:00+03 | 1970-01-01 02:59:59.999999+03 | 2024-07-05 16:04:05+03 | 1800-01-01 03:00:00+03 | 2100-07-01 03:00:00+03"),
        ("Pacific/Chatham", "2024-03-06 02:49:05.25+13:45 | 0044-03-16 00:13:48+12:13:48 BC | 1970-01-01 12:45:00+12:45 | 1970-01-01 12:44:59.999999+12:45 | 2024-07-06 01:49:05+12:45 | 1800-01-01 12:13:48+12:13:48 | 2100-07-01 12:45:00+12:45"),
    ];
    for (zone, expected) in cases {
        // The column's own zone does not matter: timestamptz is an instant.
        let a: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone("+07:00"));
        let s = settings(|s| s.timezone = zone.to_string());
        assert_eq!(text_with(a, &s).join(" | "), expected, "TimeZone {zone}");
    }
    // A zone PostgreSQL would not have accepted.
    let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC"));
    let s = settings(|s| s.timezone = "Mars/Olympus_Mons".to_string());
    let e = encode_field(field_for(&a), a, 0, &s).unwrap_err();
    assert!(e.to_string().contains("Mars/Olympus_Mons"), "{e}");
}

/// PostgreSQL keeps applying a zone's current daylight rules after 2099,
/// where chrono-tz's tables stop: `SET timezone = ...; SELECT x::timestamptz`.
#[test]
fn timestamptz_after_2099_follows_current_rules() {
    let micros = vec![
        4118126400000000,
        10429473600000000,
        13576811400000000,
        13576815000000000,
        32504932800000000,
        253386446400000000,
        4096571400000000,
        4141929600000000,
    ];
    let cases: [(&str, &str); 6] = [
        ("Europe/Berlin", "2100-07-01 14:00:00+02 | 2300-07-01 14:00:00+02 | 2400-03-26 01:30:00+01 | 2400-03-26 03:30:00+02 | 3000-01-15 13:00:00+01 | 9999-07-01 14:00:00+02 | 2099-10-25 02:30:00+02 | 2101-04-03 02:00:00+02"),
        ("America/St_Johns", "2100-07-01 09:30:00-02:30 | 2300-07-01 09:30:00-02:30 | 2400-03-25 22:00:00-02:30 | 2400-03-25 23:00:00-02:30 | 3000-01-15 08:30:00-03:30 | 9999-07-01 09:30:00-02:30 | 2099-10-24 22:00:00-02:30 | 2101-04-02 21:30:00-02:30"),
        ("Australia/Sydney", "2100-07-01 22:00:00+10 | 2300-07-01 22:00:00+10 | 2400-03-26 11:30:00+11 | 2400-03-26 12:30:00+11 | 3000-01-15 23:00:00+11 | 9999-07-01 22:00:00+10 | 2099-10-25 11:30:00+11 | 2101-04-03 10:00:00+10"),
        ("America/Santiago", "2100-07-01 08:00:00-04 | 2300-07-01 08:00:00-04 | 2400-03-25 21:30:00-03 | 2400-03-25 22:30:00-03 | 3000-01-15 09:00:00-03 | 9999-07-01 08:00:00-04 | 2099-10-24 21:30:00-03 | 2101-04-02 21:00:00-03"),
        ("Australia/Lord_Howe", "2100-07-01 22:30:00+10:30 | 2300-07-01 22:30:00+10:30 | 2400-03-26 11:30:00+11 | 2400-03-26 12:30:00+11 | 3000-01-15 23:00:00+11 | 9999-07-01 22:30:00+10:30 | 2099-10-25 11:30:00+11 | 2101-04-03 10:30:00+10:30"),
        ("America/New_York", "2100-07-01 08:00:00-04 | 2300-07-01 08:00:00-04 | 2400-03-25 20:30:00-04 | 2400-03-25 21:30:00-04 | 3000-01-15 07:00:00-05 | 9999-07-01 08:00:00-04 | 2099-10-24 20:30:00-04 | 2101-04-02 20:00:00-04"),
    ];
    for (zone, expected) in cases {
        let a: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone("UTC"));
        let s = settings(|s| s.timezone = zone.to_string());
        assert_eq!(text_with(a, &s).join(" | "), expected, "TimeZone {zone}");
    }
}

/// `SELECT (m || ' mons ' || d || ' days ' || us || ' microseconds')::interval`.
#[test]
fn intervals() {
    let cases: [((i32, i32, i64), &str); 25] = [
        ((14, 3, 14706500000), "1 year 2 mons 3 days 04:05:06.5"),
        ((0, 0, -1000000), "-00:00:01"),
        ((0, 0, 0), "00:00:00"),
        ((0, 1, 0), "1 day"),
        ((0, -1, 7200000000), "-1 days +02:00:00"),
        ((1, 0, 0), "1 mon"),
        ((-14, 0, 0), "-1 years -2 mons"),
        ((-10, 0, 0), "-10 mons"),
        ((0, 0, 360000000000), "100:00:00"),
        ((0, 0, -360300000000), "-100:05:00"),
        ((0, 1, -1000000), "1 day -00:00:01"),
        ((-1, 1, 0), "-1 mons +1 day"),
        ((-1, -1, 0), "-1 mons -1 days"),
        ((11, -1, 0), "11 mons -1 days"),
        ((0, 0, 1), "00:00:00.000001"),
        ((0, 0, -500000), "-00:00:00.5"),
        ((24, 0, 0), "2 years"),
        ((13, 0, 0), "1 year 1 mon"),
        ((-13, 0, 0), "-1 years -1 mons"),
        ((0, 0, 1123000), "00:00:01.123"),
        ((1, -3, -1000000), "1 mon -3 days -00:00:01"),
        ((0, 0, i64::MAX), "2562047788:00:54.775807"),
        ((0, 0, -i64::MAX), "-2562047788:00:54.775807"),
        (
            (i32::MAX, i32::MAX, 0),
            "178956970 years 7 mons 2147483647 days",
        ),
        (
            (i32::MIN, i32::MIN, 0),
            "-178956970 years -8 mons -2147483648 days",
        ),
    ];
    let a: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(
        cases
            .iter()
            .map(|((m, d, us), _)| IntervalMonthDayNano::new(*m, *d, us.saturating_mul(1000)))
            .collect::<Vec<_>>(),
    ));
    let got = text(a);
    for (i, (_, expected)) in cases.iter().enumerate() {
        // i64::MAX µs does not fit in nanoseconds; checked below as a Duration.
        if i < 21 {
            assert_eq!(got[i], *expected, "case {i}");
        }
    }
    let a: ArrayRef = Arc::new(DurationMicrosecondArray::from(vec![
        i64::MAX,
        -i64::MAX,
        360000000000,
    ]));
    assert_eq!(text(a), [cases[21].1, cases[22].1, "100:00:00"]);
    let a: ArrayRef = Arc::new(IntervalYearMonthArray::from(vec![i32::MAX, i32::MIN, 14]));
    assert_eq!(
        text(a),
        [
            "178956970 years 7 mons",
            "-178956970 years -8 mons",
            "1 year 2 mons"
        ]
    );
    let a: ArrayRef = Arc::new(IntervalDayTimeArray::from(vec![IntervalDayTime::new(
        -1, 7_200_000,
    )]));
    assert_eq!(text(a), ["-1 days +02:00:00"]);
    let a: ArrayRef = Arc::new(DurationSecondArray::from(vec![-1, 86400]));
    assert_eq!(text(a), ["-00:00:01", "24:00:00"]);
}
