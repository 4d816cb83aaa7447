//! Lexical relevance: which tables and columns a question's words point at.
//!
//! Built once per catalog ([`Lexicon::new`]): every table's name, comment and
//! columns' names and comments become terms ([`super::words`]) with postings
//! saying where each was found, and every column's common values become
//! lookup keys. A question is scored ([`Lexicon::score`]) term by term: a
//! term found in a table's name counts most (the more of the name it is, the
//! more), in a column's name less, in a comment least; a term found inside a
//! glued identifier (`sbcustcountry` holds "country") or as an abbreviation
//! (`cust` for "customer") counts partly. Each term is weighted by how rare
//! it is among the tables (an IDF, computed per question so that partial
//! matches count towards it too): "customer" in a shop schema says more than
//! "id" or "name". Runs of question words equal to a stored value ("Berlin",
//! "New York") point at the column that holds it, strongly, unless the value
//! is one word the schema uses itself ("active", "transaction"): then it may
//! as well name a table or column, and counts like a comment.
//!
//! Column scores decide which columns are shown with their notes, so they
//! are stricter: a word found only in the comments of many of a table's
//! columns ("Number of students who ...") counts for the table but for none
//! of those columns.
//!
//! Besides the sums, each question term names the few tables it fits best
//! ([`Scores::named`]): a question mentioning "airlines" needs the table
//! `airline` even when the flights' tables outscore it by far.

use std::collections::HashMap;

use helios_planner::Catalog;

use super::roles::is_time_word;
use super::words::{identifier_terms, is_stop_word, split_words, stem, terms, value_key};

/// A term in a table's name: more the more of the name it is (`domain`
/// names table `domain` more than `domain_author`).
fn table_name_weight(words: usize) -> f64 {
    2.0 + 2.0 / words.max(1) as f64
}

/// A term in a column's name.
fn column_name_weight(words: usize) -> f64 {
    1.5 + 1.0 / words.max(1) as f64
}

/// A term in a table's or column's comment.
const COMMENT: f64 = 1.0;
/// A question word inside a longer identifier word counts this much of an
/// exact match (`sbcustcountry` for "country").
const INSIDE: f64 = 0.6;
/// An identifier word that abbreviates a question word (`cust`, "customer").
const ABBREVIATION: f64 = 0.4;
/// A word found only in the comments of more than this many of a table's
/// columns (and more than a quarter of them) points at none of them.
const MAX_COMMENTED: usize = 2;
/// A stored value equal to question words, for its column and table.
const VALUE: f64 = 3.0;
/// A stored value that is also a word of the schema's names or comments.
const AMBIGUOUS_VALUE: f64 = 1.0;
/// Longest value (in words) looked up among the question's word runs.
const MAX_VALUE_WORDS: usize = 5;
/// A term names the tables it fits best only if it fits them at least this
/// well (a column name, or a word inside one) ...
const NAMING_STRENGTH: f64 = 1.2;
/// ... and only if at most this many tables fit it that well: a word every
/// table has ("name", "date") names none of them.
const NAMING_TABLES: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Posting {
    table: u32,
    column: Option<u32>,
    weight: f64,
    /// Found in a comment, not a name.
    comment: bool,
}

#[derive(Debug, Clone, Copy)]
struct ValueRef {
    table: u32,
    column: u32,
    value: u32,
}

/// A question's terms with their weights: the question's own words count
/// fully, the conversation's less.
#[derive(Debug, Default)]
pub struct Query {
    /// (stem, the word as written, weight), one entry per stem.
    terms: Vec<(String, String, f64)>,
    /// Runs of words, as value keys, with the words as written and a weight.
    runs: Vec<(String, String, f64)>,
    /// The question speaks of time ("last month", "in 2023").
    time: bool,
}

impl Query {
    pub fn new() -> Query {
        Query::default()
    }

    /// Add the words of `text` with `weight` (1 for the question itself).
    pub fn add(&mut self, text: &str, weight: f64) {
        let words = split_words(text);
        self.time |= weight >= 1.0 && words.iter().any(|w| is_time_word(w));
        for word in words.iter().filter(|w| !is_stop_word(w)) {
            let s = stem(word);
            match self.terms.iter_mut().find(|(t, _, _)| *t == s) {
                Some(entry) => entry.2 = entry.2.max(weight),
                None => self.terms.push((s, word.clone(), weight)),
            }
        }
        for start in 0..words.len() {
            for len in 1..=MAX_VALUE_WORDS.min(words.len() - start) {
                let run = &words[start..start + len];
                if !run.iter().all(|w| is_stop_word(w)) {
                    self.runs.push((value_key(run), run.join(" "), weight));
                }
            }
        }
    }

    /// Whether the question speaks of time, so date and time columns matter.
    pub fn mentions_time(&self) -> bool {
        self.time
    }
}

