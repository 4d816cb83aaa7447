//! Parsing SQL text (PostgreSQL dialect, DataFusion's sqlparser) and a
//! structural analysis of one statement: what kind it is, which relations
//! and functions it names, and whether it can lock rows or write.
//!
//! The analysis is syntactic and policy-free: callers (NL validation, routing,
//! the cache) decide what to refuse. Identifiers are normalized as PostgreSQL
//! does (unquoted folded to lower case, quoted kept as written), so the names
//! here compare directly with the catalog's.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, TableFactor, Visit,
    Visitor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// How many statements `sql` holds, counting non-empty pieces between
/// semicolons outside strings and comments; `usize::MAX` when the
/// tokenizer cannot read it.
pub fn statement_count(sql: &str) -> usize {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return usize::MAX;
    };
    let (mut count, mut open) = (0, false);
    for t in tokens {
        match t {
            Token::SemiColon => {
                count += usize::from(open);
                open = false;
            }
            Token::Whitespace(_) => {}
            _ => open = true,
        }
    }
    count + usize::from(open)
}

/// Parse `sql` as PostgreSQL. Empty input (or only `;`) yields no statements;
/// the error is the parser's own message.
pub fn parse(sql: &str) -> Result<Vec<Statement>, String> {
    Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string())
}

/// What a statement does, at the level policy cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// `SELECT`, `WITH ... SELECT`, `VALUES`, `TABLE`.
    Query,
    Insert,
    Update,
    Delete,
    Merge,
    /// `CREATE`, `ALTER`, `DROP`, `TRUNCATE`, `COMMENT`, `RENAME`.
    Ddl,
    /// Anything else, named by its leading keyword (`COPY`, `SET`, `CALL`, ...).
    Other(String),
}

/// A relation a statement names, as PostgreSQL would look it up. A database
/// prefix (`db.schema.table`) is dropped: PostgreSQL accepts only the
/// current database there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelationRef {
    pub schema: Option<String>,
    pub name: String,
}

/// A function a statement calls, with its schema when it is qualified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionRef {
    pub schema: Option<String>,
    pub name: String,
}

/// The result of [`analyze`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementInfo {
    pub kind: StatementKind,
    /// Every relation named as a table anywhere (FROM, JOIN, subqueries, CTE
    /// bodies, set operations, LATERAL, `TABLE t`, and the targets of
    /// writes), without names that refer to a CTE in scope; deduplicated, in
    /// first-use order.
    pub relations: Vec<RelationRef>,
    /// Every function called anywhere, including table functions in FROM;
    /// deduplicated, in first-use order.
    pub functions: Vec<FunctionRef>,
    /// A `FOR UPDATE` / `FOR SHARE` locking clause at any level.
    pub locking: bool,
    /// A CTE whose body is INSERT, UPDATE, DELETE or MERGE.
    pub data_modifying_cte: bool,
    /// `SELECT ... INTO new_table` at any level.
    pub select_into: bool,
}

/// PostgreSQL's identifier folding: unquoted to lower case (ASCII only, as
/// PostgreSQL does for multibyte encodings), quoted as written.
pub fn normalize_ident(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

/// The normalized parts of a dotted name.
pub fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => normalize_ident(ident),
            other => other.to_string(),
        })
        .collect()
}

/// `(schema, name)` of a dotted name: the last part and the one before it.
fn schema_and_name(name: &ObjectName) -> (Option<String>, String) {
    let mut parts = name_parts(name);
    let last = parts.pop().unwrap_or_default();
    (parts.pop(), last)
}

/// Analyze one parsed statement.
pub fn analyze(stmt: &Statement) -> StatementInfo {
    let mut walker = Walker {
        relations: Vec::new(),
        functions: Vec::new(),
        locking: false,
        data_modifying_cte: false,
        select_into: false,
        scopes: Vec::new(),
        function_names: Vec::new(),
    };
    // The walker never breaks.
    let _ = stmt.visit(&mut walker);
    StatementInfo {
        kind: kind_of(stmt),
        relations: walker.relations,
        functions: walker.functions,
        locking: walker.locking,
        data_modifying_cte: walker.data_modifying_cte,
        select_into: walker.select_into,
    }
}

