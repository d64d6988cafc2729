//! SRTP/SRTCP (RFC 3711, RFC 7714 for GCM) with the keys agreed in SDP (SDES): protects what
//! we send and authenticates and decrypts what we receive, with replay protection. Sans-IO:
//! bytes in, bytes out. The cipher work is `rtc-srtp` (ring).

use rtc_srtp::context::Context;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;

use crate::sdp::{SrtpKeys, SrtpSuite};

/// Packets behind the newest that may still arrive (reordering on a home network).
const REPLAY_WINDOW: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    #[error("SRTP keys: {0}")]
    Keys(String),
    /// Authentication failed, a replay, or a packet too short or malformed (dropped).
    #[error("SRTP packet rejected: {0}")]
    Rejected(String),
}

/// Both directions of one call's SRTP.
pub struct SrtpTransform {
    suite: SrtpSuite,
    outbound: Context,
    inbound: Context,
}

impl std::fmt::Debug for SrtpTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpTransform")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl SrtpTransform {
    pub fn new(keys: &SrtpKeys) -> Result<SrtpTransform, SrtpError> {
        let provider =
            rtc_srtp::crypto::default_provider().map_err(|e| SrtpError::Keys(e.to_string()))?;
        let profile = match keys.suite {
            SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        };
        let context = |key: &[u8], replay: bool| {
            let (master_key, master_salt) =
                key.split_at(keys.suite.master_key_len().min(key.len()));
            Context::new(
                master_key,
                master_salt,
                profile,
                replay.then(|| srtp_replay_protection(REPLAY_WINDOW)),
                replay.then(|| srtcp_replay_protection(REPLAY_WINDOW)),
                provider.crypto(),
            )
            .map_err(|e| SrtpError::Keys(e.to_string()))
        };
        Ok(SrtpTransform {
            suite: keys.suite,
            outbound: context(&keys.local_key, false)?,
            inbound: context(&keys.remote_key, true)?,
        })
    }

    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        // The cipher library slices at the header length it recomputes: only headers without
        // an extension (ours never have one) are sure to match (fuzzing found panics on
        // headers longer than the packet and on re-padded extensions).
        let plain_header = packet.first().is_some_and(|b| b & 0x10 == 0);
        if rtp_header_len(packet).is_none() || !plain_header {
            return Err(SrtpError::Rejected(
                "not an RTP packet without extension".into(),
            ));
        }
        self.outbound
            .encrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Rejected(e.to_string()))
    }

    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.outbound
            .encrypt_rtcp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Rejected(e.to_string()))
    }

    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        rtp_header_len(packet).ok_or_else(|| SrtpError::Rejected("not an RTP packet".into()))?;
        self.inbound
            .decrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Rejected(e.to_string()))
    }

    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.inbound
            .decrypt_rtcp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Rejected(e.to_string()))
    }
}

/// The length of an RTP packet's header (fixed part, CSRCs, extension), when the packet is
/// version 2 and holds it whole.
fn rtp_header_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words: [u8; 2] = packet.get(len + 2..len + 4)?.try_into().ok()?;
        len += 4 + 4 * usize::from(u16::from_be_bytes(words));
    }
    (len <= packet.len()).then_some(len)
}

/// Whether a datagram on an rtcp-mux port is RTCP (RFC 5761 §4: packet types 192–223).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.get(1).is_some_and(|pt| (192..=223).contains(pt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(suite: SrtpSuite) -> (SrtpTransform, SrtpTransform) {
        let len = suite.key_material_len();
        let a: Vec<u8> = (0..len as u8).collect();
        let b: Vec<u8> = (100..100 + len as u8).collect();
        let alice = SrtpKeys {
            suite,
            local_key: a.clone(),
            remote_key: b.clone(),
        };
        let bob = SrtpKeys {
            suite,
            local_key: b,
            remote_key: a,
        };
        (
            SrtpTransform::new(&alice).expect("alice"),
            SrtpTransform::new(&bob).expect("bob"),
        )
    }

    fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0x03, 0x20, 0x12, 0x34, 0x56, 0x78];
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(payload);
        packet
    }

    #[test]
    fn round_trips_rtp_and_rtcp_in_every_suite_and_hides_the_payload() {
        for suite in SrtpSuite::ACCEPTED {
            let (mut alice, mut bob) = pair(suite);
            let plain = rtp(1, &[0xff; 160]);
            let secured = alice.protect_rtp(&plain).expect("protect");
            assert!(secured.len() > plain.len(), "{suite}: an auth tag");
            assert_eq!(
                secured[..12],
                plain[..12],
                "{suite}: the header stays clear"
            );
            assert!(
                !secured.windows(16).any(|w| w.iter().all(|b| *b == 0xff)),
                "{suite}: no clear payload"
            );
            assert_eq!(bob.unprotect_rtp(&secured).expect("unprotect"), plain);
            // Replayed: refused.
            assert!(bob.unprotect_rtp(&secured).is_err(), "{suite}: replay");
            // Tampered: refused.
            let mut forged = alice.protect_rtp(&rtp(2, &[1; 160])).expect("protect");
            if let Some(byte) = forged.get_mut(20) {
                *byte ^= 1;
            }
            assert!(bob.unprotect_rtp(&forged).is_err(), "{suite}: forged");
            // A receiver report.
            let report = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
            let secured = bob.protect_rtcp(&report).expect("protect rtcp");
            assert!(is_rtcp(&secured));
            assert_eq!(alice.unprotect_rtcp(&secured).expect("rtcp"), report);
        }
    }

    #[test]
    fn garbage_is_rejected_not_a_panic() {
        let (_, mut bob) = pair(SrtpSuite::AesCm128HmacSha1_80);
        for bytes in [
            &[][..],
            &[0x80],
            &[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9][..],
        ] {
            assert!(bob.unprotect_rtp(bytes).is_err());
            assert!(bob.unprotect_rtcp(bytes).is_err());
        }
        assert!(!is_rtcp(&rtp(1, &[0])));
    }

    #[test]
    fn a_header_longer_than_the_packet_is_refused_both_ways() {
        let (mut alice, mut bob) = pair(SrtpSuite::AeadAes128Gcm);
        // Fuzzer's find: CSRC count and extension claim more header than there are bytes.
        let short = [
            0x30, 0xc2, 0x26, 0x25, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 0, 0xff, 4, 0, 0x24,
            0xff, 0xff,
        ];
        assert!(alice.protect_rtp(&short).is_err());
        // A two-byte-header extension the library would re-pad (a later find).
        let repadded = [
            0xb0, 0x0a, 0xd0, 0x01, 0x27, 0, 0xbe, 0xff, 0, 0, 8, 0, 0x10, 0, 0, 7, 1, 0, 0x21, 0,
            0, 0x3a, 0x0a, 0xd0, 0xff, 2, 0, 0, 1, 0x41, 0xff, 0xf7, 0, 0, 0, 0x10, 0x10, 0, 0, 7,
            1, 0, 0, 0, 0, 0, 2, 0, 0x21, 0, 0, 0, 0, 0, 0,
        ];
        assert!(alice.protect_rtp(&repadded).is_err());
        let mut extended = rtp(1, &[]);
        extended[0] |= 0x10;
        extended.extend_from_slice(&[0xbe, 0xde, 0, 9]);
        assert!(alice.protect_rtp(&extended).is_err());
        assert!(bob.unprotect_rtp(&extended).is_err());
        assert_eq!(rtp_header_len(&rtp(1, &[1, 2])), Some(12));
    }
}
