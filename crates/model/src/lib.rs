//! herald's model of what should be announced where.
//!
//! Owns the `metallb.io` resource types ([`crd`]), reading them from YAML files ([`file`]),
//! checking them ([`validate()`]) into an immutable [`World`], and the pure [`plan()`] that says
//! what one node announces. Knows nothing of sockets, the Kubernetes API or time.

pub mod community;
pub mod crd;
pub mod diag;
pub mod file;
pub mod net;
pub mod plan;
pub mod resources;
pub mod selector;
pub mod status;
pub mod validate;
pub mod world;

pub use diag::{Diagnostic, Origin, ResourceRef, Severity};
pub use plan::{NodePlan, plan};
pub use resources::{EndpointsMode, Resources, Sourced};
pub use validate::{Checked, validate};
pub use world::World;
