//! What happens when something goes wrong: the upstream is down or dies
//! mid-query, a client sends garbage (after startup or instead of a proper
//! startup), or a client never says anything. In every case the client gets a
//! clear PostgreSQL error, nothing it did not ask for reaches the upstream,
//! and Helios stays up for everyone else.

#[path = "../common/mod.rs"]
mod common;

mod faults;
mod hostile;
mod malformed;
mod secrets;
mod startup;
mod support;
mod upstream;
