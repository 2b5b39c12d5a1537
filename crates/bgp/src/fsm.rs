//! The BGP session state machine (RFC 4271 §8), simplified for a speaker that only
//! announces, as a pure type: [`Session::handle`] takes an [`Event`] and returns the
//! [`Action`]s to carry out. It never reads a clock, opens a socket or draws a random
//! number itself: timers are actions ([`Action::ArmTimer`]) whose expiry comes back as
//! [`Event::TimerFired`], and the jitter of the reconnect backoff comes from an injected
//! [`Random`] source. A thin task around it does the I/O.
//!
//! What it owns: the six states, OPEN negotiation (hold time, keepalive, capabilities, peer
//! AS and BGP identifier checks), the hold and keepalive timers, the NOTIFICATION each
//! error calls for, and the reconnect backoff. Reconnects back off exponentially and the
//! backoff resets only after a session has stayed Established for
//! [`Config::stable_period`], so a peer that accepts TCP but rejects our OPEN is not
//! hammered.
//!
//! Connection collisions (RFC 4271 §6.8): the session has one connection at a time. When
//! the peer connects to us ([`Event::IncomingConnection`]) the session answers with
//! [`Action::Accept`], which makes the new connection the session's own (closing the one
//! it had, with Cease / Connection Collision Resolution, if the peer's BGP identifier is
//! higher), or [`Action::Reject`]. Until the peer's identifier is known, that is in
//! OpenSent, the connection the session already has wins; two speakers that open to each
//! other at the same moment both refuse, and the jitter of their retries settles it.
//!
//! Not here: routes (the speaker's Adj-RIB-Out decides what to send once
//! [`Action::Established`] says which families were negotiated) and sockets.

use crate::wire::{
    AS_TRANS, Capability, Error as WireError, ExtendedNextHopEntry, Family, GracefulRestart,
    GracefulRestartFamily, Message, NotificationRepr, OpenRepr, Options, RouteRefreshRepr, cease,
    error_code, fsm_error, open_error,
};
use std::net::Ipv4Addr;
use std::time::Duration;

/// How long to wait for the peer's OPEN after sending ours (RFC 4271 §8.2.2 suggests four
/// minutes).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// The session states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// The timers the session asks the I/O task to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// In Connect: the connection attempt timed out. In Active: time to try again.
    ConnectRetry,
    Hold,
    Keepalive,
    /// The session has been Established long enough to count as stable: the reconnect
    /// backoff goes back to its initial value.
    Stable,
}

/// Which AS the peer must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAs {
    Fixed(u32),
    /// Any AS equal to ours (iBGP).
    Internal,
    /// Any AS other than ours (eBGP).
    External,
}

/// Reconnect backoff: the first retry waits `initial`, each further failure doubles the
/// wait up to `max`, and every wait is jittered down by up to a quarter (RFC 4271 §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

/// Graceful restart as a restarting speaker (RFC 4724, RFC 8538).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartConfig {
    /// How long the peer should keep our routes after the session drops.
    pub restart_time: u16,
    /// Set the R bit: this speaker has just restarted.
    pub restarting: bool,
    /// Set the F bit for every family offered: traffic to our routes keeps flowing while
    /// this speaker restarts (the node forwards; only the speaker restarts), so a peer that
    /// kept them may go on using them until our End-of-RIB. With it clear, RFC 4724 §4.2
    /// has the peer drop them as soon as our next OPEN arrives.
    pub forwarding_preserved: bool,
    /// Set the N bit (RFC 8538): a NOTIFICATION other than Cease / Hard Reset starts
    /// graceful restart too, so a restart can say why it closes.
    pub notification: bool,
}

impl GracefulRestartConfig {
    /// What herald offers: F and N bits set.
    pub fn new(restart_time: u16, restarting: bool) -> Self {
        GracefulRestartConfig {
            restart_time,
            restarting,
            forwarding_preserved: true,
            notification: true,
        }
    }
}

/// How a stopped session ends, which decides what the peer does with our routes.
///
/// | kind | GR and N bit negotiated | GR without N (BIRD 2) | no GR |
/// |---|---|---|---|
/// | `Shutdown` | Hard Reset (Administrative Shutdown) | Administrative Shutdown | Administrative Shutdown |
/// | `Deconfigured` | Hard Reset (Peer De-configured) | Peer De-configured | Peer De-configured |
/// | `Restart` | Administrative Reset: routes kept | no NOTIFICATION: routes kept | Administrative Shutdown |
/// | `Reconfigure` | Other Configuration Change: routes kept | no NOTIFICATION: routes kept | Other Configuration Change |
/// | `BfdDown` | BFD Down (RFC 9384) | BFD Down | BFD Down |
///
/// Every NOTIFICATION here is a Cease; a Hard Reset (RFC 8538 §3) carries the one it
/// stands for. Before OPENs are exchanged nothing is negotiated: the "no GR" column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopKind {
    /// For good (the node is going away, or the speaker is asked to drain): the peer drops
    /// our routes.
    Shutdown,
    /// The peer was removed from the configuration: it drops our routes.
    Deconfigured,
    /// This speaker is restarting: the peer keeps our routes wherever graceful restart
    /// allows, until we are back and send End-of-RIB, or the restart time passes.
    Restart,
    /// The session's configuration changed and it starts again: kept as for a restart.
    Reconfigure,
    /// The BFD session this one depends on went down: routes are not kept by us, whatever
    /// the peer's BFD and graceful restart policy decides.
    BfdDown,
}

/// A session's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub local_as: u32,
    pub peer_as: PeerAs,
    pub bgp_identifier: Ipv4Addr,
    /// Seconds; 0 (no keepalives, no hold timer) or at least 3.
    pub hold_time: u16,
    /// Seconds between KEEPALIVEs; `None` for a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// Never connect; wait for the peer to.
    pub passive: bool,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    pub backoff: Backoff,
    /// How long a session must stay Established before the backoff resets.
    pub stable_period: Duration,
    /// Families to offer; the session carries those the peer offers too.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    /// Offer IPv4 unicast routes with IPv6 next hops (RFC 8950).
    pub extended_next_hop: bool,
    /// Offer messages up to 65535 octets (RFC 8654).
    pub extended_message: bool,
    pub graceful_restart: Option<GracefulRestartConfig>,
}

