//! NOTIFICATION (RFC 4271 §4.5): error code, subcode and data, including the RFC 9003
//! shutdown communication carried by Cease / Administrative Shutdown and Administrative
//! Reset.

use super::error::Error;

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313).
pub mod error_code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FINITE_STATE_MACHINE: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH_MESSAGE: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header_error {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open_error {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update_error {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm_error {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_MESSAGE_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_MESSAGE_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_MESSAGE_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538).
pub mod cease {
    pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    /// RFC 9384: the BFD session the BGP session depends on went down.
    pub const BFD_DOWN: u8 = 10;
}

/// Route-Refresh Message Error subcodes (RFC 7313).
pub mod route_refresh_error {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// The longest shutdown communication, in octets (RFC 9003).
pub const MAX_SHUTDOWN_COMMUNICATION_LEN: usize = 255;

/// A zero-copy view of a NOTIFICATION body (the octets after the message header).
#[derive(Debug, Clone)]
pub struct NotificationPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NotificationPacket<T> {
    /// Wraps a buffer without checking it: the accessors panic if it is too short. For
    /// octets from the network use `new_checked`.
    pub fn new_unchecked(buffer: T) -> Self {
        NotificationPacket { buffer }
    }

    /// Wraps a NOTIFICATION body, checking it holds at least the code and subcode.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < 2 {
            return Err(Error::BadMessageLength {
                length: u16::try_from(len + super::HEADER_LEN).unwrap_or(u16::MAX),
                message: "NOTIFICATION",
            });
        }
        Ok(NotificationPacket { buffer })
    }

