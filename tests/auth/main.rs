//! Who gets in: client authentication (`trust`, `md5`, `scram-sha-256`,
//! password passthrough to the upstream), Helios's own login to a
//! password-protected upstream, and TLS for clients.

#[path = "../common/mod.rs"]
mod common;

mod passthrough;
mod password;
mod support;
mod tls;
mod upstream_login;
