//! Schema retrieval: the part of the catalog a question needs, rendered for
//! the prompt within a token budget.
//!
//! A model writes better SQL from the few tables a question is about than
//! from a whole schema, and a 500-table schema does not fit a prompt anyway.
//! [`SchemaIndex`] holds a catalog snapshot with its words indexed once;
//! [`SchemaIndex::retrieve`] then, per question:
//!
//! 1. scores tables and columns lexically ([`score`]): identifier words,
//!    comments, IDF weighting, and question words equal to a column's common
//!    values (which also become [`ValueHint`]s);
//! 2. takes tables greedily by what each adds to the question's coverage
//!    (a term counts once, at its best match; a table joining one already
//!    taken counts more), adds the tables some question word names best, and
//!    the tables on the shortest join path between any two of them
//!    ([`graph`]), so the model can write the joins;
//! 3. lists the leading tables whole and the others with their keys, labels
//!    and matched columns, notes (comments, values) on matched columns only,
//!    within the token budget ([`fit`], [`render`]).
//!
//! A schema small enough to cost little is sent whole: pruning it saves
//! almost nothing and risks leaving out what the question needs.

mod fit;
mod graph;
mod render;
pub(crate) mod roles;
mod score;
#[cfg(test)]
mod tests;
pub(crate) mod words;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use helios_planner::{Catalog, QualifiedName};

use graph::JoinGraph;
use render::{Notes, TableDdl};
use score::{Lexicon, Query, Scores};

/// Characters per token assumed by [`estimate_tokens`].
const CHARS_PER_TOKEN: usize = 4;
/// The conversation's earlier words count this much of the question's.
const CONTEXT_WEIGHT: f64 = 0.5;
/// A table is taken while it adds at least this share of what the first
/// table did to the question's coverage.
const RELATIVE_CUTOFF: f64 = 0.25;
/// A term a taken table already matched still counts this much of its weight
/// for the next: two tables of the same module ("sales") belong together.
const COVERED_GAIN: f64 = 0.25;
/// What a table adds counts this much more when it joins a taken table.
const NEIGHBOUR_BONUS: f64 = 0.5;
/// A schema whose whole rendering takes at most this share of the budget is
/// sent whole (400 tokens of the default 4000: a handful of tables).
const WHOLE_SCHEMA_SHARE: f64 = 0.1;
/// Join paths are completed among this many best tables.
const MAX_BRIDGED: usize = 12;
/// Value hints shown at most.
const MAX_HINTS: usize = 10;
/// Tables chosen by embedding similarity on top of the lexical choice, at
/// most, and how close to the most similar one they must be.
const SIMILAR_PICKS: usize = 2;
const SIMILAR_WITHIN: f32 = 0.9;
const SIMILAR_MARGIN: f32 = 0.05;

/// The tables most similar by embedding: up to [`SIMILAR_PICKS`] that stand
/// out from the rest — at least [`SIMILAR_MARGIN`] above the mean, and
/// within [`SIMILAR_WITHIN`] of the best's lead. Real embeddings put every
/// table at some similarity; only a lead means anything.
fn most_similar(similarity: &[f32]) -> Vec<usize> {
    if similarity.is_empty() {
        return Vec::new();
    }
    let mean = similarity.iter().sum::<f32>() / similarity.len() as f32;
    let mut order: Vec<usize> = (0..similarity.len()).collect();
    order.sort_by(|&a, &b| similarity[b].total_cmp(&similarity[a]).then(a.cmp(&b)));
    let lead = similarity[order[0]] - mean;
    if lead < SIMILAR_MARGIN {
        return Vec::new();
    }
    order
        .into_iter()
        .take(SIMILAR_PICKS)
        .filter(|&t| similarity[t] - mean >= lead * SIMILAR_WITHIN)
        .collect()
}

/// The text embedded for a table: its name, columns and comment in words.
pub fn table_description(table: &helios_planner::Table) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let mut d = format!(
        "{}: {}",
        table.name.replace('_', " "),
        columns.join(", ").replace('_', " ")
    );
    if let Some(c) = &table.comment {
        d.push_str(". ");
        d.push_str(c);
    }
    d
}

