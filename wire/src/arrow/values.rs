//! One Arrow column, read a value at a time in the units PostgreSQL thinks in.
//!
//! Arrow has many physical layouts for one PostgreSQL type (four timestamp
//! units, three string layouts, ...). [`Column`] resolves the layout once per
//! batch and [`Column::get`] yields a [`Value`] already converted to
//! PostgreSQL's units (microseconds, days since 1970, months/days/µs), so the
//! text and binary writers each have one case per PostgreSQL type. Values
//! PostgreSQL cannot hold (a timestamp before 4714 BC, a time past 24:00) are
//! refused here, once for both formats.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{
    Array, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
    Decimal256Array, Decimal32Array, Decimal64Array, DurationMicrosecondArray,
    DurationMillisecondArray, DurationNanosecondArray, DurationSecondArray, FixedSizeBinaryArray,
    FixedSizeListArray, Float16Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, IntervalDayTimeArray, IntervalMonthDayNanoArray, IntervalYearMonthArray,
    LargeBinaryArray, LargeListArray, LargeListViewArray, LargeStringArray, ListArray,
    ListViewArray, StringArray, StringViewArray, Time32MillisecondArray, Time32SecondArray,
    Time64MicrosecondArray, Time64NanosecondArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt16Array,
    UInt32Array, UInt64Array, UInt8Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{i256, DataType, IntervalUnit, TimeUnit};

use super::datetime::{
    nanos_to_micros, DATE_MAX, DATE_MIN, MICROS_PER_DAY, TIMESTAMP_MIN, USECS_PER_SEC,
};

/// Why a single value could not be encoded.
pub(crate) type ValueResult<T> = Result<T, &'static str>;

/// A non-NULL value in PostgreSQL's units.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'c> {
    Bool(bool),
    /// Any integer PostgreSQL holds in int2/int4/int8.
    Int(i64),
    /// UInt64: numeric without a scale.
    UInt(u64),
    F32(f32),
    F64(f64),
    /// Decimal32/64/128: the unscaled value and the scale.
    Decimal(i128, i8),
    Decimal256(i256, i8),
    Str(&'c str),
    Bytes(&'c [u8]),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight, 0 ..= 24:00:00.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00 (UTC for timestamptz).
    Timestamp(i64),
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    /// Rows `start..end` of a list's child column.
    List(ListSlice<'c>),
}

/// Elements `start..end` of `child`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListSlice<'c> {
    pub child: &'c Column<'c>,
    pub start: usize,
    pub end: usize,
}

/// One column of a batch, its layout resolved.
#[derive(Debug)]
pub(crate) struct Column<'a> {
    nulls: Option<&'a NullBuffer>,
    data: Data<'a>,
}

