//! A connection's conversation: the last questions and the SQL that
//! answered them, so a follow-up ("and only in 2024?") can build on them.

use std::collections::VecDeque;
use std::time::SystemTime;

/// One answered question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub question: String,
    pub sql: String,
    pub at: SystemTime,
}

/// The turns of one connection, newest last, at most `max` of them.
#[derive(Debug, Clone)]
pub struct Conversation {
    turns: VecDeque<Turn>,
    max: usize,
}

impl Conversation {
    pub fn new(max: usize) -> Self {
        Conversation {
            turns: VecDeque::new(),
            max,
        }
    }

    pub fn push(&mut self, question: &str, sql: &str) {
        if self.max == 0 {
            return;
        }
        if self.turns.len() == self.max {
            self.turns.pop_front();
        }
        self.turns.push_back(Turn {
            question: question.to_string(),
            sql: sql.to_string(),
            at: SystemTime::now(),
        });
    }

    pub fn reset(&mut self) {
        self.turns.clear();
    }

    pub fn turns(&self) -> impl ExactSizeIterator<Item = &Turn> {
        self.turns.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }

    /// What a cached translation of `question` depends on: nothing for a
    /// standalone question (asked twice, it means the same thing whatever
    /// came before), the whole conversation for a follow-up, where "it" or
    /// "and by month?" means something only in context.
    pub fn context_digest(&self, question: &str) -> u64 {
        if self.is_empty() || !is_follow_up(question) {
            return Conversation::new(0).digest();
        }
        self.digest()
    }

    /// Identifies the conversation's content.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for t in &self.turns {
            for b in t
                .question
                .bytes()
                .chain([0])
                .chain(t.sql.bytes())
                .chain([0])
            {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

/// Whether `question` reads as a follow-up: short and opening with a
/// connective ("and by month?", "only 2024", "what about Paris?"), or
/// referring back ("show them", "the same for products").
pub fn is_follow_up(question: &str) -> bool {
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let Some(first) = words.first() else {
        return false;
    };
    let opening = [
        "and",
        "but",
        "or",
        "also",
        "now",
        "then",
        "only",
        "just",
        "instead",
        "same",
        "by",
        "per",
        "without",
        "excluding",
        "including",
    ];
    let about =
        matches!(first.as_str(), "what" | "how") && words.get(1).is_some_and(|w| w == "about");
    if about || opening.contains(&first.as_str()) {
        return true;
    }
    let pronouns = [
        "it", "its", "that", "those", "these", "them", "they", "their", "same", "previous",
        "above", "instead", "again",
    ];
    words.iter().any(|w| pronouns.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_are_told_from_standalone_questions() {
        for q in [
            "and by month?",
            "only in 2024",
            "what about Paris?",
            "show them by city",
            "the same for products",
            "sort it by total",
        ] {
            assert!(is_follow_up(q), "{q}");
        }
        for q in [
            "how many orders are there",
            "top 10 customers by revenue last year",
            "list products cheaper than 50",
            "what is the average order quantity per customer city",
        ] {
            assert!(!is_follow_up(q), "{q}");
        }
        let mut c = Conversation::new(3);
        assert_eq!(
            c.context_digest("and by month?"),
            c.context_digest("how many orders")
        );
        c.push("how many orders", "select count(*) from orders");
        assert_eq!(
            c.context_digest("how many customers"),
            Conversation::new(0).digest()
        );
        assert_ne!(
            c.context_digest("and by month?"),
            Conversation::new(0).digest()
        );
    }

    #[test]
    fn keeps_the_last_turns_and_digests_them() {
        let mut c = Conversation::new(2);
        let empty = c.digest();
        c.push("a", "select 1");
        c.push("b", "select 2");
        c.push("c", "select 3");
        let qs: Vec<_> = c.turns().map(|t| t.question.as_str()).collect();
        assert_eq!(qs, ["b", "c"]);
        assert_ne!(c.digest(), empty);
        c.reset();
        assert_eq!(c.digest(), empty);
    }
}
