//! The defog text-to-SQL databases as retrieval cases, built offline.
//!
//! Each `<db>/<db>.sql` is parsed as PostgreSQL would load it: unquoted
//! names folded to lower case, types spelled as `format_type` spells them,
//! primary and foreign keys as declared. Column comments come from
//! `<db>.json` (its descriptions include the DDL's `--` notes), or from the
//! `--` note on the column's line. Common values imitate `pg_stats` after
//! ANALYZE of a small table: for a column with at most 100 distinct values,
//! the values stored at least twice, most frequent first, 20 at most (the
//! catalog loader's defaults).
//!
//! Gold tables and columns come from the gold SQL (the first of its
//! acceptable answers):
//! - tables: every relation it reads;
//! - columns: every column reference, resolved through the query's table
//!   aliases; an unqualified name counts for whichever gold table has it
//!   (any one suffices), and a `{a, b}` choice counts once, satisfied by
//!   any of its columns. Names that are no column of a gold table (output
//!   aliases, CTE columns) are not counted.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::ops::ControlFlow;
use std::path::Path;

use helios_planner::sql::{analyze, name_parts, normalize_ident, parse};
use helios_planner::sqlparser::ast::{
    ColumnOption, Expr, SetExpr, Statement, TableConstraint, TableFactor, TableObject,
    UnaryOperator, Value, Visit, Visitor,
};
use helios_planner::{Catalog, Column, ForeignKey, RelationKind, Table};

/// Columns with more distinct values than this get no common values.
const MAX_DISTINCT_FOR_VALUES: usize = 100;
const MAX_VALUES: usize = 20;

/// One database and its questions.
pub struct Database {
    pub name: String,
    pub catalog: Catalog,
    pub cases: Vec<Case>,
    /// Gold queries that did not parse or named no known table.
    pub skipped: usize,
}

/// A question with what its gold query needs.
pub struct Case {
    pub question: String,
    /// Catalog table indexes.
    pub tables: Vec<usize>,
    /// Each item is satisfied when any of its (table, column) is shown.
    pub columns: Vec<Vec<(usize, usize)>>,
}