#[derive(Debug)]
enum Data<'a> {
    Null,
    Bool(&'a BooleanArray),
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    U8(&'a UInt8Array),
    U16(&'a UInt16Array),
    U32(&'a UInt32Array),
    U64(&'a UInt64Array),
    F16(&'a Float16Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    D32(&'a Decimal32Array, i8),
    D64(&'a Decimal64Array, i8),
    D128(&'a Decimal128Array, i8),
    D256(&'a Decimal256Array, i8),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Bin(&'a BinaryArray),
    LargeBin(&'a LargeBinaryArray),
    BinView(&'a BinaryViewArray),
    FixedBin(&'a FixedSizeBinaryArray),
    Date32(&'a Date32Array),
    Date64(&'a Date64Array),
    TimeS(&'a Time32SecondArray),
    TimeMs(&'a Time32MillisecondArray),
    TimeUs(&'a Time64MicrosecondArray),
    TimeNs(&'a Time64NanosecondArray),
    TsS(&'a TimestampSecondArray),
    TsMs(&'a TimestampMillisecondArray),
    TsUs(&'a TimestampMicrosecondArray),
    TsNs(&'a TimestampNanosecondArray),
    YearMonth(&'a IntervalYearMonthArray),
    DayTime(&'a IntervalDayTimeArray),
    MonthDayNano(&'a IntervalMonthDayNanoArray),
    DurS(&'a DurationSecondArray),
    DurMs(&'a DurationMillisecondArray),
    DurUs(&'a DurationMicrosecondArray),
    DurNs(&'a DurationNanosecondArray),
    List(Lists<'a>, Box<Column<'a>>),
}

/// Where each list's elements are in its child column.
#[derive(Debug)]
enum Lists<'a> {
    Small(&'a ListArray),
    Large(&'a LargeListArray),
    Fixed(&'a FixedSizeListArray),
    View(&'a ListViewArray),
    LargeView(&'a LargeListViewArray),
}

impl<'a> Column<'a> {
    /// `None` if the layout is not one this module reads. Dictionaries must
    /// have been unpacked by the caller (see `mod.rs`).
    pub(crate) fn new(array: &'a dyn Array) -> Option<Self> {
        use DataType as T;
        let data = match array.data_type() {
            T::Null => Data::Null,
            T::Boolean => Data::Bool(array.as_boolean()),
            T::Int8 => Data::I8(array.as_primitive()),
            T::Int16 => Data::I16(array.as_primitive()),
            T::Int32 => Data::I32(array.as_primitive()),
            T::Int64 => Data::I64(array.as_primitive()),
            T::UInt8 => Data::U8(array.as_primitive()),
            T::UInt16 => Data::U16(array.as_primitive()),
            T::UInt32 => Data::U32(array.as_primitive()),
            T::UInt64 => Data::U64(array.as_primitive()),
            T::Float16 => Data::F16(array.as_primitive()),
            T::Float32 => Data::F32(array.as_primitive()),
            T::Float64 => Data::F64(array.as_primitive()),
            T::Decimal32(_, s) => Data::D32(array.as_primitive(), *s),
            T::Decimal64(_, s) => Data::D64(array.as_primitive(), *s),
            T::Decimal128(_, s) => Data::D128(array.as_primitive(), *s),
            T::Decimal256(_, s) => Data::D256(array.as_primitive(), *s),
            T::Utf8 => Data::Utf8(array.as_string()),
            T::LargeUtf8 => Data::LargeUtf8(array.as_string()),
            T::Utf8View => Data::Utf8View(array.as_string_view()),
            T::Binary => Data::Bin(array.as_binary()),
            T::LargeBinary => Data::LargeBin(array.as_binary()),
            T::BinaryView => Data::BinView(array.as_binary_view()),
            T::FixedSizeBinary(_) => Data::FixedBin(array.as_fixed_size_binary()),
            T::Date32 => Data::Date32(array.as_primitive()),
            T::Date64 => Data::Date64(array.as_primitive()),
            T::Time32(TimeUnit::Second) => Data::TimeS(array.as_primitive()),
            T::Time32(TimeUnit::Millisecond) => Data::TimeMs(array.as_primitive()),
            T::Time64(TimeUnit::Microsecond) => Data::TimeUs(array.as_primitive()),
            T::Time64(TimeUnit::Nanosecond) => Data::TimeNs(array.as_primitive()),
            T::Timestamp(TimeUnit::Second, _) => Data::TsS(array.as_primitive()),
            T::Timestamp(TimeUnit::Millisecond, _) => Data::TsMs(array.as_primitive()),
            T::Timestamp(TimeUnit::Microsecond, _) => Data::TsUs(array.as_primitive()),
            T::Timestamp(TimeUnit::Nanosecond, _) => Data::TsNs(array.as_primitive()),
            T::Interval(IntervalUnit::YearMonth) => Data::YearMonth(array.as_primitive()),
            T::Interval(IntervalUnit::DayTime) => Data::DayTime(array.as_primitive()),
            T::Interval(IntervalUnit::MonthDayNano) => Data::MonthDayNano(array.as_primitive()),
            T::Duration(TimeUnit::Second) => Data::DurS(array.as_primitive()),
            T::Duration(TimeUnit::Millisecond) => Data::DurMs(array.as_primitive()),
            T::Duration(TimeUnit::Microsecond) => Data::DurUs(array.as_primitive()),
            T::Duration(TimeUnit::Nanosecond) => Data::DurNs(array.as_primitive()),
            T::List(_) => {
                let a = array.as_list::<i32>();
                Data::List(Lists::Small(a), Box::new(Column::new(a.values().as_ref())?))
            }
            T::LargeList(_) => {
                let a = array.as_list::<i64>();
                Data::List(Lists::Large(a), Box::new(Column::new(a.values().as_ref())?))
            }
            T::FixedSizeList(..) => {
                let a = array.as_fixed_size_list();
                Data::List(Lists::Fixed(a), Box::new(Column::new(a.values().as_ref())?))
            }
            T::ListView(_) => {
                let a = array.as_list_view::<i32>();
                Data::List(Lists::View(a), Box::new(Column::new(a.values().as_ref())?))
            }
            T::LargeListView(_) => {
                let a = array.as_list_view::<i64>();
                Data::List(
                    Lists::LargeView(a),
                    Box::new(Column::new(a.values().as_ref())?),
                )
            }
            _ => return None,
        };
        Some(Column {
            nulls: array.nulls(),
            data,
        })
    }

    /// Whether this column is a list (its values are PostgreSQL arrays).
    pub(crate) fn is_list(&self) -> bool {
        matches!(self.data, Data::List(..))
    }

    /// The value at `row`, `None` for NULL.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> ValueResult<Option<Value<'_>>> {
        if matches!(self.data, Data::Null) {
            return Ok(None);
        }
        if let Some(n) = &self.nulls {
            if n.is_null(row) {
                return Ok(None);
            }
        }
        self.value(row).map(Some)
    }

    fn value(&self, row: usize) -> ValueResult<Value<'_>> {
        use Value as V;
        Ok(match &self.data {
            Data::Null => unreachable!("checked by get"),
            Data::Bool(a) => V::Bool(a.value(row)),
            Data::I8(a) => V::Int(a.value(row).into()),
            Data::I16(a) => V::Int(a.value(row).into()),
            Data::I32(a) => V::Int(a.value(row).into()),
            Data::I64(a) => V::Int(a.value(row)),
            Data::U8(a) => V::Int(a.value(row).into()),
            Data::U16(a) => V::Int(a.value(row).into()),
            Data::U32(a) => V::Int(a.value(row).into()),
            Data::U64(a) => V::UInt(a.value(row)),
            Data::F16(a) => V::F32(a.value(row).to_f32()),
            Data::F32(a) => V::F32(a.value(row)),
            Data::F64(a) => V::F64(a.value(row)),
            Data::D32(a, s) => V::Decimal(a.value(row).into(), *s),
            Data::D64(a, s) => V::Decimal(a.value(row).into(), *s),
            Data::D128(a, s) => V::Decimal(a.value(row), *s),
            Data::D256(a, s) => V::Decimal256(a.value(row), *s),
            Data::Utf8(a) => V::Str(a.value(row)),
            Data::LargeUtf8(a) => V::Str(a.value(row)),
            Data::Utf8View(a) => V::Str(a.value(row)),
            Data::Bin(a) => V::Bytes(a.value(row)),
            Data::LargeBin(a) => V::Bytes(a.value(row)),
            Data::BinView(a) => V::Bytes(a.value(row)),
            Data::FixedBin(a) => V::Bytes(a.value(row)),
            Data::Date32(a) => date(a.value(row).into())?,
            Data::Date64(a) => date(a.value(row).div_euclid(MICROS_PER_DAY / 1000))?,
            Data::TimeS(a) => time(i64::from(a.value(row)) * USECS_PER_SEC)?,
            Data::TimeMs(a) => time(i64::from(a.value(row)) * 1000)?,
            Data::TimeUs(a) => time(a.value(row))?,
            Data::TimeNs(a) => time(nanos_to_micros(a.value(row)))?,
            Data::TsS(a) => timestamp(a.value(row).checked_mul(USECS_PER_SEC))?,
            Data::TsMs(a) => timestamp(a.value(row).checked_mul(1000))?,
            Data::TsUs(a) => timestamp(Some(a.value(row)))?,
            Data::TsNs(a) => timestamp(Some(nanos_to_micros(a.value(row))))?,
            Data::YearMonth(a) => V::Interval {
                months: a.value(row),
                days: 0,
                micros: 0,
            },
            Data::DayTime(a) => {
                let v = a.value(row);
                V::Interval {
                    months: 0,
                    days: v.days,
                    micros: i64::from(v.milliseconds) * 1000,
                }
            }
            Data::MonthDayNano(a) => {
                let v = a.value(row);
                V::Interval {
                    months: v.months,
                    days: v.days,
                    micros: nanos_to_micros(v.nanoseconds),
                }
            }
            Data::DurS(a) => duration(a.value(row).checked_mul(USECS_PER_SEC))?,
            Data::DurMs(a) => duration(a.value(row).checked_mul(1000))?,
            Data::DurUs(a) => duration(Some(a.value(row)))?,
            Data::DurNs(a) => duration(Some(nanos_to_micros(a.value(row))))?,
            Data::List(lists, child) => {
                let (start, end) = match lists {
                    Lists::Small(a) => {
                        let o = a.value_offsets();
                        (o[row] as usize, o[row + 1] as usize)
                    }
                    Lists::Large(a) => {
                        let o = a.value_offsets();
                        (o[row] as usize, o[row + 1] as usize)
                    }
                    Lists::Fixed(a) => {
                        let start = a.value_offset(row) as usize;
                        (start, start + a.value_length() as usize)
                    }
                    Lists::View(a) => {
                        let start = a.value_offset(row) as usize;
                        (start, start + a.value_size(row) as usize)
                    }
                    Lists::LargeView(a) => {
                        let start = a.value_offset(row) as usize;
                        (start, start + a.value_size(row) as usize)
                    }
                };
                V::List(ListSlice { child, start, end })
            }
        })
    }
}

fn date(days: i64) -> ValueResult<Value<'static>> {
    if (DATE_MIN..DATE_MAX).contains(&days) {
        Ok(Value::Date(days as i32))
    } else {
        Err("date out of range")
    }
}

fn time(micros: i64) -> ValueResult<Value<'static>> {
    if (0..=MICROS_PER_DAY).contains(&micros) {
        Ok(Value::Time(micros))
    } else {
        Err("time out of range")
    }
}

fn timestamp(micros: Option<i64>) -> ValueResult<Value<'static>> {
    match micros {
        Some(us) if us >= TIMESTAMP_MIN => Ok(Value::Timestamp(us)),
        _ => Err("timestamp out of range"),
    }
}

fn duration(micros: Option<i64>) -> ValueResult<Value<'static>> {
    match micros {
        Some(micros) => Ok(Value::Interval {
            months: 0,
            days: 0,
            micros,
        }),
        None => Err("interval out of range"),
    }
}

impl ListSlice<'_> {
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }
}

/// The shape of the PostgreSQL array a list value is: its dimensions, outer
/// first, in `dims[..n]`; `n` is returned. PostgreSQL arrays are rectangular,
/// so nested lists must have the same length at each level and no NULL
/// sub-lists. Any zero dimension makes the array empty (`n` = 0), as
/// PostgreSQL has it.
pub(crate) fn array_dims(list: &ListSlice<'_>, dims: &mut [usize; MAX_DIMS]) -> ValueResult<usize> {
    // The first element at each level gives the dimensions ...
    let mut ndim = 0;
    let mut level = *list;
    loop {
        if ndim == MAX_DIMS {
            return Err("number of array dimensions exceeds the maximum allowed (6)");
        }
        dims[ndim] = level.len();
        ndim += 1;
        if !level.child.is_list() || level.len() == 0 {
            break;
        }
        level = match level.child.get(level.start)? {
            Some(Value::List(sub)) => sub,
            _ => return Err(NULL_SUB_LIST),
        };
    }
    // ... and every other element must agree.
    check_shape(list, &dims[..ndim])?;
    if dims[..ndim].contains(&0) {
        return Ok(0);
    }
    Ok(ndim)
}

fn check_shape(list: &ListSlice<'_>, dims: &[usize]) -> ValueResult<()> {
    if dims.len() > 1 {
        for row in list.start..list.end {
            let sub = sub_list(list.child.get(row)?, dims[1])?;
            check_shape(&sub, &dims[1..])?;
        }
    }
    Ok(())
}

/// A nested list's element as the sub-array of length `len` it must be.
pub(crate) fn sub_list(v: Option<Value<'_>>, len: usize) -> ValueResult<ListSlice<'_>> {
    match v {
        Some(Value::List(sub)) if sub.len() == len => Ok(sub),
        Some(Value::List(_)) => Err(RAGGED),
        _ => Err(NULL_SUB_LIST),
    }
}

/// PostgreSQL's own words for a non-rectangular array.
const RAGGED: &str = "multidimensional arrays must have sub-arrays with matching dimensions";
const NULL_SUB_LIST: &str = "a NULL sub-list cannot be part of a PostgreSQL array";

/// PostgreSQL's MAXDIM.
pub(crate) const MAX_DIMS: usize = 6;
