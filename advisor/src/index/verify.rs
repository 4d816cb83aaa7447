//! Verifying candidates and choosing the one to recommend.

use std::collections::HashMap;

use helios_planner::catalog::{Catalog, TextQuery};

use super::candidates::{Candidate, TableUse};
use super::estimate::{self, ColumnStats, Condition};
use super::explain::explain;
use crate::plan::{Plan, PlanNode};
use crate::{Finding, Options, Severity};

/// How a candidate's saving was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The planner's own cost with a hypothetical index (HypoPG).
    HypoPg,
    /// The statistics model (see [`super::estimate`]).
    Statistics,
}

/// A candidate with its cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub candidate: Candidate,
    pub cost_before: f64,
    pub cost_after: f64,
    /// HypoPG's estimate of the index's size.
    pub size_bytes: Option<f64>,
    pub method: Method,
}

impl Verified {
    pub fn saving_pct(&self) -> f64 {
        if self.cost_before <= 0.0 {
            0.0
        } else {
            (self.cost_before - self.cost_after) / self.cost_before * 100.0
        }
    }
}

/// Candidates verified per statement, at most (each costs an EXPLAIN).
const MAX_CANDIDATES: usize = 12;

/// Whether the upstream database has HypoPG installed.
pub async fn has_hypopg<Q: TextQuery>(q: &mut Q) -> bool {
    q.query_text("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'hypopg'")
        .await
        .is_ok_and(|rows| !rows.is_empty())
}

fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Plan `sql` with these hypothetical indexes in place (and only them);
/// the plan and each index's `(oid, size in bytes)`.
pub async fn plan_with_hypothetical<Q: TextQuery>(
    q: &mut Q,
    sql: &str,
    indexes: &[&Candidate],
) -> Result<(Plan, Vec<(String, f64)>), String> {
    q.query_text("SELECT pg_catalog.count(*) FROM hypopg_reset()")
        .await?;
    let mut made = Vec::new();
    for c in indexes {
        let rows = q
            .query_text(&format!(
                "SELECT indexrelid::text, hypopg_relation_size(indexrelid)::text \
                   FROM hypopg_create_index({})",
                literal(&c.hypothetical_ddl())
            ))
            .await?;
        let row = rows.first().ok_or("hypopg_create_index returned nothing")?;
        let oid = row.first().cloned().flatten().unwrap_or_default();
        let size = row
            .get(1)
            .cloned()
            .flatten()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        made.push((oid, size));
    }
    let plan = explain(q, sql).await;
    let reset = q
        .query_text("SELECT pg_catalog.count(*) FROM hypopg_reset()")
        .await;
    let plan = plan?;
    reset?;
    Ok((plan, made))
}

/// Whether the plan uses the hypothetical index with this oid (HypoPG
/// names them `<oid>btree_...`).
pub(crate) fn uses_index(plan: &Plan, oid: &str) -> bool {
    let tag = format!("<{oid}>");
    plan.root
        .walk()
        .any(|n| n.index_name.as_deref().is_some_and(|i| i.contains(&tag)))
}

async fn with_hypopg<Q: TextQuery>(
    q: &mut Q,
    sql: &str,
    before: &Plan,
    cands: &[Candidate],
) -> Result<Vec<Verified>, String> {
    let mut out = Vec::new();
    for c in cands.iter().take(MAX_CANDIDATES) {
        let (plan, made) = plan_with_hypothetical(q, sql, &[c]).await?;
        let (oid, size) = made.into_iter().next().unwrap_or_default();
        if !uses_index(&plan, &oid) {
            continue;
        }
        out.push(Verified {
            candidate: c.clone(),
            cost_before: before.total_cost(),
            cost_after: plan.total_cost(),
            size_bytes: Some(size),
            method: Method::HypoPg,
        });
    }
    Ok(out)
}

/// The sequential scans of `schema.table` in a plan.
fn seq_scans<'p>(plan: &'p Plan, schema: &str, table: &str) -> Vec<&'p PlanNode> {
    plan.root
        .walk()
        .filter(|n| {
            n.node_type == "Seq Scan"
                && n.relation.as_deref() == Some(table)
                && n.schema.as_deref().is_none_or(|s| s == schema)
        })
        .collect()
}

