//! Result sets Helios produces itself (`nl_sql`, `SHOW HELIOS ...`): the
//! RowDescription, DataRows in the formats the client asked for, and
//! CommandComplete. Encoding is pgwire's (postgres-types underneath), so text
//! and binary values are what PostgreSQL would send for the same types.

use std::sync::Arc;

use bytes::BytesMut;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
pub use pgwire::api::Type;
use pgwire::messages::data::{FieldDescription, NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{BindComplete, CloseComplete, ParseComplete};
use pgwire::messages::response::CommandComplete;
use pgwire::messages::Message;

use crate::messages::encode;
pub use pgwire::types::ToSqlText;
pub use postgres_types::ToSql;

/// A column of a Helios-made result.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: Type,
}

impl Column {
    pub fn new(name: &str, ty: Type) -> Self {
        Column {
            name: name.to_string(),
            ty,
        }
    }
}

/// The format of each column from a Bind's result-format codes: none means
/// all text, one applies to all, else one per column (as PostgreSQL reads them).
pub fn formats_for(columns: usize, codes: &[i16]) -> Vec<FieldFormat> {
    (0..columns)
        .map(|i| {
            let code = match codes.len() {
                0 => 0,
                1 => codes[0],
                _ => codes.get(i).copied().unwrap_or(0),
            };
            FieldFormat::from(code)
        })
        .collect()
}

/// Rows of a result set being encoded.
pub struct ResultRows {
    encoder: DataRowEncoder,
    fields: Arc<Vec<FieldInfo>>,
    rows: usize,
}

impl ResultRows {
    /// `result_formats` as the client's Bind gave them (empty for the simple protocol).
    pub fn new(columns: &[Column], result_formats: &[i16]) -> Self {
        let formats = formats_for(columns.len(), result_formats);
        let fields: Vec<FieldInfo> = columns
            .iter()
            .zip(formats)
            .map(|(c, f)| FieldInfo::new(c.name.clone(), None, None, c.ty.clone(), f))
            .collect();
        let fields = Arc::new(fields);
        ResultRows {
            encoder: DataRowEncoder::new(fields.clone()),
            fields,
            rows: 0,
        }
    }

    /// The RowDescription message.
    pub fn describe(&self, out: &mut BytesMut) {
        RowDescription::new(
            self.fields
                .iter()
                .map(|f| {
                    FieldDescription::new(
                        f.name().to_string(),
                        0,
                        0,
                        f.datatype().oid(),
                        type_size(f.datatype()),
                        -1,
                        f.format().value(),
                    )
                })
                .collect(),
        )
        .encode(out)
        .expect("row descriptions are small");
    }

    /// Add one value to the row being built (columns in order).
    pub fn push<T: ToSql + ToSqlText>(&mut self, value: &T) {
        self.encoder
            .encode_field(value)
            .expect("Helios encodes only values of the declared types");
    }

    /// End the row: its DataRow goes to `out`.
    pub fn end_row(&mut self, out: &mut BytesMut) {
        self.encoder
            .take_row()
            .encode(out)
            .expect("a row of Helios's own fits");
        self.rows += 1;
    }

    /// CommandComplete, e.g. `SELECT 3` for `tag` "SELECT".
    pub fn complete(&self, tag: &str, out: &mut BytesMut) {
        command_complete(&format!("{tag} {}", self.rows), out);
    }
}

fn type_size(t: &Type) -> i16 {
    match *t {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIMESTAMPTZ | Type::TIMESTAMP => 8,
        _ => -1,
    }
}

/// CommandComplete with `tag` as is.
pub fn command_complete(tag: &str, out: &mut BytesMut) {
    encode(CommandComplete::new(tag.to_string()), out);
}

/// Small fixed-shape replies of the extended protocol.
pub fn parse_complete(out: &mut BytesMut) {
    encode(ParseComplete::new(), out);
}

pub fn bind_complete(out: &mut BytesMut) {
    encode(BindComplete::new(), out);
}

pub fn close_complete(out: &mut BytesMut) {
    encode(CloseComplete::new(), out);
}

pub fn no_data(out: &mut BytesMut) {
    encode(NoData::new(), out);
}

/// ParameterDescription for these type oids.
pub fn parameter_description(oids: &[u32], out: &mut BytesMut) {
    encode(ParameterDescription::new(oids.to_vec()), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_text_and_binary_rows() {
        let cols = [Column::new("n", Type::INT4), Column::new("s", Type::TEXT)];
        let mut out = BytesMut::new();
        let mut text = ResultRows::new(&cols, &[]);
        text.describe(&mut out);
        text.push(&7i32);
        text.push(&"x");
        text.end_row(&mut out);
        text.complete("SELECT", &mut out);
        assert_eq!(out[0], b'T');
        let d = out.iter().position(|&b| b == b'D').unwrap();
        // DataRow: 2 columns, "7" then "x".
        assert_eq!(&out[d + 5..d + 7], &[0, 2]);
        assert_eq!(&out[d + 7..d + 12], &[0, 0, 0, 1, b'7']);
        assert!(out.ends_with(b"SELECT 1\0"));

        let mut bin = BytesMut::new();
        let mut rows = ResultRows::new(&cols, &[1]);
        rows.push(&7i32);
        rows.push(&"x");
        rows.end_row(&mut bin);
        assert_eq!(&bin[7..15], &[0, 0, 0, 4, 0, 0, 0, 7]);
    }
}
