//! Execution accuracy of natural-language translation against a gold set.
//!
//! - [`parse_gold`] reads a gold file: blocks separated by blank lines, `#`
//!   comment lines, one `Q: question` and one `SQL: gold sql` line per block.
//! - [`compare`] decides whether a predicted result equals a gold one: values
//!   normalized ([`norm`]); each gold column mapped to a distinct predicted
//!   column (extra predicted columns allowed); as many rows; rows compared as
//!   multisets unless the gold SQL has a top-level `ORDER BY` ([`Order`]).
//! - [`evaluate`] asks `SELECT * FROM nl_sql('...')` per question, runs the
//!   predicted and the gold SQL and scores the answer; a [`Report`] prints as
//!   a [`table`] (precision = correct / answered, coverage = answered /
//!   questions) and a list of [`Report::misses`].
//!
//! A module of the `nl` test binary, also included by `benches/nl_builtin.rs`.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::time::Duration;

use helios_planner::sqlparser::ast::{Expr, OrderByKind, Statement};
use helios_planner::sqlparser::{dialect::PostgreSqlDialect, parser::Parser};
use tokio_postgres::{Client, SimpleQueryMessage};

/// One gold question.
#[derive(Debug, Clone)]
pub struct Case {
    pub question: String,
    /// Acceptable gold statements: a prediction matching any one is correct.
    pub gold: Vec<String>,
    /// Where it came from (`file:line`), for the list of misses.
    pub origin: String,
}

/// Reads a gold file; `source` names it in errors and in [`Case::origin`].
pub fn parse_gold(text: &str, source: &str) -> Result<Vec<Case>, String> {
    let (mut cases, mut block) = (vec![], vec![]);
    for (n, line) in text.lines().chain([""]).map(str::trim).enumerate() {
        if !line.is_empty() && !line.starts_with('#') {
            let at = format!("{source}:{}", n + 1);
            let (key, value) = line.split_once(':').ok_or(format!("{at}: no Q: or SQL:"))?;
            block.push((at, key.trim(), value.trim().to_string()));
        } else if line.is_empty() && !block.is_empty() {
            let [q, sql] = &mut block[..] else {
                return Err(format!("{}: not one Q: and one SQL: line", block[0].0));
            };
            if q.1 == "SQL" {
                std::mem::swap(q, sql);
            }
            if (q.1, sql.1) != ("Q", "SQL") {
                return Err(format!("{}: not one Q: and one SQL: line", q.0));
            }
            let (question, gold) = (q.2.clone(), vec![sql.2.clone()]);
            cases.push(Case {
                question,
                gold,
                origin: q.0.clone(),
            });
            block.clear();
        }
    }
    Ok(cases)
}

/// How the rows of a gold result are ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// No top-level `ORDER BY`: rows compare as multisets.
    Any,
    /// `ORDER BY` output columns (lower-case names or 1-based positions):
    /// these must come in the same sequence; rows tied on them in any order.
    Keys(Vec<String>),
    /// `ORDER BY` anything else: rows in the same sequence.
    Rows,
}

impl Order {
    /// The order of `sql`'s result: the outermost query's `ORDER BY` (not a
    /// subquery's, window's or aggregate's), found by sqlparser. SQL it
    /// cannot parse is `Rows` if it says `order by` at all.
    pub fn of(sql: &str) -> Order {
        let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
            let ordered = sql.to_lowercase().contains("order by");
            return if ordered { Order::Rows } else { Order::Any };
        };
        let Some(Statement::Query(query)) = statements.pop() else {
            return Order::Any;
        };
        let Some(OrderByKind::Expressions(items)) = query.order_by.map(|o| o.kind) else {
            return Order::Any;
        };
        let mut keys = vec![];
        for item in items {
            keys.push(match item.expr {
                Expr::Identifier(id) => id.value.to_lowercase(),
                Expr::CompoundIdentifier(ids) => ids[ids.len() - 1].value.to_lowercase(),
                e if e.to_string().parse::<usize>().is_ok() => e.to_string(),
                _ => return Order::Rows,
            });
        }
        Order::Keys(keys)
    }
}