impl Config {
    /// A configuration with herald's defaults: hold time 90 s, 4-octet AS, route refresh,
    /// IPv4 and IPv6 unicast, reconnect backoff 5 s doubling to 2 min, stable after 60 s.
    pub fn new(local_as: u32, peer_as: PeerAs, bgp_identifier: Ipv4Addr) -> Config {
        Config {
            local_as,
            peer_as,
            bgp_identifier,
            hold_time: 90,
            keepalive_time: None,
            passive: false,
            connect_timeout: Duration::from_secs(30),
            backoff: Backoff {
                initial: Duration::from_secs(5),
                max: Duration::from_secs(120),
            },
            stable_period: Duration::from_secs(60),
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            route_refresh: true,
            extended_next_hop: false,
            extended_message: false,
            graceful_restart: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if self.bgp_identifier.is_unspecified() {
            return Err(ConfigError::BgpIdentifier);
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err(ConfigError::Backoff);
        }
        Ok(())
    }
}

/// A configuration the session cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("hold time {0} s: it must be 0 or at least 3 s")]
    HoldTime(u16),
    #[error("BGP identifier 0.0.0.0 is not valid")]
    BgpIdentifier,
    #[error("backoff must start above zero and its maximum must not be below its start")]
    Backoff,
}

/// A source of random numbers for jitter, injected so tests are deterministic.
pub trait Random {
    fn next_u32(&mut self) -> u32;
}

impl<F: FnMut() -> u32> Random for F {
    fn next_u32(&mut self) -> u32 {
        self()
    }
}

/// What the session agreed with the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_bgp_identifier: Ipv4Addr,
    /// Both ends are in the same AS.
    pub internal: bool,
    /// Seconds; 0 means no hold timer and no keepalives.
    pub hold_time: u16,
    /// Seconds; 0 when the hold time is 0.
    pub keepalive_time: u16,
    /// Families both ends offered. A peer that offers none implies IPv4 unicast
    /// (RFC 4760 §8).
    pub families: Vec<Family>,
    pub four_octet_as: bool,
    pub route_refresh: bool,
    /// RFC 8950 entries both ends offered.
    pub extended_next_hop: Vec<ExtendedNextHopEntry>,
    pub extended_message: bool,
    /// The peer's graceful restart capability, when both ends offered one.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// Both ends set the graceful restart N bit (RFC 8538): only a Hard Reset ends graceful
    /// restart.
    pub graceful_notification: bool,
}

impl Negotiated {
    /// How to encode and decode messages on this session.
    pub fn options(&self) -> Options {
        Options {
            four_octet_as: self.four_octet_as,
            max_message_len: if self.extended_message {
                crate::wire::MAX_EXTENDED_MESSAGE_LEN
            } else {
                crate::wire::MAX_MESSAGE_LEN
            },
        }
    }

    /// Whether IPv4 unicast routes may be sent with an IPv6 next hop.
    pub fn ipv4_over_ipv6(&self) -> bool {
        self.extended_next_hop
            .contains(&ExtendedNextHopEntry::IPV4_UNICAST_OVER_IPV6)
    }
}

/// Why a session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// [`Event::Stop`]; the message went out in a Cease NOTIFICATION.
    Stopped(String),
    /// The peer said no.
    NotificationReceived(NotificationRepr),
    /// We found an error and said so; the hold timer expiring is one of these (4/0).
    NotificationSent(NotificationRepr),
    /// The connection closed without a NOTIFICATION.
    ConnectionClosed,
}

/// What happens to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start connecting (or, when passive, accepting).
    Start,
    /// Stop, with the reason to send in the shutdown communication (RFC 9003) where the
    /// NOTIFICATION `kind` calls for carries one.
    Stop {
        reason: String,
        kind: StopKind,
    },
    /// Our connection to the peer is up.
    TcpConnected,
    /// The peer opened a connection to us. The session answers with [`Action::Accept`] or
    /// [`Action::Reject`].
    IncomingConnection,
    /// Our connection attempt failed.
    TcpFailed,
    /// The connection closed.
    TcpClosed,
    /// A message arrived, decoded with [`Session::options`].
    MessageReceived(Message),
    /// Octets arrived that do not decode: the error says which NOTIFICATION to send.
    MalformedMessage(WireError),
    /// The speaker sent an UPDATE: it counts as a sign of life, so the next KEEPALIVE can
    /// wait a full keepalive time (RFC 4271 §4.4).
    UpdateSent,
    TimerFired(Timer),
}

/// What the I/O task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    /// Encode with [`Session::options`] and send.
    Send(Message),
    /// Start the timer, replacing it if it runs.
    ArmTimer(Timer, Duration),
    CancelTimer(Timer),
    /// Close the session's connection, or abandon the attempt to make one (after sending
    /// what came before).
    Close,
    /// Take the peer's new connection ([`Event::IncomingConnection`]): from here on it is the
    /// session's connection, and later actions apply to it.
    Accept,
    /// Refuse the peer's new connection: send the NOTIFICATION on it, if there is one, and
    /// close it. The session's own connection is not touched.
    Reject(Option<NotificationRepr>),
    /// The peer may now be sent routes, within what was negotiated.
    Established(Negotiated),
    /// A connection that had got past TCP is gone; `established` says whether routes had
    /// been exchanged on it.
    Down {
        reason: DownReason,
        established: bool,
    },
    /// The peer asked for our routes of this family again (RFC 2918).
    RouteRefreshRequested(RouteRefreshRepr),
}

/// One peer's session.
#[derive(Debug)]
pub struct Session<R> {
    config: Config,
    state: State,
    random: R,
    /// The wait before the next reconnect, before jitter.
    backoff: Duration,
    negotiated: Option<Negotiated>,
}

