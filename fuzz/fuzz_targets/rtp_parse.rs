//! RTP, RTCP and STUN parsers, and a media session fed arbitrary datagrams: never panic.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use homeagent_media::{CodecKind, MediaConfig, MediaSession, rtcp, rtp, stun};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if rtp::is_rtcp(data) {
        let _ = rtcp::parse_compound(data);
    } else if let Ok(packet) = rtp::RtpPacket::parse(data) {
        let _ = packet;
    }
    // STUN answers arrive on the same sockets.
    if stun::is_stun(data) {
        let _ = stun::mapped_address(data, [0; 12]);
    }
    // The whole receive path, as the driver uses it.
    let now = Instant::now();
    let config = MediaConfig {
        codec: CodecKind::Pcmu.default_spec(),
        kind: CodecKind::Pcmu,
        dtmf: None,
        ptime_ms: 20,
        ssrc: 1,
        initial_seq: 1,
        initial_timestamp: 1,
        cname: "fuzz".into(),
        wallclock: None,
    };
    let Ok(mut session) = MediaSession::new(config, now) else { return };
    let from = SocketAddr::from(([127, 0, 0, 1], 4000));
    for (i, chunk) in data.chunks(64).enumerate() {
        session.handle_packet(now + Duration::from_millis(i as u64 * 20), from, chunk);
    }
    let mut out = [0i16; 160];
    session.pull_audio(now + Duration::from_secs(1), &mut out);
});