/// What [`SchemaIndex::retrieve`] may send.
#[derive(Debug, Clone)]
pub struct RetrievalOptions {
    /// Tokens (as [`estimate_tokens`] counts them) for the rendered schema section.
    pub token_budget: usize,
    /// Show columns' common values and value hints in the DDL. Off: no data
    /// value appears in [`Retrieved::ddl`]; values still rank tables, and
    /// [`Retrieved::value_hints`] still says what matched (for local use).
    pub share_values: bool,
    /// Earlier questions and SQL of the conversation: their words count too,
    /// with less weight, so a follow-up ("and by month?") keeps its tables.
    pub context: Vec<String>,
    /// Per table (catalog order), the cosine similarity of the question's
    /// embedding to the table's description, when the provider embeds:
    /// the most similar tables are chosen too, which finds tables a
    /// question names by a synonym ("clients" for `customers`).
    pub table_similarity: Option<Vec<f32>>,
}

impl Default for RetrievalOptions {
    fn default() -> Self {
        RetrievalOptions {
            token_budget: 4000,
            share_values: true,
            context: Vec::new(),
            table_similarity: None,
        }
    }
}

/// The schema part of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieved {
    /// The tables in [`Retrieved::ddl`], best first.
    pub tables: Vec<RetrievedTable>,
    /// Question words found among a kept column's common values.
    pub value_hints: Vec<ValueHint>,
    /// The rendered schema section for the prompt.
    pub ddl: String,
    /// `estimate_tokens(&ddl)`.
    pub tokens: usize,
    /// Tokens the whole catalog would take rendered the same way.
    pub schema_tokens: usize,
}

/// A table in the prompt and the columns shown for it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievedTable {
    pub name: QualifiedName,
    /// The columns shown, in the table's order.
    pub columns: Vec<String>,
    /// Relevance to the question (0 for a table that matched nothing: kept to
    /// complete a join path, or because the schema is sent whole).
    pub score: f64,
}

/// A question's words equal to a stored value: the model should filter
/// `table.column = 'value'`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueHint {
    pub table: QualifiedName,
    pub column: String,
    /// The value as stored.
    pub value: String,
    /// The question's words that matched it.
    pub matched: String,
}

/// A cheap estimate of a text's size in model tokens: one token per four
/// characters, rounded up. Close enough for English and SQL on the common
/// BPE tokenizers (they average 3.5 to 4.5 characters per token) to size a
/// prompt; never used where an exact count matters.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(CHARS_PER_TOKEN)
}

/// A catalog snapshot indexed for retrieval. Build once per catalog version
/// (it renders every table and indexes every word); retrieval is then a few
/// hash lookups and a short walk over the tables.
#[derive(Debug)]
pub struct SchemaIndex {
    catalog: Arc<Catalog>,
    lexicon: Lexicon,
    graph: JoinGraph,
    ddl: Vec<TableDdl>,
    /// Per table, the columns shown whenever it is ([`roles`]), ascending.
    skeleton: Vec<Vec<usize>>,
    /// Per table, its date and time columns, ascending.
    temporal: Vec<Vec<usize>>,
    /// Characters of the whole catalog rendered without / with values.
    full_chars: [usize; 2],
    /// See [`SchemaIndex::with_whole_schema_share`].
    whole_share: f64,
}

