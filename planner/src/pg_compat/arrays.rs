//! PostgreSQL arrays as the catalogs hold them: text in PostgreSQL's array
//! syntax (`{a,"b c",NULL}`), or Arrow lists in user data. The functions
//! behind `array_upper`, `arr[i]` and `x = ANY(arr)` accept both.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::Result;

fn strs(a: &ArrayRef) -> &StringArray {
    a.as_string::<i32>()
}
fn longs(a: &ArrayRef) -> &Int64Array {
    a.as_primitive::<Int64Type>()
}

/// The elements of row `i` of an array argument: PostgreSQL array text
/// (`{a,"b c",NULL}`) or an Arrow list; None for NULL.
pub(crate) fn elements(a: &ArrayRef, i: usize) -> Option<Vec<Option<String>>> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            let values = match a.data_type() {
                DataType::List(_) => a.as_list::<i32>().value(i),
                DataType::LargeList(_) => a.as_list::<i64>().value(i),
                _ => a.as_fixed_size_list().value(i),
            };
            let text = cast(&values, &DataType::Utf8).ok()?;
            let text = strs(&text);
            Some(text.iter().map(|v| v.map(str::to_string)).collect())
        }
        DataType::Utf8 => parse_array(strs(a).value(i)),
        _ => {
            let text = cast(a, &DataType::Utf8).ok()?;
            parse_array(strs(&text).value(i))
        }
    }
}

/// One element as PostgreSQL writes it inside array text: quoted when
/// empty, `NULL`-like or holding delimiters; NULL itself as `NULL`.
pub(crate) fn quote_element(e: Option<&str>) -> String {
    let Some(s) = e else {
        return "NULL".into();
    };
    let plain = !s.is_empty()
        && !s.eq_ignore_ascii_case("null")
        && !s
            .chars()
            .any(|c| c.is_whitespace() || "{},\"\\".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Parse a one-dimensional PostgreSQL array literal.
pub(crate) fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => item.extend(chars.next()),
                    '"' => break,
                    c => item.push(c),
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == ',' {
                break;
            }
            chars.next();
            if !quoted {
                if c == '\\' {
                    item.extend(chars.next());
                } else {
                    item.push(c);
                }
            }
        }
        let item = if quoted {
            item
        } else {
            item.trim().to_string()
        };
        out.push((quoted || !item.eq_ignore_ascii_case("null")).then_some(item));
        if chars.next().is_none() {
            return Some(out);
        }
    }
}

pub(crate) fn array_bound(a: &[ArrayRef], f: impl Fn(usize) -> Option<i64>) -> Result<ArrayRef> {
    let dims = longs(&a[1]);
    let out: Int64Array = (0..a[0].len())
        .map(|i| {
            if !dims.is_valid(i) || dims.value(i) != 1 {
                return None;
            }
            f(elements(&a[0], i)?.len())
        })
        .collect();
    Ok(Arc::new(out))
}

/// `arr[i]` (1-based): typed for lists, text for array text.
pub(crate) fn array_element(a: &[ArrayRef], _: usize) -> Result<ArrayRef> {
    let idx = longs(&a[1]);
    let at = |i: usize| -> Option<usize> {
        let k = idx.is_valid(i).then(|| idx.value(i))?;
        usize::try_from(k).ok().filter(|k| *k >= 1).map(|k| k - 1)
    };
    match a[0].data_type() {
        DataType::List(f) => {
            let list = a[0].as_list::<i32>();
            let mut parts: Vec<ArrayRef> = Vec::with_capacity(list.len());
            for i in 0..list.len() {
                let v = (list.is_valid(i)).then(|| list.value(i));
                match (v, at(i)) {
                    (Some(v), Some(k)) if k < v.len() => parts.push(v.slice(k, 1)),
                    _ => parts.push(datafusion::arrow::array::new_null_array(f.data_type(), 1)),
                }
            }
            let refs: Vec<&dyn Array> = parts.iter().map(|p| p.as_ref()).collect();
            if refs.is_empty() {
                return Ok(datafusion::arrow::array::new_empty_array(f.data_type()));
            }
            Ok(concat(&refs)?)
        }
        _ => {
            let out: StringArray = (0..a[0].len())
                .map(|i| elements(&a[0], i)?.get(at(i)?).cloned().flatten())
                .collect();
            Ok(Arc::new(out))
        }
    }
}

/// `x = ANY(arr)`: NULL when not found and the array has NULLs.
pub(crate) fn array_contains(a: &[ArrayRef], _: usize) -> Result<ArrayRef> {
    let needle = cast(&a[1], &DataType::Utf8)?;
    let needle = strs(&needle);
    let out: BooleanArray = (0..a[0].len())
        .map(|i| {
            let elems = elements(&a[0], i)?;
            let x = needle.is_valid(i).then(|| needle.value(i))?;
            if elems.iter().any(|e| e.as_deref() == Some(x)) {
                Some(true)
            } else if elems.iter().any(Option::is_none) {
                None
            } else {
                Some(false)
            }
        })
        .collect();
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_text_parses() {
        let parsed = parse_array(r#"{a,"b c",NULL,"NULL",d\,e}"#).unwrap();
        assert_eq!(
            parsed,
            vec![
                Some("a".into()),
                Some("b c".into()),
                None,
                Some("NULL".into()),
                Some("d,e".into())
            ]
        );
        assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(parse_array("x"), None);
        assert_eq!(quote_element(Some("b c")), "\"b c\"");
        assert_eq!(quote_element(None), "NULL");
        let text = format!(
            "{{{},{}}}",
            quote_element(Some("a,\"b")),
            quote_element(Some("x"))
        );
        assert_eq!(
            parse_array(&text).unwrap(),
            vec![Some("a,\"b".into()), Some("x".into())]
        );
    }
}
