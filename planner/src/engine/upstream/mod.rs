//! Upstream tables in DataFusion: reading a PostgreSQL table in parallel
//! partitions with binary `COPY`.
//!
//! A statement routed to the engine names upstream tables; the session
//! looks them up in the upstream's catalog (as the client's role, in one
//! exported snapshot) and registers each as an [`UpstreamTable`]. When
//! DataFusion scans one, [`UpstreamScanExec`] splits the table into page
//! (`ctid`) ranges and each partition runs
//!
//! ```sql
//! COPY (SELECT <projected columns> FROM <table>
//!       WHERE <pushed filters> AND ctid >= '(a,0)' AND ctid < '(b,0)'
//!       LIMIT <n>) TO STDOUT (FORMAT binary)
//! ```
//!
//! through a [`CopySource`] (the connections, snapshot import and the
//! client's login are the caller's: this crate owns no sockets). The rows
//! are decoded straight into Arrow arrays ([`copy::CopyDecoder`]), so
//! DataFusion's parallel aggregation, joins and sorts take it from there.
//!
//! - [`types`]: which Arrow type each PostgreSQL column becomes.
//! - [`copy`]: the binary COPY format → Arrow.
//! - [`pushdown`]: DataFusion filters PostgreSQL evaluates exactly.
//! - [`faithful`]: what DataFusion may compute and still answer as PostgreSQL.
//! - [`scan`]: the TableProvider and the partitioned scan.

pub mod copy;
pub mod faithful;
pub mod pushdown;
pub mod scan;
pub mod types;

use std::fmt;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use datafusion::common::DataFusionError;
use futures_util::stream::BoxStream;

pub use scan::{ScanOptions, UpstreamScanExec, UpstreamTable};
pub use types::{UpstreamColumn, UpstreamRelation};

/// The payloads of a COPY's CopyData messages, in order.
pub type CopyStream = BoxStream<'static, Result<Bytes, DataFusionError>>;

/// Runs a `COPY ... TO STDOUT (FORMAT binary)` on the upstream for a scan
/// partition. Implementations decide the connection, role and snapshot.
#[async_trait::async_trait]
pub trait CopySource: Send + Sync + fmt::Debug {
    async fn copy_out(&self, sql: String) -> Result<CopyStream, DataFusionError>;
}

/// An error the upstream reported, passed to the client with its own
/// SQLSTATE (wrap it in `DataFusionError::External`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UpstreamError {}

impl UpstreamError {
    /// The SQLSTATE as a `'static` string, as [`super::EngineError`] keeps
    /// it (interned: there are a few hundred codes at most).
    pub fn static_code(&self) -> &'static str {
        static CODES: OnceLock<Mutex<std::collections::HashSet<&'static str>>> = OnceLock::new();
        let valid = self.code.len() == 5 && self.code.bytes().all(|b| b.is_ascii_alphanumeric());
        let code = if valid { self.code.as_str() } else { "XX000" };
        let mut codes = CODES.get_or_init(Default::default).lock().expect("codes");
        if let Some(c) = codes.get(code) {
            return c;
        }
        let leaked: &'static str = Box::leak(code.to_string().into_boxed_str());
        codes.insert(leaked);
        leaked
    }

    /// The upstream error inside a DataFusion error, however deeply wrapped.
    pub fn find(e: &DataFusionError) -> Option<&UpstreamError> {
        match e {
            DataFusionError::External(inner) => inner.downcast_ref::<UpstreamError>(),
            DataFusionError::Context(_, inner) => Self::find(inner),
            DataFusionError::Shared(inner) => Self::find(inner),
            DataFusionError::ArrowError(inner, _) => match inner.as_ref() {
                datafusion::arrow::error::ArrowError::ExternalError(x) => {
                    if let Some(u) = x.downcast_ref::<UpstreamError>() {
                        return Some(u);
                    }
                    x.downcast_ref::<DataFusionError>().and_then(Self::find)
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// A PostgreSQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL string literal (standard_conforming_strings on).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
