//! What the speaker knows right now: the running plan and the state of its configuration.
//!
//! Written only by the reload loop, read by the HTTP handlers. The plan kept here is always
//! the last one made from a valid configuration; a rejected configuration never replaces it.

use crate::actuators::Actuators;
use crate::config::Planned;
use crate::metrics::{Metrics, ReloadResult};
use model::{Diagnostic, NodePlan, Severity};
use serde::{Serialize, Serializer};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// How the running plan relates to the configuration on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigState {
    /// Not read yet.
    Pending,
    /// The last read was valid and the running plan comes from it.
    Loaded,
    /// The last read was rejected; the running plan comes from an earlier valid one.
    Stale,
    /// No valid configuration has been read yet; nothing is planned.
    Invalid,
}

/// Where the configuration is read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Source {
    Files { files: Vec<PathBuf> },
    Kubernetes { namespace: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigStatus {
    pub state: ConfigState,
    #[serde(flatten)]
    pub source: Source,
    /// How many valid configurations have been accepted.
    pub generation: u64,
    /// When the configuration was last read, valid or not.
    pub last_reload: Option<Timestamp>,
    /// When a valid configuration was last accepted.
    pub last_success: Option<Timestamp>,
    /// The errors of the last rejected read; empty once a valid one is accepted.
    pub last_errors: Vec<Diagnostic>,
    /// The warnings of the running configuration.
    pub warnings: Vec<Diagnostic>,
}

pub struct State {
    pub plan: Option<Arc<NodePlan>>,
    pub config: ConfigStatus,
    /// The last run of the node checks (`herald doctor`'s), once a configuration was valid.
    pub node_checks: Option<NodeChecks>,
}

/// The node checks as `/status` shows them.
#[derive(Clone, Debug, Serialize)]
pub struct NodeChecks {
    pub checked_at: Timestamp,
    /// Why they ran: `start`, `configuration` or `link change`.
    pub trigger: &'static str,
    pub failed: usize,
    pub warnings: usize,
    /// Only the checks that fail or warn; passes are counted.
    pub problems: Vec<crate::doctor::check::Check>,
    pub passed: usize,
}

/// What happened when a read was applied, for the caller to log.
pub enum Applied {
    Accepted {
        plan: Arc<NodePlan>,
        /// The plan differs from the one running before (always true for the first).
        changed: bool,
        generation: u64,
    },
    Rejected {
        /// Whether an earlier plan keeps running.
        kept_plan: bool,
    },
}

/// The state shared between the reload loop and the HTTP handlers.
pub struct Shared {
    pub node: String,
    pub metrics: Metrics,
    /// What makes the plan true; `None` where only the plan is of interest (tests).
    pub actuators: Option<Arc<Actuators>>,
    state: RwLock<State>,
}

impl Shared {
    /// `metrics` gets the actuators' collectors.
    pub fn new(
        node: String,
        source: Source,
        mut metrics: Metrics,
        actuators: Option<Arc<Actuators>>,
    ) -> Self {
        for collector in actuators.iter().flat_map(Actuators::collectors) {
            metrics.register(collector);
        }
        Self {
            node,
            metrics,
            actuators,
            state: RwLock::new(State {
                plan: None,
                node_checks: None,
                config: ConfigStatus {
                    state: ConfigState::Pending,
                    source,
                    generation: 0,
                    last_reload: None,
                    last_success: None,
                    last_errors: Vec::new(),
                    warnings: Vec::new(),
                },
            }),
        }
    }

    /// A poisoned lock only means a panic elsewhere mid-update; the data is still the last
    /// consistent value we wrote, and serving it beats taking the speaker down.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a run of the node checks; returns whether what fails or warns changed.
    pub fn set_node_checks(
        &self,
        checks: Vec<crate::doctor::check::Check>,
        trigger: &'static str,
        now: SystemTime,
    ) -> bool {
        use crate::doctor::check::Status;
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        let (failed, warnings, passed) = (
            count(Status::Fail),
            count(Status::Warn),
            count(Status::Pass),
        );
        let problems: Vec<_> = checks
            .into_iter()
            .filter(|c| matches!(c.status, Status::Fail | Status::Warn))
            .collect();
        self.metrics.set_node_checks(failed, warnings);
        let mut state = self.write();
        let changed = state.node_checks.as_ref().map(|n| &n.problems) != Some(&problems);
        state.node_checks = Some(NodeChecks {
            checked_at: Timestamp(now),
            trigger,
            failed,
            warnings,
            problems,
            passed,
        });
        changed
    }

    pub fn is_ready(&self) -> bool {
        self.read().plan.is_some()
    }

    /// Takes the plan of a valid configuration, or keeps the last good plan when the
    /// configuration was rejected; updates the metrics to match.
    pub fn apply(&self, planned: Planned, now: SystemTime) -> Applied {
        let (errors, warnings): (Vec<_>, Vec<_>) = planned
            .diagnostics
            .into_iter()
            .filter(|d| d.severity != Severity::Note)
            .partition(Diagnostic::is_error);
        let mut state = self.write();
        state.config.last_reload = Some(Timestamp(now));
        match planned.plan {
            Some(plan) => {
                let plan = Arc::new(plan);
                let changed = state.plan.as_deref() != Some(&*plan);
                state.plan = Some(plan.clone());
                let config = &mut state.config;
                config.state = ConfigState::Loaded;
                config.generation += 1;
                config.last_success = Some(Timestamp(now));
                config.last_errors = Vec::new();
                config.warnings = warnings;
                let generation = config.generation;
                drop(state);
                self.metrics.reload(ReloadResult::Success);
                self.metrics.set_config_state(true, false);
                self.metrics.set_plan(&plan);
                Applied::Accepted {
                    plan,
                    changed,
                    generation,
                }
            }
            None => {
                let kept_plan = state.plan.is_some();
                state.config.state = if kept_plan {
                    ConfigState::Stale
                } else {
                    ConfigState::Invalid
                };
                state.config.last_errors = errors;
                drop(state);
                self.metrics.reload(ReloadResult::Failure);
                self.metrics.set_config_state(false, kept_plan);
                Applied::Rejected { kept_plan }
            }
        }
    }
}

/// A wall-clock time, serialized as RFC 3339 in UTC with milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&rfc3339(self.0))
    }
}

