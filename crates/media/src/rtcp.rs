//! RTCP (RFC 3550 §6): compound packets with SR, RR, SDES, BYE, APP; other types are skipped.

const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;
const BYE: u8 = 203;
const APP: u8 = 204;
const SDES_CNAME: u8 = 1;

/// One packet of an RTCP compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpPacket {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    /// SDES: one `(ssrc, cname)` per chunk; chunks without CNAME carry `None`.
    SourceDescription(Vec<(u32, Option<String>)>),
    Bye {
        ssrcs: Vec<u32>,
        reason: Option<String>,
    },
    /// Application-defined (RFC 3550 §6.7): `data` is a whole number of 32-bit words (the
    /// writer pads it with zeros).
    App {
        subtype: u8,
        ssrc: u32,
        name: [u8; 4],
        data: Vec<u8>,
    },
    /// A packet type this crate does not interpret (feedback, XR …).
    Other { packet_type: u8 },
}

/// The sender information block of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (seconds in the high 32 bits).
    pub ntp_time: u64,
    pub rtp_time: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// A reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed on the wire.
    pub cumulative_lost: i32,
    pub highest_sequence: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from `ssrc` (0: none yet).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Why a datagram is not a valid RTCP compound packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    #[error("RTCP packet truncated")]
    Truncated,
    #[error("RTCP version {0} (expected 2)")]
    Version(u8),
    #[error("malformed RTCP packet type {0}")]
    Malformed(u8),
}

/// Parses an RTCP compound packet.
pub fn parse_compound(datagram: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut packets = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let header = rest.get(..4).ok_or(RtcpError::Truncated)?;
        let version = header[0] >> 6;
        if version != 2 {
            return Err(RtcpError::Version(version));
        }
        let has_padding = header[0] & 0x20 != 0;
        let count = usize::from(header[0] & 0x1F);
        let packet_type = header[1];
        let len = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
        let packet = rest.get(..len).ok_or(RtcpError::Truncated)?;
        rest = &rest[len..];
        let mut body = &packet[4..];
        if has_padding {
            let padding = usize::from(*body.last().ok_or(RtcpError::Malformed(packet_type))?);
            if padding == 0 || padding > body.len() {
                return Err(RtcpError::Malformed(packet_type));
            }
            body = &body[..body.len() - padding];
        }
        packets.push(parse_one(packet_type, count, body)?);
    }
    Ok(packets)
}

fn parse_one(packet_type: u8, count: usize, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    let malformed = || RtcpError::Malformed(packet_type);
    let mut reader = Reader(body);
    Ok(match packet_type {
        SR => {
            let ssrc = reader.u32().ok_or_else(malformed)?;
            let high = reader.u32().ok_or_else(malformed)?;
            let low = reader.u32().ok_or_else(malformed)?;
            let info = SenderInfo {
                ntp_time: u64::from(high) << 32 | u64::from(low),
                rtp_time: reader.u32().ok_or_else(malformed)?,
                packet_count: reader.u32().ok_or_else(malformed)?,
                octet_count: reader.u32().ok_or_else(malformed)?,
            };
            let reports = parse_report_blocks(&mut reader, count).ok_or_else(malformed)?;
            RtcpPacket::SenderReport {
                ssrc,
                info,
                reports,
            }
        }
        RR => {
            let ssrc = reader.u32().ok_or_else(malformed)?;
            let reports = parse_report_blocks(&mut reader, count).ok_or_else(malformed)?;
            RtcpPacket::ReceiverReport { ssrc, reports }
        }
        SDES => {
            let mut chunks = Vec::with_capacity(count);
            for _ in 0..count {
                chunks.push(parse_sdes_chunk(&mut reader).ok_or_else(malformed)?);
            }
            RtcpPacket::SourceDescription(chunks)
        }
        BYE => {
            let mut ssrcs = Vec::with_capacity(count);
            for _ in 0..count {
                ssrcs.push(reader.u32().ok_or_else(malformed)?);
            }
            let reason = match reader.u8() {
                Some(len) => {
                    let text = reader.take(usize::from(len)).ok_or_else(malformed)?;
                    Some(String::from_utf8_lossy(text).into_owned())
                }
                None => None,
            };
            RtcpPacket::Bye { ssrcs, reason }
        }
        APP => {
            let ssrc = reader.u32().ok_or_else(malformed)?;
            let name = reader.take(4).ok_or_else(malformed)?;
            let name = [name[0], name[1], name[2], name[3]];
            // `count` is 5 bits, so it fits the subtype.
            RtcpPacket::App {
                subtype: count as u8,
                ssrc,
                name,
                data: reader.0.to_vec(),
            }
        }
        _ => RtcpPacket::Other { packet_type },
    })
}

