//! What the catalogs describe, taken from a SessionContext at `register`
//! time: schemas, relations with their columns, and indexes (primary and
//! unique keys declared on the tables), each with its oid.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use datafusion::catalog::TableProvider;
use datafusion::common::Constraint;
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

use super::tables::{self, DEFS};
use super::types::pg_type_of;
use super::{FIRST_USER_OID, INFORMATION_SCHEMA_OID, PG_CATALOG_OID, PUBLIC_OID};

/// Everything the catalogs and the catalog functions describe.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub database: String,
    pub user: String,
    /// The default schema (first and only search_path entry after
    /// pg_catalog); its oid is [`PUBLIC_OID`].
    pub default_schema: String,
    pub namespaces: Vec<Namespace>,
    pub relations: Vec<Relation>,
    pub indexes: Vec<Index>,
}

#[derive(Debug)]
pub(crate) struct Namespace {
    pub oid: i32,
    pub name: String,
}

#[derive(Debug)]
pub(crate) struct Relation {
    pub oid: i32,
    pub namespace: i32,
    pub schema: String,
    pub name: String,
    /// `relkind`: 'r' table, 'v' view.
    pub kind: char,
    /// `relpersistence`: 'p' permanent, 't' temporary.
    pub persistence: char,
    pub columns: Vec<Column>,
    /// A view's defining SQL, when the provider knows it.
    pub definition: Option<String>,
    /// Row count and size in bytes, when the provider's statistics are exact.
    pub rows: Option<usize>,
    pub bytes: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Column {
    pub name: String,
    pub type_oid: i32,
    pub typmod: i32,
    pub not_null: bool,
}

#[derive(Debug)]
pub(crate) struct Index {
    pub oid: i32,
    /// The constraint (primary key or unique) the index implements.
    pub constraint_oid: i32,
    pub name: String,
    pub table_oid: i32,
    /// 1-based column numbers.
    pub columns: Vec<i16>,
    pub primary: bool,
}

impl Snapshot {
    pub fn relation(&self, oid: i32) -> Option<&Relation> {
        self.relations.iter().find(|r| r.oid == oid)
    }

    pub fn index(&self, oid: i32) -> Option<&Index> {
        self.indexes.iter().find(|i| i.oid == oid)
    }

    pub fn namespace(&self, oid: i32) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.oid == oid)
    }

    /// Whether an unqualified name finds this schema's objects (pg_catalog
    /// and the default schema are on the search path).
    pub fn on_path(&self, namespace: i32) -> bool {
        namespace == PG_CATALOG_OID || namespace == PUBLIC_OID
    }

    /// A relation (or index) by name as `regclass` input takes it:
    /// `name`, `schema.name`, quoted parts, or a number.
    pub fn relation_oid(&self, text: &str) -> Option<i32> {
        let text = text.trim();
        if let Ok(oid) = text.parse::<i32>() {
            return Some(oid);
        }
        let parts = split_name(text);
        let (schema, name) = match parts.as_slice() {
            [name] => (None, name.as_str()),
            [schema, name] => (Some(schema.as_str()), name.as_str()),
            [_, schema, name] => (Some(schema.as_str()), name.as_str()),
            _ => return None,
        };
        let candidates = self
            .relations
            .iter()
            .map(|r| (r.oid, r.namespace, &r.schema, &r.name))
            .chain(self.indexes.iter().filter_map(|i| {
                let t = self.relation(i.table_oid)?;
                Some((i.oid, t.namespace, &t.schema, &i.name))
            }));
        let mut best: Option<(i32, i32)> = None;
        for (oid, ns, s, n) in candidates {
            if n != name {
                continue;
            }
            match schema {
                Some(schema) if s == schema => return Some(oid),
                Some(_) => {}
                // pg_catalog first, then the default schema.
                None if ns == PG_CATALOG_OID => return Some(oid),
                None if ns == PUBLIC_OID => best = Some((oid, ns)),
                None => {}
            }
        }
        best.map(|(oid, _)| oid)
    }

    /// `oid::regclass` as text: the name, schema-qualified (and quoted where
    /// needed) when the search path would not find it; the number if unknown.
    pub fn relation_name(&self, oid: i32) -> String {
        let found = self
            .relation(oid)
            .map(|r| (r.namespace, r.schema.as_str(), r.name.as_str()))
            .or_else(|| {
                let i = self.index(oid)?;
                let t = self.relation(i.table_oid)?;
                Some((t.namespace, t.schema.as_str(), i.name.as_str()))
            });
        match found {
            Some((ns, _, name)) if self.on_path(ns) => quote_ident(name),
            Some((_, schema, name)) => format!("{}.{}", quote_ident(schema), quote_ident(name)),
            None => oid.to_string(),
        }
    }
}

