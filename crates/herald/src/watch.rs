//! Noticing configuration changes on disk.
//!
//! The directories holding the files are watched, not the files: an editor saves by writing
//! a new file and renaming it over the old one, and a Kubernetes ConfigMap volume swaps a
//! `..data` symlink to a new timestamped directory. Either way the inode a file watch held
//! is gone, while the directory sees every step.

use anyhow::Context as _;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug)]
pub enum WatchMsg {
    /// Something that may change the configuration happened to this path.
    Changed(PathBuf),
    /// The watch itself failed (e.g. the kernel's event queue overflowed): changes may
    /// have been missed.
    Error(String),
}

/// Watches while it lives.
pub struct ConfigWatch {
    _watcher: RecommendedWatcher,
}

/// Which events concern the configuration files.
#[derive(Clone, Debug, Default)]
pub struct Interest {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Interest {
    /// `files` must be absolute.
    pub fn new(files: &[PathBuf]) -> Self {
        let mut interest = Self::default();
        for file in files {
            if let Some(dir) = file.parent() {
                interest.dirs.insert(dir.to_path_buf());
            }
            interest.files.insert(file.clone());
        }
        interest
    }

    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(PathBuf::as_path)
    }

    /// The path in `event` that concerns us, if any.
    pub fn relevant<'e>(&self, event: &'e Event) -> Option<&'e Path> {
        match event.kind {
            // Reading the files ourselves opens them; only a write that finished matters.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return None,
            _ => {}
        }
        event.paths.iter().map(PathBuf::as_path).find(|path| {
            if self.dirs.contains(*path) {
                // The directory itself was removed or moved.
                return true;
            }
            if self.files.contains(*path) {
                return true;
            }
            // `..data` and `..2026_01_01_...` are a ConfigMap volume's machinery.
            path.parent().is_some_and(|p| self.dirs.contains(p))
                && path
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b".."))
        })
    }
}

impl ConfigWatch {
    pub fn new(files: &[PathBuf], tx: UnboundedSender<WatchMsg>) -> anyhow::Result<Self> {
        let interest = Interest::new(files);
        let dirs: Vec<PathBuf> = interest.dirs().map(Path::to_path_buf).collect();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            // Sending fails only when the speaker is shutting down; nothing to do then.
            let _ = match res {
                Ok(event) => match interest.relevant(&event) {
                    Some(path) => tx.send(WatchMsg::Changed(path.to_path_buf())),
                    None => Ok(()),
                },
                Err(e) => tx.send(WatchMsg::Error(e.to_string())),
            };
        })
        .context("creating a file watcher")?;
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .with_context(|| format!("watching directory {}", dir.display()))?;
        }
        Ok(Self { _watcher: watcher })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};

    fn interest() -> Interest {
        Interest::new(&[
            PathBuf::from("/etc/herald/config.yaml"),
            PathBuf::from("/srv/extra.yaml"),
        ])
    }

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    #[test]
    fn writes_and_renames_of_our_files_count() {
        let i = interest();
        for kind in [
            EventKind::Modify(ModifyKind::Any),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(
                i.relevant(&event(kind, &["/etc/herald/config.yaml"]))
                    .is_some(),
                "{kind:?}"
            );
        }
        // Editor rename-replace: the temporary file is renamed onto ours.
        let rename = event(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &["/srv/.extra.yaml.swp", "/srv/extra.yaml"],
        );
        assert_eq!(i.relevant(&rename), Some(Path::new("/srv/extra.yaml")));
    }

    #[test]
    fn configmap_symlink_swap_counts() {
        let i = interest();
        let swap = event(EventKind::Create(CreateKind::Any), &["/etc/herald/..data"]);
        assert!(i.relevant(&swap).is_some());
    }

    #[test]
    fn our_own_reads_and_other_files_do_not() {
        let i = interest();
        let open = event(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            &["/etc/herald/config.yaml"],
        );
        assert!(i.relevant(&open).is_none());
        let read_closed = event(
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            &["/etc/herald/config.yaml"],
        );
        assert!(i.relevant(&read_closed).is_none());
        let neighbour = event(
            EventKind::Modify(ModifyKind::Any),
            &["/etc/herald/other.yaml"],
        );
        assert!(i.relevant(&neighbour).is_none());
        // Same name in another directory.
        let elsewhere = event(EventKind::Modify(ModifyKind::Any), &["/tmp/config.yaml"]);
        assert!(i.relevant(&elsewhere).is_none());
        // The other file's name in this directory.
        let crossed = event(
            EventKind::Modify(ModifyKind::Any),
            &["/etc/herald/extra.yaml"],
        );
        assert!(i.relevant(&crossed).is_none());
    }

    #[test]
    fn removal_of_the_directory_counts() {
        let i = interest();
        let gone = event(EventKind::Remove(RemoveKind::Folder), &["/srv"]);
        assert!(i.relevant(&gone).is_some());
    }
}
