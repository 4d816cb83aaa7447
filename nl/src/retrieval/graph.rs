//! Join paths: which tables a query needs to connect the tables a question
//! names.
//!
//! The graph's edges are the declared foreign keys, in both directions. Many
//! real schemas declare none (the tables came from a loader, or the keys
//! live in the application), so columns that plainly name another table's
//! key join too: `customer_id` next to a table `customers`, or the same
//! key-like column name (`aid`, `business_id`) in two tables. Those inferred
//! edges only steer which tables go into the prompt; the DDL shows declared
//! references only.

use std::collections::VecDeque;

use helios_planner::Catalog;

use super::roles::is_key_like;
use super::words::{split_words, stem};

/// Bridges longer than this are not worth their tokens: the tables are
/// probably not meant to be joined.
const MAX_HOPS: usize = 4;

/// Undirected join graph over the catalog's tables (by index).
#[derive(Debug)]
pub struct JoinGraph {
    adjacent: Vec<Vec<usize>>,
    /// Per table, the columns its joins use (declared or inferred), ascending.
    join_columns: Vec<Vec<usize>>,
}

impl JoinGraph {
    pub fn new(catalog: &Catalog) -> JoinGraph {
        let n = catalog.tables.len();
        let mut adjacent: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut join_columns: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut link = |a: usize, b: usize| {
            if a != b && !adjacent[a].contains(&b) {
                adjacent[a].push(b);
                adjacent[b].push(a);
            }
        };
        let column_of = |t: usize, name: &str| {
            catalog.tables[t]
                .columns
                .iter()
                .position(|c| c.name == name)
        };
        let index = |schema: &str, name: &str| {
            catalog
                .tables
                .binary_search_by(|t| (t.schema.as_str(), t.name.as_str()).cmp(&(schema, name)))
                .ok()
        };
        for (a, table) in catalog.tables.iter().enumerate() {
            for fk in &table.foreign_keys {
                if let Some(b) = index(&fk.ref_schema, &fk.ref_table) {
                    link(a, b);
                    join_columns[a].extend(fk.columns.iter().filter_map(|c| column_of(a, c)));
                    join_columns[b].extend(fk.ref_columns.iter().filter_map(|c| column_of(b, c)));
                }
            }
        }
        // Inferred edges. `<table>_id` names its table (singular or plural,
        // same schema first, then any); a key-like name shared by two tables
        // joins them unless a declared key already covers the column.
        let mut by_stem: Vec<(String, usize)> = catalog
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| (stem_of_name(&t.name), i))
            .collect();
        by_stem.sort();
        let mut by_key_column: Vec<(String, usize, usize)> = Vec::new();
        for (a, table) in catalog.tables.iter().enumerate() {
            for (ci, column) in table.columns.iter().enumerate() {
                let declared = table
                    .foreign_keys
                    .iter()
                    .any(|fk| fk.columns.contains(&column.name));
                if declared {
                    continue;
                }
                let lower = column.name.to_lowercase();
                if let Some(target) = lower
                    .strip_suffix("_id")
                    .or_else(|| lower.strip_suffix("id"))
                    .filter(|t| t.len() >= 3)
                {
                    let target = stem_of_name(target.trim_end_matches('_'));
                    let candidates: Vec<usize> = by_stem
                        .iter()
                        .filter(|(s, _)| *s == target)
                        .map(|&(_, i)| i)
                        .collect();
                    let pick = candidates
                        .iter()
                        .find(|&&i| catalog.tables[i].schema == table.schema)
                        .or(candidates.first());
                    if let Some(&b) = pick {
                        link(a, b);
                        join_columns[a].push(ci);
                        let target = &catalog.tables[b];
                        if target.primary_key.len() == 1 {
                            join_columns[b].extend(column_of(b, &target.primary_key[0]));
                        }
                    }
                }
                if lower != "id" && lower.len() >= 3 && is_key_like(&lower) {
                    by_key_column.push((lower, a, ci));
                }
            }
        }
        by_key_column.sort();
        by_key_column.dedup();
        for group in by_key_column.chunk_by(|x, y| x.0 == y.0) {
            // A name in very many tables (`tenant_id`) is a shared attribute,
            // not a join path worth following.
            if group.len() > 1 && group.len() <= 8 {
                for (i, x) in group.iter().enumerate() {
                    join_columns[x.1].push(x.2);
                    for y in &group[i + 1..] {
                        link(x.1, y.1);
                    }
                }
            }
        }
        for columns in &mut join_columns {
            columns.sort_unstable();
            columns.dedup();
        }
        JoinGraph {
            adjacent,
            join_columns,
        }
    }

    /// The columns of `table` that its joins use.
    pub fn join_columns(&self, table: usize) -> &[usize] {
        &self.join_columns[table]
    }

    pub fn neighbours(&self, table: usize) -> &[usize] {
        &self.adjacent[table]
    }

    /// The tables strictly between `from` and `to` on a shortest path, or
    /// `None` when they are not connected within [`MAX_HOPS`]. Among equally
    /// short paths, the one through tables with higher `rank` (lower is
    /// better) is taken.
    pub fn bridge(&self, from: usize, to: usize, rank: &[usize]) -> Option<Vec<usize>> {
        if from == to {
            return Some(Vec::new());
        }
        let n = self.adjacent.len();
        let mut parent: Vec<Option<usize>> = vec![None; n];
        let mut depth: Vec<usize> = vec![usize::MAX; n];
        depth[from] = 0;
        let mut queue = VecDeque::from([from]);
        while let Some(at) = queue.pop_front() {
            if depth[at] >= MAX_HOPS {
                continue;
            }
            let mut next: Vec<usize> = self.adjacent[at]
                .iter()
                .copied()
                .filter(|&b| depth[b] == usize::MAX)
                .collect();
            next.sort_by_key(|&b| rank[b]);
            for b in next {
                depth[b] = depth[at] + 1;
                parent[b] = Some(at);
                if b == to {
                    let mut path = Vec::new();
                    let mut p = parent[to];
                    while let Some(x) = p.filter(|&x| x != from) {
                        path.push(x);
                        p = parent[x];
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(b);
            }
        }
        None
    }
}

/// A table name (or the part of a column name before `_id`) in a form that
/// matches both `customer_id` → `customers` and `person_id` → `person`.
fn stem_of_name(name: &str) -> String {
    split_words(name)
        .iter()
        .map(|w| stem(w))
        .collect::<Vec<_>>()
        .join("_")
}
