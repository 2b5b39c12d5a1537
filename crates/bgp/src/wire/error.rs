//! What can be wrong with a received message, and what each error calls for: a NOTIFICATION
//! and a session reset ([`Error`]), or one of RFC 7606's gentler treatments of a single path
//! attribute ([`AttributeError`] with its [`Handling`]).

use super::notification::{
    NotificationRepr, error_code, header_error, open_error, route_refresh_error, update_error,
};
use super::prefix::PrefixError;

/// A received message that cannot be used: the session must be reset with the NOTIFICATION
/// given by [`Error::notification`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer holds less than the header or less than the header's length field says.
    /// When reading a stream, wait for more bytes ([`super::message_len`] tells how many).
    #[error("message truncated: {needed} octets needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("marker is not sixteen 0xff octets")]
    ConnectionNotSynchronized,
    #[error("message length {length} is not valid for {message}")]
    BadMessageLength { length: u16, message: &'static str },
    #[error("unknown message type {0}")]
    BadMessageType(u8),

    #[error("unsupported BGP version {0}")]
    UnsupportedVersionNumber(u8),
    #[error("OPEN optional parameters are malformed: {0}")]
    MalformedOptionalParameters(&'static str),
    #[error("unsupported OPEN optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    #[error("capability {code} is malformed: {reason}")]
    MalformedCapability { code: u8, reason: &'static str },

    #[error("UPDATE attribute list is malformed: {0}")]
    MalformedAttributeList(&'static str),
    #[error("unrecognized well-known attribute type {0}")]
    UnrecognizedWellKnownAttribute(u8),
    #[error("invalid {field} field: {error}")]
    InvalidNetworkField {
        field: &'static str,
        error: PrefixError,
    },
    /// MP_REACH_NLRI or MP_UNREACH_NLRI whose NLRI cannot be located or decoded; RFC 7606
    /// §5.3 leaves only a session reset.
    #[error("attribute {type_code} is malformed: {reason}")]
    MalformedMpAttribute { type_code: u8, reason: String },

    #[error("ROUTE-REFRESH length {0} is not 23")]
    RouteRefreshLength(u16),
}

impl Error {
    /// The NOTIFICATION to send before closing the session for this error.
    pub fn notification(&self) -> NotificationRepr {
        let (code, subcode, data) = match self {
            Error::Truncated { needed, .. } => (
                error_code::MESSAGE_HEADER,
                header_error::BAD_MESSAGE_LENGTH,
                u16::try_from(*needed)
                    .unwrap_or(u16::MAX)
                    .to_be_bytes()
                    .to_vec(),
            ),
            Error::ConnectionNotSynchronized => (
                error_code::MESSAGE_HEADER,
                header_error::CONNECTION_NOT_SYNCHRONIZED,
                vec![],
            ),
            Error::BadMessageLength { length, .. } => (
                error_code::MESSAGE_HEADER,
                header_error::BAD_MESSAGE_LENGTH,
                length.to_be_bytes().to_vec(),
            ),
            Error::BadMessageType(t) => (
                error_code::MESSAGE_HEADER,
                header_error::BAD_MESSAGE_TYPE,
                vec![*t],
            ),
            // RFC 4271 §6.2: the data is the largest locally supported version.
            Error::UnsupportedVersionNumber(_) => (
                error_code::OPEN_MESSAGE,
                open_error::UNSUPPORTED_VERSION_NUMBER,
                u16::from(super::BGP_VERSION).to_be_bytes().to_vec(),
            ),
            Error::MalformedOptionalParameters(_) | Error::MalformedCapability { .. } => {
                (error_code::OPEN_MESSAGE, open_error::UNSPECIFIC, vec![])
            }
            Error::UnsupportedOptionalParameter(_) => (
                error_code::OPEN_MESSAGE,
                open_error::UNSUPPORTED_OPTIONAL_PARAMETER,
                vec![],
            ),
            Error::MalformedAttributeList(_) => (
                error_code::UPDATE_MESSAGE,
                update_error::MALFORMED_ATTRIBUTE_LIST,
                vec![],
            ),
            Error::UnrecognizedWellKnownAttribute(t) => (
                error_code::UPDATE_MESSAGE,
                update_error::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                vec![*t],
            ),
            Error::InvalidNetworkField { .. } => (
                error_code::UPDATE_MESSAGE,
                update_error::INVALID_NETWORK_FIELD,
                vec![],
            ),
            Error::MalformedMpAttribute { .. } => (
                error_code::UPDATE_MESSAGE,
                update_error::OPTIONAL_ATTRIBUTE_ERROR,
                vec![],
            ),
            Error::RouteRefreshLength(length) => (
                error_code::ROUTE_REFRESH_MESSAGE,
                route_refresh_error::INVALID_MESSAGE_LENGTH,
                length.to_be_bytes().to_vec(),
            ),
        };
        NotificationRepr {
            code,
            subcode,
            data,
        }
    }
}

/// How RFC 7606 says to deal with a malformed attribute, from least to most severe. (The
/// most severe, session reset, is an [`Error`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Handling {
    /// The attribute is dropped and the UPDATE is otherwise used as sent.
    AttributeDiscard,
    /// Every route the UPDATE announces is treated as withdrawn.
    TreatAsWithdraw,
}

/// What was wrong with one path attribute of a received UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeErrorKind {
    #[error("flags {flags:#04x} conflict with the attribute type")]
    Flags { flags: u8 },
    #[error("length {length} is not valid for the attribute")]
    Length { length: usize },
    #[error("undefined ORIGIN value {0}")]
    InvalidOrigin(u8),
    #[error("malformed AS path: {0}")]
    MalformedAsPath(&'static str),
    #[error("the attribute appears more than once")]
    Duplicate,
    #[error("a well-known mandatory attribute is missing")]
    Missing,
    #[error("attribute lengths overrun the path attribute area")]
    Framing,
    #[error("next hop length {0} is not valid for the family")]
    NextHopLength(usize),
    #[error("address family {afi}/{safi} is not supported")]
    UnsupportedFamily { afi: u16, safi: u8 },
    #[error("AS4_PATH sent by a 4-octet AS speaker")]
    UnexpectedAs4Path,
}

/// A malformed path attribute in a received UPDATE, and what RFC 7606 says to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path attribute {type_code}: {kind} ({handling:?})")]
pub struct AttributeError {
    pub type_code: u8,
    pub kind: AttributeErrorKind,
    pub handling: Handling,
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("message of {length} octets is longer than the {max}-octet maximum")]
    TooLong { length: usize, max: usize },
    #[error("{field} of {length} octets does not fit its length field")]
    FieldTooLong { field: &'static str, length: usize },
    #[error("prefix {prefix} does not belong in the {field}")]
    FamilyMismatch {
        prefix: super::Prefix,
        field: &'static str,
    },
}
