//! Query levels and what they read: the relations of a FROM list (catalog
//! tables, CTEs, derived tables, functions) under the names the query uses
//! for them, and the resolution of a column reference through those names
//! and the catalog.

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Query, Select, SelectItem, SetExpr, TableAlias, TableFactor, TableWithJoins,
};
use helios_planner::catalog::{Catalog, Column, Table};
use helios_planner::sql::{name_parts, normalize_ident};

use super::exprs::is_aggregate_call;

/// Where a query sits in its statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The statement's own query (also an INSERT's source, and the
    /// parenthesized members of a top-level set operation).
    Top,
    Cte,
    /// A subquery in FROM.
    Derived,
    /// `(SELECT ...)` used as a value.
    Scalar,
    Exists,
    /// `x [NOT] IN (SELECT ...)`.
    In,
}

/// What a level needs to know about the query it belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryFacts {
    pub role: Role,
    /// LIMIT or FETCH FIRST bounds the rows.
    pub limited: bool,
    pub ordered: bool,
}

/// What kind of thing a FROM item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Table,
    Cte,
    Derived,
    /// A set-returning function, UNNEST, VALUES and the like.
    Function,
}

/// One FROM item of a level, under the name the query uses for it.
#[derive(Debug, Clone)]
pub(crate) struct Relation<'c> {
    /// The alias, else the relation's own (last) name.
    pub binding: String,
    pub source: Source,
    /// The catalog relation a plain table name resolves to.
    pub table: Option<&'c Table>,
    /// Output columns of a CTE or derived table, when its select list
    /// names every column.
    pub columns: Option<Vec<String>>,
    /// LATERAL: it may reference the items before it.
    pub lateral: bool,
    /// A subquery that returns at most one row (an aggregate without GROUP BY).
    pub single_row: bool,
    /// How it was written, for messages.
    pub text: String,
}

impl Relation<'_> {
    /// Whether it has a column `name`; `None` when that is not known.
    pub fn has_column(&self, name: &str) -> Option<bool> {
        if let Some(t) = self.table {
            return Some(t.column(name).is_some());
        }
        self.columns.as_ref().map(|cs| cs.iter().any(|c| c == name))
    }
}

/// A CTE in scope: its name and output columns (when known).
pub(crate) type CteDef = (String, Option<Vec<String>>);

/// Turns FROM lists into [`Relation`]s: the catalog, and the CTEs in scope
/// (which shadow tables of the same name).
pub(crate) struct Resolver<'a, 'c> {
    pub catalog: &'c Catalog,
    pub ctes: &'a [CteDef],
}

impl<'c> Resolver<'_, 'c> {
    pub fn relations_of<'t>(
        &self,
        from: impl IntoIterator<Item = &'t TableWithJoins>,
    ) -> Vec<Relation<'c>> {
        relations_of(self.catalog, self.ctes, from)
    }
}

/// A column reference resolved to the relation that provides it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnRef<'c> {
    pub binding: String,
    pub name: String,
    pub table: Option<&'c Table>,
    /// The catalog column, when the relation is a catalog table that has it.
    pub column: Option<&'c Column>,
    /// It comes from an enclosing level (a correlated reference).
    pub outer: bool,
}

impl ColumnRef<'_> {
    /// `table.column` as the catalog names it, else `binding.column`.
    pub fn display(&self) -> String {
        match self.table {
            Some(t) => format!("{}.{}", t.name, self.name),
            None => format!("{}.{}", self.binding, self.name),
        }
    }
}

/// What a level is.
#[derive(Clone, Copy)]
pub(crate) enum LevelKind<'a> {
    Select(&'a Select),
    Update,
    Delete,
}