/// A result: column names and rows of text values (`None` is NULL).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// A value as compared: NULL; booleans `t`/`true`, `f`/`false`; numbers as
/// f64 rounded to 4 decimals (`20.5` = `20.50`); midnight timestamps as dates
/// (`2024-01-01 00:00:00[+00]` = `2024-01-01`); other text trimmed.
pub fn norm(v: &Option<String>) -> String {
    let Some(s) = v.as_deref().map(str::trim) else {
        return "\u{0}null".into();
    };
    let b = s.as_bytes();
    let numeric = b.iter().all(|c| c.is_ascii_digit() || b"+-.eE".contains(c));
    match (s, s.parse::<f64>()) {
        ("t" | "true", _) => return "\u{0}true".into(),
        ("f" | "false", _) => return "\u{0}false".into(),
        (_, Ok(x)) if numeric && b.iter().any(u8::is_ascii_digit) => {
            return format!("{x:.4}").replace("-0.0000", "0.0000");
        }
        _ => {}
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let date = b.len() > 10 && (b[4], b[7], b[10]) == (b'-', b'-', b' ');
    if date && digits(0..4) && digits(5..7) && digits(8..10) {
        let time = s[11..].trim_end_matches("+00:00").trim_end_matches("+00");
        let frac = time.strip_prefix("00:00:00");
        if matches!(frac.map(|r| r.trim_end_matches('0')), Some("" | ".")) {
            return s[..10].to_string();
        }
    }
    s.to_string()
}

/// Whether `got` answers like `gold` (ordered per `order`); the reason if not.
pub fn compare(gold: &Table, got: &Table, order: &Order) -> Result<(), String> {
    let width = |t: &Table| t.columns.len().max(t.rows.first().map_or(0, Vec::len));
    let row = |r: &Vec<Option<String>>| r.iter().map(norm).collect();
    let normed = |t: &Table| -> Vec<Vec<String>> { t.rows.iter().map(row).collect() };
    let (g, p, gw, pw) = (normed(gold), normed(got), width(gold), width(got));
    if g.len() != p.len() {
        return Err(format!("{} rows, gold has {}", p.len(), g.len()));
    }
    let pick = |rows: &[Vec<String>], cols: &[usize]| -> Vec<Vec<String>> {
        let pick_row = |r: &Vec<String>| cols.iter().map(|&k| r[k].clone()).collect();
        rows.iter().map(pick_row).collect()
    };
    let sorted = |mut rows: Vec<Vec<String>>| {
        rows.sort();
        rows
    };
    // For each gold column, the predicted columns holding the same values.
    let mut candidates = vec![];
    for j in 0..gw {
        let same = |k: &usize| sorted(pick(&p, &[*k])) == sorted(pick(&g, &[j]));
        candidates.push((0..pw).filter(same).collect::<Vec<_>>());
        if candidates[j].is_empty() {
            let name = gold.columns.get(j).map_or("?", String::as_str);
            return Err(format!("no column holds the values of gold column {name}"));
        }
    }
    // The order keys as gold columns (all of them for keys not in the output).
    let all: Vec<usize> = (0..gw).collect();
    let keys = match order {
        Order::Any => None,
        Order::Rows => Some(all),
        Order::Keys(keys) => keys
            .iter()
            .map(|k| match k.parse::<usize>() {
                Ok(n) => n.checked_sub(1).filter(|&n| n < gw),
                Err(_) => gold.columns.iter().position(|c| c.eq_ignore_ascii_case(k)),
            })
            .collect::<Option<_>>()
            .or(Some(all)),
    };
    let sorted_g = sorted(g.clone());
    let (mut budget, mut same_rows) = (100_000usize, false);
    let mut check = |m: &[usize]| {
        let mine = pick(&p, m);
        let rows_match = sorted(mine.clone()) == sorted_g;
        same_rows |= rows_match;
        rows_match && keys.as_ref().is_none_or(|k| pick(&g, k) == pick(&mine, k))
    };
    match assign(&candidates, &mut vec![], &mut budget, &mut check) {
        true => Ok(()),
        false if budget == 0 => Err("too many ways to map the columns".into()),
        false if same_rows => Err("the same rows in another order".into()),
        false => Err("the rows differ".into()),
    }
}

/// Backtracking over injective mappings (gold column j -> predicted m[j]),
/// until `check` accepts one or `budget` complete mappings were tried.
fn assign(
    candidates: &[Vec<usize>],
    m: &mut Vec<usize>,
    budget: &mut usize,
    check: &mut dyn FnMut(&[usize]) -> bool,
) -> bool {
    let Some(options) = candidates.get(m.len()) else {
        *budget = budget.saturating_sub(1);
        return check(m);
    };
    for &k in options {
        if *budget > 0 && !m.contains(&k) {
            m.push(k);
            if assign(candidates, m, budget, check) {
                return true;
            }
            m.pop();
        }
    }
    false
}

/// How one question went.
#[derive(Debug, Clone)]
pub enum Outcome {
    Correct,
    /// Answered, but the SQL fails or returns something else.
    Wrong {
        sql: String,
        why: String,
    },
    /// Not answered: `nl_sql` failed (`SQLSTATE: message`).
    Refused {
        message: String,
    },
    /// No gold statement ran; the question is left out of the totals.
    GoldFailed {
        error: String,
    },
}

/// The outcomes of one question set.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub name: String,
    pub results: Vec<(Case, Outcome)>,
}