/// Formats without a date crate: days since the epoch to a civil date (Howard Hinnant's
/// `civil_from_days`). Times before 1970 print as the epoch; herald never meets them.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);

    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::ResourceRef;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        // A leap day.
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(at(4_102_444_799)), "2099-12-31T23:59:59.000Z");
    }

    fn valid() -> Planned {
        Planned {
            diagnostics: vec![Diagnostic::warning(
                ResourceRef::default(),
                "spec",
                "does nothing",
            )],
            plan: Some(NodePlan {
                node: "n1".into(),
                ..Default::default()
            }),
            unknown_node: None,
            world: None,
        }
    }

    fn invalid() -> Planned {
        Planned {
            diagnostics: vec![
                Diagnostic::error(ResourceRef::default(), "spec", "bad"),
                Diagnostic::note(ResourceRef::default(), "", "ignored kind"),
            ],
            plan: None,
            unknown_node: None,
            world: None,
        }
    }

    #[test]
    fn first_invalid_config_leaves_speaker_unready() {
        let shared = Shared::new(
            "n1".into(),
            Source::Files { files: vec![] },
            Metrics::new(),
            None,
        );
        assert!(!shared.is_ready());
        assert_eq!(shared.read().config.state, ConfigState::Pending);
        let applied = shared.apply(invalid(), at(1));
        assert!(matches!(applied, Applied::Rejected { kept_plan: false }));
        let state = shared.read();
        assert_eq!(state.config.state, ConfigState::Invalid);
        assert_eq!(state.config.last_errors.len(), 1, "notes are not errors");
        assert!(state.plan.is_none());
    }

    #[test]
    fn rejected_config_keeps_last_good_plan_and_marks_it_stale() {
        let shared = Shared::new(
            "n1".into(),
            Source::Files { files: vec![] },
            Metrics::new(),
            None,
        );
        let Applied::Accepted {
            changed,
            generation,
            ..
        } = shared.apply(valid(), at(1))
        else {
            panic!("rejected a valid config")
        };
        assert!(changed);
        assert_eq!(generation, 1);
        assert!(shared.is_ready());
        assert_eq!(shared.read().config.warnings.len(), 1);

        let applied = shared.apply(invalid(), at(2));
        assert!(matches!(applied, Applied::Rejected { kept_plan: true }));
        {
            let state = shared.read();
            assert_eq!(state.config.state, ConfigState::Stale);
            assert_eq!(state.plan.as_ref().map(|p| p.node.as_str()), Some("n1"));
            assert_eq!(state.config.last_reload, Some(Timestamp(at(2))));
            assert_eq!(state.config.last_success, Some(Timestamp(at(1))));
        }
        let metrics = shared.metrics.encode().expect("encodes");
        assert!(metrics.contains("herald_config_stale_bool 1"), "{metrics}");
        assert!(metrics.contains("herald_config_loaded_bool 0"), "{metrics}");

        let Applied::Accepted {
            changed,
            generation,
            ..
        } = shared.apply(valid(), at(3))
        else {
            panic!("rejected a valid config")
        };
        assert!(!changed, "same world, same plan");
        assert_eq!(generation, 2);
        let state = shared.read();
        assert_eq!(state.config.state, ConfigState::Loaded);
        assert!(state.config.last_errors.is_empty());
        let metrics = shared.metrics.encode().expect("encodes");
        assert!(metrics.contains("herald_config_stale_bool 0"), "{metrics}");
        assert!(
            metrics.contains("herald_config_reloads_total{result=\"success\"} 2"),
            "{metrics}"
        );
    }
}