/// Split `a."B c".d` into its parts, unquoting and lowercasing as
/// PostgreSQL does.
fn split_name(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c if quoted => cur.push(c),
            c => cur.push(c.to_ascii_lowercase()),
        }
    }
    parts.push(cur);
    parts
}

/// `quote_ident`: quoted unless a plain lowercase identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// PostgreSQL's oids for the catalogs clients name as `'pg_class'::regclass`.
const CATALOG_OIDS: &[(&str, i32)] = &[
    ("pg_am", 2601),
    ("pg_attrdef", 2604),
    ("pg_attribute", 1249),
    ("pg_auth_members", 1261),
    ("pg_class", 1259),
    ("pg_collation", 3456),
    ("pg_constraint", 2606),
    ("pg_database", 1262),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_enum", 3501),
    ("pg_event_trigger", 3466),
    ("pg_extension", 3079),
    ("pg_foreign_table", 3118),
    ("pg_index", 2610),
    ("pg_inherits", 2611),
    ("pg_language", 2612),
    ("pg_namespace", 2615),
    ("pg_partitioned_table", 3350),
    ("pg_policy", 3256),
    ("pg_proc", 1255),
    ("pg_publication", 6104),
    ("pg_publication_namespace", 6237),
    ("pg_publication_rel", 6106),
    ("pg_rewrite", 2618),
    ("pg_sequence", 2224),
    ("pg_shdescription", 2396),
    ("pg_statistic_ext", 3381),
    ("pg_tablespace", 1213),
    ("pg_trigger", 2620),
    ("pg_type", 1247),
];

/// Poll a future that is ready at once (in-memory catalogs); None if not.
fn now<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Describe `ctx`'s default catalog.
pub(crate) fn collect(ctx: &SessionContext, database: &str, user: &str) -> Result<Snapshot> {
    let config = ctx.copied_config();
    let options = config.options();
    let catalog_name = &options.catalog.default_catalog;
    let default_schema = options.catalog.default_schema.clone();
    let catalog = ctx.catalog(catalog_name).ok_or_else(|| {
        DataFusionError::Plan(format!("default catalog {catalog_name} is not registered"))
    })?;

    let mut found: Vec<(String, String, Arc<dyn TableProvider>)> = Vec::new();
    let mut schema_names = catalog.schema_names();
    schema_names.sort();
    for schema_name in &schema_names {
        if schema_name == "pg_catalog" || schema_name == "information_schema" {
            continue;
        }
        let Some(schema) = catalog.schema(schema_name) else {
            continue;
        };
        for table in schema.table_names() {
            // A provider that needs real I/O to open is left out.
            if let Some(Ok(Some(provider))) = now(schema.table(&table)) {
                found.push((schema_name.clone(), table, provider));
            }
        }
    }
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));

    let mut namespaces = vec![
        Namespace {
            oid: PG_CATALOG_OID,
            name: "pg_catalog".into(),
        },
        Namespace {
            oid: PUBLIC_OID,
            name: default_schema.clone(),
        },
        Namespace {
            oid: INFORMATION_SCHEMA_OID,
            name: "information_schema".into(),
        },
    ];
    let mut next_oid = FIRST_USER_OID;
    let mut relations = Vec::new();
    let mut providers = Vec::new();
    for (schema, name, provider) in found {
        relations.push(user_relation(next_oid, schema, name, provider.as_ref()));
        providers.push(provider);
        next_oid += 1;
    }
    let mut indexes = Vec::new();
    for (rel, provider) in relations.iter_mut().zip(&providers) {
        for constraint in provider.constraints().into_iter().flat_map(|c| c.iter()) {
            let (primary, cols) = match constraint {
                Constraint::PrimaryKey(cols) => (true, cols),
                Constraint::Unique(cols) => (false, cols),
            };
            let names: Vec<String> = cols
                .iter()
                .filter_map(|i| rel.columns.get(*i).map(|c| c.name.clone()))
                .collect();
            if primary {
                for i in cols {
                    if let Some(c) = rel.columns.get_mut(*i) {
                        c.not_null = true;
                    }
                }
            }
            let name = if primary {
                format!("{}_pkey", rel.name)
            } else {
                format!("{}_{}_key", rel.name, names.join("_"))
            };
            indexes.push(Index {
                oid: next_oid,
                constraint_oid: next_oid + 1,
                name,
                table_oid: rel.oid,
                columns: cols
                    .iter()
                    .map(|i| i16::try_from(*i + 1).unwrap_or(i16::MAX))
                    .collect(),
                primary,
            });
            next_oid += 2;
        }
    }
    for schema_name in &schema_names {
        if namespaces.iter().any(|n| &n.name == schema_name) {
            continue;
        }
        namespaces.push(Namespace {
            oid: next_oid,
            name: schema_name.clone(),
        });
        next_oid += 1;
    }
    for rel in &mut relations {
        rel.namespace = namespaces
            .iter()
            .find(|n| n.name == rel.schema)
            .map(|n| n.oid)
            .unwrap_or(PUBLIC_OID);
    }
    relations.extend(catalog_relations());

    Ok(Snapshot {
        database: database.to_string(),
        user: user.to_string(),
        default_schema,
        namespaces,
        relations,
        indexes,
    })
}

