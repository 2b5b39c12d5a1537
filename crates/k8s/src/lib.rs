//! herald's Kubernetes source: the cluster read into the model's [`model::Resources`], and
//! Events written back.
//!
//! Owns the watches ([`Source`]) over the `metallb.io` kinds in herald's namespace, Services
//! and EndpointSlices in every namespace, this node's Node, and the Secrets BGPPeers name for
//! their passwords; turning what they deliver into one debounced [`Snapshot`] of the same
//! `Resources` file mode reads; counting what arrived ([`Counters`]); and writing Events
//! ([`EventRecorder`]) about invalid configuration objects and about Services this node starts
//! or stops announcing.
//!
//! It keeps only what the model reads of each object, once, shared with every snapshot;
//! Services that are not LoadBalancers of herald's class are dropped when read, and a change
//! to them or their EndpointSlices publishes nothing. Watches retry every second at most
//! ([`WATCH_BACKOFF_MAX`]): give [`Source::start`] a client whose configuration has
//! `default_retry` off, or kube's own retry of a refused request (which grows to minutes)
//! comes first.
//!
//! Must not touch: validation rules and what is announced where (that is `model`'s:
//! `validate` and `plan` stay pure), Leases (that is `election`'s), sockets and routing
//! protocols, and the binary's wiring, logging setup and Prometheus registry. It writes nothing
//! to the API server but Events, MetalLB's status objects ([`ServiceStatusWriter`]) and, for
//! `herald controller`, what allocation decides ([`allocation`]).
//!
//! # How the binary uses it
//!
//! ```no_run
//! use k8s::{EventRecorder, RecorderConfig, ServiceAnnouncement, Source, SourceConfig};
//! use std::collections::BTreeMap;
//!
//! # async fn speaker(client: kube::Client) {
//! let config = SourceConfig::new("metallb-system", "node-a");
//! let (source, mut snapshots) = Source::start(client.clone(), config);
//! let metrics = source.metrics(); // for the /metrics collector: metrics.counters()
//! let mut events = EventRecorder::new(client, RecorderConfig::new("node-a"));
//! // `None` until every watch has listed once; then each change, debounced.
//! while snapshots.changed().await.is_ok() {
//!     let Some(snapshot) = snapshots.borrow_and_update().clone() else { continue };
//!     let checked = snapshot.validate();
//!     // Errors here are the API server's; the Event is tried again next time.
//!     let _ = events.configuration(&snapshot, &checked.diagnostics).await;
//!     let Some(world) = checked.world else {
//!         continue; // invalid: keep the last valid plan, report the configuration stale
//!     };
//!     let plan = model::plan(&world, "node-a");
//!     // ...actuate the plan, then say what this node now announces:
//!     let announced: BTreeMap<_, ServiceAnnouncement> = BTreeMap::new();
//!     let _ = events.services(&snapshot, &announced).await;
//!     # let _ = (plan, metrics.counters());
//! }
//! # }
//! ```

pub mod allocation;
mod backoff;
mod debounce;
mod error;
mod events;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod kinds;
mod read;
mod snapshot;
mod source;
mod status;
mod store;

pub use error::Error;
pub use events::{EventRecorder, RecorderConfig, ServiceAnnouncement, reasons as event_reasons};
pub use snapshot::Snapshot;
#[cfg(feature = "fault-injection")]
pub use source::FaultHandle;
pub use source::{Counters, Metrics, Source, SourceConfig, WATCH_BACKOFF_MAX};
pub use status::{Announced, ServiceStatusWriter};
