//! The message header (RFC 4271 §4.1) and the [`Message`] that wraps every message type.

use super::error::{EmitError, Error};
use super::notification::{NotificationPacket, NotificationRepr};
use super::open::{OpenPacket, OpenRepr};
use super::route_refresh::{RouteRefreshPacket, RouteRefreshRepr};
use super::update::{UpdatePacket, UpdateRepr};
use super::{MAX_MESSAGE_LEN, Options};

/// Marker, Length and Type.
pub const HEADER_LEN: usize = 19;

/// The marker every message starts with (RFC 4271 §4.1).
pub const MARKER: [u8; 16] = [0xff; 16];

/// Message type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    pub fn from_u8(v: u8) -> Option<MessageType> {
        Some(match v {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            MessageType::Open => "OPEN",
            MessageType::Update => "UPDATE",
            MessageType::Notification => "NOTIFICATION",
            MessageType::Keepalive => "KEEPALIVE",
            MessageType::RouteRefresh => "ROUTE-REFRESH",
        }
    }

    /// The shortest valid message of this type, header included.
    fn min_len(self) -> usize {
        HEADER_LEN
            + match self {
                MessageType::Open => 10,
                MessageType::Update => 4,
                MessageType::Notification => 2,
                MessageType::Keepalive => 0,
                MessageType::RouteRefresh => 4,
            }
    }

    /// The longest valid message of this type: OPEN and KEEPALIVE are exchanged before (or
    /// regardless of) RFC 8654 extended messages, so they never grow past 4096 octets.
    fn max_len(self, options: &Options) -> usize {
        match self {
            MessageType::Open => MAX_MESSAGE_LEN,
            MessageType::Keepalive => HEADER_LEN,
            _ => options.max_len(),
        }
    }
}

/// How long the message at the start of `buf` is, once its header has arrived: `Ok(None)`
/// while fewer than [`HEADER_LEN`] octets are buffered. For cutting messages out of a TCP
/// stream; the marker and the length bounds are checked here so that a peer cannot make the
/// reader wait for a message that will never be valid.
pub fn message_len(buf: &[u8], options: &Options) -> Result<Option<usize>, Error> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let packet = Packet::new_unchecked(buf);
    packet.check_header(options)?;
    Ok(Some(usize::from(packet.length())))
}

/// A zero-copy view of one whole message: header and body.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it: the accessors panic if it is too short. For
    /// octets from the network use `new_checked`.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer holding exactly one message, checking the header: marker, a known
    /// type, and a length that fits the type, the session's maximum and the buffer.
    pub fn new_checked(buffer: T, options: &Options) -> Result<Self, Error> {
        let available = buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(Error::Truncated {
                needed: HEADER_LEN,
                available,
            });
        }
        let p = Packet { buffer };
        p.check_header(options)?;
        let needed = usize::from(p.length());
        if needed != available {
            return Err(Error::Truncated { needed, available });
        }
        Ok(p)
    }

    /// Checks the header; the buffer must hold at least [`HEADER_LEN`] octets.
    fn check_header(&self, options: &Options) -> Result<(), Error> {
        if self.marker() != MARKER {
            return Err(Error::ConnectionNotSynchronized);
        }
        let kind =
            MessageType::from_u8(self.msg_type()).ok_or(Error::BadMessageType(self.msg_type()))?;
        let length = self.length();
        let len = usize::from(length);
        if len < kind.min_len() || len > kind.max_len(options) {
            return Err(Error::BadMessageLength {
                length,
                message: kind.name(),
            });
        }
        Ok(())
    }

    pub fn marker(&self) -> [u8; 16] {
        let mut m = [0; 16];
        m.copy_from_slice(&self.buffer.as_ref()[..16]);
        m
    }

    pub fn length(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[16], b[17]])
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[18]
    }

    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_marker(&mut self) {
        self.buffer.as_mut()[..16].copy_from_slice(&MARKER);
    }

    pub fn set_length(&mut self, length: u16) {
        self.buffer.as_mut()[16..18].copy_from_slice(&length.to_be_bytes());
    }

    pub fn set_msg_type(&mut self, msg_type: MessageType) {
        self.buffer.as_mut()[18] = msg_type as u8;
    }
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(OpenRepr),
    Update(UpdateRepr),
    Notification(NotificationRepr),
    Keepalive,
    RouteRefresh(RouteRefreshRepr),
}

impl Message {
    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Decodes a packet. The header is checked again, so even a packet made with
    /// [`Packet::new_unchecked`] cannot make this panic.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, options: &Options) -> Result<Message, Error> {
        let packet = Packet::new_checked(packet.buffer.as_ref(), options)?;
        let body = packet.body();
        Ok(match MessageType::from_u8(packet.msg_type()) {
            Some(MessageType::Open) => {
                Message::Open(OpenRepr::parse(&OpenPacket::new_checked(body)?)?)
            }
            Some(MessageType::Update) => Message::Update(UpdateRepr::parse(
                &UpdatePacket::new_checked(body)?,
                options,
            )?),
            Some(MessageType::Notification) => Message::Notification(NotificationRepr::parse(
                &NotificationPacket::new_checked(body)?,
            )),
            Some(MessageType::Keepalive) => {
                if !body.is_empty() {
                    return Err(Error::BadMessageLength {
                        length: packet.length(),
                        message: "KEEPALIVE",
                    });
                }
                Message::Keepalive
            }
            Some(MessageType::RouteRefresh) => Message::RouteRefresh(RouteRefreshRepr::parse(
                &RouteRefreshPacket::new_checked(body)?,
            )),
            None => return Err(Error::BadMessageType(packet.msg_type())),
        })
    }

    /// Checks and decodes one whole message held in `bytes`.
    pub fn from_bytes(bytes: &[u8], options: &Options) -> Result<Message, Error> {
        Message::parse(&Packet::new_unchecked(bytes), options)
    }

    /// Octets the message takes on the wire, header included.
    pub fn buffer_len(&self, options: &Options) -> usize {
        HEADER_LEN
            + match self {
                Message::Open(o) => o.buffer_len(),
                Message::Update(u) => u.buffer_len(options),
                Message::Notification(n) => n.buffer_len(),
                Message::Keepalive => 0,
                Message::RouteRefresh(r) => r.buffer_len(),
            }
    }

    /// Appends the encoded message to `out`, which is left as it was on error. Fails when
    /// the message would be longer than the session allows.
    pub fn emit(&self, out: &mut Vec<u8>, options: &Options) -> Result<(), EmitError> {
        let length = self.buffer_len(options);
        let max = self.msg_type().max_len(options);
        if length > max {
            return Err(EmitError::TooLong { length, max });
        }
        let start = out.len();
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&u16::try_from(length).unwrap_or(u16::MAX).to_be_bytes());
        out.push(self.msg_type() as u8);
        let result = match self {
            Message::Open(o) => o.emit(out),
            Message::Update(u) => u.emit(out, options),
            Message::Notification(n) => {
                n.emit(out);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(r) => {
                r.emit(out);
                Ok(())
            }
        };
        if let Err(e) = result {
            out.truncate(start);
            return Err(e);
        }
        debug_assert_eq!(out.len() - start, length, "buffer_len disagrees with emit");
        Ok(())
    }

    /// The encoded message.
    pub fn to_bytes(&self, options: &Options) -> Result<Vec<u8>, EmitError> {
        let mut out = Vec::with_capacity(self.buffer_len(options));
        self.emit(&mut out, options)?;
        Ok(out)
    }
}
