//! Which PostgreSQL type a client is told an Arrow column has.
//!
//! The mapping is chosen so that the *values* survive: every Arrow value of a
//! mapped type has exactly one PostgreSQL value, and a client that reads the
//! column as that PostgreSQL type gets what PostgreSQL itself would have sent.
//! Widening is used where PostgreSQL has no unsigned types (`UInt16` → int4,
//! `UInt32` → int8, `UInt64` → numeric), never narrowing.
//!
//! Arrow has no json, jsonb or uuid types, so a field's metadata may say which
//! one its values are (see [`PG_TYPE_KEY`]).

use datafusion::arrow::datatypes::{DataType, Field};

/// Field-metadata key naming the PostgreSQL type of a column whose Arrow type
/// is ambiguous: `"json"`, `"jsonb"`, `"uuid"` or `"numeric"`.
///
/// * `json` / `jsonb` on a string field (`Utf8`, `LargeUtf8`, `Utf8View`): the
///   strings are JSON documents, sent as they are. For `jsonb` they should
///   already be in jsonb's normalised text (as PostgreSQL prints it); the
///   encoder does not re-order keys or re-space them.
/// * `uuid` on a string field (any of PostgreSQL's uuid input spellings,
///   re-printed canonically) or on `FixedSizeBinary(16)` (the 16 bytes). The
///   canonical Arrow extension `ARROW:extension:name = arrow.uuid` on
///   `FixedSizeBinary(16)`, and `arrow.json` on a string field, are honoured too.
///
/// * `numeric` on a string field: each value is a numeric's text as
///   PostgreSQL prints it (`-12.50`), sent as is in text format and as
///   `numeric_send` in binary (for values whose scale Arrow's decimals
///   cannot carry per row, such as PostgreSQL's `avg`).
///
/// On a list field the key may sit on the list field or on its item field; it
/// applies to the leaf values (a `List<Utf8>` tagged `uuid` is `uuid[]`).
pub const PG_TYPE_KEY: &str = "pg_type";

const EXTENSION_KEY: &str = "ARROW:extension:name";

/// A PostgreSQL type for an Arrow type: what RowDescription says of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgType {
    /// `pg_type.oid`.
    pub oid: u32,
    /// `pg_type.typlen`: the fixed width, or -1 for variable-length types.
    pub typlen: i16,
    /// The type modifier (numeric precision and scale), -1 when there is none.
    pub typmod: i32,
    /// `pg_type.typname` (`int4`, `_int4` for its array type, ...).
    pub name: &'static str,
}

impl PgType {
    const fn of(oid: u32, typlen: i16, name: &'static str) -> Self {
        PgType {
            oid,
            typlen,
            typmod: -1,
            name,
        }
    }

    /// The array type whose elements are of this type, if PostgreSQL has one
    /// among the types this module produces.
    pub fn array(&self) -> Option<PgType> {
        let (oid, name) = match self.oid {
            oid::BOOL => (oid::BOOL_ARRAY, "_bool"),
            oid::BYTEA => (oid::BYTEA_ARRAY, "_bytea"),
            oid::INT8 => (oid::INT8_ARRAY, "_int8"),
            oid::INT2 => (oid::INT2_ARRAY, "_int2"),
            oid::INT4 => (oid::INT4_ARRAY, "_int4"),
            oid::TEXT => (oid::TEXT_ARRAY, "_text"),
            oid::JSON => (oid::JSON_ARRAY, "_json"),
            oid::FLOAT4 => (oid::FLOAT4_ARRAY, "_float4"),
            oid::FLOAT8 => (oid::FLOAT8_ARRAY, "_float8"),
            oid::DATE => (oid::DATE_ARRAY, "_date"),
            oid::TIME => (oid::TIME_ARRAY, "_time"),
            oid::TIMESTAMP => (oid::TIMESTAMP_ARRAY, "_timestamp"),
            oid::TIMESTAMPTZ => (oid::TIMESTAMPTZ_ARRAY, "_timestamptz"),
            oid::INTERVAL => (oid::INTERVAL_ARRAY, "_interval"),
            oid::NUMERIC => (oid::NUMERIC_ARRAY, "_numeric"),
            oid::UUID => (oid::UUID_ARRAY, "_uuid"),
            oid::JSONB => (oid::JSONB_ARRAY, "_jsonb"),
            _ => return None,
        };
        // An array column keeps its elements' typmod, as PostgreSQL's
        // `numeric(10,2)[]` does.
        Some(PgType {
            oid,
            typlen: -1,
            typmod: self.typmod,
            name,
        })
    }
}

/// The oids of the types this module uses (`pg_type.dat`).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const JSON: u32 = 114;
    pub const JSON_ARRAY: u32 = 199;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BOOL_ARRAY: u32 = 1000;
    pub const BYTEA_ARRAY: u32 = 1001;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const INT8_ARRAY: u32 = 1016;
    pub const FLOAT4_ARRAY: u32 = 1021;
    pub const FLOAT8_ARRAY: u32 = 1022;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMP_ARRAY: u32 = 1115;
    pub const DATE_ARRAY: u32 = 1182;
    pub const TIME_ARRAY: u32 = 1183;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const TIMESTAMPTZ_ARRAY: u32 = 1185;
    pub const INTERVAL: u32 = 1186;
    pub const INTERVAL_ARRAY: u32 = 1187;
    pub const NUMERIC_ARRAY: u32 = 1231;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const UUID_ARRAY: u32 = 2951;
    pub const JSONB: u32 = 3802;
    pub const JSONB_ARRAY: u32 = 3807;
}

