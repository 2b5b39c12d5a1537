//! systemd's service notification protocol (sd_notify): `READY=1` once the first
//! configuration has been read, `STATUS=` after each read, `WATCHDOG=1` from the main loop
//! while `WatchdogSec` is set, `STOPPING=1` at shutdown. Without `$NOTIFY_SOCKET` (not under
//! systemd, or `Type=` other than notify) every call does nothing.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (honoured only when `$WATCHDOG_PID` is
    /// unset or names this process, as sd_watchdog_enabled does).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = path.as_encoded_bytes();
            let addr = match bytes.strip_prefix(b"@") {
                Some(name) => SocketAddr::from_abstract_name(name).ok()?,
                None => SocketAddr::from_pathname(std::path::Path::new(&path)).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us && socket.is_some())
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// How often to send `WATCHDOG=1`: half the interval systemd waits for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines); failures are logged, never fatal.
    pub fn send(&self, state: &str) {
        if let Some((socket, addr)) = &self.socket
            && let Err(e) = socket.send_to_addr(state.as_bytes(), addr)
        {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_socket_nothing_is_sent_and_no_watchdog() {
        let n = Notifier {
            socket: None,
            watchdog: None,
        };
        n.send("READY=1");
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn messages_reach_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier {
            socket: Some((
                UnixDatagram::unbound().expect("socket"),
                SocketAddr::from_pathname(&path).expect("addr"),
            )),
            watchdog: Some(Duration::from_secs(10)),
        };
        n.send("READY=1\nSTATUS=ok");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).expect("received");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=ok");
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(5)));
    }
}
