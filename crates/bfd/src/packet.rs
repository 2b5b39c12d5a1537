//! The BFD Control packet (RFC 5880 §4.1) on the wire, in the manner of smoltcp's `wire`
//! module: [`ControlPacket`] is a zero-copy view with a checked constructor and field
//! accessors, [`ControlRepr`] the plain value that is parsed from it and emitted into it.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! ```
//!
//! Parsing applies the checks of RFC 5880 §6.8.6 that need no session: version 1, a length
//! within the datagram and at least the header's, a non-zero Detect Mult and My
//! Discriminator, the Multipoint bit clear, Your Discriminator zero only in the Down and
//! AdminDown states. herald configures no authentication, so a packet with the A bit is
//! refused too (§6.8.6: "If the A bit is set and no authentication is in use ... discarded").
//! Nothing here panics, whatever the input.

/// The only BFD version.
pub const VERSION: u8 = 1;
/// A Control packet without authentication.
pub const LEN: usize = 24;

/// The session states (RFC 5880 §4.1, "Sta").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    pub fn from_bits(bits: u8) -> State {
        match bits & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Why the session last went down (RFC 5880 §4.1, "Diag").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic(pub u8);

impl Diagnostic {
    pub const NONE: Diagnostic = Diagnostic(0);
    pub const CONTROL_DETECTION_TIME_EXPIRED: Diagnostic = Diagnostic(1);
    pub const ECHO_FUNCTION_FAILED: Diagnostic = Diagnostic(2);
    pub const NEIGHBOR_SIGNALED_SESSION_DOWN: Diagnostic = Diagnostic(3);
    pub const FORWARDING_PLANE_RESET: Diagnostic = Diagnostic(4);
    pub const PATH_DOWN: Diagnostic = Diagnostic(5);
    pub const CONCATENATED_PATH_DOWN: Diagnostic = Diagnostic(6);
    pub const ADMINISTRATIVELY_DOWN: Diagnostic = Diagnostic(7);
    pub const REVERSE_CONCATENATED_PATH_DOWN: Diagnostic = Diagnostic(8);
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            0 => "no diagnostic",
            1 => "control detection time expired",
            2 => "echo function failed",
            3 => "neighbor signaled session down",
            4 => "forwarding plane reset",
            5 => "path down",
            6 => "concatenated path down",
            7 => "administratively down",
            8 => "reverse concatenated path down",
            _ => return write!(f, "diagnostic {}", self.0),
        })
    }
}

/// Why octets are not a Control packet to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0} octets: shorter than a Control packet")]
    Truncated(usize),
    #[error("version {0}, not 1")]
    Version(u8),
    #[error("length field {length} outside 24..={available} (the datagram)")]
    Length { length: usize, available: usize },
    #[error("Detect Mult is zero")]
    DetectMultiplier,
    #[error("the Multipoint bit is set")]
    Multipoint,
    #[error("My Discriminator is zero")]
    MyDiscriminator,
    #[error("Your Discriminator is zero in state {0}")]
    YourDiscriminator(State),
    #[error("authenticated packet, and no authentication is configured")]
    Authentication,
}

/// A zero-copy view of a Control packet.
#[derive(Debug, Clone)]
pub struct ControlPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlPacket<T> {
    /// Wraps a buffer without checking it: the accessors panic if it is shorter than
    /// [`LEN`]. For octets from the network use [`ControlPacket::new_checked`].
    pub fn new_unchecked(buffer: T) -> Self {
        ControlPacket { buffer }
    }

    /// Wraps a datagram, checking everything §6.8.6 lets a receiver check alone.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < LEN {
            return Err(Error::Truncated(len));
        }
        let p = ControlPacket { buffer };
        if p.version() != VERSION {
            return Err(Error::Version(p.version()));
        }
        let length = usize::from(p.length());
        if length < LEN || length > len {
            return Err(Error::Length {
                length,
                available: len,
            });
        }
        if p.authentication() {
            return Err(Error::Authentication);
        }
        if p.detect_multiplier() == 0 {
            return Err(Error::DetectMultiplier);
        }
        if p.multipoint() {
            return Err(Error::Multipoint);
        }
        if p.my_discriminator() == 0 {
            return Err(Error::MyDiscriminator);
        }
        if p.your_discriminator() == 0 && !matches!(p.state(), State::Down | State::AdminDown) {
            return Err(Error::YourDiscriminator(p.state()));
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn word(&self, at: usize) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    pub fn version(&self) -> u8 {
        self.b()[0] >> 5
    }

    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic(self.b()[0] & 0x1f)
    }

    pub fn state(&self) -> State {
        State::from_bits(self.b()[1] >> 6)
    }

    pub fn poll(&self) -> bool {
        self.b()[1] & 0x20 != 0
    }

    pub fn final_(&self) -> bool {
        self.b()[1] & 0x10 != 0
    }

    pub fn control_plane_independent(&self) -> bool {
        self.b()[1] & 0x08 != 0
    }

    pub fn authentication(&self) -> bool {
        self.b()[1] & 0x04 != 0
    }

    pub fn demand(&self) -> bool {
        self.b()[1] & 0x02 != 0
    }

    pub fn multipoint(&self) -> bool {
        self.b()[1] & 0x01 != 0
    }

    pub fn detect_multiplier(&self) -> u8 {
        self.b()[2]
    }

    pub fn length(&self) -> u8 {
        self.b()[3]
    }

    pub fn my_discriminator(&self) -> u32 {
        self.word(4)
    }

    pub fn your_discriminator(&self) -> u32 {
        self.word(8)
    }

    /// Microseconds.
    pub fn desired_min_tx(&self) -> u32 {
        self.word(12)
    }

    /// Microseconds.
    pub fn required_min_rx(&self) -> u32 {
        self.word(16)
    }

    /// Microseconds; 0: the sender does not loop echo packets back.
    pub fn required_min_echo_rx(&self) -> u32 {
        self.word(20)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ControlPacket<T> {
    fn put_word(&mut self, at: usize, value: u32) {
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }
}

/// A Control packet's contents. Intervals are in microseconds, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRepr {
    pub diagnostic: Diagnostic,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_multiplier: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub required_min_echo_rx: u32,
}