/// A value match: `value` (of column `column` of table `table`, as indexes
/// into the catalog) equals the words `matched`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueMatch {
    pub table: usize,
    pub column: usize,
    pub value: String,
    pub matched: String,
    /// Whether the words came from the question itself (not the conversation).
    pub from_question: bool,
}

/// Relevance of every table and of the columns that matched anything.
#[derive(Debug, Default)]
pub struct Scores {
    pub tables: Vec<f64>,
    pub columns: HashMap<(usize, usize), f64>,
    pub values: Vec<ValueMatch>,
    /// Tables that some word of the question names best (see the module doc).
    pub named: Vec<usize>,
    /// Per term (and per matched value), what each table it matched gained
    /// from it: [`Scores::tables`] are their sums.
    pub terms: Vec<Vec<(usize, f64)>>,
}

impl Scores {
    pub fn column(&self, table: usize, column: usize) -> f64 {
        self.columns.get(&(table, column)).copied().unwrap_or(0.0)
    }
}

/// The catalog's words, indexed for scoring questions.
#[derive(Debug)]
pub struct Lexicon {
    tables: usize,
    /// Stem → where it occurs (names and comments).
    exact: HashMap<String, Vec<Posting>>,
    /// Distinct identifier words as written (lowercase), for partial matches.
    name_words: Vec<(String, Vec<Posting>)>,
    /// Value key → the columns holding that value.
    values: HashMap<String, Vec<ValueRef>>,
}

impl Lexicon {
    pub fn new(catalog: &Catalog) -> Lexicon {
        let mut exact: HashMap<String, Vec<Posting>> = HashMap::new();
        let mut names: HashMap<String, Vec<Posting>> = HashMap::new();
        let mut values: HashMap<String, Vec<ValueRef>> = HashMap::new();
        let mut add_name = |name: &str, table: u32, column: Option<u32>| {
            let words = split_words(name);
            let weight = match column {
                None => table_name_weight(words.len()),
                Some(_) => column_name_weight(words.len()),
            };
            let posting = Posting {
                table,
                column,
                weight,
                comment: false,
            };
            for word in words {
                names.entry(word).or_default().push(posting);
            }
            for term in identifier_terms(name) {
                exact.entry(term).or_default().push(posting);
            }
        };
        for (ti, table) in catalog.tables.iter().enumerate() {
            add_name(&table.name, ti as u32, None);
            for (ci, column) in table.columns.iter().enumerate() {
                add_name(&column.name, ti as u32, Some(ci as u32));
            }
        }
        let mut add_comment = |text: &str, table: u32, column: Option<u32>| {
            for term in terms(text) {
                exact.entry(term).or_default().push(Posting {
                    table,
                    column,
                    weight: COMMENT,
                    comment: true,
                });
            }
        };
        for (ti, table) in catalog.tables.iter().enumerate() {
            let t = ti as u32;
            if let Some(comment) = &table.comment {
                add_comment(comment, t, None);
            }
            for (ci, column) in table.columns.iter().enumerate() {
                if let Some(comment) = &column.comment {
                    add_comment(comment, t, Some(ci as u32));
                }
                for (vi, value) in column.common_values.iter().enumerate() {
                    if let Some(key) = searchable_value(value) {
                        values.entry(key).or_default().push(ValueRef {
                            table: t,
                            column: ci as u32,
                            value: vi as u32,
                        });
                    }
                }
            }
        }
        let mut name_words: Vec<(String, Vec<Posting>)> = names.into_iter().collect();
        name_words.sort_by(|a, b| a.0.cmp(&b.0));
        Lexicon {
            tables: catalog.tables.len(),
            exact,
            name_words,
            values,
        }
    }

    /// Score every table and the columns that match `query`.
    pub fn score(&self, catalog: &Catalog, query: &Query) -> Scores {
        let mut scores = Scores {
            tables: vec![0.0; self.tables],
            ..Scores::default()
        };
        // Per term: the best weight found in each table and each column,
        // and for columns whether a name (not only a comment) matched.
        let mut in_tables: HashMap<usize, f64> = HashMap::new();
        let mut in_columns: HashMap<(usize, usize), (f64, bool)> = HashMap::new();
        let mut commented: HashMap<usize, usize> = HashMap::new();
        for (term, word, weight) in &query.terms {
            in_tables.clear();
            in_columns.clear();
            commented.clear();
            let mut hit = |p: &Posting, w: f64| {
                let t = p.table as usize;
                let best = in_tables.entry(t).or_insert(0.0);
                *best = best.max(w);
                if let Some(c) = p.column {
                    let best = in_columns.entry((t, c as usize)).or_insert((0.0, false));
                    best.0 = best.0.max(w);
                    best.1 |= !p.comment;
                }
            };
            for p in self.exact.get(term).into_iter().flatten() {
                hit(p, p.weight);
            }
            for (name, postings) in &self.name_words {
                let factor = if word.len() >= 4
                    && term.len() >= 3
                    && name.len() > term.len()
                    && contains_stem(name, term)
                {
                    INSIDE
                } else if name.len() >= 3
                    && word.len() > name.len()
                    && word.starts_with(name.as_str())
                {
                    ABBREVIATION
                } else {
                    continue;
                };
                for p in postings {
                    hit(p, p.weight * factor);
                }
            }
            let idf = self.idf(in_tables.len());
            let mut gains: Vec<(usize, f64)> = Vec::with_capacity(in_tables.len());
            for (&t, &w) in &in_tables {
                scores.tables[t] += weight * idf * w;
                gains.push((t, weight * idf * w));
            }
            gains.sort_unstable_by_key(|g| g.0);
            scores.terms.push(gains);
            for (&(t, _), _) in in_columns.iter().filter(|(_, m)| !m.1) {
                *commented.entry(t).or_insert(0) += 1;
            }
            for (&(t, c), &(w, named)) in &in_columns {
                // A word in the comments of many of a table's columns
                // ("Number of students who ...") describes the table, not
                // any one column.
                let spread = commented.get(&t).copied().unwrap_or(0);
                if !named && spread > MAX_COMMENTED.max(catalog.tables[t].columns.len() / 4) {
                    continue;
                }
                *scores.columns.entry((t, c)).or_insert(0.0) += weight * idf * w;
            }
            if *weight >= 1.0 {
                name_best(&in_tables, &mut scores.named);
            }
        }
        self.score_values(catalog, query, &mut scores);
        scores
    }

