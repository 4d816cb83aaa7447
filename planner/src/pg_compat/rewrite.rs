//! Rewriting PostgreSQL-isms into SQL DataFusion plans, on sqlparser's AST
//! (so string literals and quoted names are never touched), printed back.
//!
//! Expressions: `OPERATOR(pg_catalog.~)` → `~`; `COLLATE x` dropped;
//! `pg_catalog.f(...)` → `f(...)`; `::regclass` / `::regtype` /
//! `::regnamespace` / `::regrole` / `::regproc` / `::oid` casts → lookups
//! (a literal becomes an oid, anything else its name, as PostgreSQL prints
//! them); `::pg_catalog.text` and other PostgreSQL type names → DataFusion
//! types; array casts dropped (arrays are PostgreSQL array text here);
//! `x = ANY(arr)` / `x <> ALL(arr)` → `IN` lists for literals,
//! `pg_array_contains` otherwise; `arr[i]` → `pg_array_element`;
//! `(a, b) = (c, d)` → `a = c AND b = d`; `ARRAY(subquery)` → array text;
//! correlated scalar subqueries wrapped in `max()` (DataFusion decorrelates
//! only aggregated ones; PostgreSQL allows at most one row anyway).
//!
//! Relations: unqualified `pg_class` etc. → `pg_catalog.pg_class` (pg_catalog
//! is first on PostgreSQL's search path); `pg_catalog.generate_series(...)`
//! → `generate_series(...)`. A SELECT that reads a catalog that is always
//! empty through an inner join becomes `SELECT NULL AS ... WHERE false`;
//! such a scalar subquery becomes NULL, EXISTS false, `ARRAY(...)` `'{}'`.
//!
//! Select lists: an unaliased expression gets PostgreSQL's column name
//! (`count`, `version`, `?column?`), unique within the list, and `n.oid`
//! next to `n.*` is dropped (DataFusion rejects the duplicate).

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, DataType, Expr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
    Subscript, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::subquery::{
    array_aggregate, decorrelate, is_replacement, query_is_empty, replace_empty,
};
use super::tables::def;

/// Rewrite PostgreSQL-isms DataFusion cannot parse or plan into equivalent
/// SQL (returns the input unchanged when nothing applies, or when the
/// statement does not parse: DataFusion will report that itself).
pub fn rewrite(sql: &str) -> Cow<'_, str> {
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Cow::Borrowed(sql);
    };
    let mut rewriter = Rewriter { changed: false };
    for statement in &mut statements {
        if matches!(statement, Statement::Query(_)) {
            let _ = statement.visit(&mut rewriter);
        }
    }
    if !rewriter.changed {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";\n"),
    )
}

