//! Arbitrary bytes as a received frame: the frame reader, NS validation and the answering
//! rules must neither panic nor answer with a frame that does not read back.

#![no_main]

use std::net::IpAddr;

use l2::frame::Frame;
use l2::wire::EthernetAddress;
use l2::{answer, validate_neighbor_solicitation};
use libfuzzer_sys::fuzz_target;

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::parse(data) else {
        return;
    };
    if let Frame::NeighborSolicitation(nd) = &frame {
        let _ = validate_neighbor_solicitation(nd);
    }
    // Own every address, so every valid question reaches the reply builders.
    let owns_all = |_: IpAddr| true;
    if let Ok(reply) = answer(&frame, OUR_MAC, owns_all) {
        let reread = Frame::parse(&reply.frame).expect("an answer reads back");
        assert_eq!(reread.ethernet().src_addr, OUR_MAC);
    }
    let _ = answer(&frame, OUR_MAC, |_: IpAddr| false);
});
