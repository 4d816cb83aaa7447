//! Reading a statement's text for the cache, without the catalog.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CopySource, DataType, Expr, Statement, TableFactor, Value, ValueWithSpan, Visit, Visitor,
};

use crate::sql::{self, FunctionRef, RelationRef, StatementKind};

/// A read-only query that may be cached once its names resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadShape {
    pub relations: Vec<RelationRef>,
    pub functions: Vec<FunctionRef>,
}

/// What a Query or Parse text means to the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classified {
    /// Exactly one statement, a read-only query without locking, `INTO`,
    /// data-modifying CTEs, time-dependent literals or sampling.
    pub read: Option<ReadShape>,
    /// Names of relations whose rows it may change (no schema: see
    /// `helios_cache::generation`).
    pub writes: Vec<String>,
    /// It may change anything (DDL, GRANT, CALL, DO, EXECUTE, text the
    /// parser does not know): when it commits, everything cached for the
    /// database is retired.
    pub writes_everything: bool,
    /// It cannot change the session's settings or role. A candidate read
    /// that calls functions is only known not to once they are resolved.
    pub keeps_settings: bool,
    /// Names of the functions it calls (any schema): one that may write
    /// makes it a write to everything (see `writers_sql`).
    pub functions: Vec<String>,
    /// `DEALLOCATE ALL`, `DISCARD`, or text the parser does not know: every
    /// prepared statement may be gone or replaced.
    pub forgets_all: bool,
    /// Prepared statements `DEALLOCATE` drops or SQL `PREPARE` creates by
    /// name: what the session knew of them no longer holds.
    pub forgets: Vec<String>,
}

/// Statements that change no table and no setting.
const HARMLESS: &[&str] = &[
    "ABORT",
    "ANALYZE",
    "BEGIN",
    "CHECKPOINT",
    "CLOSE",
    "COMMIT",
    "END",
    "FETCH",
    "LISTEN",
    "LOCK",
    "MOVE",
    "NOTIFY",
    "PREPARE",
    "RELEASE",
    "ROLLBACK",
    "SAVEPOINT",
    "SHOW",
    "START",
    "UNLISTEN",
];

/// Classify a Query or Parse text.
pub fn classify(text: &str) -> Classified {
    // COMMIT PREPARED commits writes another session made (and noted when
    // it prepared the transaction).
    if matches!(first_word(text).as_str(), "COMMIT" | "ROLLBACK")
        && text.to_ascii_lowercase().contains("prepared")
    {
        return Classified {
            writes_everything: true,
            ..Classified::default()
        };
    }
    let stmts = match sql::parse(text) {
        Ok(s) => s,
        Err(_) => match table_as_select(text).map(|t| sql::parse(&t)) {
            Some(Ok(s)) => s,
            _ => return unparsed(text),
        },
    };
    let mut c = Classified {
        keeps_settings: true,
        ..Classified::default()
    };
    let single = stmts.len() == 1;
    for stmt in &stmts {
        statement(stmt, single, &mut c);
    }
    c
}

/// Text the parser does not know. Only one statement whose first word
/// names a harmless command (`BEGIN ISOLATION LEVEL ...`, `SHOW ...`) is
/// taken at its word; anything else — a `SELECT` the parser cannot read
/// may call functions that write, a string of several statements may hold
/// a write or a `SET` — may change anything.
fn unparsed(text: &str) -> Classified {
    let word = first_word(text);
    let harmless = HARMLESS.contains(&word.as_str()) && sql::statement_count(text) <= 1;
    Classified {
        writes_everything: !harmless,
        keeps_settings: harmless,
        forgets_all: !harmless || matches!(word.as_str(), "PREPARE"),
        ..Classified::default()
    }
}

