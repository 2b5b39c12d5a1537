//! Decoding any bytes as a BGP message must never panic, whatever the session options; and
//! whatever decodes must encode again without panicking.
#![no_main]

use bgp::wire::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Message, Options, message_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let options = Options {
        four_octet_as: flags & 1 != 0,
        max_message_len: if flags & 2 != 0 {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        },
    };
    let _ = message_len(bytes, &options);
    if let Ok(message) = Message::from_bytes(bytes, &options) {
        if let Message::Update(u) = &message {
            let _ = (u.announced(), u.withdrawn(), u.handling(), u.as_end_of_rib());
        }
        if let Message::Notification(n) = &message {
            let _ = n.shutdown_communication();
        }
        let _ = message.to_bytes(&options);
    }
});
