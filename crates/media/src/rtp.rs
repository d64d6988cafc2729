//! RTP packets (RFC 3550 §5.1): parsing and writing, and RTP/RTCP demultiplexing (RFC 5761).

/// The fixed RTP header plus the CSRC list and header extension length.
const FIXED_HEADER_LEN: usize = 12;

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrcs: Vec<u32>,
    /// Header extension: profile-defined id and the extension words' bytes.
    pub extension: Option<(u16, &'a [u8])>,
    pub payload: &'a [u8],
}

/// Why a datagram is not a valid RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    #[error("datagram of {0} bytes is too short")]
    TooShort(usize),
    #[error("RTP version {0} (expected 2)")]
    Version(u8),
    #[error("padding length {padding} does not fit in {available} bytes")]
    Padding { padding: usize, available: usize },
}

/// True when a datagram on a muxed port is RTCP rather than RTP (RFC 5761 §4: the second byte,
/// read as an RTCP packet type, is in 192..=223).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.get(1), Some(192..=223))
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP datagram.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, RtpError> {
        let too_short = || RtpError::TooShort(datagram.len());
        let header = datagram.get(..FIXED_HEADER_LEN).ok_or_else(too_short)?;
        let first = header[0];
        let version = first >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let has_padding = first & 0x20 != 0;
        let has_extension = first & 0x10 != 0;
        let csrc_count = usize::from(first & 0x0F);

        let mut rest = &datagram[FIXED_HEADER_LEN..];
        let mut csrcs = Vec::with_capacity(csrc_count);
        for _ in 0..csrc_count {
            let (word, tail) = split_u32(rest).ok_or_else(too_short)?;
            csrcs.push(word);
            rest = tail;
        }
        let mut extension = None;
        if has_extension {
            let head = rest.get(..4).ok_or_else(too_short)?;
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]])) * 4;
            let data = rest.get(4..4 + len).ok_or_else(too_short)?;
            extension = Some((profile, data));
            rest = &rest[4 + len..];
        }
        let mut payload = rest;
        if has_padding {
            let padding = usize::from(*payload.last().ok_or_else(too_short)?);
            if padding == 0 || padding > payload.len() {
                return Err(RtpError::Padding {
                    padding,
                    available: payload.len(),
                });
            }
            payload = &payload[..payload.len() - padding];
        }
        Ok(Self {
            marker: header[1] & 0x80 != 0,
            payload_type: header[1] & 0x7F,
            sequence: u16::from_be_bytes([header[2], header[3]]),
            timestamp: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
            ssrc: u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
            csrcs,
            extension,
            payload,
        })
    }

    /// Appends the packet to `out` (no padding; CSRCs beyond 15 and extension bytes beyond a
    /// whole number of words up to 65535 are not representable and are truncated).
    pub fn write(&self, out: &mut Vec<u8>) {
        let csrcs = &self.csrcs[..self.csrcs.len().min(15)];
        let mut first = 0x80 | csrcs.len() as u8;
        if self.extension.is_some() {
            first |= 0x10;
        }
        out.push(first);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for csrc in csrcs {
            out.extend_from_slice(&csrc.to_be_bytes());
        }
        if let Some((profile, data)) = self.extension {
            let words = (data.len() / 4).min(usize::from(u16::MAX));
            out.extend_from_slice(&profile.to_be_bytes());
            // words <= u16::MAX by the min above.
            out.extend_from_slice(&(words as u16).to_be_bytes());
            out.extend_from_slice(&data[..words * 4]);
        }
        out.extend_from_slice(self.payload);
    }
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, tail) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    #[test]
    fn round_trips_with_csrcs_and_extension() {
        let packet = RtpPacket {
            marker: true,
            payload_type: 111,
            sequence: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            csrcs: vec![1, 2],
            extension: Some((0xBEDE, &[1, 2, 3, 4, 5, 6, 7, 8])),
            payload: b"hello",
        };
        let mut bytes = Vec::new();
        packet.write(&mut bytes);
        assert_eq!(bytes.len(), 12 + 8 + 4 + 8 + 5);
        assert_eq!(RtpPacket::parse(&bytes), Ok(packet));
        assert!(!is_rtcp(&bytes));
    }

    #[test]
    fn strips_padding_and_rejects_bad_padding() {
        let mut bytes = vec![0xA0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9, 0, 0, 3];
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(packet.payload, &[9, 9]);
        *bytes.last_mut().unwrap() = 6;
        assert!(matches!(
            RtpPacket::parse(&bytes),
            Err(RtpError::Padding { .. })
        ));
        *bytes.last_mut().unwrap() = 0;
        assert!(RtpPacket::parse(&bytes).is_err());
    }

    #[test]
    fn rejects_short_and_wrong_version() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::TooShort(11)));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        // Claims two CSRCs but carries one.
        let bytes = [0x82, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4];
        assert_eq!(RtpPacket::parse(&bytes), Err(RtpError::TooShort(16)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut parsed = 0;
        for _ in 0..200_000 {
            let len = rng.gen_range(0..64);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if let Some(first) = bytes.first_mut() {
                // Keep version 2 most of the time so the deeper paths run.
                *first = (*first & 0x3F) | if rng.gen_bool(0.9) { 0x80 } else { 0 };
            }
            if let Ok(packet) = RtpPacket::parse(&bytes) {
                parsed += 1;
                assert!(packet.payload.len() <= bytes.len());
            }
        }
        assert!(parsed > 1000, "only {parsed} parsed");
    }
}
