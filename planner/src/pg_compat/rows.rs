//! The rows of each `pg_catalog` relation, from a [`Snapshot`]. Relations
//! not listed here are empty (see [`super::tables::ALWAYS_EMPTY`]).

use super::snapshot::{quote_ident, Relation, Snapshot};
use super::tables::V;
use super::types::{all_types, type_by_oid};
use super::{setting_value, DATABASE_OID, OWNER_OID, PG_CATALOG_OID, PUBLIC_OID, SETTINGS};

const HEAP: i32 = 2;
const BTREE: i32 = 403;
const DEFAULT_TABLESPACE: i32 = 1663;

/// The rows of catalog relation `name`.
pub(crate) fn rows(name: &str, s: &Snapshot) -> Vec<Vec<V>> {
    match name {
        "pg_am" => vec![
            vec![
                HEAP.into(),
                "heap".into(),
                "heap_tableam_handler".into(),
                't'.into(),
            ],
            vec![BTREE.into(), "btree".into(), "bthandler".into(), 'i'.into()],
            vec![405.into(), "hash".into(), "hashhandler".into(), 'i'.into()],
        ],
        "pg_attribute" => pg_attribute(s),
        "pg_class" => pg_class(s),
        "pg_collation" => [
            (100, "default", 'd', ""),
            (950, "C", 'c', "C"),
            (951, "POSIX", 'c', "POSIX"),
        ]
        .into_iter()
        .map(|(oid, name, provider, locale)| {
            let locale = (!locale.is_empty()).then_some(locale);
            let encoding = if provider == 'd' { -1 } else { 6 };
            vec![
                oid.into(),
                name.into(),
                PG_CATALOG_OID.into(),
                OWNER_OID.into(),
                provider.into(),
                true.into(),
                encoding.into(),
                locale.into(),
                locale.into(),
                V::Null,
                V::Null,
            ]
        })
        .collect(),
        "pg_constraint" => s
            .indexes
            .iter()
            .map(|i| {
                let ns = s
                    .relation(i.table_oid)
                    .map(|r| r.namespace)
                    .unwrap_or(PUBLIC_OID);
                let keys = format!("{{{}}}", join(&i.columns, ","));
                vec![
                    i.constraint_oid.into(),
                    i.name.as_str().into(),
                    ns.into(),
                    if i.primary { 'p' } else { 'u' }.into(),
                    false.into(),
                    false.into(),
                    true.into(),
                    i.table_oid.into(),
                    0.into(),
                    i.oid.into(),
                    0.into(),
                    0.into(),
                    ' '.into(),
                    ' '.into(),
                    ' '.into(),
                    true.into(),
                    0.into(),
                    true.into(),
                    keys.into(),
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                ]
            })
            .collect(),
        "pg_database" => vec![vec![
            DATABASE_OID.into(),
            s.database.as_str().into(),
            OWNER_OID.into(),
            6.into(),
            'c'.into(),
            false.into(),
            true.into(),
            (-1).into(),
            716.into(),
            1.into(),
            DEFAULT_TABLESPACE.into(),
            "C.UTF-8".into(),
            "C.UTF-8".into(),
            V::Null,
            V::Null,
            V::Null,
        ]],
        "pg_index" => s
            .indexes
            .iter()
            .map(|i| {
                let n = i.columns.len() as i64;
                let ones = vec!["0"; i.columns.len()].join(" ");
                let t = |b: bool| V::B(b);
                vec![
                    i.oid.into(),
                    i.table_oid.into(),
                    V::I(n),
                    V::I(n),
                    t(true),
                    t(false),
                    t(i.primary),
                    t(false),
                    t(true),
                    t(false),
                    t(true),
                    t(false),
                    t(true),
                    t(true),
                    t(false),
                    join(&i.columns, " ").into(),
                    ones.as_str().into(),
                    ones.as_str().into(),
                    ones.as_str().into(),
                    V::Null,
                    V::Null,
                ]
            })
            .collect(),
        "pg_indexes" => s
            .indexes
            .iter()
            .filter_map(|i| {
                let t = s.relation(i.table_oid)?;
                Some(vec![
                    t.schema.as_str().into(),
                    t.name.as_str().into(),
                    i.name.as_str().into(),
                    V::Null,
                    index_def(s, i.oid)?.into(),
                ])
            })
            .collect(),
        "pg_language" => [(12, "internal"), (13, "c"), (14, "sql")]
            .into_iter()
            .map(|(oid, name)| {
                vec![
                    oid.into(),
                    name.into(),
                    OWNER_OID.into(),
                    false.into(),
                    (oid == 14).into(),
                    0.into(),
                    0.into(),
                    0.into(),
                    V::Null,
                ]
            })
            .collect(),
        "pg_namespace" => s
            .namespaces
            .iter()
            .map(|n| {
                vec![
                    n.oid.into(),
                    n.name.as_str().into(),
                    OWNER_OID.into(),
                    V::Null,
                ]
            })
            .collect(),
        "pg_roles" => vec![vec![
            s.user.as_str().into(),
            true.into(),
            true.into(),
            true.into(),
            true.into(),
            true.into(),
            true.into(),
            (-1).into(),
            "********".into(),
            V::Null,
            true.into(),
            V::Null,
            OWNER_OID.into(),
        ]],
        "pg_settings" => SETTINGS
            .iter()
            .map(|st| {
                let value = setting_value(st.name, &s.user).unwrap_or_default();
                let vartype = if value.parse::<i64>().is_ok() {
                    "integer"
                } else if value == "on" || value == "off" {
                    "bool"
                } else {
                    "string"
                };
                vec![
                    st.name.into(),
                    value.as_str().into(),
                    V::Null,
                    st.category.into(),
                    st.description.into(),
                    V::Null,
                    "user".into(),
                    vartype.into(),
                    "default".into(),
                    V::Null,
                    V::Null,
                    V::Null,
                    value.as_str().into(),
                    value.as_str().into(),
                    V::Null,
                    V::Null,
                    false.into(),
                ]
            })
            .collect(),
        "pg_tables" => user_relations(s, 'r')
            .map(|r| {
                let has_index = s.indexes.iter().any(|i| i.table_oid == r.oid);
                vec![
                    r.schema.as_str().into(),
                    r.name.as_str().into(),
                    s.user.as_str().into(),
                    V::Null,
                    has_index.into(),
                    false.into(),
                    false.into(),
                    false.into(),
                ]
            })
            .collect(),
        "pg_tablespace" => [(DEFAULT_TABLESPACE, "pg_default"), (1664, "pg_global")]
            .into_iter()
            .map(|(oid, name)| vec![oid.into(), name.into(), OWNER_OID.into(), V::Null, V::Null])
            .collect(),
        "pg_type" => pg_type(),
        "pg_user" => vec![vec![
            s.user.as_str().into(),
            OWNER_OID.into(),
            true.into(),
            true.into(),
            true.into(),
            true.into(),
            "********".into(),
            V::Null,
            V::Null,
        ]],
        "pg_views" => user_relations(s, 'v')
            .map(|r| {
                vec![
                    r.schema.as_str().into(),
                    r.name.as_str().into(),
                    s.user.as_str().into(),
                    r.definition.as_deref().into(),
                ]
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Relations of a kind outside pg_catalog.
fn user_relations(s: &Snapshot, kind: char) -> impl Iterator<Item = &Relation> {
    s.relations
        .iter()
        .filter(move |r| r.kind == kind && r.namespace != PG_CATALOG_OID)
}

fn join<T: ToString>(items: &[T], sep: &str) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(sep)
}

fn pg_class(s: &Snapshot) -> Vec<Vec<V>> {
    let mut out = Vec::new();
    let class = |oid: i32,
                 name: &str,
                 ns: i32,
                 kind: char,
                 persistence: char,
                 am: i32,
                 natts: usize,
                 has_index: bool,
                 tuples: Option<usize>| {
        let pages = tuples.map(|t| (t / 100 + 1) as i64);
        vec![
            oid.into(),
            name.into(),
            ns.into(),
            0.into(),
            0.into(),
            OWNER_OID.into(),
            am.into(),
            oid.into(),
            0.into(),
            V::from(pages.unwrap_or(0)),
            tuples.map(|t| V::F(t as f64)).unwrap_or(V::F(-1.0)),
            0.into(),
            0.into(),
            has_index.into(),
            false.into(),
            persistence.into(),
            kind.into(),
            V::I(natts as i64),
            0.into(),
            false.into(),
            false.into(),
            false.into(),
            false.into(),
            false.into(),
            true.into(),
            if ns == PG_CATALOG_OID { 'n' } else { 'd' }.into(),
            false.into(),
            0.into(),
            0.into(),
            0.into(),
            V::Null,
            V::Null,
            V::Null,
        ]
    };
    for r in &s.relations {
        let has_index = s.indexes.iter().any(|i| i.table_oid == r.oid);
        let am = if r.kind == 'r' { HEAP } else { 0 };
        out.push(class(
            r.oid,
            &r.name,
            r.namespace,
            r.kind,
            r.persistence,
            am,
            r.columns.len(),
            has_index,
            r.rows,
        ));
    }
    for i in &s.indexes {
        let Some(t) = s.relation(i.table_oid) else {
            continue;
        };
        out.push(class(
            i.oid,
            &i.name,
            t.namespace,
            'i',
            t.persistence,
            BTREE,
            i.columns.len(),
            false,
            t.rows,
        ));
    }
    out
}

fn pg_attribute(s: &Snapshot) -> Vec<Vec<V>> {
    let mut out = Vec::new();
    let attr = |rel: i32, name: &str, type_oid: i32, num: i64, typmod: i32, not_null: bool| {
        let t = type_by_oid(type_oid);
        let len = t.map(|t| t.len).unwrap_or(-1);
        let collation = t.map(|t| t.collation).unwrap_or(0);
        let by_val = (1..=8).contains(&len);
        let storage = if len == -1 { 'x' } else { 'p' };
        let align = match len {
            1 => 'c',
            2 => 's',
            4 => 'i',
            8 => 'd',
            _ => 'i',
        };
        vec![
            rel.into(),
            name.into(),
            type_oid.into(),
            (-1).into(),
            V::I(i64::from(len)),
            V::I(num),
            0.into(),
            (-1).into(),
            typmod.into(),
            by_val.into(),
            align.into(),
            storage.into(),
            "".into(),
            not_null.into(),
            false.into(),
            false.into(),
            "".into(),
            "".into(),
            false.into(),
            true.into(),
            0.into(),
            collation.into(),
            V::Null,
            V::Null,
            V::Null,
            V::Null,
        ]
    };
    for r in &s.relations {
        for (n, c) in r.columns.iter().enumerate() {
            out.push(attr(
                r.oid,
                &c.name,
                c.type_oid,
                n as i64 + 1,
                c.typmod,
                c.not_null,
            ));
        }
    }
    for i in &s.indexes {
        let Some(t) = s.relation(i.table_oid) else {
            continue;
        };
        for (n, col) in i.columns.iter().enumerate() {
            if let Some(c) = t.columns.get((*col - 1) as usize) {
                out.push(attr(
                    i.oid,
                    &c.name,
                    c.type_oid,
                    n as i64 + 1,
                    c.typmod,
                    c.not_null,
                ));
            }
        }
    }
    out
}

fn pg_type() -> Vec<Vec<V>> {
    all_types()
        .iter()
        .map(|t| {
            let by_val = (1..=8).contains(&t.len) && t.category != 'A';
            let align = match t.len {
                1 => 'c',
                2 => 's',
                8 => 'd',
                _ => 'i',
            };
            let subscript = if t.category == 'A' {
                "array_subscript_handler"
            } else {
                "-"
            };
            let output = t.input.replacen("in", "out", 1);
            vec![
                t.oid.into(),
                t.name.into(),
                PG_CATALOG_OID.into(),
                OWNER_OID.into(),
                V::I(i64::from(t.len)),
                by_val.into(),
                t.kind.into(),
                t.category.into(),
                false.into(),
                true.into(),
                ','.into(),
                0.into(),
                subscript.into(),
                t.elem.into(),
                t.array.into(),
                t.input.into(),
                output.into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                align.into(),
                if t.len == -1 { 'x' } else { 'p' }.into(),
                false.into(),
                0.into(),
                (-1).into(),
                0.into(),
                t.collation.into(),
                V::Null,
                V::Null,
                V::Null,
            ]
        })
        .collect()
}

/// `pg_get_indexdef(oid)`: `CREATE UNIQUE INDEX name ON schema.table USING
/// btree (cols)`; with `column` > 0 just that column's name.
pub(crate) fn index_def(s: &Snapshot, oid: i32) -> Option<String> {
    let i = s.index(oid)?;
    let t = s.relation(i.table_oid)?;
    let cols: Vec<String> = i
        .columns
        .iter()
        .filter_map(|n| t.columns.get((*n - 1) as usize))
        .map(|c| quote_ident(&c.name))
        .collect();
    Some(format!(
        "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
        quote_ident(&i.name),
        quote_ident(&t.schema),
        quote_ident(&t.name),
        cols.join(", ")
    ))
}

/// `pg_get_constraintdef(oid)`: `PRIMARY KEY (id)` / `UNIQUE (a, b)`.
pub(crate) fn constraint_def(s: &Snapshot, oid: i32) -> Option<String> {
    let i = s.indexes.iter().find(|i| i.constraint_oid == oid)?;
    let t = s.relation(i.table_oid)?;
    let cols: Vec<String> = i
        .columns
        .iter()
        .filter_map(|n| t.columns.get((*n - 1) as usize))
        .map(|c| quote_ident(&c.name))
        .collect();
    let kind = if i.primary { "PRIMARY KEY" } else { "UNIQUE" };
    Some(format!("{kind} ({})", cols.join(", ")))
}
