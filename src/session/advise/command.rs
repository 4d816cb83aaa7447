//! The advisor's commands, read from a statement's text:
//!
//! - `ADVISE [ANALYZE] <sql>`
//! - `SELECT * FROM helios_advise('<sql>' [, 'analyze'])`
//! - `ADVISE WORKLOAD`
//! - `SHOW HELIOS QUERIES`
//! - `SET [SESSION | LOCAL] helios.advise { = | TO } { on | off | default }`,
//!   `RESET helios.advise`, `SHOW helios.advise`
//!
//! Read with the SQL tokenizer, so comments, spacing, quoting and case work
//! as in any statement.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// A command of the advisor's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Advise {
        sql: String,
        analyze: bool,
    },
    Workload,
    Queries,
    /// `SET helios.advise`: `Some(on)`, or `None` for its default (off).
    SetNotices {
        on: Option<bool>,
        local: bool,
    },
    ShowNotices,
}

/// A token, words folded, spacing and comments left out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted word, upper-cased.
    Word(String),
    /// A quoted identifier, as written.
    Quoted(String),
    /// A string literal's value.
    Str(String),
    Punct(String),
}

fn tokens(text: &str) -> Option<Vec<Tok>> {
    let raw = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .ok()?;
    Some(
        raw.into_iter()
            .filter_map(|t| match t {
                Token::Whitespace(_) => None,
                Token::Word(w) if w.quote_style.is_none() => {
                    Some(Tok::Word(w.value.to_ascii_uppercase()))
                }
                Token::Word(w) => Some(Tok::Quoted(w.value)),
                Token::SingleQuotedString(s)
                | Token::EscapedStringLiteral(s)
                | Token::UnicodeStringLiteral(s) => Some(Tok::Str(s)),
                Token::DollarQuotedString(d) => Some(Tok::Str(d.value)),
                other => Some(Tok::Punct(other.to_string())),
            })
            .collect(),
    )
}

fn word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x == w)
}

/// Drop one trailing `;`.
fn trimmed(mut t: &[Tok]) -> &[Tok] {
    if let Some(Tok::Punct(p)) = t.last() {
        if p == ";" {
            t = &t[..t.len() - 1];
        }
    }
    t
}

