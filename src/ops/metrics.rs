//! The Prometheus recorder behind `GET /metrics`.
//!
//! Counters and histograms are recorded where things happen (`metrics::`
//! macros all over the workspace); gauges that describe the present
//! (clients by state, pool connections) are set from the live state just
//! before each scrape, so they can never drift.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::ClientState;
use crate::server::Server;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Histogram buckets for durations in seconds: 0.5 ms to 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Install the process-wide recorder (once; later calls return the same
/// handle). `None` if another recorder was installed first (tests that
/// build several servers in one process share it).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// Help texts (Prometheus `# HELP` lines); the README lists the same.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "helios_clients",
        "Client connections by state (startup, waiting, idle, idle_in_transaction, active)"
    );
    describe_counter!(
        "helios_client_connections_total",
        "Client connections accepted"
    );
    describe_counter!(
        "helios_client_bytes_received_total",
        Unit::Bytes,
        "Bytes received from clients"
    );
    describe_counter!(
        "helios_client_bytes_sent_total",
        Unit::Bytes,
        "Bytes sent to clients"
    );
    describe_gauge!(
        "helios_pool_connections",
        "Upstream connections by database, user and state (active, idle)"
    );
    describe_gauge!(
        "helios_pool_waiting",
        "Clients waiting for an upstream connection, by database and user"
    );
    describe_histogram!(
        "helios_pool_wait_seconds",
        Unit::Seconds,
        "Time clients waited for an upstream connection"
    );
    describe_counter!("helios_queries_total", "Statements answered, by route (upstream, cache, engine, nl, admin, embedded) and status (ok, error)");
    describe_histogram!(
        "helios_query_duration_seconds",
        Unit::Seconds,
        "Statement duration as the client sees it, by route"
    );
    describe_counter!(
        "helios_slow_queries_total",
        "Statements over log.slow_query_threshold"
    );
    describe_counter!("helios_cache_hits_total", "Result cache hits");
    describe_counter!("helios_cache_misses_total", "Result cache misses");
    describe_counter!("helios_cache_fills_total", "Results stored in the cache");
    describe_counter!(
        "helios_cache_fills_refused_total",
        "Results not stored, by reason"
    );
    describe_gauge!("helios_cache_entries", "Results held in the cache");
    describe_gauge!("helios_cache_bytes", Unit::Bytes, "Bytes held in the cache");
    describe_counter!(
        "helios_cache_evictions_total",
        "Cache entries removed, by cause (size, ttl, explicit)"
    );
    describe_counter!(
        "helios_cache_invalidations_total",
        "Cache invalidations, by cause (write, ddl, notify, notify_ddl, listener_lost, clear)"
    );
    describe_counter!(
        "helios_nl_requests_total",
        "Requests to LLM providers, by provider and status"
    );
    describe_histogram!(
        "helios_nl_request_duration_seconds",
        Unit::Seconds,
        "LLM request latency, by provider"
    );
    describe_counter!(
        "helios_nl_embed_requests_total",
        "Embedding requests to LLM providers, by provider and status"
    );
    describe_counter!(
        "helios_nl_tokens_total",
        "LLM tokens, by provider and direction (in, out)"
    );
    describe_counter!(
        "helios_nl_translations_total",
        "Natural-language translations, by outcome"
    );
    describe_histogram!(
        "helios_nl_translate_seconds",
        Unit::Seconds,
        "Time to translate a question"
    );
    describe_gauge!(
        "helios_nl_breaker_state",
        "LLM provider circuit breaker: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!(
        "helios_advisor_analyses_total",
        "Advisor analyses, by kind (advise, advise_analyze, workload, notices)"
    );
    describe_counter!(
        "helios_engine_queries_total",
        "Statements routed to the DataFusion engine, by route and status"
    );
    describe_gauge!("helios_paused", "1 while HELIOS PAUSE holds new requests");
    describe_gauge!("helios_draining", "1 while shutting down");
    describe_gauge!(
        "helios_upstream_up",
        "1 when the last readiness probe reached the upstream"
    );
    describe_gauge!(
        "helios_upstream_breaker_state",
        "Upstream circuit breaker: 0 closed, 1 half-open, 2 open (new sessions fail fast with 08006)"
    );
    describe_counter!(
        "helios_limit_refusals_total",
        "Requests refused or ended by a limit, by limit (user_queries, address_queries, connections, auth_failures, require_tls, query_timeout, idle_in_transaction_timeout)"
    );
    describe_counter!(
        "helios_config_reloads_total",
        "Configuration reloads, by status (ok, error)"
    );
    describe_counter!(
        "helios_audit_records_total",
        "Records written to the audit log"
    );
    describe_counter!(
        "helios_audit_dropped_total",
        "Audit records dropped because the writer fell behind"
    );
    describe_gauge!(
        "helios_uptime_seconds",
        Unit::Seconds,
        "Seconds since Helios started"
    );
}

/// Pool label sets published before, so that ones gone are set to 0.
static POOL_LABELS: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);

/// Set the gauges that describe now, then render everything.
pub fn render(server: &Server, handle: &PrometheusHandle) -> String {
    let ops = &server.ops;
    let mut by_state = [0u64; 5];
    for c in ops.clients.snapshot() {
        by_state[c.state() as usize] += 1;
    }
    for (state, n) in [
        (ClientState::Startup, "startup"),
        (ClientState::Waiting, "waiting"),
        (ClientState::Idle, "idle"),
        (ClientState::IdleInTransaction, "idle_in_transaction"),
        (ClientState::Active, "active"),
    ] {
        metrics::gauge!("helios_clients", "state" => n).set(by_state[state as usize] as f64);
    }
    if let Some(pool) = &server.pool {
        let mut seen = HashSet::new();
        for s in pool.shard_stats() {
            let (db, user) = (s.key.database.clone(), s.key.user.clone());
            metrics::gauge!("helios_pool_connections", "database" => db.clone(), "user" => user.clone(), "state" => "active").set(s.in_use as f64);
            metrics::gauge!("helios_pool_connections", "database" => db.clone(), "user" => user.clone(), "state" => "idle").set(s.idle as f64);
            metrics::gauge!("helios_pool_waiting", "database" => db.clone(), "user" => user.clone()).set(s.waiting as f64);
            seen.insert((db, user));
        }
        let mut prev = POOL_LABELS.lock().expect("pool labels");
        for (db, user) in prev.take().unwrap_or_default().difference(&seen) {
            for state in ["active", "idle"] {
                metrics::gauge!("helios_pool_connections", "database" => db.clone(), "user" => user.clone(), "state" => state).set(0.0);
            }
            metrics::gauge!("helios_pool_waiting", "database" => db.clone(), "user" => user.clone()).set(0.0);
        }
        *prev = Some(seen);
        metrics::gauge!("helios_upstream_breaker_state").set(pool.breaker_state().as_gauge());
    }
    let phase = ops.lifecycle.phase();
    metrics::gauge!("helios_paused").set(f64::from(u8::from(phase.paused)));
    metrics::gauge!("helios_draining").set(f64::from(u8::from(phase.draining.is_some())));
    metrics::gauge!("helios_uptime_seconds").set(ops.started.elapsed().as_secs_f64());
    handle.render()
}
