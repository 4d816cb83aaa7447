//! The admin HTTP endpoint (`[admin] listen`, 127.0.0.1:9930 by default),
//! on a thread and event loop of its own so that a slow scrape never
//! delays client traffic:
//!
//! | path | what |
//! |---|---|
//! | `GET /health/liveness` | 200 while the process answers |
//! | `GET /health/readiness` | 200 when Helios can serve (upstream reachable, not paused or draining), else 503; JSON with each check |
//! | `GET /health/startup` | 200 once the listeners are bound |
//! | `GET /metrics` | Prometheus text |
//! | `POST /admin/reload` | re-read the configuration (bearer token) |
//! | `POST /admin/cache/clear` | empty the result cache (bearer token) |
//! | `GET /admin/config` | the running configuration, secrets redacted (bearer token) |

mod health;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::server::Server;

#[derive(Clone)]
struct AppState {
    server: Arc<Server>,
    metrics: Option<PrometheusHandle>,
}

/// Bind the admin listener now (so a taken port fails the start), and
/// serve it on its own thread until `stop` turns true.
pub fn start(
    server: Arc<Server>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<(SocketAddr, std::thread::JoinHandle<()>)>> {
    let cfg = &server.config.admin;
    if !cfg.enabled {
        return Ok(None);
    }
    let listener = std::net::TcpListener::bind(cfg.listen).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {} for the admin endpoint: {e} (set [admin] listen, or enabled = false)",
            cfg.listen
        )
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let state = AppState {
        metrics: crate::ops::metrics::install(),
        server,
    };
    let thread = std::thread::Builder::new()
        .name("helios-admin".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("admin event loop");
            rt.block_on(serve(listener, state, stop));
        })?;
    Ok(Some((addr, thread)))
}

async fn serve(
    listener: std::net::TcpListener,
    state: AppState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "admin endpoint failed");
            return;
        }
    };
    // Histograms are summarised on a timer (the exporter's HTTP listener
    // would do it; Helios serves the text itself).
    if let Some(handle) = state.metrics.clone() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let app = router(state);
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "admin endpoint failed");
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/health/liveness",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/health/startup", get(health::startup))
        .route("/health/readiness", get(health::readiness))
        .route("/metrics", get(metrics))
        .route("/admin/reload", post(reload))
        .route("/admin/cache/clear", post(cache_clear))
        .route("/admin/config", get(config))
        .with_state(state)
}

async fn metrics(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            crate::ops::metrics::render(&st.server, handle),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process\n",
        )
            .into_response(),
    }
}

/// `Authorization: Bearer <admin.token>`, compared in constant time:
/// `Some` is the refusal.
fn refused(server: &Server, headers: &HeaderMap) -> Option<Response> {
    let config = server.config_now();
    let Some(token) = config.admin.token.as_deref() else {
        return Some(unauthorized(
            "no admin.token is configured; admin actions over HTTP are off",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    (!same).then(|| unauthorized("missing or wrong bearer token"))
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": why})),
    )
        .into_response()
}

async fn reload(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&st.server, &headers) {
        return r;
    }
    let server = st.server.clone();
    // A reload reads a file: off the event loop.
    let result = tokio::task::spawn_blocking(move || server.reload())
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match result {
        Ok(report) => Json(json!({
            "status": "reloaded",
            "applied": report.applied,
            "restart_needed": report.restart_needed,
        }))
        .into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "rejected", "error": e, "note": "the running configuration is unchanged"})),
        )
            .into_response(),
    }
}

async fn cache_clear(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&st.server, &headers) {
        return r;
    }
    match &st.server.cache {
        Some(cache) => {
            cache.store.clear();
            metrics::counter!("helios_cache_invalidations_total", "cause" => "clear").increment(1);
            Json(json!({"status": "cleared"})).into_response()
        }
        None => (
            StatusCode::CONFLICT,
            Json(json!({"error": "the result cache is off"})),
        )
            .into_response(),
    }
}

async fn config(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&st.server, &headers) {
        return r;
    }
    (
        [(header::CONTENT_TYPE, "application/toml")],
        st.server.config_now().to_redacted_toml(),
    )
        .into_response()
}
