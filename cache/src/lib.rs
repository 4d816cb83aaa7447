//! # helios-cache: results of repeatable reads, kept as protocol frames
//!
//! - [`key`]: what makes two requests the same ([`CacheKey`]): the statement
//!   text, parameters and formats, and the session [`Context`] (database,
//!   effective role, every setting that changes results).
//! - [`entry`]: what is kept ([`CachedResult`]): the exact RowDescription,
//!   DataRow and CommandComplete bytes the upstream sent; and [`Capture`],
//!   which collects them from a relayed reply.
//! - [`generation`]: per-table generation counters and a per-database epoch.
//!   An entry records the generations it was filled under; any later write
//!   or DDL makes it stale at once, without finding it.
//! - [`store`]: the bounded store (moka: bytes-weighed, TinyLFU admission,
//!   per-entry TTL), coalescing of identical misses, per-statement counters.
//!
//! It knows nothing of sockets or SQL: the session decides what may be
//! cached and feeds this crate bytes.

pub mod entry;
pub mod generation;
pub mod key;
pub mod store;

pub use entry::{CachedResult, Capture, CaptureEnd};
pub use generation::{Generations, Snapshot, TableGen};
pub use key::{CacheKey, Context, ContextId, Request};
pub use store::{FillTicket, Limits, Lookup, ResultCache, StatementStats};
