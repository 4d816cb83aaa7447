//! The workload view: what Helios has seen each statement shape cost
//! ([`QueryLog`], shown by `SHOW HELIOS QUERIES`, like
//! `pg_stat_statements`), and a *set* of indexes for the shapes that cost
//! the most time, chosen greedily by total benefit ([`choose_indexes`]).
//!
//! Greedy selection: start with no new index; at each step, try every
//! remaining candidate together with the ones already chosen and keep the
//! one that lowers the workload's cost the most — each statement's planner
//! cost weighted by how often it ran — until no candidate lowers it by at
//! least `min_step_pct` or `max_indexes` are chosen. Costs come from
//! HypoPG (all chosen indexes hypothetical at once, so an index that only
//! helps where another already does is not chosen twice).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use helios_planner::catalog::{Catalog, TextQuery};

use crate::index::{self, explain, Candidate};

/// What Helios has seen one statement shape cost.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryStats {
    pub fingerprint: u64,
    /// The first text seen (literals included: a statement that can be
    /// planned as it is).
    pub text: String,
    pub calls: u64,
    pub total: Duration,
    pub max: Duration,
    pub rows: u64,
    /// Calls answered from the result cache.
    pub cache_hits: u64,
}

impl QueryStats {
    pub fn mean(&self) -> Duration {
        if self.calls == 0 {
            Duration::ZERO
        } else {
            self.total / self.calls as u32
        }
    }
}

/// Statement shapes remembered at most; past it, the cheapest half (by
/// total time) is forgotten.
const MAX_SHAPES: usize = 5_000;

/// Per-shape counters of everything Helios relays or answers.
#[derive(Debug, Default)]
pub struct QueryLog {
    shapes: Mutex<HashMap<u64, QueryStats>>,
}

impl QueryLog {
    /// One execution of a statement of this shape.
    pub fn record(&self, fingerprint: u64, text: &str, took: Duration, rows: u64, hit: bool) {
        let mut shapes = self.shapes.lock().expect("query log");
        if shapes.len() >= MAX_SHAPES && !shapes.contains_key(&fingerprint) {
            let mut totals: Vec<Duration> = shapes.values().map(|s| s.total).collect();
            totals.sort();
            let median = totals[totals.len() / 2];
            shapes.retain(|_, s| s.total > median);
        }
        let s = shapes.entry(fingerprint).or_insert_with(|| QueryStats {
            fingerprint,
            text: text.to_string(),
            calls: 0,
            total: Duration::ZERO,
            max: Duration::ZERO,
            rows: 0,
            cache_hits: 0,
        });
        s.calls += 1;
        s.total += took;
        s.max = s.max.max(took);
        s.rows += rows;
        s.cache_hits += u64::from(hit);
    }

    /// Every shape, most total time first.
    pub fn snapshot(&self) -> Vec<QueryStats> {
        let mut v: Vec<QueryStats> = self
            .shapes
            .lock()
            .expect("query log")
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        v
    }

    pub fn clear(&self) {
        self.shapes.lock().expect("query log").clear();
    }
}

/// A statement of the workload, with its weight.
#[derive(Debug, Clone)]
pub struct WorkloadStatement {
    pub text: String,
    /// How many times it ran (the weight of its cost).
    pub calls: f64,
}

/// An index chosen for the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct ChosenIndex {
    pub candidate: Candidate,
    /// The workload's weighted cost before and after adding it (with the
    /// indexes chosen before it).
    pub cost_before: f64,
    pub cost_after: f64,
    pub size_bytes: f64,
}

/// The outcome of [`choose_indexes`].
#[derive(Debug, Clone, Default)]
pub struct WorkloadAdvice {
    /// The weighted cost of the statements considered, as they are.
    pub cost_before: f64,
    /// With every chosen index.
    pub cost_after: f64,
    pub chosen: Vec<ChosenIndex>,
    /// Statements analyzed (planned), and those that could not be.
    pub statements: usize,
    pub skipped: usize,
}

