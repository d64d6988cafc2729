//! Parser and printer: real-world bodies, round trips, rejections, mutation loop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::fixtures::{
    BARESIP_OFFER, BARESIP_REAL_ANSWER, BARESIP_REAL_OFFER, CHROME_OFFER, LINPHONE_OFFER,
    LINPHONE_REAL_OFFER, SRTP_THEN_RTP_OFFER,
};
use crate::Direction;
use crate::sdp::{
    Connection, KnownAttribute, LocalMedia, Protocol, Rtcp, RtpMap, SdpError, SdpErrorKind,
    SessionDescription, apply_answer, create_answer, create_offer,
};

fn parse(text: &str) -> SessionDescription {
    match SessionDescription::parse(text) {
        Ok(sdp) => sdp,
        Err(e) => panic!("valid SDP rejected: {e}\n{text}"),
    }
}

/// `parse(print(sdp)) == sdp`, and printing is stable.
fn assert_round_trip(sdp: &SessionDescription) {
    let printed = sdp.to_string();
    let again = parse(&printed);
    assert_eq!(&again, sdp, "round trip changed the model:\n{printed}");
    assert_eq!(again.to_string(), printed);
}

#[test]
fn chrome_offer_parses_with_every_field() {
    let sdp = parse(CHROME_OFFER);
    assert_eq!(sdp.origin.session_id, "3623715071595016951");
    assert_eq!(sdp.origin.session_version, 2);
    assert_eq!(
        sdp.origin.address.ip(),
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    );
    assert_eq!(sdp.session_name, "-");
    assert_eq!(sdp.attributes.len(), 3);
    assert_eq!(sdp.attributes[0].name, "group");
    assert_eq!(sdp.attributes[0].value.as_deref(), Some("BUNDLE 0"));
    assert_eq!(sdp.attributes[1].value, None);
    // Leading space after the colon is kept verbatim.
    assert!(
        sdp.attributes[2]
            .value
            .as_deref()
            .unwrap_or_default()
            .starts_with(" WMS ")
    );

    assert_eq!(sdp.media.len(), 1);
    let audio = &sdp.media[0];
    assert_eq!(audio.media, "audio");
    assert_eq!(audio.port, 34902);
    assert_eq!(audio.protocol, Protocol::UdpTlsRtpSavpf);
    assert!(audio.protocol.is_secure_rtp());
    assert_eq!(
        audio.payload_types().collect::<Vec<_>>(),
        [111, 63, 9, 0, 8, 13, 110, 126]
    );
    let opus = audio.rtpmap(111).expect("opus rtpmap");
    assert_eq!(
        opus,
        RtpMap {
            payload_type: 111,
            encoding: "opus".into(),
            clock_rate: 48000,
            channels: Some(2)
        }
    );
    assert_eq!(audio.fmtp("111"), Some("minptime=10;useinbandfec=1"));
    assert_eq!(audio.fmtp("63"), Some("111/111"));
    assert_eq!(
        audio.rtpmap(126).map(|m| (m.encoding, m.clock_rate)),
        Some(("telephone-event".into(), 8000))
    );
    assert_eq!(
        audio.rtcp(),
        Some(Rtcp {
            port: 9,
            connection: Some(Connection::from_ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
        })
    );
    assert!(audio.rtcp_mux());
    assert_eq!(audio.direction(), Some(Direction::SendRecv));
    assert_eq!(audio.first_ssrc(), Some(320007702));
    assert_eq!(
        sdp.connection_for(audio).and_then(Connection::ip),
        Some(Ipv4Addr::LOCALHOST.into())
    );

    let kinds: Vec<KnownAttribute<'_>> = audio
        .attributes
        .iter()
        .filter_map(|a| a.known().ok())
        .filter(|k| {
            matches!(
                k,
                KnownAttribute::Candidate(_)
                    | KnownAttribute::IceUfrag(_)
                    | KnownAttribute::IcePwd(_)
                    | KnownAttribute::Fingerprint(_)
                    | KnownAttribute::Setup(_)
            )
        })
        .collect();
    assert_eq!(
        kinds.len(),
        6,
        "2 candidates, ufrag, pwd, fingerprint, setup"
    );
    assert_eq!(kinds[2], KnownAttribute::IceUfrag("6Kcr"));
    assert_eq!(kinds[5], KnownAttribute::Setup("actpass"));
}

#[test]
fn canonical_input_prints_back_byte_for_byte() {
    // The fixture is canonical; with CRLF line ends it must print identically.
    let crlf = CHROME_OFFER.replace('\n', "\r\n");
    assert_eq!(parse(&crlf).to_string(), crlf);
    assert_eq!(parse(CHROME_OFFER).to_string(), crlf);
    assert_eq!(parse(BARESIP_OFFER).to_string(), BARESIP_OFFER);
    assert_eq!(parse(SRTP_THEN_RTP_OFFER).to_string(), SRTP_THEN_RTP_OFFER);
}

#[test]
fn every_fixture_round_trips() {
    for text in [
        CHROME_OFFER,
        BARESIP_OFFER,
        LINPHONE_OFFER,
        SRTP_THEN_RTP_OFFER,
    ] {
        assert_round_trip(&parse(text));
    }
    let local = LocalMedia {
        addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
        port: 4000,
        codecs: vec![crate::CodecKind::Opus, crate::CodecKind::Pcmu],
        dtmf: true,
        direction: Direction::SendRecv,
        ptime_ms: 20,
        session_id: 7,
        session_version: 1,
        srtp: None,
        ice: None,
    };
    assert_round_trip(&create_offer(&local));
}

#[test]
fn baresip_and_linphone_offers_are_understood() {
    let baresip = parse(BARESIP_OFFER);
    let audio = &baresip.media[0];
    assert_eq!(audio.protocol, Protocol::RtpAvp);
    assert_eq!(audio.bandwidths[0].kind, "AS");
    assert_eq!(audio.bandwidths[0].value, 165);
    assert_eq!(audio.ptime(), Some(20));
    assert_eq!(audio.first_ssrc(), Some(1441232541));
    assert_eq!(audio.rtpmap(0).map(|m| m.encoding), Some("PCMU".into()));

    let linphone = parse(LINPHONE_OFFER);
    assert_eq!(linphone.session_name, "Talk");
    assert_eq!(linphone.media.len(), 2);
    assert_eq!(
        linphone.media[0].rtcp(),
        Some(Rtcp {
            port: 7079,
            connection: None
        })
    );
    assert_eq!(linphone.media[0].fmtp("18"), Some("annexb=yes"));
    // PT 18 has no rtpmap and is not one of our static defaults.
    assert_eq!(linphone.media[0].rtpmap(18), None);
    assert_eq!(linphone.media[1].media, "video");
    assert_eq!(
        linphone.direction_for(&linphone.media[0]),
        Direction::SendRecv
    );
}

#[test]
fn tolerates_lf_blank_lines_trailing_spaces_and_unknown_lines() {
    let text = "\u{feff}v=0 \n\no=- 1 2 IN IP4 192.0.2.1\t\r\ns=\r\ni=info\r\nx=unknown type\r\n\
                c=IN IP4 192.0.2.1  \r\nt=0 0\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h\r\nk=prompt\r\n\
                a=recvonly\r\nm=audio 5004 rtp/avp 0\r\ni=media title\r\nk=clear:x\r\n\
                a=x-custom:1 2 3\r\n\r\n";
    let sdp = parse(text);
    assert_eq!(sdp.session_name, "");
    assert_eq!(sdp.direction(), Some(Direction::RecvOnly));
    assert_eq!(sdp.direction_for(&sdp.media[0]), Direction::RecvOnly);
    assert_eq!(sdp.timings[0].repeats, ["7d 1h 0 25h"]);
    assert_eq!(
        sdp.other_lines,
        [
            ('i', "info".to_owned()),
            ('x', "unknown type".to_owned()),
            ('z', "2882844526 -1h".to_owned()),
            ('k', "prompt".to_owned())
        ]
    );
    assert_eq!(sdp.media[0].protocol, Protocol::RtpAvp);
    assert_eq!(sdp.media[0].other_lines.len(), 2);
    assert_eq!(sdp.media[0].attributes[0].value.as_deref(), Some("1 2 3"));
    assert_round_trip(&sdp);
    // Canonical order puts i= right after s=, the empty name as "s= ".
    let printed = sdp.to_string();
    assert!(
        printed.starts_with("v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns= \r\ni=info\r\n"),
        "{printed}"
    );
}

#[test]
fn kept_lines_in_odd_order_print_canonically_and_round_trip() {
    let sdp = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nk=prompt\r\np=+1 555\r\ni=late info\r\n\
         e=a@example.com\r\nm=audio 1 RTP/AVP 0\r\nk=clear:x\r\ni=title\r\n",
    );
    let kinds: Vec<char> = sdp.other_lines.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ['i', 'e', 'p', 'k']);
    assert_eq!(sdp.media[0].other_lines[0], ('i', "title".to_owned()));
    assert_round_trip(&sdp);
    assert!(
        sdp.to_string()
            .contains("s=-\r\ni=late info\r\ne=a@example.com\r\np=+1 555\r\nt=0 0")
    );
}

