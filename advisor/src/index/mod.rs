//! Index recommendations: candidates from a statement's predicates
//! ([`candidates`]), each verified — with HypoPG, the planner's own cost of
//! the statement with a hypothetical index, when the upstream has the
//! extension; otherwise the statistics model of [`estimate`] — and the best
//! one recommended when it saves at least `Options::min_saving_pct`.

pub mod candidates;
pub mod estimate;
pub mod explain;
mod verify;

pub use candidates::{candidates, table_uses, Candidate, TableUse};
pub use verify::{
    has_hypopg, plan_with_hypothetical, recommend, verify_candidates, Method, Subject, Verified,
};
