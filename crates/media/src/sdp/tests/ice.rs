//! ICE + DTLS-SRTP offer/answer against the bodies Chromium 156 really sends (captured through
//! JsSIP on the bench).

use std::net::{IpAddr, Ipv4Addr};

use crate::sdp::{
    LocalIce, LocalMedia, NegotiationError, Protocol, SessionDescription, apply_answer,
    create_answer, create_offer,
};
use crate::{CodecKind, Direction};

const CHROMIUM_OFFER: &str = include_str!("chromium156-offer.sdp");
const CHROMIUM_ANSWER: &str = include_str!("chromium156-answer.sdp");

fn local(ice: Option<LocalIce>) -> LocalMedia {
    LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 40000,
        codecs: vec![CodecKind::Opus, CodecKind::Pcmu],
        dtmf: true,
        direction: Direction::SendRecv,
        ptime_ms: 20,
        session_id: 77,
        session_version: 1,
        srtp: None,
        ice,
    }
}

fn our_ice(offer: bool) -> LocalIce {
    LocalIce {
        ufrag: "AbCd".to_owned(),
        pwd: "0123456789abcdefghijklmn".to_owned(),
        candidates: vec!["1 1 udp 2130706431 127.0.0.1 40000 typ host".to_owned()],
        fingerprint: "sha-256 AA:BB:CC".to_owned(),
        offer,
        mid: None,
        dtls_client: None,
    }
}

fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text).expect("captured SDP is valid")
}

fn attribute<'a>(sdp: &'a SessionDescription, name: &str) -> Option<&'a str> {
    sdp.media
        .first()
        .and_then(|m| m.attribute(name))
        .and_then(|a| a.value.as_deref())
}

#[test]
fn chromium_offer_is_answered_with_ice_and_dtls_as_client() {
    let (answer, negotiated) =
        create_answer(&parse(CHROMIUM_OFFER), &local(Some(our_ice(false)))).expect("answerable");
    assert_eq!(negotiated.kind, CodecKind::Opus);
    assert_eq!(negotiated.srtp, None, "no SDES keys with DTLS");
    assert!(negotiated.rtcp_mux);
    let ice = negotiated.ice.expect("ICE negotiated");
    assert_eq!(ice.remote_ufrag, "6Kcr");
    assert_eq!(ice.remote_pwd, "U617hp8F2wPqJF8sBaGutxuQ");
    assert!(ice.remote_fingerprint.starts_with("sha-256 28:CB:31"));
    assert_eq!(
        ice.remote_candidates.len(),
        2,
        "udp and tcp host candidates"
    );
    assert!(ice.dtls_client, "an actpass offer makes us the DTLS client");
    assert!(!ice.controlling, "the offerer controls ICE");
    assert_eq!(
        (ice.local_ufrag.as_str(), ice.local_pwd.len()),
        ("AbCd", 24)
    );

    let media = answer.media.first().expect("one stream");
    assert_eq!(media.protocol, Protocol::UdpTlsRtpSavpf);
    assert_eq!(attribute(&answer, "setup"), Some("active"));
    assert_eq!(attribute(&answer, "mid"), Some("0"));
    assert_eq!(attribute(&answer, "ice-ufrag"), Some("AbCd"));
    assert_eq!(attribute(&answer, "fingerprint"), Some("sha-256 AA:BB:CC"));
    assert_eq!(
        attribute(&answer, "candidate"),
        Some("1 1 udp 2130706431 127.0.0.1 40000 typ host")
    );
    assert!(media.rtcp_mux());
    assert!(media.attribute("crypto").is_none());
    assert!(
        answer
            .attributes
            .iter()
            .any(|a| a.name == "group" && a.value.as_deref() == Some("BUNDLE 0"))
    );
    // What we print parses back the same (it goes to the browser as text).
    assert_eq!(parse(&answer.to_string()), answer);
}

#[test]
fn without_ice_a_dtls_offer_is_refused() {
    let error = create_answer(&parse(CHROMIUM_OFFER), &local(None)).unwrap_err();
    assert!(
        matches!(error, NegotiationError::UnsupportedProtocol(_)),
        "{error}"
    );
    assert_eq!(error.sip_status(), 488);
}