#[test]
fn hostile_sizes_are_handled_in_linear_time() {
    // 20 000 formats and rtpmaps: negotiation must not go quadratic (it would take minutes).
    let mut text = String::from(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP",
    );
    for i in 0..20_000 {
        text.push_str(&format!(" {}", 96 + i % 32));
    }
    text.push_str(" 0\r\n");
    for i in 0..20_000 {
        text.push_str(&format!("a=rtpmap:{} X{i}/8000\r\n", 96 + i % 32));
    }
    let sdp = parse(&text);
    let local = LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 4000,
        codecs: vec![crate::CodecKind::Opus, crate::CodecKind::Pcmu],
        dtmf: true,
        direction: Direction::SendRecv,
        ptime_ms: 20,
        session_id: 7,
        session_version: 1,
        srtp: None,
        ice: None,
    };
    let (_, negotiated) = create_answer(&sdp, &local).expect("PCMU is offered last");
    assert_eq!(negotiated.codec.payload_type, 0);
}

#[test]
fn missing_s_and_t_get_defaults() {
    let sdp =
        parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n");
    assert_eq!(sdp.session_name, "-");
    assert_eq!(sdp.timings.len(), 1);
    assert_eq!((sdp.timings[0].start, sdp.timings[0].stop), (0, 0));
    assert!(sdp.connection.is_none());
    assert!(sdp.media[0].connection.is_some());
    assert_round_trip(&sdp);
}

