//! Apache Arrow record batches as PostgreSQL result messages.
//!
//! Queries Helios answers itself (from its cache or its own engine) produce
//! Arrow [`RecordBatch`]es, while clients expect what PostgreSQL would have
//! sent. This module writes the RowDescription for a batch's schema
//! ([`row_description`]) and one DataRow per row ([`encode_batch`]) such
//! that a client cannot tell the difference: text values are byte-identical
//! to PostgreSQL 15's output functions under the session's settings
//! ([`TextSettings`]), binary values to its `*send` functions.
//!
//! How Arrow types map to PostgreSQL types is in [`pg_type`]; field metadata
//! can ask for json, jsonb or uuid ([`PG_TYPE_KEY`]). Dictionary columns are
//! sent as their values. Columns of types with no PostgreSQL equivalent
//! (structs, maps, unions, run-end encoding) and values PostgreSQL cannot
//! hold (a ragged nested list, a timestamp before 4714 BC) are refused with
//! an [`EncodeError`], which callers report as SQLSTATE 0A000.
//!
//! Only the arrow re-exported by datafusion is used, so that the tree has one
//! arrow version.

mod binary;
mod datetime;
mod text;
mod types;
mod values;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_arrays;
#[cfg(test)]
mod tests_binary;
#[cfg(test)]
mod tests_datetime;

use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use pgwire::messages::data::{FieldDescription, RowDescription};

use crate::error::{PgError, SqlState};
use crate::messages::encode;

pub use types::{field_pg_type, oid, pg_type, PgType, PG_TYPE_KEY};

use datetime::Zone;
use text::TextCtx;
use values::Column;

/// Settings that change the text of values: the session's `SET`s and startup
/// parameters. Binary values do not depend on them.
#[derive(Clone, Debug)]
pub struct TextSettings {
    /// `extra_float_digits`: > 0 prints floats in their shortest exact form,
    /// ≤ 0 with 15 (float8) / 6 (float4) plus this many significant digits.
    pub extra_float_digits: i32,
    /// `TimeZone`, as PostgreSQL reports it in ParameterStatus: an IANA name
    /// (`Europe/Berlin`), `UTC`, a number of hours east (`2`), or a POSIX
    /// offset *west* of UTC (`+05:30` shows times as `-05:30`, exactly as in
    /// PostgreSQL; `<+05:30>-05:30` is the way to say five and a half hours
    /// east). Only timestamptz values use it.
    pub timezone: String,
    /// `DateStyle` starts with ISO. Other styles are not implemented: date
    /// and timestamp columns in text format are refused when this is false.
    pub datestyle_iso: bool,
    /// `IntervalStyle` is `postgres`. Other styles are not implemented:
    /// interval columns in text format are refused when this is false.
    pub intervalstyle_postgres: bool,
    /// `bytea_output` is `hex` (else `escape`).
    pub bytea_hex: bool,
}

impl Default for TextSettings {
    /// PostgreSQL's defaults: extra_float_digits 1, TimeZone UTC, DateStyle
    /// `ISO, MDY`, IntervalStyle postgres, bytea_output hex.
    fn default() -> Self {
        TextSettings {
            extra_float_digits: 1,
            timezone: "UTC".to_string(),
            datestyle_iso: true,
            intervalstyle_postgres: true,
            bytea_hex: true,
        }
    }
}

impl TextSettings {
    /// Takes in a parameter as PostgreSQL reports it (ParameterStatus, or a
    /// startup parameter); returns whether it was one of these settings.
    /// An unparsable `extra_float_digits` is ignored, as PostgreSQL would
    /// have refused it.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "extra_float_digits" => {
                if let Ok(n) = value.parse::<i32>() {
                    self.extra_float_digits = n.clamp(-15, 3);
                }
            }
            "timezone" => self.timezone = value.to_string(),
            "datestyle" => {
                let first = value.split(',').next().unwrap_or("").trim();
                // "DMY" alone keeps the output style; ParameterStatus always
                // reports both parts.
                if !matches!(first.to_ascii_uppercase().as_str(), "DMY" | "MDY" | "YMD") {
                    self.datestyle_iso = first.eq_ignore_ascii_case("ISO");
                }
            }
            "intervalstyle" => self.intervalstyle_postgres = value.eq_ignore_ascii_case("postgres"),
            "bytea_output" => self.bytea_hex = value.eq_ignore_ascii_case("hex"),
            _ => return false,
        }
        true
    }
}