fn user_relation(oid: i32, schema: String, name: String, provider: &dyn TableProvider) -> Relation {
    let columns = provider
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let (type_oid, typmod) = pg_type_of(f.data_type());
            Column {
                name: f.name().clone(),
                type_oid,
                typmod,
                not_null: !f.is_nullable(),
            }
        })
        .collect();
    let stats = provider.statistics();
    // In-memory tables: count rows and bytes directly.
    let in_memory = provider.downcast_ref::<MemTable>().and_then(|m| {
        let (mut rows, mut bytes) = (0, 0);
        for partition in &m.batches {
            for batch in partition.try_read().ok()?.iter() {
                rows += batch.num_rows();
                bytes += batch.get_array_memory_size();
            }
        }
        Some((rows, bytes))
    });
    let exact = |p: &datafusion::common::stats::Precision<usize>| match p {
        datafusion::common::stats::Precision::Exact(v) => Some(*v),
        _ => None,
    };
    let table_type = provider.table_type();
    Relation {
        oid,
        namespace: PUBLIC_OID,
        schema,
        name,
        kind: if table_type == TableType::View {
            'v'
        } else {
            'r'
        },
        persistence: if table_type == TableType::Temporary {
            't'
        } else {
            'p'
        },
        columns,
        definition: provider.get_table_definition().map(str::to_string),
        rows: in_memory
            .map(|m| m.0)
            .or_else(|| stats.as_ref().and_then(|s| exact(&s.num_rows))),
        bytes: in_memory
            .map(|m| m.1)
            .or_else(|| stats.as_ref().and_then(|s| exact(&s.total_byte_size))),
    }
}

/// The pg_catalog relations themselves, so `\d pg_class` and
/// `'pg_class'::regclass` work.
fn catalog_relations() -> Vec<Relation> {
    let mut extra = 12_000;
    DEFS.iter()
        .map(|def| {
            let oid = CATALOG_OIDS
                .iter()
                .find(|(n, _)| *n == def.name)
                .map(|(_, o)| *o)
                .unwrap_or_else(|| {
                    extra += 1;
                    extra
                });
            Relation {
                oid,
                namespace: PG_CATALOG_OID,
                schema: "pg_catalog".into(),
                name: def.name.into(),
                kind: if def.view { 'v' } else { 'r' },
                persistence: 'p',
                columns: tables::columns(def.spec)
                    .map(|(name, type_oid, _)| Column {
                        name: name.into(),
                        type_oid,
                        typmod: -1,
                        not_null: false,
                    })
                    .collect(),
                definition: None,
                rows: None,
                bytes: None,
            }
        })
        .collect()
}
