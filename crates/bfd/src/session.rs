//! One BFD session in asynchronous mode (RFC 5880 §6), as a pure type in the manner of the
//! BGP session: [`Session::handle`] takes an [`Event`] (a packet received, a timer fired,
//! an administrative change) and returns [`Action`]s (send this packet, arm that timer, the
//! state changed). It never reads a clock, opens a socket or draws a random number itself:
//! the jitter of the transmit interval comes from an injected [`Random`], so tests run
//! without sockets or sleeps.
//!
//! What it does, with the RFC's variables (§6.8.1):
//! - The three-way handshake Down → Init → Up and back (§6.8.6), the detection time
//!   (`bfd.DetectMult` of the peer × the slower of our Required Min RX and its Desired Min
//!   TX, §6.8.4) and the transmit interval (the slower of our Desired Min TX and its
//!   Required Min RX, less 0–25% jitter, §6.8.7); nothing is sent periodically while the
//!   peer's Required Min RX is zero or it runs demand mode.
//! - While not Up, Desired Min TX is at least one second (§6.8.3); once Up the configured
//!   value takes over through a Poll Sequence (P bit until the peer answers with F).
//!   A P bit from the peer is answered at once with F.
//! - Passive role (§6.1): nothing is sent until the peer has sent something, and again
//!   after the peer has gone silent for a detection time (`bfd.RemoteDiscr` reset).
//! - AdminDown (§6.8.16): [`Event::Stop`] says so to the peer, which must not take it for a
//!   failure; the session sends nothing else until [`Event::Start`].
//! - The echo function is not run: Required Min Echo RX is sent as zero (§6.8.9), so the
//!   peer sends no echo packets through this node, and none are sent. The C bit is clear:
//!   this BFD shares its fate with the control plane (RFC 5882 §4.3.1).
//! - No authentication (packets with the A bit are refused by [`crate::packet`]).

use crate::packet::{ControlRepr, Diagnostic, State};
use std::time::Duration;

/// RFC 5880 §6.8.3: while not Up, packets go at most once a second.
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// A session's configuration: MetalLB's BFDProfile, less what herald does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Config {
    /// Our discriminator: non-zero, unique among this system's sessions.
    pub local_discriminator: u32,
    /// `transmitInterval`: how often we would like to send.
    pub desired_min_tx: Duration,
    /// `receiveInterval`: how often we can take packets.
    pub required_min_rx: Duration,
    /// `detectMultiplier`: how many intervals the peer may miss.
    pub detect_multiplier: u8,
    /// `passiveMode`: wait for the peer to speak first.
    pub passive: bool,
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.local_discriminator == 0 {
            return Err(ConfigError::Discriminator);
        }
        if self.detect_multiplier == 0 {
            return Err(ConfigError::DetectMultiplier);
        }
        for d in [self.desired_min_tx, self.required_min_rx] {
            if d.is_zero() || micros(d) == u32::MAX {
                return Err(ConfigError::Interval(d));
            }
        }
        Ok(())
    }
}

/// A configuration a session cannot run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the local discriminator must not be zero")]
    Discriminator,
    #[error("the detect multiplier must not be zero")]
    DetectMultiplier,
    #[error("interval {0:?} is not between 1 µs and 71 minutes")]
    Interval(Duration),
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

/// The timers the session asks its task to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Time to send the next periodic packet.
    Transmit,
    /// The peer has been silent for a detection time.
    Detect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Begin (or resume after [`Event::Stop`]): the session is Down and, unless passive,
    /// starts sending.
    Start,
    /// Hold the session administratively down and tell the peer.
    Stop,
    /// A packet for this session, checked by [`crate::packet`].
    Received(ControlRepr),
    TimerFired(Timer),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(ControlRepr),
    /// Start the timer, replacing it if it runs.
    ArmTimer(Timer, Duration),
    CancelTimer(Timer),
    StateChanged {
        from: State,
        to: State,
        /// Why, when it went down.
        diagnostic: Diagnostic,
    },
}