/// A column or value that cannot be sent as PostgreSQL would: which column,
/// of which Arrow type, and why (or, for bad result-format codes, PostgreSQL's
/// own message). Callers report it as SQLSTATE 0A000 (feature_not_supported);
/// `From<EncodeError> for PgError` does that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(String);

impl EncodeError {
    fn column(index: usize, field: &Field, reason: &str) -> Self {
        EncodeError(format!(
            "column {} (\"{}\") of type {}: {reason}",
            index + 1,
            field.name(),
            field.data_type()
        ))
    }

    fn value(index: usize, field: &Field, row: usize, reason: &str) -> Self {
        EncodeError(format!(
            "column {} (\"{}\") of type {}, row {}: {reason}",
            index + 1,
            field.name(),
            field.data_type(),
            row + 1
        ))
    }

    /// The message, as [`fmt::Display`] prints it.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl From<EncodeError> for PgError {
    fn from(e: EncodeError) -> Self {
        PgError::error(SqlState::FEATURE_NOT_SUPPORTED, e.0)
    }
}

const NOT_REPRESENTABLE: &str = "no PostgreSQL type holds these values";

/// Whether each column is sent in binary, from a Bind's result-format codes
/// as PostgreSQL reads them: none means all text, one applies to all, else
/// exactly one per column.
fn binary_formats(columns: usize, codes: &[i16]) -> Result<Vec<bool>, EncodeError> {
    let code = |i: usize| match codes.len() {
        0 => Ok(false),
        1 => format_code(codes[0]),
        n if n == columns => format_code(codes[i]),
        n => Err(EncodeError(format!(
            "bind message has {n} result formats but query has {columns} columns"
        ))),
    };
    (0..columns).map(code).collect()
}

fn format_code(code: i16) -> Result<bool, EncodeError> {
    match code {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(EncodeError(format!("unsupported format code: {code}"))),
    }
}

/// The RowDescription for `schema`; `formats` are the client's result-format
/// codes as Bind carried them (none: all text; one: for all columns; else one
/// per column). Columns have no table (oid 0, attnum 0).
pub fn row_description(
    schema: &Schema,
    formats: &[i16],
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let binary = binary_formats(schema.fields().len(), formats)?;
    let mut fields = Vec::with_capacity(binary.len());
    for (i, (field, binary)) in schema.fields().iter().zip(binary).enumerate() {
        let ty =
            field_pg_type(field).ok_or_else(|| EncodeError::column(i, field, NOT_REPRESENTABLE))?;
        fields.push(FieldDescription::new(
            field.name().clone(),
            0,
            0,
            ty.oid,
            ty.typlen,
            ty.typmod,
            i16::from(binary),
        ));
    }
    encode(RowDescription::new(fields), out);
    Ok(())
}

/// One column ready to encode.
struct Encoder<'a> {
    column: Column<'a>,
    /// The element type's oid for arrays, else the column type's.
    elem: u32,
    binary: bool,
}

