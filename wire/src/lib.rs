//! # helios-wire: the PostgreSQL wire protocol, as Helios speaks it
//!
//! This crate owns the bytes: framing of the v3 message stream
//! ([`frame`]), the untagged startup packets ([`startup`]), authentication in
//! both directions ([`auth`]), TLS configuration ([`tls`]), the transports
//! ([`stream`]), cancel keys ([`cancel`]), and the messages Helios writes
//! itself ([`messages`], [`error`]).
//!
//! It does **not** know what SQL means, hold connections in pools, or decide
//! where a query goes: that is the `helios` crate's session and router. The
//! relay path uses [`frame::FrameScanner`] to forward bytes untouched, looking
//! inside only the few messages routing needs.

pub mod arrow;
pub mod auth;
pub mod bind;
pub mod cancel;
pub mod error;
pub mod frame;
pub mod messages;
pub mod results;
pub mod startup;
pub mod stream;
pub mod tls;

pub use cancel::{CancelRegistry, ClientKey, UpstreamKey};
pub use error::{ErrorFields, PgError, Severity, SqlState};
pub use frame::{Frame, FrameError, FrameScanner, FrameVisitor, Scan, TagSet};
pub use messages::TransactionStatus;
pub use startup::{StartupPacket, StartupParams};
pub use stream::{ClientStream, UpstreamStream};