#[test]
fn ipv6_multicast_hostname_and_hold_connections() {
    let sdp = parse(
        "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::2\r\nt=0 0\r\n\
         m=audio 5000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n\
         m=audio 5002 RTP/AVP 0\r\nc=IN IP4 224.2.1.1/127/3\r\n\
         m=audio 5004 RTP/AVP 0\r\nc=IN IP4 media.example.com\r\n",
    );
    let ip6: IpAddr = "2001:db8::2".parse().expect("literal");
    assert_eq!(sdp.connection.as_ref().and_then(Connection::ip), Some(ip6));
    assert_eq!(sdp.origin.address.address_type, "IP6");
    let hold = sdp.connection_for(&sdp.media[0]).expect("c=");
    assert!(hold.is_unspecified());
    assert!(
        !sdp.connection
            .as_ref()
            .is_some_and(Connection::is_unspecified)
    );
    let multicast = sdp.connection_for(&sdp.media[1]).and_then(Connection::ip);
    assert_eq!(multicast, Some(IpAddr::V4(Ipv4Addr::new(224, 2, 1, 1))));
    assert_eq!(
        sdp.connection_for(&sdp.media[2]).and_then(Connection::ip),
        None
    );
    assert_round_trip(&sdp);
}

#[test]
fn known_attributes_are_typed_on_demand() {
    let sdp = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0 8\r\n\
         a=ptime:20.0\r\na=maxptime:40\r\na=sendonly\r\na=rtcp:5001 IN IP6 ::1\r\n\
         a=rtpmap:8 PCMA/8000/1\r\na=rtpmap:200 X/8000\r\na=rtpmap:9\r\na=ssrc:notanumber x\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc\r\n",
    );
    let audio = &sdp.media[0];
    assert_eq!(audio.ptime(), Some(20));
    assert_eq!(audio.maxptime(), Some(40));
    assert_eq!(audio.direction(), Some(Direction::SendOnly));
    let rtcp = audio.rtcp().expect("a=rtcp");
    assert_eq!(rtcp.port, 5001);
    assert_eq!(
        rtcp.connection.and_then(|c| c.ip()),
        Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
    );
    assert_eq!(audio.rtpmap(8).and_then(|m| m.channels), Some(1));
    // Malformed known attributes are kept, and typed as errors.
    assert_eq!(audio.rtpmaps().count(), 1);
    assert_eq!(
        audio.attributes[5].known(),
        Err(SdpErrorKind::Attribute("rtpmap: payload type not 0-127"))
    );
    assert!(audio.attributes[6].known().is_err());
    assert!(audio.attributes[7].known().is_err());
    assert_eq!(audio.first_ssrc(), None);
    assert_eq!(
        audio.attributes[8].known(),
        Ok(KnownAttribute::Crypto(
            "1 AES_CM_128_HMAC_SHA1_80 inline:abc"
        ))
    );
}

