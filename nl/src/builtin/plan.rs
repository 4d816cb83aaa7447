//! An intent to SQL: pick the table the rows come from (the *root*), join
//! the tables the question needs along foreign keys, and write the
//! statement.
//!
//! Joins only go from a row to the one row it references (child to parent),
//! so no row of the root is repeated and counts and sums stay right. A
//! table reached the other way (customers → their orders) is a filter
//! only, written as `EXISTS (...)`; a sum over such a table is refused
//! rather than double counted. A join path that is not unique (two foreign
//! keys to the same table) is refused too: the question does not say which.

use std::collections::HashMap;

use super::dates::Unit;
use super::intent::{Aggregate, Col, Filter, Group, Intent, OrderKey};
use super::joins::{count_of, exists_sql, hop_target, nearest_time, on, paths, Exists, Paths};
use super::parse::{Agg, Dir, Role};
use super::vocab::Vocab;
use super::write::{ident, number, Writer};
use super::Refusal;

/// A table grouped by (its rows) is shown whole up to this many columns.
const WHOLE_ROW_COLUMNS: usize = 8;

/// The table a filter is on (`None` for an existence filter).
pub(super) fn filter_table(f: &Filter, time_col: Option<Col>) -> Option<usize> {
    match f {
        Filter::Equals { col, .. } | Filter::Compare { col, .. } | Filter::Between { col, .. } => {
            Some(col.0)
        }
        Filter::Time { .. } => time_col.map(|c| c.0),
        Filter::Exists { table, .. } | Filter::CountOf { table, .. } => Some(*table),
    }
}

/// The one column of `t` in `role`, if there is exactly one.
fn role_column(vocab: &Vocab, t: usize, role: Role) -> Option<usize> {
    let roles = &vocab.roles[t];
    let pick = |cols: Vec<usize>| (cols.len() == 1).then(|| cols[0]);
    match role {
        Role::Time => pick(roles.temporal.clone()),
        Role::Amount => pick(roles.amounts.clone()),
        Role::Price => pick(
            roles
                .amounts
                .iter()
                .copied()
                .filter(|&c| {
                    let n = vocab.column_name(t, c).to_lowercase();
                    n.contains("price") || n.contains("cost")
                })
                .collect(),
        )
        .or_else(|| pick(roles.amounts.clone())),
    }
}

