//! What clients call that this DataFusion build lacks (it is built without
//! its string functions): `lower`, `upper`, `length`, `replace`,
//! `substring`, `now`, registered only where the context has none, and the
//! `pg_get_keywords()` table function.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Int32Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

use super::functions::{longs, strs, text_fn, udf};
use super::tables::{mem_table, Def, V};

/// The string functions, for those names `ctx` does not have.
pub(crate) fn register(ctx: &SessionContext) {
    let state = ctx.state();
    let have = state.scalar_functions();
    for f in string_udfs() {
        if !have.contains_key(f.name()) {
            ctx.register_udf(f);
        }
    }
    ctx.register_udtf("pg_get_keywords", Arc::new(Keywords));
}

fn string_udfs() -> Vec<ScalarUDF> {
    use DataType::{Int32 as I32, Utf8 as T};
    let tstz = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
    let mut out = vec![
        udf("lower", "t", 1, T, text_fn(str::to_lowercase)),
        udf("upper", "t", 1, T, text_fn(str::to_uppercase)),
        udf("replace", "t t t", 3, T, |a, _| {
            let (s, from, to) = (strs(&a[0]), strs(&a[1]), strs(&a[2]));
            let out: StringArray = (0..s.len())
                .map(|i| {
                    let (s, f, t) = (s.is_valid(i), from.is_valid(i), to.is_valid(i));
                    (s && f && t).then_some(i)
                })
                .map(|i| {
                    i.map(|i| {
                        let f = from.value(i);
                        if f.is_empty() {
                            s.value(i).to_string()
                        } else {
                            s.value(i).replace(f, to.value(i))
                        }
                    })
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        }),
    ];
    for name in [
        "now",
        "current_timestamp",
        "transaction_timestamp",
        "statement_timestamp",
    ] {
        out.push(udf(name, "", 0, tstz.clone(), |_, n| {
            let out =
                TimestampMicrosecondArray::from(vec![micros_now(); n]).with_timezone("+00:00");
            Ok(Arc::new(out) as ArrayRef)
        }));
    }
    out.push(udf("current_date", "", 0, DataType::Date32, |_, n| {
        let days = i32::try_from(micros_now() / 86_400_000_000).unwrap_or(0);
        Ok(Arc::new(Date32Array::from(vec![days; n])) as ArrayRef)
    }));
    for name in ["length", "char_length", "character_length"] {
        out.push(udf(name, "t", 1, I32, |a, _| {
            let out: Int32Array = strs(&a[0])
                .iter()
                .map(|s| s.map(|s| i32::try_from(s.chars().count()).unwrap_or(i32::MAX)))
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        }));
    }
    for name in ["substr", "substring"] {
        out.push(udf(name, "t l l", 2, T, |a, _| {
            let (s, from) = (strs(&a[0]), longs(&a[1]));
            let count = a.get(2).map(longs);
            let out: StringArray = (0..s.len())
                .map(|i| {
                    if !s.is_valid(i) || !from.is_valid(i) {
                        return None;
                    }
                    // 1-based start; characters before 1 count against the length.
                    let start = from.value(i);
                    let end = match count {
                        Some(c) if !c.is_valid(i) => return None,
                        Some(c) => Some(start.saturating_add(c.value(i).max(0))),
                        None => None,
                    };
                    let first = start.max(1);
                    Some(
                        s.value(i)
                            .chars()
                            .enumerate()
                            .map(|(k, ch)| (k as i64 + 1, ch))
                            .filter(|(k, _)| *k >= first && end.is_none_or(|e| *k < e))
                            .map(|(_, ch)| ch)
                            .collect::<String>(),
                    )
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        }));
    }
    out
}

fn micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `pg_get_keywords()`: sqlparser's keywords, all reported unreserved.
#[derive(Debug)]
struct Keywords;

const KEYWORDS: Def = Def {
    name: "pg_get_keywords",
    view: false,
    spec: "word:t catcode:c barelabel:b catdesc:t baredesc:t",
};

impl TableFunctionImpl for Keywords {
    fn call_with_args(&self, _args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let rows: Vec<Vec<V>> = ALL_KEYWORDS
            .iter()
            .map(|k| {
                vec![
                    k.to_ascii_lowercase().into(),
                    'U'.into(),
                    true.into(),
                    "unreserved".into(),
                    "can be bare label".into(),
                ]
            })
            .collect();
        Ok(Arc::new(mem_table(&KEYWORDS, &rows)?))
    }
}
