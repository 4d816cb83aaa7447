//! Caches of translations: exact (same normalized question) and semantic
//! (a question similar enough), both scoped to one schema version and one
//! conversation, so a change of schema or of context never reuses an answer
//! made for another.
//!
//! Similarity is the cosine of the questions' embeddings when the provider
//! has an embedding model, else of their word counts. Either way, questions
//! whose numbers or quoted values differ never match: "top 10 customers" is
//! not "top 5 customers".

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;

use crate::translate::Translation;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    question: String,
    schema_version: u64,
    conversation: u64,
}

struct SemanticEntry {
    schema_version: u64,
    conversation: u64,
    words: HashMap<String, f64>,
    literals: Vec<String>,
    embedding: Option<Vec<f32>>,
    translation: Arc<Translation>,
}

/// The translation caches.
pub struct TranslationCache {
    exact: Cache<Key, Arc<Translation>>,
    semantic: Mutex<VecDeque<SemanticEntry>>,
    semantic_capacity: usize,
    threshold: f64,
}

/// A question's normalized form: lower case, single spaces, no trailing punctuation.
pub fn normalize(question: &str) -> String {
    question
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(['?', '.', '!', ';'])
        .trim()
        .to_lowercase()
}

/// Words, lightly stemmed, for lexical similarity.
fn words(question: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for w in normalize(question)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = w.strip_suffix('s').filter(|s| s.len() > 2).unwrap_or(w);
        *out.entry(w.to_string()).or_insert(0.0) += 1.0;
    }
    out
}

/// Numbers and quoted strings: the parts a similar question must share exactly.
fn literals(question: &str) -> Vec<String> {
    let mut out: Vec<String> = question
        .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    let mut rest = question;
    while let Some(start) = rest.find(['\'', '"']) {
        let quote = rest[start..].chars().next().unwrap();
        let after = &rest[start + 1..];
        match after.find(quote) {
            Some(end) => {
                out.push(after[..end].to_lowercase());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out.sort();
    out
}

fn cosine_words(a: &HashMap<String, f64>, b: &HashMap<String, f64>) -> f64 {
    let dot: f64 = a.iter().filter_map(|(w, x)| b.get(w).map(|y| x * y)).sum();
    let norm = |m: &HashMap<String, f64>| m.values().map(|x| x * x).sum::<f64>().sqrt();
    let d = norm(a) * norm(b);
    if d == 0.0 {
        0.0
    } else {
        dot / d
    }
}

/// Cosine similarity of two embeddings (0 when their sizes differ).
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Where a cached translation came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Hit {
    Exact(Arc<Translation>),
    Similar {
        translation: Arc<Translation>,
        similarity: f64,
    },
}

impl TranslationCache {
    pub fn new(entries: u64, threshold: f64) -> Self {
        TranslationCache {
            exact: Cache::builder()
                .max_capacity(entries.max(1))
                .time_to_idle(Duration::from_secs(24 * 3600))
                .support_invalidation_closures()
                .build(),
            semantic: Mutex::new(VecDeque::new()),
            semantic_capacity: (entries as usize).clamp(1, 5000),
            threshold,
        }
    }

    /// A cached translation for `question`, exact first, then similar.
    pub fn get(
        &self,
        question: &str,
        schema_version: u64,
        conversation: u64,
        embedding: Option<&[f32]>,
    ) -> Option<Hit> {
        let key = Key {
            question: normalize(question),
            schema_version,
            conversation,
        };
        if let Some(t) = self.exact.get(&key) {
            return Some(Hit::Exact(t));
        }
        let q_words = words(question);
        let q_literals = literals(question);
        let semantic = self.semantic.lock().unwrap();
        semantic
            .iter()
            .filter(|e| e.schema_version == schema_version && e.conversation == conversation)
            .filter(|e| e.literals == q_literals)
            .map(|e| {
                let sim = match (embedding, &e.embedding) {
                    (Some(a), Some(b)) => cosine(a, b),
                    _ => cosine_words(&q_words, &e.words),
                };
                (sim, e)
            })
            .filter(|(sim, _)| *sim >= self.threshold)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(similarity, e)| Hit::Similar {
                translation: e.translation.clone(),
                similarity,
            })
    }

    pub fn insert(
        &self,
        question: &str,
        schema_version: u64,
        conversation: u64,
        embedding: Option<Vec<f32>>,
        translation: Arc<Translation>,
    ) {
        let key = Key {
            question: normalize(question),
            schema_version,
            conversation,
        };
        self.exact.insert(key, translation.clone());
        let mut semantic = self.semantic.lock().unwrap();
        if semantic.len() >= self.semantic_capacity {
            semantic.pop_front();
        }
        semantic.push_back(SemanticEntry {
            schema_version,
            conversation,
            words: words(question),
            literals: literals(question),
            embedding,
            translation,
        });
    }

    /// Forget every translation made for `schema_version` (its schema changed).
    pub fn invalidate_schema(&self, schema_version: u64) {
        // Only fails when the builder lacks invalidation closures; it has them.
        let _ = self
            .exact
            .invalidate_entries_if(move |k, _| k.schema_version == schema_version);
        self.semantic
            .lock()
            .unwrap()
            .retain(|e| e.schema_version != schema_version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sql: &str) -> Arc<Translation> {
        Arc::new(Translation {
            sql: sql.into(),
            tables: vec![],
            provider: "p".into(),
            attempts: 1,
            cached: false,
        })
    }

    #[test]
    fn exact_and_similar_hits_respect_schema_conversation_and_literals() {
        let c = TranslationCache::new(100, 0.9);
        c.insert("Top 10 customers by revenue?", 1, 0, None, t("q1"));
        assert!(matches!(
            c.get("top 10 customers  by revenue", 1, 0, None),
            Some(Hit::Exact(_))
        ));
        assert!(matches!(
            c.get("the top 10 customers by revenue", 1, 0, None),
            Some(Hit::Similar { .. })
        ));
        assert!(
            c.get("top 5 customers by revenue", 1, 0, None).is_none(),
            "numbers differ"
        );
        assert!(
            c.get("top 10 customers by revenue", 2, 0, None).is_none(),
            "schema changed"
        );
        assert!(
            c.get("top 10 customers by revenue", 1, 7, None).is_none(),
            "other conversation"
        );
        assert!(c.get("orders shipped to Berlin", 1, 0, None).is_none());
        c.invalidate_schema(1);
        assert!(c.get("top 10 customers by revenue", 1, 0, None).is_none());
    }

    #[test]
    fn embeddings_decide_when_present() {
        let c = TranslationCache::new(100, 0.9);
        c.insert("how many orders", 1, 0, Some(vec![1.0, 0.0]), t("q"));
        assert!(c
            .get("count of orders", 1, 0, Some(&[0.99, 0.05]))
            .is_some());
        assert!(c.get("count of orders", 1, 0, Some(&[0.0, 1.0])).is_none());
    }
}
