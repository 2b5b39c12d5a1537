//! BGP-4 messages on the wire, in the manner of smoltcp's `wire` module.
//!
//! Each message has a zero-copy view over a byte buffer ([`Packet`], [`OpenPacket`],
//! [`UpdatePacket`], ...) with checked constructors and field accessors, and a plain `Repr`
//! ([`Message`], [`OpenRepr`], [`UpdateRepr`], ...) that is parsed from the view and emitted
//! back into bytes. BGP messages are built from variable-length parts, so a `Repr` emits by
//! appending to a `Vec<u8>` (its `buffer_len` gives the size beforehand) rather than into a
//! view. What a message means can depend on the session (2- or 4-octet AS numbers,
//! the largest message size): that context is [`Options`], passed to every parse and emit.
//!
//! Received UPDATEs are checked per RFC 7606: an error that makes the message unusable is an
//! [`Error`] (the session must be reset with the NOTIFICATION it names); errors confined to an
//! attribute are reported in [`UpdateRepr::errors`] with the [`Handling`] they call for.
//!
//! Covered: RFC 4271 (BGP-4), 4760 (multiprotocol), 6793 (4-octet AS), 2918 and 7313
//! (route refresh), 4724 (graceful restart), 8950 (extended next hop), 8654 (extended
//! messages), 9072 (extended optional parameters length), 1997 (communities), 8092 (large
//! communities), 9003 (shutdown communication), 7606 (revised UPDATE error handling).
//!
//! This module does no I/O and keeps no session state.

mod attribute;
mod builder;
mod error;
mod message;
mod notification;
mod open;
mod prefix;
mod reader;
mod route_refresh;
mod update;

pub use attribute::{
    AS_TRANS, AsPath, AsPathSegment, Community, LargeCommunity, MpReachNlri, MpUnreachNlri,
    NextHop, Origin, PathAttribute, RawAttribute, attribute_flags, attribute_type,
};
pub use builder::{BuildError, announce, end_of_rib, withdraw};
pub use error::{AttributeError, AttributeErrorKind, EmitError, Error, Handling};
pub use message::{HEADER_LEN, MARKER, Message, MessageType, Packet, message_len};
pub use notification::{
    MAX_SHUTDOWN_COMMUNICATION_LEN, NotificationPacket, NotificationRepr,
    ShutdownCommunicationError, cease, error_code, fsm_error, header_error, open_error,
    route_refresh_error, update_error,
};
pub use open::{
    Capability, ExtendedNextHopEntry, GracefulRestart, GracefulRestartFamily, OpenPacket, OpenRepr,
    capability_code,
};
pub use prefix::{Prefix, PrefixError};
pub use route_refresh::{RouteRefreshPacket, RouteRefreshRepr};
pub use update::{UpdatePacket, UpdateRepr};

/// The BGP version herald speaks.
pub const BGP_VERSION: u8 = 4;

/// The largest message without RFC 8654 extended messages (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// The largest message once RFC 8654 extended messages are negotiated.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// Session context that changes how messages are encoded.
///
/// Before OPENs are exchanged use [`Options::default`]: 2-octet AS numbers and 4096-byte
/// messages, which is what every OPEN, NOTIFICATION and KEEPALIVE uses anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Both sides advertised the 4-octet AS capability (RFC 6793): AS_PATH carries 4-octet AS
    /// numbers. Otherwise AS_PATH has 2-octet numbers, AS_TRANS stands in for the large
    /// ones and AS4_PATH carries the real path.
    pub four_octet_as: bool,
    /// The largest message accepted and sent: [`MAX_MESSAGE_LEN`], or up to
    /// [`MAX_EXTENDED_MESSAGE_LEN`] with RFC 8654.
    pub max_message_len: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            four_octet_as: false,
            max_message_len: MAX_MESSAGE_LEN,
        }
    }
}

impl Options {
    /// The usual modern session: 4-octet AS numbers, 4096-byte messages.
    pub const FOUR_OCTET_AS: Options = Options {
        four_octet_as: true,
        max_message_len: MAX_MESSAGE_LEN,
    };

    /// The largest message, clamped to what a BGP length field can say.
    pub(crate) fn max_len(&self) -> usize {
        self.max_message_len
            .clamp(HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN)
    }
}

/// Address Family Identifier values (IANA "Address Family Numbers").
pub mod afi {
    pub const IPV4: u16 = 1;
    pub const IPV6: u16 = 2;
}

/// Subsequent Address Family Identifier values (IANA "SAFI Values").
pub mod safi {
    pub const UNICAST: u8 = 1;
}

/// An address family as BGP names it: an AFI and a SAFI. Any values are carried (a peer may
/// offer families herald does not speak); [`Family::IPV4_UNICAST`] and
/// [`Family::IPV6_UNICAST`] are the ones herald announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Family {
    pub afi: u16,
    pub safi: u8,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family {
        afi: afi::IPV4,
        safi: safi::UNICAST,
    };
    pub const IPV6_UNICAST: Family = Family {
        afi: afi::IPV6,
        safi: safi::UNICAST,
    };

    pub const fn new(afi: u16, safi: u8) -> Family {
        Family { afi, safi }
    }

    /// Whether this codec can decode the family's NLRI (IPv4 or IPv6 unicast).
    pub fn is_supported(&self) -> bool {
        *self == Family::IPV4_UNICAST || *self == Family::IPV6_UNICAST
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Family::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Family::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            Family { afi, safi } => write!(f, "afi {afi}/safi {safi}"),
        }
    }
}