async fn with_statistics<Q: TextQuery>(
    q: &mut Q,
    catalog: &Catalog,
    before: &Plan,
    uses: &[TableUse],
    cands: &[Candidate],
) -> Result<Vec<Verified>, String> {
    let mut stats: HashMap<(String, String), HashMap<String, ColumnStats>> = HashMap::new();
    let mut out = Vec::new();
    for c in cands.iter().take(MAX_CANDIDATES) {
        let scans = seq_scans(before, &c.schema, &c.table);
        let (Some(table), Some(used)) = (
            catalog.table(&c.schema, &c.table),
            uses.iter()
                .find(|u| u.schema == c.schema && u.table == c.table),
        ) else {
            continue;
        };
        if scans.is_empty() {
            continue;
        }
        let key = (c.schema.clone(), c.table.clone());
        if !stats.contains_key(&key) {
            let rows = q
                .query_text(&estimate::stats_sql(&c.schema, &c.table))
                .await?;
            stats.insert(key.clone(), estimate::read_stats(&rows));
        }
        let cols = &stats[&key];
        let rows = table
            .stats
            .as_ref()
            .map(|s| s.live_rows)
            .filter(|r| *r > 0.0)
            .unwrap_or(table.row_estimate)
            .max(1.0);
        let pages = table
            .stats
            .as_ref()
            .map(|s| s.pages)
            .filter(|p| *p > 0.0)
            .unwrap_or(rows / 50.0);
        // The index serves its leading columns' filters, in order, up to
        // and including the first range.
        let mut selectivity = 1.0;
        for col in &c.columns {
            let cond = used
                .conditions
                .get(col)
                .cloned()
                .unwrap_or(Condition::Unfiltered);
            let s = cols.get(col).map_or(0.1, |st| st.selectivity(&cond, rows));
            selectivity *= s;
            if !matches!(cond, Condition::Equals(_)) {
                break;
            }
        }
        let correlation = cols.get(&c.columns[0]).map_or(0.0, |s| s.correlation);
        let index_cost =
            estimate::index_scan_cost(rows, pages, selectivity, correlation, c.columns.len());
        let scanned: f64 = scans.iter().map(|n| n.total_cost).sum();
        let replaced: f64 = scans.iter().map(|n| n.total_cost.min(index_cost)).sum();
        let total = before.total_cost();
        out.push(Verified {
            candidate: c.clone(),
            cost_before: total,
            cost_after: (total - scanned + replaced).max(0.0),
            size_bytes: None,
            method: Method::Statistics,
        });
    }
    Ok(out)
}

/// A statement to find an index for.
pub struct Subject<'a> {
    pub sql: &'a str,
    /// Its current plan.
    pub plan: &'a Plan,
    pub catalog: &'a Catalog,
    pub uses: &'a [TableUse],
    pub candidates: &'a [Candidate],
}

/// Every candidate the planner (HypoPG) would use, or the statistics model
/// finds cheaper, with its cost.
pub async fn verify_candidates<Q: TextQuery>(
    q: &mut Q,
    s: &Subject<'_>,
    hypopg: bool,
) -> Result<Vec<Verified>, String> {
    if s.candidates.is_empty() || s.plan.total_cost() <= 0.0 {
        return Ok(Vec::new());
    }
    if hypopg {
        with_hypopg(q, s.sql, s.plan, s.candidates).await
    } else {
        with_statistics(q, s.catalog, s.plan, s.uses, s.candidates).await
    }
}

/// The best index for one statement, as a finding, if one saves enough.
pub async fn recommend<Q: TextQuery>(
    q: &mut Q,
    s: &Subject<'_>,
    hypopg: bool,
    options: &Options,
) -> Result<Option<Finding>, String> {
    if s.candidates.is_empty() || s.plan.total_cost() <= 0.0 {
        return Ok(None);
    }
    let verified = verify_candidates(q, s, hypopg).await?;
    let catalog = s.catalog;
    // The greatest saving; of equal ones, the fewest columns.
    let best = verified.into_iter().max_by(|a, b| {
        a.saving_pct()
            .partial_cmp(&b.saving_pct())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.candidate.columns.len().cmp(&a.candidate.columns.len()))
    });
    let Some(best) = best.filter(|v| v.saving_pct() >= options.min_saving_pct) else {
        return Ok(None);
    };
    Ok(Some(finding(&best, catalog, options)))
}

/// The recommendation, with its figures.
pub(crate) fn finding(v: &Verified, catalog: &Catalog, options: &Options) -> Finding {
    let saving = v.saving_pct();
    let severity = if saving >= 90.0 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let how = match v.method {
        Method::HypoPg => {
            let size = v
                .size_bytes
                .map(|b| format!(", about {}", human_bytes(b)))
                .unwrap_or_default();
            format!("verified with a hypothetical index (HypoPG{size})")
        }
        Method::Statistics => {
            "estimated from pg_stats (HypoPG is not installed in this database)".to_string()
        }
    };
    let mut detail = format!(
        "The planner's cost goes from {:.0} to {:.0} with an index on {} — {how}.",
        v.cost_before,
        v.cost_after,
        v.candidate.label()
    );
    if let Some(stats) = catalog
        .table(&v.candidate.schema, &v.candidate.table)
        .and_then(|t| t.stats.as_ref())
    {
        let share = stats.write_share();
        if share >= options.write_heavy_share {
            detail.push_str(&format!(
                " {} is write-heavy ({:.0}% of its row operations are writes): every \
                 INSERT, UPDATE and DELETE would also maintain the index.",
                v.candidate.table,
                share * 100.0
            ));
        }
    }
    Finding::new(
        severity,
        "missing_index",
        format!(
            "an index on {} would cut the cost by {saving:.0}%",
            v.candidate.label()
        ),
        detail,
    )
    .at(v.candidate.label())
    .suggest(v.candidate.ddl())
    .costs(v.cost_before, v.cost_after)
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 4] = ["bytes", "kB", "MB", "GB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_postgresql_prints_them() {
        assert_eq!(human_bytes(512.0), "512 bytes");
        assert_eq!(human_bytes(2_200_000.0), "2.1 MB");
    }
}