impl SchemaIndex {
    pub fn new(catalog: Arc<Catalog>) -> SchemaIndex {
        let ddl: Vec<TableDdl> = catalog.tables.iter().map(TableDdl::new).collect();
        let full_chars = [false, true].map(|values| {
            let notes = Notes {
                comment: true,
                values,
            };
            ddl.iter().map(|t| t.full_chars(notes)).sum()
        });
        let graph = JoinGraph::new(&catalog);
        let skeleton = catalog
            .tables
            .iter()
            .enumerate()
            .map(|(t, table)| {
                let mut columns: Vec<usize> = table
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| roles::is_key_like(&c.name) || roles::is_label(&c.name))
                    .map(|(i, _)| i)
                    .chain(ddl[t].key_columns.iter().copied())
                    .chain(ddl[t].single_keys.iter().copied())
                    .chain(graph.join_columns(t).iter().copied())
                    .collect();
                columns.sort_unstable();
                columns.dedup();
                columns
            })
            .collect();
        let temporal = catalog
            .tables
            .iter()
            .map(|table| {
                (0..table.columns.len())
                    .filter(|&i| roles::is_temporal(&table.columns[i]))
                    .collect()
            })
            .collect();
        SchemaIndex {
            lexicon: Lexicon::new(&catalog),
            graph,
            ddl,
            skeleton,
            temporal,
            full_chars,
            whole_share: WHOLE_SCHEMA_SHARE,
            catalog,
        }
    }

    /// Send the whole schema when it takes at most `share` of the token
    /// budget (by default a quarter); 0 always prunes, which is
    /// how a benchmark measures the ranking on small schemas.
    pub fn with_whole_schema_share(mut self, share: f64) -> SchemaIndex {
        self.whole_share = share;
        self
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The schema section for `question`.
    pub fn retrieve(&self, question: &str, opts: &RetrievalOptions) -> Retrieved {
        let mut query = Query::new();
        query.add(question, 1.0);
        for earlier in &opts.context {
            query.add(earlier, CONTEXT_WEIGHT);
        }
        let scores = self.lexicon.score(&self.catalog, &query);
        let values = opts.share_values;
        let budget = opts.token_budget.saturating_mul(CHARS_PER_TOKEN);
        let whole = self.full_chars[values as usize];

        let mut by_score: Vec<usize> = (0..self.catalog.tables.len()).collect();
        by_score.sort_by(|&a, &b| {
            scores.tables[b]
                .total_cmp(&scores.tables[a])
                .then(a.cmp(&b))
        });
        let send_whole = (whole as f64) <= budget as f64 * self.whole_share;
        let candidates = if send_whole {
            by_score
        } else {
            self.select(&scores, &by_score, opts.table_similarity.as_deref())
        };

        let hints = self.hints(&scores);
        let hint_lines: Vec<(usize, usize, String)> = hints
            .iter()
            .map(|&(t, c, v)| (t, c, render::hint_line(&self.catalog, t, c, v)))
            .collect();
        let reserved = if values {
            hint_lines.iter().map(|h| h.2.chars().count()).sum()
        } else {
            0
        };
        let layout = fit::fit(
            self,
            &scores,
            &candidates,
            budget.saturating_sub(reserved),
            values,
            query.mentions_time(),
            send_whole,
        );

        let mut ddl = String::new();
        for (t, columns) in &layout.tables {
            self.ddl[*t].write(&mut ddl, columns, |c| layout.notes(&scores, *t, c));
        }
        let mut value_hints = Vec::new();
        for (&(t, c, value), (_, _, line)) in hints.iter().zip(&hint_lines) {
            if !layout.shows(t, c) {
                continue;
            }
            if values {
                ddl.push_str(line);
            }
            let table = &self.catalog.tables[t];
            let matched = scores
                .values
                .iter()
                .find(|m| m.table == t && m.column == c && m.value == value)
                .map(|m| m.matched.clone())
                .unwrap_or_default();
            value_hints.push(ValueHint {
                table: table.qualified_name(),
                column: table.columns[c].name.clone(),
                value: value.to_string(),
                matched,
            });
        }
        let tables = layout
            .tables
            .iter()
            .map(|(t, columns)| {
                let table = &self.catalog.tables[*t];
                RetrievedTable {
                    name: table.qualified_name(),
                    columns: columns
                        .iter()
                        .map(|&c| table.columns[c].name.clone())
                        .collect(),
                    score: scores.tables[*t],
                }
            })
            .collect();
        Retrieved {
            tables,
            value_hints,
            tokens: estimate_tokens(&ddl),
            ddl,
            schema_tokens: whole.div_ceil(CHARS_PER_TOKEN),
        }
    }

    /// The relevant tables, most relevant first, each followed by the
    /// tables that complete its join paths to the earlier ones.
    ///
    /// Tables are taken greedily by what they add to the question's
    /// coverage: a term counts once, at the best weight any taken table
    /// matched it with. In a schema with an `orders` table in each of fifty
    /// modules, "sales orders per customer" takes `sales_orders`, then
    /// `sales_customers` (it adds "customer" as a table name), and none of
    /// the other `orders` (they add nothing). Taking stops when what a
    /// table adds falls under [`RELATIVE_CUTOFF`] of what the first one did.
    fn select(
        &self,
        scores: &Scores,
        by_score: &[usize],
        similarity: Option<&[f32]>,
    ) -> Vec<usize> {
        let similar = similarity.map(most_similar).unwrap_or_default();
        let best = by_score.first().map_or(0.0, |&t| scores.tables[t]);
        if best <= 0.0 {
            let mut order = by_score.to_vec();
            match similarity {
                // Nothing matched by words: by meaning, then as ranked.
                Some(s) if s.len() == order.len() => {
                    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)))
                }
                // Nothing matched: the best-connected tables are the likeliest hubs.
                _ => order.sort_by_key(|&t| std::cmp::Reverse(self.graph.neighbours(t).len())),
            }
            return order;
        }
        let picked = self.cover(scores);
        let mut picked: Vec<usize> = picked;
        for &t in scores.named.iter().chain(&similar) {
            if !picked.contains(&t) {
                picked.push(t);
            }
        }
        let mut rank = vec![usize::MAX; self.catalog.tables.len()];
        for (i, &t) in picked.iter().chain(by_score).enumerate() {
            if rank[t] == usize::MAX {
                rank[t] = i;
            }
        }
        let mut out: Vec<usize> = Vec::new();
        let mut seen: HashSet<usize> = HashSet::new();
        for (j, &t) in picked.iter().enumerate() {
            if seen.insert(t) {
                out.push(t);
            }
            if j >= MAX_BRIDGED {
                continue;
            }
            for &earlier in &picked[..j] {
                for b in self.graph.bridge(earlier, t, &rank).unwrap_or_default() {
                    if seen.insert(b) {
                        out.push(b);
                    }
                }
            }
        }
        out
    }

    /// Greedy coverage of the question's terms (see [`SchemaIndex::select`]).
    fn cover(&self, scores: &Scores) -> Vec<usize> {
        // Per table, the terms it matched: (term, gain).
        let mut by_table: HashMap<usize, Vec<(usize, f64)>> = HashMap::new();
        for (i, gains) in scores.terms.iter().enumerate() {
            for &(t, g) in gains {
                by_table.entry(t).or_default().push((i, g));
            }
        }
        let mut covered = vec![0.0f64; scores.terms.len()];
        let mut picked: Vec<usize> = Vec::new();
        let mut first = 0.0;
        loop {
            let mut best: Option<(usize, f64)> = None;
            for (&t, terms) in &by_table {
                let mut gain: f64 = terms
                    .iter()
                    .map(|&(i, g)| (g - covered[i]).max(0.0) + COVERED_GAIN * g.min(covered[i]))
                    .sum();
                if picked.iter().any(|p| self.graph.neighbours(t).contains(p)) {
                    gain *= 1.0 + NEIGHBOUR_BONUS;
                }
                let better = match best {
                    None => true,
                    Some((b, bg)) => gain > bg || (gain == bg && t < b),
                };
                if better {
                    best = Some((t, gain));
                }
            }
            let Some((t, gain)) = best else { break };
            if picked.is_empty() {
                first = gain;
            }
            if gain <= 0.0 || gain < first * RELATIVE_CUTOFF {
                break;
            }
            for &(i, g) in &by_table[&t] {
                covered[i] = covered[i].max(g);
            }
            by_table.remove(&t);
            picked.push(t);
        }
        picked
    }

    /// Distinct (table, column, value) matches of the question itself.
    fn hints<'a>(&self, scores: &'a Scores) -> Vec<(usize, usize, &'a str)> {
        let mut out: Vec<(usize, usize, &str)> = Vec::new();
        for m in scores.values.iter().filter(|m| m.from_question) {
            let key = (m.table, m.column, m.value.as_str());
            if !out.contains(&key) && out.len() < MAX_HINTS {
                out.push(key);
            }
        }
        out
    }
}
