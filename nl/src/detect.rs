//! Recognizing natural-language requests among ordinary SQL.
//!
//! The forms, in any client, simple or extended protocol:
//! - `SELECT * FROM nl('question')` / `nl($1)`: translate and run;
//! - `SELECT * FROM nl_sql('question')`: translate, return the SQL;
//! - a statement that is only a comment `/* nl: question */` or `-- nl: question`;
//! - `SELECT nl_reset()`: forget the conversation;
//! - `SHOW HELIOS NL HISTORY`.
//!
//! [`might_be_nl`] is the relay's cheap first look (a byte scan); only text
//! that passes it is parsed by [`detect`].

use helios_planner::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, SelectItem, SetExpr, Statement, TableFactor, Value,
};

use crate::error::{NlError, NlErrorKind};

/// Where the question comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuestionArg {
    /// Written in the statement.
    Text(String),
    /// A bound parameter, `$n` (1-based).
    Param(usize),
}

/// A natural-language request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NlCall {
    /// Translate and run (`nl(...)` or an NL comment).
    Run(QuestionArg),
    /// Translate only (`nl_sql(...)`).
    Sql(QuestionArg),
    /// `SELECT nl_reset()`.
    Reset,
    /// `SHOW HELIOS NL HISTORY`.
    History,
}

impl NlCall {
    /// The `$n` parameters the statement takes.
    pub fn param_count(&self) -> usize {
        match self {
            NlCall::Run(QuestionArg::Param(n)) | NlCall::Sql(QuestionArg::Param(n)) => *n,
            _ => 0,
        }
    }
}

