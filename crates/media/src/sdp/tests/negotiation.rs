//! Offer/answer (RFC 3264): codec choice, payload types, DTMF, hold, addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::fixtures::{BARESIP_OFFER, CHROME_OFFER, LINPHONE_OFFER, SRTP_THEN_RTP_OFFER};
use crate::sdp::{
    LocalMedia, Negotiated, NegotiationError, Protocol, SessionDescription, apply_answer,
    create_answer, create_offer,
};
use crate::{CodecKind, Direction};

fn local(codecs: &[CodecKind]) -> LocalMedia {
    LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        port: 40000,
        codecs: codecs.to_vec(),
        dtmf: true,
        direction: Direction::SendRecv,
        ptime_ms: 20,
        session_id: 4242,
        session_version: 1,
        srtp: None,
        ice: None,
    }
}

fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text).expect("test SDP is valid")
}

fn answer(offer: &str, local: &LocalMedia) -> (SessionDescription, Negotiated) {
    create_answer(&parse(offer), local).expect("offer is answerable")
}

/// A minimal plain-RTP offer with `body` appended to its audio section.
fn offer_with(connection: &str, formats: &str, body: &str) -> String {
    format!(
        "v=0\r\no=peer 9 9 IN IP4 198.51.100.7\r\ns=-\r\nc={connection}\r\nt=0 0\r\n\
         m=audio 30000 RTP/AVP {formats}\r\n{body}"
    )
}

fn socket(text: &str) -> SocketAddr {
    text.parse().expect("literal socket address")
}

#[test]
fn offer_lists_codecs_in_preference_order_with_dtmf_and_ptime() {
    let offer = create_offer(&local(&[CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma]));
    let text = offer.to_string();
    let expected = "v=0\r\n\
                    o=- 4242 1 IN IP4 192.0.2.10\r\n\
                    s=-\r\n\
                    c=IN IP4 192.0.2.10\r\n\
                    t=0 0\r\n\
                    m=audio 40000 RTP/AVP 111 63 0 122 8 13 110 101\r\n\
                    a=rtpmap:111 opus/48000/2\r\n\
                    a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n\
                    a=rtpmap:63 red/48000/2\r\n\
                    a=fmtp:63 111/111/111/111/111\r\n\
                    a=rtpmap:0 PCMU/8000\r\n\
                    a=rtpmap:122 red/8000\r\n\
                    a=fmtp:122 0/0/0\r\n\
                    a=rtpmap:8 PCMA/8000\r\n\
                    a=rtpmap:13 CN/8000\r\n\
                    a=rtpmap:110 telephone-event/48000\r\n\
                    a=fmtp:110 0-16\r\n\
                    a=rtpmap:101 telephone-event/8000\r\n\
                    a=fmtp:101 0-16\r\n\
                    a=ptime:20\r\n\
                    a=sendrecv\r\n";
    assert_eq!(text, expected);

    // G.711 only: no wideband telephone-event, no duplicates.
    let mut narrow = local(&[CodecKind::Pcma, CodecKind::Pcmu, CodecKind::Pcma]);
    narrow.dtmf = false;
    let offer = create_offer(&narrow);
    assert_eq!(offer.media[0].formats, ["8", "0", "122", "13"]);
    assert!(
        offer.media[0]
            .rtpmaps()
            .all(|m| m.encoding != "telephone-event")
    );
}

/// RFC 3389 CN: offered with G.711 only, answered only when offered, used only with G.711.
#[test]
fn comfort_noise_goes_with_g711_when_both_sides_list_it() {
    // Opus alone: no CN in the offer.
    let opus_only = create_offer(&local(&[CodecKind::Opus]));
    assert!(!opus_only.media[0].formats.contains(&"13".to_owned()));

    // G.711 to G.711 with CN on both sides.
    let offer = create_offer(&local(&[CodecKind::Pcmu]));
    assert_eq!(
        offer.media[0].rtpmap(13).map(|m| m.to_string()),
        Some("13 CN/8000".into())
    );
    let wire_offer = parse(&offer.to_string());
    let (answer_sdp, at_answerer) =
        create_answer(&wire_offer, &local(&[CodecKind::Pcmu])).expect("answerable");
    assert_eq!(answer_sdp.media[0].formats, ["0", "122", "13", "101"]);
    let at_offerer = apply_answer(&offer, &parse(&answer_sdp.to_string())).expect("applies");
    for negotiated in [&at_answerer, &at_offerer] {
        let cn = negotiated.comfort_noise.as_ref().expect("CN negotiated");
        assert_eq!((cn.payload_type, cn.clock_rate), (13, 8000));
    }

    // An offer without CN (baresip): our answer has none, and neither side uses it.
    let (answer_sdp, negotiated) = answer(BARESIP_OFFER, &local(&[CodecKind::Pcmu]));
    assert!(!answer_sdp.to_string().contains("CN/8000"));
    assert!(!answer_sdp.media[0].formats.contains(&"13".to_owned()));
    assert_eq!(negotiated.comfort_noise, None);

    // An answer that drops CN: not used.
    let (our_answer, _) =
        create_answer(&wire_offer, &local(&[CodecKind::Pcmu])).expect("answerable");
    let dropped = our_answer
        .to_string()
        .replace(" 0 122 13 101", " 0 122 101")
        .replace("a=rtpmap:13 CN/8000\r\n", "");
    assert!(!dropped.contains("CN/8000"));
    let applied = apply_answer(&offer, &parse(&dropped)).expect("applies");
    assert_eq!(applied.kind, CodecKind::Pcmu);
    assert_eq!(applied.comfort_noise, None);

    // Opus chosen from an offer with CN: CN is not answered.
    let both = create_offer(&local(&[CodecKind::Opus, CodecKind::Pcmu]));
    let (answer_sdp, negotiated) =
        create_answer(&parse(&both.to_string()), &local(&[CodecKind::Opus])).expect("answerable");
    assert_eq!(negotiated.kind, CodecKind::Opus);
    assert_eq!(negotiated.comfort_noise, None);
    assert!(!answer_sdp.to_string().contains("CN/8000"));
}

