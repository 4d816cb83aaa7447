//! # helios-nl: natural language to SQL
//!
//! The pipeline, for a question asked through `nl('...')`, `nl_sql('...')`
//! or an NL comment ([`detect`]):
//!
//! 1. [`retrieval`]: rank the catalog's tables and columns by relevance to the
//!    question (words of identifiers, comments, sample values, foreign keys)
//!    and fit them into a token budget;
//! 2. [`prompt`]: compact DDL, value hints, similar examples, the
//!    conversation so far, and the rules;
//! 3. [`provider`]: ask the configured models in order (timeouts, retries,
//!    rate limits, circuit breakers);
//! 4. [`validate`]: one read-only statement, only known tables and columns
//!    (planned in DataFusion against the catalog), then the caller's EXPLAIN
//!    on the upstream; a failure goes back to the model, up to `max_attempts`;
//! 5. [`cache`]: exact and semantic caches of translations, dropped when the
//!    schema changes.
//!
//! [`translate`] runs it. This crate owns no sockets and never runs the
//! statement: the session does, read-only, as the client's own role.

pub mod builtin;
pub mod cache;
pub mod complexity;
pub mod config;
pub mod conversation;
pub mod detect;
pub mod error;
pub mod prompt;
pub mod provider;
pub mod retrieval;
pub mod translate;
pub mod validate;

pub use config::{Example, NlConfig, ProviderConfig, ProviderKind};
pub use error::{NlError, NlErrorKind};