    /// Question word runs equal to stored values: their columns and tables
    /// gain, weighted by how many tables hold the value.
    fn score_values(&self, catalog: &Catalog, query: &Query, scores: &mut Scores) {
        let mut seen: Vec<&str> = Vec::new();
        for (key, words, weight) in &query.runs {
            let Some(refs) = self.values.get(key) else {
                continue;
            };
            if seen.contains(&key.as_str()) {
                continue;
            }
            seen.push(key);
            let mut tables: Vec<usize> = refs.iter().map(|r| r.table as usize).collect();
            tables.dedup();
            let idf = self.idf(tables.len());
            // One word the schema itself uses ("active", "transaction") may
            // name a thing rather than a value; "Berlin" can only be a value.
            let strength = if !key.contains(' ') && self.exact.contains_key(key) {
                AMBIGUOUS_VALUE
            } else {
                VALUE
            };
            let mut gains: Vec<(usize, f64)> = tables.iter().map(|&t| (t, 0.0)).collect();
            for r in refs {
                let (t, c) = (r.table as usize, r.column as usize);
                if let Some(g) = gains.iter_mut().find(|g| g.0 == t) {
                    g.1 += weight * idf * strength;
                }
                scores.tables[t] += weight * idf * strength;
                *scores.columns.entry((t, c)).or_insert(0.0) += weight * idf * strength;
                scores.values.push(ValueMatch {
                    table: t,
                    column: c,
                    value: catalog.tables[t].columns[c].common_values[r.value as usize].clone(),
                    matched: words.clone(),
                    from_question: *weight >= 1.0,
                });
            }
            scores.terms.push(gains);
            if *weight >= 1.0 && tables.len() <= NAMING_TABLES {
                for t in tables {
                    if !scores.named.contains(&t) {
                        scores.named.push(t);
                    }
                }
            }
        }
    }

    /// BM25's inverse document frequency over tables: always positive, high
    /// for a term few tables hold.
    fn idf(&self, tables_with_term: usize) -> f64 {
        let n = self.tables as f64;
        let df = tables_with_term as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }
}

/// Whether an identifier word holds a stem: `sbcustcountry` holds
/// `countri` (of "countries") as `country`.
fn contains_stem(name: &str, stem: &str) -> bool {
    match stem.strip_suffix('i') {
        Some(base) if name.contains(base) => {
            name.contains(stem) || name.contains(&format!("{base}y"))
        }
        _ => name.contains(stem),
    }
}

/// Add to `named` the tables a term fits best, if it fits them well and
/// they are few.
fn name_best(in_tables: &HashMap<usize, f64>, named: &mut Vec<usize>) {
    let best = in_tables.values().copied().fold(0.0, f64::max);
    if best < NAMING_STRENGTH {
        return;
    }
    let mut top: Vec<usize> = in_tables
        .iter()
        .filter(|&(_, &w)| w >= best - 1e-9)
        .map(|(&t, _)| t)
        .collect();
    if top.len() <= NAMING_TABLES {
        top.sort_unstable();
        for t in top {
            if !named.contains(&t) {
                named.push(t);
            }
        }
    }
}

/// The lookup key of a stored value, or `None` for values too common or
/// too vague to say anything when a question contains them: numbers, single
/// characters, function words, long free text.
fn searchable_value(value: &str) -> Option<String> {
    let words = split_words(value);
    let informative = words
        .iter()
        .any(|w| w.len() > 1 && !is_stop_word(w) && !w.bytes().all(|b| b.is_ascii_digit()));
    (informative && words.len() <= MAX_VALUE_WORDS && value.len() <= 60).then(|| value_key(&words))
}
