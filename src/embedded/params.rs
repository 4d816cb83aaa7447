//! Parameters a client sent in binary format, read back to the text form
//! the engine binds (it types them from the statement).

use datafusion::arrow::datatypes::DataType;
use helios_wire::{PgError, SqlState};

/// `raw` in PostgreSQL's binary format for the parameter's type.
pub fn binary_to_text(raw: &[u8], ty: Option<&DataType>) -> Result<String, PgError> {
    let bad = || {
        PgError::error(
            SqlState::new("22P03"),
            format!(
                "incorrect binary data format in bind parameter ({} bytes)",
                raw.len()
            ),
        )
    };
    let int = |n: usize| -> Result<i64, PgError> {
        let b: &[u8] = raw.get(..n).filter(|_| raw.len() == n).ok_or_else(bad)?;
        Ok(match n {
            2 => i16::from_be_bytes([b[0], b[1]]) as i64,
            4 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64,
            _ => i64::from_be_bytes(b.try_into().map_err(|_| bad())?),
        })
    };
    Ok(match ty {
        Some(DataType::Boolean) => match raw {
            [0] => "false".into(),
            [_] => "true".into(),
            _ => return Err(bad()),
        },
        Some(DataType::Int8 | DataType::Int16) => int(2)?.to_string(),
        Some(DataType::Int32 | DataType::UInt16) => int(4)?.to_string(),
        Some(DataType::Int64 | DataType::UInt32) => match raw.len() {
            2 | 4 | 8 => int(raw.len())?.to_string(),
            _ => return Err(bad()),
        },
        Some(DataType::Float32) => {
            let b: [u8; 4] = raw.try_into().map_err(|_| bad())?;
            f32::from_be_bytes(b).to_string()
        }
        Some(DataType::Float64) => match raw.len() {
            4 => f32::from_be_bytes(raw.try_into().map_err(|_| bad())?).to_string(),
            8 => f64::from_be_bytes(raw.try_into().map_err(|_| bad())?).to_string(),
            _ => return Err(bad()),
        },
        // Text, and what drivers send as text-like binary (varchar, name).
        _ => String::from_utf8(raw.to_vec()).map_err(|_| {
            PgError::error(
                SqlState::FEATURE_NOT_SUPPORTED,
                "binary parameters of this type are not supported by the embedded database; send it in text format",
            )
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_binary_integers_and_floats() {
        assert_eq!(
            binary_to_text(&42i32.to_be_bytes(), Some(&DataType::Int32)).unwrap(),
            "42"
        );
        assert_eq!(
            binary_to_text(&(-7i64).to_be_bytes(), Some(&DataType::Int64)).unwrap(),
            "-7"
        );
        assert_eq!(
            binary_to_text(&1.5f64.to_be_bytes(), Some(&DataType::Float64)).unwrap(),
            "1.5"
        );
        assert_eq!(
            binary_to_text(&[1], Some(&DataType::Boolean)).unwrap(),
            "true"
        );
        assert_eq!(
            binary_to_text(b"abc", Some(&DataType::Utf8)).unwrap(),
            "abc"
        );
        let e = binary_to_text(&[0, 1, 2], Some(&DataType::Int32)).unwrap_err();
        assert_eq!(e.code.code(), "22P03");
    }
}
