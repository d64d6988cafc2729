//! Two transports wired back to back in memory, time advanced by hand.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

const CLIENT_HELLO_HEX: &str =
    include_str!("../../tests/fixtures/chromium156-dtls-clienthello.hex");
const CHROME_OFFER: &str = include_str!("../../tests/fixtures/chromium156-offer.sdp");
const CHROME_ANSWER: &str = include_str!("../../tests/fixtures/chromium156-answer.sdp");

fn base() -> Instant {
    #[allow(clippy::disallowed_methods)] // the one clock read of the tests: a base instant
    Instant::now()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

struct Peer {
    transport: WebRtcTransport,
    addr: SocketAddr,
    events: Vec<WebRtcEvent>,
    received: Vec<Vec<u8>>,
}

impl Peer {
    fn new(now: Instant, addr: SocketAddr, controlling: bool) -> Peer {
        Peer {
            transport: WebRtcTransport::new(now, &[addr], controlling).expect("transport"),
            addr,
            events: Vec::new(),
            received: Vec::new(),
        }
    }

    fn remote_params(&self) -> RemoteParams {
        RemoteParams {
            credentials: self.transport.local_credentials().clone(),
            candidates: self.transport.local_candidates(),
            fingerprint: self.transport.fingerprint().clone(),
            ice_lite: false,
        }
    }

    fn ice_connected(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, WebRtcEvent::IceConnected { .. }))
            .count()
    }

    fn dtls_connected(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, WebRtcEvent::DtlsConnected { .. }))
    }

    fn failed(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, WebRtcEvent::Failed(_)))
    }
}

/// `a` and `b` on loopback; `wire` keeps every datagram that crossed, for inspection.
struct Pair {
    a: Peer,
    b: Peer,
    now: Instant,
    wire: Vec<Vec<u8>>,
}

impl Pair {
    fn new(a_controlling: bool) -> Pair {
        let now = base();
        Pair {
            a: Peer::new(now, addr("127.0.0.1:40000"), a_controlling),
            b: Peer::new(now, addr("127.0.0.1:50000"), !a_controlling),
            now,
            wire: Vec::new(),
        }
    }

    /// Exchanges parameters like an offer/answer would: `a` offers, `b` answers.
    fn connect(&mut self, a_role: DtlsRole) {
        let b_role = match a_role {
            DtlsRole::Client => DtlsRole::Server,
            DtlsRole::Server => DtlsRole::Client,
        };
        let (a_controlling, b_controlling) = (self.a_controlling(), !self.a_controlling());
        let b_params = self.b.remote_params();
        let a_params = self.a.remote_params();
        self.b
            .transport
            .set_remote(self.now, a_params, b_role, b_controlling)
            .expect("b set_remote");
        self.a
            .transport
            .set_remote(self.now, b_params, a_role, a_controlling)
            .expect("a set_remote");
    }

    fn a_controlling(&self) -> bool {
        self.a.transport.agent.role()
    }