#[test]
fn our_ice_offer_takes_chromiums_answer() {
    let offer = create_offer(&local(Some(our_ice(true))));
    let media = offer.media.first().expect("one stream");
    assert_eq!(media.protocol, Protocol::UdpTlsRtpSavpf);
    assert_eq!(attribute(&offer, "setup"), Some("actpass"));
    assert_eq!(attribute(&offer, "mid"), Some("0"));
    assert!(media.rtcp_mux());

    // Chromium's captured answer carries its own mid 0 and setup:active.
    let negotiated = apply_answer(&offer, &parse(CHROMIUM_ANSWER)).expect("applies");
    let ice = negotiated.ice.expect("ICE negotiated");
    assert!(
        !ice.dtls_client,
        "the browser answered active: we are the DTLS server"
    );
    assert!(ice.controlling);
    assert_eq!(ice.local_ufrag, "AbCd");
    assert_eq!(ice.remote_ufrag, "6Vew");
    assert_eq!(ice.remote_candidates.len(), 1);
    assert_eq!(negotiated.kind, CodecKind::Opus);
}

#[test]
fn ice_offer_is_plain_without_the_offer_flag() {
    let offer = create_offer(&local(Some(our_ice(false))));
    assert_eq!(offer.media[0].protocol, Protocol::RtpAvp);
    assert_eq!(attribute(&offer, "ice-ufrag"), None);
}

#[test]
fn an_active_offerer_makes_us_the_dtls_server() {
    let text = CHROMIUM_OFFER.replace("a=setup:actpass", "a=setup:active");
    let (answer, negotiated) =
        create_answer(&parse(&text), &local(Some(our_ice(false)))).expect("answerable");
    assert_eq!(attribute(&answer, "setup"), Some("passive"));
    assert!(!negotiated.ice.expect("ICE").dtls_client);
}

#[test]
fn broken_ice_offers_get_488() {
    let cases = [
        ("a=fingerprint:", "a=x-fingerprint:"),
        ("a=ice-pwd:", "a=x-ice-pwd:"),
        ("a=ice-ufrag:6Kcr", "a=ice-ufrag:6K c"),
        ("a=rtcp-mux", "a=x-rtcp-mux"),
        ("a=setup:actpass", "a=setup:holdconn"),
    ];
    for (from, to) in cases {
        assert!(CHROMIUM_OFFER.contains(from), "{from}");
        let text = CHROMIUM_OFFER.replace(from, to);
        let Ok(offer) = SessionDescription::parse(&text) else {
            continue;
        };
        let error = create_answer(&offer, &local(Some(our_ice(false)))).unwrap_err();
        assert!(matches!(error, NegotiationError::Ice(_)), "{from}: {error}");
    }
}

#[test]
fn an_answer_without_dtls_role_is_refused() {
    let offer = create_offer(&local(Some(our_ice(true))));
    let text = CHROMIUM_ANSWER.replace("a=setup:active", "a=setup:actpass");
    let error = apply_answer(&offer, &parse(&text)).unwrap_err();
    assert!(matches!(error, NegotiationError::Ice(_)), "{error}");
}

#[test]
fn a_re_offer_keeps_the_dtls_role_and_mid_of_the_call() {
    let mut ice = our_ice(true);
    ice.dtls_client = Some(true);
    ice.mid = Some("audio".to_owned());
    let offer = create_offer(&local(Some(ice.clone())));
    assert_eq!(attribute(&offer, "setup"), Some("active"));
    assert_eq!(attribute(&offer, "mid"), Some("audio"));
    assert!(
        offer
            .attributes
            .iter()
            .any(|a| a.name == "group" && a.value.as_deref() == Some("BUNDLE audio"))
    );
    ice.dtls_client = Some(false);
    let offer = create_offer(&local(Some(ice)));
    assert_eq!(attribute(&offer, "setup"), Some("passive"));
    assert_eq!(crate::sdp::ice_ufrag(&offer), Some("AbCd"));
    assert_eq!(crate::sdp::ice_ufrag(&parse(CHROMIUM_OFFER)), Some("6Kcr"));
}
