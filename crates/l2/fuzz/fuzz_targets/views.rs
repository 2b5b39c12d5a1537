//! Arbitrary bytes handed straight to each layer's view and representation, so each parser
//! is fuzzed on its own and not only behind the layers before it.

#![no_main]

use std::net::Ipv6Addr;

use l2::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetRepr, Icmpv6Packet, Ipv6Packet, Ipv6Repr, NdOption,
    NdOptionRepr, NdOptions, NdiscRepr, NeighborMessage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = EthernetFrame::new_checked(data) {
        let _ = (EthernetRepr::parse(&frame), frame.payload().len());
    }
    if let Ok(packet) = ArpPacket::new_checked(data) {
        let _ = ArpRepr::parse(&packet);
    }
    if let Ok(packet) = Ipv6Packet::new_checked(data) {
        let _ = (Ipv6Repr::parse(&packet), packet.payload().len());
    }
    if let Ok(packet) = Icmpv6Packet::new_checked(data) {
        let _ = packet.verify_checksum(Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED);
    }
    if let Ok(message) = NeighborMessage::new_checked(data) {
        let _ = (NdiscRepr::parse(&message), message.target_addr());
    }
    if let Ok(option) = NdOption::new_checked(data) {
        let _ = NdOptionRepr::parse(&option);
    }
    assert!(NdOptions::new(data).count() <= data.len() / 8 + 1);
});
