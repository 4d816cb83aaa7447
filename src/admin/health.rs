//! Health checks for orchestrators (Kubernetes probes, load balancers).
//!
//! Readiness fails when the upstream does not answer, or while Helios is
//! paused or draining. The LLM providers' state is reported but never fails
//! readiness: SQL keeps working without them. A rejected reload is reported
//! too; Helios keeps serving with the configuration it has.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

pub(super) async fn startup(State(st): State<AppState>) -> Response {
    if st.server.ops.is_serving() {
        Json(json!({"status": "started"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting"})),
        )
            .into_response()
    }
}

pub(super) async fn readiness(State(st): State<AppState>) -> Response {
    let server = &st.server;
    let mut ready = server.ops.is_serving();
    let mut checks = serde_json::Map::new();

    let phase = server.ops.lifecycle.phase();
    let lifecycle = if phase.draining.is_some() {
        ready = false;
        json!({"status": "fail", "state": "draining"})
    } else if phase.paused {
        ready = false;
        json!({"status": "fail", "state": "paused"})
    } else {
        json!({"status": "ok", "state": "running"})
    };
    checks.insert("lifecycle".into(), lifecycle);

    let config = match &*server.ops.last_reload.lock().expect("last reload") {
        Some(r) if r.error.is_some() => json!({
            "status": "ok",
            "last_reload": "rejected",
            "error": r.error,
            "note": "serving with the previous configuration",
        }),
        Some(_) => json!({"status": "ok", "last_reload": "applied"}),
        None => json!({"status": "ok"}),
    };
    checks.insert("config".into(), config);

    let upstream = match &server.pool {
        None => json!({"status": "ok", "target": "embedded demo database"}),
        Some(pool) => match server.upstream_ready().await {
            Ok(()) => json!({"status": "ok", "target": pool.target().describe()}),
            Err(e) => {
                ready = false;
                json!({"status": "fail", "target": pool.target().describe(), "error": e})
            }
        },
    };
    checks.insert("upstream".into(), upstream);

    if let Some(nl) = &server.nl {
        let providers: Vec<Value> = nl
            .translator
            .providers()
            .breaker_states()
            .into_iter()
            .map(|(name, state)| json!({"name": name, "breaker": state.as_str()}))
            .collect();
        let all_open = !providers.is_empty() && providers.iter().all(|p| p["breaker"] == "open");
        checks.insert(
            "nl".into(),
            json!({
                "status": if all_open { "degraded" } else { "ok" },
                "providers": providers,
            }),
        );
    }

    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": Value::Object(checks),
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