/// The text after the first `n` words (comments before them skipped).
fn text_after_words(text: &str, n: usize) -> &str {
    let mut rest = text;
    for _ in 0..n {
        rest = skip_space(rest);
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    skip_space(rest)
}

fn skip_space(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix("--") {
            s = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = s.strip_prefix("/*") {
            s = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return s;
        }
    }
}

/// The advisor's command in `text`, if it is one. `Err`: it is one, but
/// malformed (the message says how).
pub fn parse(text: &str) -> Option<Result<Command, String>> {
    let all = tokens(text)?;
    let t = trimmed(&all);
    let first = t.first();
    if word(first, "ADVISE") {
        if word(t.get(1), "WORKLOAD") && t.len() == 2 {
            return Some(Ok(Command::Workload));
        }
        let analyze = word(t.get(1), "ANALYZE");
        let sql = text_after_words(text, if analyze { 2 } else { 1 });
        let sql = sql.trim_end().trim_end_matches(';').trim_end();
        if sql.is_empty() {
            return Some(Err(
                "ADVISE needs a statement: ADVISE [ANALYZE] <sql>, or ADVISE WORKLOAD".into(),
            ));
        }
        return Some(Ok(Command::Advise {
            sql: sql.to_string(),
            analyze,
        }));
    }
    if word(first, "SHOW") {
        if word(t.get(1), "HELIOS") && word(t.get(2), "QUERIES") && t.len() == 3 {
            return Some(Ok(Command::Queries));
        }
        if is_advise_setting(&t[1..]) && t.len() == 4 {
            return Some(Ok(Command::ShowNotices));
        }
        return None;
    }
    if word(first, "RESET") && is_advise_setting(&t[1..]) {
        return Some(if t.len() == 4 {
            Ok(Command::SetNotices {
                on: None,
                local: false,
            })
        } else {
            Err("RESET helios.advise takes nothing more".into())
        });
    }
    if word(first, "SET") {
        let (local, at) = match t.get(1) {
            Some(Tok::Word(w)) if w == "LOCAL" => (true, 2),
            Some(Tok::Word(w)) if w == "SESSION" => (false, 2),
            _ => (false, 1),
        };
        if !is_advise_setting(&t[at..]) {
            return None;
        }
        let rest = &t[at + 3..];
        let value = match rest {
            [Tok::Punct(eq), v] if eq == "=" => v,
            [Tok::Word(to), v] if to == "TO" => v,
            _ => return Some(Err("expected SET helios.advise = on | off".into())),
        };
        let v = match value {
            Tok::Word(w) => w.to_ascii_lowercase(),
            Tok::Str(s) => s.to_ascii_lowercase(),
            _ => String::new(),
        };
        let on = match v.as_str() {
            "on" | "true" | "yes" | "1" => Some(true),
            "off" | "false" | "no" | "0" => Some(false),
            "default" => None,
            _ => {
                return Some(Err(format!(
                    "parameter \"helios.advise\" requires a Boolean value, not \"{v}\""
                )))
            }
        };
        return Some(Ok(Command::SetNotices { on, local }));
    }
    if word(first, "SELECT") {
        return helios_advise_call(t);
    }
    None
}

/// `helios . advise` at the front.
fn is_advise_setting(t: &[Tok]) -> bool {
    matches!(t, [Tok::Word(a), Tok::Punct(dot), Tok::Word(b), ..] if a == "HELIOS" && dot == "." && b == "ADVISE")
}

/// `SELECT * FROM helios_advise('<sql>' [, 'analyze'])`.
fn helios_advise_call(t: &[Tok]) -> Option<Result<Command, String>> {
    let [Tok::Word(select), Tok::Punct(star), Tok::Word(from), Tok::Word(f), Tok::Punct(open), args @ .., Tok::Punct(close)] =
        t
    else {
        return None;
    };
    if select != "SELECT" || star != "*" || from != "FROM" || f != "HELIOS_ADVISE" {
        return None;
    }
    if open != "(" || close != ")" {
        return None;
    }
    match args {
        [Tok::Str(sql)] => Some(Ok(Command::Advise {
            sql: sql.clone(),
            analyze: false,
        })),
        [Tok::Str(sql), Tok::Punct(comma), Tok::Str(mode)] if comma == "," => {
            match mode.to_ascii_lowercase().as_str() {
                "analyze" => Some(Ok(Command::Advise {
                    sql: sql.clone(),
                    analyze: true,
                })),
                "" | "explain" => Some(Ok(Command::Advise {
                    sql: sql.clone(),
                    analyze: false,
                })),
                other => Some(Err(format!(
                    "helios_advise's second argument is 'analyze' or 'explain', not '{other}'"
                ))),
            }
        }
        _ => Some(Err(
            "helios_advise takes the statement as a string literal: helios_advise('SELECT ...')"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advise(sql: &str, analyze: bool) -> Option<Result<Command, String>> {
        Some(Ok(Command::Advise {
            sql: sql.into(),
            analyze,
        }))
    }

    #[test]
    fn reads_advise_in_every_form() {
        assert_eq!(
            parse("ADVISE select * from t;"),
            advise("select * from t", false)
        );
        assert_eq!(
            parse("/* x */ advise analyze SELECT 1 FROM t WHERE a = 'x;y'"),
            advise("SELECT 1 FROM t WHERE a = 'x;y'", true)
        );
        assert_eq!(
            parse("select * from helios_advise('select * from t where a = ''x''')"),
            advise("select * from t where a = 'x'", false)
        );
        assert_eq!(
            parse("SELECT * FROM HELIOS_ADVISE($$select 1$$, 'analyze');"),
            advise("select 1", true)
        );
        assert_eq!(parse("advise workload"), Some(Ok(Command::Workload)));
        assert!(matches!(parse("advise"), Some(Err(_))));
        assert!(matches!(
            parse("select * from helios_advise(42)"),
            Some(Err(_))
        ));
    }

    #[test]
    fn reads_the_setting_and_show() {
        assert_eq!(parse("show helios queries"), Some(Ok(Command::Queries)));
        assert_eq!(
            parse("SET helios.advise = on"),
            Some(Ok(Command::SetNotices {
                on: Some(true),
                local: false
            }))
        );
        assert_eq!(
            parse("set local helios.advise to 'off';"),
            Some(Ok(Command::SetNotices {
                on: Some(false),
                local: true
            }))
        );
        assert_eq!(
            parse("reset helios.advise"),
            Some(Ok(Command::SetNotices {
                on: None,
                local: false
            }))
        );
        assert_eq!(parse("SHOW helios.advise"), Some(Ok(Command::ShowNotices)));
        assert!(matches!(parse("set helios.advise = maybe"), Some(Err(_))));
    }

    #[test]
    fn leaves_everything_else_alone() {
        for sql in [
            "select * from t",
            "show search_path",
            "set search_path = x",
            "select * from helios_advise_log",
            "select a from helios_advise('x')",
            "show helios caches",
            "reset all",
        ] {
            assert_eq!(parse(sql), None, "{sql}");
        }
    }
}
