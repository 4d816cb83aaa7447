//! The PostgreSQL functions clients call, as DataFusion scalar UDFs. Those
//! that describe objects (`pg_get_indexdef`, `'t'::regclass` lookups) see
//! the [`Snapshot`] taken by `register`.
//!
//! Every function here declares the types its arguments are coerced to;
//! DataFusion inserts the casts, so `format_type(oid, NULL)` and
//! `pg_get_indexdef(oid, 0, true)` plan whatever the literal types.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::arrays::{array_bound, array_contains, array_element, elements, quote_element};
use super::snapshot::{quote_ident, Snapshot};
use super::types::format_type;
use super::VERSION;

type Body = Arc<dyn Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync>;

/// What a function returns.
#[derive(Debug, Clone)]
enum Ret {
    Fixed(DataType),
    /// The element type of the first argument (a list), or text.
    Element,
}

/// A PostgreSQL function: arguments coerced to `args` (None: kept as is),
/// at least `min` of them.
struct PgFn {
    name: &'static str,
    signature: Signature,
    args: Vec<Option<DataType>>,
    min: usize,
    ret: Ret,
    body: Body,
}

impl fmt::Debug for PgFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgFn({})", self.name)
    }
}
impl PartialEq for PgFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.body, &other.body)
    }
}
impl Eq for PgFn {}
impl Hash for PgFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for PgFn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match &self.ret {
            Ret::Fixed(t) => t.clone(),
            Ret::Element => match arg_types.first() {
                Some(
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _),
                ) => f.data_type().clone(),
                _ => DataType::Utf8,
            },
        })
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() < self.min || arg_types.len() > self.args.len() {
            return Err(DataFusionError::Plan(format!(
                "function {}({}) does not exist",
                self.name,
                arg_types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(arg_types
            .iter()
            .zip(&self.args)
            .map(|(given, want)| match (given, want) {
                (DataType::Utf8View | DataType::LargeUtf8, None) => DataType::Utf8,
                (given, None) => given.clone(),
                (_, Some(want)) => want.clone(),
            })
            .collect())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<Vec<_>>>()?;
        Ok(ColumnarValue::Array((self.body)(&arrays, n)?))
    }
}

use DataType::{Boolean as B, Int32 as I32, Int64 as I64, Utf8 as T};

pub(crate) fn udf(
    name: &'static str,
    args: &str,
    min: usize,
    ret: DataType,
    body: impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    udf_ret(name, args, min, Ret::Fixed(ret), body)
}

fn udf_ret(
    name: &'static str,
    args: &str,
    min: usize,
    ret: Ret,
    body: impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    // Argument types by code: o oid (int4), t text, b bool, l int8, * any.
    let args: Vec<Option<DataType>> = args
        .split_whitespace()
        .map(|code| match code {
            "o" => Some(DataType::Int32),
            "t" => Some(DataType::Utf8),
            "b" => Some(DataType::Boolean),
            "l" => Some(DataType::Int64),
            _ => None,
        })
        .collect();
    let signature = if args.is_empty() {
        Signature::nullary(Volatility::Stable)
    } else {
        Signature::user_defined(Volatility::Stable)
    };
    ScalarUDF::new_from_impl(PgFn {
        name,
        signature,
        args,
        min,
        ret,
        body: Arc::new(body),
    })
}

pub(crate) fn ints(a: &ArrayRef) -> &Int32Array {
    a.as_primitive::<Int32Type>()
}
pub(crate) fn longs(a: &ArrayRef) -> &Int64Array {
    a.as_primitive::<Int64Type>()
}
pub(crate) fn strs(a: &ArrayRef) -> &StringArray {
    a.as_string::<i32>()
}

/// A text function of one oid argument.
pub(crate) fn by_oid(
    f: impl Fn(i32) -> Option<String>,
) -> impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> {
    move |a, _| {
        let out: StringArray = ints(&a[0]).iter().map(|o| o.and_then(&f)).collect();
        Ok(Arc::new(out) as ArrayRef)
    }
}

/// An oid function of one text argument.
pub(crate) fn by_name(
    f: impl Fn(&str) -> Option<i32>,
) -> impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> {
    move |a, _| {
        let out: Int32Array = strs(&a[0]).iter().map(|s| s.and_then(&f)).collect();
        Ok(Arc::new(out) as ArrayRef)
    }
}

/// A text function of one text argument.
pub(crate) fn text_fn(
    f: impl Fn(&str) -> String,
) -> impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> {
    move |a, _| {
        let out: StringArray = strs(&a[0]).iter().map(|s| s.map(&f)).collect();
        Ok(Arc::new(out) as ArrayRef)
    }
}

pub(crate) fn constant_text(v: Option<String>) -> impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> {
    move |_, n| Ok(Arc::new(StringArray::from(vec![v.clone(); n])) as ArrayRef)
}
pub(crate) fn constant_bool(v: Option<bool>) -> impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> {
    move |_, n| Ok(Arc::new(BooleanArray::from(vec![v; n])) as ArrayRef)
}
pub(crate) fn constant_int(v: Option<i32>) -> impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> {
    move |_, n| Ok(Arc::new(Int32Array::from(vec![v; n])) as ArrayRef)
}
pub(crate) fn constant_long(v: Option<i64>) -> impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> {
    move |_, n| Ok(Arc::new(Int64Array::from(vec![v; n])) as ArrayRef)
}

/// Every function, for this snapshot.
pub(crate) fn udfs(s: &Arc<Snapshot>) -> Vec<ScalarUDF> {
    let mut out = vec![
        udf("format_type", "o o", 2, T, |a, _| {
            let (oids, mods) = (ints(&a[0]), ints(&a[1]));
            let out: StringArray = (0..oids.len())
                .map(|i| {
                    if oids.is_null(i) {
                        return None;
                    }
                    let m = (!mods.is_null(i)).then(|| mods.value(i));
                    Some(format_type(oids.value(i), m).unwrap_or_else(|| "???".into()))
                })
                .collect();
            Ok(Arc::new(out))
        }),
        udf(
            "pg_encoding_to_char",
            "o",
            1,
            T,
            by_oid(|e| {
                Some(match e {
                    0 => "SQL_ASCII".into(),
                    6 => "UTF8".into(),
                    _ => String::new(),
                })
            }),
        ),
        udf("version", "", 0, T, constant_text(Some(VERSION.into()))),
        udf("pg_backend_pid", "", 0, I32, move |_, n| {
            let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
            Ok(Arc::new(Int32Array::from(vec![pid; n])))
        }),
        udf("quote_ident", "t", 1, T, text_fn(quote_ident)),
        udf(
            "quote_literal",
            "t",
            1,
            T,
            text_fn(|s| format!("'{}'", s.replace('\'', "''"))),
        ),
        udf("pg_size_pretty", "l", 1, T, |a, _| {
            let out: StringArray = longs(&a[0]).iter().map(|v| v.map(size_pretty)).collect();
            Ok(Arc::new(out))
        }),
        udf("array_to_string", "* t t", 2, T, |a, _| {
            let seps = strs(&a[1]);
            let nulls = a.get(2).map(strs);
            let out: StringArray = (0..a[0].len())
                .map(|i| {
                    let elems = elements(&a[0], i)?;
                    let sep = seps.is_valid(i).then(|| seps.value(i))?;
                    let null = nulls.and_then(|n| n.is_valid(i).then(|| n.value(i)));
                    let parts: Vec<&str> =
                        elems.iter().filter_map(|e| e.as_deref().or(null)).collect();
                    Some(parts.join(sep))
                })
                .collect();
            Ok(Arc::new(out))
        }),
        udf("array_upper", "* l", 2, I64, |a, _| {
            array_bound(a, |len| (len > 0).then_some(len as i64))
        }),
        udf("array_lower", "* l", 2, I64, |a, _| {
            array_bound(a, |len| (len > 0).then_some(1))
        }),
        udf("array_length", "* l", 2, I64, |a, _| {
            array_bound(a, |len| (len > 0).then_some(len as i64))
        }),
        udf("pg_array_quote", "t", 1, T, |a, _| {
            let out: StringArray = strs(&a[0]).iter().map(|e| Some(quote_element(e))).collect();
            Ok(Arc::new(out))
        }),
        udf_ret("pg_array_element", "* l", 2, Ret::Element, array_element),
        udf("pg_array_contains", "* *", 2, B, array_contains),
    ];
    let text_nulls: &[(&'static str, &str, usize)] = &[
        ("pg_get_partkeydef", "o", 1),
        ("pg_get_statisticsobjdef_columns", "o", 1),
        ("pg_get_function_result", "o", 1),
        ("pg_get_function_arguments", "o", 1),
        ("pg_get_function_identity_arguments", "o", 1),
        ("pg_get_triggerdef", "o b", 1),
        ("pg_get_ruledef", "o b", 1),
        ("pg_get_serial_sequence", "t t", 2),
        ("obj_description", "o t", 1),
        ("col_description", "o o", 2),
        ("shobj_description", "o t", 2),
        ("inet_server_addr", "", 0),
        ("inet_client_addr", "", 0),
    ];
    for (name, args, min) in text_nulls {
        out.push(udf(name, args, *min, T, constant_text(None)));
    }
    for name in ["inet_server_port", "inet_client_port"] {
        out.push(udf(name, "", 0, I32, constant_int(None)));
    }
    out.push(udf("pg_my_temp_schema", "", 0, I32, constant_int(Some(0))));
    out.push(udf("txid_current", "", 0, I64, constant_long(Some(1))));
    out.push(udf(
        "pg_stat_get_numscans",
        "o",
        1,
        I64,
        constant_long(Some(0)),
    ));
    out.push(udf(
        "pg_tablespace_location",
        "o",
        1,
        T,
        constant_text(Some(String::new())),
    ));
    out.push(udf(
        "pg_is_in_recovery",
        "",
        0,
        B,
        constant_bool(Some(false)),
    ));
    for (name, value) in [
        ("pg_relation_is_publishable", false),
        ("pg_is_other_temp_schema", false),
        ("pg_type_is_visible", true),
        ("pg_function_is_visible", true),
        ("pg_collation_is_visible", true),
        ("pg_opclass_is_visible", true),
        ("pg_operator_is_visible", true),
        ("pg_conversion_is_visible", true),
        ("pg_ts_config_is_visible", true),
        ("pg_ts_dict_is_visible", true),
        ("pg_ts_parser_is_visible", true),
        ("pg_ts_template_is_visible", true),
        ("pg_statistics_obj_is_visible", true),
    ] {
        out.push(udf(name, "o", 1, B, constant_bool(Some(value))));
    }
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
        "has_function_privilege",
        "has_sequence_privilege",
        "has_tablespace_privilege",
        "pg_has_role",
    ] {
        out.push(udf(name, "* * * *", 1, B, constant_bool(Some(true))));
    }
    out.extend(super::lookup::udfs(s));
    out
}

/// `pg_size_pretty`: bytes, kB, MB, GB, TB, rounding as PostgreSQL does.
fn size_pretty(bytes: i64) -> String {
    let limit = 10 * 1024;
    if bytes.abs() < limit {
        return format!("{bytes} bytes");
    }
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    // One extra bit is kept for rounding.
    let mut size = bytes >> 9;
    for unit in ["kB", "MB", "GB"] {
        if size.abs() < limit * 2 - 1 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} TB", half_rounded(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_postgres() {
        assert_eq!(size_pretty(8192), "8192 bytes");
        assert_eq!(size_pretty(10 * 1024), "10 kB");
        assert_eq!(size_pretty(1_000_000), "977 kB");
        assert_eq!(size_pretty(123_456_789), "118 MB");
    }
}
