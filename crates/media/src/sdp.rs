//! SDP (RFC 8866, formerly RFC 4566) model, parser, printer and offer/answer (RFC 3264).
//!
//! - [`SessionDescription::parse`] is tolerant (CRLF or LF, trailing whitespace, unknown lines and
//!   attributes are kept) but rejects what is structurally wrong, with the line number and the
//!   reason. It never panics, whatever the input.
//! - `Display` prints canonical SDP (CRLF line ends, RFC 8866 line order).
//! - Attributes are kept raw and in order; known ones are typed on demand
//!   ([`Attribute::known`], [`MediaDescription::rtpmaps`], [`MediaDescription::direction`] …).
//! - [`create_offer`], [`create_answer`] and [`apply_answer`] negotiate one audio stream
//!   (plain RTP/AVP or RTP/AVPF) into a [`Negotiated`] result for the RTP session.

mod crypto;
mod ice;
mod model;
mod negotiate;
mod parse;

#[cfg(test)]
mod tests;

pub use crypto::{CryptoLine, SrtpSuite};
pub use ice::{LocalIce, NegotiatedIce, ice_ufrag};
pub use model::{
    Attribute, Bandwidth, Connection, KnownAttribute, MediaDescription, Origin, Protocol, Rtcp,
    RtpMap, SessionDescription, Timing,
};
pub use negotiate::{
    LocalMedia, LocalSrtp, Negotiated, NegotiationError, SRTP_KEY_MATERIAL_LEN, SrtpKeys,
    apply_answer, create_answer, create_offer,
};
pub use parse::{SdpError, SdpErrorKind};

/// Entry point for the SDP fuzz target (`fuzz/`): parses `data` as a SIP body; when accepted,
/// checks that print → parse gives the same model and runs both negotiation directions on it.
/// Panics only on a bug, which is what the fuzzer looks for.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    let Ok(sdp) = SessionDescription::parse_bytes(data) else {
        return;
    };
    let printed = sdp.to_string();
    let reparsed = SessionDescription::parse(&printed);
    assert_eq!(
        reparsed.as_ref(),
        Ok(&sdp),
        "print/parse round trip changed:\n{printed}"
    );

    let local = LocalMedia {
        addr: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        port: 40000,
        codecs: vec![
            crate::CodecKind::Opus,
            crate::CodecKind::Pcmu,
            crate::CodecKind::Pcma,
        ],
        dtmf: true,
        direction: crate::Direction::SendRecv,
        ptime_ms: 20,
        session_id: 1,
        session_version: 1,
        // SDES on, so the peer's crypto lines are parsed too.
        srtp: Some(LocalSrtp {
            mandatory: false,
            key_material: [7; SRTP_KEY_MATERIAL_LEN],
        }),
        // ICE on, so ICE/DTLS offers are parsed and answered too.
        ice: Some(LocalIce {
            ufrag: "fuzz".to_owned(),
            pwd: "fuzzfuzzfuzzfuzzfuzzfuzz".to_owned(),
            candidates: vec!["1 1 udp 2130706431 127.0.0.1 40000 typ host".to_owned()],
            fingerprint: "sha-256 00:11".to_owned(),
            offer: false,
            mid: None,
            dtls_client: None,
        }),
    };
    if let Ok((answer, _)) = create_answer(&sdp, &local) {
        let answer_text = answer.to_string();
        assert!(
            SessionDescription::parse(&answer_text).is_ok(),
            "our answer does not parse:\n{answer_text}"
        );
    }
    let _ = apply_answer(&create_offer(&local), &sdp);
}
