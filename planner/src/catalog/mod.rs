//! A snapshot of the upstream's schema: what natural language, the advisor and
//! the engine need to know about tables without asking PostgreSQL each time.
//!
//! The snapshot is plain data ([`Catalog`]), loaded by [`load`] from the
//! queries in [`queries`] through any [`TextQuery`] runner (Helios runs them on
//! the client's own upstream connection, so the snapshot is what that role
//! sees in that database). It is immutable once built; a newer one replaces it.

mod load;
pub mod queries;

use std::collections::HashMap;
use std::fmt;

pub use load::{load, LoadOptions, TextQuery, TextRows};

/// A relation's kind, as `pg_class.relkind` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelationKind {
    Table,
    View,
    MaterializedView,
    PartitionedTable,
    ForeignTable,
}

impl RelationKind {
    pub fn from_relkind(c: &str) -> Option<Self> {
        Some(match c {
            "r" => Self::Table,
            "v" => Self::View,
            "m" => Self::MaterializedView,
            "p" => Self::PartitionedTable,
            "f" => Self::ForeignTable,
            _ => return None,
        })
    }
}

/// A column of a relation.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// The type as `format_type()` prints it: `integer`, `numeric(10,2)`, `text[]`.
    pub data_type: String,
    /// `pg_type.oid` of the column's type.
    pub type_oid: u32,
    pub nullable: bool,
    pub comment: Option<String>,
    /// Most common values of a low-cardinality column (from `pg_stats`), as text.
    pub common_values: Vec<String>,
    /// `pg_stats.n_distinct` (negative: a fraction of the rows), when analyzed.
    pub n_distinct: Option<f64>,
}

/// A foreign key from this relation to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub ref_schema: String,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

/// An index on a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    /// Key columns in order; `None` for an expression.
    pub columns: Vec<Option<String>>,
    pub unique: bool,
    pub primary: bool,
    /// Access method: `btree`, `hash`, `gin`, `gist`, `brin`, ...
    pub method: String,
    /// It has a WHERE clause (a partial index).
    pub partial: bool,
    /// `pg_get_indexdef()`.
    pub definition: String,
}

impl Index {
    /// The plain column it leads with, if it leads with one.
    pub fn leading_column(&self) -> Option<&str> {
        self.columns.first().and_then(|c| c.as_deref())
    }
}

/// Activity and size of a table, from `pg_stat_user_tables` and `pg_class`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableStats {
    /// `pg_class.relpages`: 8 kB pages, as of the last VACUUM/ANALYZE.
    pub pages: f64,
    pub live_rows: f64,
    pub dead_rows: f64,
    /// Rows inserted, updated and deleted since statistics were reset.
    pub inserts: f64,
    pub updates: f64,
    pub deletes: f64,
    /// Rows changed since the table was last analyzed.
    pub modified_since_analyze: f64,
    /// Seconds since the last ANALYZE (manual or automatic); `None`: never.
    pub seconds_since_analyze: Option<f64>,
    pub seq_scans: f64,
    pub index_scans: f64,
}

impl TableStats {
    /// Share of row operations that are writes (0 when idle).
    pub fn write_share(&self) -> f64 {
        let writes = self.inserts + self.updates + self.deletes;
        let reads = self.seq_scans + self.index_scans;
        if writes + reads == 0.0 {
            0.0
        } else {
            writes / (writes + reads)
        }
    }
}

/// A table, view or other relation a query can read.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub kind: RelationKind,
    pub comment: Option<String>,
    /// `pg_class.reltuples` (-1 when never analyzed).
    pub row_estimate: f64,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
    pub indexes: Vec<Index>,
    /// `None` for views, or when not loaded.
    pub stats: Option<TableStats>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn qualified_name(&self) -> QualifiedName {
        QualifiedName {
            schema: self.schema.clone(),
            name: self.name.clone(),
        }
    }
}

/// `schema.name`, each part as stored (case preserved, unquoted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.name)
        )
    }
}