#[test]
fn answer_picks_our_first_preference_that_the_offer_has() {
    // baresip offers opus(96) PCMU PCMA; we prefer PCMA then opus.
    let (sdp, negotiated) = answer(BARESIP_OFFER, &local(&[CodecKind::Pcma, CodecKind::Opus]));
    assert_eq!(negotiated.kind, CodecKind::Pcma);
    assert_eq!(negotiated.codec.payload_type, 8);
    assert_eq!(negotiated.codec.clock_rate, 8000);
    assert_eq!(sdp.media[0].formats, ["8", "101"]);

    // We prefer opus: the offerer's dynamic PT 96 is kept, not our 111.
    let (sdp, negotiated) = answer(BARESIP_OFFER, &local(&[CodecKind::Opus, CodecKind::Pcmu]));
    assert_eq!(negotiated.kind, CodecKind::Opus);
    assert_eq!(negotiated.codec.payload_type, 96);
    assert_eq!(negotiated.codec.channels, 2);
    // The peer's receive preferences, for our encoder.
    assert_eq!(
        negotiated.codec.fmtp.as_deref(),
        Some("stereo=1;sprop-stereo=1")
    );
    let audio = &sdp.media[0];
    assert_eq!(audio.formats, ["96", "101"]);
    assert_eq!(
        audio.rtpmap(96).map(|m| m.to_string()),
        Some("96 opus/48000/2".into())
    );
    assert_eq!(
        audio.fmtp("96"),
        Some("minptime=10;useinbandfec=1;usedtx=1")
    );
    assert!(audio.rtpmap(111).is_none());
}

