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
    /// DEALLOCATE or DISCARD: prepared statements may be gone.
    pub drops_statements: bool,
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
        Err(_) => return unparsed(text),
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

/// Text the parser does not know: judged by its first word.
fn unparsed(text: &str) -> Classified {
    let word = first_word(text);
    let harmless = HARMLESS.contains(&word.as_str());
    Classified {
        writes_everything: !harmless && word != "SELECT" && word != "VALUES" && word != "TABLE",
        keeps_settings: harmless,
        drops_statements: word == "DISCARD" || word == "DEALLOCATE",
        ..Classified::default()
    }
}

fn first_word(text: &str) -> String {
    let mut rest = text.trim_start();
    // Skip comments (hints included) before the first word.
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    rest.trim_start_matches('(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn statement(stmt: &Statement, single: bool, c: &mut Classified) {
    let info = sql::analyze(stmt);
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
                c.drops_statements = true;
            }
            "DEALLOCATE" => c.drops_statements = true,
            "EXPLAIN" => {
                if let Statement::Explain {
                    analyze: true,
                    statement: inner,
                    ..
                } = stmt
                {
                    let mut inner_c = Classified {
                        keeps_settings: true,
                        ..Classified::default()
                    };
                    statement(inner, false, &mut inner_c);
                    c.writes.extend(inner_c.writes);
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

/// `'now'`, `'today'`, ... read as a date or time depend on when they are read.
fn time_word(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "now" | "today" | "tomorrow" | "yesterday"
    )
}

/// Whether a text parameter value, read as a date or time, depends on the clock.
pub fn is_time_word(value: &[u8]) -> bool {
    value.len() <= 16 && std::str::from_utf8(value).is_ok_and(time_word)
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
        // sqlparser does not know a bare `TABLE t`: relayed, never cached.
        assert!(!read("table t"));
        assert!(read("select lower(name) from t"), "functions are judged later");
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
        assert_eq!(
            classify("explain analyze update t set a = 1").writes,
            ["t"]
        );
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
        assert!(classify("discard all").drops_statements);
        assert!(classify("deallocate s1").drops_statements);
        assert!(!classify("update t set a = 1").keeps_settings);
    }
}
