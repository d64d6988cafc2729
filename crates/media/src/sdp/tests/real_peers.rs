//! Bodies captured from the real peers on the bench (Debian baresip 1.0.0 and linphonec).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::fixtures::{
    BARESIP_REAL_ANSWER, BARESIP_REAL_OFFER, LINPHONE_REAL_ANSWER, LINPHONE_REAL_OFFER,
    OUR_BENCH_OFFER,
};
use crate::sdp::{LocalMedia, SessionDescription, apply_answer, create_answer, create_offer};
use crate::{CodecKind, Direction};

fn bench_local(codecs: &[CodecKind]) -> LocalMedia {
    LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
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
    SessionDescription::parse(text).expect("captured SDP is valid")
}

fn socket(text: &str) -> SocketAddr {
    text.parse().expect("literal socket address")
}

#[test]
fn real_offers_round_trip_byte_for_byte() {
    for text in [
        BARESIP_REAL_OFFER,
        LINPHONE_REAL_OFFER,
        BARESIP_REAL_ANSWER,
        LINPHONE_REAL_ANSWER,
    ] {
        assert_eq!(parse(text).to_string(), text);
    }
}

#[test]
fn answering_real_baresip() {
    // baresip lists PCMU first; our preference (Opus) wins, with its PT 96.
    let (answer, negotiated) = create_answer(
        &parse(BARESIP_REAL_OFFER),
        &bench_local(&[CodecKind::Opus, CodecKind::Pcmu]),
    )
    .expect("answerable");
    assert_eq!(
        (negotiated.kind, negotiated.codec.payload_type),
        (CodecKind::Opus, 96)
    );
    assert_eq!(
        negotiated.codec.fmtp.as_deref(),
        Some("stereo=1;sprop-stereo=1")
    );
    // baresip only has telephone-event/8000.
    assert_eq!(
        negotiated.dtmf.map(|d| (d.payload_type, d.clock_rate)),
        Some((101, 8000))
    );
    assert_eq!(negotiated.remote_rtp, socket("127.0.0.1:9524"));
    assert_eq!(negotiated.remote_rtcp, socket("127.0.0.1:9525"));
    assert_eq!(negotiated.remote_ssrc, Some(2602486401));
    assert_eq!(negotiated.ptime_ms, 20);
    assert_eq!(answer.media[0].formats, ["96", "101"]);

    let (_, negotiated) =
        create_answer(&parse(BARESIP_REAL_OFFER), &bench_local(&[CodecKind::Pcma]))
            .expect("answerable");
    assert_eq!(
        (negotiated.kind, negotiated.codec.payload_type),
        (CodecKind::Pcma, 8)
    );
}

#[test]
fn answering_real_linphone_over_ipv6() {
    let offer = parse(LINPHONE_REAL_OFFER);
    let (_, negotiated) =
        create_answer(&offer, &bench_local(&[CodecKind::Opus])).expect("answerable");
    assert_eq!(
        (negotiated.kind, negotiated.codec.payload_type),
        (CodecKind::Opus, 96)
    );
    assert_eq!(
        negotiated.dtmf.map(|d| (d.payload_type, d.clock_rate)),
        Some((99, 48000))
    );
    assert_eq!(negotiated.remote_rtp, socket("[fd00::2]:7078"));
    assert_eq!(negotiated.remote_rtcp, socket("[fd00::2]:7079"));
    assert_eq!(negotiated.remote_ssrc, None);

    let (_, negotiated) =
        create_answer(&offer, &bench_local(&[CodecKind::Pcmu])).expect("answerable");
    assert_eq!(
        negotiated.dtmf.map(|d| (d.payload_type, d.clock_rate)),
        Some((101, 8000))
    );
}

#[test]
fn real_answers_to_our_offer_apply() {
    let local = bench_local(&[CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma]);
    let offer = create_offer(&local);
    // The captures answer this offer before it gained RED (Opus and PCMU), `usedtx=1` and CN
    // (which these peers do not know or ignore: they answer the same either way).
    let without_red = offer
        .to_string()
        .replace(" 111 63 0 122 8 13", " 111 0 8")
        .replace("a=rtpmap:122 red/8000\r\na=fmtp:122 0/0/0\r\n", "")
        .replace(";usedtx=1", "")
        .replace("a=rtpmap:13 CN/8000\r\n", "")
        .replace(
            "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111/111/111/111\r\n",
            "",
        );
    assert_eq!(
        without_red, OUR_BENCH_OFFER,
        "the captures answer exactly this offer"
    );

    // baresip echoes all our codecs (Opus first) but only telephone-event/8000.
    let negotiated = apply_answer(&offer, &parse(BARESIP_REAL_ANSWER)).expect("applies");
    assert_eq!(
        (negotiated.kind, negotiated.codec.payload_type),
        (CodecKind::Opus, 111)
    );
    assert_eq!(
        negotiated.dtmf.map(|d| (d.payload_type, d.clock_rate)),
        Some((101, 8000))
    );
    assert_eq!(negotiated.remote_rtp, socket("127.0.0.1:12170"));
    assert_eq!(negotiated.direction, Direction::SendRecv);
    assert_eq!(negotiated.remote_ssrc, Some(1261210534));
    assert_eq!(negotiated.red, None, "baresip gets plain Opus");
    // Had it chosen PCMU, it would still not list our `red/8000`: plain PCMU.
    let pcmu_answer = BARESIP_REAL_ANSWER.replace(" 111 0 8 101", " 0 8 101");
    let negotiated = apply_answer(&offer, &parse(&pcmu_answer)).expect("applies");
    assert_eq!((negotiated.kind, negotiated.red), (CodecKind::Pcmu, None));

    // linphonec keeps 0 and 8 without rtpmap and both telephone-events.
    let negotiated = apply_answer(&offer, &parse(LINPHONE_REAL_ANSWER)).expect("applies");
    assert_eq!(
        (negotiated.kind, negotiated.codec.payload_type),
        (CodecKind::Opus, 111)
    );
    assert_eq!(negotiated.codec.fmtp.as_deref(), Some("useinbandfec=1"));
    assert_eq!(
        negotiated.dtmf.map(|d| (d.payload_type, d.clock_rate)),
        Some((110, 48000))
    );
    assert_eq!(negotiated.remote_rtcp, socket("127.0.0.1:7079"));
    assert_eq!(negotiated.red, None, "linphone gets plain Opus");
}
