//! How complex a question is, and the step plan for the complex ones.
//!
//! A question that combines several aggregations, comparisons, time ranges
//! and entities ("for each region, the share of revenue from customers who
//! ordered more than twice last year, compared with the year before") is
//! translated better in steps: the model first lists the steps, then writes
//! each as a query over the earlier ones, and Helios composes them as CTEs
//! (`WITH step1 AS (...), step2 AS (...) SELECT * FROM step2`), validating
//! each step on its own.

use serde::Deserialize;

/// Words that signal an aggregation.
const AGGREGATES: &[&str] = &[
    "total",
    "sum",
    "average",
    "avg",
    "mean",
    "median",
    "count",
    "number",
    "how many",
    "maximum",
    "minimum",
    "max",
    "min",
    "most",
    "least",
    "top",
    "bottom",
    "highest",
    "lowest",
    "share",
    "percentage",
    "percent",
    "ratio",
    "proportion",
    "rank",
    "cumulative",
    "running",
];
/// Words that signal a comparison or a condition.
const COMPARISONS: &[&str] = &[
    "more than",
    "less than",
    "greater",
    "fewer",
    "at least",
    "at most",
    "between",
    "above",
    "below",
    "over",
    "under",
    "compared",
    "versus",
    "vs",
    "than",
    "difference",
    "growth",
    "increase",
    "decrease",
    "change",
    "without",
    "never",
    "not",
    "except",
    "only",
    "both",
    "either",
];
/// Words that signal a time range.
const TIMES: &[&str] = &[
    "year",
    "month",
    "week",
    "day",
    "quarter",
    "since",
    "before",
    "after",
    "last",
    "previous",
    "ago",
    "today",
    "yesterday",
    "during",
    "until",
    "daily",
    "monthly",
    "yearly",
    "weekly",
];
/// Words that split a question into parts.
const GROUPINGS: &[&str] = &[
    "for each", "per", "by", "each", "every", "grouped", "among", "within",
];

/// A score: 1 per aggregation, comparison, time word and grouping, 1 per
/// additional clause joined by "and"/"then"/"which"/"who", and 1 per 12 words.
/// Plain lookups score 0–3; the default threshold (6) catches multi-part questions.
pub fn score(question: &str) -> u32 {
    let q = format!(
        " {} ",
        question.to_lowercase().replace(['?', ',', '.', ';'], " ")
    );
    let count = |list: &[&str]| -> u32 {
        list.iter()
            .map(|w| q.matches(&format!(" {w} ")).count() as u32)
            .sum()
    };
    let clauses = [" and ", " then ", " which ", " who ", " whose ", " that "]
        .iter()
        .map(|w| q.matches(w).count() as u32)
        .sum::<u32>();
    let words = q.split_whitespace().count() as u32;
    count(AGGREGATES) + count(COMPARISONS) + count(TIMES) + count(GROUPINGS) + clauses + words / 12
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Step {
    pub name: String,
    pub description: String,
}

/// The instruction that asks for a plan.
pub const PLAN_INSTRUCTION: &str = "This question is complex. Before writing SQL, break it into 2 to 4 steps, \
each answerable by one query that may read the tables and the results of earlier steps (by their names). \
Answer only with JSON: {\"steps\": [{\"name\": \"step1\", \"description\": \"...\"}, ...]}. \
The last step must produce the final answer.";

/// Parse the model's plan: JSON (possibly inside a code fence). Step names
/// become safe identifiers (`step1`, ...) when they are not.
pub fn parse_plan(content: &str) -> Option<Vec<Step>> {
    #[derive(Deserialize)]
    struct Plan {
        steps: Vec<Step>,
    }
    let start = content.find('{')?;
    let end = content.rfind('}')?;
    let plan: Plan = serde_json::from_str(content.get(start..=end)?).ok()?;
    if plan.steps.is_empty() || plan.steps.len() > 6 {
        return None;
    }
    Some(
        plan.steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let ok = !s.name.is_empty()
                    && s.name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_lowercase())
                    && s.name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                Step {
                    name: if ok { s.name } else { format!("step{}", i + 1) },
                    description: s.description,
                }
            })
            .collect(),
    )
}

/// `WITH a AS (...), b AS (...) SELECT * FROM b`.
pub fn compose(steps: &[(String, String)]) -> String {
    let Some((last, _)) = steps.last() else {
        return String::new();
    };
    let ctes: Vec<String> = steps
        .iter()
        .map(|(name, sql)| format!("{name} AS (\n{}\n)", sql.trim().trim_end_matches(';')))
        .collect();
    format!("WITH {}\nSELECT * FROM {last}", ctes.join(",\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_questions_score_low_and_compound_ones_high() {
        assert!(score("list all customers") <= 2);
        assert!(score("how many orders") <= 3);
        let hard = "for each region, the share of revenue from customers who ordered more than twice last year, compared with the year before";
        assert!(score(hard) >= 6, "{}", score(hard));
    }

    #[test]
    fn parses_plans_and_composes_steps() {
        let plan = parse_plan(
            "```json\n{\"steps\": [{\"name\": \"big spenders\", \"description\": \"a\"}, {\"name\": \"final\", \"description\": \"b\"}]}\n```",
        )
        .unwrap();
        assert_eq!(plan[0].name, "step1");
        assert_eq!(plan[1].name, "final");
        assert!(parse_plan("no json here").is_none());
        let sql = compose(&[
            ("a".into(), "select 1 x;".into()),
            ("b".into(), "select x from a".into()),
        ]);
        assert_eq!(
            sql,
            "WITH a AS (\nselect 1 x\n),\nb AS (\nselect x from a\n)\nSELECT * FROM b"
        );
    }
}
