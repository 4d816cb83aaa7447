//! Join paths along foreign keys, and the subqueries that reach the many
//! side of the root: `EXISTS (...)` and per-row counts.

use std::collections::{HashMap, VecDeque};

use super::intent::{Col, Intent};
use super::parse::Op;
use super::plan::filter_table;
use super::vocab::{Edge, Vocab};
use super::write::{ident, number, Writer};
use super::Refusal;

/// A hop between tables along a foreign key.
#[derive(Debug, Clone, Copy)]
pub struct Hop {
    pub edge: usize,
    /// From child to parent (many to one).
    pub up: bool,
}

/// Per table reached, the hops there; `None` where two shortest paths exist.
pub type Paths = HashMap<usize, Option<Vec<Hop>>>;

/// Paths from a table, as hops (BFS).
pub fn paths(vocab: &Vocab, from: usize, up_only: bool) -> Paths {
    let mut out: HashMap<usize, Option<Vec<Hop>>> = HashMap::new();
    let mut depth: HashMap<usize, usize> = HashMap::new();
    out.insert(from, Some(vec![]));
    depth.insert(from, 0);
    let mut queue = VecDeque::from([from]);
    while let Some(t) = queue.pop_front() {
        let here = out[&t].clone();
        let d = depth[&t];
        for &e in &vocab.edges_of[t] {
            let edge = &vocab.edges[e];
            let hops: Vec<(usize, bool)> = [
                (edge.child == t).then_some((edge.parent, true)),
                (edge.parent == t && !up_only).then_some((edge.child, false)),
            ]
            .into_iter()
            .flatten()
            .collect();
            for (next, up) in hops {
                if next == t {
                    continue;
                }
                match depth.get(&next) {
                    None => {
                        depth.insert(next, d + 1);
                        let path = here.clone().map(|mut p| {
                            p.push(Hop { edge: e, up });
                            p
                        });
                        out.insert(next, path);
                        queue.push_back(next);
                    }
                    // A second shortest way there: ambiguous.
                    Some(&nd) if nd == d + 1 => {
                        out.insert(next, None);
                    }
                    Some(_) => {}
                }
            }
        }
    }
    out
}

pub fn hop_target(vocab: &Vocab, hop: Hop) -> usize {
    let e = &vocab.edges[hop.edge];
    if hop.up {
        e.parent
    } else {
        e.child
    }
}

