//! SDES key exchange for SRTP (RFC 4568 `a=crypto`): the suites we speak, parsing the peer's
//! lines and writing ours. Only the first key of a line counts; lifetimes and MKIs are
//! accepted and ignored (we never rekey, and send without MKI).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The SRTP crypto suites we offer and accept, best first when answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrtpSuite {
    /// RFC 7714 AES-GCM with a 128-bit key (authenticated encryption, 16-byte tag).
    AeadAes128Gcm,
    /// RFC 4568 AES counter mode, 128-bit key, HMAC-SHA1 80-bit tag (what every SRTP peer has).
    AesCm128HmacSha1_80,
    /// The same with a 32-bit tag (accepted when offered, never offered).
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// Preference when answering: authenticated encryption first.
    pub const ACCEPTED: [SrtpSuite; 3] = [
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];
    /// What our offers list, in this order (tags 1, 2): the universal suite first.
    pub const OFFERED: [SrtpSuite; 2] = [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm];

    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    fn from_name(name: &str) -> Option<SrtpSuite> {
        SrtpSuite::ACCEPTED
            .into_iter()
            .find(|suite| suite.name().eq_ignore_ascii_case(name))
    }

    /// Master key + master salt length in bytes (16 + 14 for counter mode, 16 + 12 for GCM).
    pub fn key_material_len(self) -> usize {
        match self {
            SrtpSuite::AeadAes128Gcm => 28,
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => 30,
        }
    }

    /// Master key length in bytes (the rest of the key material is the salt).
    pub fn master_key_len(self) -> usize {
        16
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `a=crypto` line: `TAG SUITE inline:KEY||SALT[|LIFETIME][|MKI:LEN]`.
#[derive(Clone, PartialEq, Eq)]
pub struct CryptoLine {
    pub tag: u32,
    pub suite: SrtpSuite,
    /// Master key followed by master salt, [`SrtpSuite::key_material_len`] bytes.
    pub key: Vec<u8>,
}

impl fmt::Debug for CryptoLine {
    // Keys never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoLine")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl CryptoLine {
    /// Parses an `a=crypto` value; `None` for suites we don't speak, keys of the wrong length,
    /// session parameters we can't honour (e.g. `UNENCRYPTED_SRTP`) or malformed lines.
    pub fn parse(value: &str) -> Option<CryptoLine> {
        let mut fields = value.split_ascii_whitespace();
        let tag = fields.next()?.parse().ok()?;
        let suite = SrtpSuite::from_name(fields.next()?)?;
        let key_params = fields.next()?;
        // Session parameters (RFC 4568 §6.3) change how SRTP works: refuse them all.
        if fields.next().is_some() {
            return None;
        }
        // Several keys may be separated by ';' (a key per MKI): the first is used.
        let first = key_params.split(';').next()?;
        let inline = first.strip_prefix("inline:")?;
        let encoded = inline.split('|').next()?;
        let key = STANDARD.decode(encoded).ok()?;
        (key.len() == suite.key_material_len()).then_some(CryptoLine { tag, suite, key })
    }

    /// The attribute value: `TAG SUITE inline:BASE64`.
    pub fn value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            STANDARD.encode(&self.key)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_rfc_4568_lines() {
        // RFC 4568 §9.1's example key (30 bytes), with a lifetime and an MKI.
        let line = CryptoLine::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
        )
        .expect("valid line");
        assert_eq!(line.tag, 1);
        assert_eq!(line.suite, SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(line.key.len(), 30);
        assert_eq!(
            line.value(),
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
        );
        assert_eq!(CryptoLine::parse(&line.value()), Some(line.clone()));
        assert!(!format!("{line:?}").contains("PS1u"), "no key in Debug");
        let gcm = CryptoLine {
            tag: 7,
            suite: SrtpSuite::AeadAes128Gcm,
            key: (0..28).collect(),
        };
        assert_eq!(CryptoLine::parse(&gcm.value()), Some(gcm));
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let key30 = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        for bad in [
            "",
            "1",
            "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:%%%",
            // A GCM suite with a counter-mode key length.
            "1 AEAD_AES_128_GCM inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            // Session parameters change the protocol: not honoured, so refused.
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP",
        ] {
            assert_eq!(CryptoLine::parse(bad), None, "{bad:?}");
        }
        assert!(CryptoLine::parse(&format!("1 AES_CM_128_HMAC_SHA1_32 inline:{key30}")).is_some());
    }
}
