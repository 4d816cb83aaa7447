//! The walk over a statement's query levels.
//!
//! sqlparser's [`Visitor`] hands out references that cannot outlive one
//! callback, so the walk keeps only owned data about the enclosing levels
//! (their relations, the CTEs in scope) and calls the rule back while it
//! stands on a level.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FromTable, FunctionArguments, Query, Select, Statement, TableFactor, TableWithJoins,
    UpdateTableFromKind, Visit, Visitor,
};
use helios_planner::catalog::Catalog;
use helios_planner::sql::normalize_ident;

use super::exprs::is_null;
use super::scope::{
    output_columns, relations_of, with_alias_columns, CteDef, Level, LevelKind, QueryFacts,
    Relation, Resolver, Role,
};

/// Call `on_level` for every level of `statement`, outermost first.
pub(crate) fn for_each_level<'c>(
    statement: &Statement,
    catalog: &'c Catalog,
    on_level: &mut dyn FnMut(&Level<'_, 'c>),
) {
    let mut walker = Walker::new(catalog);
    walker.on_level = Some(on_level);
    let _ = statement.visit(&mut walker);
}

/// Call `on_query` for every query of `statement` (each `SELECT ... ORDER
/// BY ... LIMIT`), with a resolver for the FROM lists inside it.
pub(crate) fn for_each_query<'c>(
    statement: &Statement,
    catalog: &'c Catalog,
    on_query: &mut dyn FnMut(&Query, QueryFacts, &Resolver<'_, 'c>),
) {
    let mut walker = Walker::new(catalog);
    walker.on_query = Some(on_query);
    let _ = statement.visit(&mut walker);
}

type LevelCallback<'f, 'c> = &'f mut dyn FnMut(&Level<'_, 'c>);
type QueryCallback<'f, 'c> = &'f mut dyn FnMut(&Query, QueryFacts, &Resolver<'_, 'c>);

struct Walker<'c, 'f> {
    catalog: &'c Catalog,
    /// The CTEs each query we are inside can see, innermost last.
    ctes: Vec<Vec<CteDef>>,
    /// What the body of each CTE we will enter can see: a plain WITH's
    /// body sees the CTEs declared before it, WITH RECURSIVE's sees all.
    cte_bodies: HashMap<*const Query, Vec<CteDef>>,
    /// Relations of the levels we are inside.
    scopes: Vec<Vec<Relation<'c>>>,
    queries: Vec<QueryFacts>,
    /// Roles of subqueries seen from their parent, before they are entered
    /// (keyed by address: the AST does not move during the walk).
    roles: HashMap<*const Query, Role>,
    on_level: Option<LevelCallback<'f, 'c>>,
    on_query: Option<QueryCallback<'f, 'c>>,
}

impl<'c> Walker<'c, '_> {
    fn new(catalog: &'c Catalog) -> Self {
        Walker {
            catalog,
            ctes: Vec::new(),
            cte_bodies: HashMap::new(),
            scopes: Vec::new(),
            queries: Vec::new(),
            roles: HashMap::new(),
            on_level: None,
            on_query: None,
        }
    }

    fn enter_level(
        &mut self,
        kind: LevelKind<'_>,
        from: Vec<&TableWithJoins>,
        selection: Option<&Expr>,
    ) {
        let ctes = self.ctes.last().map_or(&[][..], Vec::as_slice);
        let relations = relations_of(self.catalog, ctes, from.iter().copied());
        if let Some(f) = self.on_level.as_mut() {
            let query = self.queries.last().copied().unwrap_or(QueryFacts {
                role: Role::Top,
                limited: false,
                ordered: false,
            });
            f(&Level {
                kind,
                from,
                selection,
                relations: &relations,
                outer: &self.scopes,
                query,
                catalog: self.catalog,
                ctes,
            });
        }
        self.scopes.push(relations);
    }
}

fn has_limit(query: &Query) -> bool {
    use datafusion::sql::sqlparser::ast::LimitClause;
    let limit = match &query.limit_clause {
        Some(LimitClause::LimitOffset { limit, .. }) => limit.as_ref().is_some_and(|l| !is_null(l)),
        Some(LimitClause::OffsetCommaLimit { .. }) => true,
        None => false,
    };
    limit || query.fetch.is_some()
}

impl Visitor for Walker<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let role = self
            .roles
            .remove(&(query as *const Query))
            .or_else(|| self.queries.last().map(|q| q.role))
            .unwrap_or(Role::Top);
        let facts = QueryFacts {
            role,
            limited: has_limit(query),
            ordered: query.order_by.is_some(),
        };
        let mut visible = self
            .cte_bodies
            .remove(&(query as *const Query))
            .unwrap_or_else(|| self.ctes.last().cloned().unwrap_or_default());
        if let Some(with) = &query.with {
            let declared: Vec<CteDef> = with
                .cte_tables
                .iter()
                .map(|cte| {
                    let alias = Some(cte.alias.clone());
                    let columns = with_alias_columns(output_columns(&cte.query), &alias);
                    (normalize_ident(&cte.alias.name), columns)
                })
                .collect();
            for (i, cte) in with.cte_tables.iter().enumerate() {
                let body = cte.query.as_ref() as *const Query;
                let sees = if with.recursive { declared.len() } else { i };
                let mut seen = visible.clone();
                seen.extend(declared[..sees].iter().cloned());
                self.cte_bodies.insert(body, seen);
                self.roles.insert(body, Role::Cte);
            }
            visible.extend(declared);
        }
        if let Some(f) = self.on_query.as_mut() {
            let resolver = Resolver {
                catalog: self.catalog,
                ctes: &visible,
            };
            f(query, facts, &resolver);
        }
        self.ctes.push(visible);
        self.queries.push(facts);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.queries.pop();
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.enter_level(
            LevelKind::Select(select),
            select.from.iter().collect(),
            select.selection.as_ref(),
        );
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _: &Select) -> ControlFlow<()> {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        match statement {
            Statement::Update(u) => {
                let mut from = vec![&u.table];
                if let Some(UpdateTableFromKind::BeforeSet(f) | UpdateTableFromKind::AfterSet(f)) =
                    &u.from
                {
                    from.extend(f);
                }
                self.enter_level(LevelKind::Update, from, u.selection.as_ref());
            }
            Statement::Delete(d) => {
                let (FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f)) = &d.from;
                let mut from: Vec<_> = f.iter().collect();
                from.extend(d.using.iter().flatten());
                self.enter_level(LevelKind::Delete, from, d.selection.as_ref());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        if matches!(statement, Statement::Update(_) | Statement::Delete(_)) {
            self.scopes.pop();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        let (query, role) = match expr {
            Expr::Subquery(q) => (q, Role::Scalar),
            Expr::Exists { subquery, .. } => (subquery, Role::Exists),
            Expr::InSubquery { subquery, .. } => (subquery, Role::In),
            // `ARRAY(SELECT ...)` and the like.
            Expr::Function(f) => match &f.args {
                FunctionArguments::Subquery(q) => (q, Role::Scalar),
                _ => return ControlFlow::Continue(()),
            },
            _ => return ControlFlow::Continue(()),
        };
        self.roles.insert(query.as_ref() as *const Query, role);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived { subquery, .. } = factor {
            self.roles
                .insert(subquery.as_ref() as *const Query, Role::Derived);
        }
        ControlFlow::Continue(())
    }
}
