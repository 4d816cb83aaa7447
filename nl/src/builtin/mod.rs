//! The builtin translator: natural language to SQL with no model and no
//! network, for the questions whose every word it can place in the schema.
//!
//! It answers counts ("how many orders"), lists with filters ("customers in
//! Berlin", "orders over 100", "products without orders"), top-N ("top 10
//! customers by revenue", "the 5 cheapest products"), aggregates by a
//! dimension ("average price per category", "revenue by month"), date
//! ranges ("in 2024", "since March", "last month"), ordering words and
//! negation, joining tables along foreign keys.
//!
//! The stages, one module each:
//! 1. [`lex`]: the question as words, numbers, quoted values, dates;
//! 2. [`parse`]: each word placed as a schema phrase ([`vocab`]: tables,
//!    columns, stored values, configured measures), a structure word or a
//!    date phrase ([`dates`]); a word it cannot place ends the translation;
//! 3. [`intent`]: what is counted, summed or listed, grouped, filtered,
//!    ordered;
//! 4. [`plan`]: the joins and the SQL.
//!
//! It never guesses: a word it cannot place, a column name that fits two
//! tables, a join that could go two ways — each is a [`Refusal`] naming
//! what it could not place, and the caller says an LLM provider can be
//! configured. Its SQL goes through the same validation as a model's.

mod dates;
mod intent;
mod joins;
mod lex;
mod parse;
mod plan;
mod vocab;
mod write;

use helios_planner::Catalog;

use crate::config::Measure;
use crate::error::{NlError, NlErrorKind};

pub use vocab::check_measure;

/// The provider name translations by the builtin carry.
pub const NAME: &str = "builtin";

/// Why the builtin translator does not answer a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Words of the question it could not place.
    pub words: Vec<String>,
    /// What it could not decide, or why the words do not fit.
    pub reason: Option<String>,
}

impl Refusal {
    fn words(words: &[String], why: &str) -> Refusal {
        Refusal {
            words: words.to_vec(),
            reason: Some(why.to_string()),
        }
    }

    /// It placed every word but could not tell `what`.
    fn unsure(what: &str) -> Refusal {
        Refusal {
            words: vec![],
            reason: Some(format!("could not tell {what}")),
        }
    }

    pub fn into_error(self) -> NlError {
        let quoted: Vec<String> = self.words.iter().map(|w| format!("\"{w}\"")).collect();
        let message = match (quoted.is_empty(), &self.reason) {
            (false, _) => format!(
                "the builtin translator could not place {} in the schema",
                quoted.join(", ")
            ),
            (true, Some(r)) => format!("the builtin translator {r}"),
            (true, None) => "the builtin translator could not translate the question".into(),
        };
        let e = NlError::new(NlErrorKind::Untranslatable, message).with_hint(
            "It answers counts, lists with filters, top-N, totals and averages by a column, \
             date ranges and ordering words, in the schema's own words. Rephrase, or configure \
             an LLM provider ([[nl.providers]]) for other questions.",
        );
        match (self.words.is_empty(), self.reason) {
            (false, Some(r)) => e.with_detail(r),
            _ => e,
        }
    }
}

/// Translate `question` against `catalog`, with the configured `measures`.
pub fn translate(
    question: &str,
    catalog: &Catalog,
    measures: &[Measure],
) -> Result<String, Refusal> {
    let vocab = vocab::Vocab::new(catalog, measures);
    let tokens = lex::tokenize(question);
    let parsed = parse::parse(&tokens, &vocab);
    if !parsed.unplaced.is_empty() {
        let mut words = parsed.unplaced.clone();
        words.dedup();
        let named_measure = vocab
            .broken_measures
            .iter()
            .find(|(name, _)| words.iter().any(|w| name.eq_ignore_ascii_case(w)));
        return Err(Refusal {
            words,
            reason: named_measure
                .map(|(name, e)| format!("measure \"{name}\" is configured but unusable: {e}")),
        });
    }
    let names_schema = parsed.pieces.iter().any(|p| {
        matches!(
            p,
            parse::Piece::Table { .. }
                | parse::Piece::Column { .. }
                | parse::Piece::Value(_)
                | parse::Piece::Measure(_)
        )
    });
    if !names_schema {
        return Err(Refusal::unsure("which table the question is about"));
    }
    let intent = intent::build(&parsed.pieces, &vocab)?;
    plan::sql(intent, &vocab)
}

#[cfg(test)]
mod tests;
