//! Relations read together with nothing connecting them.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, JoinConstraint, JoinOperator, Query, TableFactor, TableWithJoins, Visit, Visitor,
};
use helios_planner::catalog::{quote_ident, Table};

use super::exprs::{conjuncts, fmt_rows, for_each_shallow, predicates, table_rows};
use super::scope::{column_parts, Level, LevelKind, Source};
use super::walk::for_each_level;
use super::RuleContext;
use crate::{Finding, Severity};

/// How a relation entered the FROM list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    First,
    /// `FROM a, b`: a join only if WHERE says so.
    Comma,
    /// `CROSS JOIN`, or `JOIN ... ON` a condition: the author asked for a
    /// join, even if the condition connects nothing.
    Explicit,
}

/// Two or more relations with no predicate connecting them: every row of
/// one is paired with every row of the other.
pub(crate) fn cartesian_product(cx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for_each_level(cx.statement, cx.catalog, &mut |level| {
        if level.relations.len() < 2 {
            return;
        }
        let mut graph = Graph {
            level,
            parent: (0..level.relations.len()).collect(),
            how: vec![How::First; level.relations.len()],
            next: 0,
        };
        for (i, twj) in level.from.iter().enumerate() {
            graph.add(twj, if i == 0 { How::First } else { How::Comma });
        }
        for predicate in predicates(level) {
            for conjunct in conjuncts(predicate) {
                let touched = graph.references(conjunct);
                graph.connect_all(&touched);
            }
        }
        // LATERAL items and functions in FROM see the items before them.
        for (i, r) in level.relations.iter().enumerate() {
            if r.lateral && i > 0 {
                graph.union(i, 0);
            }
        }

        // Components of the relations that can multiply rows.
        let mut components: Vec<Vec<usize>> = Vec::new();
        for (i, r) in level.relations.iter().enumerate() {
            if r.single_row || r.source == Source::Function {
                continue;
            }
            let root = graph.find(i);
            match components.iter_mut().find(|c| graph.find(c[0]) == root) {
                Some(c) => c.push(i),
                None => components.push(vec![i]),
            }
        }
        if components.len() < 2 {
            return;
        }
        out.push(finding(level, &graph, &components));
    });
}

