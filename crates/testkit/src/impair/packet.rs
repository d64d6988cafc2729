//! Just enough IPv4/UDP/RTP parsing to tell media from signalling. Never panics on input.

use std::net::{Ipv4Addr, SocketAddrV4};

/// What a packet read from a TUN device carries, as far as the relay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// An RTP packet in a UDP datagram.
    Rtp(Udp, RtpHeader),
    /// An RTCP packet (payload type 192..=223 in the second byte, RFC 5761) in a UDP
    /// datagram.
    Rtcp(Udp),
    /// Another UDP datagram (SIP, STUN, DNS...).
    OtherUdp(Udp),
    /// Not UDP over IPv4 (TCP, ICMP, IPv6, a fragment...).
    Other,
}

impl PacketKind {
    /// True for RTP and RTCP: the packets the relay impairs.
    pub fn is_media(&self) -> bool {
        matches!(self, PacketKind::Rtp(..) | PacketKind::Rtcp(_))
    }

    /// The UDP addresses, if it is UDP.
    pub fn udp(&self) -> Option<Udp> {
        match *self {
            PacketKind::Rtp(udp, _) | PacketKind::Rtcp(udp) | PacketKind::OtherUdp(udp) => {
                Some(udp)
            }
            PacketKind::Other => None,
        }
    }
}

/// Source and destination of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Udp {
    /// Sender address.
    pub src: SocketAddrV4,
    /// Receiver address.
    pub dst: SocketAddrV4,
}

/// The RTP fields the relay reports (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// Classifies an IPv4 packet (no link-layer header: a TUN device without packet info).
pub fn classify(packet: &[u8]) -> PacketKind {
    parse_udp(packet).map_or(PacketKind::Other, |(udp, payload)| {
        classify_payload(udp, payload)
    })
}

fn parse_udp(packet: &[u8]) -> Option<(Udp, &[u8])> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    // More-fragments flag or a fragment offset: not a whole datagram.
    let fragment = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x3fff;
    if header_len < 20 || fragment != 0 || *packet.get(9)? != 17 {
        return None;
    }
    let ip = packet.get(..total_len)?;
    let src_ip = Ipv4Addr::new(*ip.get(12)?, *ip.get(13)?, *ip.get(14)?, *ip.get(15)?);
    let dst_ip = Ipv4Addr::new(*ip.get(16)?, *ip.get(17)?, *ip.get(18)?, *ip.get(19)?);
    let udp = ip.get(header_len..)?;
    let src_port = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dst_port = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let udp_len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    let payload = udp.get(8..udp_len.max(8))?;
    let addrs = Udp {
        src: SocketAddrV4::new(src_ip, src_port),
        dst: SocketAddrV4::new(dst_ip, dst_port),
    };
    Some((addrs, payload))
}

fn classify_payload(udp: Udp, payload: &[u8]) -> PacketKind {
    // RTP and RTCP start with version 2; SIP starts with a letter, STUN with 0b00.
    let (Some(&first), Some(&second)) = (payload.first(), payload.get(1)) else {
        return PacketKind::OtherUdp(udp);
    };
    if first >> 6 != 2 || payload.len() < 8 {
        return PacketKind::OtherUdp(udp);
    }
    if (192..=223).contains(&second) {
        return PacketKind::Rtcp(udp);
    }
    match rtp_header(payload) {
        Some(header) => PacketKind::Rtp(udp, header),
        None => PacketKind::OtherUdp(udp),
    }
}

fn rtp_header(payload: &[u8]) -> Option<RtpHeader> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes([
            *payload.get(at)?,
            *payload.get(at + 1)?,
            *payload.get(at + 2)?,
            *payload.get(at + 3)?,
        ]))
    };
    Some(RtpHeader {
        seq: u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]),
        timestamp: word(4)?,
        ssrc: word(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4/UDP packet 10.0.0.1:4000 -> 10.0.0.2:5000 carrying `payload`.
    pub(crate) fn udp_packet(payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend([10, 0, 0, 1, 10, 0, 0, 2]);
        let udp_len = 8 + payload.len();
        p.extend([
            0x0f,
            0xa0,
            0x13,
            0x88,
            (udp_len >> 8) as u8,
            udp_len as u8,
            0,
            0,
        ]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn tells_rtp_rtcp_and_sip_apart() {
        let rtp = [
            0x80, 111, 0x12, 0x34, 0, 0, 0x03, 0xc0, 0xde, 0xad, 0xbe, 0xef, 1, 2,
        ];
        let PacketKind::Rtp(udp, header) = classify(&udp_packet(&rtp)) else {
            panic!("not rtp");
        };
        assert_eq!(udp.src, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(udp.dst, "10.0.0.2:5000".parse().unwrap());
        assert_eq!(
            header,
            RtpHeader {
                seq: 0x1234,
                timestamp: 960,
                ssrc: 0xdead_beef
            }
        );
        let rtcp = [0x81, 200, 0, 6, 0, 0, 0, 1];
        assert!(matches!(classify(&udp_packet(&rtcp)), PacketKind::Rtcp(_)));
        let sip = b"INVITE sip:bob@10.0.0.2 SIP/2.0\r\n";
        assert!(matches!(
            classify(&udp_packet(sip)),
            PacketKind::OtherUdp(_)
        ));
        assert!(!classify(&udp_packet(sip)).is_media());
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let rtp = [0x80, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        let full = udp_packet(&rtp);
        for cut in 0..full.len() {
            let kind = classify(full.get(..cut).unwrap());
            assert!(!matches!(kind, PacketKind::Rtp(..)), "cut at {cut}");
        }
        assert_eq!(classify(&[0x60; 60]), PacketKind::Other);
        let mut tcp = full.clone();
        tcp[9] = 6;
        assert_eq!(classify(&tcp), PacketKind::Other);
        let mut fragment = full;
        fragment[6] = 0x20;
        assert_eq!(classify(&fragment), PacketKind::Other);
    }
}
