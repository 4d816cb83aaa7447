//! Index candidates from a statement's predicates.
//!
//! For each table the statement reads, the columns it compares with `=` or
//! `IN` (equality), with `<`, `>`, `BETWEEN` or a prefix `LIKE` (range),
//! joins on, and sorts by. Candidates put equality columns first (most
//! distinct first), then at most one range column or the sort columns —
//! the order a B-tree serves best — up to `max_columns`. A candidate that an
//! existing index already leads with is left out: it would change nothing.
//!
//! Column references are resolved through the FROM clause's aliases and
//! the catalog; one the catalog does not know is ignored. Scoping is kept
//! simple (every table reference anywhere in the statement is in scope):
//! a wrong guess only makes a candidate that verification throws away.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, OrderByKind, Query, Statement, TableFactor, Value, Visit, Visitor,
};
use helios_planner::catalog::{quote_ident, Catalog, Table};
use helios_planner::sql::{name_parts, normalize_ident};

use super::estimate::Condition;

/// How one table is used by a statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableUse {
    pub schema: String,
    pub table: String,
    pub equality: Vec<String>,
    pub range: Vec<String>,
    pub join: Vec<String>,
    /// ORDER BY columns, in order (only when every sort key is a plain
    /// column of this table).
    pub order: Vec<String>,
    /// What the first filter on each column asks (for the statistics model).
    pub conditions: HashMap<String, Condition>,
}

/// A possible index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Candidate {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
}

impl Candidate {
    fn target(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        format!(
            "{}.{} ({})",
            quote_ident(&self.schema),
            quote_ident(&self.table),
            cols.join(", ")
        )
    }

    /// What a person runs: built without blocking writes.
    pub fn ddl(&self) -> String {
        format!("CREATE INDEX CONCURRENTLY ON {};", self.target())
    }

    /// What HypoPG is given.
    pub fn hypothetical_ddl(&self) -> String {
        format!("CREATE INDEX ON {}", self.target())
    }

    /// `orders (customer_id, created_at)`, for titles.
    pub fn label(&self) -> String {
        format!("{} ({})", self.table, self.columns.join(", "))
    }
}

/// A column reference as written: `[qualifier.]column`.
fn column_ref(e: &Expr) -> Option<(Option<String>, String)> {
    match e {
        Expr::Identifier(i) => Some((None, normalize_ident(i))),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let n = parts.len();
            Some((
                Some(normalize_ident(&parts[n - 2])),
                normalize_ident(&parts[n - 1]),
            ))
        }
        Expr::Nested(inner) => column_ref(inner),
        _ => None,
    }
}

/// A value the planner can use for an index lookup: a literal, a
/// parameter, or an expression without column references or subqueries
/// (`now() - interval '1 day'`).
fn is_value(e: &Expr) -> bool {
    struct Columns;
    impl Visitor for Columns {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(_)
                | Expr::CompoundIdentifier(_)
                | Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::InSubquery { .. } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut Columns).is_continue()
}

/// A literal's text, as `pg_stats` prints values.
fn literal(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.to_string()),
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => literal(inner),
        Expr::TypedString(t) => match &t.value.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Every relation named in the statement: alias (or name) -> table.
struct Relations<'c> {
    catalog: &'c Catalog,
    by_alias: HashMap<String, &'c Table>,
    tables: Vec<&'c Table>,
}

