//! Supervision of the speaker's long-running tasks: none may end silently.
//!
//! A task started with [`Tasks::spawn`] is watched: when it ends while it should be running
//! (a panic, or a return), that is logged at error, counted in
//! `herald_task_restarts_total{task}`, shown by `/healthz` (through [`Tasks::problems`])
//! until the task runs again, and the task is started again after a backoff that doubles
//! with each quick failure. Tasks are level-based (they read what they act on from channels
//! that outlive them), so a restarted task simply takes up where the state is.
//!
//! Tasks supervised elsewhere are counted under the same names: the BGP speaker's peer tasks
//! report their restarts ([`Tasks::reporter`]), and the Layer 2 responder's own tasks (an
//! interface's, the link monitor) are read from it ([`Tasks::follow`]), so one metric and one
//! `/healthz` cover them all.
//!
//! Dropping the [`Tasks`] (or calling [`Tasks::stop`]) ends every task it holds; an end
//! asked for is not a failure.

use crate::metrics::{counter_family, gauge_family};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinError};
use tokio::time::Instant;
use tracing::error;

/// The first wait before a restart, doubled after each failure that follows a short run.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait before a restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A task that ran this long before failing is restarted after the first backoff again.
const STEADY: Duration = Duration::from_secs(60);

/// How one task is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskHealth {
    /// Running (false between an unexpected end and the restart that follows, and for
    /// good after the end of a task that is not restarted).
    pub up: bool,
    /// Times it ended unexpectedly.
    pub restarts: u64,
    /// Why it last ended.
    pub last_failure: Option<String>,
}

/// The supervised tasks of one speaker. Cheap to clone; the clones share the tasks.
#[derive(Clone, Debug)]
pub struct Tasks(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    health: Mutex<BTreeMap<String, TaskHealth>>,
    /// Every supervisor task by its task's name, aborted on stop.
    handles: Mutex<BTreeMap<String, AbortHandle>>,
    /// Bumped on every change of `health`, so tests (and nothing else) can wait for one.
    changed: watch::Sender<u64>,
    first_backoff: Duration,
    followed: Mutex<Vec<Followed>>,
}

/// The health of tasks supervised elsewhere, read each time health is asked for.
struct Followed(Box<dyn Fn() -> Vec<(String, TaskHealth)> + Send + Sync>);

impl std::fmt::Debug for Followed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Followed")
    }
}

impl Default for Tasks {
    fn default() -> Self {
        Self::with_backoff(FIRST_BACKOFF)
    }
}

