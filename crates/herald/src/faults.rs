//! Test-only fault injection, compiled only with the `fault-injection` feature: testkit's
//! build of herald has it (for the end-to-end tests that prove supervision and the orderly
//! shutdown); the released binary (Containerfile, `cargo build --release`) never does.
//!
//! One route on `--status-addr`, `POST /faults/panic/{task}`, makes a running task panic
//! once, as a bug would:
//! - `bgp_peer:NAME`: the BGP session task of the BGPPeer NAME (restarted by the session
//!   watcher, counted in `herald_task_restarts_total{task="bgp_peer:NAME"}`);
//! - `interface:NAME`: the Layer 2 task of interface NAME (restarted by the responder,
//!   counted in `herald_task_restarts_total{task="interface:NAME"}`);
//! - `kubernetes_watches`: the Kubernetes source's watches (not restarted: the source fails
//!   and herald shuts down in order, as after any source failure).
//!
//! 200 when the fault was injected, 404 when there is no such task.

use crate::state::Shared;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use std::sync::{Arc, Mutex, PoisonError};
use tracing::warn;

/// The Kubernetes source's handle, when herald runs in Kubernetes mode.
static WATCHES: Mutex<Option<k8s::FaultHandle>> = Mutex::new(None);

/// Makes the Kubernetes source's watches reachable by the route.
pub fn register_watches(handle: k8s::FaultHandle) {
    *WATCHES.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
}

/// Says, once at start, that this binary takes faults: it must never run in production.
pub fn announce() {
    warn!(
        "this herald is built with the fault-injection feature (for tests only): POST /faults/panic/TASK on --status-addr makes a task panic"
    );
}

/// Adds the route to the `/status` router.
pub fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router.route("/faults/panic/{task}", post(panic_task))
}

async fn panic_task(
    State(shared): State<Arc<Shared>>,
    Path(task): Path<String>,
) -> (StatusCode, String) {
    let injected = match task.split_once(':') {
        Some(("bgp_peer", peer)) => shared
            .actuators
            .as_ref()
            .is_some_and(|a| a.panic_bgp_peer(peer)),
        Some(("interface", name)) => shared
            .actuators
            .as_ref()
            .is_some_and(|a| a.fail_interface(name)),
        None if task == "kubernetes_watches" => {
            match WATCHES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                Some(h) => {
                    h.panic_watches();
                    true
                }
                None => false,
            }
        }
        _ => false,
    };
    if injected {
        warn!(task = %task, "fault injection: making the task panic (a test asked)");
        (StatusCode::OK, format!("task {task} panics\n"))
    } else {
        (StatusCode::NOT_FOUND, format!("no task {task} to panic\n"))
    }
}
