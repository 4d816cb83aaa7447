//! What an index would cost, estimated from `pg_stats` when HypoPG is not
//! there to ask the planner itself.
//!
//! The model follows PostgreSQL's own (`costsize.c`, `selfuncs.c`) closely
//! enough to rank candidates and to tell a large saving from a small one:
//!
//! - **Selectivity** of `col = value`: the value's frequency if it is among
//!   `most_common_vals`; otherwise the rest of the rows shared evenly by the
//!   other distinct values, `(1 − null_frac − Σ mcv_freqs) / (n_distinct −
//!   #mcv)`; for a parameter, `1 / n_distinct`. A range comparison with a
//!   literal reads the fraction of `histogram_bounds` on its side; without
//!   one, 1/3 (PostgreSQL's `DEFAULT_INEQ_SEL`). Columns multiply
//!   (independence, as the planner assumes without extended statistics).
//! - **Index scan cost** for `N` rows on `P` heap pages, selectivity `s`:
//!   descending the tree (`log2 N` comparisons), reading `s` of the index's
//!   leaf pages at `random_page_cost`, the heap pages the rows are on —
//!   `s·P` pages read in order when the column's `correlation` is ±1,
//!   `min(s·N, P)` random pages when it is 0, interpolated by
//!   `correlation²` — and `cpu_index_tuple_cost + cpu_tuple_cost` per row.
//! - The statement's cost with the index: its current plan's cost, minus
//!   the sequential scans of that table, plus the index scan where that is
//!   cheaper.
//!
//! Defaults are PostgreSQL's (`seq_page_cost` 1, `random_page_cost` 4,
//! `cpu_tuple_cost` 0.01, `cpu_index_tuple_cost` 0.005,
//! `cpu_operator_cost` 0.0025).

use std::collections::HashMap;

use helios_planner::catalog::queries::parse_array_literal;
use helios_planner::catalog::TextRows;

const RANDOM_PAGE_COST: f64 = 4.0;
const SEQ_PAGE_COST: f64 = 1.0;
const CPU_TUPLE_COST: f64 = 0.01;
const CPU_INDEX_TUPLE_COST: f64 = 0.005;
const CPU_OPERATOR_COST: f64 = 0.0025;
const DEFAULT_INEQ_SEL: f64 = 1.0 / 3.0;
const DEFAULT_EQ_SEL: f64 = 0.005;
const PAGE: f64 = 8192.0;

/// One column's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnStats {
    pub null_frac: f64,
    /// Positive: a count; negative: a fraction of the rows.
    pub n_distinct: f64,
    pub mcv: Vec<String>,
    pub mcf: Vec<f64>,
    pub histogram: Vec<String>,
    pub correlation: f64,
}

/// The query for a table's column statistics.
pub fn stats_sql(schema: &str, table: &str) -> String {
    let lit = |s: &str| format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    format!(
        "SELECT attname::text, null_frac::text, n_distinct::text, most_common_vals::text, \
                most_common_freqs::text, histogram_bounds::text, correlation::text \
           FROM pg_catalog.pg_stats WHERE schemaname = {} AND tablename = {}",
        lit(schema),
        lit(table)
    )
}

/// Read the answer to [`stats_sql`].
pub fn read_stats(rows: &TextRows) -> HashMap<String, ColumnStats> {
    let mut out = HashMap::new();
    for r in rows {
        let text = |i: usize| r.get(i).cloned().flatten();
        let num = |i: usize| text(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let Some(name) = text(0) else { continue };
        out.insert(
            name,
            ColumnStats {
                null_frac: num(1),
                n_distinct: num(2),
                mcv: text(3)
                    .and_then(|v| parse_array_literal(&v))
                    .unwrap_or_default(),
                mcf: text(4)
                    .and_then(|v| parse_array_literal(&v))
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|f| f.parse().ok())
                    .collect(),
                histogram: text(5)
                    .and_then(|v| parse_array_literal(&v))
                    .unwrap_or_default(),
                correlation: num(6),
            },
        );
    }
    out
}

/// What the predicate on one index column asks.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `col = value` (`None`: a parameter or an expression).
    Equals(Option<String>),
    /// `col < value` (`less`) or `col > value`.
    Range { value: Option<String>, less: bool },
    /// Only sorted by (or joined on): no rows filtered out.
    Unfiltered,
}

impl ColumnStats {
    fn distinct(&self, rows: f64) -> f64 {
        let d = if self.n_distinct < 0.0 {
            -self.n_distinct * rows
        } else {
            self.n_distinct
        };
        d.max(1.0)
    }

    /// The share of rows the condition keeps.
    pub fn selectivity(&self, cond: &Condition, rows: f64) -> f64 {
        match cond {
            Condition::Unfiltered => 1.0,
            Condition::Equals(value) => {
                if let Some(v) = value {
                    if let Some(i) = self.mcv.iter().position(|m| m == v) {
                        return self.mcf.get(i).copied().unwrap_or(DEFAULT_EQ_SEL);
                    }
                    let rest = (1.0 - self.null_frac - self.mcf.iter().sum::<f64>()).max(0.0);
                    let others = (self.distinct(rows) - self.mcv.len() as f64).max(1.0);
                    return (rest / others).clamp(1.0 / rows.max(1.0), 1.0);
                }
                (1.0 / self.distinct(rows)).min(1.0)
            }
            Condition::Range { value, less } => {
                let Some(v) = value else {
                    return DEFAULT_INEQ_SEL;
                };
                histogram_fraction(&self.histogram, v, *less).unwrap_or(DEFAULT_INEQ_SEL)
            }
        }
    }
}