impl WorkloadAdvice {
    pub fn saving_pct(&self) -> f64 {
        if self.cost_before <= 0.0 {
            0.0
        } else {
            (self.cost_before - self.cost_after) / self.cost_before * 100.0
        }
    }
}

/// Limits of the greedy search.
#[derive(Debug, Clone)]
pub struct Search {
    pub max_indexes: usize,
    /// A step must lower the workload cost by at least this, in percent.
    pub min_step_pct: f64,
    pub max_candidates: usize,
    pub max_columns: usize,
}

impl Default for Search {
    fn default() -> Self {
        Search {
            max_indexes: 5,
            min_step_pct: 1.0,
            max_candidates: 40,
            max_columns: 3,
        }
    }
}

/// Plan every statement with these hypothetical indexes; weighted total.
async fn workload_cost<Q: TextQuery>(
    q: &mut Q,
    statements: &[WorkloadStatement],
    indexes: &[&Candidate],
) -> Result<(f64, f64), String> {
    let mut total = 0.0;
    let mut size = 0.0;
    for s in statements {
        let (plan, made) = index::plan_with_hypothetical(q, &s.text, indexes).await?;
        total += plan.total_cost() * s.calls;
        size = made.iter().map(|(_, b)| b).sum();
    }
    Ok((total, size))
}

/// Choose a set of indexes for `statements` (HypoPG required).
pub async fn choose_indexes<Q: TextQuery>(
    q: &mut Q,
    catalog: &Catalog,
    statements: &[WorkloadStatement],
    search: &Search,
) -> Result<WorkloadAdvice, String> {
    // Statements that plan, and the candidates of all of them.
    let mut planned = Vec::new();
    let mut skipped = 0;
    let mut cands: Vec<Candidate> = Vec::new();
    for s in statements {
        let Ok(stmts) = helios_planner::sql::parse(&s.text) else {
            skipped += 1;
            continue;
        };
        let [stmt] = stmts.as_slice() else {
            skipped += 1;
            continue;
        };
        if explain::explain(q, &s.text).await.is_err() {
            skipped += 1;
            continue;
        }
        let uses = index::table_uses(stmt, catalog);
        for c in index::candidates(&uses, catalog, search.max_columns) {
            if !cands.contains(&c) {
                cands.push(c);
            }
        }
        planned.push(s.clone());
    }
    cands.truncate(search.max_candidates);
    let (before, _) = workload_cost(q, &planned, &[]).await?;
    let mut advice = WorkloadAdvice {
        cost_before: before,
        cost_after: before,
        chosen: Vec::new(),
        statements: planned.len(),
        skipped,
    };
    let mut remaining = cands;
    while advice.chosen.len() < search.max_indexes && !remaining.is_empty() {
        let mut best: Option<(usize, f64, f64)> = None;
        for (i, c) in remaining.iter().enumerate() {
            let mut set: Vec<&Candidate> = advice.chosen.iter().map(|x| &x.candidate).collect();
            set.push(c);
            let (cost, size) = workload_cost(q, &planned, &set).await?;
            if best.is_none_or(|(_, b, _)| cost < b) {
                best = Some((i, cost, size));
            }
        }
        let Some((i, cost, size)) = best else { break };
        let step = (advice.cost_after - cost) / advice.cost_before.max(f64::MIN_POSITIVE) * 100.0;
        if step < search.min_step_pct {
            break;
        }
        let candidate = remaining.remove(i);
        let before_size: f64 = advice.chosen.iter().map(|c| c.size_bytes).sum();
        advice.chosen.push(ChosenIndex {
            candidate,
            cost_before: advice.cost_after,
            cost_after: cost,
            size_bytes: (size - before_size).max(0.0),
        });
        advice.cost_after = cost;
    }
    Ok(advice)
}