    /// Delivers all queued datagrams both ways, then advances time to the next deadline (at
    /// most 50 ms). Returns false when the simulated `limit` has passed.
    fn step(&mut self, limit: Instant) -> bool {
        let mut moved = true;
        while moved {
            moved = false;
            while let Some((to, bytes)) = self.a.transport.poll_transmit() {
                moved = true;
                self.wire.push(bytes.clone());
                if to == self.b.addr
                    && let Some(media) =
                        self.b
                            .transport
                            .handle_datagram(self.now, self.a.addr, &bytes)
                {
                    self.b.received.push(media);
                }
            }
            while let Some((to, bytes)) = self.b.transport.poll_transmit() {
                moved = true;
                self.wire.push(bytes.clone());
                if to == self.a.addr
                    && let Some(media) =
                        self.a
                            .transport
                            .handle_datagram(self.now, self.b.addr, &bytes)
                {
                    self.a.received.push(media);
                }
            }
            for peer in [&mut self.a, &mut self.b] {
                while let Some(event) = peer.transport.poll_event() {
                    peer.events.push(event);
                }
            }
        }
        let cap = self.now + Duration::from_millis(50);
        let next = [
            self.a.transport.poll_timeout(),
            self.b.transport.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map_or(cap, |at| at.clamp(self.now + Duration::from_millis(1), cap));
        self.now = next;
        self.a.transport.handle_timeout(self.now);
        self.b.transport.handle_timeout(self.now);
        self.now < limit
    }

    fn drive_until(&mut self, seconds: u64, done: impl Fn(&Pair) -> bool) -> bool {
        let limit = self.now + Duration::from_secs(seconds);
        while !done(self) {
            if !self.step(limit) {
                return false;
            }
        }
        true
    }
}

/// An Opus RTP packet (payload type 111) numbered `seq`.
pub(super) fn rtp_packet(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::new();
    crate::rtp::RtpPacket {
        marker: false,
        payload_type: 111,
        sequence: seq,
        timestamp: u32::from(seq) * 960,
        ssrc: 0x1234_5678,
        csrcs: Vec::new(),
        extension: None,
        payload,
    }
    .write(&mut packet);
    packet
}

fn established(role: DtlsRole) -> Pair {
    let mut pair = Pair::new(true);
    pair.connect(role);
    let ok = pair.drive_until(10, |p| {
        p.a.ice_connected() > 0
            && p.b.ice_connected() > 0
            && p.a.dtls_connected()
            && p.b.dtls_connected()
    });
    assert!(
        ok,
        "not connected: a {:?}, b {:?}",
        pair.a.events, pair.b.events
    );
    pair
}

/// Sends `count` packets each way and checks they come out equal, and never in clear.
fn media_flows(pair: &mut Pair, first_seq: u16, count: u16) {
    pair.a.received.clear();
    pair.b.received.clear();
    pair.wire.clear();
    let mut sent_by_a = Vec::new();
    let mut sent_by_b = Vec::new();
    for i in 0..count {
        let seq = first_seq + i;
        let from_a = rtp_packet(seq, format!("from a #{seq} ........").as_bytes());
        let from_b = rtp_packet(seq, format!("from b #{seq} ,,,,,,,,").as_bytes());
        pair.a
            .transport
            .send_media(pair.now, &from_a, false)
            .expect("a sends");
        pair.b
            .transport
            .send_media(pair.now, &from_b, false)
            .expect("b sends");
        sent_by_a.push(from_a);
        sent_by_b.push(from_b);
        pair.step(pair.now + Duration::from_secs(1));
    }
    assert_eq!(pair.b.received, sent_by_a);
    assert_eq!(pair.a.received, sent_by_b);
    for clear in sent_by_a.iter().chain(&sent_by_b) {
        assert!(!pair.wire.contains(clear), "a packet went out in clear");
        let payload = &clear[12..];
        assert!(
            !pair
                .wire
                .iter()
                .any(|d| d.windows(payload.len()).any(|w| w == payload)),
            "a payload went out in clear"
        );
    }
}

fn both_ways(role: DtlsRole) {
    let mut pair = established(role);
    let suite = pair.a.events.iter().find_map(|e| match e {
        WebRtcEvent::DtlsConnected { profile } => Some(*profile),
        _ => None,
    });
    assert_eq!(
        suite,
        Some(SrtpSuite::AeadAes128Gcm),
        "both offer GCM first"
    );
    assert!(pair.a.transport.selected_pair().is_some_and(|(l, r)| {
        l == "host 127.0.0.1:40000 udp" && r.contains("127.0.0.1:50000")
    }));
    media_flows(&mut pair, 1, 20);

    // RTCP too (a minimal receiver report).
    let rtcp = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
    pair.a
        .transport
        .send_media(pair.now, &rtcp, true)
        .expect("rtcp");
    pair.b.received.clear();
    pair.step(pair.now + Duration::from_secs(1));
    assert_eq!(pair.b.received, vec![rtcp.to_vec()]);

    // Not authenticated: a forged packet (a's last datagram with a flipped payload bit) and a
    // replay of an accepted one are dropped.
    let packet = rtp_packet(100, b"forged?");
    pair.a
        .transport
        .send_media(pair.now, &packet, false)
        .expect("send");
    let (_, protected) = pair.a.transport.poll_transmit().expect("protected packet");
    let mut forged = protected.clone();
    forged[14] ^= 1;
    assert_eq!(
        pair.b
            .transport
            .handle_datagram(pair.now, pair.a.addr, &forged),
        None
    );
    assert_eq!(
        pair.b
            .transport
            .handle_datagram(pair.now, pair.a.addr, &protected),
        Some(packet)
    );
    assert_eq!(
        pair.b
            .transport
            .handle_datagram(pair.now, pair.a.addr, &protected),
        None
    );
    // From an address ICE never validated: dropped although authentic.
    let packet = rtp_packet(101, b"stranger");
    pair.a
        .transport
        .send_media(pair.now, &packet, false)
        .expect("send");
    let (_, protected) = pair.a.transport.poll_transmit().expect("protected packet");
    let stranger = addr("127.0.0.1:40001");
    assert_eq!(
        pair.b
            .transport
            .handle_datagram(pair.now, stranger, &protected),
        None
    );
}

#[test]
fn media_flows_when_we_are_the_dtls_client() {
    both_ways(DtlsRole::Client);
}

#[test]
fn media_flows_when_we_are_the_dtls_server() {
    both_ways(DtlsRole::Server);
}

#[test]
fn media_is_refused_before_dtls_completes() {
    let mut pair = Pair::new(true);
    let packet = rtp_packet(1, b"too early");
    assert_eq!(
        pair.a.transport.send_media(pair.now, &packet, false),
        Err(WebRtcError::NotConnected)
    );
    assert!(pair.a.transport.poll_transmit().is_none());
    pair.connect(DtlsRole::Client);
    assert_eq!(
        pair.a.transport.send_media(pair.now, &packet, false),
        Err(WebRtcError::NotConnected)
    );
}

fn mismatch(role: DtlsRole) {
    let mut pair = Pair::new(true);
    let b_role = match role {
        DtlsRole::Client => DtlsRole::Server,
        DtlsRole::Server => DtlsRole::Client,
    };
    let mut b_params = pair.b.remote_params();
    let a_params = pair.a.remote_params();
    // a expects some other certificate.
    b_params.fingerprint.value = pair.a.transport.fingerprint().value.clone();
    pair.b
        .transport
        .set_remote(pair.now, a_params, b_role, false)
        .expect("b");
    pair.a
        .transport
        .set_remote(pair.now, b_params, role, true)
        .expect("a");
    let failed = pair.drive_until(60, |p| p.a.failed());
    assert!(
        failed,
        "no failure: a {:?}, b {:?}",
        pair.a.events, pair.b.events
    );
    assert!(pair.a.ice_connected() > 0, "ICE itself worked");
    let reason = pair.a.events.iter().find_map(|e| match e {
        WebRtcEvent::Failed(reason) => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.is_some_and(|r| r.contains("fingerprint")));
    assert!(!pair.a.dtls_connected());
    let packet = rtp_packet(1, b"secret");
    assert!(
        pair.a
            .transport
            .send_media(pair.now, &packet, false)
            .is_err()
    );
    // The peer never gets keys either: it fails on our alert.
    assert!(
        pair.drive_until(60, |p| p.b.failed()),
        "b: {:?}",
        pair.b.events
    );
    assert!(!pair.b.dtls_connected());
}

#[test]
fn fingerprint_mismatch_fails_as_dtls_client() {
    mismatch(DtlsRole::Client);
}

#[test]
fn fingerprint_mismatch_fails_as_dtls_server() {
    mismatch(DtlsRole::Server);
}

#[test]
fn ice_restart_reconnects_and_media_flows_again() {
    let mut pair = established(DtlsRole::Client);
    media_flows(&mut pair, 1, 5);
    let old_a = pair.a.transport.local_credentials().clone();
    let old_b = pair.b.transport.local_credentials().clone();

    pair.a.transport.restart(pair.now).expect("restart");
    assert_ne!(pair.a.transport.local_credentials(), &old_a);
    assert_eq!(
        pair.a
            .transport
            .send_media(pair.now, &rtp_packet(6, b"x"), false),
        Err(WebRtcError::NoPair)
    );
    // a re-offers, b sees the new ufrag, restarts too and answers with new credentials.
    let a_params = pair.a.remote_params();
    pair.b
        .transport
        .set_remote(pair.now, a_params, DtlsRole::Server, false)
        .expect("b");
    assert_ne!(pair.b.transport.local_credentials(), &old_b);
    let b_params = pair.b.remote_params();
    pair.a
        .transport
        .set_remote(pair.now, b_params, DtlsRole::Client, true)
        .expect("a");
    let ok = pair.drive_until(10, |p| p.a.ice_connected() > 1 && p.b.ice_connected() > 1);
    assert!(
        ok,
        "no reconnection: a {:?}, b {:?}",
        pair.a.events, pair.b.events
    );
    assert!(!pair.a.failed() && !pair.b.failed());
    media_flows(&mut pair, 6, 5);
}

// --- Chromium's real DTLS ClientHello --------------------------------------------------

fn hex_lines(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

/// `(handshake type, message_seq, fragment offset, body)` of every handshake fragment in a
/// datagram of plaintext records.
fn handshake_fragments(datagram: &[u8]) -> Vec<(u8, u16, usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while rest.len() >= 13 {
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        let (record, tail) = rest.split_at(13 + len);
        if record[0] == 22 {
            let mut body = &record[13..];
            while body.len() >= 12 {
                let frag_len = usize::from_be_bytes([0, 0, 0, 0, 0, body[9], body[10], body[11]]);
                let offset = usize::from_be_bytes([0, 0, 0, 0, 0, body[6], body[7], body[8]]);
                let seq = u16::from_be_bytes([body[4], body[5]]);
                out.push((body[0], seq, offset, body[12..12 + frag_len].to_vec()));
                body = &body[12 + frag_len..];
            }
        }
        rest = tail;
    }
    out
}

/// Chrome's ClientHello again with the server's cookie (as Chrome sends it after a
/// HelloVerifyRequest): same body, cookie inserted, message_seq 1, one record.
fn client_hello_with_cookie(hello: &[u8], cookie: &[u8]) -> Vec<u8> {
    let session_id_len = usize::from(hello[34]);
    let cookie_at = 35 + session_id_len;
    assert_eq!(hello[cookie_at], 0, "the first hello has no cookie");
    let mut body = hello[..cookie_at].to_vec();
    body.push(u8::try_from(cookie.len()).expect("cookie length"));
    body.extend_from_slice(cookie);
    body.extend_from_slice(&hello[cookie_at + 1..]);
    let len = u32::try_from(body.len()).expect("length").to_be_bytes();
    let mut handshake = vec![
        1, len[1], len[2], len[3], 0, 1, 0, 0, 0, len[1], len[2], len[3],
    ];
    handshake.extend_from_slice(&body);
    let mut record = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 2];
    record.extend_from_slice(
        &u16::try_from(handshake.len())
            .expect("record")
            .to_be_bytes(),
    );
    record.extend_from_slice(&handshake);
    record
}

#[test]
fn chromium_client_hello_gets_a_server_hello() {
    let now = base();
    let chrome = addr("127.0.0.1:42702");
    let mut ours = WebRtcTransport::new(now, &[addr("127.0.0.1:40000")], false).expect("new");
    let chrome_params = RemoteParams {
        credentials: IceCredentials {
            ufrag: "6Vew".into(),
            pwd: "FQkVmDge0UofonOcGc6ivx4V".into(),
        },
        candidates: vec![
            "candidate:3849040073 1 udp 2122194687 127.0.0.1 42702 typ host generation 0 network-id 3 network-cost 50".into(),
        ],
        fingerprint: Fingerprint {
            algorithm: "sha-256".into(),
            value: "03:1D:CD:5C:B7:69:B1:B9:AB:D7:1D:36:3A:20:6E:72:D4:69:FC:C4:C5:C2:E5:17:A7:26:F6:35:C4:3C:27:80".into(),
        },
        ice_lite: false,
    };
    ours.set_remote(now, chrome_params, DtlsRole::Server, false)
        .expect("set_remote");
    while ours.poll_transmit().is_some() {} // our ICE checks

    let datagrams = hex_lines(CLIENT_HELLO_HEX);
    assert_eq!(datagrams.len(), 2);
    let fragments: Vec<_> = datagrams
        .iter()
        .flat_map(|d| handshake_fragments(d))
        .collect();
    assert_eq!(fragments.len(), 2, "Chrome's hello comes in two fragments");
    let hello = [fragments[0].3.clone(), fragments[1].3.clone()].concat();
    assert_eq!(hello.len(), 1413);

    // The first fragment alone is not a hello yet: nothing is answered.
    assert_eq!(ours.handle_datagram(now, chrome, &datagrams[0]), None);
    assert!(
        std::iter::from_fn(|| ours.poll_transmit()).all(|(_, d)| d.first() != Some(&22)),
        "answered half a hello"
    );
    assert_eq!(ours.handle_datagram(now, chrome, &datagrams[1]), None);
    let flight: Vec<_> = std::iter::from_fn(|| ours.poll_transmit()).collect();
    let verify = flight
        .iter()
        .filter(|(to, d)| *to == chrome && d.first() == Some(&22))
        .flat_map(|(_, d)| handshake_fragments(d))
        .find(|f| f.0 == 3)
        .unwrap_or_else(|| panic!("no HelloVerifyRequest, events {:?}", ours.poll_event()));
    // HelloVerifyRequest: server_version(2), cookie length, cookie.
    let cookie = verify.3[3..3 + usize::from(verify.3[2])].to_vec();
    assert!(!cookie.is_empty());

    let second = client_hello_with_cookie(&hello, &cookie);
    assert_eq!(ours.handle_datagram(now, chrome, &second), None);
    let flight: Vec<_> = std::iter::from_fn(|| ours.poll_transmit()).collect();
    assert!(ours.poll_event().is_none(), "no failure");
    let first = &flight.first().expect("a server flight").1;
    assert_eq!(first[0], 22, "a handshake record");
    assert_eq!(first[13], 2, "starting with server_hello");
    let messages: Vec<_> = flight
        .iter()
        .flat_map(|(_, d)| handshake_fragments(d))
        .collect();
    let server_hello = &messages.iter().find(|m| m.0 == 2).expect("server_hello").3;
    assert_eq!(&server_hello[..2], &[0xfe, 0xfd], "DTLS 1.2");
    let suite_at = 35 + usize::from(server_hello[34]);
    assert_eq!(
        &server_hello[suite_at..suite_at + 2],
        &[0xc0, 0x2b],
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    );
    // ServerKeyExchange: curve_type 3 (named_curve), then the group: x25519, not MLKEM.
    let key_exchange = &messages
        .iter()
        .find(|m| m.0 == 12)
        .expect("server_key_exchange")
        .3;
    assert_eq!(&key_exchange[..3], &[3, 0x00, 0x1d]);
    assert!(
        messages.iter().any(|m| m.0 == 13),
        "certificate_request (mutual auth)"
    );
    assert!(messages.iter().any(|m| m.0 == 14), "server_hello_done");
}

#[test]
fn chromium_candidates_parse() {
    let mut usable = Vec::new();
    for sdp in [CHROME_OFFER, CHROME_ANSWER] {
        for line in sdp.lines().filter(|l| l.starts_with("a=candidate:")) {
            if let Some(candidate) = parse_candidate(line) {
                usable.push(candidate.addr());
            }
        }
    }
    // Offer: udp 127.0.0.1:34902 (+ a TCP one, skipped); answer: udp 127.0.0.1:42702.
    assert_eq!(
        usable,
        vec![addr("127.0.0.1:34902"), addr("127.0.0.1:42702")]
    );
    assert!(
        parse_candidate("788330192 1 tcp 1518214911 127.0.0.1 9 typ host tcptype active").is_none()
    );
    assert!(
        parse_candidate("1 2 udp 2122194687 127.0.0.1 5000 typ host").is_none(),
        "RTCP component"
    );
    assert!(parse_candidate("1 1 udp 2122194687 abcd.local 5000 typ host").is_none());
    assert!(parse_candidate("garbage").is_none());
    assert!(parse_candidate("1 1 udp 1 127.0.0.1 5000 typ srflx raddr").is_none());
    let srflx = parse_candidate(
        "2 1 udp 1686052607 203.0.113.7 61000 typ srflx raddr 10.0.0.2 rport 40000",
    )
    .expect("srflx");
    assert_eq!(srflx.addr(), addr("203.0.113.7:61000"));
}

#[test]
fn local_parameters_look_like_sdp() {
    let now = base();
    let mut t = WebRtcTransport::new(now, &[addr("127.0.0.1:40000")], true).expect("new");
    let creds = t.local_credentials().clone();
    assert!(creds.ufrag.len() >= 4 && creds.pwd.len() >= 22);
    let candidates = t.local_candidates();
    assert_eq!(candidates.len(), 1);
    assert!(
        candidates[0].ends_with("127.0.0.1 40000 typ host"),
        "{}",
        candidates[0]
    );
    assert_eq!(
        parse_candidate(&candidates[0]).map(|c| c.addr()),
        Some(addr("127.0.0.1:40000"))
    );
    let fp = t.fingerprint().clone();
    assert_eq!(fp.algorithm, "sha-256");
    assert_eq!(parse_fingerprint(&fp).map(|b| b.len()), Ok(32));
    assert_eq!(fp.value, fp.value.to_uppercase());
    t.add_server_reflexive(addr("203.0.113.7:61000"), addr("127.0.0.1:40000"))
        .expect("srflx");
    assert!(
        t.local_candidates()
            .iter()
            .any(|c| c.contains("203.0.113.7 61000 typ srflx raddr 127.0.0.1 rport 40000"))
    );
    // Two transports never share credentials or certificates.
    let other = WebRtcTransport::new(now, &[addr("127.0.0.1:40000")], true).expect("new");
    assert_ne!(other.local_credentials(), &creds);
    assert_ne!(other.fingerprint(), &fp);
    assert!(
        parse_fingerprint(&Fingerprint {
            algorithm: "sha-1".into(),
            value: fp.value.clone()
        })
        .is_err()
    );
    assert!(
        parse_fingerprint(&Fingerprint {
            algorithm: "sha-256".into(),
            value: "AB:CD".into()
        })
        .is_err()
    );
    assert!(matches!(
        WebRtcTransport::new(now, &[], true),
        Err(WebRtcError::NoLocalAddress)
    ));
    assert!(matches!(
        WebRtcTransport::new(now, &[addr("0.0.0.0:40000")], true),
        Err(WebRtcError::BadLocalAddress(_))
    ));
}

#[test]
fn junk_datagrams_are_dropped() {
    let mut pair = established(DtlsRole::Server);
    let junk: [&[u8]; 6] = [
        &[],
        &[0],
        &[22],
        &[22, 0xfe, 0xfd, 0, 0],
        &[0x80],
        &[0xff; 40],
    ];
    for bytes in junk {
        assert_eq!(
            pair.a
                .transport
                .handle_datagram(pair.now, pair.b.addr, bytes),
            None
        );
    }
    assert!(!pair.a.failed());
    media_flows(&mut pair, 1, 3);
}

/// Random datagrams in every demultiplexing range, before and after the handshake, never panic;
/// a connected transport keeps working (only pre-handshake DTLS errors are fatal).
#[test]
fn random_datagrams_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let random_datagram = |rng: &mut rand::rngs::SmallRng| {
        let len = rng.gen_range(0..300);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
        if let Some(first) = bytes.first_mut() {
            *first = [0, 1, 20, 22, 23, 128, 129, 200][rng.gen_range(0..8)];
        }
        // Sometimes a plausible DTLS record header or STUN magic cookie.
        if bytes.len() > 13 && rng.gen_bool(0.3) {
            bytes[0] = 22;
            bytes[1] = 0xfe;
            bytes[2] = 0xfd;
            let len = u16::try_from(bytes.len() - 13).expect("short");
            bytes[11..13].copy_from_slice(&len.to_be_bytes());
        } else if bytes.len() > 20 && rng.gen_bool(0.3) {
            bytes[0] = 0;
            bytes[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        }
        bytes
    };
    let mut pair = Pair::new(true);
    for _ in 0..2000 {
        let bytes = random_datagram(&mut rng);
        assert_eq!(
            pair.a
                .transport
                .handle_datagram(pair.now, pair.b.addr, &bytes),
            None
        );
    }
    let mut pair = established(DtlsRole::Client);
    for _ in 0..5000 {
        let bytes = random_datagram(&mut rng);
        assert_eq!(
            pair.a
                .transport
                .handle_datagram(pair.now, pair.b.addr, &bytes),
            None
        );
        assert_eq!(
            pair.b
                .transport
                .handle_datagram(pair.now, pair.a.addr, &bytes),
            None
        );
    }
    while pair.a.transport.poll_transmit().is_some() {}
    while pair.b.transport.poll_transmit().is_some() {}
    pair.step(pair.now + Duration::from_secs(1));
    assert!(!pair.a.failed() && !pair.b.failed());
    media_flows(&mut pair, 1, 3);
}

/// The engine's way: one certificate shared by the calls and ICE credentials chosen before the
/// transport exists (they are in SDP already); an ICE restart is new credentials in a later
/// SDP, on both sides.
#[test]
fn shared_identity_and_sdp_credentials_connect_and_restart() {
    let now = base();
    let identity = DtlsIdentity::generate().expect("identity");
    let credentials = |ufrag: &str| IceCredentials {
        ufrag: ufrag.to_owned(),
        pwd: format!("{ufrag}0123456789abcdefghij"),
    };
    let transport = |at: &str, ufrag: &str, controlling: bool| {
        WebRtcTransport::with_identity(
            now,
            &[addr(at)],
            &identity,
            Some(credentials(ufrag)),
            controlling,
        )
        .expect("transport")
    };
    let mut pair = Pair::new(true);
    pair.a.transport = transport("127.0.0.1:40000", "aaaa", true);
    pair.b.transport = transport("127.0.0.1:50000", "bbbb", false);
    assert_eq!(pair.a.transport.local_credentials(), &credentials("aaaa"));
    assert_eq!(pair.a.transport.fingerprint(), identity.fingerprint());
    assert!(identity.sdp_fingerprint().starts_with("sha-256 "));
    pair.connect(DtlsRole::Client);
    assert!(pair.drive_until(10, |p| p.a.dtls_connected() && p.b.dtls_connected()));
    media_flows(&mut pair, 1, 5);

    // The same credentials again change nothing; new ones restart ICE.
    pair.a
        .transport
        .set_local_credentials(pair.now, credentials("aaaa"))
        .expect("same");
    media_flows(&mut pair, 6, 2);
    for (peer, ufrag) in [(&mut pair.a, "cccc"), (&mut pair.b, "dddd")] {
        peer.transport
            .set_local_credentials(pair.now, credentials(ufrag))
            .expect("restart");
        assert_eq!(peer.transport.local_credentials(), &credentials(ufrag));
    }
    assert_eq!(
        pair.a
            .transport
            .send_media(pair.now, &rtp_packet(9, b"x"), false),
        Err(WebRtcError::NoPair)
    );
    pair.connect(DtlsRole::Client);
    assert!(pair.drive_until(10, |p| p.a.ice_connected() > 1 && p.b.ice_connected() > 1));
    assert_eq!(pair.b.transport.local_credentials(), &credentials("dddd"));
    media_flows(&mut pair, 10, 5);
}
