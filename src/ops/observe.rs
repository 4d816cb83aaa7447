//! What happens to every statement once it is answered, whatever answered it
//! (the upstream, the result cache, the engine, Helios's own commands): the
//! query metrics, the per-database counters of `SHOW HELIOS STATS`, the
//! per-query log event, the slow-query log and the audit log.
//!
//! Sessions call [`SessionObserver::record`] once per statement (a simple
//! Query of several statements counts once, with its first statement's text).
//! The advisor's per-shape log (`SHOW HELIOS QUERIES`) is fed by the same
//! call sites, separately, because it only wants what reached PostgreSQL or
//! the cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::audit::AuditRecord;
use super::Ops;

/// Who answered a statement (the `route` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Relayed to the upstream PostgreSQL.
    Upstream,
    /// Answered from the result cache.
    Cache,
    /// Run by the DataFusion engine.
    Engine,
    /// A natural-language question, translated and run.
    Nl,
    /// One of Helios's own commands (`SHOW HELIOS ...`, `ADVISE`, ...).
    Admin,
    /// The embedded demo database (no upstream).
    Embedded,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Upstream => "upstream",
            Route::Cache => "cache",
            Route::Engine => "engine",
            Route::Nl => "nl",
            Route::Admin => "admin",
            Route::Embedded => "embedded",
        }
    }
}

/// A statement that has been answered.
pub struct QueryRecord<'a> {
    /// `None` when the caller has not computed it: it is then computed
    /// only if a log needs it (most statements need none).
    pub fingerprint: Option<u64>,
    pub text: &'a str,
    pub route: Route,
    pub took: Duration,
    pub rows: u64,
    /// `None` when it succeeded, else its SQLSTATE.
    pub error: Option<&'a str>,
}

/// Counters for one database (`SHOW HELIOS STATS`).
#[derive(Default)]
pub struct DbStats {
    pub queries: AtomicU64,
    pub errors: AtomicU64,
    pub cache_hits: AtomicU64,
    pub engine_queries: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// Microseconds.
    pub query_time: AtomicU64,
    /// Microseconds spent waiting for an upstream connection.
    pub wait_time: AtomicU64,
    /// Clients that waited for one.
    pub waits: AtomicU64,
}

#[derive(Default)]
pub struct DbStatsTable {
    by_db: Mutex<HashMap<String, Arc<DbStats>>>,
}

impl DbStatsTable {
    pub fn get(&self, database: &str) -> Arc<DbStats> {
        self.by_db
            .lock()
            .expect("db stats")
            .entry(database.to_string())
            .or_default()
            .clone()
    }