/// One level of a statement: a SELECT (each member of a set operation is
/// its own level), or the table an UPDATE or DELETE changes.
pub(crate) struct Level<'a, 'c> {
    pub kind: LevelKind<'a>,
    pub from: Vec<&'a TableWithJoins>,
    /// WHERE.
    pub selection: Option<&'a Expr>,
    /// The FROM items (for UPDATE and DELETE, the target first).
    pub relations: &'a [Relation<'c>],
    /// Relations of the enclosing levels, innermost last.
    pub outer: &'a [Vec<Relation<'c>>],
    pub query: QueryFacts,
    pub catalog: &'c Catalog,
    pub ctes: &'a [CteDef],
}

impl<'c> Level<'_, 'c> {
    pub fn select(&self) -> Option<&Select> {
        match self.kind {
            LevelKind::Select(s) => Some(s),
            _ => None,
        }
    }

    /// The relations of another FROM list seen from here (a subquery's).
    pub fn relations_of<'t>(
        &self,
        from: impl IntoIterator<Item = &'t TableWithJoins>,
    ) -> Vec<Relation<'c>> {
        relations_of(self.catalog, self.ctes, from)
    }

    /// Catalog tables this level reads directly.
    pub fn tables(&self) -> impl Iterator<Item = (&Relation<'c>, &'c Table)> {
        self.relations.iter().filter_map(|r| Some((r, r.table?)))
    }

    /// Resolve a column reference at this level, then in the enclosing ones.
    pub fn column(&self, expr: &Expr) -> Option<ColumnRef<'c>> {
        let scopes =
            std::iter::once(self.relations).chain(self.outer.iter().rev().map(Vec::as_slice));
        resolve(expr, scopes)
    }

    /// Resolve a column reference among `relations` only (a subquery's own).
    pub fn column_in(relations: &[Relation<'c>], expr: &Expr) -> Option<ColumnRef<'c>> {
        resolve(expr, std::iter::once(relations))
    }
}

/// The normalized parts of a column reference (`a`, `t.a`, `s.t.a`).
pub(crate) fn column_parts(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Identifier(i) => Some(vec![normalize_ident(i)]),
        Expr::CompoundIdentifier(is) => Some(is.iter().map(normalize_ident).collect()),
        Expr::Nested(e) => column_parts(e),
        _ => None,
    }
}

fn resolve<'r, 'c: 'r>(
    expr: &Expr,
    scopes: impl Iterator<Item = &'r [Relation<'c>]>,
) -> Option<ColumnRef<'c>> {
    let parts = column_parts(expr)?;
    let (name, qualifier) = match parts.as_slice() {
        [name] => (name, None),
        [.., q, name] => (name, Some(q)),
        [] => return None,
    };
    for (depth, relations) in scopes.enumerate() {
        let found = match qualifier {
            Some(q) => match relations.iter().find(|r| &r.binding == q) {
                Some(r) => r,
                None => continue,
            },
            None => {
                // Unqualified: exactly one relation of the innermost level
                // that has it, and no relation there that might.
                let mut having = relations
                    .iter()
                    .filter(|r| r.has_column(name) == Some(true));
                let unknown = relations.iter().any(|r| r.has_column(name).is_none());
                match (having.next(), having.next(), unknown) {
                    (Some(r), None, false) => r,
                    (None, None, false) => continue,
                    _ => return None,
                }
            }
        };
        return Some(ColumnRef {
            binding: found.binding.clone(),
            name: name.clone(),
            table: found.table,
            column: found.table.and_then(|t| t.column(name)),
            outer: depth > 0,
        });
    }
    None
}

/// The relations a FROM list reads, in order; joined items flattened.
pub(crate) fn relations_of<'c, 't>(
    catalog: &'c Catalog,
    ctes: &[CteDef],
    from: impl IntoIterator<Item = &'t TableWithJoins>,
) -> Vec<Relation<'c>> {
    let mut out = Vec::new();
    for twj in from {
        add_factor(catalog, ctes, &twj.relation, &mut out);
        for join in &twj.joins {
            add_factor(catalog, ctes, &join.relation, &mut out);
        }
    }
    out
}

