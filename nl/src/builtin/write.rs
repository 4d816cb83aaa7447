//! SQL text: identifiers, literals, column references and conditions.

use super::dates::Range;
use super::intent::{Col, Filter};
use super::vocab::Vocab;

pub fn ident(name: &str) -> String {
    helios_planner::catalog::quote_ident(name)
}

pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

pub fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// Writes column references, qualified when more than one table is in scope.
pub struct Writer<'v, 'c> {
    pub vocab: &'v Vocab<'c>,
    pub qualify: bool,
}

impl Writer<'_, '_> {
    pub fn col(&self, (t, c): Col) -> String {
        if self.qualify {
            format!(
                "{}.{}",
                self.vocab.table_sql(t),
                ident(self.vocab.column_name(t, c))
            )
        } else {
            ident(self.vocab.column_name(t, c))
        }
    }

    /// `f` as SQL; `positive`: without its negation (said outside, by NOT EXISTS).
    pub fn condition(&self, f: &Filter, time_col: Option<Col>, positive: bool) -> String {
        match f {
            Filter::Equals {
                col,
                values,
                negated,
            } => {
                let negated = *negated && !positive;
                let values: Vec<String> = values
                    .iter()
                    .map(|v| match v.parse::<f64>() {
                        Ok(n) if self.vocab.is_numeric(col.0, col.1) => number(n),
                        _ => literal(v),
                    })
                    .collect();
                match (&values[..], negated) {
                    ([v], false) => format!("{} = {v}", self.col(*col)),
                    ([v], true) => format!("{} <> {v}", self.col(*col)),
                    (vs, n) => format!(
                        "{} {}IN ({})",
                        self.col(*col),
                        if n { "NOT " } else { "" },
                        vs.join(", ")
                    ),
                }
            }
            Filter::Compare { col, op, value } => {
                format!("{} {} {}", self.col(*col), op.sql(), number(*value))
            }
            Filter::Between {
                col,
                low,
                high,
                negated,
            } => format!(
                "{} {}BETWEEN {} AND {}",
                self.col(*col),
                if *negated && !positive { "NOT " } else { "" },
                number(*low),
                number(*high)
            ),
            Filter::Time { range, negated, .. } => {
                let col = self.col(time_col.expect("resolved"));
                let cond = time_condition(&col, range);
                if *negated && !positive {
                    format!("NOT ({cond})")
                } else {
                    cond
                }
            }
            Filter::Exists { .. } | Filter::CountOf { .. } => unreachable!("planned as subqueries"),
        }
    }
}

pub fn time_condition(col: &str, range: &Range) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &range.start {
        parts.push(format!("{col} >= {}", s.sql()));
    }
    if let Some(e) = &range.end {
        parts.push(format!("{col} < {}", e.sql()));
    }
    parts.join(" AND ")
}