impl<'c> Visitor for Relations<'c> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = t {
            let mut parts = name_parts(name);
            let table = parts.pop().unwrap_or_default();
            let schema = parts.pop();
            if let Some(found) = self.catalog.resolve(schema.as_deref(), &table) {
                let key = alias
                    .as_ref()
                    .map(|a| normalize_ident(&a.name))
                    .unwrap_or(table);
                self.by_alias.insert(key, found);
                if !self.tables.iter().any(|t| std::ptr::eq(*t, found)) {
                    self.tables.push(found);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Predicates and sort keys, attributed to tables.
struct Uses<'r, 'c> {
    rel: &'r Relations<'c>,
    uses: HashMap<(String, String), TableUse>,
}

#[derive(Clone, Copy)]
enum Kind {
    Equality,
    Range,
    Join,
}

impl<'c> Uses<'_, 'c> {
    /// The table a column reference belongs to.
    fn table_of(&self, qualifier: &Option<String>, column: &str) -> Option<&'c Table> {
        match qualifier {
            Some(q) => self
                .rel
                .by_alias
                .get(q)
                .copied()
                .filter(|t| t.column(column).is_some()),
            None => {
                let mut owners = self
                    .rel
                    .tables
                    .iter()
                    .filter(|t| t.column(column).is_some());
                let first = owners.next().copied();
                // Ambiguous without a qualifier: PostgreSQL would refuse it.
                owners.next().is_none().then_some(first).flatten()
            }
        }
    }

    fn add(&mut self, e: &Expr, kind: Kind) {
        self.add_with(e, kind, Condition::Unfiltered);
    }

    fn add_with(&mut self, e: &Expr, kind: Kind, cond: Condition) {
        let Some((q, col)) = column_ref(e) else {
            return;
        };
        let Some(t) = self.table_of(&q, &col) else {
            return;
        };
        let u = self.entry(t);
        if !matches!(kind, Kind::Join) {
            u.conditions.entry(col.clone()).or_insert(cond);
        }
        let list = match kind {
            Kind::Equality => &mut u.equality,
            Kind::Range => &mut u.range,
            Kind::Join => &mut u.join,
        };
        if !list.contains(&col) {
            list.push(col);
        }
    }

    fn entry(&mut self, t: &Table) -> &mut TableUse {
        self.uses
            .entry((t.schema.clone(), t.name.clone()))
            .or_insert_with(|| TableUse {
                schema: t.schema.clone(),
                table: t.name.clone(),
                ..TableUse::default()
            })
    }

    fn order_by(&mut self, q: &Query) {
        let Some(ob) = &q.order_by else { return };
        let OrderByKind::Expressions(keys) = &ob.kind else {
            return;
        };
        let mut owner: Option<&Table> = None;
        let mut cols = Vec::new();
        for k in keys {
            let Some((q, col)) = column_ref(&k.expr) else {
                return;
            };
            let Some(t) = self.table_of(&q, &col) else {
                return;
            };
            if owner.is_some_and(|o| !std::ptr::eq(o, t)) {
                return;
            }
            owner = Some(t);
            cols.push(col);
        }
        if let Some(t) = owner {
            self.entry(t).order = cols;
        }
    }
}

impl Visitor for Uses<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        self.order_by(q);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::BinaryOp { left, op, right } => {
                let kind = match op {
                    BinaryOperator::Eq => Some(Kind::Equality),
                    BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq => Some(Kind::Range),
                    _ => None,
                };
                if let Some(kind) = kind {
                    // `value < col` is `col > value`.
                    let less = matches!(op, BinaryOperator::Lt | BinaryOperator::LtEq);
                    let cond = |value: &Expr, less: bool| match kind {
                        Kind::Equality => Condition::Equals(literal(value)),
                        _ => Condition::Range {
                            value: literal(value),
                            less,
                        },
                    };
                    match (column_ref(left), column_ref(right)) {
                        (Some(_), Some(_)) => {
                            self.add(left, Kind::Join);
                            self.add(right, Kind::Join);
                        }
                        (Some(_), None) if is_value(right) => {
                            self.add_with(left, kind, cond(right, less))
                        }
                        (None, Some(_)) if is_value(left) => {
                            self.add_with(right, kind, cond(left, !less))
                        }
                        _ => {}
                    }
                }
            }
            Expr::InList {
                expr,
                negated: false,
                ..
            } => self.add_with(expr, Kind::Equality, Condition::Equals(None)),
            Expr::Between {
                expr,
                negated: false,
                ..
            } => self.add_with(
                expr,
                Kind::Range,
                Condition::Range {
                    value: None,
                    less: true,
                },
            ),
            Expr::IsNull(expr) => self.add_with(expr, Kind::Equality, Condition::Equals(None)),
            Expr::Like {
                negated: false,
                expr,
                pattern,
                ..
            } => {
                // Only a fixed prefix can use a B-tree (with C collation or
                // text_pattern_ops; verification tells).
                if let Expr::Value(v) = pattern.as_ref() {
                    if let Value::SingleQuotedString(p) = &v.value {
                        if !p.starts_with('%') && !p.starts_with('_') {
                            let cond = Condition::Range {
                                value: None,
                                less: true,
                            };
                            self.add_with(expr, Kind::Range, cond);
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// How each table of `stmt` is used.
pub fn table_uses(stmt: &Statement, catalog: &Catalog) -> Vec<TableUse> {
    let mut rel = Relations {
        catalog,
        by_alias: HashMap::new(),
        tables: Vec::new(),
    };
    let _ = stmt.visit(&mut rel);
    let mut uses = Uses {
        rel: &rel,
        uses: HashMap::new(),
    };
    let _ = stmt.visit(&mut uses);
    let mut out: Vec<TableUse> = uses.uses.into_values().collect();
    out.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
    out
}

/// Distinct values of a column, as far as the catalog knows (larger first).
fn distinctness(t: &Table, column: &str) -> f64 {
    let rows = t.row_estimate.max(1.0);
    match t.column(column).and_then(|c| c.n_distinct) {
        Some(d) if d < 0.0 => -d * rows,
        Some(d) => d,
        None => rows / 10.0,
    }
}

/// Candidates for every used table, best guesses first; none that an
/// existing index already leads with.
pub fn candidates(uses: &[TableUse], catalog: &Catalog, max_columns: usize) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for u in uses {
        let Some(table) = catalog.table(&u.schema, &u.table) else {
            continue;
        };
        let mut eq = u.equality.clone();
        eq.sort_by(|a, b| {
            distinctness(table, b)
                .partial_cmp(&distinctness(table, a))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut push = |cols: Vec<String>| {
            let mut seen = Vec::new();
            for c in cols {
                if !seen.contains(&c) {
                    seen.push(c);
                }
            }
            seen.truncate(max_columns);
            if seen.is_empty() || already_led(table, &seen) {
                return;
            }
            let c = Candidate {
                schema: u.schema.clone(),
                table: u.table.clone(),
                columns: seen,
            };
            if !out.contains(&c) {
                out.push(c);
            }
        };
        for k in 1..=eq.len().min(max_columns) {
            let prefix = eq[..k].to_vec();
            push(prefix.clone());
            for r in &u.range {
                push([prefix.clone(), vec![r.clone()]].concat());
            }
            if !u.order.is_empty() {
                push([prefix.clone(), u.order.clone()].concat());
            }
        }
        for r in &u.range {
            push(vec![r.clone()]);
        }
        if !u.order.is_empty() {
            push(u.order.clone());
        }
        for j in &u.join {
            push(vec![j.clone()]);
        }
    }
    out
}

/// Whether an existing plain B-tree index starts with exactly these columns.
fn already_led(table: &Table, columns: &[String]) -> bool {
    table.indexes.iter().any(|ix| {
        !ix.partial
            && ix.method == "btree"
            && ix.columns.len() >= columns.len()
            && ix
                .columns
                .iter()
                .zip(columns)
                .all(|(have, want)| have.as_deref() == Some(want.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use helios_planner::catalog::{Column, Index, RelationKind};

    fn col(name: &str, n_distinct: f64) -> Column {
        Column {
            name: name.into(),
            data_type: "integer".into(),
            type_oid: 23,
            nullable: true,
            comment: None,
            common_values: vec![],
            n_distinct: Some(n_distinct),
        }
    }

    fn table(name: &str, cols: Vec<Column>, indexes: Vec<Index>) -> Table {
        Table {
            schema: "public".into(),
            name: name.into(),
            kind: RelationKind::Table,
            comment: None,
            row_estimate: 100_000.0,
            columns: cols,
            primary_key: vec![],
            foreign_keys: vec![],
            indexes,
            stats: None,
        }
    }

    fn btree(name: &str, cols: &[&str]) -> Index {
        Index {
            name: name.into(),
            columns: cols.iter().map(|c| Some(c.to_string())).collect(),
            unique: false,
            primary: false,
            method: "btree".into(),
            partial: false,
            definition: String::new(),
        }
    }

    fn catalog() -> Catalog {
        Catalog::new(
            "db".into(),
            vec!["public".into()],
            vec![
                table(
                    "orders",
                    vec![
                        col("id", -1.0),
                        col("customer_id", 5_000.0),
                        col("status", 5.0),
                        col("created_at", -0.9),
                    ],
                    vec![btree("orders_pkey", &["id"])],
                ),
                table(
                    "customers",
                    vec![col("id", -1.0), col("region", 10.0)],
                    vec![btree("customers_pkey", &["id"])],
                ),
            ],
        )
    }

    fn parse(sql: &str) -> Statement {
        helios_planner::sql::parse(sql).unwrap().remove(0)
    }

    fn labels(sql: &str) -> Vec<String> {
        let c = catalog();
        let uses = table_uses(&parse(sql), &c);
        candidates(&uses, &c, 3)
            .iter()
            .map(Candidate::label)
            .collect()
    }

    #[test]
    fn equality_first_most_distinct_first_then_range() {
        let got = labels(
            "select * from orders o where o.status = 'open' and o.customer_id = $1 \
             and o.created_at > now() - interval '1 day'",
        );
        assert_eq!(got[0], "orders (customer_id)");
        assert!(
            got.contains(&"orders (customer_id, status)".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"orders (customer_id, status, created_at)".to_string())
                || got.contains(&"orders (customer_id, created_at)".to_string()),
            "{got:?}"
        );
    }

    #[test]
    fn joins_and_sorts_are_attributed_to_their_tables() {
        let c = catalog();
        let uses = table_uses(
            &parse(
                "select c.region, o.id from orders o join customers c on c.id = o.customer_id \
                 where c.region = 'eu' order by o.created_at",
            ),
            &c,
        );
        let orders = uses.iter().find(|u| u.table == "orders").unwrap();
        assert_eq!(orders.join, ["customer_id"]);
        assert_eq!(orders.order, ["created_at"]);
        let customers = uses.iter().find(|u| u.table == "customers").unwrap();
        assert_eq!(customers.equality, ["region"]);
        assert_eq!(customers.join, ["id"]);
    }

    #[test]
    fn what_an_existing_index_leads_with_is_left_out() {
        // orders (id) exists; customers (id) exists.
        let got = labels("select * from orders where id = 5");
        assert!(got.is_empty(), "{got:?}");
        let got = labels("select * from customers c join orders o on o.customer_id = c.id");
        assert_eq!(got, ["orders (customer_id)"]);
    }

    #[test]
    fn unknown_tables_and_columns_make_no_candidates() {
        assert!(labels("select * from nowhere where x = 1").is_empty());
        assert!(labels("select * from orders where nope = 1").is_empty());
        // A function of a column is not a plain column reference.
        assert!(labels("select * from orders where lower(status) = 'x'").is_empty());
    }

    #[test]
    fn ddl_is_quoted_and_concurrent() {
        let c = Candidate {
            schema: "public".into(),
            table: "Orders".into(),
            columns: vec!["customer_id".into(), "created_at".into()],
        };
        assert_eq!(
            c.ddl(),
            "CREATE INDEX CONCURRENTLY ON public.\"Orders\" (customer_id, created_at);"
        );
        assert_eq!(
            c.hypothetical_ddl(),
            "CREATE INDEX ON public.\"Orders\" (customer_id, created_at)"
        );
    }
}
