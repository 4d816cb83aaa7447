//! What the builtin translator knows of a schema: the phrases that name its
//! tables, columns, stored values and measures, and each table's roles
//! (key, label, time, amount columns) and foreign keys.
//!
//! Phrases are stems joined by spaces (`retrieval::words`), so "customers"
//! and "customer" both find `customers`, and `sbCustCountry` is found by
//! "country" (a prefix most of a table's columns share, like `sb_cust_`,
//! is not needed). A phrase may mean several things (`name` is a column of
//! three tables); the parser picks by context.

use std::collections::HashMap;

use helios_planner::catalog::quote_ident;
use helios_planner::Catalog;

use crate::config::Measure;
use crate::retrieval::roles;
use crate::retrieval::words::{identifier_terms, is_stop_word, split_words, stem, value_key};

/// A phrase's possible meanings.
#[derive(Debug, Clone, PartialEq)]
pub enum Meaning {
    Table(usize),
    Column(usize, usize),
    /// A stored value of a column (from its common values).
    Value(usize, usize, String),
    Measure(usize),
}

/// A table's columns by role.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub primary_key: Vec<usize>,
    /// The column that names a row (`name`, `title`).
    pub label: Option<usize>,
    /// Date and time columns.
    pub temporal: Vec<usize>,
    /// Numeric columns that are not keys: amounts, prices, counts.
    pub amounts: Vec<usize>,
}

/// A foreign key: `child.columns` reference `parent.columns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub child: usize,
    pub child_columns: Vec<usize>,
    pub parent: usize,
    pub parent_columns: Vec<usize>,
}

/// A configured measure, resolved against the catalog.
#[derive(Debug, Clone)]
pub struct MeasureDef {
    pub name: String,
    pub sql: String,
    /// The tables its expression reads (catalog indexes).
    pub tables: Vec<usize>,
}

/// Phrases longer than this (in words) are not looked up.
pub const MAX_PHRASE: usize = 4;

#[derive(Debug)]
pub struct Vocab<'c> {
    pub catalog: &'c Catalog,
    pub roles: Vec<Roles>,
    pub edges: Vec<Edge>,
    /// Per table, the indexes of the edges it is on (either end).
    pub edges_of: Vec<Vec<usize>>,
    pub measures: Vec<MeasureDef>,
    phrases: HashMap<String, Vec<Meaning>>,
    /// Measures that did not resolve, and why (said when a question names one).
    pub broken_measures: Vec<(String, String)>,
}