#[test]
fn structural_errors_are_rejected_with_a_reason() {
    const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
    let line = |line, kind| SdpError::Line { line, kind };
    let cases: Vec<(String, SdpError)> = vec![
        (String::new(), SdpError::MissingVersion),
        ("\r\n \r\n".into(), SdpError::MissingVersion),
        (
            "o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n".into(),
            SdpError::MissingVersion,
        ),
        ("v=1\r\n".into(), line(1, SdpErrorKind::UnsupportedVersion)),
        ("v=0\r\ns=-\r\n".into(), SdpError::MissingOrigin),
        (
            "v=0\r\no=- 1 IN IP4 1.2.3.4\r\n".into(),
            line(2, SdpErrorKind::Origin("expected 6 fields")),
        ),
        (
            "v=0\r\no=- 1 x IN IP4 1.2.3.4\r\n".into(),
            line(2, SdpErrorKind::Origin("session version not a number")),
        ),
        (
            "v=0\r\no=- abc 1 IN IP4 1.2.3.4\r\n".into(),
            line(2, SdpErrorKind::Origin("session id not a number")),
        ),
        (
            format!("{HEAD}o=- 1 1 IN IP4 1.2.3.4\r\n"),
            line(5, SdpErrorKind::Duplicate('o')),
        ),
        (
            format!("{HEAD}v=0\r\n"),
            line(5, SdpErrorKind::Duplicate('v')),
        ),
        (
            format!("{HEAD}s=again\r\n"),
            line(5, SdpErrorKind::Duplicate('s')),
        ),
        (
            format!("{HEAD}garbage\r\n"),
            line(5, SdpErrorKind::NotTypeValue),
        ),
        (
            format!("{HEAD}ab=c\r\n"),
            line(5, SdpErrorKind::NotTypeValue),
        ),
        (format!("{HEAD}=c\r\n"), line(5, SdpErrorKind::NotTypeValue)),
        (
            format!("{HEAD}1=c\r\n"),
            line(5, SdpErrorKind::NotTypeValue),
        ),
        (
            format!("{HEAD}c=IN IP4\r\n"),
            line(5, SdpErrorKind::Connection("expected 3 fields")),
        ),
        (
            format!("{HEAD}c=IN IP4 300.1.1.1\r\n"),
            line(5, SdpErrorKind::Connection("invalid IP address")),
        ),
        (
            format!("{HEAD}c=IN IP6 2001:db8::x\r\n"),
            line(5, SdpErrorKind::Connection("invalid IP address")),
        ),
        (
            format!("{HEAD}b=AS\r\n"),
            line(5, SdpErrorKind::Bandwidth("expected <type>:<value>")),
        ),
        (
            format!("{HEAD}b=AS:lots\r\n"),
            line(5, SdpErrorKind::Bandwidth("value not a number")),
        ),
        (
            format!("{HEAD}t=0\r\n"),
            line(5, SdpErrorKind::Timing("expected 2 fields")),
        ),
        (
            format!("{HEAD}t=now 0\r\n"),
            line(5, SdpErrorKind::Timing("time not a number")),
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nr=1 2 3\r\n".into(),
            line(3, SdpErrorKind::RepeatWithoutTiming),
        ),
        (
            format!("{HEAD}a=\r\n"),
            line(5, SdpErrorKind::Attribute("bad attribute name")),
        ),
        (
            format!("{HEAD}a=:x\r\n"),
            line(5, SdpErrorKind::Attribute("bad attribute name")),
        ),
        (
            format!("{HEAD}m=audio\r\n"),
            line(
                5,
                SdpErrorKind::Media("expected <media> <port> <proto> <fmt> ..."),
            ),
        ),
        (
            format!("{HEAD}m=audio abc RTP/AVP 0\r\n"),
            line(5, SdpErrorKind::Media("port not a number 0-65535")),
        ),
        (
            format!("{HEAD}m=audio 70000 RTP/AVP 0\r\n"),
            line(5, SdpErrorKind::Media("port not a number 0-65535")),
        ),
        (
            format!("{HEAD}m=audio -1 RTP/AVP 0\r\n"),
            line(5, SdpErrorKind::Media("port not a number 0-65535")),
        ),
        (
            format!("{HEAD}m=audio 5000/x RTP/AVP 0\r\n"),
            line(5, SdpErrorKind::Media("port count not a number")),
        ),
        (
            format!("{HEAD}m=audio 5000 RTP/AVP\r\n"),
            line(5, SdpErrorKind::Media("no formats")),
        ),
        (
            format!("{HEAD}m=audio 5000 RTP/AVP 0\r\ns=-\r\n"),
            line(6, SdpErrorKind::NotInMedia('s')),
        ),
        (
            format!("{HEAD}m=audio 5000 RTP/AVP 0\r\nt=0 0\r\n"),
            line(6, SdpErrorKind::NotInMedia('t')),
        ),
        (
            format!("{HEAD}m=audio 5000 RTP/AVP 0\r\nc=IN IP4 a.b\r\nc=IN IP4 1.1\r\n"),
            line(7, SdpErrorKind::Connection("invalid IP address")),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            SessionDescription::parse(&text),
            Err(expected.clone()),
            "{text:?}"
        );
        // The message names the line and the reason.
        assert!(!expected.to_string().is_empty());
    }
    let message = SessionDescription::parse(&format!("{HEAD}m=audio x RTP/AVP 0\r\n"))
        .expect_err("bad port")
        .to_string();
    assert_eq!(message, "line 5: bad m= line: port not a number 0-65535");
}