impl<R: Random> Session<R> {
    pub fn new(config: Config, random: R) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Session {
            backoff: config.backoff.initial,
            config,
            state: State::Idle,
            random,
            negotiated: None,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This speaker is no longer restarting once a session has come up: later OPENs leave
    /// the graceful restart R bit clear (RFC 4724 §3).
    pub fn clear_restarting(&mut self) {
        if let Some(gr) = &mut self.config.graceful_restart {
            gr.restarting = false;
        }
    }

    /// What was negotiated, from OpenConfirm on.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// How to encode and decode messages right now.
    pub fn options(&self) -> Options {
        self.negotiated
            .as_ref()
            .map_or_else(Options::default, Negotiated::options)
    }

    /// The OPEN this session sends.
    pub fn open_message(&self) -> OpenRepr {
        let c = &self.config;
        let mut caps: Vec<Capability> = c
            .families
            .iter()
            .map(|&f| Capability::Multiprotocol(f))
            .collect();
        if c.route_refresh {
            caps.push(Capability::RouteRefresh);
        }
        if c.extended_next_hop {
            caps.push(Capability::ExtendedNextHop(vec![
                ExtendedNextHopEntry::IPV4_UNICAST_OVER_IPV6,
            ]));
        }
        if c.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        if let Some(gr) = c.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restarting: gr.restarting,
                restart_time: gr.restart_time,
                notification: gr.notification,
                families: c
                    .families
                    .iter()
                    .map(|&family| GracefulRestartFamily {
                        family,
                        forwarding_preserved: gr.forwarding_preserved,
                    })
                    .collect(),
            }));
        }
        caps.push(Capability::FourOctetAs(c.local_as));
        OpenRepr::new(c.local_as, c.hold_time, c.bgp_identifier, caps)
    }

    /// Advances the session by one event.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        use State::*;
        match (self.state, event) {
            (Idle, Event::Start) => self.start(),
            (_, Event::Start) => Vec::new(),

            (Idle, Event::Stop { .. }) => Vec::new(),
            (Connect | Active, Event::Stop { .. }) => {
                self.state = Idle;
                self.backoff = self.config.backoff.initial;
                vec![Action::CancelTimer(Timer::ConnectRetry), Action::Close]
            }
            (OpenSent | OpenConfirm | Established, Event::Stop { reason, kind }) => {
                let notification = self.stop_notification(kind, &reason);
                let mut actions = self.tear_down(notification, DownReason::Stopped(reason));
                // An operator's stop is not a failure: start afresh next time.
                actions.retain(|a| !matches!(a, Action::ArmTimer(Timer::ConnectRetry, _)));
                self.state = Idle;
                self.backoff = self.config.backoff.initial;
                actions
            }

            (Connect, Event::TcpConnected) => self.open_sent(Vec::new()),
            // A connection we had given up on (or, on a stale event, one we never asked for).
            (_, Event::TcpConnected) => Vec::new(),

            (Idle, Event::IncomingConnection) => vec![Action::Reject(None)],
            (Connect, Event::IncomingConnection) => {
                // The peer was quicker: drop our attempt and take its connection.
                self.open_sent(vec![Action::Close, Action::Accept])
            }
            (Active, Event::IncomingConnection) => self.open_sent(vec![Action::Accept]),
            (OpenSent | Established, Event::IncomingConnection) => {
                vec![Action::Reject(Some(collision()))]
            }
            (OpenConfirm, Event::IncomingConnection) => {
                let remote = self
                    .negotiated
                    .as_ref()
                    .map_or(Ipv4Addr::UNSPECIFIED, |n| n.peer_bgp_identifier);
                if u32::from(self.config.bgp_identifier) < u32::from(remote) {
                    // The connection the peer opened wins (RFC 4271 §6.8).
                    self.negotiated = None;
                    self.open_sent(vec![
                        Action::Send(Message::Notification(collision())),
                        Action::Close,
                        Action::CancelTimer(Timer::Keepalive),
                        Action::Accept,
                    ])
                } else {
                    vec![Action::Reject(Some(collision()))]
                }
            }

            (Connect, Event::TcpFailed | Event::TcpClosed)
            | (Connect, Event::TimerFired(Timer::ConnectRetry)) => {
                self.state = Active;
                let mut actions = vec![Action::Close];
                actions.extend(self.schedule_retry());
                actions
            }
            (Active, Event::TimerFired(Timer::ConnectRetry)) if !self.config.passive => {
                self.connect()
            }
            (Idle | Active, Event::TcpFailed | Event::TcpClosed) => Vec::new(),

            (OpenSent | OpenConfirm | Established, Event::TcpClosed | Event::TcpFailed) => {
                self.tear_down(None, DownReason::ConnectionClosed)
            }

            (OpenSent | OpenConfirm | Established, Event::TimerFired(Timer::Hold)) => {
                self.tear_down_with(NotificationRepr::new(error_code::HOLD_TIMER_EXPIRED, 0))
            }

            (OpenConfirm | Established, Event::TimerFired(Timer::Keepalive)) => {
                let mut actions = vec![Action::Send(Message::Keepalive)];
                actions.extend(self.arm_keepalive());
                actions
            }
            (Established, Event::UpdateSent) => self.arm_keepalive().into_iter().collect(),
            (_, Event::UpdateSent) => Vec::new(),
            (Established, Event::TimerFired(Timer::Stable)) => {
                self.backoff = self.config.backoff.initial;
                Vec::new()
            }
            // A timer that fired as it was being cancelled.
            (_, Event::TimerFired(_)) => Vec::new(),

            (OpenSent | OpenConfirm | Established, Event::MalformedMessage(e)) => {
                self.tear_down_with(e.notification())
            }
            (OpenSent | OpenConfirm | Established, Event::MessageReceived(m)) => self.message(m),
            // No connection, so nothing can have been received on it.
            (Idle | Connect | Active, Event::MessageReceived(_) | Event::MalformedMessage(_)) => {
                Vec::new()
            }
        }
    }

    /// The NOTIFICATION that ends the session for `kind` (see [`StopKind`]), or none when
    /// closing the connection silently is what keeps our routes with the peer.
    fn stop_notification(&self, kind: StopKind, reason: &str) -> Option<NotificationRepr> {
        let negotiated = self.negotiated.as_ref();
        let graceful = negotiated.is_some_and(|n| n.peer_graceful_restart.is_some());
        let n_bit = negotiated.is_some_and(|n| n.graceful_notification);
        let hard = |inner: NotificationRepr| {
            if n_bit {
                NotificationRepr::hard_reset(&inner)
            } else {
                inner
            }
        };
        let plain = |subcode| NotificationRepr::new(error_code::CEASE, subcode);
        match kind {
            StopKind::Shutdown => Some(hard(NotificationRepr::cease(
                cease::ADMINISTRATIVE_SHUTDOWN,
                reason,
            ))),
            StopKind::Deconfigured => Some(hard(plain(cease::PEER_DECONFIGURED))),
            StopKind::Restart if n_bit => {
                Some(NotificationRepr::cease(cease::ADMINISTRATIVE_RESET, reason))
            }
            StopKind::Reconfigure if n_bit => Some(plain(cease::OTHER_CONFIGURATION_CHANGE)),
            StopKind::Restart | StopKind::Reconfigure if graceful => None,
            StopKind::Restart => Some(NotificationRepr::cease(
                cease::ADMINISTRATIVE_SHUTDOWN,
                reason,
            )),
            StopKind::Reconfigure => Some(plain(cease::OTHER_CONFIGURATION_CHANGE)),
            StopKind::BfdDown => Some(plain(cease::BFD_DOWN)),
        }
    }

    /// Sends our OPEN on a new connection, after `actions`.
    fn open_sent(&mut self, mut actions: Vec<Action>) -> Vec<Action> {
        self.state = State::OpenSent;
        actions.extend([
            Action::CancelTimer(Timer::ConnectRetry),
            Action::Send(Message::Open(self.open_message())),
            Action::ArmTimer(Timer::Hold, OPEN_HOLD_TIME),
        ]);
        actions
    }

    fn start(&mut self) -> Vec<Action> {
        if self.config.passive {
            self.state = State::Active;
            Vec::new()
        } else {
            self.connect()
        }
    }

    fn connect(&mut self) -> Vec<Action> {
        self.state = State::Connect;
        vec![
            Action::Connect,
            Action::ArmTimer(Timer::ConnectRetry, self.config.connect_timeout),
        ]
    }

    /// The wait before the next attempt, jittered, and the backoff doubled for the one
    /// after. A passive session waits for the peer instead.
    fn schedule_retry(&mut self) -> Option<Action> {
        if self.config.passive {
            return None;
        }
        let base = self.backoff;
        self.backoff = (base * 2).min(self.config.backoff.max);
        // Between three quarters and all of the wait.
        let quarter = base / 4;
        let fraction = u128::from(self.random.next_u32());
        let jitter = quarter.as_nanos() * fraction / (1u128 << 32);
        let wait = base - quarter + Duration::from_nanos(u64::try_from(jitter).unwrap_or(0));
        Some(Action::ArmTimer(Timer::ConnectRetry, wait))
    }

    fn tear_down_with(&mut self, notification: NotificationRepr) -> Vec<Action> {
        self.tear_down(
            Some(notification.clone()),
            DownReason::NotificationSent(notification),
        )
    }

    /// Ends the connection: NOTIFICATION if there is one, close, stop the timers, and wait
    /// to try again.
    fn tear_down(
        &mut self,
        notification: Option<NotificationRepr>,
        reason: DownReason,
    ) -> Vec<Action> {
        let established = self.state == State::Established;
        let mut actions = Vec::new();
        if let Some(n) = notification {
            actions.push(Action::Send(Message::Notification(n)));
        }
        actions.push(Action::Close);
        actions.push(Action::CancelTimer(Timer::Hold));
        actions.push(Action::CancelTimer(Timer::Keepalive));
        if established {
            actions.push(Action::CancelTimer(Timer::Stable));
        }
        actions.push(Action::Down {
            reason,
            established,
        });
        self.negotiated = None;
        self.state = State::Active;
        actions.extend(self.schedule_retry());
        actions
    }

    fn arm_keepalive(&self) -> Option<Action> {
        let n = self.negotiated.as_ref()?;
        (n.keepalive_time > 0).then(|| {
            Action::ArmTimer(
                Timer::Keepalive,
                Duration::from_secs(u64::from(n.keepalive_time)),
            )
        })
    }

    fn arm_hold(&self) -> Option<Action> {
        let n = self.negotiated.as_ref()?;
        Some(if n.hold_time > 0 {
            Action::ArmTimer(Timer::Hold, Duration::from_secs(u64::from(n.hold_time)))
        } else {
            Action::CancelTimer(Timer::Hold)
        })
    }

    fn message(&mut self, message: Message) -> Vec<Action> {
        use State::*;
        let unexpected = |state| {
            NotificationRepr::new(
                error_code::FINITE_STATE_MACHINE,
                match state {
                    OpenSent => fsm_error::UNEXPECTED_MESSAGE_IN_OPEN_SENT,
                    OpenConfirm => fsm_error::UNEXPECTED_MESSAGE_IN_OPEN_CONFIRM,
                    _ => fsm_error::UNEXPECTED_MESSAGE_IN_ESTABLISHED,
                },
            )
        };
        match (self.state, message) {
            (_, Message::Notification(n)) => {
                self.tear_down(None, DownReason::NotificationReceived(n))
            }
            (OpenSent, Message::Open(open)) => match self.negotiate(&open) {
                Ok(negotiated) => {
                    self.negotiated = Some(negotiated);
                    self.state = OpenConfirm;
                    let mut actions = vec![Action::Send(Message::Keepalive)];
                    actions.extend(self.arm_hold());
                    actions.extend(self.arm_keepalive());
                    actions
                }
                Err(n) => self.tear_down_with(n),
            },
            (OpenConfirm, Message::Keepalive) => {
                self.state = Established;
                let mut actions = Vec::new();
                actions.extend(self.arm_hold());
                actions.push(Action::ArmTimer(Timer::Stable, self.config.stable_period));
                if let Some(n) = &self.negotiated {
                    actions.push(Action::Established(n.clone()));
                }
                actions
            }
            (Established, Message::Keepalive | Message::Update(_)) => {
                self.arm_hold().into_iter().collect()
            }
            (Established, Message::RouteRefresh(rr)) => {
                let mut actions: Vec<Action> = self.arm_hold().into_iter().collect();
                // RFC 2918 §4: a request for a family not negotiated is ignored.
                if self
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.route_refresh && n.families.contains(&rr.family))
                {
                    actions.push(Action::RouteRefreshRequested(rr));
                }
                actions
            }
            (state, _) => self.tear_down_with(unexpected(state)),
        }
    }

    /// Checks the peer's OPEN and works out the session parameters, or the NOTIFICATION
    /// that refuses it.
    fn negotiate(&self, open: &OpenRepr) -> Result<Negotiated, NotificationRepr> {
        let c = &self.config;
        let refuse = |subcode| NotificationRepr::new(error_code::OPEN_MESSAGE, subcode);
        if matches!(open.hold_time, 1 | 2) {
            return Err(refuse(open_error::UNACCEPTABLE_HOLD_TIME));
        }

        let four_octet_as = open
            .capabilities
            .iter()
            .any(|cap| matches!(cap, Capability::FourOctetAs(_)));
        let peer_as = open.asn();
        let as_ok = match c.peer_as {
            PeerAs::Fixed(asn) => peer_as == asn,
            PeerAs::Internal => peer_as == c.local_as,
            PeerAs::External => peer_as != c.local_as,
        };
        // AS_TRANS is never a real AS: a peer that sends it without the 4-octet AS
        // capability cannot say which AS it is in.
        let trans_without_cap = !four_octet_as && open.my_as == AS_TRANS;
        if !as_ok || trans_without_cap {
            return Err(refuse(open_error::BAD_PEER_AS));
        }
        let internal = peer_as == c.local_as;

        // RFC 6286 §2.2: the identifier is a non-zero number, and within an AS unique.
        let id = open.bgp_identifier;
        if id.is_unspecified() || (internal && id == c.bgp_identifier) {
            return Err(refuse(open_error::BAD_BGP_IDENTIFIER));
        }

        let hold_time = c.hold_time.min(open.hold_time);
        let keepalive_time = if hold_time == 0 {
            0
        } else {
            let third = (hold_time / 3).max(1);
            c.keepalive_time.map_or(third, |k| k.clamp(1, third))
        };

        let mut peer_families: Vec<Family> = open
            .capabilities
            .iter()
            .filter_map(|cap| match cap {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if peer_families.is_empty() {
            peer_families.push(Family::IPV4_UNICAST);
        }
        let families = c
            .families
            .iter()
            .copied()
            .filter(|f| peer_families.contains(f))
            .collect();

        let has = |want: fn(&Capability) -> bool| open.capabilities.iter().any(want);
        let route_refresh = c.route_refresh && has(|cap| matches!(cap, Capability::RouteRefresh));
        let extended_message =
            c.extended_message && has(|cap| matches!(cap, Capability::ExtendedMessage));
        let extended_next_hop = if c.extended_next_hop {
            open.capabilities
                .iter()
                .filter_map(|cap| match cap {
                    Capability::ExtendedNextHop(entries) => Some(entries),
                    _ => None,
                })
                .flatten()
                .copied()
                .filter(|e| *e == ExtendedNextHopEntry::IPV4_UNICAST_OVER_IPV6)
                .take(1)
                .collect()
        } else {
            Vec::new()
        };
        let peer_graceful_restart =
            c.graceful_restart
                .and(open.capabilities.iter().find_map(|cap| match cap {
                    Capability::GracefulRestart(gr) => Some(gr.clone()),
                    _ => None,
                }));
        let graceful_notification = c.graceful_restart.is_some_and(|ours| ours.notification)
            && peer_graceful_restart
                .as_ref()
                .is_some_and(|theirs| theirs.notification);

        Ok(Negotiated {
            peer_as,
            peer_bgp_identifier: id,
            internal,
            hold_time,
            keepalive_time,
            families,
            four_octet_as,
            route_refresh,
            extended_next_hop,
            extended_message,
            peer_graceful_restart,
            graceful_notification,
        })
    }
}

fn collision() -> NotificationRepr {
    NotificationRepr::new(error_code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{UpdateRepr, update_error};

    const LOCAL_AS: u32 = 64512;
    const PEER_AS: u32 = 4_200_000_001;

    fn config() -> Config {
        let mut c = Config::new(LOCAL_AS, PeerAs::Fixed(PEER_AS), Ipv4Addr::new(10, 0, 0, 1));
        c.backoff = Backoff {
            initial: Duration::from_secs(4),
            max: Duration::from_secs(60),
        };
        c
    }

    /// Jitter that is always zero: waits are exactly three quarters of the backoff.
    fn no_jitter() -> impl Random {
        || 0u32
    }

    fn session(config: Config) -> Session<impl Random> {
        Session::new(config, no_jitter()).unwrap()
    }

    fn peer_open(asn: u32, hold_time: u16, caps: Vec<Capability>) -> Event {
        Event::MessageReceived(Message::Open(OpenRepr::new(
            asn,
            hold_time,
            Ipv4Addr::new(10, 0, 0, 2),
            caps,
        )))
    }

    fn full_caps() -> Vec<Capability> {
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
        ]
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Drives a session to Established and returns what it negotiated.
    fn establish(s: &mut Session<impl Random>, hold: u16) -> Negotiated {
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        s.handle(peer_open(PEER_AS, hold, full_caps()));
        let actions = s.handle(Event::MessageReceived(Message::Keepalive));
        assert_eq!(s.state(), State::Established);
        actions
            .into_iter()
            .find_map(|a| match a {
                Action::Established(n) => Some(n),
                _ => None,
            })
            .expect("Established action")
    }

    fn retry_wait(actions: &[Action]) -> Option<Duration> {
        actions.iter().find_map(|a| match a {
            Action::ArmTimer(Timer::ConnectRetry, d) => Some(*d),
            _ => None,
        })
    }

    #[test]
    fn successful_establishment() {
        let mut s = session(config());
        assert_eq!(
            s.handle(Event::Start),
            [
                Action::Connect,
                Action::ArmTimer(Timer::ConnectRetry, secs(30))
            ]
        );
        assert_eq!(s.state(), State::Connect);

        let actions = s.handle(Event::TcpConnected);
        assert_eq!(s.state(), State::OpenSent);
        let open = s.open_message();
        assert_eq!(open.my_as, LOCAL_AS as u16);
        assert_eq!(open.asn(), LOCAL_AS);
        assert_eq!(
            actions,
            [
                Action::CancelTimer(Timer::ConnectRetry),
                Action::Send(Message::Open(open)),
                Action::ArmTimer(Timer::Hold, OPEN_HOLD_TIME),
            ]
        );

        let actions = s.handle(peer_open(PEER_AS, 180, full_caps()));
        assert_eq!(s.state(), State::OpenConfirm);
        assert_eq!(
            actions,
            [
                Action::Send(Message::Keepalive),
                Action::ArmTimer(Timer::Hold, secs(90)),
                Action::ArmTimer(Timer::Keepalive, secs(30)),
            ]
        );
        assert_eq!(s.options(), Options::FOUR_OCTET_AS);

        let actions = s.handle(Event::MessageReceived(Message::Keepalive));
        assert_eq!(s.state(), State::Established);
        let negotiated = s.negotiated().unwrap().clone();
        assert_eq!(
            actions,
            [
                Action::ArmTimer(Timer::Hold, secs(90)),
                Action::ArmTimer(Timer::Stable, secs(60)),
                Action::Established(negotiated.clone()),
            ]
        );
        assert_eq!(negotiated.peer_as, PEER_AS);
        assert!(!negotiated.internal);
        assert_eq!(
            negotiated.families,
            [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
        );
        assert!(negotiated.route_refresh);

        // Keepalives go out when their timer fires; anything received restarts the hold
        // timer.
        assert_eq!(
            s.handle(Event::TimerFired(Timer::Keepalive)),
            [
                Action::Send(Message::Keepalive),
                Action::ArmTimer(Timer::Keepalive, secs(30))
            ]
        );
        assert_eq!(
            s.handle(Event::MessageReceived(Message::Update(
                UpdateRepr::default()
            ))),
            [Action::ArmTimer(Timer::Hold, secs(90))]
        );
        // An UPDATE we send postpones the next KEEPALIVE.
        assert_eq!(
            s.handle(Event::UpdateSent),
            [Action::ArmTimer(Timer::Keepalive, secs(30))]
        );
    }

    #[test]
    fn hold_time_negotiation() {
        // The smaller hold time wins; keepalive is a third of it.
        let mut s = session(config());
        let n = establish(&mut s, 9);
        assert_eq!((n.hold_time, n.keepalive_time), (9, 3));

        // A configured keepalive is kept when it fits in a third of the hold time...
        let mut c = config();
        c.keepalive_time = Some(10);
        let mut s = session(c.clone());
        let n = establish(&mut s, 90);
        assert_eq!((n.hold_time, n.keepalive_time), (90, 10));
        // ... and shortened when the peer's hold time is shorter.
        let mut s = session(c);
        let n = establish(&mut s, 15);
        assert_eq!((n.hold_time, n.keepalive_time), (15, 5));

        // Zero means no hold timer and no keepalives.
        let mut s = session(config());
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        let actions = s.handle(peer_open(PEER_AS, 0, full_caps()));
        assert_eq!(
            actions,
            [
                Action::Send(Message::Keepalive),
                Action::CancelTimer(Timer::Hold)
            ]
        );
        assert_eq!(s.negotiated().unwrap().keepalive_time, 0);

        // 1 and 2 seconds are refused with OPEN error 6.
        for hold in [1, 2] {
            let mut s = session(config());
            s.handle(Event::Start);
            s.handle(Event::TcpConnected);
            let actions = s.handle(peer_open(PEER_AS, hold, full_caps()));
            assert_eq!(
                actions[0],
                Action::Send(Message::Notification(NotificationRepr::new(2, 6)))
            );
            assert_eq!(s.state(), State::Active);
        }

        let mut bad = config();
        bad.hold_time = 2;
        assert_eq!(
            Session::new(bad, no_jitter()).err(),
            Some(ConfigError::HoldTime(2))
        );
    }

    #[test]
    fn hold_timer_expiry() {
        let mut s = session(config());
        establish(&mut s, 90);
        let actions = s.handle(Event::TimerFired(Timer::Hold));
        let expired = NotificationRepr::new(4, 0);
        assert_eq!(
            actions,
            [
                Action::Send(Message::Notification(expired.clone())),
                Action::Close,
                Action::CancelTimer(Timer::Hold),
                Action::CancelTimer(Timer::Keepalive),
                Action::CancelTimer(Timer::Stable),
                Action::Down {
                    reason: DownReason::NotificationSent(expired),
                    established: true
                },
                Action::ArmTimer(Timer::ConnectRetry, secs(3)),
            ]
        );
        assert_eq!(s.state(), State::Active);
        assert_eq!(s.negotiated(), None);
        assert_eq!(
            s.handle(Event::TimerFired(Timer::ConnectRetry))[0],
            Action::Connect
        );
    }

    #[test]
    fn open_rejected_for_bad_peer_as() {
        let mut s = session(config());
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        let actions = s.handle(peer_open(65000, 90, full_caps()));
        let bad_as = NotificationRepr::new(2, 2);
        assert_eq!(
            actions[0],
            Action::Send(Message::Notification(bad_as.clone()))
        );
        assert!(actions.contains(&Action::Down {
            reason: DownReason::NotificationSent(bad_as),
            established: false
        }));

        // A dynamic peer: internal accepts our AS only, external any other.
        let mut c = config();
        c.peer_as = PeerAs::Internal;
        let mut s = session(c.clone());
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        s.handle(peer_open(LOCAL_AS, 90, full_caps()));
        assert_eq!(s.state(), State::OpenConfirm);
        assert!(s.negotiated().unwrap().internal);
        c.peer_as = PeerAs::External;
        let mut s = session(c);
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        let actions = s.handle(peer_open(LOCAL_AS, 90, full_caps()));
        assert_eq!(
            actions[0],
            Action::Send(Message::Notification(NotificationRepr::new(2, 2)))
        );
    }

    #[test]
    fn bgp_identifier_checks() {
        let open = |id| {
            Event::MessageReceived(Message::Open(OpenRepr::new(LOCAL_AS, 90, id, full_caps())))
        };
        let mut c = config();
        c.peer_as = PeerAs::Internal;
        for id in [Ipv4Addr::UNSPECIFIED, c.bgp_identifier] {
            let mut s = session(c.clone());
            s.handle(Event::Start);
            s.handle(Event::TcpConnected);
            let actions = s.handle(open(id));
            assert_eq!(
                actions[0],
                Action::Send(Message::Notification(NotificationRepr::new(2, 3)))
            );
        }
    }

    #[test]
    fn capabilities_intersection() {
        let mut c = config();
        c.extended_next_hop = true;
        c.extended_message = true;
        c.graceful_restart = Some(GracefulRestartConfig::new(120, true));
        let mut s = session(c);
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        let gr = GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: 90,
            families: vec![],
        };
        s.handle(peer_open(
            PEER_AS,
            90,
            vec![
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::Multiprotocol(Family::new(25, 70)), // EVPN: not ours
                Capability::ExtendedNextHop(vec![ExtendedNextHopEntry::IPV4_UNICAST_OVER_IPV6]),
                Capability::ExtendedMessage,
                Capability::GracefulRestart(gr.clone()),
                Capability::Unknown {
                    code: 73,
                    value: b"router".to_vec(),
                },
            ],
        ));
        let n = s.negotiated().unwrap();
        assert_eq!(n.families, [Family::IPV6_UNICAST]);
        assert!(!n.route_refresh);
        assert!(n.ipv4_over_ipv6());
        assert!(n.extended_message);
        assert_eq!(s.options().max_message_len, 65535);
        assert_eq!(n.peer_graceful_restart, Some(gr));

        // The peer did not set the N bit: only graceful restart without it is in force.
        assert!(!n.graceful_notification);

        // Our OPEN offers what was configured: the R bit, the N bit, and the F bit for
        // every family (the node forwards while the speaker restarts).
        let ours = s.open_message();
        let gr = ours
            .capabilities
            .iter()
            .find_map(|c| match c {
                Capability::GracefulRestart(gr) => Some(gr.clone()),
                _ => None,
            })
            .unwrap();
        assert!(gr.restarting && gr.notification);
        assert_eq!(gr.restart_time, 120);
        assert_eq!(
            gr.families,
            [Family::IPV4_UNICAST, Family::IPV6_UNICAST].map(|family| GracefulRestartFamily {
                family,
                forwarding_preserved: true
            })
        );

        // A peer with no multiprotocol capability implies IPv4 unicast only; one without the
        // 4-octet AS capability gets 2-octet AS paths.
        let mut s = session(Config::new(
            LOCAL_AS,
            PeerAs::Fixed(65001),
            Ipv4Addr::new(10, 0, 0, 1),
        ));
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        s.handle(Event::MessageReceived(Message::Open(OpenRepr {
            my_as: 65001,
            hold_time: 90,
            bgp_identifier: Ipv4Addr::new(10, 0, 0, 2),
            capabilities: vec![],
        })));
        let n = s.negotiated().unwrap();
        assert_eq!(n.families, [Family::IPV4_UNICAST]);
        assert!(!n.four_octet_as);
        assert_eq!(s.options(), Options::default());
    }

    #[test]
    fn backoff_grows_while_the_peer_rejects_us() {
        let mut s = session(config());
        s.handle(Event::Start);
        let mut waits = Vec::new();
        for _ in 0..7 {
            s.handle(Event::TcpConnected);
            let actions = s.handle(Event::MessageReceived(Message::Notification(
                NotificationRepr::new(2, 2),
            )));
            waits.push(retry_wait(&actions).unwrap().as_secs());
            assert_eq!(s.state(), State::Active);
            assert_eq!(
                s.handle(Event::TimerFired(Timer::ConnectRetry))[0],
                Action::Connect
            );
        }
        // 4, 8, 16, 32, 60, 60, 60 s less a quarter (the jitter source gives zero).
        assert_eq!(waits, [3, 6, 12, 24, 45, 45, 45]);

        // Failed TCP attempts back off too.
        let mut s = session(config());
        s.handle(Event::Start);
        let first = retry_wait(&s.handle(Event::TcpFailed)).unwrap();
        s.handle(Event::TimerFired(Timer::ConnectRetry));
        let second = retry_wait(&s.handle(Event::TcpFailed)).unwrap();
        assert_eq!((first, second), (secs(3), secs(6)));
    }

    #[test]
    fn backoff_resets_only_after_a_stable_session() {
        let mut s = session(config());
        establish(&mut s, 90);
        // Down before the stable period: the backoff keeps growing.
        let w1 = retry_wait(&s.handle(Event::TcpClosed)).unwrap();
        s.handle(Event::TimerFired(Timer::ConnectRetry));
        s.handle(Event::TcpConnected);
        s.handle(peer_open(PEER_AS, 90, full_caps()));
        s.handle(Event::MessageReceived(Message::Keepalive));
        let w2 = retry_wait(&s.handle(Event::TcpClosed)).unwrap();
        assert_eq!((w1, w2), (secs(3), secs(6)));

        // Established through the stable period: the next wait is the first one again.
        s.handle(Event::TimerFired(Timer::ConnectRetry));
        s.handle(Event::TcpConnected);
        s.handle(peer_open(PEER_AS, 90, full_caps()));
        s.handle(Event::MessageReceived(Message::Keepalive));
        assert_eq!(s.handle(Event::TimerFired(Timer::Stable)), []);
        let w3 = retry_wait(&s.handle(Event::TcpClosed)).unwrap();
        assert_eq!(w3, secs(3));
    }

    #[test]
    fn jitter_shortens_by_at_most_a_quarter() {
        let mut s = Session::new(config(), || u32::MAX).unwrap();
        s.handle(Event::Start);
        let wait = retry_wait(&s.handle(Event::TcpFailed)).unwrap();
        assert!(wait > secs(3) && wait < secs(4), "{wait:?}");
    }

    #[test]
    fn passive_sessions_never_connect() {
        let mut c = config();
        c.passive = true;
        let mut s = session(c);
        assert_eq!(s.handle(Event::Start), []);
        assert_eq!(s.state(), State::Active);
        assert_eq!(s.handle(Event::IncomingConnection)[0], Action::Accept);
        assert_eq!(s.state(), State::OpenSent);
        let actions = s.handle(Event::TcpClosed);
        assert!(!actions.contains(&Action::Connect));
        assert_eq!(retry_wait(&actions), None);
        assert_eq!(s.state(), State::Active);
    }

    #[test]
    fn stop_sends_a_shutdown_communication() {
        let mut s = session(config());
        establish(&mut s, 90);
        let actions = s.handle(Event::Stop {
            reason: "node-a is shutting down".into(),
            kind: StopKind::Restart,
        });
        let Action::Send(Message::Notification(n)) = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!((n.code, n.subcode), (6, 2));
        assert_eq!(
            n.shutdown_communication(),
            Some(Ok("node-a is shutting down"))
        );
        assert_eq!(retry_wait(&actions), None);
        assert_eq!(s.state(), State::Idle);
        // Stopped sessions stay down until started again.
        assert_eq!(s.handle(Event::TimerFired(Timer::ConnectRetry)), []);
        assert_eq!(s.handle(Event::Start)[0], Action::Connect);
    }

    /// What each way of stopping sends, for each graceful restart negotiation: the table of
    /// [`StopKind`].
    #[test]
    fn stopping_keeps_routes_only_where_graceful_restart_allows() {
        let gr = |notification| GracefulRestart {
            restarting: false,
            notification,
            restart_time: 120,
            families: vec![],
        };
        // (our GR, the peer's GR capability): N negotiated, GR without N, no GR at all.
        let cases = [
            ("N bit", true, Some(gr(true))),
            ("no N bit", true, Some(gr(false))),
            ("peer without GR", true, None),
            ("we without GR", false, Some(gr(true))),
        ];
        let sent = |ours: bool, theirs: &Option<GracefulRestart>, kind| {
            let mut c = config();
            if ours {
                c.graceful_restart = Some(GracefulRestartConfig::new(120, false));
            }
            let mut s = session(c);
            s.handle(Event::Start);
            s.handle(Event::TcpConnected);
            let mut caps = full_caps();
            caps.extend(theirs.clone().map(Capability::GracefulRestart));
            s.handle(peer_open(PEER_AS, 90, caps));
            s.handle(Event::MessageReceived(Message::Keepalive));
            assert_eq!(s.state(), State::Established);
            let actions = s.handle(Event::Stop {
                reason: "node-a restarts".into(),
                kind,
            });
            assert_eq!(s.state(), State::Idle);
            assert!(actions.contains(&Action::Close), "{actions:?}");
            actions.into_iter().find_map(|a| match a {
                Action::Send(Message::Notification(n)) => Some(n),
                _ => None,
            })
        };
        let code = |n: Option<NotificationRepr>| {
            n.map(|n| match n.hard_reset_inner() {
                Some(inner) => format!("hard {}/{}", inner.code, inner.subcode),
                None => format!("{}/{}", n.code, n.subcode),
            })
        };
        for (name, ours, theirs) in cases {
            let n_bit = name == "N bit";
            let graceful = n_bit || name == "no N bit";
            let got = |kind| code(sent(ours, &theirs, kind));
            let hard = |sub: u8| {
                Some(if n_bit {
                    format!("hard 6/{sub}")
                } else {
                    format!("6/{sub}")
                })
            };
            assert_eq!(got(StopKind::Shutdown), hard(2), "{name}");
            assert_eq!(got(StopKind::Deconfigured), hard(3), "{name}");
            let kept = |n_bit_sub: u8, else_sub: u8| {
                if n_bit {
                    Some(format!("6/{n_bit_sub}"))
                } else if graceful {
                    None
                } else {
                    Some(format!("6/{else_sub}"))
                }
            };
            assert_eq!(got(StopKind::Restart), kept(4, 2), "{name}");
            assert_eq!(got(StopKind::Reconfigure), kept(6, 6), "{name}");
            assert_eq!(got(StopKind::BfdDown), Some("6/10".into()), "{name}");
        }
        // A restart toward an N-bit peer still says why.
        let n = sent(true, &Some(gr(true)), StopKind::Restart).unwrap();
        assert_eq!(n.shutdown_communication(), Some(Ok("node-a restarts")));
        // Before the OPENs nothing is negotiated: a plain Cease.
        let mut c = config();
        c.graceful_restart = Some(GracefulRestartConfig::new(120, false));
        let mut s = session(c);
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        let actions = s.handle(Event::Stop {
            reason: "bye".into(),
            kind: StopKind::Restart,
        });
        assert_eq!(
            actions[0],
            Action::Send(Message::Notification(NotificationRepr::cease(2, "bye")))
        );
    }

    #[test]
    fn errors_send_the_right_notification() {
        // A malformed UPDATE in Established.
        let mut s = session(config());
        establish(&mut s, 90);
        let e = WireError::MalformedAttributeList("test");
        let actions = s.handle(Event::MalformedMessage(e));
        assert_eq!(
            actions[0],
            Action::Send(Message::Notification(NotificationRepr::new(
                3,
                update_error::MALFORMED_ATTRIBUTE_LIST
            )))
        );
        assert!(actions.contains(&Action::Down {
            reason: DownReason::NotificationSent(NotificationRepr::new(3, 1)),
            established: true
        }));

        // An UPDATE before the session is up is an FSM error (RFC 6608).
        let mut s = session(config());
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        let actions = s.handle(Event::MessageReceived(Message::Update(
            UpdateRepr::default(),
        )));
        assert_eq!(
            actions[0],
            Action::Send(Message::Notification(NotificationRepr::new(5, 1)))
        );
        // A second OPEN in Established likewise.
        let mut s = session(config());
        establish(&mut s, 90);
        let actions = s.handle(peer_open(PEER_AS, 90, full_caps()));
        assert_eq!(
            actions[0],
            Action::Send(Message::Notification(NotificationRepr::new(5, 3)))
        );
        // A NOTIFICATION from the peer is never answered with one.
        let mut s = session(config());
        establish(&mut s, 90);
        let cease = NotificationRepr::cease(cease::ADMINISTRATIVE_RESET, "maintenance");
        let actions = s.handle(Event::MessageReceived(Message::Notification(cease.clone())));
        assert_eq!(actions[0], Action::Close);
        assert!(actions.contains(&Action::Down {
            reason: DownReason::NotificationReceived(cease),
            established: true
        }));
    }

    #[test]
    fn route_refresh_only_for_negotiated_families() {
        let mut s = session(config());
        establish(&mut s, 90);
        let v6 = RouteRefreshRepr::new(Family::IPV6_UNICAST);
        let actions = s.handle(Event::MessageReceived(Message::RouteRefresh(v6)));
        assert_eq!(
            actions,
            [
                Action::ArmTimer(Timer::Hold, secs(90)),
                Action::RouteRefreshRequested(v6)
            ]
        );
        let other = RouteRefreshRepr::new(Family::new(1, 2));
        let actions = s.handle(Event::MessageReceived(Message::RouteRefresh(other)));
        assert_eq!(actions, [Action::ArmTimer(Timer::Hold, secs(90))]);
    }

    #[test]
    fn connect_timeout_then_retry() {
        let mut s = session(config());
        s.handle(Event::Start);
        let actions = s.handle(Event::TimerFired(Timer::ConnectRetry));
        assert_eq!(
            actions,
            [
                Action::Close,
                Action::ArmTimer(Timer::ConnectRetry, secs(3))
            ]
        );
        assert_eq!(s.state(), State::Active);
        // A connection we gave up on is not used if it completes late...
        assert_eq!(s.handle(Event::TcpConnected), []);
        assert_eq!(s.state(), State::Active);
        // ... but the peer may connect to us while we wait.
        s.handle(Event::IncomingConnection);
        assert_eq!(s.state(), State::OpenSent);
    }

    #[test]
    fn connection_collisions() {
        let collision = NotificationRepr::new(6, 7);
        // Idle refuses; Connect drops its own attempt for the peer's connection.
        let mut s = session(config());
        assert_eq!(s.handle(Event::IncomingConnection), [Action::Reject(None)]);
        s.handle(Event::Start);
        let open = s.open_message();
        assert_eq!(
            s.handle(Event::IncomingConnection),
            [
                Action::Close,
                Action::Accept,
                Action::CancelTimer(Timer::ConnectRetry),
                Action::Send(Message::Open(open)),
                Action::ArmTimer(Timer::Hold, OPEN_HOLD_TIME),
            ]
        );
        assert_eq!(s.state(), State::OpenSent);
        // In OpenSent the peer's identifier is not known yet: the existing connection wins.
        assert_eq!(
            s.handle(Event::IncomingConnection),
            [Action::Reject(Some(collision.clone()))]
        );
        assert_eq!(s.state(), State::OpenSent);

        // In OpenConfirm the higher identifier's connection wins. The peer's (10.0.0.2) is
        // higher than ours (10.0.0.1): its new connection replaces ours.
        s.handle(peer_open(PEER_AS, 90, full_caps()));
        assert_eq!(s.state(), State::OpenConfirm);
        let actions = s.handle(Event::IncomingConnection);
        assert_eq!(
            actions[..4],
            [
                Action::Send(Message::Notification(collision.clone())),
                Action::Close,
                Action::CancelTimer(Timer::Keepalive),
                Action::Accept,
            ]
        );
        assert!(matches!(actions[5], Action::Send(Message::Open(_))));
        assert_eq!(s.state(), State::OpenSent);
        assert_eq!(s.negotiated(), None);
        // A collision is no failure: no retry is scheduled and the backoff stays put.
        assert_eq!(retry_wait(&actions), None);

        // Ours is higher: the new connection is refused.
        let mut c = config();
        c.bgp_identifier = Ipv4Addr::new(10, 0, 0, 9);
        let mut s = session(c);
        s.handle(Event::Start);
        s.handle(Event::TcpConnected);
        s.handle(peer_open(PEER_AS, 90, full_caps()));
        assert_eq!(
            s.handle(Event::IncomingConnection),
            [Action::Reject(Some(collision.clone()))]
        );
        assert_eq!(s.state(), State::OpenConfirm);

        // An Established session keeps its connection.
        let mut s = session(config());
        establish(&mut s, 90);
        assert_eq!(
            s.handle(Event::IncomingConnection),
            [Action::Reject(Some(collision))]
        );
        assert_eq!(s.state(), State::Established);
    }
}