fn parse_report_blocks(reader: &mut Reader<'_>, count: usize) -> Option<Vec<ReportBlock>> {
    let mut reports = Vec::with_capacity(count);
    for _ in 0..count {
        let ssrc = reader.u32()?;
        let lost = reader.u32()?;
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        reports.push(ReportBlock {
            ssrc,
            fraction_lost: (lost >> 24) as u8,
            cumulative_lost,
            highest_sequence: reader.u32()?,
            jitter: reader.u32()?,
            last_sr: reader.u32()?,
            delay_since_last_sr: reader.u32()?,
        });
    }
    Some(reports)
}

fn parse_sdes_chunk(reader: &mut Reader<'_>) -> Option<(u32, Option<String>)> {
    let start = reader.0.len();
    let ssrc = reader.u32()?;
    let mut cname = None;
    loop {
        let item = reader.u8()?;
        if item == 0 {
            break;
        }
        let len = usize::from(reader.u8()?);
        let text = reader.take(len)?;
        if item == SDES_CNAME {
            cname = Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    // The null item is followed by nulls up to the next 32-bit boundary.
    let used = start - reader.0.len();
    reader.take((4 - used % 4) % 4)?;
    Some((ssrc, cname))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let head = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let (head, tail) = self.0.split_first_chunk::<4>()?;
        self.0 = tail;
        Some(u32::from_be_bytes(*head))
    }
}

impl RtcpPacket {
    /// Appends the packet to `out`. At most 31 report blocks, SDES chunks or BYE sources are
    /// written; text longer than 255 bytes is truncated.
    pub fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            RtcpPacket::SenderReport {
                ssrc,
                info,
                reports,
            } => {
                let reports = &reports[..reports.len().min(31)];
                write_header(out, reports.len(), SR);
                out.extend_from_slice(&ssrc.to_be_bytes());
                out.extend_from_slice(&info.ntp_time.to_be_bytes());
                out.extend_from_slice(&info.rtp_time.to_be_bytes());
                out.extend_from_slice(&info.packet_count.to_be_bytes());
                out.extend_from_slice(&info.octet_count.to_be_bytes());
                reports.iter().for_each(|r| write_report_block(out, r));
            }
            RtcpPacket::ReceiverReport { ssrc, reports } => {
                let reports = &reports[..reports.len().min(31)];
                write_header(out, reports.len(), RR);
                out.extend_from_slice(&ssrc.to_be_bytes());
                reports.iter().for_each(|r| write_report_block(out, r));
            }
            RtcpPacket::SourceDescription(chunks) => {
                let chunks = &chunks[..chunks.len().min(31)];
                write_header(out, chunks.len(), SDES);
                for (ssrc, cname) in chunks {
                    let chunk_start = out.len();
                    out.extend_from_slice(&ssrc.to_be_bytes());
                    if let Some(cname) = cname {
                        out.push(SDES_CNAME);
                        write_text(out, cname);
                    }
                    out.push(0);
                    pad_to_word(out, chunk_start);
                }
            }
            RtcpPacket::Bye { ssrcs, reason } => {
                let ssrcs = &ssrcs[..ssrcs.len().min(31)];
                write_header(out, ssrcs.len(), BYE);
                ssrcs
                    .iter()
                    .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
                if let Some(reason) = reason {
                    write_text(out, reason);
                    pad_to_word(out, start);
                }
            }
            RtcpPacket::App {
                subtype,
                ssrc,
                name,
                data,
            } => {
                write_header(out, usize::from(*subtype & 0x1F), APP);
                out.extend_from_slice(&ssrc.to_be_bytes());
                out.extend_from_slice(name);
                out.extend_from_slice(data);
                pad_to_word(out, start);
            }
            RtcpPacket::Other { packet_type } => write_header(out, 0, *packet_type),
        }
        // Length in 32-bit words minus one; every branch wrote whole words.
        let words = ((out.len() - start) / 4 - 1) as u16;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    }
}

