//! # helios-advisor: what is slow about a statement, and which indexes would help
//!
//! - [`finding`]: what the advisor reports — [`Finding`]s with a
//!   [`Severity`], and the statement's quality [`score`].
//! - [`rules`]: static rules over the parsed statement and the catalog
//!   snapshot (no upstream round trip; microseconds).
//! - [`plan`]: the upstream's `EXPLAIN (FORMAT JSON)` read into a tree, and
//!   the rules over it (with `ANALYZE`: runtime findings).
//! - [`index`]: index candidates from a statement's predicates, verified
//!   with HypoPG when the upstream has it, else estimated from `pg_stats`.
//! - [`workload`]: a set of indexes for the statements that cost the most
//!   time, chosen greedily by total benefit.
//! - [`advise`]: the whole analysis of one statement.
//!
//! It knows nothing of sockets: whatever talks to the upstream implements
//! [`helios_planner::catalog::TextQuery`] (Helios runs the advisor's
//! queries on the client's own upstream connection, as the client's role).

pub mod advise;
pub mod finding;
pub mod index;
pub mod plan;
pub mod rules;
pub mod workload;

pub use advise::{advise, Advice, Mode};
pub use finding::{score, Finding, Severity};

/// Thresholds the rules use.
#[derive(Debug, Clone)]
pub struct Options {
    /// A table with at least this many rows is large.
    pub large_table_rows: f64,
    /// An OFFSET at least this large is "large pagination".
    pub large_offset: u64,
    /// An index is recommended when it saves at least this share of the
    /// statement's cost, in percent.
    pub min_saving_pct: f64,
    /// Columns in a recommended index, at most.
    pub max_index_columns: usize,
    /// A table whose share of writes among row operations is at least this
    /// is write-heavy: a new index costs every write.
    pub write_heavy_share: f64,
    /// A plan node whose actual rows differ from the estimate by this
    /// factor (either way) is a misestimate.
    pub misestimate_factor: f64,
    /// Statements `ADVISE WORKLOAD` considers: the most expensive this many.
    pub workload_top: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            large_table_rows: 100_000.0,
            large_offset: 1_000,
            min_saving_pct: 30.0,
            max_index_columns: 3,
            write_heavy_share: 0.5,
            misestimate_factor: 10.0,
            workload_top: 20,
        }
    }
}