/// The fraction of histogram buckets below (`less`) or above `value`,
/// comparing as numbers when both are numbers, else as text.
fn histogram_fraction(bounds: &[String], value: &str, less: bool) -> Option<f64> {
    if bounds.len() < 2 {
        return None;
    }
    let below = match value.parse::<f64>() {
        Ok(v) => bounds
            .iter()
            .filter(|b| b.parse::<f64>().is_ok_and(|b| b < v))
            .count(),
        Err(_) => bounds.iter().filter(|b| b.as_str() < value).count(),
    };
    let frac = (below as f64 / bounds.len() as f64).clamp(0.0, 1.0);
    Some(if less { frac } else { 1.0 - frac })
}

/// The estimated cost of an index scan.
pub fn index_scan_cost(
    rows: f64,
    pages: f64,
    selectivity: f64,
    correlation: f64,
    columns: usize,
) -> f64 {
    let rows = rows.max(1.0);
    let pages = pages.max(1.0);
    let fetched = (selectivity * rows).max(1.0);
    // An index entry: an 8-byte tuple header plus ~8 bytes per key column.
    let leaf_pages = (rows * (8.0 + 8.0 * columns as f64) / (PAGE * 0.9)).max(1.0);
    let descent = rows.log2().max(1.0) * CPU_OPERATOR_COST;
    let index_io = (selectivity * leaf_pages).ceil().max(1.0) * RANDOM_PAGE_COST;
    let c2 = correlation * correlation;
    let in_order = (selectivity * pages).ceil().max(1.0) * SEQ_PAGE_COST;
    let scattered = fetched.min(pages) * RANDOM_PAGE_COST;
    let heap_io = c2 * in_order + (1.0 - c2) * scattered;
    let cpu = fetched * (CPU_INDEX_TUPLE_COST + CPU_TUPLE_COST + CPU_OPERATOR_COST);
    descent + index_io + heap_io + cpu
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> ColumnStats {
        ColumnStats {
            null_frac: 0.0,
            n_distinct: 1000.0,
            mcv: vec!["7".into(), "9".into()],
            mcf: vec![0.2, 0.1],
            histogram: (0..=10).map(|i| (i * 100).to_string()).collect(),
            correlation: 0.0,
        }
    }

    #[test]
    fn selectivity_reads_mcvs_distinct_counts_and_histograms() {
        let s = stats();
        let rows = 100_000.0;
        assert_eq!(
            s.selectivity(&Condition::Equals(Some("7".into())), rows),
            0.2
        );
        let other = s.selectivity(&Condition::Equals(Some("500".into())), rows);
        assert!((other - 0.7 / 998.0).abs() < 1e-9, "{other}");
        assert_eq!(s.selectivity(&Condition::Equals(None), rows), 0.001);
        let below = s.selectivity(
            &Condition::Range {
                value: Some("250".into()),
                less: true,
            },
            rows,
        );
        assert!((below - 3.0 / 11.0).abs() < 1e-9, "{below}");
        assert_eq!(
            s.selectivity(
                &Condition::Range {
                    value: None,
                    less: false
                },
                rows
            ),
            DEFAULT_INEQ_SEL
        );
    }

    #[test]
    fn a_selective_index_scan_is_far_cheaper_than_a_full_scan() {
        // 500,000 rows on 5,000 pages; a sequential scan costs about
        // 5,000 + 500,000 × 0.0125 = 11,250.
        let seq = 5_000.0 * SEQ_PAGE_COST + 500_000.0 * (CPU_TUPLE_COST + CPU_OPERATOR_COST);
        let one_in_5000 = index_scan_cost(500_000.0, 5_000.0, 1.0 / 5_000.0, 0.0, 1);
        assert!(one_in_5000 < seq * 0.05, "{one_in_5000} vs {seq}");
        // Half the table, scattered: worse than scanning it.
        let half = index_scan_cost(500_000.0, 5_000.0, 0.5, 0.0, 1);
        assert!(half > seq, "{half} vs {seq}");
        // Correlated: reading in order makes it cheaper.
        assert!(index_scan_cost(500_000.0, 5_000.0, 0.5, 1.0, 1) < half);
    }

    #[test]
    fn reads_pg_stats_rows() {
        let rows: TextRows = vec![vec![
            Some("status".into()),
            Some("0".into()),
            Some("3".into()),
            Some("{open,closed,\"on hold\"}".into()),
            Some("{0.5,0.3,0.2}".into()),
            None,
            Some("0.1".into()),
        ]];
        let s = read_stats(&rows);
        let st = &s["status"];
        assert_eq!(st.mcv, ["open", "closed", "on hold"]);
        assert_eq!(st.mcf, [0.5, 0.3, 0.2]);
        assert_eq!(st.correlation, 0.1);
    }
}
