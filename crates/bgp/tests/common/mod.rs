//! The speaker run inside a network namespace on a thread of its own, beside the routers,
//! links and route readers of `testkit::routers`.
//!
//! Everything needs root. A test that cannot set up its namespaces or start its router
//! fails: it never skips.

#![allow(dead_code)]

use bgp::{PeerStatus, Routes, Speaker, SpeakerConfig, StopKind};
use std::time::{Duration, Instant};
pub use testkit::netns::Netns;
pub use testkit::routers::*;

/// Polls `check` until it gives a value; fails with `what` and the last state once
/// `limit` has passed. The limit only bounds a failing test: nothing is asserted about
/// how long it took.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if start.elapsed() > limit => {
                panic!("gave up waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A [`Speaker`] running inside a network namespace, on a thread that entered it with
/// setns(2) and owns a current-thread runtime.
pub struct NetnsSpeaker {
    tx: tokio::sync::mpsc::UnboundedSender<SpeakerCommand>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Call = Box<dyn FnOnce(&mut Speaker) + Send>;

enum SpeakerCommand {
    Call(Call),
    /// End without a word to the peers, as a killed process would.
    Crash,
    Shutdown(
        Option<Duration>,
        StopKind,
        String,
        std::sync::mpsc::Sender<()>,
    ),
}

impl NetnsSpeaker {
    pub fn start(ns: &Netns, config: SpeakerConfig) -> NetnsSpeaker {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<SpeakerCommand>();
        let thread = ns.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut speaker = Speaker::new(config);
                while let Some(cmd) = rx.recv().await {
                    match cmd {
                        SpeakerCommand::Call(f) => f(&mut speaker),
                        SpeakerCommand::Crash => {
                            // No Cease: the Stop that dropping the speaker queues is never
                            // read, since the runtime goes away with the tasks as soon as
                            // this returns, and the kernel closes their sockets.
                            drop(speaker);
                            return;
                        }
                        SpeakerCommand::Shutdown(wait, kind, message, done) => {
                            speaker.shutdown(wait, kind, &message).await;
                            let _ = done.send(());
                            return;
                        }
                    }
                }
            });
        });
        NetnsSpeaker {
            tx,
            thread: Some(thread),
        }
    }

    pub fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Speaker) -> R + Send + 'static) -> R {
        let (done, result) = std::sync::mpsc::channel();
        let call: Call = Box::new(move |s| {
            let _ = done.send(f(s));
        });
        assert!(
            self.tx.send(SpeakerCommand::Call(call)).is_ok(),
            "speaker thread gone"
        );
        result.recv().expect("speaker thread gone")
    }

    pub fn set_routes(&self, id: &str, routes: Routes) {
        let id = id.to_string();
        self.call(move |s| s.set_routes(&id, routes));
    }

    pub fn status(&self, id: &str) -> PeerStatus {
        let owned = id.to_string();
        self.call(move |s| s.status().into_iter().find(|p| p.id == owned))
            .unwrap_or_else(|| panic!("no peer {id}"))
    }

    /// Ends the speaker as if its process were killed: connections close, no NOTIFICATION.
    pub fn crash(mut self) {
        let _ = self.tx.send(SpeakerCommand::Crash);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Starts shutting down the way `kind` says; the receiver says when it is done.
    pub fn begin_shutdown(
        &self,
        wait: Option<Duration>,
        kind: StopKind,
        message: &str,
    ) -> std::sync::mpsc::Receiver<()> {
        let (done, rx) = std::sync::mpsc::channel();
        assert!(
            self.tx
                .send(SpeakerCommand::Shutdown(
                    wait,
                    kind,
                    message.to_string(),
                    done
                ))
                .is_ok()
        );
        rx
    }
}

impl Drop for NetnsSpeaker {
    fn drop(&mut self) {
        let (done, _rx) = std::sync::mpsc::channel();
        let _ = self.tx.send(SpeakerCommand::Shutdown(
            None,
            StopKind::Shutdown,
            "test over".into(),
            done,
        ));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