/// `TABLE t [ORDER BY ...]`, which the parser does not know, as the
/// `SELECT * FROM t [ORDER BY ...]` it is.
fn table_as_select(text: &str) -> Option<String> {
    let at = first_word_at(text);
    let word = text.get(at..at + 5)?;
    let next = text[at + 5..].chars().next()?;
    (word.eq_ignore_ascii_case("table") && next.is_whitespace())
        .then(|| format!("{}SELECT * FROM{}", &text[..at], &text[at + 5..]))
}

/// Byte offset of the first word, after spaces and comments.
fn first_word_at(text: &str) -> usize {
    let mut rest = text.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    text.len() - rest.len()
}

fn first_word(text: &str) -> String {
    let rest = &text[first_word_at(text)..];
    rest.trim_start_matches('(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn statement(stmt: &Statement, single: bool, c: &mut Classified) {
    let info = sql::analyze(stmt);
    for f in &info.functions {
        if !c.functions.contains(&f.name) {
            c.functions.push(f.name.clone());
        }
    }
    let names = || info.relations.iter().map(|r| r.name.clone());
    match &info.kind {
        StatementKind::Query => {
            if info.select_into {
                c.writes_everything = true;
                c.keeps_settings = false;
                return;
            }
            if info.data_modifying_cte {
                c.writes.extend(names());
                c.keeps_settings = false;
                return;
            }
            if !info.functions.is_empty() {
                c.keeps_settings = false;
            }
            let mut scan = Literals::default();
            let _ = stmt.visit(&mut scan);
            if single && !info.locking && !scan.time_dependent && !scan.sampled {
                c.read = Some(ReadShape {
                    relations: info.relations.clone(),
                    functions: info.functions.clone(),
                });
            }
        }
        StatementKind::Insert
        | StatementKind::Update
        | StatementKind::Delete
        | StatementKind::Merge => {
            c.writes.extend(names());
            c.keeps_settings = false;
        }
        StatementKind::Ddl => {
            c.writes_everything = true;
            c.keeps_settings = false;
        }
        StatementKind::Other(word) => match word.as_str() {
            "SET" | "RESET" => c.keeps_settings = false,
            "DISCARD" => {
                c.keeps_settings = false;
                c.forgets_all = true;
            }
            "DEALLOCATE" | "PREPARE" => match stmt {
                Statement::Deallocate { name, .. }
                    if name.value.eq_ignore_ascii_case("all") && name.quote_style.is_none() =>
                {
                    c.forgets_all = true
                }
                Statement::Deallocate { name, .. } | Statement::Prepare { name, .. } => {
                    c.forgets.push(sql::normalize_ident(name))
                }
                _ => c.forgets_all = true,
            },
            "EXPLAIN" => {
                // `EXPLAIN ANALYZE` and `EXPLAIN (ANALYZE [true|on|1])` run
                // what they explain.
                if let Statement::Explain {
                    analyze,
                    options,
                    statement: inner,
                    ..
                } = stmt
                {
                    let runs = *analyze
                        || options.iter().flatten().any(|o| {
                            o.name.value.eq_ignore_ascii_case("analyze")
                                && o.arg.as_ref().is_none_or(|a| {
                                    let v = a.to_string().to_ascii_lowercase();
                                    !matches!(v.trim_matches('\''), "false" | "off" | "0" | "no")
                                })
                        });
                    if !runs {
                        return;
                    }
                    let mut inner_c = Classified {
                        keeps_settings: true,
                        ..Classified::default()
                    };
                    statement(inner, false, &mut inner_c);
                    c.writes.extend(inner_c.writes);
                    c.functions.extend(inner_c.functions);
                    c.writes_everything |= inner_c.writes_everything;
                    c.keeps_settings &= inner_c.keeps_settings;
                }
            }
            "COPY" => match stmt {
                Statement::Copy {
                    to: false,
                    source: CopySource::Table { table_name, .. },
                    ..
                } => {
                    let mut parts = sql::name_parts(table_name);
                    c.writes.extend(parts.pop());
                    c.keeps_settings = false;
                }
                Statement::Copy {
                    source: CopySource::Query(_),
                    ..
                } => c.keeps_settings &= info.functions.is_empty(),
                _ => {}
            },
            w if HARMLESS.contains(&w) => {}
            // CALL, DO, EXECUTE, GRANT, REVOKE, REFRESH, PREPARE, ...
            _ => {
                c.writes_everything = true;
                c.keeps_settings = false;
            }
        },
    }
}

/// Literals whose meaning depends on the clock, and sampling.
#[derive(Default)]
struct Literals {
    time_dependent: bool,
    sampled: bool,
}

/// `'now'`, `'today'`, `'tomorrow 10:00'`, ... read as a date or time
/// depend on when they are read. Longer strings are not dates.
fn time_word(s: &str) -> bool {
    s.len() <= TIME_TEXT_MAX
        && s.split(|c: char| !c.is_ascii_alphabetic()).any(|w| {
            ["now", "today", "tomorrow", "yesterday"]
                .iter()
                .any(|t| w.eq_ignore_ascii_case(t))
        })
}

const TIME_TEXT_MAX: usize = 48;

/// Whether a text parameter value, read as a date or time, depends on the clock.
pub fn is_time_word(value: &[u8]) -> bool {
    value.len() <= TIME_TEXT_MAX && std::str::from_utf8(value).is_ok_and(time_word)
}

fn is_datetime(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date
            | DataType::Time(..)
            | DataType::Timestamp(..)
            | DataType::Datetime(..)
            | DataType::Interval { .. }
    ) || matches!(t, DataType::Custom(name, _) if {
        let n = name.to_string().to_ascii_lowercase();
        n == "timestamptz" || n == "timetz" || n == "abstime"
    })
}