struct Rewriter {
    changed: bool,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        self.changed |= name_items(select);
        self.changed |= table_oids(select);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, args, .. } = factor {
            let parts = idents(name);
            match (parts.as_slice(), args.is_some()) {
                ([schema, f], true) if schema.eq_ignore_ascii_case("pg_catalog") => {
                    *name = ObjectName::from(vec![Ident::new(f.clone())]);
                    self.changed = true;
                }
                ([table], false) if def(table).is_some() => {
                    *name = ObjectName::from(vec![Ident::new("pg_catalog"), Ident::new(table)]);
                    self.changed = true;
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        // A bare NULL in a select list is text, as PostgreSQL resolves it
        // (not inside UNION branches, where the other branches decide).
        if let SetExpr::Select(select) = &mut *query.body {
            for item in &mut select.projection {
                if let SelectItem::ExprWithAlias { expr, .. } | SelectItem::UnnamedExpr(expr) = item
                {
                    if matches!(expr, Expr::Value(v) if v.value == Value::Null) {
                        *expr = parse("CAST(NULL AS TEXT)");
                        self.changed = true;
                    }
                }
            }
        }
        if query.with.is_some() {
            return ControlFlow::Continue(());
        }
        if query_is_empty(query) && !matches!(&*query.body, SetExpr::Select(s) if is_replacement(s))
        {
            if replace_empty(&mut query.body, false) {
                query.order_by = None;
                query.limit_clause = None;
                self.changed = true;
            }
        } else if let SetExpr::SetOperation { .. } = &*query.body {
            self.changed |= replace_empty(&mut query.body, true);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // `x = ANY(ARRAY[a, b])` is `x IN (a, b)`, whatever a and b are.
        let (left, right, negated) = match expr {
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => (left, right, false),
            Expr::AllOp {
                left,
                compare_op: BinaryOperator::NotEq,
                right,
            } => (left, right, true),
            _ => return ControlFlow::Continue(()),
        };
        let mut r = &**right;
        while let Expr::Nested(inner) = r {
            r = inner;
        }
        if let Expr::Array(array) = r {
            if !array.elem.is_empty() {
                *expr = Expr::InList {
                    expr: left.clone(),
                    list: array.elem.clone(),
                    negated,
                };
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(new) = rewrite_expr(expr) {
            *expr = new;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// Parse an expression this module built as text.
pub(super) fn parse(sql: &str) -> Expr {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .unwrap_or_else(|e| panic!("pg_compat built unparsable SQL {sql:?}: {e}"))
}

pub(super) fn call(name: &str, args: &[&Expr]) -> Expr {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    parse(&format!("{name}({})", args.join(", ")))
}

pub(super) fn idents(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s),
            _ => None,
        },
        Expr::Nested(e) => string_literal(e),
        _ => None,
    }
}

fn rewrite_expr(expr: &Expr) -> Option<Expr> {
    match expr {
        Expr::Collate { expr, .. } => Some((**expr).clone()),
        Expr::BinaryOp { left, op, right } => {
            if let BinaryOperator::PGCustomBinaryOperator(parts) = op {
                let sym = parts.last()?;
                return Some(parse(&format!("({left}) {sym} ({right})")));
            }
            match (&**left, op, &**right) {
                (Expr::Tuple(l), BinaryOperator::Eq, Expr::Tuple(r)) if l.len() == r.len() => {
                    let terms: Vec<String> = l
                        .iter()
                        .zip(r)
                        .map(|(a, b)| format!("({a}) = ({b})"))
                        .collect();
                    Some(parse(&format!("({})", terms.join(" AND "))))
                }
                _ => None,
            }
        }
        Expr::Cast {
            expr: inner,
            data_type,
            kind,
            ..
        } => rewrite_cast(inner, data_type, kind),
        Expr::Function(f) => {
            let parts = idents(&f.name);
            if let [schema, name] = parts.as_slice() {
                if schema.eq_ignore_ascii_case("pg_catalog") {
                    let mut f = f.clone();
                    f.name = ObjectName::from(vec![Ident::new(name.clone())]);
                    return Some(
                        rewrite_expr(&Expr::Function(f.clone())).unwrap_or(Expr::Function(f)),
                    );
                }
            }
            match (&f.args, parts.as_slice()) {
                (FunctionArguments::Subquery(q), [name]) if name.eq_ignore_ascii_case("array") => {
                    Some(array_subquery(q))
                }
                _ => None,
            }
        }
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => Some(contains(left, right, false)),
        Expr::AllOp {
            left,
            compare_op: BinaryOperator::NotEq,
            right,
        } => Some(contains(left, right, true)),
        Expr::CompoundFieldAccess { root, access_chain } => {
            let mut out = (**root).clone();
            for access in access_chain {
                match access {
                    AccessExpr::Subscript(Subscript::Index { index }) => {
                        out = call("pg_array_element", &[&out, index]);
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        Expr::Array(array) => array_literal(&array.elem),
        Expr::Subquery(q) if query_is_empty(q) => Some(parse("NULL")),
        Expr::Subquery(q) => decorrelate(q),
        Expr::Exists { subquery, negated } if query_is_empty(subquery) => {
            Some(parse(if *negated { "true" } else { "false" }))
        }
        Expr::InSubquery {
            subquery, negated, ..
        } if query_is_empty(subquery) => Some(parse(if *negated { "true" } else { "false" })),
        _ => None,
    }
}

/// `x = ANY(arr)` (or, negated, `x <> ALL(arr)`).
fn contains(left: &Expr, right: &Expr, negated: bool) -> Expr {
    let not = if negated { "NOT " } else { "" };
    if let Some(elements) = string_literal(right).and_then(super::arrays::parse_array) {
        if elements.is_empty() {
            return parse(if negated { "true" } else { "false" });
        }
        let list: Vec<String> = elements
            .iter()
            .map(|e| match e {
                Some(e) => format!("'{}'", e.replace('\'', "''")),
                None => "NULL".into(),
            })
            .collect();
        return parse(&format!("({left}) {not}IN ({})", list.join(", ")));
    }
    parse(&format!("{not}pg_array_contains({right}, {left})"))
}

/// `ARRAY[1, 'a', NULL]` of literals as PostgreSQL array text; None if an
/// element is not a literal.
fn array_literal(elements: &[Expr]) -> Option<Expr> {
    let mut items = Vec::with_capacity(elements.len());
    for e in elements {
        let Expr::Value(v) = e else {
            return None;
        };
        items.push(match &v.value {
            Value::Null => "NULL".to_string(),
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => if *b { "t" } else { "f" }.to_string(),
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => {
                super::arrays::quote_element(Some(s))
            }
            _ => return None,
        });
    }
    let text = format!("{{{}}}", items.join(","));
    Some(parse(&format!("'{}'", text.replace('\'', "''"))))
}

/// The lowercase PostgreSQL name of a cast's target type, without
/// `pg_catalog.`; arrays as `elem[]`.
pub(super) fn type_name(ty: &DataType) -> String {
    match ty {
        DataType::Custom(name, _) => idents(name)
            .last()
            .map(|n| n.to_ascii_lowercase())
            .unwrap_or_default(),
        DataType::Array(_) => "[]".into(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

fn rewrite_cast(inner: &Expr, ty: &DataType, kind: &CastKind) -> Option<Expr> {
    let name = type_name(ty);
    let literal = string_literal(inner);
    let number = matches!(inner, Expr::Value(v) if matches!(v.value, Value::Number(..)));
    let lookup = |to_oid: &str, to_name: &str| -> Expr {
        match literal {
            Some(_) => call(to_oid, &[inner]),
            None if number => inner.clone(),
            None => call(to_name, &[inner]),
        }
    };
    let typed = |sql_type: &str| Some(parse(&format!("CAST({inner} AS {sql_type})")));
    match name.as_str() {
        "regclass" => Some(lookup("pg_regclass_oid", "pg_regclass_name")),
        "regnamespace" => Some(lookup("pg_regnamespace_oid", "pg_regnamespace_name")),
        "regrole" => Some(lookup("pg_regrole_oid", "pg_regrole_name")),
        "regtype" => Some(match literal {
            Some(_) => call("pg_regtype_oid", &[inner]),
            None if number => inner.clone(),
            None => parse(&format!("format_type({inner}, NULL)")),
        }),
        "regproc" | "regprocedure" => Some(match literal {
            Some(s) => {
                let bare = s.rsplit('.').next().unwrap_or(s).replace('\'', "''");
                parse(&format!("'{bare}'"))
            }
            None => inner.clone(),
        }),
        "oid" | "regoper" | "regoperator" | "xid" | "cid" => {
            if let Expr::Function(f) = inner {
                let fname = idents(&f.name).join(".");
                if fname.starts_with("pg_reg") && fname.ends_with("_name") {
                    if let FunctionArguments::List(list) = &f.args {
                        if let Some(arg) = list.args.first() {
                            return Some(parse(&format!("CAST({arg} AS INT)")));
                        }
                    }
                }
            }
            if matches!(inner, Expr::Function(f) if idents(&f.name).join(".").ends_with("_oid")) {
                return Some(inner.clone());
            }
            typed("INT")
        }
        "[]" => {
            let pg_only = matches!(ty, DataType::Array(_)) && {
                let s = ty.to_string().to_ascii_lowercase();
                s.contains("pg_catalog")
                    || s.starts_with("name")
                    || s.starts_with("oid")
                    || s.starts_with("\"char\"")
                    || s.starts_with("aclitem")
            };
            (literal.is_some() || pg_only).then(|| inner.clone())
        }
        _ => {
            let qualified = matches!(ty, DataType::Custom(n, _) if n.0.len() > 1);
            let custom = matches!(ty, DataType::Custom(..));
            if !(qualified || custom) || matches!(kind, CastKind::TryCast | CastKind::SafeCast) {
                return None;
            }
            let sql_type = match name.as_str() {
                "text" | "name" | "char" | "bpchar" | "varchar" | "citext" | "json" | "jsonb"
                | "uuid" | "inet" | "cidr" | "xml" | "pg_node_tree" | "unknown" => "TEXT",
                "int2" | "smallint" => "SMALLINT",
                "int4" | "integer" | "int" => "INT",
                "int8" | "bigint" => "BIGINT",
                "float4" | "real" => "REAL",
                "float8" => "DOUBLE",
                "bool" | "boolean" => "BOOLEAN",
                "numeric" | "decimal" => "NUMERIC",
                "date" => "DATE",
                "timestamp" => "TIMESTAMP",
                "timestamptz" => "TIMESTAMPTZ",
                "bytea" => "BYTEA",
                "interval" => "INTERVAL",
                _ => return None,
            };
            typed(sql_type)
        }
    }
}

/// `ARRAY(subquery)` as PostgreSQL array text.
fn array_subquery(q: &Query) -> Expr {
    if query_is_empty(q) {
        return parse("'{}'");
    }
    array_aggregate(q).unwrap_or_else(|| {
        parse(&format!(
            "(SELECT COALESCE('{{' || string_agg(pg_array_quote(CAST(pg_array_sub.x AS TEXT)), \
             ',') || '}}', '{{}}') FROM ({q}) AS pg_array_sub(x))"
        ))
    })
}

/// PostgreSQL's output column name for an unaliased expression; None for
/// `?column?`.
pub(super) fn pg_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        Expr::Function(f) => idents(&f.name).last().map(|n| n.to_ascii_lowercase()),
        Expr::Cast {
            expr, data_type, ..
        } => pg_name(expr).or_else(|| {
            let t = type_name(data_type);
            (t != "[]").then_some(t)
        }),
        Expr::Nested(e) => pg_name(e),
        Expr::Case { .. } => Some("case".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::CompoundFieldAccess { root, .. } => pg_name(root),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Value(v) if matches!(v.value, Value::Boolean(_)) => Some("bool".into()),
        Expr::Subquery(q) => match &*q.body {
            SetExpr::Select(s) => match s.projection.as_slice() {
                [SelectItem::UnnamedExpr(e)] => pg_name(e),
                [SelectItem::ExprWithAlias { alias, .. }] => Some(alias.value.clone()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// `alias.tableoid` (a system column) → the oid of the aliased relation.
fn table_oids(select: &mut Select) -> bool {
    let mut tables: Vec<(String, String)> = Vec::new();
    for twj in &select.from {
        for factor in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            if let TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } = factor
            {
                let parts = idents(name);
                let key = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .or_else(|| parts.last().cloned())
                    .unwrap_or_default();
                tables.push((key.to_ascii_lowercase(), parts.join(".")));
            }
        }
    }
    if tables.is_empty() {
        return false;
    }
    let mut changed = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(select, |e| {
        if let Expr::CompoundIdentifier(parts) = e {
            if let [q, column] = parts.as_slice() {
                if column.value.eq_ignore_ascii_case("tableoid") {
                    let q = q.value.to_ascii_lowercase();
                    if let Some((_, table)) = tables.iter().find(|(k, _)| *k == q) {
                        *e = parse(&format!("pg_regclass_oid('{}')", table.replace('\'', "''")));
                        changed = true;
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

/// Give unaliased expressions PostgreSQL's names (unique in the list) and
/// drop `q.col` items duplicated by a `q.*`. Whether anything changed.
fn name_items(select: &mut Select) -> bool {
    let mut changed = false;
    let wildcards: Vec<String> = select
        .projection
        .iter()
        .filter_map(|i| match i {
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _) => {
                idents(n).last().map(|s| s.to_ascii_lowercase())
            }
            _ => None,
        })
        .collect();
    if !wildcards.is_empty() {
        let before = select.projection.len();
        select.projection.retain(|i| match i {
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) if parts.len() == 2 => {
                !wildcards.contains(&parts[0].value.to_ascii_lowercase())
            }
            _ => true,
        });
        changed |= select.projection.len() != before;
    }
    let mut used: HashSet<String> = select
        .projection
        .iter()
        .filter_map(|i| match i {
            SelectItem::UnnamedExpr(e @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_))) => {
                pg_name(e)
            }
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            _ => None,
        })
        .collect();
    for item in &mut select.projection {
        let SelectItem::UnnamedExpr(e) = item else {
            continue;
        };
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            continue;
        }
        let base = pg_name(e).unwrap_or_else(|| "?column?".into());
        let mut name = base.clone();
        let mut n = 1;
        while used.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        used.insert(name.clone());
        *item = SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: Ident::with_quote('"', name),
        };
        changed = true;
    }
    changed
}