impl Report {
    /// Questions (whose gold ran), answered, correct, gold failed.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |f: fn(&Outcome) -> bool| self.results.iter().filter(|(_, o)| f(o)).count();
        let failed = n(|o| matches!(o, Outcome::GoldFailed { .. }));
        let answered = n(|o| matches!(o, Outcome::Correct | Outcome::Wrong { .. }));
        let correct = n(|o| matches!(o, Outcome::Correct));
        (self.results.len() - failed, answered, correct, failed)
    }

    /// Precision (correct / answered) and coverage (answered / questions).
    pub fn rates(&self) -> (f64, f64) {
        let (questions, answered, correct, _) = self.counts();
        let ratio = |a: usize, b: usize| a as f64 / b.max(1) as f64;
        (ratio(correct, answered), ratio(answered, questions))
    }

    /// Every question not answered correctly, with the SQL or the message.
    pub fn misses(&self) -> String {
        let mut out = String::new();
        for (case, outcome) in &self.results {
            let (what, detail) = match outcome {
                Outcome::Correct => continue,
                Outcome::Wrong { sql, why } => ("wrong", format!("{why}\n    {sql}")),
                Outcome::Refused { message } => ("refused", message.clone()),
                Outcome::GoldFailed { error } => ("GOLD FAILED", error.clone()),
            };
            let (origin, question) = (&case.origin, &case.question);
            let _ = writeln!(out, "[{origin}] {what}: {question}\n    {detail}");
        }
        out
    }
}

/// The reports as a table: questions, answered, correct, precision, coverage.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "set                      questions answered correct precision coverage gold-failed\n",
    );
    for r in reports {
        let (questions, answered, correct, failed) = r.counts();
        let (p, c) = (100.0 * r.rates().0, 100.0 * r.rates().1);
        let name = &r.name;
        let _ = writeln!(
            out,
            "{name:<24} {questions:>9} {answered:>8} {correct:>7} {p:>8.1}% {c:>7.1}% {failed:>11}"
        );
    }
    out
}

/// Runs `sql` (simple protocol, 60 s at most) and returns its last result,
/// or the error as `SQLSTATE: message`.
pub async fn run(client: &Client, sql: &str) -> Result<Table, String> {
    let msgs = tokio::time::timeout(Duration::from_secs(60), client.simple_query(sql))
        .await
        .map_err(|_| "no answer within 60 s".to_string())?
        .map_err(|e| match e.as_db_error() {
            Some(d) => format!("{}: {}", d.code().code(), d.message()),
            None => e.to_string(),
        })?;
    let mut t = Table::default();
    for m in msgs {
        if let SimpleQueryMessage::RowDescription(cols) = &m {
            t.columns = cols.iter().map(|c| c.name().to_string()).collect();
            t.rows.clear();
        } else if let SimpleQueryMessage::Row(r) = &m {
            t.rows
                .push((0..r.len()).map(|i| r.get(i).map(Into::into)).collect());
        }
    }
    Ok(t)
}

/// Asks `ask` (a client of Helios) for each question's SQL with `nl_sql`,
/// runs it and the gold on `exec` (may be the same client) and scores it.
/// `before_ask` runs just before a question is asked (a scripted fake model
/// queues its reply there); a question whose gold fails is not asked.
pub async fn evaluate(
    name: &str,
    ask: &Client,
    exec: &Client,
    cases: &[Case],
    mut before_ask: impl FnMut(&Case),
) -> Report {
    let mut results = vec![];
    for case in cases {
        let outcome = score(ask, exec, case, &mut before_ask).await;
        results.push((case.clone(), outcome));
    }
    let name = name.to_string();
    Report { name, results }
}