impl Visitor for Literals {
    type Break = ();

    fn pre_visit_value(&mut self, v: &ValueWithSpan) -> ControlFlow<()> {
        match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s)
                if time_word(s) =>
            {
                self.time_dependent = true
            }
            Value::DollarQuotedString(d) if time_word(&d.value) => self.time_dependent = true,
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        // A column or parameter read as a date or time may hold 'now'.
        if let Expr::Cast {
            expr, data_type, ..
        } = e
        {
            if is_datetime(data_type) && !matches!(**expr, Expr::Value(_)) {
                self.time_dependent = true;
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            sample: Some(_), ..
        } = t
        {
            self.sampled = true;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(sql: &str) -> bool {
        classify(sql).read.is_some()
    }

    #[test]
    fn candidates_are_single_plain_reads() {
        assert!(read("select * from t where id = 1"));
        assert!(read("/*+ cache */ select count(*) from t"));
        assert!(read("with x as (select * from t) select * from x"));
        assert!(read("values (1)"));
        // sqlparser does not know a bare `TABLE t`: read as SELECT * FROM t.
        assert!(read("table t"));
        assert!(read("/*+ cache */ TABLE\ts.t order by 1 limit 3"));
        assert!(!classify("table t").writes_everything);
        assert!(!read("tablex t"));
        assert!(
            read("select lower(name) from t"),
            "functions are judged later"
        );
        for sql in [
            "select * from t for update",
            "select * from t for share",
            "select * into n from t",
            "with d as (delete from t returning *) select * from d",
            "select 'now'::timestamptz",
            "select timestamp 'today'",
            "select * from t where ts > 'yesterday'",
            "select s::timestamptz from t",
            "select * from t tablesample bernoulli (10)",
            "select 1; select 2",
            "insert into t values (1)",
            "set search_path = x",
        ] {
            assert!(!read(sql), "{sql}");
        }
        assert!(read("select '2024-01-01'::date"), "a constant date is fine");
    }

    #[test]
    fn writes_name_their_tables() {
        let c = classify("insert into s.orders select * from staging");
        assert_eq!(c.writes, ["orders", "staging"]);
        assert!(!c.writes_everything);
        assert_eq!(classify("update t set a = 1").writes, ["t"]);
        assert_eq!(classify("delete from t where a = 1").writes, ["t"]);
        assert_eq!(classify("copy t from stdin").writes, ["t"]);
        assert!(classify("copy t to stdout").writes.is_empty());
        assert_eq!(
            classify("with d as (delete from t returning *) select * from d").writes,
            ["t"]
        );
        assert_eq!(classify("explain analyze update t set a = 1").writes, ["t"]);
        assert!(classify("explain update t set a = 1").writes.is_empty());
        for sql in [
            "create table x (a int)",
            "drop table t",
            "truncate t",
            "alter table t add column b int",
            "grant select on t to bob",
            "call p()",
            "do $$ begin end $$",
            "select * into n from t",
            "refresh materialized view m",
            "this is not sql at all",
        ] {
            assert!(classify(sql).writes_everything, "{sql}");
        }
        assert!(classify("commit prepared 'tx1'").writes_everything);
        assert!(classify("vacuum full t").writes_everything, "rows may move");
        for sql in [
            "begin",
            "commit",
            "rollback",
            "show search_path",
            "listen x",
            "prepare p as select 1",
        ] {
            let c = classify(sql);
            assert!(!c.writes_everything && c.writes.is_empty(), "{sql}");
            assert!(c.keeps_settings, "{sql}");
        }
    }

    #[test]
    fn knows_what_may_change_settings() {
        assert!(classify("select * from t").keeps_settings);
        assert!(!classify("select set_config('search_path', 'x', false)").keeps_settings);
        assert!(!classify("set role bob").keeps_settings);
        assert!(!classify("reset all").keeps_settings);
        assert!(!classify("discard all").keeps_settings);
        assert!(classify("discard all").forgets_all);
        assert!(classify("deallocate all").forgets_all);
        assert_eq!(classify("deallocate S1").forgets, ["s1"]);
        assert_eq!(classify("deallocate prepare \"S1\"").forgets, ["S1"]);
        assert_eq!(classify("prepare p1 as select 1").forgets, ["p1"]);
        assert!(classify("prepare p1 as select 1").keeps_settings);
        assert!(!classify("update t set a = 1").keeps_settings);
    }

    #[test]
    fn text_the_parser_cannot_read_may_do_anything() {
        // Not parsed by sqlparser: one statement led by a harmless word is
        // taken at its word; a SELECT may call writing functions, and a
        // string of statements may hold anything.
        let locked = "select id from jobs limit 1 for no key update skip locked";
        assert!(
            crate::sql::parse(locked).is_err(),
            "pick a statement sqlparser rejects"
        );
        let c = classify(locked);
        assert!(c.read.is_none() && c.writes_everything && !c.keeps_settings && c.forgets_all);
        let several = format!("update jobs set state = 'done' where id = 7; {locked}");
        assert!(classify(&several).writes_everything);
        let begin = "begin isolation level serializable, read only, deferrable, not deferrable";
        if crate::sql::parse(begin).is_err() {
            assert!(!classify(begin).writes_everything);
        }
        assert!(classify("show all; update t set a = 1 for no key update").writes_everything);
    }

    #[test]
    fn explain_counts_as_what_it_explains() {
        for sql in [
            "explain analyze delete from orders",
            "explain (analyze, buffers) delete from orders",
            "explain (analyze true) delete from orders",
            "explain (buffers, analyze on) delete from orders",
        ] {
            let c = classify(sql);
            assert_eq!(c.writes, ["orders"], "{sql}");
            assert!(c.read.is_none(), "{sql}");
        }
        assert!(
            !classify("explain (analyze) select set_config('role', 'x', false)").keeps_settings
        );
        assert!(classify("explain select * from t").read.is_none());
        assert!(classify("explain (analyze off) delete from orders")
            .writes
            .is_empty());
        assert!(
            classify("explain (analyze false, buffers) delete from orders")
                .writes
                .is_empty()
        );
    }
}
