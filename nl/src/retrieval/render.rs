//! The schema section of the prompt: compact DDL the model reads like any
//! PostgreSQL schema dump, with comments, references and (when allowed)
//! sample values.
//!
//! ```text
//! CREATE TABLE public.orders ( -- customer orders
//!   id integer PRIMARY KEY,
//!   customer_id integer REFERENCES public.customers(id),
//!   status text, -- values: 'shipped', 'pending', 'cancelled'
//!   total numeric(10,2) -- order total in EUR
//! );
//! ```
//!
//! Every table's pieces are rendered once per catalog ([`TableDdl::new`]) so
//! that fitting a budget is arithmetic on their sizes, and assembling the
//! chosen columns is concatenation.

use helios_planner::catalog::quote_ident;
use helios_planner::{Catalog, RelationKind, Table};

/// Values shown per column.
const MAX_VALUES: usize = 8;
/// Longer values are free text, not categories: not shown.
const MAX_VALUE_CHARS: usize = 40;
/// Comments are cut to this many characters.
const MAX_COMMENT_CHARS: usize = 200;

/// Which annotations a column's line carries after `--`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notes {
    /// The column's comment.
    pub comment: bool,
    /// Its common values (only when values may be shared).
    pub values: bool,
}

/// One column's line, without the separating comma.
#[derive(Debug)]
struct ColumnLine {
    /// `name type [PRIMARY KEY] [REFERENCES t(c)]`
    body: String,
    /// The column comment, if any.
    comment: Option<String>,
    /// `values: 'a', 'b'`, if the column has common values.
    values: Option<String>,
}

impl ColumnLine {
    fn notes(&self, notes: Notes) -> (Option<&str>, Option<&str>) {
        (
            self.comment.as_deref().filter(|_| notes.comment),
            self.values.as_deref().filter(|_| notes.values),
        )
    }

    fn chars(&self, notes: Notes) -> usize {
        // "  " + body + "," + [" -- " + comment [; values]] + "\n"
        let note = match self.notes(notes) {
            (None, None) => 0,
            (Some(x), None) | (None, Some(x)) => 4 + x.chars().count(),
            (Some(c), Some(v)) => 6 + c.chars().count() + v.chars().count(),
        };
        2 + self.body.chars().count() + 1 + note + 1
    }

    fn write(&self, out: &mut String, last: bool, notes: Notes) {
        out.push_str("  ");
        out.push_str(&self.body);
        if !last {
            out.push(',');
        }
        match self.notes(notes) {
            (None, None) => {}
            (Some(x), None) | (None, Some(x)) => {
                out.push_str(" -- ");
                out.push_str(x);
            }
            (Some(c), Some(v)) => {
                out.push_str(" -- ");
                out.push_str(c);
                out.push_str("; ");
                out.push_str(v);
            }
        }
        out.push('\n');
    }
}

/// A table's DDL in pieces.
#[derive(Debug)]
pub struct TableDdl {
    /// `CREATE TABLE s.t ( -- comment\n`
    header: String,
    columns: Vec<ColumnLine>,
    /// Composite keys: `PRIMARY KEY (a, b)`, `FOREIGN KEY (a, b) REFERENCES ...`.
    constraints: Vec<String>,
    /// Columns in a composite key: rendered whenever the table is.
    pub key_columns: Vec<usize>,
    /// Columns that are the whole primary key or a whole foreign key.
    pub single_keys: Vec<usize>,
}

