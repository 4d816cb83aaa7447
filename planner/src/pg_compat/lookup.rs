//! The functions that read the catalog snapshot: the session's user,
//! database and search path, visibility, definitions of indexes,
//! constraints and views, sizes, and the lookups the rewriter turns
//! `::regclass` / `::regtype` / `::regnamespace` / `::regrole` casts into.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType::{Boolean as B, Int32 as I32, Int64 as I64, Utf8 as T};
use datafusion::logical_expr::ScalarUDF;

use super::functions::{by_name, by_oid, constant_text, ints, strs, udf};
use super::rows::{constraint_def, index_def};
use super::snapshot::{quote_ident, Snapshot};
use super::types::type_oid_by_name;
use super::{setting_value, OWNER_OID};

/// The functions that read the snapshot.
pub(crate) fn udfs(s: &Arc<Snapshot>) -> Vec<ScalarUDF> {
    let user = s.user.clone();
    let database = s.database.clone();
    let schema = s.default_schema.clone();
    let mut out = Vec::new();
    for name in [
        "current_user",
        "session_user",
        "user",
        "current_role",
        "getpgusername",
    ] {
        out.push(udf(name, "", 0, T, constant_text(Some(user.clone()))));
    }
    for name in ["current_database", "current_catalog"] {
        out.push(udf(name, "", 0, T, constant_text(Some(database.clone()))));
    }
    out.push(udf(
        "current_schema",
        "",
        0,
        T,
        constant_text(Some(schema.clone())),
    ));
    let path = schema.clone();
    out.push(udf("current_schemas", "b", 1, T, move |a, _| {
        let out: StringArray = a[0]
            .as_boolean()
            .iter()
            .map(|implicit| {
                implicit.map(|i| match i {
                    true => format!("{{pg_catalog,{}}}", quote_ident(&path)),
                    false => format!("{{{}}}", quote_ident(&path)),
                })
            })
            .collect();
        Ok(Arc::new(out))
    }));
    let u = user.clone();
    out.push(udf(
        "pg_get_userbyid",
        "o",
        1,
        T,
        by_oid(move |oid| {
            Some(if oid == OWNER_OID {
                u.clone()
            } else {
                format!("unknown (OID={oid})")
            })
        }),
    ));
    let u = user.clone();
    out.push(udf("current_setting", "t b", 1, T, move |a, _| {
        let out: StringArray = strs(&a[0])
            .iter()
            .map(|n| n.and_then(|n| setting_value(n, &u)))
            .collect();
        Ok(Arc::new(out))
    }));
    out.push(udf("set_config", "t t b", 3, T, |a, _| Ok(a[1].clone())));
    let sn = s.clone();
    out.push(udf("pg_table_is_visible", "o", 1, B, move |a, _| {
        let out: BooleanArray = ints(&a[0])
            .iter()
            .map(|oid| {
                let oid = oid?;
                let rel = sn.relation(oid).map(|r| r.namespace).or_else(|| {
                    let i = sn.index(oid)?;
                    sn.relation(i.table_oid).map(|r| r.namespace)
                });
                Some(rel.is_some_and(|ns| sn.on_path(ns)))
            })
            .collect();
        Ok(Arc::new(out))
    }));
    out.push(udf("pg_get_expr", "t o b", 2, T, |a, _| Ok(a[0].clone())));
    let sn = s.clone();
    out.push(udf("pg_get_indexdef", "o o b", 1, T, move |a, _| {
        let oids = ints(&a[0]);
        let cols = a.get(1).map(ints);
        let out: StringArray = (0..oids.len())
            .map(|i| {
                let oid = oids.is_valid(i).then(|| oids.value(i))?;
                match cols
                    .map(|c| if c.is_valid(i) { c.value(i) } else { 0 })
                    .unwrap_or(0)
                {
                    0 => index_def(&sn, oid),
                    col => {
                        let idx = sn.index(oid)?;
                        let n = *idx.columns.get(usize::try_from(col - 1).ok()?)?;
                        let t = sn.relation(idx.table_oid)?;
                        Some(quote_ident(&t.columns.get((n - 1) as usize)?.name))
                    }
                }
            })
            .collect();
        Ok(Arc::new(out))
    }));
    let sn = s.clone();
    out.push(udf(
        "pg_get_constraintdef",
        "o b",
        1,
        T,
        by_oid(move |oid| constraint_def(&sn, oid)),
    ));
    let sn = s.clone();
    out.push(udf(
        "pg_get_viewdef",
        "o b",
        1,
        T,
        by_oid(move |oid| sn.relation(oid).and_then(|r| r.definition.clone())),
    ));
    for (name, total) in [
        ("pg_relation_size", false),
        ("pg_table_size", false),
        ("pg_total_relation_size", true),
        ("pg_indexes_size", true),
    ] {
        let sn = s.clone();
        let indexes_only = name == "pg_indexes_size";
        out.push(udf(name, "o t", 1, I64, move |a, _| {
            let out: Int64Array = ints(&a[0])
                .iter()
                .map(|oid| {
                    let r = sn.relation(oid?)?;
                    let bytes = r.bytes.unwrap_or(0) as i64;
                    Some(match (indexes_only, total) {
                        (true, _) => 0,
                        _ => bytes,
                    })
                })
                .collect();
            Ok(Arc::new(out))
        }));
    }
    // The casts the rewriter turns `::regclass` and friends into.
    let sn = s.clone();
    for name in ["pg_regclass_oid", "to_regclass"] {
        let sn = sn.clone();
        out.push(udf(name, "t", 1, I32, by_name(move |n| sn.relation_oid(n))));
    }
    out.push(udf(
        "pg_regclass_name",
        "o",
        1,
        T,
        by_oid(move |oid| Some(sn.relation_name(oid))),
    ));
    for name in ["pg_regtype_oid", "to_regtype"] {
        out.push(udf(
            name,
            "t",
            1,
            I32,
            by_name(|n| n.trim().parse::<i32>().ok().or_else(|| type_oid_by_name(n))),
        ));
    }
    for name in ["pg_regnamespace_oid", "to_regnamespace"] {
        let sn = s.clone();
        out.push(udf(
            name,
            "t",
            1,
            I32,
            by_name(move |n| {
                let n = n.trim().trim_matches('"');
                n.parse::<i32>()
                    .ok()
                    .or_else(|| sn.namespaces.iter().find(|x| x.name == n).map(|x| x.oid))
            }),
        ));
    }
    let sn = s.clone();
    out.push(udf(
        "pg_regnamespace_name",
        "o",
        1,
        T,
        by_oid(move |oid| {
            Some(
                sn.namespace(oid)
                    .map(|n| quote_ident(&n.name))
                    .unwrap_or_else(|| oid.to_string()),
            )
        }),
    ));
    let u = user.clone();
    out.push(udf(
        "pg_regrole_oid",
        "t",
        1,
        I32,
        by_name(move |n| {
            let n = n.trim().trim_matches('"');
            n.parse::<i32>().ok().or((n == u).then_some(OWNER_OID))
        }),
    ));
    let u = user;
    out.push(udf(
        "pg_regrole_name",
        "o",
        1,
        T,
        by_oid(move |oid| {
            Some(if oid == OWNER_OID {
                quote_ident(&u)
            } else {
                oid.to_string()
            })
        }),
    ));
    out
}
