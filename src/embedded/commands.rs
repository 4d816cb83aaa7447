//! Statements the embedded database answers itself, without DataFusion:
//! transaction control, `SET` / `RESET` / `SHOW`, `DISCARD`, `DEALLOCATE`.
//! Drivers send these on every connection (JDBC: `SET extra_float_digits =
//! 3`, `SET application_name`; psql: `SHOW`; ORMs: `BEGIN` / `COMMIT`), so
//! they must work as PostgreSQL's do, including the ParameterStatus a `SET`
//! of a reported setting sends.
//!
//! Read with the SQL tokenizer, so comments, spacing, quoting and case work
//! as in any statement.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// A statement answered locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    Begin,
    Commit,
    Rollback,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`: the tag to answer with.
    Savepoint(&'static str),
    /// `SET name = value`; `None` is `DEFAULT`.
    Set {
        name: String,
        value: Option<String>,
        local: bool,
    },
    /// `SET SESSION CHARACTERISTICS ...`, `SET TRANSACTION ...`: accepted.
    SetIgnored,
    Reset(Option<String>),
    Show(ShowWhat),
    Discard,
    Deallocate(Option<String>),
    /// Nothing but comments and semicolons.
    Empty,
    /// A Helios admin command already carried out (`HELIOS RELOAD`, ...):
    /// the tag to answer with.
    Done(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShowWhat {
    All,
    One(String),
}

/// A token with words folded and spacing dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Str(String),
    Number(String),
    Punct(String),
}

fn tokens(text: &str) -> Option<Vec<Tok>> {
    let raw = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .ok()?;
    Some(
        raw.into_iter()
            .filter_map(|t| match t {
                Token::Whitespace(_) | Token::SemiColon => None,
                Token::Word(w) if w.quote_style.is_none() => {
                    Some(Tok::Word(w.value.to_ascii_lowercase()))
                }
                Token::Word(w) => Some(Tok::Quoted(w.value)),
                Token::SingleQuotedString(s)
                | Token::EscapedStringLiteral(s)
                | Token::UnicodeStringLiteral(s) => Some(Tok::Str(s)),
                Token::Number(n, _) => Some(Tok::Number(n)),
                other => Some(Tok::Punct(other.to_string())),
            })
            .collect(),
    )
}

fn word(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Word(w)) => Some(w),
        _ => None,
    }
}

/// A setting's name: words joined by dots (`helios.cache`, `TimeZone`).
fn name_at(toks: &[Tok], mut i: usize) -> Option<(String, usize)> {
    let mut name = match toks.get(i)? {
        Tok::Word(w) => w.clone(),
        Tok::Quoted(q) => q.to_ascii_lowercase(),
        _ => return None,
    };
    i += 1;
    while toks.get(i) == Some(&Tok::Punct(".".into())) {
        match toks.get(i + 1)? {
            Tok::Word(w) => name.push_str(&format!(".{w}")),
            Tok::Quoted(q) => name.push_str(&format!(".{}", q.to_ascii_lowercase())),
            _ => return None,
        }
        i += 2;
    }
    Some((name, i))
}

/// A value list as PostgreSQL renders it for `SHOW` (`a, b`).
fn value_list(toks: &[Tok]) -> Option<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    for t in toks {
        match t {
            Tok::Punct(p) if p == "," => parts.push(std::mem::take(&mut cur)),
            Tok::Word(w) => cur.push_str(w),
            Tok::Quoted(q) | Tok::Str(q) => cur.push_str(q),
            Tok::Number(n) => cur.push_str(n),
            Tok::Punct(p) if p == "-" || p == "+" || p == "." || p == ":" => cur.push_str(p),
            Tok::Punct(_) => return None,
        }
    }
    parts.push(cur);
    Some(parts.join(", "))
}

/// Read `text` (one statement) as a local command, if it is one.
pub fn read(text: &str) -> Option<Local> {
    let toks = tokens(text)?;
    let first = match toks.first() {
        None => return Some(Local::Empty),
        Some(Tok::Word(w)) => w.as_str(),
        Some(_) => return None,
    };
    let second = word(toks.get(1));
    Some(match first {
        "begin" | "start" => {
            if first == "start" && second != Some("transaction") {
                return None;
            }
            Local::Begin
        }
        "commit" | "end" => Local::Commit,
        "abort" => Local::Rollback,
        "rollback" => {
            let rest: Vec<_> = toks[1..]
                .iter()
                .filter(|t| !matches!(t, Tok::Word(w) if w == "work" || w == "transaction"))
                .collect();
            match rest.first() {
                Some(Tok::Word(w)) if w == "to" => Local::Savepoint("ROLLBACK"),
                Some(Tok::Word(w)) if w == "and" => Local::Rollback,
                None => Local::Rollback,
                _ => return None,
            }
        }
        "savepoint" if toks.len() == 2 => Local::Savepoint("SAVEPOINT"),
        "release" => Local::Savepoint("RELEASE"),
        "set" => set(&toks[1..])?,
        "reset" => match (word(toks.get(1)), toks.len()) {
            (Some("all"), 2) => Local::Reset(None),
            _ => {
                let (name, end) = name_at(&toks, 1)?;
                if end != toks.len() {
                    return None;
                }
                Local::Reset(Some(name))
            }
        },
        "show" => {
            if second == Some("all") && toks.len() == 2 {
                Local::Show(ShowWhat::All)
            } else if second == Some("transaction") {
                Local::Show(ShowWhat::One("transaction_isolation".into()))
            } else if second == Some("time") && word(toks.get(2)) == Some("zone") {
                Local::Show(ShowWhat::One("timezone".into()))
            } else {
                let (name, end) = name_at(&toks, 1)?;
                if end != toks.len() {
                    return None;
                }
                Local::Show(ShowWhat::One(name))
            }
        }
        "discard" => Local::Discard,
        "deallocate" => {
            let mut i = 1;
            if word(toks.get(i)) == Some("prepare") {
                i += 1;
            }
            match toks.get(i) {
                Some(Tok::Word(w)) if w == "all" => Local::Deallocate(None),
                Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => Local::Deallocate(Some(w.clone())),
                _ => return None,
            }
        }
        _ => return None,
    })
}

fn set(toks: &[Tok]) -> Option<Local> {
    let mut i = 0;
    let mut local = false;
    match word(toks.first()) {
        Some("session") => {
            if word(toks.get(1)) == Some("characteristics") {
                return Some(Local::SetIgnored);
            }
            i = 1;
        }
        Some("local") => {
            local = true;
            i = 1;
        }
        Some("transaction") => return Some(Local::SetIgnored),
        _ => {}
    }
    // SET TIME ZONE value
    if word(toks.get(i)) == Some("time") && word(toks.get(i + 1)) == Some("zone") {
        let rest = &toks[i + 2..];
        let value = match rest {
            [Tok::Word(w)] if w == "local" || w == "default" => None,
            _ => Some(value_list(rest)?),
        };
        return Some(Local::Set {
            name: "timezone".into(),
            value,
            local,
        });
    }
    let (name, end) = name_at(toks, i)?;
    match toks.get(end) {
        Some(Tok::Punct(p)) if p == "=" => {}
        Some(Tok::Word(w)) if w == "to" => {}
        _ => return None,
    }
    let rest = &toks[end + 1..];
    let value = match rest {
        [Tok::Word(w)] if w == "default" => None,
        [] => return None,
        _ => Some(value_list(rest)?),
    };
    Some(Local::Set { name, value, local })
}

/// Split a simple Query's text into its statements (on top-level `;`).
/// Text the tokenizer cannot read is one statement (DataFusion will report
/// the syntax error).
pub fn split(text: &str) -> Vec<String> {
    let Ok(raw) = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize() else {
        return vec![text.to_string()];
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut meaningful = false;
    for t in raw {
        match t {
            Token::SemiColon => {
                if meaningful {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
                meaningful = false;
            }
            Token::Whitespace(_) => cur.push_str(&t.to_string()),
            // The token's Display does not double an embedded quote again
            // ('What''s' would come back as 'What's').
            Token::SingleQuotedString(s) => {
                meaningful = true;
                cur.push('\'');
                cur.push_str(&s.replace('\'', "''"));
                cur.push('\'');
            }
            other => {
                meaningful = true;
                cur.push_str(&other.to_string());
            }
        }
    }
    if meaningful {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_drivers_send() {
        assert_eq!(read("BEGIN"), Some(Local::Begin));
        assert_eq!(read("start transaction read only"), Some(Local::Begin));
        assert_eq!(read("COMMIT"), Some(Local::Commit));
        assert_eq!(read("rollback"), Some(Local::Rollback));
        assert_eq!(
            read("ROLLBACK TO SAVEPOINT a"),
            Some(Local::Savepoint("ROLLBACK"))
        );
        assert_eq!(
            read("SET extra_float_digits = 3"),
            Some(Local::Set {
                name: "extra_float_digits".into(),
                value: Some("3".into()),
                local: false
            })
        );
        assert_eq!(
            read("SET application_name = 'PostgreSQL JDBC Driver'"),
            Some(Local::Set {
                name: "application_name".into(),
                value: Some("PostgreSQL JDBC Driver".into()),
                local: false
            })
        );
        assert_eq!(
            read("set search_path to public, \"$user\""),
            Some(Local::Set {
                name: "search_path".into(),
                value: Some("public, $user".into()),
                local: false
            })
        );
        assert_eq!(
            read("SET TIME ZONE 'Europe/Berlin'"),
            Some(Local::Set {
                name: "timezone".into(),
                value: Some("Europe/Berlin".into()),
                local: false
            })
        );
        assert_eq!(
            read("SET extra_float_digits = -3"),
            Some(Local::Set {
                name: "extra_float_digits".into(),
                value: Some("-3".into()),
                local: false
            })
        );
        assert_eq!(read("SHOW ALL"), Some(Local::Show(ShowWhat::All)));
        assert_eq!(
            read("SHOW TRANSACTION ISOLATION LEVEL"),
            Some(Local::Show(ShowWhat::One("transaction_isolation".into())))
        );
        assert_eq!(
            read("show TimeZone"),
            Some(Local::Show(ShowWhat::One("timezone".into())))
        );
        assert_eq!(read("RESET ALL"), Some(Local::Reset(None)));
        assert_eq!(read("DISCARD ALL"), Some(Local::Discard));
        assert_eq!(read("-- nothing\n"), Some(Local::Empty));
        assert_eq!(read("SELECT 1"), None);
        assert_eq!(read("SET x"), None);
    }

    #[test]
    fn splits_on_top_level_semicolons() {
        assert_eq!(
            split("select 1; select ';'"),
            vec!["select 1", " select ';'"]
        );
        assert_eq!(split(";;"), Vec::<String>::new());
        assert_eq!(split("select 1"), vec!["select 1"]);
        assert_eq!(
            split("select 'What''s'; select 2"),
            vec!["select 'What''s'", " select 2"]
        );
    }
}