pub fn on(vocab: &Vocab, edge: &Edge) -> String {
    edge.child_columns
        .iter()
        .zip(&edge.parent_columns)
        .map(|(&c, &p)| {
            format!(
                "{}.{} = {}.{}",
                vocab.table_sql(edge.child),
                ident(vocab.column_name(edge.child, c)),
                vocab.table_sql(edge.parent),
                ident(vocab.column_name(edge.parent, p))
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// An `EXISTS` over tables on the many side of the root.
pub struct Exists {
    pub table: usize,
    pub negated: bool,
    pub implicit: bool,
    /// Filters inside it.
    pub conds: Vec<usize>,
    /// Made from a negated condition: the conditions are written positive.
    pub outward: bool,
}

pub fn exists_sql(
    vocab: &Vocab,
    it: &Intent,
    e: &Exists,
    root: usize,
    joined: &[usize],
    time_of: &[Option<Col>],
) -> Result<String, Refusal> {
    let all = paths(vocab, root, false);
    let path_to = |t: usize| -> Result<Vec<Hop>, Refusal> {
        match all.get(&t) {
            Some(Some(p)) if !p.is_empty() => Ok(p.clone()),
            _ => Err(Refusal::unsure(&format!(
                "how {} relates to {}",
                vocab.table_name(t),
                vocab.table_name(root)
            ))),
        }
    };
    // The path to the farthest table a condition is on; the others must be on it.
    let mut targets: Vec<usize> = e
        .conds
        .iter()
        .filter_map(|&i| filter_table(&it.filters[i], time_of[i]))
        .collect();
    targets.push(e.table);
    let mut path = path_to(e.table)?;
    for &t in &targets {
        let p = path_to(t)?;
        if p.len() > path.len() {
            path = p;
        }
    }
    let on_path = |t: usize| path.iter().any(|h| hop_target(vocab, *h) == t);
    if let Some(&off) = targets.iter().find(|&&t| !on_path(t)) {
        return Err(Refusal::unsure(&format!(
            "how {} and {} relate",
            vocab.table_name(off),
            vocab.table_name(e.table)
        )));
    }
    // "products without orders": an item is enough; the order it
    // references adds nothing when no condition is on it.
    while path.len() > 1
        && path.last().is_some_and(|h| h.up)
        && !targets[..targets.len() - 1]
            .contains(&hop_target(vocab, *path.last().expect("non-empty")))
    {
        path.pop();
    }
    let mut inner_tables: Vec<usize> = vec![];
    let mut from = String::new();
    let mut correlation = String::new();
    for (k, hop) in path.iter().enumerate() {
        let target = hop_target(vocab, *hop);
        if joined.contains(&target) || inner_tables.contains(&target) {
            return Err(Refusal::unsure("how to join a table twice"));
        }
        inner_tables.push(target);
        if k == 0 {
            from = vocab.table_sql(target);
            correlation = on(vocab, &vocab.edges[hop.edge]);
        } else {
            from.push_str(&format!(
                " JOIN {} ON {}",
                vocab.table_sql(target),
                on(vocab, &vocab.edges[hop.edge])
            ));
        }
    }
    let inner = Writer {
        vocab,
        qualify: true,
    };
    let mut conds = vec![correlation];
    for &i in &e.conds {
        conds.push(inner.condition(&it.filters[i], time_of[i], e.outward));
    }
    Ok(format!(
        "{}EXISTS (SELECT 1 FROM {from} WHERE {})",
        if e.negated { "NOT " } else { "" },
        conds.join(" AND ")
    ))
}

/// "customers with more than 30 orders": the root's key among the
/// referencing column's values counted so many times. "Fewer than" counts
/// rows with none too, so it is written as NOT IN the complement.
pub fn count_of(
    vocab: &Vocab,
    root: usize,
    table: usize,
    op: Op,
    value: f64,
) -> Result<String, Refusal> {
    let edges: Vec<&Edge> = vocab
        .edges
        .iter()
        .filter(|e| e.child == table && e.parent == root)
        .collect();
    let [edge] = edges[..] else {
        return Err(Refusal::unsure(&format!(
            "how to count the {} of each {}",
            vocab.table_name(table),
            vocab.table_name(root)
        )));
    };
    let [(fk, pk)] = [(
        edge.child_columns[..].to_vec(),
        edge.parent_columns[..].to_vec(),
    )];
    let ([fk], [pk]) = (&fk[..], &pk[..]) else {
        return Err(Refusal::unsure("how to count along a two-column key"));
    };
    let w = Writer {
        vocab,
        qualify: true,
    };
    let (not, op) = match op {
        Op::Lt => ("NOT ", Op::Ge),
        Op::Le => ("NOT ", Op::Gt),
        Op::Eq if value == 0.0 => ("NOT ", Op::Gt),
        op => ("", op),
    };
    Ok(format!(
        "{} {not}IN (SELECT {fk_sql} FROM {} WHERE {fk_sql} IS NOT NULL GROUP BY {fk_sql} HAVING count(*) {} {})",
        w.col((root, *pk)),
        vocab.table_sql(table),
        op.sql(),
        number(value),
        fk_sql = w.col((table, *fk)),
    ))
}

/// The time column nearest `from` along many-to-one joins (`from` first):
/// an order's date for "revenue in 2024" over order lines.
pub fn nearest_time(vocab: &Vocab, from: usize) -> Result<Col, Refusal> {
    let mut near: Vec<(usize, usize)> = paths(vocab, from, true)
        .into_iter()
        .filter_map(|(t, p)| p.map(|p| (p.len(), t)))
        .filter(|&(_, t)| !vocab.roles[t].temporal.is_empty())
        .collect();
    near.sort();
    match near.first() {
        Some(&(d, t)) if near.iter().filter(|n| n.0 == d).count() == 1 => {
            match vocab.roles[t].temporal[..] {
                [c] => Ok((t, c)),
                _ => Err(Refusal::unsure(&format!(
                    "which date of {} is meant",
                    vocab.table_name(t)
                ))),
            }
        }
        Some(_) => Err(Refusal::unsure("which table's date is meant")),
        None => Err(Refusal::unsure("which date the question is about")),
    }
}