#[test]
fn answer_is_a_well_formed_sdp_with_our_session() {
    let mut ours = local(&[CodecKind::Pcmu]);
    ours.session_version = 5;
    let (sdp, _) = answer(BARESIP_OFFER, &ours);
    let text = sdp.to_string();
    assert_eq!(parse(&text), sdp);
    assert!(
        text.starts_with("v=0\r\no=- 4242 5 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n")
    );
    assert!(text.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:0 PCMU/8000\r\n"));
    assert!(text.contains("a=ptime:20\r\na=sendrecv\r\n"));
}

#[test]
fn no_common_codec_is_488() {
    let offer = offer_with(
        "IN IP4 198.51.100.7",
        "9 97",
        "a=rtpmap:9 G722/8000\r\na=rtpmap:97 speex/16000\r\n",
    );
    let error = create_answer(&parse(&offer), &local(&[CodecKind::Opus, CodecKind::Pcmu]))
        .expect_err("nothing in common");
    assert_eq!(error, NegotiationError::NoCommonCodec);
    assert_eq!(error.sip_status(), 488);

    // Same name at the wrong clock rate is not the same codec.
    let offer = offer_with("IN IP4 198.51.100.7", "96", "a=rtpmap:96 opus/16000/2\r\n");
    assert_eq!(
        create_answer(&parse(&offer), &local(&[CodecKind::Opus])).map(|(_, n)| n),
        Err(NegotiationError::NoCommonCodec)
    );
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let offer = offer_with("IN IP4 198.51.100.7", "18 8 0", "");
    let (_, negotiated) = answer(&offer, &local(&[CodecKind::Pcmu, CodecKind::Pcma]));
    assert_eq!(
        (negotiated.kind, negotiated.codec.payload_type),
        (CodecKind::Pcmu, 0)
    );
    assert_eq!(negotiated.codec.name, "PCMU");
    assert_eq!(negotiated.dtmf, None, "no telephone-event offered");
    assert_eq!(negotiated.ptime_ms, 20);
}

#[test]
fn dtmf_payload_type_follows_the_offer_and_the_codec_clock() {
    let (sdp, negotiated) = answer(BARESIP_OFFER, &local(&[CodecKind::Pcmu]));
    let dtmf = negotiated.dtmf.expect("telephone-event offered");
    assert_eq!((dtmf.payload_type, dtmf.clock_rate), (101, 8000));
    assert_eq!(dtmf.fmtp.as_deref(), Some("0-15"));
    assert_eq!(
        sdp.media[0].fmtp("101"),
        Some("0-15"),
        "offered events echoed"
    );

    // linphone offers telephone-event at 48000 (101), 16000 (99) and 8000 (100).
    let (sdp, negotiated) = answer(LINPHONE_OFFER, &local(&[CodecKind::Opus]));
    assert_eq!(
        negotiated.dtmf.map(|d| (d.payload_type, d.clock_rate)),
        Some((101, 48000))
    );
    assert_eq!(sdp.media[0].formats, ["96", "101"]);
    let (sdp, negotiated) = answer(LINPHONE_OFFER, &local(&[CodecKind::Pcmu]));
    assert_eq!(
        negotiated.dtmf.map(|d| (d.payload_type, d.clock_rate)),
        Some((100, 8000))
    );
    assert_eq!(sdp.media[0].formats, ["0", "100"]);

    // Only telephone-event/8000 with opus: used anyway (rather than no DTMF).
    let (_, negotiated) = answer(BARESIP_OFFER, &local(&[CodecKind::Opus]));
    assert_eq!(negotiated.dtmf.map(|d| d.clock_rate), Some(8000));

    // We do not want DTMF: none answered.
    let mut no_dtmf = local(&[CodecKind::Pcmu]);
    no_dtmf.dtmf = false;
    let (sdp, negotiated) = answer(BARESIP_OFFER, &no_dtmf);
    assert_eq!(negotiated.dtmf, None);
    assert_eq!(sdp.media[0].formats, ["0"]);
}

#[test]
fn other_streams_are_rejected_with_port_zero() {
    let (sdp, negotiated) = answer(LINPHONE_OFFER, &local(&[CodecKind::Opus]));
    assert_eq!(sdp.media.len(), 2);
    assert_eq!(sdp.media[1].media, "video");
    assert_eq!(sdp.media[1].port, 0);
    assert_eq!(sdp.media[1].formats, ["96"]);
    assert!(sdp.to_string().contains("m=video 0 RTP/AVP 96\r\n"));
    assert_eq!(negotiated.remote_rtp, socket("10.0.0.7:7078"));

    // SRTP audio first, plain RTP second: the plain one is used, the secure one rejected.
    let (sdp, negotiated) = answer(
        SRTP_THEN_RTP_OFFER,
        &local(&[CodecKind::Pcmu, CodecKind::Pcma]),
    );
    assert_eq!(sdp.media[0].port, 0);
    assert_eq!(sdp.media[0].protocol, Protocol::RtpSavp);
    assert!(sdp.media[0].attribute("crypto").is_none());
    assert_eq!(sdp.media[1].port, 40000);
    assert_eq!(negotiated.remote_rtp, socket("203.0.113.5:20002"));
    assert_eq!(negotiated.kind, CodecKind::Pcmu);
}

#[test]
fn secure_only_offers_are_refused_with_488() {
    let error = create_answer(&parse(CHROME_OFFER), &local(&[CodecKind::Opus]))
        .expect_err("DTLS-SRTP not supported yet");
    assert_eq!(
        error,
        NegotiationError::UnsupportedProtocol("UDP/TLS/RTP/SAVPF".into())
    );
    assert_eq!(error.sip_status(), 488);
    assert!(error.to_string().contains("UDP/TLS/RTP/SAVPF"));

    let sdes = SRTP_THEN_RTP_OFFER.replace("m=audio 20002 RTP/AVP", "m=audio 0 RTP/AVP");
    assert_eq!(
        create_answer(&parse(&sdes), &local(&[CodecKind::Pcmu])).map(|(_, n)| n),
        Err(NegotiationError::UnsupportedProtocol("RTP/SAVP".into()))
    );

    let video_only = LINPHONE_OFFER.replace("m=audio 7078", "m=audio 0");
    assert_eq!(
        create_answer(&parse(&video_only), &local(&[CodecKind::Pcmu])).map(|(_, n)| n),
        Err(NegotiationError::NoAudioStream)
    );
}

#[test]
fn direction_is_answered_per_rfc3264() {
    let cases = [
        // (offered, we want, answered = our side)
        ("sendrecv", Direction::SendRecv, Direction::SendRecv),
        ("sendonly", Direction::SendRecv, Direction::RecvOnly),
        ("recvonly", Direction::SendRecv, Direction::SendOnly),
        ("inactive", Direction::SendRecv, Direction::Inactive),
        ("sendrecv", Direction::SendOnly, Direction::SendOnly),
        ("sendonly", Direction::SendOnly, Direction::Inactive),
        ("sendrecv", Direction::Inactive, Direction::Inactive),
        ("recvonly", Direction::RecvOnly, Direction::Inactive),
    ];
    for (offered, wanted, expected) in cases {
        let offer = offer_with("IN IP4 198.51.100.7", "0", &format!("a={offered}\r\n"));
        let mut ours = local(&[CodecKind::Pcmu]);
        ours.direction = wanted;
        let (sdp, negotiated) = answer(&offer, &ours);
        assert_eq!(
            negotiated.direction, expected,
            "offer {offered}, want {wanted:?}"
        );
        assert_eq!(sdp.media[0].direction(), Some(expected));
    }
    // No attribute in the media section: the session-level one applies.
    let offer =
        offer_with("IN IP4 198.51.100.7", "0", "").replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let (_, negotiated) = answer(&offer, &local(&[CodecKind::Pcmu]));
    assert_eq!(negotiated.direction, Direction::RecvOnly);
    assert!(
        !negotiated.direction.sends(),
        "held by the peer: we do not send"
    );
}

#[test]
fn old_style_hold_with_zero_address_stops_our_sending() {
    let offer = offer_with("IN IP4 0.0.0.0", "0", "a=sendrecv\r\n");
    let (sdp, negotiated) = answer(&offer, &local(&[CodecKind::Pcmu]));
    assert_eq!(negotiated.direction, Direction::RecvOnly);
    assert_eq!(sdp.media[0].direction(), Some(Direction::RecvOnly));
    assert!(negotiated.remote_rtp.ip().is_unspecified());

    let offer = offer_with("IN IP4 0.0.0.0", "0", "a=recvonly\r\n");
    let (_, negotiated) = answer(&offer, &local(&[CodecKind::Pcmu]));
    assert_eq!(negotiated.direction, Direction::Inactive);
}

#[test]
fn rtcp_address_from_attribute_port_plus_one_or_mux() {
    let (_, linphone) = answer(LINPHONE_OFFER, &local(&[CodecKind::Pcmu]));
    assert_eq!(linphone.remote_rtcp, socket("10.0.0.7:7079"));
    assert!(!linphone.rtcp_mux);

    let (_, baresip) = answer(BARESIP_OFFER, &local(&[CodecKind::Pcmu]));
    assert_eq!(baresip.remote_rtp, socket("192.168.1.2:15530"));
    assert_eq!(baresip.remote_rtcp, socket("192.168.1.2:15531"));
    assert_eq!(baresip.remote_ssrc, Some(1441232541));

    let offer = offer_with(
        "IN IP4 198.51.100.7",
        "0",
        "a=rtcp:31000 IN IP4 198.51.100.8\r\n",
    );
    let (_, negotiated) = answer(&offer, &local(&[CodecKind::Pcmu]));
    assert_eq!(negotiated.remote_rtcp, socket("198.51.100.8:31000"));

    let offer = offer_with(
        "IN IP4 198.51.100.7",
        "0",
        "a=rtcp:9 IN IP4 0.0.0.0\r\na=rtcp-mux\r\n",
    );
    let (sdp, negotiated) = answer(&offer, &local(&[CodecKind::Pcmu]));
    assert!(negotiated.rtcp_mux);
    assert_eq!(negotiated.remote_rtcp, negotiated.remote_rtp);
    assert!(sdp.media[0].rtcp_mux());

    let offer = offer_with("IN IP4 198.51.100.7", "0", "").replace("30000", "65535");
    let (_, negotiated) = answer(&offer, &local(&[CodecKind::Pcmu]));
    assert_eq!(
        negotiated.remote_rtp.port(),
        65535,
        "no overflow on port + 1"
    );
}

#[test]
fn ipv6_offer_and_answer() {
    let offer = offer_with("IN IP6 2001:db8::7", "0", "");
    let mut ours = local(&[CodecKind::Pcmu]);
    ours.addr = "2001:db8::10".parse().expect("literal");
    let (sdp, negotiated) = answer(&offer, &ours);
    assert_eq!(negotiated.remote_rtp, socket("[2001:db8::7]:30000"));
    assert_eq!(negotiated.remote_rtcp, socket("[2001:db8::7]:30001"));
    let text = sdp.to_string();
    assert!(
        text.contains("o=- 4242 1 IN IP6 2001:db8::10\r\n"),
        "{text}"
    );
    assert!(text.contains("c=IN IP6 2001:db8::10\r\n"));
}

#[test]
fn connection_problems_are_reported() {
    let no_connection =
        offer_with("IN IP4 198.51.100.7", "0", "").replace("c=IN IP4 198.51.100.7\r\n", "");
    assert_eq!(
        create_answer(&parse(&no_connection), &local(&[CodecKind::Pcmu])).map(|(_, n)| n),
        Err(NegotiationError::MissingConnection)
    );
    let host_name = offer_with("IN IP4 media.example.com", "0", "");
    assert_eq!(
        create_answer(&parse(&host_name), &local(&[CodecKind::Pcmu])).map(|(_, n)| n),
        Err(NegotiationError::UnsupportedAddress(
            "media.example.com".into()
        ))
    );
}

#[test]
fn ptime_follows_the_peer_within_codec_limits() {
    let cases = [
        (CodecKind::Pcmu, "a=ptime:30\r\n", 30),
        (CodecKind::Pcmu, "a=ptime:25\r\n", 20),
        (CodecKind::Pcmu, "a=ptime:1000\r\n", 20),
        (CodecKind::Pcmu, "a=ptime:40\r\na=maxptime:30\r\n", 30),
        (CodecKind::Opus, "a=ptime:30\r\n", 20),
        (CodecKind::Opus, "a=ptime:60\r\n", 60),
        (CodecKind::Opus, "", 20),
    ];
    for (kind, body, expected) in cases {
        let offer = offer_with(
            "IN IP4 198.51.100.7",
            "96 0",
            &format!("a=rtpmap:96 opus/48000/2\r\n{body}"),
        );
        let (_, negotiated) = answer(&offer, &local(&[kind]));
        assert_eq!(negotiated.ptime_ms, expected, "{kind} with {body:?}");
    }
}

/// The two halves agree: A offers, B answers, A applies the answer.
#[test]
fn our_offer_our_answer_and_apply_agree() {
    let alice = local(&[CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma]);
    let mut bob = local(&[CodecKind::Pcma, CodecKind::Pcmu]);
    bob.addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20));
    bob.port = 50000;
    bob.session_id = 99;

    let offer = create_offer(&alice);
    let wire_offer = parse(&offer.to_string());
    let (answer, at_bob) = create_answer(&wire_offer, &bob).expect("answerable");
    let at_alice = apply_answer(&offer, &parse(&answer.to_string())).expect("applies");

    assert_eq!(at_alice.kind, CodecKind::Pcma);
    assert_eq!(at_bob.kind, CodecKind::Pcma);
    assert_eq!(at_alice.codec.payload_type, at_bob.codec.payload_type);
    assert_eq!(at_alice.remote_rtp, socket("192.0.2.20:50000"));
    assert_eq!(at_alice.remote_rtcp, socket("192.0.2.20:50001"));
    assert_eq!(at_bob.remote_rtp, socket("192.0.2.10:40000"));
    assert_eq!(at_alice.direction, Direction::SendRecv);
    assert_eq!(at_bob.direction, Direction::SendRecv);
    let dtmf = |n: &Negotiated| n.dtmf.as_ref().map(|d| (d.payload_type, d.clock_rate));
    assert_eq!(dtmf(&at_alice), Some((101, 8000)));
    assert_eq!(dtmf(&at_alice), dtmf(&at_bob));

    // With Opus on both sides, the wideband telephone-event is used.
    bob.codecs = vec![CodecKind::Opus];
    let (answer, at_bob) = create_answer(&wire_offer, &bob).expect("answerable");
    let at_alice = apply_answer(&offer, &answer).expect("applies");
    assert_eq!(at_alice.codec.payload_type, 111);
    assert_eq!(
        at_alice.codec.fmtp.as_deref(),
        Some("minptime=10;useinbandfec=1;usedtx=1")
    );
    // We receive DTX, so we ask for it: both halves see the other's `usedtx=1`.
    assert!(at_alice.codec.fmtp_flag("usedtx"));
    assert!(at_bob.codec.fmtp_flag("usedtx"));
    // A peer that does not ask (baresip: `useinbandfec=1` only) gets continuous Opus.
    let mut baresip = at_bob.codec.clone();
    baresip.fmtp = Some("useinbandfec=1".into());
    assert!(!baresip.fmtp_flag("usedtx"));
    assert_eq!(baresip.fmtp_param("UseInbandFec"), Some("1"));
    baresip.fmtp = Some("usedtx=0; stereo=1".into());
    assert!(!baresip.fmtp_flag("usedtx"));
    assert_eq!(baresip.fmtp_param("stereo"), Some("1"));
    assert_eq!(dtmf(&at_bob), Some((110, 48000)));
}