/// One question of [`evaluate`].
async fn score(ask: &Client, exec: &Client, case: &Case, before: &mut dyn FnMut(&Case)) -> Outcome {
    let (mut golds, mut error) = (vec![], String::new());
    for sql in &case.gold {
        match run(exec, sql).await {
            Ok(t) => golds.push((t, Order::of(sql))),
            Err(e) => error = e,
        }
    }
    if golds.is_empty() {
        return Outcome::GoldFailed { error };
    }
    before(case);
    let literal = case.question.replace('\'', "''");
    let sql = match run(ask, &format!("SELECT * FROM nl_sql('{literal}')")).await {
        Err(message) => return Outcome::Refused { message },
        Ok(t) => match t.columns.iter().position(|c| c == "sql") {
            Some(i) if t.rows.len() == 1 => t.rows[0][i].clone().unwrap_or_default(),
            _ => {
                return Outcome::Refused {
                    message: format!("not one sql: {t:?}"),
                }
            }
        },
    };
    let got = match run(exec, &sql).await {
        Ok(got) => got,
        Err(e) => {
            return Outcome::Wrong {
                sql,
                why: format!("fails: {e}"),
            }
        }
    };
    // Correct when any gold matches; else the first gold's reason.
    match golds
        .iter()
        .map(|(g, o)| compare(g, &got, o))
        .reduce(|a, b| b.or(a))
    {
        Some(Err(why)) => Outcome::Wrong { sql, why },
        _ => Outcome::Correct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `got` answers like `gold`: (columns, rows), cells split at
    /// `,`, `NULL` is NULL.
    fn same(gold: (&str, &[&str]), got: (&str, &[&str]), order: &Order) -> bool {
        let cell = |v: &str| (v != "NULL").then(|| v.to_string());
        let t = |(columns, rows): (&str, &[&str])| Table {
            columns: columns.split(',').map(str::to_string).collect(),
            rows: rows
                .iter()
                .map(|r| r.split(',').map(cell).collect())
                .collect(),
        };
        compare(&t(gold), &t(got), order).is_ok()
    }

    #[test]
    fn columns_may_be_permuted_and_extra() {
        let gold = ("a,b", &["x,1", "y,2"][..]);
        assert!(same(gold, ("b,a", &["1,x", "2,y"]), &Order::Any));
        assert!(same(gold, ("id,b,a", &["9,1,x", "8,2,y"]), &Order::Any));
        // The same values per column, paired differently.
        assert!(!same(gold, ("a,b", &["x,2", "y,1"]), &Order::Any));
        // Two gold columns cannot share one predicted column.
        assert!(!same(("a,b", &["1,1"]), ("a", &["1"]), &Order::Any));
        // Twin candidate columns: backtracking finds the pairing that works.
        let twins = ("p,q,r", &["1,2,1", "2,1,2"][..]);
        assert!(same(("a,b", &["1,1", "2,2"]), twins, &Order::Any));
    }

    #[test]
    fn values_are_normalized() {
        let gold = ("n,d,b,z", &["20.5,2024-01-01 00:00:00,t,NULL"][..]);
        let got = ("z,n,d,b", &["NULL,20.500000,2024-01-01,true"][..]);
        assert!(same(gold, got, &Order::Any));
        let n = |s: &str| norm(&Some(s.to_string()));
        assert_eq!(n("2.33333333"), n("2.3333333333333335"));
        assert_eq!(
            [n("20"), n("20.51"), n("-0.00001")],
            ["20.0000", "20.5100", "0.0000"]
        );
        assert_eq!(n("2023-03-01 00:00:00+00"), "2023-03-01");
        assert_eq!(n("2023-03-01 10:00:00"), "2023-03-01 10:00:00");
        assert_ne!(norm(&None), n(""));
    }

    #[test]
    fn order_matters_only_with_a_top_level_order_by() {
        let gold = ("k,n", &["a,3", "b,2", "c,2"][..]);
        let (swapped, tied) = (
            ("k,n", &["b,2", "a,3", "c,2"][..]),
            ("k,n", &["a,3", "c,2", "b,2"][..]),
        );
        assert!(same(gold, swapped, &Order::Any));
        assert!(!same(gold, tied, &Order::Rows));
        let order = Order::of("SELECT k, n FROM (SELECT * FROM t ORDER BY k) s ORDER BY n DESC");
        assert_eq!(order, Order::Keys(vec!["n".into()]));
        assert!(!same(gold, swapped, &order));
        // Rows that tie on the keys may come in either order.
        assert!(same(gold, tied, &order));
        let of = Order::of;
        assert_eq!(of("SELECT rank() OVER (ORDER BY x) FROM t"), Order::Any);
        let keys = Order::Keys(vec!["a".into(), "2".into()]);
        assert_eq!(of("SELECT a, b FROM t ORDER BY t.A DESC, 2"), keys);
        assert_eq!(of("SELECT a FROM t ORDER BY lower(a)"), Order::Rows);
    }

    #[test]
    fn different_row_counts_fail() {
        let gold = ("a", &["1", "2"][..]);
        assert!(!same(gold, ("a", &["1"]), &Order::Any));
        assert!(!same(gold, ("a", &["1", "2", "2"]), &Order::Any));
        assert!(same(("a", &[]), ("a,b", &[]), &Order::Any));
    }

    #[test]
    fn gold_files_parse() {
        let text = "# x\nQ: how many?\nSQL: SELECT 1\n\n\n# y\nSQL: SELECT 2\nQ: it's: x";
        let cases = parse_gold(text, "g").unwrap();
        let got: Vec<_> = cases
            .iter()
            .map(|c| (&*c.question, &*c.gold[0], &*c.origin))
            .collect();
        assert_eq!(
            got,
            [
                ("how many?", "SELECT 1", "g:2"),
                ("it's: x", "SELECT 2", "g:8")
            ]
        );
        for bad in ["Q: a question", "Q: a\nQ: b\nSQL: x", "Q: a\nSELECT 1"] {
            assert!(parse_gold(bad, "g").is_err(), "{bad}");
        }
    }
}