fn kind_of(stmt: &Statement) -> StatementKind {
    match stmt {
        Statement::Query(q) => body_kind(&q.body),
        Statement::Insert(_) => StatementKind::Insert,
        Statement::Update(_) => StatementKind::Update,
        Statement::Delete(_) => StatementKind::Delete,
        Statement::Merge(_) => StatementKind::Merge,
        other => {
            // sqlparser has well over a hundred statement variants; their
            // canonical rendering starts with the statement's keyword.
            let text = other.to_string();
            let word = text
                .split(|c: char| !c.is_ascii_alphabetic())
                .find(|w| !w.is_empty())
                .unwrap_or("")
                .to_ascii_uppercase();
            match word.as_str() {
                "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "COMMENT" | "RENAME" => {
                    StatementKind::Ddl
                }
                _ => StatementKind::Other(word),
            }
        }
    }
}

/// The kind of a query body: `WITH ... DELETE` parses as a query whose body
/// is the DELETE.
fn body_kind(body: &SetExpr) -> StatementKind {
    match body {
        SetExpr::Insert(_) => StatementKind::Insert,
        SetExpr::Update(_) => StatementKind::Update,
        SetExpr::Delete(_) => StatementKind::Delete,
        SetExpr::Merge(_) => StatementKind::Merge,
        SetExpr::Query(q) => body_kind(&q.body),
        _ => StatementKind::Query,
    }
}

/// Whether a CTE body writes.
fn body_modifies(body: &SetExpr) -> bool {
    match body {
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => true,
        SetExpr::Query(q) => body_modifies(&q.body),
        SetExpr::SetOperation { left, right, .. } => body_modifies(left) || body_modifies(right),
        _ => false,
    }
}

/// The CTEs one `WITH` clause declares, and how many of them are visible so
/// far: in a plain `WITH`, a CTE body sees only the CTEs declared before it;
/// with `RECURSIVE`, every body sees all of them.
///
/// Queries are identified by address (never dereferenced): the visitor hands
/// out short-lived references, and a CTE body is the `Box<Query>` its `Cte`
/// owns, so equal addresses mean the same node.
struct CteScope {
    owner: *const Query,
    bodies: Vec<*const Query>,
    names: Vec<String>,
    visible: usize,
    recursive: bool,
}

impl CteScope {
    fn sees(&self, name: &str) -> bool {
        let visible = if self.recursive {
            &self.names[..]
        } else {
            &self.names[..self.visible]
        };
        visible.iter().any(|n| n == name)
    }
}

struct Walker {
    relations: Vec<RelationRef>,
    functions: Vec<FunctionRef>,
    locking: bool,
    data_modifying_cte: bool,
    select_into: bool,
    scopes: Vec<CteScope>,
    /// Names of table functions in FROM (`generate_series(1, 3)`), which the
    /// visitor also reports as relations.
    function_names: Vec<*const ObjectName>,
}

impl Walker {
    fn add_relation(&mut self, schema: Option<String>, name: String) {
        if schema.is_none() && self.scopes.iter().any(|s| s.sees(&name)) {
            return;
        }
        let r = RelationRef { schema, name };
        if !self.relations.contains(&r) {
            self.relations.push(r);
        }
    }

    fn add_function(&mut self, name: &ObjectName) {
        let (schema, name) = schema_and_name(name);
        let f = FunctionRef { schema, name };
        if !self.functions.contains(&f) {
            self.functions.push(f);
        }
    }

    /// `TABLE t` operands of a query body (nested queries are visited on
    /// their own). sqlparser keeps these names without their quoting, so
    /// they are folded like unquoted names.
    fn table_commands(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Table(t) => {
                if let Some(name) = &t.table_name {
                    let schema = t.schema_name.as_ref().map(|s| s.to_ascii_lowercase());
                    self.add_relation(schema, name.to_ascii_lowercase());
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.table_commands(left);
                self.table_commands(right);
            }
            _ => {}
        }
    }
}