pub(crate) const BOOL: PgType = PgType::of(oid::BOOL, 1, "bool");
pub(crate) const BYTEA: PgType = PgType::of(oid::BYTEA, -1, "bytea");
pub(crate) const INT2: PgType = PgType::of(oid::INT2, 2, "int2");
pub(crate) const INT4: PgType = PgType::of(oid::INT4, 4, "int4");
pub(crate) const INT8: PgType = PgType::of(oid::INT8, 8, "int8");
pub(crate) const TEXT: PgType = PgType::of(oid::TEXT, -1, "text");
pub(crate) const JSON: PgType = PgType::of(oid::JSON, -1, "json");
pub(crate) const JSONB: PgType = PgType::of(oid::JSONB, -1, "jsonb");
pub(crate) const UUID: PgType = PgType::of(oid::UUID, 16, "uuid");
pub(crate) const FLOAT4: PgType = PgType::of(oid::FLOAT4, 4, "float4");
pub(crate) const FLOAT8: PgType = PgType::of(oid::FLOAT8, 8, "float8");
pub(crate) const NUMERIC: PgType = PgType::of(oid::NUMERIC, -1, "numeric");
pub(crate) const DATE: PgType = PgType::of(oid::DATE, 4, "date");
pub(crate) const TIME: PgType = PgType::of(oid::TIME, 8, "time");
pub(crate) const TIMESTAMP: PgType = PgType::of(oid::TIMESTAMP, 8, "timestamp");
pub(crate) const TIMESTAMPTZ: PgType = PgType::of(oid::TIMESTAMPTZ, 8, "timestamptz");
pub(crate) const INTERVAL: PgType = PgType::of(oid::INTERVAL, 16, "interval");

/// The PostgreSQL type for values of Arrow type `dt`; `None` if PostgreSQL
/// has no type that holds them all (structs, maps, unions, run-end encoding,
/// lists of those). Field metadata is not consulted: see [`field_pg_type`].
pub fn pg_type(dt: &DataType) -> Option<PgType> {
    leaf_type(dt, None)
}

/// The PostgreSQL type of an Arrow field: [`pg_type`] of its data type, unless
/// its metadata names json, jsonb or uuid (see [`PG_TYPE_KEY`]).
pub fn field_pg_type(field: &Field) -> Option<PgType> {
    leaf_type(field.data_type(), tagged_type(field))
}

/// The type named by a field's metadata, if any.
fn tagged_type(field: &Field) -> Option<PgType> {
    let md = field.metadata();
    if let Some(t) = md.get(PG_TYPE_KEY) {
        return match t.as_str() {
            "json" => Some(JSON),
            "jsonb" => Some(JSONB),
            "uuid" => Some(UUID),
            "numeric" => Some(NUMERIC),
            _ => None,
        };
    }
    match md.get(EXTENSION_KEY).map(String::as_str) {
        Some("arrow.uuid") => Some(UUID),
        Some("arrow.json") => Some(JSON),
        _ => None,
    }
}

fn leaf_type(dt: &DataType, tag: Option<PgType>) -> Option<PgType> {
    use DataType::*;
    let t = match dt {
        Null => TEXT,
        Boolean => BOOL,
        Int8 | Int16 | UInt8 => INT2,
        Int32 | UInt16 => INT4,
        Int64 | UInt32 => INT8,
        UInt64 => NUMERIC,
        Float16 | Float32 => FLOAT4,
        Float64 => FLOAT8,
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => PgType {
            typmod: numeric_typmod(*p, *s),
            ..NUMERIC
        },
        Utf8 | LargeUtf8 | Utf8View => match tag {
            Some(t) => t,
            None => TEXT,
        },
        FixedSizeBinary(16) if tag == Some(UUID) => UUID,
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => BYTEA,
        Date32 | Date64 => DATE,
        Time32(_) | Time64(_) => TIME,
        Timestamp(_, None) => TIMESTAMP,
        Timestamp(_, Some(_)) => TIMESTAMPTZ,
        Interval(_) | Duration(_) => INTERVAL,
        Dictionary(_, value) => leaf_type(value, tag)?,
        List(_) | LargeList(_) | FixedSizeList(..) | ListView(_) | LargeListView(_) => {
            // PostgreSQL arrays are multi-dimensional arrays of one element
            // type, not arrays of arrays: a nested list is the same array type.
            return element_of(dt, tag)?.array();
        }
        Struct(_) | Union(..) | Map(..) | RunEndEncoded(..) => return None,
    };
    Some(t)
}

/// numeric(p, s)'s typmod: `((p << 16) | s) + VARHDRSZ`, with the scale in 11
/// bits so that PostgreSQL 15's negative scales survive.
fn numeric_typmod(precision: u8, scale: i8) -> i32 {
    ((i32::from(precision) << 16) | (i32::from(scale) & 0x7ff)) + 4
}

/// The element type of an array type produced by [`pg_type`] (the type
/// itself for a scalar).
pub(crate) fn element_type(dt: &DataType, field_tag: Option<&Field>) -> Option<PgType> {
    let tag = field_tag.and_then(tagged_type);
    element_of(dt, tag)
}

fn element_of(dt: &DataType, tag: Option<PgType>) -> Option<PgType> {
    match dt {
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::FixedSizeList(item, _)
        | DataType::ListView(item)
        | DataType::LargeListView(item) => {
            element_of(item.data_type(), tag.or_else(|| tagged_type(item)))
        }
        DataType::Dictionary(_, value) => element_of(value, tag),
        other => leaf_type(other, tag),
    }
}