/// Quote an identifier only where PostgreSQL would need it.
pub fn quote_ident(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !queries::is_reserved_keyword(s);
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// The schema of one database as one role sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub database: String,
    /// The loading session's effective search_path, in order (`$user` resolved).
    pub search_path: Vec<String>,
    pub tables: Vec<Table>,
    /// A digest of everything above: equal digests, equal schemas.
    pub version: u64,
    /// Names of the functions PostgreSQL marks VOLATILE (`provolatile = 'v'`)
    /// in any schema: those that may change things or depend on more than
    /// their arguments. Empty when not loaded.
    pub volatile_functions: std::collections::BTreeSet<String>,
    by_name: HashMap<QualifiedName, usize>,
}

impl Catalog {
    /// Build from loaded parts; computes the index and the version.
    pub fn new(database: String, search_path: Vec<String>, mut tables: Vec<Table>) -> Self {
        tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        let by_name = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.qualified_name(), i))
            .collect();
        let mut c = Catalog {
            database,
            search_path,
            tables,
            version: 0,
            volatile_functions: Default::default(),
            by_name,
        };
        c.version = c.digest();
        c
    }

    /// The relation `schema.name`.
    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        let key = QualifiedName {
            schema: schema.to_string(),
            name: name.to_string(),
        };
        self.by_name.get(&key).map(|&i| &self.tables[i])
    }

    /// Resolve an unqualified name through the search_path, as PostgreSQL does
    /// (`pg_catalog` first when it is not listed).
    pub fn resolve(&self, schema: Option<&str>, name: &str) -> Option<&Table> {
        if let Some(s) = schema {
            return self.table(s, name);
        }
        let implicit =
            (!self.search_path.iter().any(|s| s == "pg_catalog")).then_some("pg_catalog");
        implicit
            .into_iter()
            .chain(self.search_path.iter().map(String::as_str))
            .find_map(|s| self.table(s, name))
    }

    /// Relations that reference `t` or that `t` references by foreign key.
    pub fn neighbours(&self, t: &Table) -> Vec<&Table> {
        let mut out: Vec<&Table> = t
            .foreign_keys
            .iter()
            .filter_map(|fk| self.table(&fk.ref_schema, &fk.ref_table))
            .collect();
        for other in &self.tables {
            if other
                .foreign_keys
                .iter()
                .any(|fk| fk.ref_schema == t.schema && fk.ref_table == t.name)
                && !out
                    .iter()
                    .any(|o| o.schema == other.schema && o.name == other.name)
            {
                out.push(other);
            }
        }
        out
    }

    fn digest(&self) -> u64 {
        // FNV-1a over a canonical rendering: stable across processes (unlike
        // the std hasher), so versions can be compared in logs and tests.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |s: &str| {
            for b in s.bytes().chain(std::iter::once(0xff)) {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(&self.database);
        for s in &self.search_path {
            eat(s);
        }
        for t in &self.tables {
            eat(&t.schema);
            eat(&t.name);
            eat(&format!("{:?}", t.kind));
            eat(t.comment.as_deref().unwrap_or(""));
            for c in &t.columns {
                eat(&c.name);
                eat(&c.data_type);
                eat(c.comment.as_deref().unwrap_or(""));
            }
            for k in &t.primary_key {
                eat(k);
            }
            for fk in &t.foreign_keys {
                eat(&format!("{fk:?}"));
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str) -> Table {
        Table {
            schema: schema.into(),
            name: name.into(),
            kind: RelationKind::Table,
            comment: None,
            row_estimate: 0.0,
            columns: vec![],
            primary_key: vec![],
            foreign_keys: vec![],
            indexes: vec![],
            stats: None,
        }
    }

    #[test]
    fn resolves_through_the_search_path_and_versions_change_with_the_schema() {
        let c = Catalog::new(
            "db".into(),
            vec!["app".into(), "public".into()],
            vec![
                table("public", "t"),
                table("app", "t"),
                table("public", "u"),
            ],
        );
        assert_eq!(c.resolve(None, "t").unwrap().schema, "app");
        assert_eq!(c.resolve(None, "u").unwrap().schema, "public");
        assert_eq!(c.resolve(Some("public"), "t").unwrap().schema, "public");
        assert!(c.resolve(None, "nope").is_none());
        let d = Catalog::new(
            "db".into(),
            vec!["public".into()],
            vec![table("public", "t")],
        );
        assert_ne!(c.version, d.version);
        let d2 = Catalog::new(
            "db".into(),
            vec!["public".into()],
            vec![table("public", "t")],
        );
        assert_eq!(d.version, d2.version);
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
