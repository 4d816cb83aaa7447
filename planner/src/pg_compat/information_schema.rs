//! A PostgreSQL-flavoured `information_schema` (schemata, tables, columns,
//! views, table_constraints, key_column_usage) with PostgreSQL type names
//! (`bigint`, `numeric`, `character varying`), for ORMs and browsers that
//! read it. Registered only when DataFusion's own information_schema is
//! off: that one shadows any schema of the name and names Arrow types.

use super::snapshot::Snapshot;
use super::tables::{Def, V};
use super::types::{format_type, type_by_oid};

/// The relations, as [`super::tables::DEFS`] are for pg_catalog.
pub(crate) const DEFS: &[Def] = &[
    Def {
        name: "schemata",
        view: true,
        spec: "catalog_name:t schema_name:t schema_owner:t default_character_set_catalog:t \
               default_character_set_schema:t default_character_set_name:t sql_path:t",
    },
    Def {
        name: "tables",
        view: true,
        spec: "table_catalog:t table_schema:t table_name:t table_type:t \
               self_referencing_column_name:t reference_generation:t \
               user_defined_type_catalog:t user_defined_type_schema:t \
               user_defined_type_name:t is_insertable_into:t is_typed:t commit_action:t",
    },
    Def {
        name: "columns",
        view: true,
        spec: "table_catalog:t table_schema:t table_name:t column_name:t ordinal_position:i \
               column_default:t is_nullable:t data_type:t character_maximum_length:i \
               character_octet_length:i numeric_precision:i numeric_precision_radix:i \
               numeric_scale:i datetime_precision:i interval_type:t udt_catalog:t \
               udt_schema:t udt_name:t dtd_identifier:t is_identity:t is_generated:t \
               is_updatable:t",
    },
    Def {
        name: "views",
        view: true,
        spec: "table_catalog:t table_schema:t table_name:t view_definition:t check_option:t \
               is_updatable:t is_insertable_into:t",
    },
    Def {
        name: "table_constraints",
        view: true,
        spec: "constraint_catalog:t constraint_schema:t constraint_name:t table_catalog:t \
               table_schema:t table_name:t constraint_type:t is_deferrable:t \
               initially_deferred:t enforced:t nulls_distinct:t",
    },
    Def {
        name: "key_column_usage",
        view: true,
        spec: "constraint_catalog:t constraint_schema:t constraint_name:t table_catalog:t \
               table_schema:t table_name:t column_name:t ordinal_position:i \
               position_in_unique_constraint:i",
    },
];

fn yes(b: bool) -> V {
    if b { "YES" } else { "NO" }.into()
}

/// The rows of relation `name`.
pub(crate) fn rows(name: &str, s: &Snapshot) -> Vec<Vec<V>> {
    let db = || V::from(s.database.as_str());
    match name {
        "schemata" => s
            .namespaces
            .iter()
            .map(|n| {
                vec![
                    db(),
                    n.name.as_str().into(),
                    s.user.as_str().into(),
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                ]
            })
            .collect(),
        "tables" => s
            .relations
            .iter()
            .map(|r| {
                let kind = if r.kind == 'v' { "VIEW" } else { "BASE TABLE" };
                vec![
                    db(),
                    r.schema.as_str().into(),
                    r.name.as_str().into(),
                    kind.into(),
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    yes(r.kind == 'r'),
                    yes(false),
                    V::Null,
                ]
            })
            .collect(),
        "columns" => s
            .relations
            .iter()
            .flat_map(|r| r.columns.iter().enumerate().map(move |(i, c)| (r, i, c)))
            .map(|(r, i, c)| {
                let t = type_by_oid(c.type_oid);
                let udt = t.map(|t| t.name).unwrap_or("text");
                let data_type = match t {
                    Some(t) if t.category == 'A' => "ARRAY".to_string(),
                    Some(t) if t.name == "bpchar" => "character".to_string(),
                    _ => format_type(c.type_oid, None).unwrap_or_else(|| udt.to_string()),
                };
                let m = (c.typmod >= 0).then_some(c.typmod);
                let (precision, radix, scale) = match udt {
                    "int2" => (Some(16), Some(2), Some(0)),
                    "int4" => (Some(32), Some(2), Some(0)),
                    "int8" => (Some(64), Some(2), Some(0)),
                    "float4" => (Some(24), Some(2), None),
                    "float8" => (Some(53), Some(2), None),
                    "numeric" => (
                        m.map(|m| ((m - 4) >> 16) & 0xffff),
                        Some(10),
                        m.map(|m| (m - 4) & 0xffff),
                    ),
                    _ => (None, None, None),
                };
                let chars = match udt {
                    "varchar" | "bpchar" => m.map(|m| m - 4),
                    _ => None,
                };
                let datetime = matches!(udt, "date" | "time" | "timestamp" | "timestamptz")
                    .then_some(if udt == "date" { 0 } else { 6 });
                vec![
                    db(),
                    r.schema.as_str().into(),
                    r.name.as_str().into(),
                    c.name.as_str().into(),
                    V::I(i as i64 + 1),
                    V::Null,
                    yes(!c.not_null),
                    data_type.into(),
                    chars.into(),
                    V::Null,
                    precision.into(),
                    radix.into(),
                    scale.into(),
                    datetime.into(),
                    V::Null,
                    db(),
                    "pg_catalog".into(),
                    udt.into(),
                    V::I(i as i64 + 1).into_text(),
                    yes(false),
                    "NEVER".into(),
                    yes(r.kind == 'r'),
                ]
            })
            .collect(),
        "views" => s
            .relations
            .iter()
            .filter(|r| r.kind == 'v')
            .map(|r| {
                vec![
                    db(),
                    r.schema.as_str().into(),
                    r.name.as_str().into(),
                    r.definition.as_deref().into(),
                    "NONE".into(),
                    yes(false),
                    yes(false),
                ]
            })
            .collect(),
        "table_constraints" => s
            .indexes
            .iter()
            .filter_map(|i| {
                let t = s.relation(i.table_oid)?;
                let kind = if i.primary { "PRIMARY KEY" } else { "UNIQUE" };
                Some(vec![
                    db(),
                    t.schema.as_str().into(),
                    i.name.as_str().into(),
                    db(),
                    t.schema.as_str().into(),
                    t.name.as_str().into(),
                    kind.into(),
                    yes(false),
                    yes(false),
                    yes(true),
                    yes(true),
                ])
            })
            .collect(),
        "key_column_usage" => s
            .indexes
            .iter()
            .filter_map(|i| Some((i, s.relation(i.table_oid)?)))
            .flat_map(|(i, t)| {
                i.columns.iter().enumerate().filter_map(move |(k, n)| {
                    let c = t.columns.get((*n - 1) as usize)?;
                    Some(vec![
                        db(),
                        t.schema.as_str().into(),
                        i.name.as_str().into(),
                        db(),
                        t.schema.as_str().into(),
                        t.name.as_str().into(),
                        c.name.as_str().into(),
                        V::I(k as i64 + 1),
                        V::Null,
                    ])
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl V {
    fn into_text(self) -> V {
        match self {
            V::I(i) => V::T(i.to_string()),
            other => other,
        }
    }
}
