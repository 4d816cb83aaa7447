//! Why a natural-language request did not produce rows, with the SQLSTATE the
//! client gets.

use std::fmt;

/// The classes of failure a client can tell apart by SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlErrorKind {
    /// The model's SQL was refused as unsafe (writes, locks, dangerous functions): 42501.
    Refused,
    /// No valid SQL after every attempt (unknown columns, syntax, ...): 42000.
    Untranslatable,
    /// The request itself is malformed (empty question, several statements): 42601.
    BadRequest,
    /// The question is NULL or empty: 22023 (invalid_parameter_value).
    InvalidQuestion,
    /// Inside a transaction block: 25001.
    InTransaction,
    /// Every provider failed or none is configured: 58000.
    Provider,
    /// Helios could not read the schema: 58000.
    Catalog,
    /// The upstream connection failed during the translation: 08006.
    Upstream,
    /// Cancelled by the client, or the upstream gave up (timeout, lock, deadlock): 57014.
    Interrupted,
}

impl NlErrorKind {
    pub fn sqlstate(self) -> &'static str {
        match self {
            NlErrorKind::Refused => "42501",
            NlErrorKind::Untranslatable => "42000",
            NlErrorKind::BadRequest => "42601",
            NlErrorKind::InvalidQuestion => "22023",
            NlErrorKind::InTransaction => "25001",
            NlErrorKind::Provider | NlErrorKind::Catalog => "58000",
            NlErrorKind::Upstream => "08006",
            NlErrorKind::Interrupted => "57014",
        }
    }
}

/// A failed natural-language request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    pub kind: NlErrorKind,
    pub message: String,
    /// More about it: the last generated SQL, the provider errors, ...
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl NlError {
    pub fn new(kind: NlErrorKind, message: impl Into<String>) -> Self {
        NlError {
            kind,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn sqlstate(&self) -> &'static str {
        self.kind.sqlstate()
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.sqlstate())
    }
}

impl std::error::Error for NlError {}