impl<'c> Vocab<'c> {
    pub fn new(catalog: &'c Catalog, measures: &[Measure]) -> Vocab<'c> {
        let mut v = Vocab {
            catalog,
            roles: Vec::with_capacity(catalog.tables.len()),
            edges: Vec::new(),
            edges_of: vec![Vec::new(); catalog.tables.len()],
            measures: Vec::new(),
            phrases: HashMap::new(),
            broken_measures: Vec::new(),
        };
        for (t, table) in catalog.tables.iter().enumerate() {
            let column_index = |name: &str| table.columns.iter().position(|c| c.name == name);
            let primary_key: Vec<usize> = table
                .primary_key
                .iter()
                .filter_map(|c| column_index(c))
                .collect();
            let mut fk_columns = Vec::new();
            for fk in &table.foreign_keys {
                let Some(parent) = catalog.table(&fk.ref_schema, &fk.ref_table) else {
                    continue;
                };
                let p = table_index(catalog, &parent.qualified_name());
                let child_columns: Vec<usize> =
                    fk.columns.iter().filter_map(|c| column_index(c)).collect();
                let parent_columns: Vec<usize> = fk
                    .ref_columns
                    .iter()
                    .filter_map(|c| parent.columns.iter().position(|pc| &pc.name == c))
                    .collect();
                if let Some(p) = p {
                    if child_columns.len() == fk.columns.len()
                        && parent_columns.len() == fk.ref_columns.len()
                    {
                        fk_columns.extend(child_columns.iter().copied());
                        v.edges.push(Edge {
                            child: t,
                            child_columns,
                            parent: p,
                            parent_columns,
                        });
                    }
                }
            }
            let label = ["name", "title", "label"]
                .iter()
                .find_map(|n| column_index(n))
                .or_else(|| table.columns.iter().position(|c| roles::is_label(&c.name)));
            let temporal = (0..table.columns.len())
                .filter(|&c| is_time_type(&table.columns[c].data_type))
                .collect();
            let amounts = (0..table.columns.len())
                .filter(|&c| {
                    let col = &table.columns[c];
                    is_numeric_type(&col.data_type)
                        && !roles::is_key_like(&col.name)
                        && !primary_key.contains(&c)
                        && !fk_columns.contains(&c)
                })
                .collect();
            v.roles.push(Roles {
                primary_key,
                label,
                temporal,
                amounts,
            });
        }
        for (e, edge) in v.edges.iter().enumerate() {
            v.edges_of[edge.child].push(e);
            if edge.parent != edge.child {
                v.edges_of[edge.parent].push(e);
            }
        }
        v.index_phrases();
        v.index_synonyms();
        for (i, m) in measures.iter().enumerate() {
            match measure_tables(catalog, &m.sql) {
                Ok(tables) => {
                    for name in std::iter::once(&m.name).chain(&m.synonyms) {
                        v.add(&identifier_terms(name), Meaning::Measure(v.measures.len()));
                    }
                    v.measures.push(MeasureDef {
                        name: m.name.clone(),
                        sql: m.sql.clone(),
                        tables,
                    });
                }
                Err(e) => {
                    tracing::warn!(measure = %m.name, error = %e, "nl.measures[{i}] ignored");
                    v.broken_measures.push((m.name.clone(), e));
                }
            }
        }
        v
    }

    fn index_phrases(&mut self) {
        let catalog = self.catalog;
        let table_names: Vec<&str> = catalog.tables.iter().map(|t| t.name.as_str()).collect();
        let table_glue = glued_prefix(&table_names);
        for (t, table) in catalog.tables.iter().enumerate() {
            let table_words = identifier_terms(&table.name);
            self.add(&table_words, Meaning::Table(t));
            // `sbtransaction` (folded to lower case, so no word breaks left)
            // is "transaction" when every table starts with `sb`.
            if let Some(rest) = strip_glue(&table.name, &table_glue) {
                self.add(&identifier_terms(rest), Meaning::Table(t));
            }
            let column_names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            let column_glue = glued_prefix(&column_names);
            for (c, column) in table.columns.iter().enumerate() {
                if let Some(rest) = strip_glue(&column.name, &column_glue) {
                    self.add(&identifier_terms(rest), Meaning::Column(t, c));
                }
            }
            // `order_items` is also "items"; `sales_orders`, "orders".
            if table_words.len() > 1 {
                self.add(&table_words[table_words.len() - 1..], Meaning::Table(t));
            }
            let prefix = shared_prefix(table);
            for (c, column) in table.columns.iter().enumerate() {
                let mut words = identifier_terms(&column.name);
                if words.len() > prefix && prefix > 0 {
                    words.drain(..prefix);
                }
                // `created_at` is "created"; `is_active`, "active".
                if words.len() > 1 && words.last().is_some_and(|w| w == "at" || w == "on") {
                    words.pop();
                }
                if words.len() > 1 && words[0] == "is" {
                    words.remove(0);
                }
                self.add(&words, Meaning::Column(t, c));
                // "customer name", "order total": the table's word first.
                for tw in [&table_words[..], &table_words[table_words.len() - 1..]] {
                    if !words.starts_with(tw) {
                        let qualified: Vec<String> = tw.iter().chain(&words).cloned().collect();
                        self.add(&qualified, Meaning::Column(t, c));
                    }
                }
                if let Some(head) = column.comment.as_deref().and_then(comment_head) {
                    // A head holding a table's name ("Who placed the order")
                    // would hide the table in "customers who placed orders".
                    // "Order value" on `orders.total`: the table's own
                    // word first, then what the column is ("value").
                    let first_word = column
                        .comment
                        .as_deref()
                        .and_then(|c| split_words(c).into_iter().next())
                        .map(|w| stem(&w));
                    let own = head.len() > 1
                        && head[0] == *table_words.last().expect("a name")
                        && first_word.as_deref() == Some(head[0].as_str());
                    if own {
                        self.add(&head, Meaning::Column(t, c));
                        self.add(&head[1..], Meaning::Column(t, c));
                    } else if !head.iter().any(|w| self.names_table(w)) {
                        let time = is_time_type(&column.data_type);
                        if time
                            && head.len() > 1
                            && matches!(head.last().map(String::as_str), Some("dat" | "tim"))
                        {
                            self.add(&head[..head.len() - 1], Meaning::Column(t, c));
                        }
                        self.add(&head, Meaning::Column(t, c));
                    }
                }
                for value in &column.common_values {
                    let words = split_words(value);
                    let informative = words.iter().any(|w| {
                        w.len() > 1 && !is_stop_word(w) && !w.bytes().all(|b| b.is_ascii_digit())
                    });
                    if informative && words.len() <= MAX_PHRASE {
                        let key = value_key(&words);
                        self.phrases.entry(key).or_default().push(Meaning::Value(
                            t,
                            c,
                            value.clone(),
                        ));
                    }
                }
            }
        }
    }

    /// Words people use for what schemas commonly call otherwise ("clients"
    /// for `customers`), and the first word of a table's comment ("People
    /// who have signed up"): only where the word names nothing already.
    fn index_synonyms(&mut self) {
        #[rustfmt::skip]
        const THESAURUS: &[(&str, &[&str])] = &[
            ("customer", &["client", "shopper", "buyer", "purchaser", "consumer"]),
            ("order", &["purchase"]),
            ("employee", &["staff", "worker"]),
            ("city", &["town"]),
            ("country", &["nation"]),
        ];
        let catalog = self.catalog;
        let mut extra: Vec<(String, Meaning)> = Vec::new();
        for (t, table) in catalog.tables.iter().enumerate() {
            let words = identifier_terms(&table.name);
            let last = words.last().cloned().unwrap_or_default();
            for (canonical, synonyms) in THESAURUS {
                if stem(canonical) == last {
                    extra.extend(synonyms.iter().map(|s| (stem(s), Meaning::Table(t))));
                }
            }
            if let Some(first) = table
                .comment
                .as_deref()
                .and_then(|c| split_words(c).into_iter().find(|w| !is_stop_word(w)))
            {
                extra.push((stem(&first), Meaning::Table(t)));
                // "order line" for `order_items` ("Lines of an order").
                if words.len() > 1 {
                    let compound =
                        format!("{} {}", words[..words.len() - 1].join(" "), stem(&first));
                    extra.push((compound, Meaning::Table(t)));
                }
            }
            for (c, column) in table.columns.iter().enumerate() {
                let last = identifier_terms(&column.name).pop().unwrap_or_default();
                for (canonical, synonyms) in THESAURUS {
                    if stem(canonical) == last {
                        extra.extend(synonyms.iter().map(|s| (stem(s), Meaning::Column(t, c))));
                    }
                }
            }
        }
        let mut by_word: HashMap<String, Vec<Meaning>> = HashMap::new();
        for (word, meaning) in extra {
            let m = by_word.entry(word).or_default();
            if !m.contains(&meaning) {
                m.push(meaning);
            }
        }
        for (word, meanings) in by_word {
            // A synonym that could name two tables names neither.
            let tables = meanings
                .iter()
                .filter(|m| matches!(m, Meaning::Table(_)))
                .count();
            if !self.phrases.contains_key(&word) && tables <= 1 {
                self.phrases.insert(word, meanings);
            }
        }
    }

    fn names_table(&self, stem: &str) -> bool {
        self.phrases
            .get(stem)
            .is_some_and(|m| m.iter().any(|m| matches!(m, Meaning::Table(_))))
    }

    fn add(&mut self, words: &[String], meaning: Meaning) {
        if words.is_empty() || words.len() > MAX_PHRASE {
            return;
        }
        let entry = self.phrases.entry(words.join(" ")).or_default();
        if !entry.contains(&meaning) {
            entry.push(meaning);
        }
    }

    /// What the stems `words` (joined by spaces) may mean.
    pub fn lookup(&self, key: &str) -> &[Meaning] {
        self.phrases.get(key).map_or(&[], Vec::as_slice)
    }

    /// How a table is written in SQL: bare when the search_path finds it.
    pub fn table_sql(&self, t: usize) -> String {
        let table = &self.catalog.tables[t];
        match self.catalog.resolve(None, &table.name) {
            Some(found) if found.schema == table.schema => quote_ident(&table.name),
            _ => table.qualified_name().to_string(),
        }
    }

    pub fn column_name(&self, t: usize, c: usize) -> &str {
        &self.catalog.tables[t].columns[c].name
    }

    pub fn table_name(&self, t: usize) -> &str {
        &self.catalog.tables[t].name
    }

    pub fn is_numeric(&self, t: usize, c: usize) -> bool {
        is_numeric_type(&self.catalog.tables[t].columns[c].data_type)
    }

    pub fn is_temporal(&self, t: usize, c: usize) -> bool {
        is_time_type(&self.catalog.tables[t].columns[c].data_type)
    }

    pub fn is_text(&self, t: usize, c: usize) -> bool {
        let ty = &self.catalog.tables[t].columns[c].data_type;
        ty == "text" || ty.starts_with("character") || ty.starts_with("varchar") || ty == "name"
    }
}

fn table_index(catalog: &Catalog, name: &helios_planner::QualifiedName) -> Option<usize> {
    catalog
        .tables
        .iter()
        .position(|t| t.schema == name.schema && t.name == name.name)
}

/// How many leading identifier words (`sb`, `cust`) most of a table's
/// columns share: they say which table a column is in, not what it is.
fn shared_prefix(table: &helios_planner::Table) -> usize {
    let words: Vec<Vec<String>> = table
        .columns
        .iter()
        .map(|c| identifier_terms(&c.name))
        .collect();
    if words.len() < 3 {
        return 0;
    }
    let mut n = 0;
    loop {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for w in &words {
            if w.len() > n + 1 && w[..n] == words[0][..n.min(words[0].len())] {
                *counts.entry(w[n].as_str()).or_default() += 1;
            }
        }
        match counts.into_iter().max_by_key(|(_, k)| *k) {
            Some((_, k)) if k * 10 >= words.len() * 6 && n < 2 => n += 1,
            _ => return n,
        }
    }
}

/// How many leading characters most (60%) of these glued lower-case names
/// share (`sbcust` of `sbcustid`, `sbcustname`, `sbcustcountry`): 0 when
/// fewer than 3 names or under 2 characters. Names with word breaks
/// (`customer_id`, `orderDate`) are split by words instead.
fn glued_prefix(names: &[&str]) -> String {
    let glued: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| split_words(n).len() == 1 && n.is_ascii())
        .collect();
    if glued.len() < 3 || glued.len() * 10 < names.len() * 6 {
        return String::new();
    }
    let mut best = String::new();
    for len in 2..=glued.iter().map(|n| n.len()).max().unwrap_or(0) {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for n in glued.iter().filter(|n| n.len() > len + 1) {
            *counts.entry(&n[..len]).or_default() += 1;
        }
        match counts
            .into_iter()
            .max_by_key(|&(p, k)| (k, std::cmp::Reverse(p)))
        {
            Some((p, k)) if k * 10 >= names.len() * 6 => best = p.to_string(),
            _ => break,
        }
    }
    best
}

