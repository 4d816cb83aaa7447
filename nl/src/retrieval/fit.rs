//! Fitting the chosen tables into the token budget.
//!
//! The budget is a ceiling, not a target: a question about one table gets
//! that table, not 4000 tokens of its neighbours. Every chosen table is
//! shown with the columns it can't do without: its skeleton (see
//! [`super::roles`]), the columns the question matched and, for a question
//! about time, its temporal columns. The *leading* tables, those scoring
//! close to the best, are what the question is about and the model may
//! need any of their columns (the question says "revenue", the column is
//! `sale_price`), so they are listed whole. The others are context (join
//! paths, lookups): their other columns are only counted, `-- N more
//! columns not shown`.
//!
//! Notes (comments, common values) cost more than the columns they
//! annotate, so they go on the columns the question matched; a schema sent
//! whole keeps all of them.
//!
//! When even that does not fit, tables go in best first with their
//! essential columns while they fit (a table that does not fit is left out,
//! and smaller ones after it may still go in); then the leading tables get
//! their other columns, best first, while room remains.

use super::render::{more_chars, Notes};
use super::score::Scores;
use super::SchemaIndex;

/// Tables scoring at least this share of the best are listed whole.
const LEADING_SHARE: f64 = 0.6;

/// The tables and columns (ascending) that fit, and how to annotate them.
pub struct Layout {
    pub tables: Vec<(usize, Vec<usize>)>,
    /// Every shown column carries its notes, not only the matched ones.
    annotate_all: bool,
    share_values: bool,
}

impl Layout {
    /// How column `column` of table `table` is annotated.
    pub fn notes(&self, scores: &Scores, table: usize, column: usize) -> Notes {
        let shown = self.annotate_all || scores.column(table, column) > 0.0;
        Notes {
            comment: shown,
            values: shown && self.share_values,
        }
    }

    pub fn shows(&self, table: usize, column: usize) -> bool {
        self.tables
            .iter()
            .any(|(t, columns)| *t == table && columns.binary_search(&column).is_ok())
    }
}

/// Fit `candidates` (best first) into `budget` characters; `whole`: every
/// candidate is leading (the schema is sent whole).
pub fn fit(
    index: &SchemaIndex,
    scores: &Scores,
    candidates: &[usize],
    budget: usize,
    share_values: bool,
    time: bool,
    whole: bool,
) -> Layout {
    let best = candidates
        .iter()
        .map(|&t| scores.tables[t])
        .fold(0.0, f64::max);
    let leading = |t: usize| whole || scores.tables[t] >= best * LEADING_SHARE;
    let mut layout = Layout {
        tables: Vec::new(),
        annotate_all: whole,
        share_values,
    };
    let column_count = |t: usize| index.catalog.tables[t].columns.len();
    let essential = |t: usize| -> Vec<usize> {
        let mut columns: Vec<usize> = (0..column_count(t))
            .filter(|&c| {
                index.skeleton[t].binary_search(&c).is_ok()
                    || scores.column(t, c) > 0.0
                    || (time && index.temporal[t].binary_search(&c).is_ok())
            })
            .collect();
        if columns.is_empty() && column_count(t) > 0 {
            columns.push(0);
        }
        columns
    };
    let cost = |layout: &Layout, t: usize, columns: &[usize]| -> usize {
        index.ddl[t].chars(columns, |c| layout.notes(scores, t, c))
    };

    // The generous layout first: it is the one wanted whenever it fits.
    let planned: Vec<(usize, Vec<usize>)> = candidates
        .iter()
        .map(|&t| {
            let columns = if leading(t) {
                (0..column_count(t)).collect()
            } else {
                essential(t)
            };
            (t, columns)
        })
        .collect();
    let total: usize = planned.iter().map(|(t, c)| cost(&layout, *t, c)).sum();
    if total <= budget {
        layout.tables = planned;
        return layout;
    }

    // Too big: only matched columns keep their notes, essentials first.
    layout.annotate_all = false;
    let mut used = 0usize;
    let mut kept: Vec<(usize, Vec<usize>)> = Vec::new();
    for &t in candidates {
        let columns = essential(t);
        let c = cost(&layout, t, &columns);
        if used + c <= budget {
            used += c;
            kept.push((t, columns));
        }
    }
    for (t, shown) in kept.iter_mut().filter(|(t, _)| leading(*t)) {
        let ddl = &index.ddl[*t];
        let n = column_count(*t);
        let mut rest: Vec<usize> = (0..n).filter(|c| !shown.contains(c)).collect();
        rest.sort_by(|&a, &b| {
            scores
                .column(*t, b)
                .total_cmp(&scores.column(*t, a))
                .then(a.cmp(&b))
        });
        for c in rest {
            let hidden = n - shown.len();
            let cost = (ddl.column_chars(c, layout.notes(scores, *t, c)) + more_chars(hidden - 1))
                .saturating_sub(more_chars(hidden));
            if used + cost <= budget {
                used += cost;
                shown.push(c);
            }
        }
        shown.sort_unstable();
    }
    layout.tables = kept;
    layout
}