#[test]
fn answers_from_peers_are_applied_with_their_payload_types() {
    let offer = create_offer(&local(&[CodecKind::Opus, CodecKind::Pcmu]));
    // The peer renumbers opus to 96 and lists CN (unused with Opus).
    let answer = "v=0\r\no=- 5 5 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\n\
                  m=audio 6000 RTP/AVP 13 96 101\r\na=rtpmap:13 CN/8000\r\na=rtpmap:96 opus/48000/2\r\n\
                  a=fmtp:96 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:40\r\n\
                  a=ssrc:777 cname:x\r\n";
    let negotiated = apply_answer(&offer, &parse(answer)).expect("applies");
    assert_eq!(negotiated.kind, CodecKind::Opus);
    assert_eq!(negotiated.codec.payload_type, 96);
    assert_eq!(negotiated.codec.fmtp.as_deref(), Some("useinbandfec=1"));
    assert_eq!(negotiated.dtmf.map(|d| d.payload_type), Some(101));
    assert_eq!(negotiated.ptime_ms, 40);
    assert_eq!(negotiated.remote_ssrc, Some(777));
    assert_eq!(negotiated.remote_rtp, socket("198.51.100.9:6000"));
    assert_eq!(negotiated.comfort_noise, None);

    // Only codecs we did not offer: nothing usable.
    let g722 = answer.replace("m=audio 6000 RTP/AVP 13 96 101", "m=audio 6000 RTP/AVP 9");
    assert_eq!(
        apply_answer(&offer, &parse(&g722)),
        Err(NegotiationError::NoCommonCodec)
    );
    // Rejected audio stream.
    let rejected = answer.replace("m=audio 6000", "m=audio 0");
    assert_eq!(
        apply_answer(&offer, &parse(&rejected)),
        Err(NegotiationError::AudioRejected)
    );
    // Wrong number of m= lines.
    let extra = format!("{answer}m=video 0 RTP/AVP 31\r\n");
    assert_eq!(
        apply_answer(&offer, &parse(&extra)),
        Err(NegotiationError::MediaCountMismatch {
            offered: 1,
            answered: 2
        })
    );
    // Different transport.
    let savp = answer.replace("RTP/AVP", "RTP/SAVP");
    assert!(matches!(
        apply_answer(&offer, &parse(&savp)),
        Err(NegotiationError::AnswerMismatch(_))
    ));
    // rtcp-mux only counts when both sides said it.
    let muxed = format!("{answer}a=rtcp-mux\r\n");
    assert!(
        !apply_answer(&offer, &parse(&muxed))
            .expect("applies")
            .rtcp_mux
    );
}