/// What the session knows of the peer (RFC 5880 §6.8.1 `bfd.Remote*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Remote {
    /// 0 until the peer is heard, and again after it went silent.
    pub discriminator: u32,
    pub state: Option<State>,
    pub diagnostic: Diagnostic,
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_multiplier: u8,
    pub demand: bool,
}

/// One session.
#[derive(Debug)]
pub struct Session<R> {
    config: Config,
    random: R,
    state: State,
    diagnostic: Diagnostic,
    remote: Remote,
    /// Sending P bits until the peer answers with F.
    polling: bool,
    /// The Desired Min TX we advertise now: at least [`SLOW_TX`] while not Up.
    advertised_tx: Duration,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn from_micros(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

impl<R: Random> Session<R> {
    pub fn new(config: Config, random: R) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Session {
            advertised_tx: config.desired_min_tx.max(SLOW_TX),
            config,
            random,
            state: State::AdminDown,
            diagnostic: Diagnostic::NONE,
            remote: Remote {
                // §6.8.1: "initialized to 1" microsecond.
                required_min_rx: Duration::from_micros(1),
                ..Remote::default()
            },
            polling: false,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// `bfd.LocalDiag`: why the session last went down.
    pub fn diagnostic(&self) -> Diagnostic {
        self.diagnostic
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The interval between our periodic packets, before jitter; `None` while none are
    /// sent (passive and not yet spoken to, AdminDown, or the peer asked for none).
    pub fn transmit_interval(&self) -> Option<Duration> {
        if self.state == State::AdminDown && self.diagnostic == Diagnostic::ADMINISTRATIVELY_DOWN {
            return None;
        }
        if self.config.passive && self.remote.discriminator == 0 {
            return None;
        }
        if self.remote.required_min_rx.is_zero() {
            return None;
        }
        if self.remote.demand && self.state == State::Up && self.remote.state == Some(State::Up) {
            return None;
        }
        Some(self.advertised_tx.max(self.remote.required_min_rx))
    }

    /// How long the peer may be silent before the session goes down (§6.8.4).
    pub fn detection_time(&self) -> Duration {
        let interval = self.config.required_min_rx.max(self.remote.desired_min_tx);
        interval * u32::from(self.remote.detect_multiplier.max(1))
    }

    /// The Desired Min TX we advertise now.
    pub fn advertised_tx(&self) -> Duration {
        self.advertised_tx
    }

    /// Whether a Poll Sequence is running.
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// The packet we would send now.
    pub fn packet(&self) -> ControlRepr {
        ControlRepr {
            diagnostic: self.diagnostic,
            state: self.state,
            poll: self.polling,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_multiplier: self.config.detect_multiplier,
            my_discriminator: self.config.local_discriminator,
            your_discriminator: self.remote.discriminator,
            desired_min_tx: micros(self.advertised_tx),
            required_min_rx: if self.state == State::AdminDown {
                // Nothing more, please: we are going away.
                0
            } else {
                micros(self.config.required_min_rx)
            },
            required_min_echo_rx: 0,
        }
    }

    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Start => self.start(),
            Event::Stop => self.stop(),
            Event::Received(packet) => self.received(packet),
            Event::TimerFired(Timer::Transmit) => self.transmit(),
            Event::TimerFired(Timer::Detect) => self.detect_expired(),
        }
    }

    fn start(&mut self) -> Vec<Action> {
        if self.state != State::AdminDown {
            return Vec::new();
        }
        let mut actions = Vec::new();
        self.set_state(State::Down, Diagnostic::NONE, &mut actions);
        actions.extend(self.transmit());
        actions
    }

    fn stop(&mut self) -> Vec<Action> {
        if self.state == State::AdminDown {
            return Vec::new();
        }
        let mut actions = Vec::new();
        self.set_state(
            State::AdminDown,
            Diagnostic::ADMINISTRATIVELY_DOWN,
            &mut actions,
        );
        self.polling = false;
        // One packet says so; the periodic ones stop.
        actions.push(Action::Send(self.packet()));
        actions.push(Action::CancelTimer(Timer::Transmit));
        actions.push(Action::CancelTimer(Timer::Detect));
        actions
    }

    fn set_state(&mut self, to: State, diagnostic: Diagnostic, actions: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        if to != State::Up {
            self.diagnostic = diagnostic;
        }
        // §6.8.3: slow while not Up; once Up, the configured rate through a Poll Sequence.
        let wanted = if to == State::Up {
            self.config.desired_min_tx
        } else {
            self.config.desired_min_tx.max(SLOW_TX)
        };
        if wanted != self.advertised_tx {
            self.advertised_tx = wanted;
            self.polling = to == State::Up;
        }
        if to != State::Up {
            self.polling = false;
        }
        actions.push(Action::StateChanged {
            from,
            to,
            diagnostic: self.diagnostic,
        });
    }

    /// Sends the periodic packet (if one is due at all) and arms the next.
    fn transmit(&mut self) -> Vec<Action> {
        let Some(interval) = self.transmit_interval() else {
            return vec![Action::CancelTimer(Timer::Transmit)];
        };
        vec![
            Action::Send(self.packet()),
            Action::ArmTimer(Timer::Transmit, self.jittered(interval)),
        ]
    }

    /// §6.8.7: 0–25% shorter, or 10–25% with a detect multiplier of one.
    fn jittered(&mut self, interval: Duration) -> Duration {
        let (least, most) = if self.config.detect_multiplier == 1 {
            (10u128, 25u128)
        } else {
            (0, 25)
        };
        let span = most - least;
        let r = u128::from(self.random.next_u32());
        let percent_x1000 = least * 1000 + span * 1000 * r / (1u128 << 32);
        let cut = interval.as_nanos() * percent_x1000 / 100_000;
        interval.saturating_sub(Duration::from_nanos(u64::try_from(cut).unwrap_or(0)))
    }

    fn detect_expired(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        if matches!(self.state, State::Init | State::Up) {
            self.set_state(
                State::Down,
                Diagnostic::CONTROL_DETECTION_TIME_EXPIRED,
                &mut actions,
            );
        }
        // §6.8.1: a peer silent for a detection time is forgotten.
        self.remote.discriminator = 0;
        self.remote.state = None;
        self.remote.demand = false;
        if self.state != State::AdminDown {
            actions.extend(self.transmit());
        }
        actions
    }

    fn received(&mut self, p: ControlRepr) -> Vec<Action> {
        let mut actions = Vec::new();
        let was_heard = self.remote.discriminator != 0;
        let old_interval = self.transmit_interval();
        self.remote.discriminator = p.my_discriminator;
        self.remote.state = Some(p.state);
        self.remote.diagnostic = p.diagnostic;
        self.remote.demand = p.demand;
        self.remote.required_min_rx = from_micros(p.required_min_rx);
        self.remote.desired_min_tx = from_micros(p.desired_min_tx);
        self.remote.detect_multiplier = p.detect_multiplier;
        if p.final_ {
            self.polling = false;
        }
        if self.state == State::AdminDown {
            return actions;
        }
        let state_before = self.state;
        match (self.state, p.state) {
            (State::Init | State::Up, State::AdminDown) => self.set_state(
                State::Down,
                Diagnostic::NEIGHBOR_SIGNALED_SESSION_DOWN,
                &mut actions,
            ),
            (State::Down, State::AdminDown) => {}
            (State::Down, State::Down) => {
                self.set_state(State::Init, Diagnostic::NONE, &mut actions)
            }
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.set_state(State::Up, Diagnostic::NONE, &mut actions)
            }
            (State::Up, State::Down) => self.set_state(
                State::Down,
                Diagnostic::NEIGHBOR_SIGNALED_SESSION_DOWN,
                &mut actions,
            ),
            _ => {}
        }
        actions.push(Action::ArmTimer(Timer::Detect, self.detection_time()));
        let changed = self.state != state_before;
        if p.poll {
            // §6.8.7: answer a Poll at once, whatever the transmit timer says.
            let mut answer = self.packet();
            answer.poll = false;
            answer.final_ = true;
            actions.push(Action::Send(answer));
        } else if changed {
            // Not required, but the peer's handshake should not wait for our timer.
            actions.push(Action::Send(self.packet()));
        }
        // A passive session speaks once spoken to; a changed rate takes effect now.
        let new_interval = self.transmit_interval();
        let rearm = !was_heard || changed || new_interval != old_interval;
        match new_interval {
            Some(i) if rearm => {
                let wait = self.jittered(i);
                actions.push(Action::ArmTimer(Timer::Transmit, wait));
            }
            None if old_interval.is_some() => actions.push(Action::CancelTimer(Timer::Transmit)),
            _ => {}
        }
        actions
    }

    /// Takes new intervals, multiplier and role without a flap: while Up, a Poll Sequence
    /// announces them (§6.8.3).
    pub fn reconfigure(&mut self, config: Config) -> Result<Vec<Action>, ConfigError> {
        config.validate()?;
        let config = Config {
            local_discriminator: self.config.local_discriminator,
            ..config
        };
        if config == self.config {
            return Ok(Vec::new());
        }
        self.config = config;
        let advertised = if self.state == State::Up {
            config.desired_min_tx
        } else {
            config.desired_min_tx.max(SLOW_TX)
        };
        self.advertised_tx = advertised;
        if self.state == State::Up {
            self.polling = true;
        }
        let mut actions = Vec::new();
        if self.state != State::AdminDown {
            actions.extend(self.transmit());
        }
        Ok(actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn config() -> Config {
        Config {
            local_discriminator: 7,
            desired_min_tx: 300 * MS,
            required_min_rx: 300 * MS,
            detect_multiplier: 3,
            passive: false,
        }
    }

    /// No jitter: intervals come out whole.
    fn session(config: Config) -> Session<impl Random> {
        Session::new(config, || 0u32).unwrap()
    }

    fn peer(state: State, your: u32) -> ControlRepr {
        ControlRepr {
            diagnostic: Diagnostic::NONE,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_multiplier: 3,
            my_discriminator: 42,
            your_discriminator: your,
            desired_min_tx: 200_000,
            required_min_rx: 250_000,
            required_min_echo_rx: 50_000,
        }
    }

    fn sent(actions: &[Action]) -> Vec<ControlRepr> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) => Some(*p),
                _ => None,
            })
            .collect()
    }

    fn armed(actions: &[Action], timer: Timer) -> Option<Duration> {
        actions.iter().rev().find_map(|a| match a {
            Action::ArmTimer(t, d) if *t == timer => Some(*d),
            _ => None,
        })
    }

    fn up(s: &mut Session<impl Random>) {
        s.handle(Event::Start);
        s.handle(Event::Received(peer(State::Down, 0)));
        s.handle(Event::Received(peer(State::Up, 7)));
        assert_eq!(s.state(), State::Up);
    }

    #[test]
    fn three_way_handshake() {
        let mut s = session(config());
        let actions = s.handle(Event::Start);
        assert_eq!(s.state(), State::Down);
        // Slow while not Up (§6.8.3), and the peer's Required Min RX is unknown: 1 µs.
        let first = sent(&actions)[0];
        assert_eq!(
            (first.state, first.your_discriminator, first.desired_min_tx),
            (State::Down, 0, 1_000_000)
        );
        assert_eq!(first.required_min_echo_rx, 0, "no echo through this node");
        assert_eq!(
            armed(&actions, Timer::Transmit),
            Some(Duration::from_secs(1))
        );

        // The peer is Down: we go Init and say so at once.
        let actions = s.handle(Event::Received(peer(State::Down, 0)));
        assert_eq!(s.state(), State::Init);
        assert!(actions.contains(&Action::StateChanged {
            from: State::Down,
            to: State::Init,
            diagnostic: Diagnostic::NONE
        }));
        let p = sent(&actions)[0];
        assert_eq!((p.state, p.your_discriminator), (State::Init, 42));
        // The detection time: the peer's multiplier × max(our RX 300, its TX 200).
        assert_eq!(armed(&actions, Timer::Detect), Some(900 * MS));

        // The peer is Up: so are we, and the configured rate begins with a Poll.
        let actions = s.handle(Event::Received(peer(State::Up, 7)));
        assert_eq!(s.state(), State::Up);
        let p = sent(&actions)[0];
        assert!(p.poll);
        assert_eq!(p.desired_min_tx, 300_000);
        // max(our TX 300, its RX 250).
        assert_eq!(s.transmit_interval(), Some(300 * MS));
        assert_eq!(armed(&actions, Timer::Transmit), Some(300 * MS));
        assert!(s.polling());
        // Periodic packets keep the P bit until the peer's F.
        let actions = s.handle(Event::TimerFired(Timer::Transmit));
        assert!(sent(&actions)[0].poll);
        let mut fin = peer(State::Up, 7);
        fin.final_ = true;
        s.handle(Event::Received(fin));
        assert!(!s.polling());
        let actions = s.handle(Event::TimerFired(Timer::Transmit));
        assert!(!sent(&actions)[0].poll);
    }

    #[test]
    fn a_poll_is_answered_at_once_with_final() {
        let mut s = session(config());
        up(&mut s);
        let mut poll = peer(State::Up, 7);
        poll.poll = true;
        poll.desired_min_tx = 50_000;
        let actions = s.handle(Event::Received(poll));
        let answer = sent(&actions)[0];
        assert!(answer.final_ && !answer.poll);
        // Its faster TX counts for detection only as far as our RX allows.
        assert_eq!(s.detection_time(), 900 * MS);
    }

    #[test]
    fn silence_takes_the_session_down() {
        let mut s = session(config());
        up(&mut s);
        let actions = s.handle(Event::TimerFired(Timer::Detect));
        assert_eq!(s.state(), State::Down);
        assert!(actions.contains(&Action::StateChanged {
            from: State::Up,
            to: State::Down,
            diagnostic: Diagnostic::CONTROL_DETECTION_TIME_EXPIRED
        }));
        let p = sent(&actions)[0];
        assert_eq!(
            (
                p.state,
                p.diagnostic,
                p.your_discriminator,
                p.desired_min_tx
            ),
            (
                State::Down,
                Diagnostic::CONTROL_DETECTION_TIME_EXPIRED,
                0,
                1_000_000
            )
        );
    }

    #[test]
    fn the_peer_going_down_or_admin_down() {
        let mut s = session(config());
        up(&mut s);
        let actions = s.handle(Event::Received(peer(State::Down, 0)));
        assert_eq!(s.state(), State::Down);
        assert!(actions.contains(&Action::StateChanged {
            from: State::Up,
            to: State::Down,
            diagnostic: Diagnostic::NEIGHBOR_SIGNALED_SESSION_DOWN
        }));

        let mut s = session(config());
        up(&mut s);
        s.handle(Event::Received(peer(State::AdminDown, 7)));
        assert_eq!(
            (s.state(), s.diagnostic()),
            (State::Down, Diagnostic::NEIGHBOR_SIGNALED_SESSION_DOWN)
        );
        // While the peer stays AdminDown we stay Down (no Init).
        s.handle(Event::Received(peer(State::AdminDown, 7)));
        assert_eq!(s.state(), State::Down);
    }

    #[test]
    fn passive_waits_to_be_spoken_to() {
        let mut c = config();
        c.passive = true;
        let mut s = session(c);
        let actions = s.handle(Event::Start);
        assert_eq!(sent(&actions), []);
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.handle(Event::TimerFired(Timer::Transmit)).len(), 1);
        let actions = s.handle(Event::Received(peer(State::Down, 0)));
        assert_eq!(s.state(), State::Init);
        assert_eq!(sent(&actions).len(), 1);
        assert!(armed(&actions, Timer::Transmit).is_some());
        // Silent again: forgotten, and quiet again.
        let actions = s.handle(Event::TimerFired(Timer::Detect));
        assert_eq!(sent(&actions), []);
        assert_eq!(s.transmit_interval(), None);
    }

    #[test]
    fn admin_down_tells_the_peer_and_goes_quiet() {
        let mut s = session(config());
        up(&mut s);
        let actions = s.handle(Event::Stop);
        let p = sent(&actions)[0];
        assert_eq!(
            (p.state, p.diagnostic, p.required_min_rx),
            (State::AdminDown, Diagnostic::ADMINISTRATIVELY_DOWN, 0)
        );
        assert!(actions.contains(&Action::CancelTimer(Timer::Transmit)));
        assert_eq!(s.transmit_interval(), None);
        // Packets are ignored while AdminDown; Start resumes from Down.
        assert_eq!(s.handle(Event::Received(peer(State::Up, 7))), []);
        s.handle(Event::Start);
        assert_eq!(s.state(), State::Down);
    }

    #[test]
    fn no_periodic_packets_when_the_peer_wants_none() {
        let mut s = session(config());
        up(&mut s);
        let mut quiet = peer(State::Up, 7);
        quiet.required_min_rx = 0;
        let actions = s.handle(Event::Received(quiet));
        assert!(actions.contains(&Action::CancelTimer(Timer::Transmit)));
        // Demand mode on the peer with both Up: periodic packets stop too.
        let mut s = session(config());
        up(&mut s);
        let mut demand = peer(State::Up, 7);
        demand.demand = true;
        s.handle(Event::Received(demand));
        assert_eq!(s.transmit_interval(), None);
    }

    #[test]
    fn new_intervals_while_up_go_through_a_poll_without_a_flap() {
        let mut s = session(config());
        up(&mut s);
        let mut fin = peer(State::Up, 7);
        fin.final_ = true;
        s.handle(Event::Received(fin));
        let mut c = config();
        c.desired_min_tx = 100 * MS;
        c.required_min_rx = 100 * MS;
        c.local_discriminator = 99; // ignored: the session keeps its own
        let actions = s.reconfigure(c).unwrap();
        assert_eq!(s.state(), State::Up);
        let p = sent(&actions)[0];
        assert!(p.poll);
        assert_eq!(
            (p.my_discriminator, p.desired_min_tx, p.required_min_rx),
            (7, 100_000, 100_000)
        );
        assert_eq!(s.reconfigure(c).unwrap(), []);
    }

    #[test]
    fn jitter_is_within_the_rfc_bounds() {
        // Of a one-second interval: 0–25% off, or 10–25% with a multiplier of one.
        for (mult, least, most) in [(3u8, 750u32, 1000u32), (1, 750, 900)] {
            let mut c = config();
            c.detect_multiplier = mult;
            for r in [0u32, u32::MAX / 2, u32::MAX] {
                let mut s = Session::new(c, move || r).unwrap();
                let d = s.jittered(1000 * MS);
                assert!(
                    d >= least * MS && d <= most * MS,
                    "mult {mult}, r {r}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn invalid_configurations() {
        let mut c = config();
        c.local_discriminator = 0;
        assert_eq!(
            Session::new(c, || 0).err(),
            Some(ConfigError::Discriminator)
        );
        let mut c = config();
        c.detect_multiplier = 0;
        assert!(Session::new(c, || 0).is_err());
        let mut c = config();
        c.required_min_rx = Duration::ZERO;
        assert!(Session::new(c, || 0).is_err());
    }
}
