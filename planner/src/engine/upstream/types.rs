//! Which Arrow type a PostgreSQL column is read as.
//!
//! Types with an exact Arrow equivalent are read in binary and decoded
//! ([`Decode`]). Every other type (unconstrained `numeric`, arrays, enums,
//! `money`, geometric and network types, ...) is read as its text
//! (`col::text`): a query that only shows such a column prints exactly what
//! PostgreSQL prints, and one that computes on it fails to plan in
//! DataFusion, which sends the statement to PostgreSQL instead.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit};

/// The field-metadata key `helios_wire::arrow::PG_TYPE_KEY` reads (json,
/// jsonb, uuid); spelled out here since the planner does not depend on the
/// wire crate.
const PG_TYPE_KEY: &str = "pg_type";

/// How a column's binary COPY values become Arrow values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// numeric(p, s) with p ≤ 38.
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// text, varchar, bpchar, name, json (and anything read as `::text`).
    Text,
    /// jsonb: a version byte, then the text.
    Jsonb,
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    Uuid,
}

/// One column of an upstream relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamColumn {
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
    pub decode: Decode,
    /// Read as `col::text` (no binary decoder for its type): never
    /// compared in filters pushed to PostgreSQL, since text comparison is
    /// not the type's.
    pub as_text: bool,
}

impl UpstreamColumn {
    pub fn new(name: &str, type_oid: u32, typmod: i32) -> Self {
        let (decode, as_text) = match decode_for(type_oid, typmod) {
            Some(d) => (d, false),
            None => (Decode::Text, true),
        };
        UpstreamColumn {
            name: name.to_string(),
            type_oid,
            typmod,
            decode,
            as_text,
        }
    }

    /// The Arrow field (nullable: the catalog's NOT NULL is not trusted
    /// across a snapshot boundary, and costs nothing to drop).
    pub fn field(&self) -> Field {
        let field = Field::new(&self.name, arrow_type(self.decode), true);
        let pg = match (self.decode, self.type_oid) {
            (Decode::Text, oid::JSON) if !self.as_text => Some("json"),
            (Decode::Jsonb, _) => Some("jsonb"),
            (Decode::Uuid, _) => Some("uuid"),
            _ => None,
        };
        match pg {
            Some(t) => {
                field.with_metadata(HashMap::from([(PG_TYPE_KEY.to_string(), t.to_string())]))
            }
            // Marked so that `faithful` knows its padding is significant.
            None if self.type_oid == oid::BPCHAR => field.with_metadata(HashMap::from([(
                super::faithful::BPCHAR_KEY.to_string(),
                "true".to_string(),
            )])),
            None => field,
        }
    }
}

/// A table (or view, materialized view, partitioned table) upstream, as the
/// client's role sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRelation {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `pg_class.relkind`: r, p, v, m, f.
    pub kind: char,
    /// Its size in pages now (for the ctid split); 0 for views.
    pub pages: u64,
    /// `pg_class.reltuples` (-1 when never analyzed).
    pub estimated_rows: i64,
    pub columns: Vec<UpstreamColumn>,
}

impl UpstreamRelation {
    /// `"schema"."name"`.
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}",
            super::quote_ident(&self.schema),
            super::quote_ident(&self.name)
        )
    }

    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(UpstreamColumn::field)
                .collect::<Vec<_>>(),
        ))
    }

    /// Whether its rows have ctids to split on.
    pub fn splittable(&self) -> bool {
        matches!(self.kind, 'r' | 'p' | 'm')
    }
}

/// PostgreSQL type oids read in binary.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

fn decode_for(type_oid: u32, typmod: i32) -> Option<Decode> {
    Some(match type_oid {
        oid::BOOL => Decode::Bool,
        oid::INT2 => Decode::Int2,
        oid::INT4 => Decode::Int4,
        oid::INT8 => Decode::Int8,
        oid::FLOAT4 => Decode::Float4,
        oid::FLOAT8 => Decode::Float8,
        oid::NUMERIC => {
            // typmod = ((precision << 16) | scale) + 4; -1 = unconstrained.
            if typmod < 4 {
                return None;
            }
            let precision = ((typmod - 4) >> 16) & 0xffff;
            let scale = (typmod - 4) & 0xffff;
            // PostgreSQL 15 allows negative or larger-than-precision scales.
            if !(1..=38).contains(&precision) || scale > precision {
                return None;
            }
            Decode::Decimal {
                precision: precision as u8,
                scale: scale as i8,
            }
        }
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::JSON => Decode::Text,
        oid::JSONB => Decode::Jsonb,
        oid::BYTEA => Decode::Bytea,
        oid::DATE => Decode::Date,
        oid::TIME => Decode::Time,
        oid::TIMESTAMP => Decode::Timestamp,
        oid::TIMESTAMPTZ => Decode::Timestamptz,
        oid::INTERVAL => Decode::Interval,
        oid::UUID => Decode::Uuid,
        _ => return None,
    })
}

/// The Arrow type values are decoded into.
pub fn arrow_type(decode: Decode) -> DataType {
    match decode {
        Decode::Bool => DataType::Boolean,
        Decode::Int2 => DataType::Int16,
        Decode::Int4 => DataType::Int32,
        Decode::Int8 => DataType::Int64,
        Decode::Float4 => DataType::Float32,
        Decode::Float8 => DataType::Float64,
        Decode::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        Decode::Text | Decode::Jsonb => DataType::Utf8,
        Decode::Bytea => DataType::Binary,
        Decode::Date => DataType::Date32,
        Decode::Time => DataType::Time64(TimeUnit::Microsecond),
        Decode::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        Decode::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Decode::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
        Decode::Uuid => DataType::FixedSizeBinary(16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods_become_decimals_or_text() {
        // numeric(15,2)
        let c = UpstreamColumn::new("x", oid::NUMERIC, (15 << 16 | 2) + 4);
        assert_eq!(
            c.decode,
            Decode::Decimal {
                precision: 15,
                scale: 2
            }
        );
        assert!(!c.as_text);
        // unconstrained numeric: text
        let c = UpstreamColumn::new("x", oid::NUMERIC, -1);
        assert!(c.as_text);
        // numeric(50,2): too wide for Decimal128
        let c = UpstreamColumn::new("x", oid::NUMERIC, (50 << 16 | 2) + 4);
        assert!(c.as_text);
        // an enum or array type
        assert!(UpstreamColumn::new("x", 1007, -1).as_text);
    }
}
