//! What the model is told.
//!
//! One system message: the rules, the retrieved schema (compact DDL with
//! comments, foreign keys and value hints), and the configured examples most
//! similar to the question. Then the conversation's last turns, as the
//! questions and the SQL that answered them. Then the question. A correction
//! appends the rejected SQL and why it was rejected.

use crate::config::Example;
use crate::conversation::Conversation;
use crate::provider::{ChatMessage, ChatRequest};
use crate::retrieval::Retrieved;

/// The rules every translation follows.
pub const RULES: &str = "\
You translate questions into SQL for PostgreSQL.
Rules:
- Answer with exactly one read-only query (SELECT, or WITH ... SELECT) in a ```sql code block, and nothing else.
- Use only the tables and columns listed below; qualify ambiguous columns with their table.
- Never write or lock: no INSERT, UPDATE, DELETE, DDL, SELECT INTO or FOR UPDATE; no functions that sleep, read files or signal the server.
- Match text values as the value hints show them (case and spelling).
- When a question asks for \"top N\" or \"the N most\", use ORDER BY ... LIMIT N.
- If the question cannot be answered from these tables, answer with one line: -- cannot answer: <why>";

/// Everything a prompt is made of.
pub struct PromptInput<'a> {
    pub question: &'a str,
    pub schema: &'a Retrieved,
    pub examples: &'a [Example],
    pub conversation: &'a Conversation,
    /// How many examples to include at most.
    pub max_examples: usize,
}

/// The first request for a question.
pub fn build(input: &PromptInput<'_>) -> ChatRequest {
    let mut system = format!("{RULES}\n\nSchema:\n{}", input.schema.ddl.trim_end());
    let examples = select_examples(input.question, input.examples, input.max_examples);
    if !examples.is_empty() {
        system.push_str("\n\nExamples:");
        for e in examples {
            system.push_str(&format!(
                "\nQuestion: {}\n```sql\n{}\n```",
                e.question,
                e.sql.trim()
            ));
        }
    }
    let mut messages = vec![ChatMessage::system(system)];
    for turn in input.conversation.turns() {
        messages.push(ChatMessage::user(turn.question.clone()));
        messages.push(ChatMessage::assistant(format!("```sql\n{}\n```", turn.sql)));
    }
    messages.push(ChatMessage::user(input.question.to_string()));
    ChatRequest { messages }
}

/// The request after `bad_sql` was rejected for `problem`.
pub fn correction(previous: &ChatRequest, bad_sql: &str, problem: &str) -> ChatRequest {
    let mut messages = previous.messages.clone();
    messages.push(ChatMessage::assistant(format!("```sql\n{bad_sql}\n```")));
    messages.push(ChatMessage::user(format!(
        "That query was rejected: {problem}\nWrite a corrected query that follows the rules, in a ```sql code block."
    )));
    ChatRequest { messages }
}

/// What the model's answer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Sql(String),
    /// The model said the question cannot be answered, and why.
    CannotAnswer(String),
    /// Nothing that looks like SQL.
    Empty,
}

/// Take the SQL out of a reply: the first ```sql block, else the first code
/// block, else the whole text.
pub fn extract_sql(content: &str) -> Answer {
    let body = fenced(content, "```sql")
        .or_else(|| fenced(content, "```SQL"))
        .or_else(|| fenced(content, "```"))
        .unwrap_or(content);
    let body = body.trim();
    if let Some(reason) = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("-- cannot answer"))
    {
        let reason = reason.trim_start_matches(':').trim();
        return Answer::CannotAnswer(if reason.is_empty() {
            "the model could not answer it from the schema".into()
        } else {
            reason.to_string()
        });
    }
    let sql = body.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if sql.is_empty() {
        Answer::Empty
    } else {
        Answer::Sql(sql.to_string())
    }
}

fn fenced<'a>(content: &'a str, opener: &str) -> Option<&'a str> {
    let start = content.find(opener)? + opener.len();
    let rest = &content[start..];
    // The opener line may carry more (```sql\n, ```postgresql\n).
    let rest = rest.split_once('\n').map_or(rest, |(_, r)| r);
    let end = rest.find("```").unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The `n` examples whose questions share the most words with `question`.
pub fn select_examples<'a>(question: &str, examples: &'a [Example], n: usize) -> Vec<&'a Example> {
    let words = |s: &str| -> std::collections::HashSet<String> {
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 2)
            .map(str::to_string)
            .collect()
    };
    let q = words(question);
    let mut scored: Vec<(f64, &Example)> = examples
        .iter()
        .map(|e| {
            let w = words(&e.question);
            let inter = q.intersection(&w).count() as f64;
            let union = q.union(&w).count().max(1) as f64;
            (inter / union, e)
        })
        .filter(|(s, _)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(n).map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_sql_from_fences_and_refusals() {
        assert_eq!(
            extract_sql("```sql\nSELECT 1;\n```"),
            Answer::Sql("SELECT 1".into())
        );
        assert_eq!(
            extract_sql("Here:\n```postgresql\nselect 2\n```\nDone"),
            Answer::Sql("select 2".into())
        );
        assert_eq!(extract_sql("select 3;"), Answer::Sql("select 3".into()));
        assert_eq!(
            extract_sql("-- cannot answer: no table holds weather"),
            Answer::CannotAnswer("no table holds weather".into())
        );
        assert_eq!(extract_sql("```sql\n```"), Answer::Empty);
    }

    #[test]
    fn picks_the_most_similar_examples() {
        let ex = vec![
            Example {
                question: "total revenue by region".into(),
                sql: "a".into(),
            },
            Example {
                question: "list products".into(),
                sql: "b".into(),
            },
            Example {
                question: "revenue per customer".into(),
                sql: "c".into(),
            },
        ];
        let picked: Vec<_> = select_examples("revenue by region last year", &ex, 2)
            .iter()
            .map(|e| e.sql.as_str())
            .collect();
        assert_eq!(picked, ["a", "c"]);
    }
}
