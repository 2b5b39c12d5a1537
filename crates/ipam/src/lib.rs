//! herald's address allocation: which addresses of the IPAddressPools each LoadBalancer
//! Service gets, with MetalLB's controller's rules.
//!
//! Owns the [`Allocator`] (what each Service holds, and MetalLB's rules for pools, priorities,
//! requested addresses, families and sharing) and [`converge()`], which decides one Service's
//! addresses the way MetalLB's controller does and says what to write and which Events to
//! raise. Pure like `model::plan()`: no I/O, no clock, no randomness; the same inputs in the
//! same order give the same outputs.
//!
//! Must not touch: the Kubernetes API (the caller reads Services into [`Request`]s and writes
//! the [`Outcome`] back), configuration checking (pools come from `model::validate`), and
//! announcing.

mod allocator;
mod converge;
mod explain;
pub mod request;
mod space;

pub use allocator::{Allocation, Allocator, AssignError, PoolCounters, quoted};
pub use converge::{Event, EventType, Outcome, converge, register};
pub use request::{FamilyPolicy, Port, Request, Stack, annotations};
pub use space::is_buggy;