impl TableDdl {
    pub fn new(table: &Table) -> TableDdl {
        let kind = match table.kind {
            RelationKind::Table | RelationKind::PartitionedTable => "TABLE",
            RelationKind::View => "VIEW",
            RelationKind::MaterializedView => "MATERIALIZED VIEW",
            RelationKind::ForeignTable => "FOREIGN TABLE",
        };
        let mut header = format!("CREATE {kind} {} (", table.qualified_name());
        if let Some(c) = table.comment.as_deref().and_then(one_line) {
            header.push_str(" -- ");
            header.push_str(&c);
        }
        header.push('\n');

        let single_pk = (table.primary_key.len() == 1).then(|| &table.primary_key[0]);
        let mut constraints = Vec::new();
        let mut key_columns = Vec::new();
        let position = |name: &String| table.columns.iter().position(|c| &c.name == name);
        if table.primary_key.len() > 1 {
            constraints.push(format!("PRIMARY KEY ({})", idents(&table.primary_key)));
            key_columns.extend(table.primary_key.iter().filter_map(position));
        }
        let mut single_keys: Vec<usize> = single_pk.and_then(position).into_iter().collect();
        let columns = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let mut body = format!("{} {}", quote_ident(&column.name), column.data_type);
                if single_pk == Some(&column.name) {
                    body.push_str(" PRIMARY KEY");
                }
                for fk in &table.foreign_keys {
                    if fk.columns.len() == 1 && fk.columns[0] == column.name {
                        body.push_str(&format!(
                            " REFERENCES {}.{}({})",
                            quote_ident(&fk.ref_schema),
                            quote_ident(&fk.ref_table),
                            idents(&fk.ref_columns)
                        ));
                        single_keys.push(i);
                    }
                }
                ColumnLine {
                    body,
                    comment: column.comment.as_deref().and_then(one_line),
                    values: if categorical(&column.data_type) {
                        value_list(&column.common_values)
                    } else {
                        None
                    },
                }
            })
            .collect();
        for fk in table.foreign_keys.iter().filter(|fk| fk.columns.len() > 1) {
            constraints.push(format!(
                "FOREIGN KEY ({}) REFERENCES {}.{}({})",
                idents(&fk.columns),
                quote_ident(&fk.ref_schema),
                quote_ident(&fk.ref_table),
                idents(&fk.ref_columns)
            ));
            key_columns.extend(fk.columns.iter().filter_map(position));
        }
        key_columns.sort_unstable();
        key_columns.dedup();
        single_keys.sort_unstable();
        single_keys.dedup();
        TableDdl {
            header,
            columns,
            constraints,
            key_columns,
            single_keys,
        }
    }

    /// Characters of the table with the columns `shown`, each annotated as
    /// `notes` says: exactly what [`TableDdl::write`] appends.
    pub fn chars(&self, shown: &[usize], notes: impl Fn(usize) -> Notes) -> usize {
        // Every item (column or constraint) is counted with its comma; the
        // last one has none.
        let items = shown.len() + self.constraints.len();
        self.header.chars().count()
            + shown
                .iter()
                .map(|&i| self.column_chars(i, notes(i)))
                .sum::<usize>()
            + self
                .constraints
                .iter()
                .map(|c| 2 + c.chars().count() + 2)
                .sum::<usize>()
            - (items > 0) as usize
            + more_chars(self.columns.len() - shown.len())
            + 4
    }

    /// Characters of column `i`'s line, with its comma.
    pub fn column_chars(&self, i: usize, notes: Notes) -> usize {
        self.columns[i].chars(notes)
    }

    /// Characters of the whole table, every column with `notes`.
    pub fn full_chars(&self, notes: Notes) -> usize {
        let all: Vec<usize> = (0..self.columns.len()).collect();
        self.chars(&all, |_| notes)
    }

    /// Append the table with the columns `shown` (indexes, ascending), each
    /// annotated as `notes` says.
    pub fn write(&self, out: &mut String, shown: &[usize], notes: impl Fn(usize) -> Notes) {
        out.push_str(&self.header);
        let hidden = self.columns.len() - shown.len();
        let items = shown.len() + self.constraints.len();
        for (n, &i) in shown.iter().enumerate() {
            self.columns[i].write(out, n + 1 == items, notes(i));
        }
        for (n, c) in self.constraints.iter().enumerate() {
            out.push_str("  ");
            out.push_str(c);
            if shown.len() + n + 1 < items {
                out.push(',');
            }
            out.push('\n');
        }
        if hidden > 0 {
            out.push_str(&format!("  -- {hidden} more columns not shown\n"));
        }
        out.push_str(");\n\n");
    }
}

/// Characters of the `-- N more columns not shown` line (none for 0).
pub fn more_chars(hidden: usize) -> usize {
    match hidden {
        0 => 0,
        n => "  --  more columns not shown\n".len() + n.to_string().len(),
    }
}

/// The line telling the model which column holds a value from the question.
pub fn hint_line(catalog: &Catalog, table: usize, column: usize, value: &str) -> String {
    let t = &catalog.tables[table];
    format!(
        "-- {} is a value of {}.{}\n",
        literal(value),
        t.qualified_name(),
        quote_ident(&t.columns[column].name)
    )
}

/// Whether a column's common values are worth showing: the model learns
/// how a category is spelled ('in-person', 'Computer Science'), but a few
/// frequent numbers, dates or booleans tell it nothing its type does not.
fn categorical(data_type: &str) -> bool {
    const PLAIN: &[&str] = &[
        "bigint",
        "bit",
        "boolean",
        "bytea",
        "date",
        "double",
        "int",
        "integer",
        "interval",
        "money",
        "numeric",
        "oid",
        "real",
        "smallint",
        "time",
        "timestamp",
        "uuid",
    ];
    let ty = data_type.to_ascii_lowercase();
    let base = ty.split(['(', ' ', '[']).next().unwrap_or_default();
    !PLAIN.contains(&base)
}

/// `'a', 'b', ...` for the short values of a column, or `None`.
fn value_list(values: &[String]) -> Option<String> {
    let shown: Vec<String> = values
        .iter()
        .filter(|v| v.chars().count() <= MAX_VALUE_CHARS && !v.contains('\n'))
        .take(MAX_VALUES)
        .map(|v| literal(v))
        .collect();
    if shown.is_empty() {
        return None;
    }
    let more = if values.len() > shown.len() {
        ", ..."
    } else {
        ""
    };
    Some(format!("values: {}{more}", shown.join(", ")))
}

/// A SQL string literal.
fn literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn idents(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A comment on one line, cut to [`MAX_COMMENT_CHARS`]; `None` if blank.
fn one_line(text: &str) -> Option<String> {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return None;
    }
    if flat.chars().count() <= MAX_COMMENT_CHARS {
        return Some(flat);
    }
    let cut: String = flat.chars().take(MAX_COMMENT_CHARS - 1).collect();
    Some(format!("{cut}…"))
}