/// Whether `sql` could be a natural-language request: `nl` followed (after
/// spaces) by `(`, `_sql`, `_reset` or `:`, or `helios nl`. No false
/// negatives; false positives go on to [`detect`].
pub fn might_be_nl(sql: &[u8]) -> bool {
    let lower = |b: u8| b.to_ascii_lowercase();
    let mut i = 0;
    while i + 1 < sql.len() {
        if lower(sql[i]) == b'n' && lower(sql[i + 1]) == b'l' {
            let before_ok = i == 0 || !(sql[i - 1].is_ascii_alphanumeric() || sql[i - 1] == b'_');
            if before_ok {
                let mut j = i + 2;
                while j < sql.len() && sql[j].is_ascii_whitespace() {
                    j += 1;
                }
                match sql.get(j).map(|&b| lower(b)) {
                    Some(b'(') | Some(b':') => return true,
                    Some(b'_') => {
                        let rest: Vec<u8> = sql[j..].iter().take(6).map(|&b| lower(b)).collect();
                        if rest.starts_with(b"_sql") || rest.starts_with(b"_reset") {
                            return true;
                        }
                    }
                    _ => {}
                }
                // `SHOW HELIOS NL HISTORY`
                if i >= 7
                    && sql[..i]
                        .to_ascii_lowercase()
                        .trim_ascii_end()
                        .ends_with(b"helios")
                {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// Recognize a natural-language request. `None`: ordinary SQL (relay it).
/// `Some(Err(..))`: clearly meant as one, but malformed.
pub fn detect(sql: &str) -> Option<Result<NlCall, NlError>> {
    if let Some(q) = comment_question(sql) {
        return Some(if q.is_empty() {
            Err(bad("the nl: comment holds no question"))
        } else {
            Ok(NlCall::Run(QuestionArg::Text(q)))
        });
    }
    if is_show_history(sql) {
        return Some(Ok(NlCall::History));
    }
    let statements = helios_planner::sql::parse(sql).ok()?;
    let [statement] = statements.as_slice() else {
        // Several statements: NL only if one of them is an NL call.
        return statements
            .iter()
            .any(|s| call_in(s).is_some())
            .then(|| Err(bad("nl() must be the only statement in its query string")));
    };
    call_in(statement)
}

fn bad(message: &str) -> NlError {
    NlError::new(NlErrorKind::BadRequest, message)
        .with_hint("Write SELECT * FROM nl('your question'), or a statement that is only a comment: -- nl: your question")
}

/// The question of a statement that is only `/* nl: ... */` or `-- nl: ...`.
fn comment_question(sql: &str) -> Option<String> {
    let s = sql.trim_start();
    let (body, rest) = if let Some(after) = s.strip_prefix("/*") {
        let end = after.find("*/")?;
        (&after[..end], &after[end + 2..])
    } else if let Some(after) = s.strip_prefix("--") {
        let end = after.find('\n').unwrap_or(after.len());
        (&after[..end], &after[end..])
    } else {
        return None;
    };
    if !rest.chars().all(|c| c.is_whitespace() || c == ';') {
        return None;
    }
    let body = body.trim();
    let prefix = body.get(..3)?;
    if !prefix.eq_ignore_ascii_case("nl:") {
        return None;
    }
    Some(body[3..].trim().to_string())
}

fn is_show_history(sql: &str) -> bool {
    let words: Vec<String> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    words == ["show", "helios", "nl", "history"]
}

/// The NL call a parsed statement makes, if it makes one.
fn call_in(statement: &Statement) -> Option<Result<NlCall, NlError>> {
    let Statement::Query(query) = statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    // `SELECT nl_reset()`
    if select.from.is_empty() {
        if let [SelectItem::UnnamedExpr(Expr::Function(f))
        | SelectItem::ExprWithAlias {
            expr: Expr::Function(f),
            ..
        }] = select.projection.as_slice()
        {
            if f.name.to_string().eq_ignore_ascii_case("nl_reset") {
                return Some(Ok(NlCall::Reset));
            }
        }
        return None;
    }
    // `SELECT * FROM nl(...)` / `nl_sql(...)`, found anywhere in FROM.
    let mut found = None;
    for twj in &select.from {
        for factor in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            if let TableFactor::Table { name, args, .. } = factor {
                let n = name.to_string().to_ascii_lowercase();
                if n == "nl" || n == "nl_sql" {
                    found = Some((n, args.as_ref().map(|a| a.args.clone()).unwrap_or_default()));
                }
            }
        }
    }
    let (name, args) = found?;
    let simple_shape = select.from.len() == 1
        && select.from[0].joins.is_empty()
        && matches!(select.projection.as_slice(), [SelectItem::Wildcard(_)])
        && select.selection.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
        && select.distinct.is_none()
        && matches!(&select.group_by, helios_planner::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty())
        && select.having.is_none();
    if !simple_shape {
        return Some(Err(bad(&format!(
            "{name}() must be used on its own: SELECT * FROM {name}('...'); put limits, filters and joins in the question"
        ))));
    }
    let arg = match args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] => match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::DollarQuotedString(helios_planner::sqlparser::ast::DollarQuotedString {
                value: s,
                ..
            }) => QuestionArg::Text(s.clone()),
            Value::Placeholder(p) => match p.strip_prefix('$').and_then(|n| n.parse().ok()) {
                Some(n) if n >= 1 => QuestionArg::Param(n),
                _ => {
                    return Some(Err(bad(&format!(
                        "{name}() takes $1, $2, ... as a parameter"
                    ))))
                }
            },
            _ => {
                return Some(Err(bad(&format!(
                    "{name}() takes a question in quotes or a parameter"
                ))))
            }
        },
        _ => {
            return Some(Err(bad(&format!(
                "{name}() takes one argument: a question in quotes, or a parameter ($1)"
            ))))
        }
    };
    if let QuestionArg::Text(t) = &arg {
        if t.trim().is_empty() {
            return Some(Err(bad(&format!("{name}() was given an empty question"))));
        }
    }
    Some(Ok(if name == "nl" {
        NlCall::Run(arg)
    } else {
        NlCall::Sql(arg)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(q: &str) -> Option<Result<NlCall, NlError>> {
        assert!(might_be_nl(q.as_bytes()), "{q} must pass the quick check");
        detect(q)
    }

    #[test]
    fn recognizes_every_form() {
        let text = |s: &str| QuestionArg::Text(s.to_string());
        assert_eq!(
            run("SELECT * FROM nl('top 10 customers')"),
            Some(Ok(NlCall::Run(text("top 10 customers"))))
        );
        assert_eq!(
            run("select * from NL($1);"),
            Some(Ok(NlCall::Run(QuestionArg::Param(1))))
        );
        assert_eq!(
            run("select * from nl_sql('how many orders')"),
            Some(Ok(NlCall::Sql(text("how many orders"))))
        );
        assert_eq!(
            run("/* nl: how many orders */"),
            Some(Ok(NlCall::Run(text("how many orders"))))
        );
        assert_eq!(
            run("  -- NL: orders per region\n;"),
            Some(Ok(NlCall::Run(text("orders per region"))))
        );
        assert_eq!(run("select nl_reset()"), Some(Ok(NlCall::Reset)));
        assert_eq!(run("show helios nl history;"), Some(Ok(NlCall::History)));
        assert_eq!(
            run("select * from nl('it''s')"),
            Some(Ok(NlCall::Run(text("it's"))))
        );
    }

    #[test]
    fn ordinary_sql_is_not_nl() {
        for q in [
            "select 1",
            "select * from online_orders",
            "select channel from t",
            "/* a comment */ select 1",
            "-- nl: question\nselect 1",
            "select * from spinl(1)",
        ] {
            assert_eq!(detect(q), None, "{q}");
        }
        assert!(!might_be_nl(b"select * from orders where only = 1"));
        assert!(!might_be_nl(b"select inline from t"));
    }

    #[test]
    fn malformed_nl_is_a_clear_error() {
        for q in [
            "select count(*) from nl('x')",
            "select * from nl('x') limit 5",
            "select * from nl('a', 'b')",
            "select * from nl(42)",
            "select * from nl('')",
            "select 1; select * from nl('x')",
            "/* nl: */",
        ] {
            let r = detect(q).unwrap_or_else(|| panic!("{q} not recognized"));
            let e = r.expect_err(q);
            assert_eq!(e.sqlstate(), "42601", "{q}");
        }
    }
}