#[test]
fn hold_and_resume_re_offers() {
    let mut ours = local(&[CodecKind::Pcmu]);
    let initial = create_offer(&ours);
    let peer = local(&[CodecKind::Pcmu]);

    // Hold: same session id, version + 1, sendonly; the peer answers recvonly.
    ours.session_version += 1;
    ours.direction = Direction::SendOnly;
    let hold = create_offer(&ours);
    assert_eq!(hold.origin.session_id, initial.origin.session_id);
    assert_eq!(
        hold.origin.session_version,
        initial.origin.session_version + 1
    );
    assert_eq!(hold.media[0].direction(), Some(Direction::SendOnly));
    let (answer, at_peer) = create_answer(&hold, &peer).expect("answerable");
    assert_eq!(answer.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!(at_peer.direction, Direction::RecvOnly);
    assert_eq!(
        apply_answer(&hold, &answer).map(|n| n.direction),
        Ok(Direction::SendOnly)
    );

    // Hold while held: inactive both ways.
    ours.session_version += 1;
    ours.direction = Direction::Inactive;
    let inactive = create_offer(&ours);
    let (answer, at_peer) = create_answer(&inactive, &peer).expect("answerable");
    assert_eq!(at_peer.direction, Direction::Inactive);
    assert_eq!(
        apply_answer(&inactive, &answer).map(|n| n.direction),
        Ok(Direction::Inactive)
    );

    // Resume.
    ours.session_version += 1;
    ours.direction = Direction::SendRecv;
    let resume = create_offer(&ours);
    assert_eq!(resume.origin.session_version, 4);
    let (answer, _) = create_answer(&resume, &peer).expect("answerable");
    assert_eq!(
        apply_answer(&resume, &answer).map(|n| n.direction),
        Ok(Direction::SendRecv)
    );

    // The peer holds us in its answer (sendonly, or the old c=0.0.0.0): we must not send.
    let held = answer.to_string().replace("a=sendrecv", "a=sendonly");
    assert_eq!(
        apply_answer(&resume, &parse(&held)).map(|n| n.direction),
        Ok(Direction::RecvOnly)
    );
    let zeroed = answer
        .to_string()
        .replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
    let negotiated = apply_answer(&resume, &parse(&zeroed)).expect("applies");
    assert!(!negotiated.direction.sends());
    assert!(negotiated.direction.receives());
}

/// RFC 2198 RED for Opus: used between two of us, never forced on a peer without it.
#[test]
fn red_is_used_only_when_both_sides_have_it() {
    let ours = local(&[CodecKind::Opus, CodecKind::Pcmu]);
    let offer = create_offer(&ours);
    let wire_offer = parse(&offer.to_string());
    let (answer, at_bob) = create_answer(&wire_offer, &ours).expect("answerable");
    let at_alice = apply_answer(&offer, &parse(&answer.to_string())).expect("applies");
    let red = |n: &Negotiated| {
        n.red
            .as_ref()
            .map(|r| (r.payload_type, r.clock_rate, r.channels))
    };
    assert_eq!(red(&at_bob), Some((63, 48000, 2)));
    assert_eq!(red(&at_alice), Some((63, 48000, 2)));
    assert_eq!(at_alice.codec.payload_type, 111);
    assert!(
        answer
            .to_string()
            .contains("a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111/111/111/111\r\n")
    );
    assert_eq!(answer.media[0].formats, ["111", "63", "110"]);

    // A peer without RED: its answer has plain Opus; its offer gets a plain answer.
    let plain_answer = answer
        .to_string()
        .replace(" 111 63 110", " 111 110")
        .replace(
            "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111/111/111/111\r\n",
            "",
        );
    let negotiated = apply_answer(&offer, &parse(&plain_answer)).expect("applies");
    assert_eq!((negotiated.kind, negotiated.red), (CodecKind::Opus, None));
    let plain_offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\n\
                       t=0 0\r\nm=audio 6000 RTP/AVP 96 0\r\na=rtpmap:96 opus/48000/2\r\n";
    let (answer, negotiated) = create_answer(&parse(plain_offer), &ours).expect("answerable");
    assert_eq!(negotiated.red, None);
    assert!(!answer.to_string().contains("red/"));

    // A peer offering RED with other numbers (Opus 96, RED 100, one redundant block).
    let numbered = "v=0\r\no=- 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\n\
                    t=0 0\r\nm=audio 6000 RTP/AVP 96 100 0\r\na=rtpmap:96 opus/48000/2\r\n\
                    a=rtpmap:100 RED/48000/2\r\na=fmtp:100 96/96\r\n";
    let (answer, negotiated) = create_answer(&parse(numbered), &ours).expect("answerable");
    assert_eq!(negotiated.codec.payload_type, 96);
    assert_eq!(red(&negotiated), Some((100, 48000, 2)));
    assert!(
        answer
            .to_string()
            .contains("a=rtpmap:100 red/48000/2\r\na=fmtp:100 96/96/96/96/96\r\n")
    );

    // RED whose blocks are another codec, or RED when G.711 is chosen: not used.
    let other_blocks = numbered.replace("a=fmtp:100 96/96", "a=fmtp:100 0/0");
    let (_, negotiated) = create_answer(&parse(&other_blocks), &ours).expect("answerable");
    assert_eq!(negotiated.red, None);
    let (answer, negotiated) =
        create_answer(&parse(numbered), &local(&[CodecKind::Pcmu])).expect("answerable");
    assert_eq!((negotiated.kind, negotiated.red), (CodecKind::Pcmu, None));
    assert!(!answer.to_string().contains("red/"));
    // No RED with PCMA (we offer it with Opus and PCMU only), even when the peer lists it.
    let pcma_offer = create_offer(&local(&[CodecKind::Pcma]));
    assert!(!pcma_offer.to_string().contains("red/"));
    let pcma_red = offer_with(
        "IN IP4 198.51.100.7",
        "8 120",
        "a=rtpmap:120 red/8000\r\na=fmtp:120 8/8\r\n",
    );
    let (answer, negotiated) =
        create_answer(&parse(&pcma_red), &local(&[CodecKind::Pcma])).expect("answerable");
    assert_eq!((negotiated.kind, negotiated.red), (CodecKind::Pcma, None));
    assert!(!answer.to_string().contains("red/"));
}

/// RFC 2198 RED for PCMU (`red/8000`, blocks `0/0/0`): between two of us; plain PCMU peers
/// (baresip, sipp, phones behind Kamailio) get plain PCMU both ways.
#[test]
fn pcmu_red_is_used_only_when_both_sides_have_it() {
    let ours = local(&[CodecKind::Pcmu]);
    let offer = create_offer(&ours);
    let text = offer.to_string();
    assert!(
        text.contains("m=audio 40000 RTP/AVP 0 122 13 101\r\n"),
        "{text}"
    );
    assert!(
        text.contains("a=rtpmap:0 PCMU/8000\r\na=rtpmap:122 red/8000\r\na=fmtp:122 0/0/0\r\n"),
        "{text}"
    );
    let red = |n: &Negotiated| {
        n.red
            .as_ref()
            .map(|r| (r.payload_type, r.clock_rate, r.channels))
    };

    // Ours to ours: both ends use RED.
    let (answer, at_bob) = create_answer(&parse(&text), &ours).expect("answerable");
    let at_alice = apply_answer(&offer, &parse(&answer.to_string())).expect("applies");
    assert_eq!(
        (at_bob.kind, red(&at_bob)),
        (CodecKind::Pcmu, Some((122, 8000, 1)))
    );
    assert_eq!(red(&at_alice), Some((122, 8000, 1)));
    assert!(
        answer
            .to_string()
            .contains("a=rtpmap:122 red/8000\r\na=fmtp:122 0/0/0\r\n")
    );

    // A plain PCMU offer (a phone, sipp, baresip) gets a plain answer.
    let (answer, negotiated) = create_answer(
        &parse(&offer_with("IN IP4 198.51.100.7", "0 101", "")),
        &ours,
    )
    .expect("answerable");
    assert_eq!((negotiated.kind, negotiated.red), (CodecKind::Pcmu, None));
    assert!(!answer.to_string().contains("red/"), "{answer}");
    // A plain PCMU answer to our offer: no RED.
    let plain_answer = answer.to_string();
    let negotiated = apply_answer(&offer, &parse(&plain_answer)).expect("applies");
    assert_eq!((negotiated.kind, negotiated.red), (CodecKind::Pcmu, None));

    // A red+PCMU offer with other numbers (RED at 99, one redundant block) gets RED back.
    let red_offer = offer_with(
        "IN IP4 198.51.100.7",
        "0 99",
        "a=rtpmap:99 RED/8000\r\na=fmtp:99 0/0\r\n",
    );
    let (answer, negotiated) = create_answer(&parse(&red_offer), &ours).expect("answerable");
    assert_eq!(red(&negotiated), Some((99, 8000, 1)));
    assert_eq!(answer.media[0].formats, ["0", "99"]);
    assert!(answer.to_string().contains("a=rtpmap:99 red/8000\r\n"));
    // RED of another codec's blocks, or at Opus's rate, does not go with PCMU.
    for body in [
        "a=rtpmap:99 red/8000\r\na=fmtp:99 8/8\r\n",
        "a=rtpmap:99 red/48000/2\r\na=fmtp:99 0/0\r\n",
    ] {
        let (answer, negotiated) = create_answer(
            &parse(&offer_with("IN IP4 198.51.100.7", "0 99", body)),
            &ours,
        )
        .expect("answerable");
        assert_eq!(negotiated.red, None, "{body}");
        assert!(!answer.to_string().contains("red/"), "{body}");
    }
}

/// Chrome's offer ("opus red" at 63 with `111/111`), as a gateway that ends DTLS-SRTP passes
/// it on over plain RTP, is answered with RED.
#[test]
fn chrome_red_offer_is_accepted() {
    let plain = CHROME_OFFER.replace("UDP/TLS/RTP/SAVPF", "RTP/AVPF");
    let (answer, negotiated) =
        create_answer(&parse(&plain), &local(&[CodecKind::Opus])).expect("answerable");
    assert_eq!(negotiated.codec.payload_type, 111);
    let red = negotiated.red.expect("RED accepted");
    assert_eq!(
        (red.payload_type, red.fmtp.as_deref()),
        (63, Some("111/111"))
    );
    assert!(answer.to_string().contains("a=rtpmap:63 red/48000/2\r\n"));
}

fn with_srtp(mut local: LocalMedia, mandatory: bool, fill: u8) -> LocalMedia {
    local.srtp = Some(crate::sdp::LocalSrtp {
        mandatory,
        key_material: [fill; crate::sdp::SRTP_KEY_MATERIAL_LEN],
    });
    local
}

fn crypto_values(sdp: &SessionDescription) -> Vec<String> {
    sdp.media[0]
        .attributes
        .iter()
        .filter(|a| a.name == "crypto")
        .filter_map(|a| a.value.clone())
        .collect()
}

#[test]
fn srtp_offers_sdes_keys_best_effort_or_mandatory() {
    let preferred = create_offer(&with_srtp(local(&[CodecKind::Pcmu]), false, 1));
    assert_eq!(preferred.media[0].protocol, Protocol::RtpAvp);
    let lines = crypto_values(&preferred);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
    assert!(lines[1].starts_with("2 AEAD_AES_128_GCM inline:"));
    let mandatory = create_offer(&with_srtp(local(&[CodecKind::Pcmu]), true, 1));
    assert_eq!(mandatory.media[0].protocol, Protocol::RtpSavp);
    // Without SRTP: no crypto line.
    assert!(crypto_values(&create_offer(&local(&[CodecKind::Pcmu]))).is_empty());
}

#[test]
fn srtp_between_two_homeagents_agrees_on_gcm_with_mirrored_keys() {
    for mandatory in [false, true] {
        let caller = with_srtp(local(&[CodecKind::Opus]), mandatory, 1);
        let callee = with_srtp(local(&[CodecKind::Opus]), false, 2);
        let offer = create_offer(&caller);
        let (answer, answered) = create_answer(&offer, &callee).expect("answer");
        let applied = apply_answer(&offer, &answer).expect("applied");
        let (a, b) = (
            applied.srtp.expect("caller keys"),
            answered.srtp.expect("callee keys"),
        );
        assert_eq!(a.suite, crate::sdp::SrtpSuite::AeadAes128Gcm);
        assert_eq!(a.suite, b.suite);
        assert_eq!(a.local_key, b.remote_key);
        assert_eq!(a.remote_key, b.local_key);
        assert_ne!(a.local_key, a.remote_key);
        assert_eq!(answer.media[0].protocol, offer.media[0].protocol);
        assert!(
            !format!("{a:?}").contains(&format!("{:?}", a.local_key)),
            "keys not in Debug"
        );
    }
}

#[test]
fn srtp_answers_a_baresip_sdes_offer_with_its_suite_and_tag() {
    let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio 30000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
                 a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
                 a=crypto:6 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";
    let callee = with_srtp(local(&[CodecKind::Pcmu]), false, 3);
    let (answer, negotiated) = answer(offer, &callee);
    assert_eq!(answer.media[0].protocol, Protocol::RtpSavp);
    let lines = crypto_values(&answer);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("5 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{lines:?}"
    );
    let keys = negotiated.srtp.expect("srtp");
    assert_eq!(keys.local_key, vec![3; 30]);
    // Without SRTP configured, the secure-only offer is refused (488).
    let error = create_answer(&parse(offer), &local(&[CodecKind::Pcmu])).unwrap_err();
    assert!(
        matches!(error, NegotiationError::UnsupportedProtocol(_)),
        "{error}"
    );
}

#[test]
fn srtp_mandatory_refuses_plain_rtp_and_preferred_falls_back() {
    let plain = offer_with("IN IP4 198.51.100.7", "0", "a=rtpmap:0 PCMU/8000\r\n");
    let error = create_answer(
        &parse(&plain),
        &with_srtp(local(&[CodecKind::Pcmu]), true, 1),
    )
    .unwrap_err();
    assert_eq!(error, NegotiationError::EncryptionRequired);
    assert_eq!(error.sip_status(), 488);
    let (_, negotiated) = answer(&plain, &with_srtp(local(&[CodecKind::Pcmu]), false, 1));
    assert_eq!(negotiated.srtp, None);
    // Our best-effort offer answered by a plain peer: plain RTP.
    let offer = create_offer(&with_srtp(local(&[CodecKind::Pcmu]), false, 1));
    let (plain_answer, _) = create_answer(&offer, &local(&[CodecKind::Pcmu])).expect("answer");
    assert!(crypto_values(&plain_answer).is_empty());
    assert_eq!(
        apply_answer(&offer, &plain_answer).expect("applied").srtp,
        None
    );
    // Our mandatory offer answered without keys: refused.
    let offer = create_offer(&with_srtp(local(&[CodecKind::Pcmu]), true, 1));
    let mut keyless = create_answer(&offer, &with_srtp(local(&[CodecKind::Pcmu]), false, 2))
        .expect("answer")
        .0;
    keyless.media[0].attributes.retain(|a| a.name != "crypto");
    assert_eq!(
        apply_answer(&offer, &keyless),
        Err(NegotiationError::EncryptionRequired)
    );
}