#[test]
fn rejected_stream_with_port_zero_and_no_formats_is_accepted() {
    let sdp = parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP\r\n");
    assert_eq!(sdp.media[0].port, 0);
    assert!(sdp.media[0].formats.is_empty());
    assert_round_trip(&sdp);
}

/// Deterministic xorshift64* generator for the mutation loop.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// Bytes that hit the parser's separators and number fields.
const INTERESTING: &[u8] = b"\r\n =:/ .0123456789-amcvotbrIPN4 6\xff\xc3";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if at < bytes.len() => bytes[at] = rng.next() as u8,
            1 if at < bytes.len() => bytes[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => bytes.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                // Duplicate a slice somewhere else (repeated lines, sections).
                let end = (at + rng.below(60)).min(bytes.len());
                let slice: Vec<u8> = bytes[at..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, slice);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

#[test]
fn mutated_and_random_inputs_never_panic_and_round_trip_when_accepted() {
    let seeds = [
        CHROME_OFFER,
        BARESIP_OFFER,
        LINPHONE_OFFER,
        SRTP_THEN_RTP_OFFER,
        BARESIP_REAL_OFFER,
        BARESIP_REAL_ANSWER,
        LINPHONE_REAL_OFFER,
    ];
    let local = LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        port: 40000,
        codecs: vec![
            crate::CodecKind::Opus,
            crate::CodecKind::Pcmu,
            crate::CodecKind::Pcma,
        ],
        dtmf: true,
        direction: Direction::SendRecv,
        ptime_ms: 20,
        session_id: 1,
        session_version: 1,
        srtp: None,
        ice: None,
    };
    let our_offer = create_offer(&local);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut rejected) = (0, 0);
    for round in 0..6000 {
        let input = if round % 10 == 0 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            let seed = seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed.as_bytes())
        };
        match SessionDescription::parse_bytes(&input) {
            Ok(sdp) => {
                accepted += 1;
                assert_round_trip(&sdp);
                // Negotiation on arbitrary (parsed) input must not panic either.
                let _ = create_answer(&sdp, &local);
                let _ = apply_answer(&our_offer, &sdp);
                let _ = apply_answer(&sdp, &sdp);
                crate::sdp::fuzz_one(&input);
            }
            Err(error) => {
                rejected += 1;
                assert!(!error.to_string().is_empty());
            }
        }
    }
    // Both outcomes must be exercised for the loop to mean anything.
    assert!(
        accepted > 500 && rejected > 500,
        "accepted {accepted}, rejected {rejected}"
    );
}