/// One DataRow per row of `batch`, appended to `out`, each value in the
/// format `formats` asks for. On error nothing is appended.
///
/// The only allocations are per batch (unpacked dictionaries, one small
/// vector per column, the time zone) and the growth of `out`.
pub fn encode_batch(
    batch: &RecordBatch,
    formats: &[i16],
    settings: &TextSettings,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let schema = batch.schema();
    let binary = binary_formats(batch.num_columns(), formats)?;
    let arrays = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .enumerate()
        .map(|(i, (a, f))| without_dictionaries(a).map_err(|e| EncodeError::column(i, f, &e)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut encoders = Vec::with_capacity(arrays.len());
    let mut zone_needed = false;
    for (i, ((array, field), binary)) in arrays.iter().zip(schema.fields()).zip(binary).enumerate()
    {
        let not_representable = || EncodeError::column(i, field, NOT_REPRESENTABLE);
        field_pg_type(field).ok_or_else(not_representable)?;
        let elem =
            types::element_type(field.data_type(), Some(field)).ok_or_else(not_representable)?;
        let column = Column::new(array.as_ref()).ok_or_else(not_representable)?;
        if !binary {
            let refuse = |what: &str| {
                Err(EncodeError::column(
                    i,
                    field,
                    &format!("{what} is not supported in text format"),
                ))
            };
            match elem.oid {
                oid::DATE | oid::TIMESTAMP | oid::TIMESTAMPTZ if !settings.datestyle_iso => {
                    return refuse("DateStyle other than ISO");
                }
                oid::INTERVAL if !settings.intervalstyle_postgres => {
                    return refuse("IntervalStyle other than postgres");
                }
                oid::TIMESTAMPTZ => zone_needed = true,
                _ => {}
            }
        }
        encoders.push(Encoder {
            column,
            elem: elem.oid,
            binary,
        });
    }
    let zone = if zone_needed {
        Zone::parse(&settings.timezone).ok_or_else(|| {
            EncodeError(format!(
                "time zone \"{}\" is not supported",
                settings.timezone
            ))
        })?
    } else {
        Zone::Fixed(0)
    };
    let mut ctx = TextCtx {
        settings,
        zone,
        scratch: BytesMut::new(),
    };
    let ncols = i16::try_from(encoders.len())
        .map_err(|_| EncodeError(format!("too many columns: {}", encoders.len())))?;
    let start = out.len();
    for row in 0..batch.num_rows() {
        if let Err((i, reason)) = encode_row(&encoders, row, ncols, &mut ctx, out) {
            out.truncate(start);
            return Err(EncodeError::value(i, schema.field(i), row, reason));
        }
    }
    Ok(())
}

/// One DataRow; on error, the failing column and why.
#[inline]
fn encode_row(
    encoders: &[Encoder<'_>],
    row: usize,
    ncols: i16,
    ctx: &mut TextCtx<'_>,
    out: &mut BytesMut,
) -> Result<(), (usize, &'static str)> {
    let msg = out.len();
    out.put_u8(b'D');
    out.put_i32(0);
    out.put_i16(ncols);
    for (i, e) in encoders.iter().enumerate() {
        let written = match e.column.get(row) {
            Ok(None) => {
                out.put_i32(-1);
                Ok(())
            }
            Ok(Some(v)) => with_length(out, |out| {
                if e.binary {
                    binary::write(v, e.elem, out)
                } else {
                    text::write(v, e.elem, ctx, out)
                }
            }),
            Err(reason) => Err(reason),
        };
        written.map_err(|reason| (i, reason))?;
    }
    let len = i32::try_from(out.len() - msg - 1).map_err(|_| (0, "row too large"))?;
    out[msg + 1..msg + 5].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Writes a value's Int32 length, then the value `f` writes.
pub(crate) fn with_length<E: From<&'static str>>(
    out: &mut BytesMut,
    f: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    let at = out.len();
    out.put_i32(0);
    f(out)?;
    let len = i32::try_from(out.len() - at - 4).map_err(|_| E::from("value too large"))?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// The array with every dictionary (at any depth) replaced by its values.
/// PostgreSQL has no dictionary encoding; arrow's cast unpacks it once per
/// batch rather than once per value.
fn without_dictionaries(a: &ArrayRef) -> Result<ArrayRef, String> {
    match plain_type(a.data_type()) {
        None => Ok(Arc::clone(a)),
        Some(t) => cast(a.as_ref(), &t).map_err(|e| e.to_string()),
    }
}

/// `dt` without dictionaries, `None` if it has none.
fn plain_type(dt: &DataType) -> Option<DataType> {
    let item = |f: &Arc<Field>| {
        plain_type(f.data_type()).map(|t| Arc::new(f.as_ref().clone().with_data_type(t)))
    };
    match dt {
        DataType::Dictionary(_, v) => Some(plain_type(v).unwrap_or_else(|| v.as_ref().clone())),
        DataType::List(f) => item(f).map(DataType::List),
        DataType::LargeList(f) => item(f).map(DataType::LargeList),
        DataType::ListView(f) => item(f).map(DataType::ListView),
        DataType::LargeListView(f) => item(f).map(DataType::LargeListView),
        DataType::FixedSizeList(f, n) => item(f).map(|f| DataType::FixedSizeList(f, *n)),
        _ => None,
    }
}

/// Whether a `TimeZone` setting is one timestamptz values can be written
/// in (an IANA name, UTC, hours east, or a POSIX offset): what a `SET
/// TimeZone` on the embedded database accepts.
pub fn timezone_supported(setting: &str) -> bool {
    Zone::parse(setting).is_some()
}
