//! Operations, end to end: a real PostgreSQL, the Helios binary in front of
//! it, real clients (tokio-postgres) and the admin HTTP endpoint.
//!
//! - `metrics`: `/metrics` after a mixed workload (exact counter deltas,
//!   gauges that match the open clients);
//! - `health`: liveness, startup and readiness (upstream down and back, the
//!   embedded demo database);
//! - `admin_sql`: `SHOW HELIOS ...` for anyone, `HELIOS RELOAD/PAUSE/RESUME`
//!   for admin users only, secrets redacted;
//! - `pause`: `HELIOS PAUSE` holds new requests until `HELIOS RESUME`;
//! - `reload`: `HELIOS RELOAD`, `POST /admin/reload` and SIGHUP: live
//!   settings applied, invalid files rejected, connections kept;
//! - `shutdown`: SIGTERM drains (idle sessions end at once, transactions
//!   may finish), exit status 0;
//! - `http_admin`: bearer-token auth, `/admin/config` redaction,
//!   `/admin/cache/clear`;
//! - `audit`: the audit log's JSON lines, redacted; the slow-query log.

#[path = "../common/mod.rs"]
mod common;

mod admin_sql;
mod audit;
mod health;
mod http;
mod http_admin;
mod metrics;
mod nl;
mod pause;
mod reload;
mod shutdown;
mod support;