/// `name` without the glued `prefix`, when it has it.
fn strip_glue<'n>(name: &'n str, prefix: &str) -> Option<&'n str> {
    let rest = name.strip_prefix(prefix)?;
    (!prefix.is_empty() && rest.len() >= 2 && split_words(name).len() == 1).then_some(rest)
}

/// The words of a column comment's first phrase ("Sign-up date, 2022..."
/// → `sign up date`), when short: a synonym the schema's author gave.
fn comment_head(comment: &str) -> Option<Vec<String>> {
    // Words a question uses for its own structure are no synonym
    // ("How many, 1 to 5" says nothing about what the column is called).
    const STRUCTURE: &[&str] = &[
        "average", "count", "many", "max", "maximum", "mean", "min", "minimum", "most", "much",
        "number", "sum", "top", "total",
    ];
    let head = comment.split([',', '.', ':', ';', '(']).next()?;
    let words: Vec<String> = split_words(head)
        .into_iter()
        .filter(|w| !is_stop_word(w))
        .collect();
    if words.is_empty() || words.len() > 3 || words.iter().any(|w| STRUCTURE.contains(&w.as_str()))
    {
        return None;
    }
    Some(words.iter().map(|w| stem(w)).collect())
}

pub fn is_numeric_type(ty: &str) -> bool {
    let ty = ty.to_lowercase();
    ty.starts_with("numeric")
        || ty.starts_with("decimal")
        || matches!(
            ty.as_str(),
            "integer" | "bigint" | "smallint" | "real" | "double precision" | "money"
        )
}