    pub fn error_code(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn error_subcode(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[2..]
    }
}

/// Why the data of a Cease NOTIFICATION is not a valid RFC 9003 shutdown communication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownCommunicationError {
    #[error("shutdown communication length {length} exceeds the {available} octets of data")]
    Truncated { length: usize, available: usize },
    #[error("shutdown communication is not valid UTF-8")]
    InvalidUtf8,
}

/// A NOTIFICATION message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotificationRepr {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl NotificationRepr {
    pub fn new(code: u8, subcode: u8) -> Self {
        NotificationRepr {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A Cease NOTIFICATION with an RFC 9003 shutdown communication. The message is cut at
    /// a character boundary to the 255 octets the length field allows; an empty message
    /// still carries its zero length octet, as RFC 9003 asks for these two subcodes.
    pub fn cease(subcode: u8, message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION_LEN);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = &message.as_bytes()[..end];
        let mut data = Vec::with_capacity(1 + text.len());
        data.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
        data.extend_from_slice(text);
        NotificationRepr {
            code: error_code::CEASE,
            subcode,
            data,
        }
    }

    /// Cease / Hard Reset (RFC 8538 §3) carrying `inner`: its code, subcode and data are the
    /// Hard Reset's data. Toward a peer that negotiated the graceful restart N bit, this is
    /// how a NOTIFICATION says "end graceful restart too, drop my routes".
    pub fn hard_reset(inner: &NotificationRepr) -> Self {
        let mut data = Vec::with_capacity(2 + inner.data.len());
        data.push(inner.code);
        data.push(inner.subcode);
        data.extend_from_slice(&inner.data);
        NotificationRepr {
            code: error_code::CEASE,
            subcode: cease::HARD_RESET,
            data,
        }
    }

    /// Whether this is a Cease / Hard Reset (RFC 8538).
    pub fn is_hard_reset(&self) -> bool {
        self.code == error_code::CEASE && self.subcode == cease::HARD_RESET
    }

    /// The NOTIFICATION a Hard Reset carries, when its data holds one.
    pub fn hard_reset_inner(&self) -> Option<NotificationRepr> {
        if !self.is_hard_reset() {
            return None;
        }
        let (&code, rest) = self.data.split_first()?;
        let (&subcode, data) = rest.split_first()?;
        Some(NotificationRepr {
            code,
            subcode,
            data: data.to_vec(),
        })
    }

    /// Whether this NOTIFICATION is one that may carry a shutdown communication: Cease with
    /// Administrative Shutdown or Administrative Reset.
    pub fn has_shutdown_communication(&self) -> bool {
        self.code == error_code::CEASE
            && matches!(
                self.subcode,
                cease::ADMINISTRATIVE_SHUTDOWN | cease::ADMINISTRATIVE_RESET
            )
    }

    /// The RFC 9003 shutdown communication, for the Cease subcodes that carry one and when
    /// the data is not empty. Octets after the communication are ignored.
    pub fn shutdown_communication(&self) -> Option<Result<&str, ShutdownCommunicationError>> {
        if !self.has_shutdown_communication() {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let len = usize::from(len);
        let Some(text) = rest.get(..len) else {
            return Some(Err(ShutdownCommunicationError::Truncated {
                length: len,
                available: rest.len(),
            }));
        };
        Some(std::str::from_utf8(text).map_err(|_| ShutdownCommunicationError::InvalidUtf8))
    }

    pub fn parse<T: AsRef<[u8]>>(packet: &NotificationPacket<T>) -> Self {
        NotificationRepr {
            code: packet.error_code(),
            subcode: packet.error_subcode(),
            data: packet.data().to_vec(),
        }
    }

    pub fn buffer_len(&self) -> usize {
        2 + self.data.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push(self.subcode);
        out.extend_from_slice(&self.data);
    }
}

impl std::fmt::Display for NotificationRepr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NOTIFICATION {}/{}", self.code, self.subcode)?;
        if let Some(inner) = self.hard_reset_inner() {
            return write!(f, " (Hard Reset of {inner})");
        }
        match self.shutdown_communication() {
            Some(Ok(text)) => write!(f, " {text:?}"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trip() {
        let n = NotificationRepr::cease(cease::ADMINISTRATIVE_SHUTDOWN, "node-a draining");
        assert_eq!(n.data[0], 15);
        assert_eq!(n.shutdown_communication(), Some(Ok("node-a draining")));
    }

    #[test]
    fn shutdown_communication_cut_at_char_boundary() {
        let long = "é".repeat(200); // 400 octets
        let n = NotificationRepr::cease(cease::ADMINISTRATIVE_RESET, &long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_communication().unwrap().unwrap().len(), 254);
    }

    #[test]
    fn hard_reset_carries_the_notification_it_replaces() {
        let inner = NotificationRepr::cease(cease::ADMINISTRATIVE_SHUTDOWN, "bye");
        let hard = NotificationRepr::hard_reset(&inner);
        assert_eq!((hard.code, hard.subcode), (6, 9));
        assert_eq!(hard.data, [6, 2, 3, b'b', b'y', b'e']);
        assert_eq!(hard.hard_reset_inner(), Some(inner));
        assert_eq!(
            hard.to_string(),
            "NOTIFICATION 6/9 (Hard Reset of NOTIFICATION 6/2 \"bye\")"
        );
        // A Hard Reset too short to hold a NOTIFICATION is still a Hard Reset.
        let mut short = hard.clone();
        short.data.truncate(1);
        assert!(short.is_hard_reset());
        assert_eq!(short.hard_reset_inner(), None);
    }

    #[test]
    fn shutdown_communication_errors() {
        let mut n = NotificationRepr::new(error_code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN);
        assert_eq!(n.shutdown_communication(), None);
        n.data = vec![5, b'a'];
        assert_eq!(
            n.shutdown_communication(),
            Some(Err(ShutdownCommunicationError::Truncated {
                length: 5,
                available: 1
            }))
        );
        n.data = vec![2, 0xc3, 0x28];
        assert_eq!(
            n.shutdown_communication(),
            Some(Err(ShutdownCommunicationError::InvalidUtf8))
        );
        n.subcode = cease::PEER_DECONFIGURED;
        assert_eq!(n.shutdown_communication(), None);
    }
}
