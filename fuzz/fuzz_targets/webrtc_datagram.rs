//! The WebRTC media transport's receive paths: arbitrary datagrams into ICE (STUN), DTLS and
//! SRTP of a transport waiting for its peer, into a TURN allocation as its server's answers,
//! and arbitrary bytes split into a TURN-over-TCP stream's frames. Never a panic.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use homeagent_media::webrtc::{
    DtlsIdentity, DtlsRole, Fingerprint, IceCredentials, RemoteParams, TurnAllocation,
    TurnServer, TurnStreamFrames, WebRtcTransport,
};
use libfuzzer_sys::fuzz_target;

fn identity() -> &'static DtlsIdentity {
    static IDENTITY: OnceLock<DtlsIdentity> = OnceLock::new();
    // Invariant: key generation with the system RNG works on the fuzzing machine.
    IDENTITY.get_or_init(|| DtlsIdentity::generate().expect("DTLS identity"))
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let local: SocketAddr = "127.0.0.1:40000".parse().expect("literal");
    let peer: SocketAddr = "127.0.0.1:50000".parse().expect("literal");
    let role = if data.first().is_some_and(|b| b & 1 == 1) {
        DtlsRole::Client
    } else {
        DtlsRole::Server
    };
    if let Ok(mut transport) =
        WebRtcTransport::with_identity(now, &[local], identity(), None, role == DtlsRole::Client)
    {
        let remote = RemoteParams {
            credentials: IceCredentials {
                ufrag: "peer".to_owned(),
                pwd: "peerpeerpeerpeerpeerpeer".to_owned(),
            },
            candidates: vec!["1 1 udp 2130706431 127.0.0.1 50000 typ host".to_owned()],
            fingerprint: identity().fingerprint().clone(),
            ice_lite: false,
        };
        if transport.set_remote(now, remote, role, true).is_ok() {
            let _ = transport.handle_datagram(now, peer, data);
            while transport.poll_transmit().is_some() {}
            while transport.poll_event().is_some() {}
        }
    }

    let server = TurnServer {
        addr: "127.0.0.1:3478".parse().expect("literal"),
        username: "agent".to_owned(),
        password: "secret".to_owned(),
    };
    if let Ok(mut allocation) = TurnAllocation::start(now, server, local) {
        while allocation.poll_transmit().is_some() {}
        let _ = allocation.handle_datagram(now, "127.0.0.1:3478".parse().expect("literal"), data);
        while allocation.poll_transmit().is_some() {}
    }

    let mut frames = TurnStreamFrames::new();
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for chunk in data.chunks(step) {
        frames.push(chunk);
        while let Ok(Some(_)) = frames.poll_frame() {}
    }
});