impl ControlRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &ControlPacket<T>) -> ControlRepr {
        ControlRepr {
            diagnostic: p.diagnostic(),
            state: p.state(),
            poll: p.poll(),
            final_: p.final_(),
            control_plane_independent: p.control_plane_independent(),
            demand: p.demand(),
            detect_multiplier: p.detect_multiplier(),
            my_discriminator: p.my_discriminator(),
            your_discriminator: p.your_discriminator(),
            desired_min_tx: p.desired_min_tx(),
            required_min_rx: p.required_min_rx(),
            required_min_echo_rx: p.required_min_echo_rx(),
        }
    }

    /// Checks and parses a received datagram.
    pub fn from_bytes(datagram: &[u8]) -> Result<ControlRepr, Error> {
        ControlPacket::new_checked(datagram).map(|p| ControlRepr::parse(&p))
    }

    pub fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the packet into the first [`LEN`] octets of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ControlPacket<T>) {
        let flags = (self.state.bits() << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.demand) << 1);
        {
            let b = p.buffer.as_mut();
            b[0] = (VERSION << 5) | (self.diagnostic.0 & 0x1f);
            b[1] = flags;
            b[2] = self.detect_multiplier;
            b[3] = LEN as u8;
        }
        p.put_word(4, self.my_discriminator);
        p.put_word(8, self.your_discriminator);
        p.put_word(12, self.desired_min_tx);
        p.put_word(16, self.required_min_rx);
        p.put_word(20, self.required_min_echo_rx);
    }

    pub fn to_bytes(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        self.emit(&mut ControlPacket::new_unchecked(&mut out[..]));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ControlRepr {
        ControlRepr {
            diagnostic: Diagnostic::NONE,
            state: State::Up,
            poll: true,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_multiplier: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 0x0a0b_0c0d,
            desired_min_tx: 300_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
        }
    }

    #[test]
    fn known_answer() {
        // An Up packet with P set, detect mult 3, 300 ms both ways, as FRR's bfdd sends it.
        let bytes = sample().to_bytes();
        assert_eq!(
            bytes,
            [
                0x20, 0xe0, 3, 24, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0, 4, 0x93, 0xe0, 0, 4,
                0x93, 0xe0, 0, 0, 0, 0
            ]
        );
        assert_eq!(ControlRepr::from_bytes(&bytes), Ok(sample()));
    }

    #[test]
    fn every_rule_of_6_8_6_that_needs_no_session() {
        let good = sample().to_bytes();
        let with = |f: fn(&mut [u8; LEN])| {
            let mut b = good;
            f(&mut b);
            ControlRepr::from_bytes(&b)
        };
        assert_eq!(with(|b| b[0] = 0x40), Err(Error::Version(2)));
        assert_eq!(
            with(|b| b[3] = 23),
            Err(Error::Length {
                length: 23,
                available: 24
            })
        );
        assert_eq!(
            with(|b| b[3] = 25),
            Err(Error::Length {
                length: 25,
                available: 24
            })
        );
        assert_eq!(with(|b| b[2] = 0), Err(Error::DetectMultiplier));
        assert_eq!(with(|b| b[1] |= 1), Err(Error::Multipoint));
        assert_eq!(with(|b| b[1] |= 4), Err(Error::Authentication));
        assert_eq!(with(|b| b[4..8].fill(0)), Err(Error::MyDiscriminator));
        assert_eq!(
            with(|b| b[8..12].fill(0)),
            Err(Error::YourDiscriminator(State::Up))
        );
        // Zero is how a Down session says it does not know the peer yet.
        let down = with(|b| {
            b[8..12].fill(0);
            b[1] = State::Down.bits() << 6;
        });
        assert_eq!(down.map(|r| r.state), Ok(State::Down));
        // A longer datagram (trailing octets) is fine when the length says 24.
        let mut long = good.to_vec();
        long.extend_from_slice(&[0xff; 8]);
        assert_eq!(ControlRepr::from_bytes(&long), Ok(sample()));
        for n in 0..LEN {
            assert_eq!(
                ControlRepr::from_bytes(&good[..n]),
                Err(Error::Truncated(n))
            );
        }
    }
}
