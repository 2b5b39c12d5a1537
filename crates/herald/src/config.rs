//! Reading configuration into a checked `World` and a plan: the one path `check` and
//! `speaker` share, so both accept and reject exactly the same files, and the cluster's
//! objects go through the same validation.

use model::diag::has_errors;
use model::file::UnknownFields;
use model::{Diagnostic, NodePlan, ResourceRef, Severity, World};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

/// The outcome of reading and checking a set of files.
#[derive(Clone, Debug)]
pub struct Evaluated {
    /// Loading and validation diagnostics, in file and line order.
    pub diagnostics: Vec<Diagnostic>,
    /// `Some` exactly when no diagnostic is an error.
    pub world: Option<World>,
}

impl Evaluated {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }
}

/// Loads every file and validates what was read. Validation runs even when loading found
/// errors, so one run reports as many problems as possible. Only Services of `lb_class`
/// are announced (`None`: Services without a class); `unknown` says whether fields herald
/// does not know are errors (`herald check`) or warnings (the speaker).
pub fn evaluate(files: &[PathBuf], lb_class: Option<&str>, unknown: UnknownFields) -> Evaluated {
    guarded("reading the configuration", || {
        let mut loaded = model::file::load_files_with(files, unknown);
        loaded.resources.load_balancer_class = lb_class.map(str::to_owned);
        let checked = model::validate(&loaded.resources);
        let mut diagnostics = loaded.diagnostics;
        diagnostics.extend(checked.diagnostics);
        // Read top to bottom, as the user will fix them; files keep the order they were given.
        diagnostics.sort_by_key(|d| {
            let file = d
                .origin
                .file
                .as_ref()
                .and_then(|f| files.iter().position(|p| p == f));
            (file, d.origin.line, d.origin.document)
        });
        let world = if has_errors(&diagnostics) {
            None
        } else {
            checked.world
        };
        Evaluated { diagnostics, world }
    })
    .unwrap_or_else(|bug| Evaluated {
        diagnostics: vec![*bug],
        world: None,
    })
}

/// What the speaker needs from one read: every diagnostic, and the node's plan when the
/// configuration is valid.
pub struct Planned {
    pub diagnostics: Vec<Diagnostic>,
    pub plan: Option<NodePlan>,
    /// Other nodes are described by Node objects but this one is not: likely a wrong
    /// `--node`. Holds the described names.
    pub unknown_node: Option<Vec<String>>,
    /// The checked configuration the plan was made from, when it is valid, for the node
    /// checks the speaker runs: without its Services, which they do not read (in a large
    /// cluster they are most of a World, and the speaker keeps this one until the next).
    pub world: Option<std::sync::Arc<World>>,
}

/// The speaker's read of its files: unknown fields are warnings, so a configuration written
/// for a newer MetalLB still runs.
pub fn evaluate_and_plan(files: &[PathBuf], lb_class: Option<&str>, node: &str) -> Planned {
    let evaluated = evaluate(files, lb_class, UnknownFields::Warn);
    let unknown_node = evaluated.world.as_ref().and_then(|w| unknown_node(w, node));
    Planned {
        unknown_node,
        ..plan_world(evaluated.diagnostics, evaluated.world, node)
    }
}

/// The same for what the Kubernetes source read: its problems reading objects and the
/// validation of the rest, and the plan when nothing is an error.
pub fn plan_snapshot(snapshot: &k8s::Snapshot, node: &str) -> Planned {
    match guarded("checking the configuration", || snapshot.validate()) {
        Ok(checked) => plan_world(checked.diagnostics, checked.world, node),
        Err(bug) => plan_world(vec![*bug], None, node),
    }
}

fn plan_world(mut diagnostics: Vec<Diagnostic>, world: Option<World>, node: &str) -> Planned {
    let (plan, world) = match world {
        None => (None, None),
        Some(mut world) => match guarded("planning", || model::plan(&world, node)) {
            Ok(plan) => {
                world.services.clear();
                (Some(plan), Some(std::sync::Arc::new(world)))
            }
            Err(bug) => {
                diagnostics.push(*bug);
                (None, None)
            }
        },
    };
    Planned {
        diagnostics,
        plan,
        unknown_node: None,
        world,
    }
}

/// When the files describe nodes but not `node`, the names they do describe.
pub fn unknown_node(world: &World, node: &str) -> Option<Vec<String>> {
    (!world.nodes.is_empty() && !world.nodes.contains_key(node))
        .then(|| world.nodes.keys().cloned().collect())
}

/// A panic in the model is a bug, but it must not take a running speaker down with it: it
/// becomes an error diagnostic and the configuration is rejected like any other bad one.
fn guarded<T>(doing: &str, f: impl FnOnce() -> T) -> Result<T, Box<Diagnostic>> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Box::new(
            Diagnostic::error(
                ResourceRef::default(),
                "",
                format!("internal error while {doing}: {what}"),
            )
            .fix("this is a bug in herald; please report it with the files that caused it"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::world::Node;

    #[test]
    fn unreadable_file_is_rejected_with_an_error_naming_it() {
        let missing = PathBuf::from("/nonexistent/herald-test.yaml");
        let evaluated = evaluate(std::slice::from_ref(&missing), None, UnknownFields::Error);
        assert!(evaluated.world.is_none());
        assert!(evaluated.errors() >= 1);
        assert_eq!(
            evaluated.diagnostics[0].origin.file.as_ref(),
            Some(&missing)
        );
        let planned = evaluate_and_plan(&[missing], None, "n1");
        assert!(planned.plan.is_none());
    }

    #[test]
    fn panics_become_error_diagnostics() {
        let err = guarded("testing", || -> () { panic!("boom") }).expect_err("panicked");
        assert!(err.is_error());
        assert!(
            err.problem.contains("internal error while testing: boom"),
            "{err}"
        );
    }

    #[test]
    fn unknown_node_only_when_other_nodes_are_described() {
        let mut world = World::default();
        assert_eq!(unknown_node(&world, "n1"), None, "no Node objects at all");
        world.nodes.insert(
            "n2".into(),
            Node {
                name: "n2".into(),
                labels: Default::default(),
                excluded_from_load_balancers: false,
                network_unavailable: false,
                unschedulable: false,
                deleting: false,
                problems: Vec::new(),
            },
        );
        assert_eq!(unknown_node(&world, "n1"), Some(vec!["n2".to_owned()]));
        assert_eq!(unknown_node(&world, "n2"), None);
    }
}