impl Visitor for Walker {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if !query.locks.is_empty() {
            self.locking = true;
        }
        if let Some(with) = &query.with {
            if with.cte_tables.iter().any(|c| body_modifies(&c.query.body)) {
                self.data_modifying_cte = true;
            }
            self.scopes.push(CteScope {
                owner: query,
                bodies: with
                    .cte_tables
                    .iter()
                    .map(|c| &*c.query as *const Query)
                    .collect(),
                names: with
                    .cte_tables
                    .iter()
                    .map(|c| normalize_ident(&c.alias.name))
                    .collect(),
                visible: 0,
                recursive: with.recursive,
            });
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        // Every CTE of this query's own WITH is visible to its body.
        self.table_commands(&query.body);
        if self
            .scopes
            .last()
            .is_some_and(|s| std::ptr::eq(s.owner, query))
        {
            self.scopes.pop();
        }
        // A finished CTE body makes its name visible to the CTEs after it.
        if let Some(scope) = self.scopes.last_mut() {
            if let Some(i) = scope.bodies.iter().position(|&b| std::ptr::eq(b, query)) {
                scope.visible = scope.visible.max(i + 1);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if select.into.is_some() {
            self.select_into = true;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                self.add_function(name);
                self.function_names.push(name);
            }
            TableFactor::Function { name, .. } => self.add_function(name),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if let Some(i) = self
            .function_names
            .iter()
            .position(|&f| std::ptr::eq(f, relation))
        {
            self.function_names.swap_remove(i);
            return ControlFlow::Continue(());
        }
        let (schema, name) = schema_and_name(relation);
        self.add_relation(schema, name);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            self.add_function(&f.name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<()> {
        if let Statement::Call(f) = stmt {
            self.add_function(&f.name);
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_statements_outside_strings_and_comments() {
        assert_eq!(statement_count(""), 0);
        assert_eq!(statement_count(" ;; "), 0);
        assert_eq!(statement_count("select 1"), 1);
        assert_eq!(statement_count("select ';'; -- ;\n select 2;"), 2);
        assert_eq!(statement_count("select $$;$$ /* ; */"), 1);
    }

    fn one(sql: &str) -> StatementInfo {
        let stmts = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(stmts.len(), 1, "{sql}");
        analyze(&stmts[0])
    }

    fn rels(sql: &str) -> Vec<String> {
        one(sql)
            .relations
            .iter()
            .map(|r| match &r.schema {
                Some(s) => format!("{s}.{}", r.name),
                None => r.name.clone(),
            })
            .collect()
    }

    fn funcs(sql: &str) -> Vec<String> {
        one(sql)
            .functions
            .iter()
            .map(|f| match &f.schema {
                Some(s) => format!("{s}.{}", f.name),
                None => f.name.clone(),
            })
            .collect()
    }

    #[test]
    fn parses_or_reports_the_parsers_error() {
        assert_eq!(parse("select 1; select 2").unwrap().len(), 2);
        assert!(parse("").unwrap().is_empty());
        let e = parse("select (").unwrap_err();
        assert!(e.contains("Expected"), "{e}");
    }

    #[test]
    fn classifies_statements() {
        for (sql, kind) in [
            ("select 1", StatementKind::Query),
            ("with x as (select 1) select * from x", StatementKind::Query),
            ("values (1), (2)", StatementKind::Query),
            ("with x as (select 1) table x", StatementKind::Query),
            ("(select 1) union (select 2)", StatementKind::Query),
            ("insert into t values (1)", StatementKind::Insert),
            ("update t set a = 1", StatementKind::Update),
            ("delete from t", StatementKind::Delete),
            ("with d as (select 1) delete from t", StatementKind::Delete),
            (
                "merge into t using s on t.id = s.id when matched then delete",
                StatementKind::Merge,
            ),
            ("create table t (a int)", StatementKind::Ddl),
            ("drop table t", StatementKind::Ddl),
            ("truncate t", StatementKind::Ddl),
            ("alter table t add column b int", StatementKind::Ddl),
            ("copy t to stdout", StatementKind::Other("COPY".into())),
            ("set search_path = x", StatementKind::Other("SET".into())),
            ("call p()", StatementKind::Other("CALL".into())),
            ("explain select 1", StatementKind::Other("EXPLAIN".into())),
        ] {
            assert_eq!(one(sql).kind, kind, "{sql}");
        }
    }

    #[test]
    fn finds_relations_everywhere_and_normalizes_them() {
        assert_eq!(
            rels(
                "select * from Orders o join \"Customers\" c on c.id = o.cid \
                 left join sales.Items i on true \
                 where exists (select 1 from refunds r where r.oid = o.id) \
                 and o.x in (select x from xs) \
                 union all select * from archive.orders"
            ),
            [
                "orders",
                "Customers",
                "sales.items",
                "refunds",
                "xs",
                "archive.orders"
            ]
        );
        assert_eq!(
            rels("select * from a, lateral (select * from b where b.id = a.id) s"),
            ["a", "b"]
        );
        assert_eq!(rels("select (select max(x) from m) from n"), ["m", "n"]);
        assert_eq!(rels("(table Public.T)"), ["public.t"]);
        assert_eq!(rels("select * from a union table b"), ["a", "b"]);
        assert_eq!(rels("select * from db.s.t"), ["s.t"]);
        assert_eq!(rels("select * from t join t u on true"), ["t"]);
    }

    #[test]
    fn excludes_ctes_in_scope_only() {
        assert_eq!(
            rels("with x as (select * from t), y as (select * from x) select * from x, y, z"),
            ["t", "z"]
        );
        // A CTE body cannot see itself or later CTEs without RECURSIVE: the
        // name there is the real table.
        assert_eq!(
            rels("with orders as (select * from orders) select * from orders"),
            ["orders"]
        );
        assert_eq!(
            rels("with a as (select * from b), b as (select 1) select * from a, b"),
            ["b"]
        );
        assert_eq!(
            rels(
                "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) \
                 select * from r"
            ),
            Vec::<String>::new()
        );
        // Out of its scope a CTE name is a table again.
        assert_eq!(
            rels("select * from (with q as (select 1) select * from q) s, q"),
            ["q"]
        );
        // Qualified names never refer to CTEs.
        assert_eq!(
            rels("with t as (select 1) select * from public.t"),
            ["public.t"]
        );
        assert_eq!(rels("with x as (select 1) table x"), Vec::<String>::new());
        // Nested WITH inside a CTE body.
        assert_eq!(
            rels(
                "with a as (with b as (select * from c) select * from b) \
                 select * from a, b"
            ),
            ["c", "b"]
        );
    }

    #[test]
    fn finds_functions_everywhere() {
        assert_eq!(
            funcs(
                "select Lower(name), pg_catalog.pg_sleep(1) from t \
                 where coalesce(a, 0) > abs(b) group by 1 \
                 order by length(name) limit 1"
            ),
            ["lower", "pg_catalog.pg_sleep", "coalesce", "abs", "length"]
        );
        assert_eq!(
            funcs("select * from generate_series(1, 3) g, t"),
            ["generate_series"]
        );
        assert_eq!(rels("select * from generate_series(1, 3) g, t"), ["t"]);
        assert_eq!(
            funcs("select * from t, lateral jsonb_array_elements(t.j) e"),
            ["jsonb_array_elements"]
        );
        assert_eq!(
            funcs("select sum(x) over (partition by y order by now()) from t"),
            ["sum", "now"]
        );
        assert_eq!(
            funcs("select * from t where x in (select pg_read_file('/etc/passwd'))"),
            ["pg_read_file"]
        );
        assert_eq!(
            funcs("with c as (select nextval('s')) select * from c"),
            ["nextval"]
        );
    }

    #[test]
    fn flags_locking_writes_and_select_into() {
        assert!(one("select * from t for update").locking);
        assert!(one("select * from t for share").locking);
        assert!(one("select * from (select * from t for update) s").locking);
        assert!(!one("select * from t").locking);

        let i = one("with d as (delete from t returning *) select * from d");
        assert!(i.data_modifying_cte);
        assert_eq!(i.kind, StatementKind::Query);
        assert!(
            one("with i as (insert into t values (1) returning *) select 1").data_modifying_cte
        );
        assert!(one("with u as (update t set a = 1 returning *) select 1").data_modifying_cte);
        assert!(!one("with s as (select 1) select * from s").data_modifying_cte);

        assert!(one("select * into x from t").select_into);
        assert!(!one("select * from t").select_into);
    }
}
