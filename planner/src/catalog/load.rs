//! Building a [`Catalog`] from the catalog queries' text rows.

use std::collections::HashMap;
use std::future::Future;

use super::queries::{self, parse_array_literal};
use super::{Catalog, Column, ForeignKey, Index, QualifiedName, RelationKind, Table, TableStats};

/// Rows of text values, as the simple protocol returns them.
pub type TextRows = Vec<Vec<Option<String>>>;

/// Something that runs a query and returns its rows as text.
pub trait TextQuery {
    fn query_text(&mut self, sql: &str) -> impl Future<Output = Result<TextRows, String>> + Send;
}

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `schema.table` glob patterns (`*` wildcard); empty: everything.
    pub include: Vec<String>,
    /// Patterns to leave out, applied after `include`.
    pub exclude: Vec<String>,
    /// Keep most-common values only for columns with at most this many
    /// distinct values (low cardinality: categories, statuses, cities).
    pub max_distinct_for_values: f64,
    /// At most this many values per column.
    pub max_values: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            include: vec![],
            exclude: vec![],
            max_distinct_for_values: 100.0,
            max_values: 20,
        }
    }
}

impl LoadOptions {
    fn wanted(&self, schema: &str, table: &str) -> bool {
        let name = format!("{schema}.{table}");
        (self.include.is_empty() || self.include.iter().any(|p| glob(p, &name)))
            && !self.exclude.iter().any(|p| glob(p, &name))
    }
}

/// `*` matches any run of characters; a pattern without a dot matches the
/// table name in any schema.
fn glob(pattern: &str, name: &str) -> bool {
    let name = if pattern.contains('.') {
        name
    } else {
        name.split_once('.').map_or(name, |(_, t)| t)
    };
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

const SEP: char = '\u{1f}';

fn text(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// Load the catalog through `q`.
pub async fn load<Q: TextQuery>(q: &mut Q, opts: &LoadOptions) -> Result<Catalog, String> {
    let head = q.query_text(queries::SEARCH_PATH).await?;
    let row = head.first().ok_or("no answer to the search_path query")?;
    let database = text(row, 0);
    let search_path: Vec<String> = text(row, 1)
        .split(SEP)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();

    let mut tables: Vec<Table> = Vec::new();
    let mut index: HashMap<QualifiedName, usize> = HashMap::new();
    for row in q.query_text(queries::COLUMNS).await? {
        let (schema, name) = (text(&row, 0), text(&row, 1));
        if !opts.wanted(&schema, &name) {
            continue;
        }
        let key = QualifiedName {
            schema: schema.clone(),
            name: name.clone(),
        };
        let i = *index.entry(key).or_insert_with(|| {
            tables.push(Table {
                schema,
                name,
                kind: RelationKind::from_relkind(&text(&row, 2)).unwrap_or(RelationKind::Table),
                comment: row[3].clone(),
                row_estimate: text(&row, 4).parse().unwrap_or(-1.0),
                columns: vec![],
                primary_key: vec![],
                foreign_keys: vec![],
                indexes: vec![],
                stats: None,
            });
            tables.len() - 1
        });
        tables[i].columns.push(Column {
            name: text(&row, 5),
            data_type: text(&row, 6),
            type_oid: text(&row, 7).parse().unwrap_or(0),
            nullable: text(&row, 8) == "true",
            comment: row[9].clone(),
            common_values: vec![],
            n_distinct: None,
        });
    }

    let split = |s: String| -> Vec<String> { s.split(SEP).map(str::to_string).collect() };
    for row in q.query_text(queries::KEYS).await? {
        let key = QualifiedName {
            schema: text(&row, 0),
            name: text(&row, 1),
        };
        let Some(&i) = index.get(&key) else { continue };
        match text(&row, 2).as_str() {
            "p" => tables[i].primary_key = split(text(&row, 3)),
            "f" => tables[i].foreign_keys.push(ForeignKey {
                columns: split(text(&row, 3)),
                ref_schema: text(&row, 4),
                ref_table: text(&row, 5),
                ref_columns: split(text(&row, 6)),
            }),
            _ => {}
        }
    }

    for row in q.query_text(queries::STATS).await? {
        let key = QualifiedName {
            schema: text(&row, 0),
            name: text(&row, 1),
        };
        let Some(&i) = index.get(&key) else { continue };
        let rows = tables[i].row_estimate.max(0.0);
        let Some(col) = tables[i]
            .columns
            .iter_mut()
            .find(|c| c.name == text(&row, 2))
        else {
            continue;
        };
        let n_distinct: Option<f64> = text(&row, 3).parse().ok();
        col.n_distinct = n_distinct;
        // Negative n_distinct is a fraction of the rows.
        let distinct = n_distinct.map(|d| if d < 0.0 { -d * rows } else { d });
        if distinct.is_some_and(|d| d > 0.0 && d <= opts.max_distinct_for_values) {
            if let Some(values) = row[4].as_deref().and_then(parse_array_literal) {
                col.common_values = values.into_iter().take(opts.max_values).collect();
            }
        }
    }

    for row in q.query_text(queries::INDEXES).await? {
        let key = QualifiedName {
            schema: text(&row, 0),
            name: text(&row, 1),
        };
        let Some(&i) = index.get(&key) else { continue };
        tables[i].indexes.push(Index {
            name: text(&row, 2),
            unique: text(&row, 3) == "true",
            primary: text(&row, 4) == "true",
            method: text(&row, 5),
            partial: text(&row, 6) == "true",
            columns: text(&row, 7)
                .split(SEP)
                .map(|c| (!c.is_empty()).then(|| c.to_string()))
                .collect(),
            definition: text(&row, 8),
        });
    }

    for row in q.query_text(queries::TABLE_STATS).await? {
        let key = QualifiedName {
            schema: text(&row, 0),
            name: text(&row, 1),
        };
        let Some(&i) = index.get(&key) else { continue };
        let num = |j: usize| text(&row, j).parse::<f64>().unwrap_or(0.0);
        tables[i].stats = Some(TableStats {
            pages: num(2),
            live_rows: num(3),
            dead_rows: num(4),
            inserts: num(5),
            updates: num(6),
            deletes: num(7),
            modified_since_analyze: num(8),
            seconds_since_analyze: text(&row, 9).parse().ok(),
            seq_scans: num(10),
            index_scans: num(11),
        });
    }

    let mut catalog = Catalog::new(database, search_path, tables);
    catalog.volatile_functions = q
        .query_text(queries::VOLATILE_FUNCTIONS)
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect();
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_tables_with_or_without_schema() {
        assert!(glob("public.*", "public.orders"));
        assert!(glob("ord*", "sales.orders"));
        assert!(!glob("public.*", "sales.orders"));
        assert!(glob("*.audit_*", "x.audit_log"));
    }
}
