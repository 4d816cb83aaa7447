//! PostgreSQL's binary COPY format, decoded into Arrow arrays.
//!
//! The stream is a signature and header, then one tuple per row (a field
//! count, then each field as a length and its `*send` bytes, -1 for NULL),
//! then a trailer (field count -1). PostgreSQL sends each row of a COPY TO
//! in its own CopyData message, the header with the first; [`CopyDecoder`]
//! takes one message at a time but does not rely on that split beyond
//! requiring whole tuples per message, and reports anything else as an error.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, IntervalMonthDayNanoBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{IntervalMonthDayNano, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::DataFusionError;

use super::types::{Decode, UpstreamColumn};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

/// Decodes a binary COPY stream into record batches of `schema`.
pub struct CopyDecoder {
    schema: SchemaRef,
    decodes: Vec<Decode>,
    builders: Vec<Builder>,
    rows: usize,
    header_seen: bool,
    trailer_seen: bool,
}

enum Builder {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    Decimal(Decimal128Builder, i8),
    Text(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    Uuid(FixedSizeBinaryBuilder),
}

fn error(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Execution(format!("binary COPY from the upstream: {}", msg.into()))
}

impl Builder {
    fn new(decode: Decode, field: &datafusion::arrow::datatypes::Field, capacity: usize) -> Self {
        match decode {
            Decode::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            Decode::Int2 => Builder::Int2(Int16Builder::with_capacity(capacity)),
            Decode::Int4 => Builder::Int4(Int32Builder::with_capacity(capacity)),
            Decode::Int8 => Builder::Int8(Int64Builder::with_capacity(capacity)),
            Decode::Float4 => Builder::Float4(Float32Builder::with_capacity(capacity)),
            Decode::Float8 => Builder::Float8(Float64Builder::with_capacity(capacity)),
            Decode::Decimal { precision, scale } => Builder::Decimal(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale)
                    .expect("precision and scale checked in types"),
                scale,
            ),
            Decode::Text | Decode::Jsonb => {
                Builder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            Decode::Bytea => Builder::Bytea(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Decode::Date => Builder::Date(Date32Builder::with_capacity(capacity)),
            Decode::Time => Builder::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            Decode::Timestamp | Decode::Timestamptz => {
                let b = TimestampMicrosecondBuilder::with_capacity(capacity);
                Builder::Timestamp(match field.data_type() {
                    datafusion::arrow::datatypes::DataType::Timestamp(_, Some(tz)) => {
                        b.with_timezone(tz.clone())
                    }
                    _ => b,
                })
            }
            Decode::Interval => {
                Builder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            Decode::Uuid => Builder::Uuid(FixedSizeBinaryBuilder::with_capacity(capacity, 16)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int2(b) => b.append_null(),
            Builder::Int4(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Float4(b) => b.append_null(),
            Builder::Float8(b) => b.append_null(),
            Builder::Decimal(b, _) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Bytea(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Interval(b) => b.append_null(),
            Builder::Uuid(b) => b.append_null(),
        }
    }

    fn append(&mut self, decode: Decode, v: &[u8]) -> Result<(), DataFusionError> {
        fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], DataFusionError> {
            v.try_into().map_err(|_| {
                error(format!(
                    "a value of {} bytes where {N} were expected",
                    v.len()
                ))
            })
        }
        match self {
            Builder::Bool(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            Builder::Int2(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            Builder::Int4(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            Builder::Int8(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Builder::Float4(b) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            Builder::Float8(b) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            Builder::Decimal(b, scale) => b.append_value(numeric_to_i128(v, *scale)?),
            Builder::Text(b) => {
                let v = match decode {
                    // jsonb's binary form: version 1, then the text.
                    Decode::Jsonb => match v.split_first() {
                        Some((1, rest)) => rest,
                        _ => return Err(error("unknown jsonb binary version")),
                    },
                    _ => v,
                };
                let s = std::str::from_utf8(v).map_err(|_| {
                    error("text that is not UTF-8 (the upstream's encoding must be UTF8)")
                })?;
                b.append_value(s)
            }
            Builder::Bytea(b) => b.append_value(v),
            Builder::Date(b) => {
                let days = i32::from_be_bytes(fixed(v)?);
                if days == i32::MAX || days == i32::MIN {
                    return Err(error("date infinity has no Arrow value"));
                }
                b.append_value(
                    days.checked_add(PG_EPOCH_DAYS)
                        .ok_or_else(|| error("date out of range"))?,
                )
            }
            Builder::Time(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Builder::Timestamp(b) => {
                let us = i64::from_be_bytes(fixed(v)?);
                if us == i64::MAX || us == i64::MIN {
                    return Err(error("timestamp infinity has no Arrow value"));
                }
                b.append_value(
                    us.checked_add(PG_EPOCH_MICROS)
                        .ok_or_else(|| error("timestamp out of range"))?,
                )
            }
            Builder::Interval(b) => {
                let v: [u8; 16] = fixed(v)?;
                let micros = i64::from_be_bytes(v[0..8].try_into().expect("8 bytes"));
                let days = i32::from_be_bytes(v[8..12].try_into().expect("4 bytes"));
                let months = i32::from_be_bytes(v[12..16].try_into().expect("4 bytes"));
                b.append_value(IntervalMonthDayNano::new(
                    months,
                    days,
                    micros.saturating_mul(1000),
                ))
            }
            Builder::Uuid(b) => b
                .append_value(fixed::<16>(v)?)
                .map_err(|e| error(e.to_string()))?,
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int2(b) => Arc::new(b.finish()),
            Builder::Int4(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Float4(b) => Arc::new(b.finish()),
            Builder::Float8(b) => Arc::new(b.finish()),
            Builder::Decimal(b, _) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Bytea(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Interval(b) => Arc::new(b.finish()),
            Builder::Uuid(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Bool(b) => b.len(),
            Builder::Int2(b) => b.len(),
            Builder::Int4(b) => b.len(),
            Builder::Int8(b) => b.len(),
            Builder::Float4(b) => b.len(),
            Builder::Float8(b) => b.len(),
            Builder::Decimal(b, _) => b.len(),
            Builder::Text(b) => b.len(),
            Builder::Bytea(b) => b.len(),
            Builder::Date(b) => b.len(),
            Builder::Time(b) => b.len(),
            Builder::Timestamp(b) => b.len(),
            Builder::Interval(b) => b.len(),
            Builder::Uuid(b) => b.len(),
        }
    }
}

/// PostgreSQL's binary numeric (base-10000 digits) as an integer scaled by
/// `10^scale`. The column's typmod fixes the scale, so stored values have
/// at most `scale` fractional digits.
fn numeric_to_i128(v: &[u8], scale: i8) -> Result<i128, DataFusionError> {
    if v.len() < 8 {
        return Err(error("a numeric shorter than its header"));
    }
    let ndigits = u16::from_be_bytes([v[0], v[1]]) as usize;
    let weight = i16::from_be_bytes([v[2], v[3]]) as i32;
    let sign = u16::from_be_bytes([v[4], v[5]]);
    if v.len() != 8 + 2 * ndigits {
        return Err(error("a numeric of the wrong length"));
    }
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 => return Err(error("numeric NaN has no decimal value")),
        _ => return Err(error("numeric infinity has no decimal value")),
    };
    let overflow = || error("numeric value out of range for its precision");
    let mut acc: i128 = 0;
    for i in 0..ndigits {
        let d = u16::from_be_bytes([v[8 + 2 * i], v[9 + 2 * i]]) as i128;
        acc = acc
            .checked_mul(10_000)
            .and_then(|a| a.checked_add(d))
            .ok_or_else(overflow)?;
    }
    // acc * 10000^(weight - ndigits + 1) * 10^scale
    let exp10 = 4 * (weight - ndigits as i32 + 1) + scale as i32;
    if exp10 >= 0 {
        for _ in 0..exp10 {
            acc = acc.checked_mul(10).ok_or_else(overflow)?;
        }
    } else {
        for _ in 0..(-exp10) {
            acc /= 10;
        }
    }
    Ok(if negative { -acc } else { acc })
}

impl CopyDecoder {
    /// A decoder for rows of `columns` (the projected ones, in order),
    /// producing batches of `schema` (their fields).
    pub fn new(schema: SchemaRef, columns: &[UpstreamColumn], capacity: usize) -> Self {
        let decodes: Vec<Decode> = columns.iter().map(|c| c.decode).collect();
        let builders = decodes
            .iter()
            .zip(schema.fields())
            .map(|(d, f)| Builder::new(*d, f, capacity))
            .collect();
        CopyDecoder {
            schema,
            decodes,
            builders,
            rows: 0,
            header_seen: false,
            trailer_seen: false,
        }
    }

    /// Rows decoded and not yet taken by [`CopyDecoder::finish_batch`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether the trailer has been read.
    pub fn done(&self) -> bool {
        self.trailer_seen
    }

    /// Decode one CopyData payload.
    pub fn feed(&mut self, mut msg: &[u8]) -> Result<(), DataFusionError> {
        if !self.header_seen {
            if msg.len() < SIGNATURE.len() + 8 || &msg[..SIGNATURE.len()] != SIGNATURE {
                return Err(error("missing the binary COPY signature"));
            }
            let ext = u32::from_be_bytes(msg[15..19].try_into().expect("4 bytes")) as usize;
            msg = msg
                .get(19 + ext..)
                .ok_or_else(|| error("truncated header extension"))?;
            self.header_seen = true;
        }
        while !msg.is_empty() {
            if self.trailer_seen {
                return Err(error("data after the trailer"));
            }
            let (count, rest) = take_i16(msg)?;
            msg = rest;
            if count == -1 {
                self.trailer_seen = true;
                continue;
            }
            if count as usize != self.builders.len() {
                return Err(error(format!(
                    "a row of {count} fields where {} were expected",
                    self.builders.len()
                )));
            }
            for (b, d) in self.builders.iter_mut().zip(&self.decodes) {
                let (len, rest) = take_i32(msg)?;
                msg = rest;
                if len < 0 {
                    b.append_null();
                    continue;
                }
                let len = len as usize;
                if msg.len() < len {
                    return Err(error("a field longer than its message"));
                }
                b.append(*d, &msg[..len])?;
                msg = &msg[len..];
            }
            self.rows += 1;
        }
        Ok(())
    }

    /// The rows decoded so far, as one batch.
    pub fn finish_batch(&mut self) -> Result<RecordBatch, DataFusionError> {
        let rows = self.rows;
        self.rows = 0;
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        debug_assert!(self.builders.iter().all(|b| b.len() == 0));
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(DataFusionError::from)
    }
}

fn take_i16(msg: &[u8]) -> Result<(i16, &[u8]), DataFusionError> {
    if msg.len() < 2 {
        return Err(error("a row cut short"));
    }
    Ok((i16::from_be_bytes([msg[0], msg[1]]), &msg[2..]))
}

fn take_i32(msg: &[u8]) -> Result<(i32, &[u8]), DataFusionError> {
    if msg.len() < 4 {
        return Err(error("a row cut short"));
    }
    Ok((
        i32::from_be_bytes(msg[..4].try_into().expect("4 bytes")),
        &msg[4..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::upstream::types::oid;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Decimal128Type, Int32Type, Schema};

    fn header() -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v
    }

    fn numeric(ndigits: &[u16], weight: i16, negative: bool, dscale: i16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(ndigits.len() as u16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in ndigits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_scale_exactly() {
        // 12345.67 = [1, 2345, 6700] weight 1
        assert_eq!(
            numeric_to_i128(&numeric(&[1, 2345, 6700], 1, false, 2), 2).unwrap(),
            1_234_567
        );
        // -0.05 = [500] weight -1
        assert_eq!(
            numeric_to_i128(&numeric(&[500], -1, true, 2), 2).unwrap(),
            -5
        );
        // 0 = no digits
        assert_eq!(numeric_to_i128(&numeric(&[], 0, false, 2), 2).unwrap(), 0);
        // 20000 = [2] weight 1, scale 0
        assert_eq!(
            numeric_to_i128(&numeric(&[2], 1, false, 0), 0).unwrap(),
            20_000
        );
        let nan = [0u8, 0, 0, 0, 0xC0, 0, 0, 0];
        assert!(numeric_to_i128(&nan, 2).is_err());
    }

    #[test]
    fn rows_nulls_and_trailer() {
        let cols = vec![
            UpstreamColumn::new("a", oid::INT4, -1),
            UpstreamColumn::new("b", oid::NUMERIC, (10 << 16 | 2) + 4),
        ];
        let schema = Arc::new(Schema::new(
            cols.iter().map(|c| c.field()).collect::<Vec<_>>(),
        ));
        let mut d = CopyDecoder::new(schema, &cols, 4);
        let mut first = header();
        first.extend_from_slice(&2i16.to_be_bytes());
        first.extend_from_slice(&4i32.to_be_bytes());
        first.extend_from_slice(&7i32.to_be_bytes());
        let n = numeric(&[1, 5000], 0, false, 2); // 1.50
        first.extend_from_slice(&(n.len() as i32).to_be_bytes());
        first.extend_from_slice(&n);
        d.feed(&first).unwrap();
        let mut second = 2i16.to_be_bytes().to_vec();
        second.extend_from_slice(&(-1i32).to_be_bytes());
        second.extend_from_slice(&(-1i32).to_be_bytes());
        d.feed(&second).unwrap();
        d.feed(&(-1i16).to_be_bytes()).unwrap();
        assert!(d.done());
        let batch = d.finish_batch().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(0), 7);
        assert!(batch.column(0).is_null(1));
        assert_eq!(
            batch.column(1).as_primitive::<Decimal128Type>().value(0),
            150
        );
        // Truncated input is an error, not a panic.
        let mut d2 = CopyDecoder::new(batch.schema(), &cols, 4);
        assert!(d2.feed(&first[..first.len() - 3]).is_err());
    }
}