impl Inner {
    fn update(&self, name: &str, f: impl FnOnce(&mut TaskHealth)) {
        f(lock(&self.health).entry(name.to_owned()).or_default());
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Updates task `name` of the supervisor's `Tasks`; false once they are gone.
fn update(tasks: &Weak<Inner>, name: &str, f: impl FnOnce(&mut TaskHealth)) -> bool {
    match tasks.upgrade() {
        Some(inner) => {
            inner.update(name, f);
            true
        }
        None => false,
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for h in self
            .handles
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            h.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a task ended: its panic message, or that it returned.
fn why(result: Result<(), JoinError>) -> String {
    match result {
        Ok(()) => "it returned while it should keep running".to_owned(),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            format!("it panicked: {message}")
        }
        Err(e) => format!("it was cancelled: {e}"),
    }
}

impl Tasks {
    pub fn with_backoff(first_backoff: Duration) -> Tasks {
        Tasks(Arc::new(Inner {
            health: Mutex::new(BTreeMap::new()),
            handles: Mutex::new(BTreeMap::new()),
            changed: watch::channel(0).0,
            first_backoff,
            followed: Mutex::new(Vec::new()),
        }))
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut TaskHealth)) {
        self.0.update(name, f);
    }

    /// Runs `make()` as task `name`, and again (after a backoff) whenever it ends. Call
    /// inside a tokio runtime.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, mut make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        // Weak: the supervisors end with the last `Tasks`, which aborts them.
        let tasks = Arc::downgrade(&self.0);
        let first_backoff = self.0.first_backoff;
        self.update(&name, |h| h.up = true);
        let key = name.clone();
        let supervisor = tokio::spawn(async move {
            let mut backoff = first_backoff;
            loop {
                let started = Instant::now();
                let task = tokio::spawn(make());
                // Aborting the supervisor (stop) must end the task too.
                let guard = AbortOnDrop(task.abort_handle());
                let result = task.await;
                drop(guard);
                let why = why(result);
                if started.elapsed() >= STEADY {
                    backoff = first_backoff;
                }
                error!(
                    task = %name,
                    reason = %why,
                    retry_in = ?backoff,
                    "a task of the speaker ended unexpectedly; starting it again"
                );
                if !update(&tasks, &name, |h| {
                    h.up = false;
                    h.restarts += 1;
                    h.last_failure = Some(why);
                }) {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if !update(&tasks, &name, |h| h.up = true) {
                    return;
                }
            }
        });
        if let Some(old) = lock(&self.0.handles).insert(key, supervisor.abort_handle()) {
            old.abort();
        }
    }

    /// Where tasks supervised elsewhere (the BGP speaker's peer tasks) report their
    /// restarts. It does not keep the tasks alive.
    pub fn reporter(&self) -> Reporter {
        Reporter(Arc::downgrade(&self.0))
    }

    /// Ends task `name`; its end is no failure.
    pub fn stop_task(&self, name: &str) {
        if let Some(h) = lock(&self.0.handles).remove(name) {
            h.abort();
        }
    }

    /// Ends every task; none of their ends counts as a failure.
    pub fn stop(&self) {
        for (_, h) in std::mem::take(&mut *lock(&self.0.handles)) {
            h.abort();
        }
    }

    /// Counts, and shows in `/healthz`, the tasks `health` reports: tasks that are
    /// supervised elsewhere (started again there), by name.
    pub fn follow(&self, health: impl Fn() -> Vec<(String, TaskHealth)> + Send + Sync + 'static) {
        lock(&self.0.followed).push(Followed(Box::new(health)));
    }

    /// Each task's health, by name.
    pub fn health(&self) -> BTreeMap<String, TaskHealth> {
        let mut health = lock(&self.0.health).clone();
        for f in lock(&self.0.followed).iter() {
            health.extend((f.0)());
        }
        health
    }

    /// Why the speaker is not healthy: each task that is not running. Empty when all run.
    pub fn problems(&self) -> Vec<String> {
        self.health()
            .iter()
            .filter(|(_, h)| !h.up)
            .map(|(name, h)| {
                let why = h.last_failure.as_deref().unwrap_or("it ended");
                format!("task {name} ended ({why}); waiting to start it again")
            })
            .collect()
    }

    /// Changes whenever a task's health changes.
    #[cfg(test)]
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.0.changed.subscribe()
    }

    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(self.clone())
    }
}

/// Reports restarts of tasks supervised elsewhere to a [`Tasks`].
#[derive(Clone, Debug)]
pub struct Reporter(Weak<Inner>);