    /// Every database seen, by name.
    pub fn snapshot(&self) -> Vec<(String, Arc<DbStats>)> {
        let mut v: Vec<_> = self
            .by_db
            .lock()
            .expect("db stats")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// One session's handle on the observers: who it is, and its database's
/// counters. (Its tracing span already carries the peer, user, database
/// and application_name, so the per-query events do not repeat them.)
pub struct SessionObserver {
    ops: Arc<Ops>,
    pub user: String,
    pub database: String,
    pub client: String,
    pub application_name: String,
    pub db: Arc<DbStats>,
    bytes_in: metrics::Counter,
    bytes_out: metrics::Counter,
    /// The relayed route's handles, looked up once: it is the hot path.
    upstream_ok: metrics::Counter,
    upstream_error: metrics::Counter,
    upstream_duration: metrics::Histogram,
}

impl SessionObserver {
    pub fn new(
        ops: Arc<Ops>,
        user: &str,
        database: &str,
        client: &str,
        application_name: &str,
    ) -> Arc<SessionObserver> {
        Arc::new(SessionObserver {
            db: ops.stats.get(database),
            ops,
            user: user.to_string(),
            database: database.to_string(),
            client: client.to_string(),
            application_name: application_name.to_string(),
            bytes_in: metrics::counter!("helios_client_bytes_received_total"),
            bytes_out: metrics::counter!("helios_client_bytes_sent_total"),
            upstream_ok: metrics::counter!("helios_queries_total", "route" => "upstream", "status" => "ok"),
            upstream_error: metrics::counter!("helios_queries_total", "route" => "upstream", "status" => "error"),
            upstream_duration: metrics::histogram!("helios_query_duration_seconds", "route" => "upstream"),
        })
    }

    /// Bytes from the client (`received`) and to it (`sent`).
    pub fn bytes(&self, received: u64, sent: u64) {
        if received > 0 {
            self.bytes_in.increment(received);
            self.db.received.fetch_add(received, Ordering::Relaxed);
        }
        if sent > 0 {
            self.bytes_out.increment(sent);
            self.db.sent.fetch_add(sent, Ordering::Relaxed);
        }
    }

    /// Time a client waited for an upstream connection.
    pub fn waited(&self, took: Duration) {
        self.db.waits.fetch_add(1, Ordering::Relaxed);
        self.db
            .wait_time
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        metrics::histogram!("helios_pool_wait_seconds").record(took.as_secs_f64());
    }

    pub fn record(&self, q: &QueryRecord<'_>) {
        let route = q.route.as_str();
        if q.route == Route::Upstream {
            match q.error {
                None => self.upstream_ok.increment(1),
                Some(_) => self.upstream_error.increment(1),
            }
            self.upstream_duration.record(q.took.as_secs_f64());
        } else {
            let status = if q.error.is_some() { "error" } else { "ok" };
            metrics::counter!("helios_queries_total", "route" => route, "status" => status)
                .increment(1);
            metrics::histogram!("helios_query_duration_seconds", "route" => route)
                .record(q.took.as_secs_f64());
        }
        let us = q.took.as_micros() as u64;
        let db = &self.db;
        db.queries.fetch_add(1, Ordering::Relaxed);
        db.query_time.fetch_add(us, Ordering::Relaxed);
        if q.error.is_some() {
            db.errors.fetch_add(1, Ordering::Relaxed);
        }
        match q.route {
            Route::Cache => {
                db.cache_hits.fetch_add(1, Ordering::Relaxed);
            }
            Route::Engine => {
                db.engine_queries.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        tracing::debug!(
            target: "helios::query",
            query_id = %format_args!("{:016x}", fingerprint(q)),
            route,
            duration_ms = us as f64 / 1000.0,
            rows = q.rows,
            cache_hit = q.route == Route::Cache,
            status = q.error.unwrap_or("ok"),
            "query"
        );
        let slow = self.ops.slow_query_threshold();
        let redact = self.ops.audit.as_ref().is_none_or(|a| a.redacts());
        if !slow.is_zero() && q.took >= slow {
            metrics::counter!("helios_slow_queries_total").increment(1);
            let statement = if redact {
                super::audit::redact_literals(q.text)
            } else {
                q.text.to_string()
            };
            tracing::warn!(
                target: "helios::slow_query",
                query_id = %format_args!("{:016x}", fingerprint(q)),
                route,
                duration_ms = us as f64 / 1000.0,
                rows = q.rows,
                status = q.error.unwrap_or("ok"),
                statement,
                "slow query"
            );
        }
        if let Some(audit) = &self.ops.audit {
            let statement = if audit.redacts() {
                super::audit::redact_literals(q.text)
            } else {
                q.text.to_string()
            };
            audit.write(AuditRecord {
                user: self.user.clone(),
                database: self.database.clone(),
                client: self.client.clone(),
                application_name: self.application_name.clone(),
                fingerprint: fingerprint(q),
                statement,
                route,
                rows: q.rows,
                status: q.error.unwrap_or("ok").to_string(),
                duration_us: us,
            });
        }
    }
}

fn fingerprint(q: &QueryRecord<'_>) -> u64 {
    q.fingerprint
        .unwrap_or_else(|| helios_planner::cacheable::fingerprint(q.text))
}