pub fn is_time_type(ty: &str) -> bool {
    let ty = ty.to_lowercase();
    ty == "date" || ty.starts_with("timestamp")
}

/// The tables a measure's expression reads, from its `table.column`
/// references; every one must exist and have that column.
fn measure_tables(catalog: &Catalog, sql: &str) -> Result<Vec<usize>, String> {
    let mut tables = Vec::new();
    for (table, column) in qualified_refs(sql) {
        let t = catalog
            .tables
            .iter()
            .position(|t| {
                t.name == table
                    && catalog
                        .resolve(None, &t.name)
                        .is_some_and(|f| f.schema == t.schema)
            })
            .ok_or_else(|| format!("no table \"{table}\" on the search_path"))?;
        if !catalog.tables[t].columns.iter().any(|c| c.name == column) {
            return Err(format!("table \"{table}\" has no column \"{column}\""));
        }
        if !tables.contains(&t) {
            tables.push(t);
        }
    }
    if tables.is_empty() {
        return Err("the expression names no table.column".into());
    }
    Ok(tables)
}

/// `table.column` pairs in an expression, as PostgreSQL resolves them
/// (unquoted names folded to lower case). Empty when it does not parse.
fn qualified_refs(sql: &str) -> Vec<(String, String)> {
    use helios_planner::sqlparser::ast::{visit_expressions, Expr};
    let Ok(statements) = helios_planner::sql::parse(&format!("SELECT {sql}")) else {
        return vec![];
    };
    let mut out = Vec::new();
    let _ = visit_expressions(&statements, |e| {
        if let Expr::CompoundIdentifier(parts) = e {
            if let [table, column] = &parts[..] {
                out.push((
                    helios_planner::sql::normalize_ident(table),
                    helios_planner::sql::normalize_ident(column),
                ));
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// Check a measure's SQL on its own: one expression that parses.
pub fn check_measure(m: &Measure) -> Result<(), String> {
    let sql = format!("SELECT {} FROM t", m.sql);
    let statements =
        helios_planner::sql::parse(&sql).map_err(|e| format!("does not parse: {e}"))?;
    if statements.len() != 1 || m.sql.contains(';') {
        return Err("must be one expression".into());
    }
    if qualified_refs(&m.sql).is_empty() {
        return Err("must name its columns as table.column".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_qualified_references() {
        assert_eq!(
            qualified_refs("sum(order_items.quantity * Order_Items.unit_price)"),
            [
                ("order_items".to_string(), "quantity".to_string()),
                ("order_items".to_string(), "unit_price".to_string())
            ]
        );
        assert!(qualified_refs("sum(1.5 * 2)").is_empty());
    }

    #[test]
    fn comment_heads_are_short_phrases() {
        assert_eq!(
            comment_head("Sign-up date, 2022-01-01 to 2025-12-31").unwrap(),
            ["sign", "up", "dat"]
        );
        assert!(comment_head("Sum of quantity times unit price over the items").is_none());
    }
}