fn write_header(out: &mut Vec<u8>, count: usize, packet_type: u8) {
    // count <= 31 is ensured by every caller.
    out.extend_from_slice(&[0x80 | count as u8, packet_type, 0, 0]);
}

fn write_report_block(out: &mut Vec<u8>, report: &ReportBlock) {
    let lost = report.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
    out.extend_from_slice(&report.ssrc.to_be_bytes());
    out.extend_from_slice(&(u32::from(report.fraction_lost) << 24 | lost).to_be_bytes());
    out.extend_from_slice(&report.highest_sequence.to_be_bytes());
    out.extend_from_slice(&report.jitter.to_be_bytes());
    out.extend_from_slice(&report.last_sr.to_be_bytes());
    out.extend_from_slice(&report.delay_since_last_sr.to_be_bytes());
}

fn write_text(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(255)];
    // bytes.len() <= 255 by the slice above.
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn pad_to_word(out: &mut Vec<u8>, start: usize) {
    while (out.len() - start) % 4 != 0 {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    fn block(ssrc: u32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_sequence: 0x0001_0005,
            jitter: 77,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn compound_round_trip() {
        let packets = vec![
            RtcpPacket::SenderReport {
                ssrc: 1,
                info: SenderInfo {
                    ntp_time: 0x0102_0304_0506_0708,
                    rtp_time: 9,
                    packet_count: 10,
                    octet_count: 11,
                },
                reports: vec![block(2)],
            },
            RtcpPacket::ReceiverReport {
                ssrc: 3,
                reports: vec![block(4), block(5)],
            },
            RtcpPacket::SourceDescription(vec![(1, Some("agent@host".into())), (6, None)]),
            RtcpPacket::App {
                subtype: 3,
                ssrc: 1,
                name: *b"TEST",
                data: vec![1, 2, 3, 4],
            },
            RtcpPacket::Bye {
                ssrcs: vec![1],
                reason: Some("bye".into()),
            },
        ];
        let mut bytes = Vec::new();
        for packet in &packets {
            packet.write(&mut bytes);
            assert_eq!(bytes.len() % 4, 0);
        }
        assert!(crate::rtp::is_rtcp(&bytes));
        assert_eq!(parse_compound(&bytes), Ok(packets));
        // SR: 4 header + 24 sender info + 24 block.
        assert_eq!(&bytes[..4], &[0x81, 200, 0, 12]);
    }

    #[test]
    fn rejects_truncated_and_bad_length() {
        let mut bytes = Vec::new();
        RtcpPacket::ReceiverReport {
            ssrc: 3,
            reports: vec![block(4)],
        }
        .write(&mut bytes);
        assert_eq!(
            parse_compound(&bytes[..bytes.len() - 4]),
            Err(RtcpError::Truncated)
        );
        // Claims two report blocks in a packet sized for one.
        bytes[0] = 0x82;
        assert_eq!(parse_compound(&bytes), Err(RtcpError::Malformed(RR)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = SmallRng::seed_from_u64(11);
        let mut parsed = 0;
        for _ in 0..200_000 {
            let len = rng.gen_range(0..80) & !3;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if bytes.len() >= 4 {
                bytes[0] = 0x80 | (bytes[0] & 0x3F);
                bytes[1] = rng.gen_range(200..=204);
                let words = rng.gen_range(0..=(len / 4 - 1)) as u16;
                bytes[2..4].copy_from_slice(&words.to_be_bytes());
            }
            if parse_compound(&bytes).is_ok() {
                parsed += 1;
            }
        }
        assert!(parsed > 1000, "only {parsed} parsed");
    }
}