impl Reporter {
    /// Logs and counts the unexpected end of task `name`, which was started again.
    pub fn restarted(&self, name: &str, why: &str) {
        error!(
            task = %name,
            reason = %why,
            "a task of the speaker ended unexpectedly; started again"
        );
        update(&self.0, name, |h| {
            h.up = true;
            h.restarts += 1;
            h.last_failure = Some(why.to_owned());
        });
    }
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Collector for Tasks {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let health = self.health();
        counter_family(
            &mut encoder,
            "herald_task_restarts",
            "Times a long-running task of the speaker ended unexpectedly, by task",
            health
                .iter()
                .map(|(name, h)| (vec![("task", name.clone())], h.restarts))
                .collect(),
        )?;
        gauge_family(
            &mut encoder,
            "herald_task_up",
            "1 while a long-running task of the speaker runs, 0 after it ended unexpectedly until it runs again",
            MetricType::Gauge,
            health
                .iter()
                .map(|(name, h)| (vec![("task", name.clone())], u64::from(h.up)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Waits (patiently: a test asserts no timing) until `tasks` satisfy `want`.
    async fn until(tasks: &Tasks, want: impl Fn(&Tasks) -> bool) {
        let mut changed = tasks.changed();
        let wait = async {
            while !want(tasks) {
                changed.changed().await.expect("the tasks live");
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("the tasks reach the state wanted");
    }

    #[test]
    fn tasks_supervised_elsewhere_are_counted_and_shown_alike() {
        let tasks = Tasks::default();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = down.clone();
        tasks.follow(move || {
            let up = !d.load(Ordering::Relaxed);
            let failure = (!up).then(|| "it panicked: boom".to_owned());
            let health = TaskHealth {
                up,
                restarts: u64::from(!up),
                last_failure: failure,
            };
            vec![("interface:eth0".to_owned(), health)]
        });
        assert!(tasks.problems().is_empty());
        down.store(true, Ordering::Relaxed);
        assert_eq!(
            tasks.problems(),
            ["task interface:eth0 ended (it panicked: boom); waiting to start it again"]
        );
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(tasks.collector());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains("herald_task_restarts_total{task=\"interface:eth0\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_task_up{task=\"interface:eth0\"} 0"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_task_that_panics_is_logged_counted_unhealthy_then_restarted() {
        let tasks = Tasks::with_backoff(Duration::from_millis(300));
        let starts = Arc::new(AtomicU32::new(0));
        let (release, released) = watch::channel(false);
        let s = starts.clone();
        tasks.spawn("reconcile", move || {
            let n = s.fetch_add(1, Ordering::SeqCst);
            let mut released = released.clone();
            async move {
                if n == 0 {
                    // Fails once the test has seen it running.
                    let _ = released.wait_for(|r| *r).await;
                    panic!("a fault injected by the test");
                }
                std::future::pending::<()>().await;
            }
        });
        assert!(tasks.problems().is_empty(), "running: healthy");
        release.send_replace(true);
        until(&tasks, |t| !t.problems().is_empty()).await;
        let problems = tasks.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("reconcile") && problems[0].contains("a fault injected"),
            "{problems:?}"
        );
        until(&tasks, |t| t.health()["reconcile"].up).await;
        assert!(tasks.problems().is_empty(), "restarted: healthy again");
        let health = &tasks.health()["reconcile"];
        assert_eq!(health.restarts, 1);
        assert_eq!(starts.load(Ordering::SeqCst), 2, "started again, once");

        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(tasks.collector());
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains("herald_task_restarts_total{task=\"reconcile\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_task_up{task=\"reconcile\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_task_that_returns_is_restarted_too() {
        let tasks = Tasks::with_backoff(Duration::from_millis(1));
        let starts = Arc::new(AtomicU32::new(0));
        let s = starts.clone();
        tasks.spawn("events", move || {
            let n = s.fetch_add(1, Ordering::SeqCst);
            async move {
                if n >= 3 {
                    std::future::pending::<()>().await;
                }
            }
        });
        until(&tasks, |t| {
            t.health()["events"].restarts == 3 && t.health()["events"].up
        })
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 4);
        assert!(tasks.problems().is_empty());
    }

    #[tokio::test]
    async fn stopping_is_no_failure_and_ends_the_tasks() {
        let tasks = Tasks::default();
        let (tx, mut ended) = tokio::sync::mpsc::channel::<()>(1);
        tasks.spawn("bgp", move || {
            let tx = tx.clone();
            async move {
                // Dropped (closing the channel) when the task is aborted.
                let _tx = tx;
                std::future::pending::<()>().await;
            }
        });
        tasks.stop();
        assert!(ended.recv().await.is_none(), "the task was ended");
        assert!(tasks.problems().is_empty());
        assert_eq!(tasks.health()["bgp"].restarts, 0);
    }
}