fn finding(level: &Level<'_, '_>, graph: &Graph<'_, '_, '_>, components: &[Vec<usize>]) -> Finding {
    let comma = components[1..]
        .iter()
        .any(|c| graph.how[c[0]] == How::Comma);
    let severity = if comma {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let label = |c: &Vec<usize>| {
        let names: Vec<String> = c
            .iter()
            .map(|&i| level.relations[i].binding.clone())
            .collect();
        names.join(" ⋈ ")
    };
    let groups: Vec<String> = components.iter().map(label).collect();
    // Rows of each group's first relation, when all are known.
    let rows: Option<Vec<f64>> = components
        .iter()
        .map(|c| table_rows(level.relations[c[0]].table?))
        .collect();
    let size = match rows {
        Some(r) => format!(
            " ({} = {} row pairs)",
            r.iter()
                .map(|n| fmt_rows(*n))
                .collect::<Vec<_>>()
                .join(" × "),
            fmt_rows(r.iter().product())
        ),
        None => String::new(),
    };
    let mut joins = Vec::new();
    for (k, c) in components.iter().enumerate().skip(1) {
        if let Some(j) = components[..k]
            .iter()
            .find_map(|earlier| fk_condition(level, earlier, c))
        {
            joins.push(j);
        }
    }
    let suggestion = if joins.is_empty() {
        format!(
            "Add the join condition that connects {}; write CROSS JOIN if the product is \
             really intended.",
            groups.join(" and ")
        )
    } else {
        format!(
            "Add the join condition (from the foreign keys): {}",
            joins.join(" AND ")
        )
    };
    let from: Vec<String> = level.from.iter().map(|t| t.to_string()).collect();
    // UPDATE and DELETE name their target outside FROM / USING.
    let keyword = match level.kind {
        LevelKind::Select(_) => "FROM ",
        _ => "",
    };
    Finding::new(
        severity,
        "cartesian_product",
        "Relations joined without a join condition",
        format!(
            "No predicate connects {}: every row of one is paired with every row of the \
             other{size}.",
            groups.join(" with ")
        ),
    )
    .at(format!("{keyword}{}", from.join(", ")))
    .suggest(suggestion)
}

/// `a.fk = b.pk` from a foreign key between a table of `left` and one of
/// `right` (either direction).
fn fk_condition(level: &Level<'_, '_>, left: &[usize], right: &[usize]) -> Option<String> {
    let tables = |ids: &[usize]| -> Vec<(String, &Table)> {
        ids.iter()
            .filter_map(|&i| {
                let r = &level.relations[i];
                Some((r.binding.clone(), r.table?))
            })
            .collect()
    };
    let (left, right) = (tables(left), tables(right));
    let condition = |(ab, a): &(String, &Table), (bb, b): &(String, &Table)| {
        a.foreign_keys
            .iter()
            .find(|fk| fk.ref_schema == b.schema && fk.ref_table == b.name)
            .map(|fk| {
                fk.columns
                    .iter()
                    .zip(&fk.ref_columns)
                    .map(|(c, rc)| {
                        format!(
                            "{}.{} = {}.{}",
                            quote_ident(ab),
                            quote_ident(c),
                            quote_ident(bb),
                            quote_ident(rc)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ")
            })
    };
    for a in &left {
        for b in &right {
            if let Some(c) = condition(a, b).or_else(|| condition(b, a)) {
                return Some(c);
            }
        }
    }
    None
}

/// Which relations are connected, by union-find over their indices in
/// `level.relations` (the same order the FROM list is walked in here).
struct Graph<'l, 'a, 'c> {
    level: &'l Level<'a, 'c>,
    parent: Vec<usize>,
    how: Vec<How>,
    next: usize,
}

impl Graph<'_, '_, '_> {
    fn find(&self, mut i: usize) -> usize {
        while self.parent[i] != i {
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[rb] = ra;
        }
    }

    fn connect_all(&mut self, ids: &[usize]) {
        for w in ids.windows(2) {
            self.union(w[0], w[1]);
        }
    }

    /// Walk one FROM item, numbering relations as `relations_of` does, and
    /// connect what USING, NATURAL and APPLY join.
    fn add(&mut self, twj: &TableWithJoins, how: How) -> Vec<usize> {
        let mut left = self.factor(&twj.relation, how);
        for join in &twj.joins {
            let right = self.factor(&join.relation, How::Explicit);
            let connects = match &join.join_operator {
                JoinOperator::CrossApply | JoinOperator::OuterApply | JoinOperator::AsOf { .. } => {
                    true
                }
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c)
                | JoinOperator::Semi(c)
                | JoinOperator::LeftSemi(c)
                | JoinOperator::RightSemi(c)
                | JoinOperator::Anti(c)
                | JoinOperator::LeftAnti(c)
                | JoinOperator::RightAnti(c) => {
                    matches!(c, JoinConstraint::Using(_) | JoinConstraint::Natural)
                }
                // Kinds added to sqlparser later: assume they join.
                #[allow(unreachable_patterns)]
                _ => true,
            };
            if connects {
                if let (Some(&l), Some(&r)) = (left.first(), right.first()) {
                    self.union(l, r);
                }
            }
            left.extend(right);
        }
        left
    }

    fn factor(&mut self, factor: &TableFactor, how: How) -> Vec<usize> {
        if let TableFactor::NestedJoin {
            table_with_joins, ..
        } = factor
        {
            return self.add(table_with_joins, how);
        }
        let i = self.next;
        self.next += 1;
        if let Some(h) = self.how.get_mut(i) {
            *h = how;
        }
        vec![i]
    }

    /// The relations of this level a predicate touches. An unqualified
    /// column no catalog table claims may belong to any relation whose
    /// columns are unknown: it touches all of them (never a false alarm).
    fn references(&self, predicate: &Expr) -> Vec<usize> {
        let relations = self.level.relations;
        let by_binding = |b: &str| relations.iter().position(|r| r.binding == b);
        let mut ids = Vec::new();
        for_each_shallow(predicate, &mut |e| {
            if let Some(parts) = column_parts(e) {
                match self.level.column(e) {
                    Some(c) if !c.outer => ids.extend(by_binding(&c.binding)),
                    Some(_) => {}
                    None if parts.len() == 1 => ids.extend(
                        relations
                            .iter()
                            .enumerate()
                            .filter(|(_, r)| r.has_column(&parts[0]) != Some(false))
                            .map(|(i, _)| i),
                    ),
                    None => {}
                }
            }
            // A subquery may link two of our relations (`EXISTS (SELECT
            // ... WHERE x.a = a.id AND x.b = b.id)`).
            let sub = match e {
                Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => Some(q),
                Expr::InSubquery { subquery, .. } => Some(subquery),
                _ => None,
            };
            if let Some(q) = sub {
                for qualifier in qualifiers(q) {
                    ids.extend(by_binding(&qualifier));
                }
            }
        });
        ids
    }
}

/// Every qualifier of a column reference inside a query.
fn qualifiers(query: &Query) -> Vec<String> {
    struct Q(Vec<String>);
    impl Visitor for Q {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Some(mut parts) = column_parts(e) {
                if parts.len() >= 2 {
                    parts.pop();
                    self.0.extend(parts.pop());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut q = Q(Vec::new());
    let _ = query.visit(&mut q);
    q.0
}