/// Without HypoPG: each statement's candidates estimated from `pg_stats`
/// on their own ([`crate::index::estimate`]); indexes chosen by their
/// total weighted benefit, each statement counted with the best chosen
/// index that serves it. Indexes do not combine in this model.
pub async fn choose_by_statistics<Q: TextQuery>(
    q: &mut Q,
    catalog: &Catalog,
    statements: &[WorkloadStatement],
    search: &Search,
    options: &crate::Options,
) -> Result<WorkloadAdvice, String> {
    // Per statement: its weight, its cost, and each candidate's cost.
    let mut per: Vec<(f64, f64, Vec<index::Verified>)> = Vec::new();
    let mut skipped = 0;
    for s in statements {
        let Ok(stmts) = helios_planner::sql::parse(&s.text) else {
            skipped += 1;
            continue;
        };
        let [stmt] = stmts.as_slice() else {
            skipped += 1;
            continue;
        };
        let Ok(plan) = explain::explain(q, &s.text).await else {
            skipped += 1;
            continue;
        };
        let uses = index::table_uses(stmt, catalog);
        let cands = index::candidates(&uses, catalog, search.max_columns);
        let subject = index::Subject {
            sql: &s.text,
            plan: &plan,
            catalog,
            uses: &uses,
            candidates: &cands,
        };
        let verified = index::verify_candidates(q, &subject, false).await?;
        let good = verified
            .into_iter()
            .filter(|v| v.saving_pct() >= options.min_saving_pct)
            .collect();
        per.push((s.calls, plan.total_cost(), good));
    }
    let cost_before: f64 = per.iter().map(|(w, c, _)| w * c).sum();
    let mut advice = WorkloadAdvice {
        cost_before,
        cost_after: cost_before,
        chosen: Vec::new(),
        statements: per.len(),
        skipped,
    };
    // Each statement's cost with the chosen set: its best chosen index.
    let cost_with = |chosen: &[Candidate]| -> f64 {
        per.iter()
            .map(|(w, c, vs)| {
                let best = vs
                    .iter()
                    .filter(|v| chosen.contains(&v.candidate))
                    .map(|v| v.cost_after)
                    .fold(*c, f64::min);
                w * best
            })
            .sum()
    };
    let mut all: Vec<Candidate> = Vec::new();
    for (_, _, vs) in &per {
        for v in vs {
            if !all.contains(&v.candidate) {
                all.push(v.candidate.clone());
            }
        }
    }
    let mut chosen: Vec<Candidate> = Vec::new();
    while chosen.len() < search.max_indexes {
        let best = all
            .iter()
            .filter(|c| !chosen.contains(c))
            .map(|c| {
                let mut with = chosen.clone();
                with.push(c.clone());
                (c.clone(), cost_with(&with))
            })
            .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        let Some((c, cost)) = best else { break };
        let step = (advice.cost_after - cost) / advice.cost_before.max(f64::MIN_POSITIVE) * 100.0;
        if step < search.min_step_pct {
            break;
        }
        chosen.push(c.clone());
        advice.chosen.push(ChosenIndex {
            candidate: c,
            cost_before: advice.cost_after,
            cost_after: cost,
            size_bytes: 0.0,
        });
        advice.cost_after = cost;
    }
    Ok(advice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_counts_per_shape_and_sorts_by_total_time() {
        let log = QueryLog::default();
        let ms = Duration::from_millis;
        log.record(1, "select 1", ms(5), 1, false);
        log.record(1, "select 2", ms(15), 1, true);
        log.record(2, "update t set a = 1", ms(3), 10, false);
        let s = log.snapshot();
        assert_eq!(s[0].fingerprint, 1);
        assert_eq!((s[0].calls, s[0].rows, s[0].cache_hits), (2, 2, 1));
        assert_eq!(
            (s[0].total, s[0].max, s[0].mean()),
            (ms(20), ms(15), ms(10))
        );
        assert_eq!(s[0].text, "select 1", "the first text is kept");
        assert_eq!(s[1].rows, 10);
    }

    #[test]
    fn the_log_is_bounded() {
        let log = QueryLog::default();
        for fp in 0..(MAX_SHAPES as u64 + 10) {
            log.record(fp, "x", Duration::from_micros(fp), 0, false);
        }
        let n = log.snapshot().len();
        assert!(n <= MAX_SHAPES, "{n}");
        // The most expensive survive.
        assert!(log
            .snapshot()
            .iter()
            .any(|s| s.fingerprint == MAX_SHAPES as u64 + 9));
    }
}
