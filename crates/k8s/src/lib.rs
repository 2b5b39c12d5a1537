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
//! Must not touch: validation rules and what is announced where (that is `model`'s:
//! `validate` and `plan` stay pure), Leases (that is `election`'s), sockets and routing
//! protocols, and the binary's wiring, logging setup and Prometheus registry. It writes nothing
//! to the API server but Events.

mod debounce;
mod error;
mod events;
mod kinds;
mod read;
mod snapshot;
mod source;
mod store;

pub use error::Error;
pub use events::{EventRecorder, RecorderConfig, ServiceAnnouncement, reasons as event_reasons};
pub use snapshot::Snapshot;
pub use source::{Counters, Metrics, Source, SourceConfig};