pub fn sql(mut it: Intent, vocab: &Vocab) -> Result<String, Refusal> {
    let measure_root = |m: usize| -> Result<usize, Refusal> {
        let tables = &vocab.measures[m].tables;
        tables
            .iter()
            .copied()
            .find(|&r| {
                let up = paths(vocab, r, true);
                tables.iter().all(|t| matches!(up.get(t), Some(Some(_))))
            })
            .ok_or_else(|| {
                Refusal::unsure(&format!(
                    "how the tables of measure {} join",
                    vocab.measures[m].name
                ))
            })
    };
    let subject = match it.subject {
        Some(s) => s,
        None => {
            let from_aggregate = it.aggregates.iter().find_map(|a| match a {
                Aggregate::Count(t) => Some(Ok(*t)),
                Aggregate::CountDistinct(c) | Aggregate::Of(_, c) => Some(Ok(c.0)),
                Aggregate::Measure(m) => Some(measure_root(*m)),
                Aggregate::CountRows => None,
            });
            let from_rest = it
                .groups
                .iter()
                .find_map(|g| match g {
                    Group::Column(c) => Some(c.0),
                    Group::Table(t) => Some(*t),
                    Group::Bucket(_, c) => c.map(|c| c.0),
                })
                .or(it.columns.first().map(|c| c.0))
                .or_else(|| it.filters.iter().find_map(|f| filter_table(f, None)));
            match from_aggregate {
                Some(r) => r?,
                None => {
                    from_rest.ok_or_else(|| Refusal::unsure("which table the question is about"))?
                }
            }
        }
    };
    it.subject = Some(subject);
    // "... by number of customers? Return the number of customers": once.
    let mut kept: Vec<Aggregate> = Vec::new();
    let mut moved: Vec<usize> = Vec::new();
    for a in std::mem::take(&mut it.aggregates) {
        match kept.iter().position(|k| *k == a) {
            Some(i) => moved.push(i),
            None => {
                moved.push(kept.len());
                kept.push(a);
            }
        }
    }
    it.aggregates = kept;
    if let Some((OrderKey::Aggregate(i), _)) = &mut it.order {
        *i = moved[*i];
    }
    for h in &mut it.having {
        h.0 = moved[h.0];
    }
    let ordered_by_aggregate = matches!(it.order, Some((OrderKey::Aggregate(_), _)));
    let aggregate_mode = it.is_aggregate() || ordered_by_aggregate;
    if aggregate_mode {
        for c in std::mem::take(&mut it.columns) {
            it.groups.push(Group::Column(c));
        }
        if it.aggregates.is_empty() {
            it.aggregates.push(Aggregate::CountRows);
        }
        // "top 10 customers by revenue", "customers with the most orders".
        let about_subject = it
            .aggregates
            .iter()
            .all(|a| !matches!(a, Aggregate::CountRows));
        if it.groups.is_empty() && (ordered_by_aggregate || !it.having.is_empty()) && about_subject
        {
            let measured_elsewhere = it.aggregates.iter().any(|a| match a {
                Aggregate::Count(t) => *t != subject,
                Aggregate::Measure(_) => true,
                Aggregate::Of(_, c) | Aggregate::CountDistinct(c) => c.0 != subject,
                Aggregate::CountRows => false,
            });
            if measured_elsewhere {
                it.groups.push(Group::Table(subject));
            }
        }
    }
    // Ordering by a role ("cheapest"): a column of the subject.
    if let Some((OrderKey::Role(role), d)) = it.order {
        let c = role_column(vocab, subject, role).ok_or_else(|| {
            Refusal::unsure(&format!(
                "which column of {} says how {} a row is",
                vocab.table_name(subject),
                match role {
                    Role::Price => "expensive",
                    Role::Time => "recent",
                    Role::Amount => "large",
                }
            ))
        })?;
        it.order = Some((OrderKey::Column((subject, c)), d));
        if !aggregate_mode && it.limit.is_none() && it.singular {
            it.limit = Some(1);
        }
    }

    // The root: where the rows come from.
    let mut forced_root = None;
    for a in &it.aggregates {
        let r = match a {
            Aggregate::Measure(m) => Some(measure_root(*m)?),
            Aggregate::Of(Agg::Sum | Agg::Avg, c) => Some(c.0),
            _ => None,
        };
        if let Some(r) = r {
            if forced_root.is_some_and(|f| f != r) {
                return Err(Refusal::unsure("how to combine sums over different tables"));
            }
            forced_root = Some(r);
        }
    }
    // A list's rows are the subject's, once each.
    if !aggregate_mode {
        forced_root = Some(subject);
    }
    let preferred = forced_root.unwrap_or_else(|| {
        it.aggregates
            .iter()
            .find_map(|a| match a {
                Aggregate::Count(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(subject)
    });

    for g in &mut it.groups {
        if let Group::Bucket(_, col @ None) = g {
            *col = Some(nearest_time(vocab, preferred)?);
        }
    }

    // "average quantity per order line": one row per group is no grouping.
    if let Some(r) = forced_root {
        let own = it.aggregates.iter().all(|a| match a {
            Aggregate::Of(_, c) | Aggregate::CountDistinct(c) => c.0 == r,
            _ => false,
        });
        if own && it.groups.len() == 1 && it.groups[0] == Group::Table(r) && it.order.is_none() {
            it.groups.clear();
        }
    }
    // Tables the rows must be joined with (not filters).
    let mut core: Vec<usize> = vec![];
    let need = |core: &mut Vec<usize>, t: usize| {
        if !core.contains(&t) {
            core.push(t);
        }
    };
    for a in &it.aggregates {
        match a {
            Aggregate::Count(t) => need(&mut core, *t),
            Aggregate::CountDistinct(c) | Aggregate::Of(_, c) => need(&mut core, c.0),
            Aggregate::Measure(m) => vocab.measures[*m]
                .tables
                .iter()
                .for_each(|t| need(&mut core, *t)),
            Aggregate::CountRows => need(&mut core, subject),
        }
    }
    for g in &it.groups {
        match g {
            Group::Column(c) | Group::Bucket(_, Some(c)) => need(&mut core, c.0),
            Group::Table(t) => need(&mut core, *t),
            Group::Bucket(_, None) => {}
        }
    }
    if let Some((OrderKey::Column(c), _)) = &it.order {
        need(&mut core, c.0);
    }
    it.columns.iter().for_each(|c| need(&mut core, c.0));
    if core.is_empty() || !aggregate_mode {
        need(&mut core, subject);
    }
    // The root must reach every core table many-to-one.
    let reaches = |r: usize| -> Option<Paths> {
        let up = paths(vocab, r, true);
        core.iter()
            .all(|t| matches!(up.get(t), Some(Some(_))))
            .then_some(up)
    };
    let (root, up) = match reaches(preferred) {
        Some(up) => (preferred, up),
        None if forced_root.is_none() => {
            let mut best: Option<(usize, usize, Paths)> = None;
            for r in 0..vocab.catalog.tables.len() {
                if let Some(up) = reaches(r) {
                    let cost: usize = core
                        .iter()
                        .map(|t| up[t].as_ref().map_or(0, Vec::len))
                        .sum();
                    if best.as_ref().is_none_or(|b| cost < b.1) {
                        best = Some((r, cost, up));
                    }
                }
            }
            let (r, _, up) = best.ok_or_else(|| Refusal::unsure("how the tables it names join"))?;
            (r, up)
        }
        None => {
            return Err(Refusal::unsure(
                "how the tables it names join without counting rows twice",
            ))
        }
    };
    // Joins: the union of the root's paths to the core tables.
    let mut joined: Vec<usize> = vec![root];
    let mut joins: Vec<String> = vec![];
    let add_path = |t: usize, joined: &mut Vec<usize>, joins: &mut Vec<String>| {
        let Some(Some(path)) = up.get(&t) else {
            return false;
        };
        for hop in path {
            let target = hop_target(vocab, *hop);
            if !joined.contains(&target) {
                joined.push(target);
                joins.push(format!(
                    "JOIN {} ON {}",
                    vocab.table_sql(target),
                    on(vocab, &vocab.edges[hop.edge])
                ));
            }
        }
        true
    };
    for &t in &core {
        add_path(t, &mut joined, &mut joins);
    }
    // Filters: on the rows joined, or `EXISTS` over the tables on the many
    // side. A condition placed after an existence filter is inside it.
    let reach_up = |t: usize, joined: &mut Vec<usize>, joins: &mut Vec<String>| {
        joined.contains(&t) || add_path(t, joined, joins)
    };
    let mut exists: Vec<Exists> = vec![];
    let mut group_of: HashMap<usize, usize> = HashMap::new();
    let mut time_of: Vec<Option<Col>> = vec![None; it.filters.len()];
    let mut direct: Vec<usize> = vec![];
    let mut wheres: Vec<String> = vec![];
    let mut fanout: Vec<usize> = vec![];
    for (i, f) in it.filters.iter().enumerate() {
        let group = it.within[i].and_then(|e| group_of.get(&e).copied());
        match f {
            Filter::Exists {
                table,
                negated,
                implicit,
            } => {
                if *implicit && up.get(table).is_some_and(Option::is_some) {
                    continue; // "orders of customers in Berlin": no condition.
                }
                group_of.insert(i, exists.len());
                exists.push(Exists {
                    table: *table,
                    negated: *negated,
                    implicit: *implicit,
                    conds: vec![],
                    outward: false,
                });
                continue;
            }
            Filter::CountOf { table, op, value } => {
                wheres.push(count_of(vocab, root, *table, *op, *value)?);
                continue;
            }
            Filter::Time { col, .. } => {
                let from = group.map_or(root, |g| exists[g].table);
                time_of[i] = Some(match col {
                    Some(c) => *c,
                    None => nearest_time(vocab, from)?,
                });
            }
            _ => {}
        }
        let t = filter_table(f, time_of[i]).expect("resolved");
        match group {
            Some(g) => exists[g].conds.push(i),
            None if reach_up(t, &mut joined, &mut joins) => direct.push(i),
            None => fanout.push(i),
        }
    }
    // Conditions on the many side with no existence filter before them:
    // "customers who never cancelled an order" is NOT EXISTS (a cancelled
    // order); positive ones share one EXISTS ("who bought Electronics in 2024").
    for i in fanout {
        let negated = match &it.filters[i] {
            Filter::Equals { negated, .. }
            | Filter::Between { negated, .. }
            | Filter::Time { negated, .. } => *negated,
            _ => false,
        };
        let shared = (!negated)
            .then(|| {
                exists.iter().position(|e| {
                    !e.negated
                        && !e.outward
                        && e.conds
                            .iter()
                            .all(|&c| !matches!(it.filters[c], Filter::Exists { .. }))
                })
            })
            .flatten();
        match shared {
            Some(g) => exists[g].conds.push(i),
            None => exists.push(Exists {
                table: filter_table(&it.filters[i], time_of[i]).expect("resolved"),
                negated,
                implicit: false,
                conds: vec![i],
                outward: negated,
            }),
        }
    }
    // A table only named adds nothing when a condition is on it already.
    let conditioned: Vec<usize> = exists
        .iter()
        .flat_map(|e| {
            e.conds
                .iter()
                .filter_map(|&i| filter_table(&it.filters[i], time_of[i]))
        })
        .collect();
    exists.retain(|e| !(e.implicit && e.conds.is_empty() && conditioned.contains(&e.table)));

    let w = Writer {
        vocab,
        qualify: joined.len() > 1 || !exists.is_empty(),
    };
    let mut all_wheres: Vec<String> = direct
        .iter()
        .map(|&i| w.condition(&it.filters[i], time_of[i], false))
        .collect();
    all_wheres.extend(wheres);
    for e in &exists {
        all_wheres.push(exists_sql(vocab, &it, e, root, &joined, &time_of)?);
    }
    let wheres = all_wheres;

    // SELECT list.
    let mut select: Vec<String> = vec![];
    let mut group_by: Vec<String> = vec![];
    let mut agg_alias: Vec<String> = vec![];
    let mut agg_expr: Vec<String> = vec![];
    if aggregate_mode {
        for g in &it.groups {
            match g {
                Group::Column(c) => {
                    select.push(w.col(*c));
                    group_by.push(w.col(*c));
                }
                Group::Table(t) => {
                    let roles = &vocab.roles[*t];
                    if roles.primary_key.is_empty() && roles.label.is_none() {
                        return Err(Refusal::unsure(&format!(
                            "what identifies a row of {}",
                            vocab.table_name(*t)
                        )));
                    }
                    // A narrow table shows whole ("which customers spent
                    // over 25,000"); a wide one by its key and label.
                    let width = vocab.catalog.tables[*t].columns.len();
                    let shown: Vec<usize> = if width <= WHOLE_ROW_COLUMNS {
                        (0..width).collect()
                    } else {
                        let label = roles.label.filter(|l| !roles.primary_key.contains(l));
                        roles.primary_key.iter().copied().chain(label).collect()
                    };
                    for c in shown {
                        select.push(w.col((*t, c)));
                        group_by.push(w.col((*t, c)));
                    }
                }
                Group::Bucket(unit, c) => {
                    let col = w.col(c.expect("resolved"));
                    let e = match unit {
                        Unit::Year => format!("EXTRACT(YEAR FROM {col})"),
                        u => format!("date_trunc('{}', {col})", u.name()),
                    };
                    select.push(format!("{e} AS {}", unit.name()));
                    group_by.push(e);
                }
            }
        }
        for a in &it.aggregates {
            let (e, alias) = match a {
                Aggregate::CountRows => (count(vocab, &w, subject, root)?, "count".to_string()),
                Aggregate::Count(t) if *t == subject => {
                    (count(vocab, &w, *t, root)?, "count".to_string())
                }
                Aggregate::Count(t) => (
                    count(vocab, &w, *t, root)?,
                    format!("{}_count", vocab.table_name(*t)),
                ),
                Aggregate::CountDistinct(c) => (
                    format!("count(DISTINCT {})", w.col(*c)),
                    format!("{}_count", vocab.column_name(c.0, c.1)),
                ),
                Aggregate::Of(agg, c) => {
                    if matches!(agg, Agg::Sum | Agg::Avg) && c.0 != root {
                        return Err(Refusal::unsure("how to sum without counting rows twice"));
                    }
                    (
                        format!("{}({})", agg.sql(), w.col(*c)),
                        format!("{}_{}", agg.sql(), vocab.column_name(c.0, c.1)),
                    )
                }
                Aggregate::Measure(m) => (
                    vocab.measures[*m].sql.clone(),
                    vocab.measures[*m].name.clone(),
                ),
            };
            let alias = ident(&alias.to_lowercase().replace(' ', "_"));
            select.push(format!("{e} AS {alias}"));
            agg_alias.push(alias);
            agg_expr.push(e);
        }
    } else if it.columns.is_empty() {
        select.push(if w.qualify {
            format!("{}.*", vocab.table_sql(subject))
        } else {
            "*".into()
        });
    } else {
        if let (true, Some((OrderKey::Column(c), _))) = (it.distinct, &it.order) {
            if !it.columns.contains(c) {
                it.columns.push(*c);
            }
        }
        select.extend(it.columns.iter().map(|c| w.col(*c)));
    }

    let mut sql = format!(
        "SELECT {}{} FROM {}",
        if it.distinct && !aggregate_mode {
            "DISTINCT "
        } else {
            ""
        },
        select.join(", "),
        vocab.table_sql(root)
    );
    for j in &joins {
        sql.push(' ');
        sql.push_str(j);
    }
    if !wheres.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&wheres.join(" AND "));
    }
    if !group_by.is_empty() {
        sql.push_str(" GROUP BY ");
        sql.push_str(&group_by.join(", "));
    }
    if !it.having.is_empty() {
        let having: Vec<String> = it
            .having
            .iter()
            .map(|&(a, op, v)| format!("{} {} {}", agg_expr[a], op.sql(), number(v)))
            .collect();
        sql.push_str(" HAVING ");
        sql.push_str(&having.join(" AND "));
    }
    match &it.order {
        Some((OrderKey::Column(c), d)) => {
            if aggregate_mode && !it.groups.contains(&Group::Column(*c)) {
                return Err(Refusal::unsure("how to order groups by a column"));
            }
            sql.push_str(&format!(" ORDER BY {}{}", w.col(*c), dir(*d)));
        }
        Some((OrderKey::Aggregate(i), d)) => {
            sql.push_str(&format!(" ORDER BY {}{}", agg_alias[*i], dir(*d)));
        }
        Some((OrderKey::Role(_), _)) => unreachable!("resolved above"),
        None if aggregate_mode && it.groups.iter().any(|g| matches!(g, Group::Bucket(..))) => {
            // Time series read in time order.
            sql.push_str(" ORDER BY 1");
        }
        None => {}
    }
    if let Some(n) = it.limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    Ok(sql)
}

fn dir(d: Dir) -> &'static str {
    match d {
        Dir::Asc => "",
        Dir::Desc => " DESC",
    }
}

/// `count(*)` of `t`'s rows when they are the root's, else of its distinct keys.
fn count(vocab: &Vocab, w: &Writer, t: usize, root: usize) -> Result<String, Refusal> {
    if t == root {
        return Ok("count(*)".into());
    }
    match vocab.roles[t].primary_key[..] {
        [c] => Ok(format!("count(DISTINCT {})", w.col((t, c)))),
        _ => Err(Refusal::unsure(&format!(
            "how to count {} without a one-column key",
            vocab.table_name(t)
        ))),
    }
}
