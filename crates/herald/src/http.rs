//! The speaker's HTTP endpoints: `/metrics`, `/healthz` and `/readyz` on `--metrics-addr`
//! ([`router`]), `/status` on `--status-addr` ([`status_router`], loopback by default: it
//! names every Service, peer and configuration problem).
//!
//! - `/metrics`: OpenMetrics text: `herald_*`, and MetalLB's names and labels.
//! - `/healthz`: 200 while the process answers and every supervised task runs (the Layer 2
//!   responder's, and the speaker's own: `layer2_reconcile`, `bgp_sessions`,
//!   `bgp_session_log`, `bfd_sessions`, `kubernetes_events`); 503 naming the task while one
//!   that ended unexpectedly waits to be restarted. Configuration trouble does not fail it,
//!   so a kubelet never restarts a speaker that is keeping the last good plan.
//! - `/readyz`: 503 until a plan has been made from a valid configuration, then 200.
//! - `/status`: JSON `{node, ready, config: {state, files, generation, last_reload,
//!   last_success, last_errors, warnings}, plan, node_checks: {checked_at, trigger, failed,
//!   warnings, passed, problems: [{check, subject, status, message, fix}]}, announcing}`
//!   (`node_checks` are `herald doctor`'s node checks, run at start and on link changes); `state` is `pending`, `loaded`,
//!   `stale` (running an older plan, the newest files were rejected) or `invalid` (nothing
//!   valid yet). `announcing` is what the actuators do with the plan: `layer2: {addresses:
//!   [{ip, service, interfaces, unmatched}], interfaces: {NAME: {listening, error,
//!   frames_read}}, error}` (an address with no interfaces is not answered on this node, and
//!   `unmatched` says which named interfaces it lacks) and `bgp: [{peer, address, state,
//!   not_running, routes_planned, routes_advertised, routes_pending, withheld: {PREFIX:
//!   reason}, last_error, ...}]`.

use crate::actuators::Announcing;
use crate::state::{ConfigStatus, Shared};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use model::NodePlan;
use serde::Serialize;
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(shared)
}

/// `/status`, on its own listener.
pub fn status_router(shared: Arc<Shared>) -> Router {
    let router = Router::new().route("/status", get(status));
    // Test builds only: the route that makes a task panic.
    #[cfg(feature = "fault-injection")]
    let router = crate::faults::routes(router);
    router.fallback(status_not_found).with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match shared.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

/// Alive as long as the process answers and every supervised task runs (one that ended
/// shows here until it is restarted); configuration problems show in `/readyz`.
async fn healthz(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    let problems = shared
        .actuators
        .as_ref()
        .map(|a| a.problems())
        .unwrap_or_default();
    if problems.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {}\n", problems.join("; ")),
        )
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    if shared.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no valid configuration has been read yet\n",
        )
    }
}

#[derive(Serialize)]
struct StatusDoc<'a> {
    node: &'a str,
    ready: bool,
    config: &'a ConfigStatus,
    /// The running plan: the last one made from a valid configuration.
    plan: Option<&'a NodePlan>,
    /// The node checks of `herald doctor`, run at start and on link changes.
    node_checks: Option<&'a crate::state::NodeChecks>,
    /// What is being done about the plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    announcing: Option<Announcing>,
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let body = {
        let state = shared.read();
        serde_json::to_vec_pretty(&StatusDoc {
            node: &shared.node,
            ready: state.plan.is_some(),
            config: &state.config,
            plan: state.plan.as_deref(),
            node_checks: state.node_checks.as_ref(),
            announcing: shared.actuators.as_ref().map(|a| a.status()),
        })
    };
    match body {
        Ok(mut body) => {
            body.push(b'\n');
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "encoding /status failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding status failed\n",
            )
                .into_response()
        }
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "not found; herald serves /metrics, /healthz and /readyz here, and /status on --status-addr\n",
    )
}

async fn status_not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "not found; herald serves /status here, and /metrics, /healthz and /readyz on --metrics-addr\n",
    )
}