fn add_factor<'c>(
    catalog: &'c Catalog,
    ctes: &[CteDef],
    factor: &TableFactor,
    out: &mut Vec<Relation<'c>>,
) {
    let alias_name = |a: &Option<TableAlias>| a.as_ref().map(|a| normalize_ident(&a.name));
    let text = factor.to_string();
    let relation = match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let mut parts = name_parts(name);
            let last = parts.pop().unwrap_or_default();
            let schema = parts.pop();
            let binding = alias_name(alias).unwrap_or_else(|| last.clone());
            // A CTE shadows a table of the same name (the innermost wins).
            let cte = schema
                .is_none()
                .then(|| ctes.iter().rev().find(|(n, _)| *n == last))
                .flatten();
            match cte {
                Some((_, columns)) => Relation {
                    binding,
                    source: Source::Cte,
                    table: None,
                    columns: with_alias_columns(columns.clone(), alias),
                    lateral: false,
                    single_row: false,
                    text,
                },
                None => Relation {
                    binding,
                    source: Source::Table,
                    table: catalog.resolve(schema.as_deref(), &last),
                    columns: None,
                    lateral: false,
                    single_row: false,
                    text,
                },
            }
        }
        TableFactor::Derived {
            lateral,
            subquery,
            alias,
            ..
        } => Relation {
            binding: alias_name(alias).unwrap_or_default(),
            source: Source::Derived,
            table: None,
            columns: with_alias_columns(output_columns(subquery), alias),
            lateral: *lateral,
            single_row: returns_one_row(subquery),
            text,
        },
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            out.extend(relations_of(catalog, ctes, [table_with_joins.as_ref()]));
            return;
        }
        other => {
            let (alias, lateral) = match other {
                TableFactor::Table { alias, .. }
                | TableFactor::TableFunction { alias, .. }
                | TableFactor::UNNEST { alias, .. } => (alias, true),
                TableFactor::Function { alias, lateral, .. } => (alias, *lateral),
                _ => (&None, false),
            };
            Relation {
                binding: alias_name(alias).unwrap_or_default(),
                source: Source::Function,
                table: None,
                columns: None,
                // Functions in FROM may always reference earlier items.
                lateral: lateral || matches!(other, TableFactor::Function { .. }),
                single_row: false,
                text,
            }
        }
    };
    out.push(relation);
}

/// `t(a, b)` renames the first columns.
pub(crate) fn with_alias_columns(
    columns: Option<Vec<String>>,
    alias: &Option<TableAlias>,
) -> Option<Vec<String>> {
    let renamed: Vec<String> = alias
        .iter()
        .flat_map(|a| a.columns.iter().map(|c| normalize_ident(&c.name)))
        .collect();
    let mut columns = columns?;
    for (i, name) in renamed.into_iter().enumerate() {
        match columns.get_mut(i) {
            Some(c) => *c = name,
            None => columns.push(name),
        }
    }
    Some(columns)
}

/// The output column names of a query, when its select list names them all.
pub(crate) fn output_columns(query: &Query) -> Option<Vec<String>> {
    let select = first_select(&query.body)?;
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(normalize_ident(alias)),
            SelectItem::UnnamedExpr(e) => match e {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => column_parts(e)?.pop(),
                // PostgreSQL names a call after its function.
                Expr::Function(f) => name_parts(&f.name).pop(),
                _ => Some("?column?".to_string()),
            },
            _ => None,
        })
        .collect()
}

/// The SELECT that names a set operation's columns (its first member).
pub(crate) fn first_select(body: &SetExpr) -> Option<&Select> {
    match body {
        SetExpr::Select(s) => Some(s),
        SetExpr::Query(q) => first_select(&q.body),
        SetExpr::SetOperation { left, .. } => first_select(left),
        _ => None,
    }
}

/// An aggregate over the whole input: exactly one row.
pub(crate) fn returns_one_row(query: &Query) -> bool {
    let SetExpr::Select(s) = query.body.as_ref() else {
        return false;
    };
    let grouped = !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    !grouped
        && s.having.is_none()
        && !s.projection.is_empty()
        && s.projection.iter().all(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                is_aggregate_call(e)
            }
            _ => false,
        })
}