/// Load every database under `dir`; `comments`: whether columns get their
/// descriptions.
pub fn load(dir: &Path, comments: bool) -> Result<Vec<Database>, String> {
    let mut questions: Vec<(String, String, String)> = Vec::new();
    for file in ["questions_gen_postgres.csv", "instruct_basic_postgres.csv"] {
        let text = read(&dir.join(file))?;
        let rows = csv(&text);
        let header = &rows[0];
        let col = |name: &str| header.iter().position(|h| h == name);
        let (Some(db), Some(q), Some(sql)) = (col("db_name"), col("question"), col("query")) else {
            return Err(format!("{file}: unexpected header {header:?}"));
        };
        for row in &rows[1..] {
            if row.len() > db.max(q).max(sql) {
                questions.push((row[db].clone(), row[q].clone(), row[sql].clone()));
            }
        }
    }
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let sub = dir.join(&name);
        let ddl = read(&sub.join(format!("{name}.sql")))?;
        let described = fs::read_to_string(sub.join(format!("{name}.json"))).unwrap_or_default();
        let catalog = catalog(&name, &ddl, &described, comments)?;
        let mut cases = Vec::new();
        let mut skipped = 0;
        for (_, question, sql) in questions.iter().filter(|q| q.0 == name) {
            match gold(&catalog, sql) {
                Some((tables, columns)) => cases.push(Case {
                    question: question.clone(),
                    tables,
                    columns,
                }),
                None => skipped += 1,
            }
        }
        out.push(Database {
            name,
            catalog,
            cases,
            skipped,
        });
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Rows of a CSV text (RFC 4180: quoted fields, `""` escapes, newlines in
/// quotes).
fn csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// `(schema, name)` of a dotted name, `public` when unqualified.
fn qualified(parts: &[String]) -> (String, String) {
    let name = parts.last().cloned().unwrap_or_default();
    let schema = parts
        .len()
        .checked_sub(2)
        .map_or_else(|| "public".to_string(), |i| parts[i].clone());
    (schema, name)
}

fn catalog(db: &str, ddl: &str, described: &str, comments: bool) -> Result<Catalog, String> {
    let statements = parse(ddl).map_err(|e| format!("{db}.sql: {e}"))?;
    let notes = line_notes(ddl);
    let descriptions = json_descriptions(described);
    let mut tables: Vec<Table> = Vec::new();
    // (table, column) → stored values, in order.
    let mut data: HashMap<(usize, usize), Vec<String>> = HashMap::new();
    for stmt in &statements {
        match stmt {
            Statement::CreateTable(create) => {
                let (schema, name) = qualified(&name_parts(&create.name));
                let mut table = Table {
                    schema,
                    name,
                    kind: RelationKind::Table,
                    comment: None,
                    row_estimate: 0.0,
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                    foreign_keys: Vec::new(),
                    indexes: Vec::new(),
                    stats: None,
                };
                for def in &create.columns {
                    let name = normalize_ident(&def.name);
                    let mut nullable = true;
                    for option in &def.options {
                        match &option.option {
                            ColumnOption::NotNull => nullable = false,
                            ColumnOption::PrimaryKey(_) => {
                                nullable = false;
                                table.primary_key = vec![name.clone()];
                            }
                            ColumnOption::ForeignKey(fk) => {
                                let (ref_schema, ref_table) =
                                    qualified(&name_parts(&fk.foreign_table));
                                table.foreign_keys.push(ForeignKey {
                                    columns: vec![name.clone()],
                                    ref_schema,
                                    ref_table,
                                    ref_columns: fk
                                        .referred_columns
                                        .iter()
                                        .map(normalize_ident)
                                        .collect(),
                                });
                            }
                            _ => {}
                        }
                    }
                    let key = (table.schema.clone(), table.name.clone(), name.clone());
                    let comment = descriptions
                        .get(&key)
                        .or_else(|| notes.get(&key))
                        .filter(|_| comments)
                        .cloned();
                    table.columns.push(Column {
                        name,
                        data_type: pg_type(&def.data_type.to_string()),
                        type_oid: 0,
                        nullable,
                        comment,
                        common_values: Vec::new(),
                        n_distinct: None,
                    });
                }
                for constraint in &create.constraints {
                    match constraint {
                        TableConstraint::PrimaryKey(pk) => {
                            table.primary_key = pk
                                .columns
                                .iter()
                                .map(|c| c.column.expr.to_string().to_lowercase())
                                .collect();
                        }
                        TableConstraint::ForeignKey(fk) => {
                            let (ref_schema, ref_table) = qualified(&name_parts(&fk.foreign_table));
                            table.foreign_keys.push(ForeignKey {
                                columns: fk.columns.iter().map(normalize_ident).collect(),
                                ref_schema,
                                ref_table,
                                ref_columns: fk
                                    .referred_columns
                                    .iter()
                                    .map(normalize_ident)
                                    .collect(),
                            });
                        }
                        _ => {}
                    }
                }
                tables.push(table);
            }
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else {
                    continue;
                };
                let (schema, name) = qualified(&name_parts(name));
                let Some(t) = tables
                    .iter()
                    .position(|t| t.schema == schema && t.name == name)
                else {
                    continue;
                };
                let columns: Vec<Option<usize>> = if insert.columns.is_empty() {
                    (0..tables[t].columns.len()).map(Some).collect()
                } else {
                    insert
                        .columns
                        .iter()
                        .map(|c| {
                            let c = name_parts(c).pop().unwrap_or_default();
                            tables[t].columns.iter().position(|x| x.name == c)
                        })
                        .collect()
                };
                let Some(SetExpr::Values(values)) = insert.source.as_ref().map(|q| q.body.as_ref())
                else {
                    continue;
                };
                for row in &values.rows {
                    tables[t].row_estimate += 1.0;
                    for (expr, column) in row.iter().zip(&columns) {
                        if let (Some(v), Some(c)) = (literal(expr), column) {
                            data.entry((t, *c)).or_default().push(v);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for ((t, c), values) in data {
        let mut counts: Vec<(String, usize, usize)> = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            match counts.iter_mut().find(|x| x.0 == v) {
                Some(x) => x.1 += 1,
                None => counts.push((v, 1, i)),
            }
        }
        let column = &mut tables[t].columns[c];
        column.n_distinct = Some(counts.len() as f64);
        if counts.len() <= MAX_DISTINCT_FOR_VALUES {
            counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
            column.common_values = counts
                .into_iter()
                .filter(|x| x.1 >= 2)
                .take(MAX_VALUES)
                .map(|x| x.0)
                .collect();
        }
    }
    Ok(Catalog::new(db.to_string(), vec!["public".into()], tables))
}

/// A literal as `pg_stats` would show it; `None` for NULL and expressions.
fn literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            Value::Number(n, _) => Some(n.to_string()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => literal(expr).map(|v| format!("-{v}")),
        _ => None,
    }
}

/// A type as PostgreSQL's `format_type` spells it.
fn pg_type(written: &str) -> String {
    let t = written.to_lowercase().replace(", ", ",");
    let (base, args) = match t.find('(') {
        Some(i) => (t[..i].trim(), &t[i..]),
        None => (t.trim(), ""),
    };
    let base = match base {
        "int" | "int4" | "integer" | "serial" | "serial4" => "integer",
        "bigint" | "int8" | "bigserial" | "serial8" => "bigint",
        "smallint" | "int2" | "smallserial" => "smallint",
        "float" | "float8" | "double" | "double precision" => "double precision",
        "float4" | "real" => "real",
        "bool" | "boolean" => "boolean",
        "varchar" | "character varying" => "character varying",
        "char" | "character" | "bpchar" => "character",
        "decimal" | "numeric" => "numeric",
        "timestamp" | "timestamp without time zone" => "timestamp without time zone",
        "timestamptz" | "timestamp with time zone" => "timestamp with time zone",
        other => other,
    };
    format!("{base}{args}")
}

/// `(schema, table, column)` → the `-- note` on a column's line of a
/// `CREATE TABLE`.
fn line_notes(ddl: &str) -> HashMap<(String, String, String), String> {
    let mut out = HashMap::new();
    let mut table: Option<(String, String)> = None;
    for line in ddl.lines() {
        let trimmed = line.trim();
        let upper = trimmed.to_uppercase();
        if let Some(rest) = upper.strip_prefix("CREATE TABLE ") {
            let name = rest.split(['(', ' ']).next().unwrap_or_default();
            let name = trimmed[13..13 + name.len()].to_lowercase();
            let parts: Vec<String> = name.split('.').map(str::to_string).collect();
            table = Some(qualified(&parts));
            continue;
        }
        if trimmed.starts_with(')') {
            table = None;
            continue;
        }
        let (Some((schema, name)), Some((code, note))) = (&table, trimmed.split_once("--")) else {
            continue;
        };
        let column = code.split_whitespace().next().unwrap_or_default();
        if !column.is_empty() && !note.trim().is_empty() {
            let key = (
                schema.clone(),
                name.clone(),
                column.trim_matches('"').to_lowercase(),
            );
            out.insert(key, note.trim().to_string());
        }
    }
    out
}

/// `(schema, table, column)` → the description in `<db>.json`.
fn json_descriptions(text: &str) -> HashMap<(String, String, String), String> {
    let mut out = HashMap::new();
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return out;
    };
    let Some(tables) = json["table_metadata"].as_object() else {
        return out;
    };
    for (table, columns) in tables {
        let parts: Vec<String> = table
            .to_lowercase()
            .split('.')
            .map(str::to_string)
            .collect();
        let (schema, name) = qualified(&parts);
        for column in columns.as_array().into_iter().flatten() {
            let (Some(c), Some(d)) = (
                column["column_name"].as_str(),
                column["column_description"].as_str(),
            ) else {
                continue;
            };
            if !d.trim().is_empty() {
                out.insert(
                    (schema.clone(), name.clone(), c.to_lowercase()),
                    d.trim().to_string(),
                );
            }
        }
    }
    out
}

/// The first of `;`-separated SQL texts (quotes respected).
fn first_statement(sql: &str) -> &str {
    let mut quoted = false;
    for (i, c) in sql.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ';' if !quoted && !sql[..i].trim().is_empty() => return &sql[..i],
            _ => {}
        }
    }
    sql
}

/// The gold query with `{a, b}` choices spelled out (`{}` repeats the last
/// choice, as the dataset uses it), and the choices' members.
fn expand_choices(sql: &str) -> (String, Vec<Vec<String>>) {
    let mut out = String::new();
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut rest = sql;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        let inner = rest[open + 1..close].trim();
        let members: Vec<String> = if inner.is_empty() {
            groups.last().cloned().unwrap_or_default()
        } else {
            inner.split(',').map(|m| m.trim().to_string()).collect()
        };
        out.push_str(&members.join(", "));
        if !members.is_empty() {
            groups.push(members);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    (out, groups)
}

/// Table aliases and column references of a query.
#[derive(Default)]
struct References {
    /// Alias or table name → table names (lowercase, possibly qualified).
    aliases: Vec<(String, Vec<String>)>,
    /// (qualifier, column) per reference.
    columns: Vec<(Option<String>, String)>,
}

impl Visitor for References {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = factor {
            let parts = name_parts(name);
            let names = vec![parts.join(".")];
            if let Some(alias) = alias {
                self.aliases
                    .push((normalize_ident(&alias.name), names.clone()));
            }
            if let Some(last) = parts.last() {
                self.aliases.push((last.clone(), names));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => self.columns.push((None, normalize_ident(ident))),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let n = parts.len();
                self.columns.push((
                    Some(normalize_ident(&parts[n - 2])),
                    normalize_ident(&parts[n - 1]),
                ));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

type Gold = (Vec<usize>, Vec<Vec<(usize, usize)>>);

fn gold(catalog: &Catalog, sql: &str) -> Option<Gold> {
    let (sql, groups) = expand_choices(first_statement(sql));
    let stmt = parse(&sql).ok()?.into_iter().next()?;
    let index_of = |schema: Option<&str>, name: &str| -> Option<usize> {
        let found = catalog
            .resolve(schema, name)
            .or_else(|| catalog.tables.iter().find(|t| t.name == name))?;
        catalog
            .tables
            .iter()
            .position(|t| t.schema == found.schema && t.name == found.name)
    };
    let mut tables: Vec<usize> = Vec::new();
    for r in analyze(&stmt).relations {
        if let Some(t) = index_of(r.schema.as_deref(), &r.name) {
            if !tables.contains(&t) {
                tables.push(t);
            }
        }
    }
    if tables.is_empty() {
        return None;
    }
    let mut refs = References::default();
    let _ = stmt.visit(&mut refs);
    let aliases: HashMap<String, Vec<usize>> = {
        let mut m: HashMap<String, Vec<usize>> = HashMap::new();
        for (alias, names) in &refs.aliases {
            for n in names {
                let parts: Vec<String> = n.split('.').map(str::to_string).collect();
                let schema = (parts.len() > 1).then(|| parts[parts.len() - 2].as_str());
                if let Some(t) = index_of(schema, parts.last().unwrap()) {
                    let entry = m.entry(alias.clone()).or_default();
                    if !entry.contains(&t) {
                        entry.push(t);
                    }
                }
            }
        }
        m
    };
    let resolve = |qualifier: Option<&str>, column: &str| -> Vec<(usize, usize)> {
        let candidates: &[usize] = match qualifier {
            Some(q) => aliases.get(q).map_or(&[], Vec::as_slice),
            None => &tables,
        };
        candidates
            .iter()
            .filter_map(|&t| {
                let c = catalog.tables[t]
                    .columns
                    .iter()
                    .position(|c| c.name == column)?;
                Some((t, c))
            })
            .collect()
    };
    let mut counts: Vec<(Vec<(usize, usize)>, usize)> = Vec::new();
    let mut count = |alts: Vec<(usize, usize)>, delta: isize| {
        if alts.is_empty() {
            return;
        }
        match counts.iter_mut().find(|x| x.0 == alts) {
            Some(x) => x.1 = x.1.saturating_add_signed(delta),
            None if delta > 0 => counts.push((alts, delta as usize)),
            None => {}
        }
    };
    for (q, c) in &refs.columns {
        count(resolve(q.as_deref(), c), 1);
    }
    let mut items: BTreeSet<Vec<(usize, usize)>> = BTreeSet::new();
    for group in &groups {
        let mut union: Vec<(usize, usize)> = Vec::new();
        for member in group {
            let lower = member.to_lowercase();
            let alts = match lower.rsplit_once('.') {
                Some((q, c)) => resolve(Some(q), c),
                None => resolve(None, &lower),
            };
            union.extend(&alts);
            count(alts, -1);
        }
        union.sort_unstable();
        union.dedup();
        if !union.is_empty() {
            items.insert(union);
        }
    }
    items.extend(counts.into_iter().filter(|x| x.1 > 0).map(|x| x.0));
    Some((tables, items.into_iter().collect()))
}
