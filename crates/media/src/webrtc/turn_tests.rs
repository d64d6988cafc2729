//! TURN relay candidates against a minimal in-memory TURN server, on a simulated network where
//! the peers' host addresses cannot reach each other.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc_ice::crypto::RTCCryptoProvider;
use rtc_stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS};
use rtc_stun::error_code::{
    CODE_ALLOC_MISMATCH, CODE_FORBIDDEN, CODE_UNAUTHORIZED, ErrorCode, ErrorCodeAttribute,
};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter as _,
    METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_DATA, METHOD_REFRESH,
    METHOD_SEND, Message, MessageType, Method, Setter, TransactionId,
};
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;
use rtc_turn::proto::chandata::ChannelData;
use rtc_turn::proto::channum::ChannelNumber;
use rtc_turn::proto::data::Data;
use rtc_turn::proto::lifetime::Lifetime;
use rtc_turn::proto::peeraddr::PeerAddress;
use rtc_turn::proto::relayaddr::RelayedAddress;

use super::tests::rtp_packet;
use super::*;

const USER: &str = "agent";
const PASSWORD: &str = "secret";
const REALM: &str = "homeagent";
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);

fn base() -> Instant {
    #[allow(clippy::disallowed_methods)] // the one clock read of the tests: a base instant
    Instant::now()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn server(password: &str) -> TurnServer {
    TurnServer {
        addr: addr("10.0.0.9:3478"),
        username: USER.to_owned(),
        password: password.to_owned(),
    }
}

/// How the fake server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Answers every Allocate with 401, signed or not.
    AlwaysUnauthorized,
    /// Answers nothing.
    Silent,
}

struct Allocation {
    relayed: SocketAddr,
    expires: Instant,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, SocketAddr>,
}

/// RFC 8656 server reduced to what a client exercises: long-term credentials (401 with realm and
/// nonce, then MESSAGE-INTEGRITY checked), Allocate, Refresh, CreatePermission, ChannelBind, Send
/// and Data indications, ChannelData, permissions and allocation expiry enforced.
struct FakeTurn {
    addr: SocketAddr,
    mode: Mode,
    provider: Arc<dyn RTCCryptoProvider>,
    key: Vec<u8>,
    lifetime: Duration,
    allocations: HashMap<SocketAddr, Allocation>,
    next_port: u16,
    requests: Vec<Method>,
    /// Methods whose next signed request gets 438 Stale Nonce (with a new nonce).
    stale_once: Vec<Method>,
    /// Datagrams from peers dropped for want of a permission.
    unpermitted: usize,
}

impl FakeTurn {
    fn new(mode: Mode) -> FakeTurn {
        let provider = rtc_ice::crypto::default_provider().expect("crypto provider");
        let key = MessageIntegrity::long_term_integrity_key(
            USER.to_owned(),
            REALM.to_owned(),
            PASSWORD.to_owned(),
            provider.crypto(),
        )
        .expect("md5 key");
        FakeTurn {
            addr: server(PASSWORD).addr,
            mode,
            provider,
            key,
            lifetime: Duration::from_secs(600),
            allocations: HashMap::new(),
            next_port: 49152,
            requests: Vec::new(),
            stale_once: Vec::new(),
            unpermitted: 0,
        }
    }

    fn count(&self, method: Method) -> usize {
        self.requests.iter().filter(|m| **m == method).count()
    }

    fn serves(&self, now: Instant, to: SocketAddr) -> bool {
        to == self.addr
            || self
                .allocations
                .values()
                .any(|a| a.relayed == to && a.expires > now)
    }

    /// One datagram `from` → `to` (the server's or a relayed address); returns what it sends.
    fn handle(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        self.allocations.retain(|_, a| a.expires > now);
        if self.mode == Mode::Silent {
            return Vec::new();
        }
        if to != self.addr {
            return self
                .relay_from_peer(now, from, to, bytes)
                .into_iter()
                .collect();
        }
        if ChannelData::is_channel_data(bytes) {
            return self.channel_data(now, from, bytes).into_iter().collect();
        }
        let mut message = Message::new();
        message.raw = bytes.to_vec();
        if message.decode().is_err() {
            return Vec::new();
        }
        if message.typ.class == CLASS_INDICATION && message.typ.method == METHOD_SEND {
            return self
                .send_indication(now, from, &message)
                .into_iter()
                .collect();
        }
        if message.typ.class != CLASS_REQUEST {
            return Vec::new();
        }
        self.requests.push(message.typ.method);
        let reply = self.request(now, from, &mut message);
        vec![(self.addr, from, reply)]
    }

    fn request(&mut self, now: Instant, from: SocketAddr, message: &mut Message) -> Vec<u8> {
        let signed = TextAttribute::get_from_as(message, ATTR_USERNAME)
            .is_ok_and(|user| user.text == USER)
            && MessageIntegrity::check(message, &self.key, self.provider.crypto()).is_ok();
        if !signed || self.mode == Mode::AlwaysUnauthorized {
            return self.error(message, CODE_UNAUTHORIZED, true);
        }
        let method = message.typ.method;
        if let Some(at) = self.stale_once.iter().position(|m| *m == method) {
            self.stale_once.remove(at);
            return self.error(message, ErrorCode(438), true);
        }
        if method == METHOD_ALLOCATE {
            if self.allocations.contains_key(&from) {
                return self.error(message, CODE_ALLOC_MISMATCH, false);
            }
            let relayed = SocketAddr::new(self.addr.ip(), self.next_port);
            self.next_port += 1;
            self.allocations.insert(
                from,
                Allocation {
                    relayed,
                    expires: now + self.lifetime,
                    permissions: HashMap::new(),
                    channels: HashMap::new(),
                },
            );
            let lifetime = self.lifetime;
            return self.success(
                message,
                vec![
                    Box::new(RelayedAddress {
                        ip: relayed.ip(),
                        port: relayed.port(),
                    }),
                    Box::new(XorMappedAddress {
                        ip: from.ip(),
                        port: from.port(),
                    }),
                    Box::new(Lifetime(lifetime)),
                ],
            );
        }
        let lifetime = self.lifetime;
        let Some(allocation) = self.allocations.get_mut(&from) else {
            return self.error(message, CODE_ALLOC_MISMATCH, false);
        };
        if method == METHOD_REFRESH {
            let mut requested = Lifetime::default();
            let granted = if requested.get_from(message).is_ok() {
                requested.0.min(lifetime)
            } else {
                lifetime
            };
            if granted.is_zero() {
                self.allocations.remove(&from);
            } else {
                allocation.expires = now + granted;
            }
            return self.success(message, vec![Box::new(Lifetime(granted))]);
        }
        if method == METHOD_CREATE_PERMISSION {
            let peers = xor_peer_addresses(message);
            if peers.is_empty() {
                return self.error(message, ErrorCode(400), false);
            }
            for peer in peers {
                allocation
                    .permissions
                    .insert(peer.ip(), now + PERMISSION_LIFETIME);
            }
            return self.success(message, Vec::new());
        }
        if method == METHOD_CHANNEL_BIND {
            let mut number = ChannelNumber::default();
            let mut peer = PeerAddress::default();
            if number.get_from(message).is_err() || peer.get_from(message).is_err() {
                return self.error(message, ErrorCode(400), false);
            }
            let peer = SocketAddr::new(peer.ip, peer.port);
            allocation.channels.insert(number.0, peer);
            allocation
                .permissions
                .insert(peer.ip(), now + PERMISSION_LIFETIME);
            return self.success(message, Vec::new());
        }
        self.error(message, CODE_FORBIDDEN, false)
    }

    fn send_indication(
        &mut self,
        now: Instant,
        from: SocketAddr,
        message: &Message,
    ) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        let allocation = self.allocations.get(&from)?;
        let mut peer = PeerAddress::default();
        let mut data = Data::default();
        peer.get_from(message).ok()?;
        data.get_from(message).ok()?;
        let peer = SocketAddr::new(peer.ip, peer.port);
        permitted(allocation, now, peer).then_some((allocation.relayed, peer, data.0))
    }

    fn channel_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        let allocation = self.allocations.get(&from)?;
        let mut data = ChannelData {
            raw: bytes.to_vec(),
            ..ChannelData::default()
        };
        data.decode().ok()?;
        let peer = *allocation.channels.get(&data.number.0)?;
        permitted(allocation, now, peer).then_some((allocation.relayed, peer, data.data))
    }

    /// A datagram a peer sent to a relayed address, wrapped for its client.
    fn relay_from_peer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        relayed: SocketAddr,
        bytes: &[u8],
    ) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        let (client, allocation) = self
            .allocations
            .iter()
            .find(|(_, a)| a.relayed == relayed)?;
        if !permitted(allocation, now, from) {
            self.unpermitted += 1;
            return None;
        }
        if let Some((number, _)) = allocation.channels.iter().find(|(_, peer)| **peer == from) {
            let mut data = ChannelData {
                data: bytes.to_vec(),
                number: ChannelNumber(*number),
                ..ChannelData::default()
            };
            data.encode();
            return Some((self.addr, *client, data.raw));
        }
        let mut message = Message::new();
        message
            .build(&[
                Box::new(TransactionId::new()),
                Box::new(MessageType::new(METHOD_DATA, CLASS_INDICATION)),
                Box::new(PeerAddress {
                    ip: from.ip(),
                    port: from.port(),
                }),
                Box::new(Data(bytes.to_vec())),
                Box::new(FINGERPRINT),
            ])
            .expect("data indication");
        Some((self.addr, *client, message.raw))
    }

    fn success(&self, request: &Message, attributes: Vec<Box<dyn Setter + '_>>) -> Vec<u8> {
        let mut setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(request.transaction_id),
            Box::new(MessageType::new(request.typ.method, CLASS_SUCCESS_RESPONSE)),
        ];
        setters.extend(attributes);
        setters.push(Box::new(MessageIntegrity::new_raw_integrity_with_provider(
            self.key.clone(),
            self.provider.crypto(),
        )));
        setters.push(Box::new(FINGERPRINT));
        let mut message = Message::new();
        message.build(&setters).expect("success response");
        message.raw
    }

    fn error(&self, request: &Message, code: ErrorCode, challenge: bool) -> Vec<u8> {
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(request.transaction_id),
            Box::new(MessageType::new(request.typ.method, CLASS_ERROR_RESPONSE)),
            Box::new(ErrorCodeAttribute {
                code,
                reason: b"no".to_vec(),
            }),
        ];
        if challenge {
            setters.push(Box::new(TextAttribute::new(ATTR_REALM, REALM.to_owned())));
            setters.push(Box::new(TextAttribute::new(
                ATTR_NONCE,
                "0123456789abcdef".to_owned(),
            )));
        }
        setters.push(Box::new(FINGERPRINT));
        let mut message = Message::new();
        message.build(&setters).expect("error response");
        message.raw
    }
}

fn permitted(allocation: &Allocation, now: Instant, peer: SocketAddr) -> bool {
    allocation
        .permissions
        .get(&peer.ip())
        .is_some_and(|expires| *expires > now)
}

/// Every XOR-PEER-ADDRESS of a message (IPv4; RFC 8656 §14.3, RFC 5389 §15.2).
fn xor_peer_addresses(message: &Message) -> Vec<SocketAddr> {
    message
        .attributes
        .0
        .iter()
        .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        .filter_map(|a| {
            let v = &a.value;
            (v.len() == 8 && v[1] == 1).then(|| {
                let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
                let ip = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ 0x2112_A442;
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
            })
        })
        .collect()
}

/// One endpoint of the simulated network: a socket at `host`, feeding either a lone allocation
/// (before the call) or the call's transport.
struct Node {
    host: SocketAddr,
    /// Set when the node reaches the server over a TCP/TLS connection instead of UDP.
    stream: Option<StreamLink>,
    allocation: Option<TurnAllocation>,
    transport: Option<WebRtcTransport>,
    events: Vec<WebRtcEvent>,
    received: Vec<Vec<u8>>,
}

impl Node {
    fn new(host: &str) -> Node {
        Node {
            host: addr(host),
            stream: None,
            allocation: None,
            transport: None,
            events: Vec::new(),
            received: Vec::new(),
        }
    }

    fn transport(&mut self) -> &mut WebRtcTransport {
        self.transport.as_mut().expect("a transport")
    }

    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        if let Some(transport) = self.transport.as_mut() {
            return transport.poll_transmit();
        }
        self.allocation.as_mut()?.poll_transmit()
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if let Some(transport) = self.transport.as_mut() {
            if let Some(media) = transport.handle_datagram(now, from, bytes) {
                self.received.push(media);
            }
        } else if let Some(allocation) = self.allocation.as_mut() {
            allocation.handle_datagram(now, from, bytes);
        }
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        if let Some(transport) = self.transport.as_mut() {
            return transport.poll_timeout();
        }
        self.allocation.as_mut()?.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(transport) = self.transport.as_mut() {
            transport.handle_timeout(now);
            while let Some(event) = transport.poll_event() {
                self.events.push(event);
            }
        } else if let Some(allocation) = self.allocation.as_mut() {
            allocation.handle_timeout(now);
        }
    }

    fn state(&self) -> Option<&TurnState> {
        match &self.transport {
            Some(transport) => transport.relay_state(),
            None => self.allocation.as_ref().map(TurnAllocation::state),
        }
    }

    fn connected(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, WebRtcEvent::DtlsConnected { .. }))
            && self
                .events
                .iter()
                .any(|e| matches!(e, WebRtcEvent::IceConnected { .. }))
    }
}

/// A node's connection to the TURN server: the bytes of each side's messages are cut in small
/// pieces and put together again by each end's [`TurnStreamFrames`].
#[derive(Default)]
struct StreamLink {
    /// The server's end.
    up: TurnStreamFrames,
    /// The node's end.
    down: TurnStreamFrames,
    frames_up: usize,
    frames_down: usize,
}

/// What a TCP connection might deliver at once: a few bytes (a message split across reads).
const STREAM_PIECE: usize = 7;

/// `a` and `b` and a TURN server; datagrams between `a.host` and `b.host` are dropped.
struct Net {
    now: Instant,
    turn: FakeTurn,
    a: Node,
    b: Node,
    /// Datagrams dropped between the hosts: the test's proof that nothing went direct.
    blocked: usize,
    /// A firewall lets the hosts send only to the TURN server's port (not to relayed addresses).
    only_turn_port: bool,
}

impl Net {
    fn new(mode: Mode) -> Net {
        Net {
            now: base(),
            turn: FakeTurn::new(mode),
            a: Node::new("10.0.0.1:40000"),
            b: Node::new("10.0.0.2:50000"),
            blocked: 0,
            only_turn_port: false,
        }
    }

    /// Delivers everything queued, then advances time to the next deadline (at most 50 ms, at
    /// least 1 ms). Returns false when the simulated `limit` has passed.
    fn step(&mut self, limit: Instant) -> bool {
        let mut wire: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)> = VecDeque::new();
        loop {
            for node in [&mut self.a, &mut self.b] {
                while let Some((to, bytes)) = node.poll_transmit() {
                    wire.push_back((node.host, to, bytes));
                }
            }
            let Some((from, to, bytes)) = wire.pop_front() else {
                break;
            };
            let from_host = from == self.a.host || from == self.b.host;
            let sender = if from == self.a.host {
                self.a.stream.as_mut()
            } else if from == self.b.host {
                self.b.stream.as_mut()
            } else {
                None
            };
            if to == self.turn.addr
                && let Some(link) = sender
            {
                for piece in bytes.chunks(STREAM_PIECE) {
                    link.up.push(piece);
                    while let Some(frame) = link.up.poll_frame().expect("the client frames") {
                        link.frames_up += 1;
                        wire.extend(self.turn.handle(self.now, from, to, &frame));
                    }
                }
                continue;
            }
            let receiver = if to == self.a.host {
                Some(&mut self.a)
            } else if to == self.b.host {
                Some(&mut self.b)
            } else {
                None
            };
            if from == self.turn.addr
                && let Some(node) = receiver.filter(|node| node.stream.is_some())
                && let Some(link) = node.stream.as_mut()
            {
                let mut frames = Vec::new();
                for piece in bytes.chunks(STREAM_PIECE) {
                    link.down.push(piece);
                    while let Some(frame) = link.down.poll_frame().expect("the server frames") {
                        frames.push(frame);
                    }
                }
                link.frames_down += frames.len();
                for frame in frames {
                    node.receive(self.now, from, &frame);
                }
                continue;
            }
            if self.only_turn_port && from_host && to != self.turn.addr {
                self.blocked += 1;
            } else if self.turn.serves(self.now, to) {
                wire.extend(self.turn.handle(self.now, from, to, &bytes));
            } else if (from == self.a.host && to == self.b.host)
                || (from == self.b.host && to == self.a.host)
            {
                self.blocked += 1;
            } else if to == self.a.host {
                self.a.receive(self.now, from, &bytes);
            } else if to == self.b.host {
                self.b.receive(self.now, from, &bytes);
            }
        }
        let cap = self.now + Duration::from_millis(50);
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map_or(cap, |at| at.clamp(self.now + Duration::from_millis(1), cap));
        self.now = next;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.now < limit
    }

    fn drive_until(&mut self, limit: Duration, done: impl Fn(&Net) -> bool) -> bool {
        let limit = self.now + limit;
        while !done(self) {
            if !self.step(limit) {
                return false;
            }
        }
        true
    }
}

fn allocated(state: Option<&TurnState>) -> bool {
    matches!(state, Some(TurnState::Allocated { .. }))
}

fn failed(state: Option<&TurnState>) -> Option<String> {
    match state {
        Some(TurnState::Failed(reason)) => Some(reason.clone()),
        _ => None,
    }
}

/// Starts an allocation on `node`'s socket and drives it until allocated.
fn allocate(net: &mut Net, which: char) {
    allocate_on(net, which, false);
}

/// Starts an allocation over `node`'s connection to the server and drives it until allocated.
fn allocate_over_stream(net: &mut Net, which: char) {
    allocate_on(net, which, true);
}

fn allocate_on(net: &mut Net, which: char, stream: bool) {
    let now = net.now;
    let node = if which == 'a' { &mut net.a } else { &mut net.b };
    let allocation = if stream {
        node.stream = Some(StreamLink::default());
        TurnAllocation::start_over_stream(now, server(PASSWORD), node.host)
    } else {
        TurnAllocation::start(now, server(PASSWORD), node.host)
    };
    node.allocation = Some(allocation.expect("allocation starts"));
    let ok = net.drive_until(Duration::from_secs(5), |net| {
        let node = if which == 'a' { &net.a } else { &net.b };
        allocated(node.state())
    });
    assert!(ok, "not allocated: {:?}", net.a.state());
}

/// Builds both transports (`a` controlling, DTLS client), hands each node's allocation (if
/// any) to its transport, exchanges the parameters as offer/answer would.
fn call(net: &mut Net) {
    let now = net.now;
    let identity = DtlsIdentity::generate().expect("identity");
    for (node, controlling) in [(&mut net.a, true), (&mut net.b, false)] {
        let mut transport =
            WebRtcTransport::with_identity(now, &[node.host], &identity, None, controlling)
                .expect("transport");
        if let Some(allocation) = node.allocation.take() {
            let sdp_candidate = allocation.candidate(node.host).expect("relay candidate");
            transport
                .attach_relay(now, allocation)
                .expect("relay attached");
            assert!(
                transport.local_candidates().contains(&sdp_candidate),
                "the candidate written ahead in SDP is the transport's: {sdp_candidate} in {:?}",
                transport.local_candidates()
            );
        }
        node.transport = Some(transport);
    }
    let params = |node: &mut Node| {
        let transport = node.transport();
        RemoteParams {
            credentials: transport.local_credentials().clone(),
            candidates: transport.local_candidates(),
            fingerprint: transport.fingerprint().clone(),
            ice_lite: false,
        }
    };
    let (a_params, b_params) = (params(&mut net.a), params(&mut net.b));
    net.b
        .transport()
        .set_remote(now, a_params, DtlsRole::Server, false)
        .expect("b set_remote");
    net.a
        .transport()
        .set_remote(now, b_params, DtlsRole::Client, true)
        .expect("a set_remote");
    let ok = net.drive_until(Duration::from_secs(15), |net| {
        net.a.connected() && net.b.connected()
    });
    assert!(
        ok,
        "not connected: a {:?}, b {:?}",
        net.a.events, net.b.events
    );
}

/// `count` RTP packets each way come out equal.
fn media_flows(net: &mut Net, count: u16) {
    net.a.received.clear();
    net.b.received.clear();
    let (mut sent_by_a, mut sent_by_b) = (Vec::new(), Vec::new());
    for seq in 1..=count {
        let from_a = rtp_packet(seq, format!("from a #{seq}").as_bytes());
        let from_b = rtp_packet(seq, format!("from b #{seq}").as_bytes());
        let now = net.now;
        net.a
            .transport()
            .send_media(now, &from_a, false)
            .expect("a sends");
        net.b
            .transport()
            .send_media(now, &from_b, false)
            .expect("b sends");
        sent_by_a.push(from_a);
        sent_by_b.push(from_b);
        net.step(now + Duration::from_secs(1));
    }
    assert_eq!(net.b.received, sent_by_a);
    assert_eq!(net.a.received, sent_by_b);
}

#[test]
fn one_side_relayed_connects_through_the_turn_server() {
    let mut net = Net::new(Mode::Normal);
    allocate(&mut net, 'a');
    let Some(TurnState::Allocated { relayed, mapped }) = net.a.state().cloned() else {
        panic!("allocated");
    };
    assert_eq!(relayed.ip(), net.turn.addr.ip());
    assert_eq!(mapped, Some(net.a.host), "XOR-MAPPED-ADDRESS read");
    assert!(net.turn.count(METHOD_ALLOCATE) == 2, "401, then signed");

    call(&mut net);
    let (local, remote) = net.a.transport().selected_pair().expect("a's pair");
    assert_eq!(local, format!("relay {relayed} udp"));
    assert_eq!(remote, format!("host {} udp", net.b.host));
    let (local, remote) = net.b.transport().selected_pair().expect("b's pair");
    assert_eq!(local, format!("host {} udp", net.b.host));
    assert!(remote.starts_with(&format!("relay {relayed}")), "{remote}");
    assert!(net.blocked > 0, "the direct checks were tried and dropped");
    assert!(net.turn.count(METHOD_CREATE_PERMISSION) >= 1);

    media_flows(&mut net, 50);
    assert!(
        net.turn.count(METHOD_CHANNEL_BIND) >= 1,
        "media moves to a channel"
    );
}

#[test]
fn both_sides_relayed_connect_relay_to_relay() {
    let mut net = Net::new(Mode::Normal);
    net.only_turn_port = true;
    allocate(&mut net, 'a');
    allocate(&mut net, 'b');
    call(&mut net);
    let (local, remote) = net.a.transport().selected_pair().expect("a's pair");
    assert!(
        local.starts_with("relay ") && remote.starts_with("relay "),
        "{local} / {remote}"
    );
    let (local, remote) = net.b.transport().selected_pair().expect("b's pair");
    assert!(
        local.starts_with("relay ") && remote.starts_with("relay "),
        "{local} / {remote}"
    );
    media_flows(&mut net, 20);
}

#[test]
fn without_permissions_nothing_is_relayed() {
    // The relay candidate without `attach_relay`: checks to it are not permitted, so the call
    // cannot connect — what the permission handling of `attach_relay` is for.
    let mut net = Net::new(Mode::Normal);
    allocate(&mut net, 'a');
    let now = net.now;
    let allocation = net.a.allocation.as_ref().expect("allocation");
    let relay_candidate = allocation.candidate(net.a.host).expect("candidate");
    let identity = DtlsIdentity::generate().expect("identity");
    let mut b = WebRtcTransport::with_identity(now, &[net.b.host], &identity, None, false)
        .expect("transport");
    let a = WebRtcTransport::with_identity(now, &[net.a.host], &identity, None, true)
        .expect("transport");
    b.set_remote(
        now,
        RemoteParams {
            credentials: a.local_credentials().clone(),
            candidates: vec![relay_candidate],
            fingerprint: a.fingerprint().clone(),
            ice_lite: false,
        },
        DtlsRole::Server,
        false,
    )
    .expect("set_remote");
    net.b.transport = Some(b);
    net.drive_until(Duration::from_secs(3), |_| false);
    assert!(net.turn.unpermitted > 0, "b's checks reached the relay");
}

#[test]
fn wrong_password_fails() {
    let mut net = Net::new(Mode::Normal);
    let now = net.now;
    net.a.allocation =
        Some(TurnAllocation::start(now, server("not the password"), net.a.host).expect("starts"));
    assert!(net.drive_until(Duration::from_secs(5), |net| {
        failed(net.a.state()).is_some()
    }));
    let reason = failed(net.a.state()).expect("failed");
    assert!(reason.contains("401"), "{reason}");
    assert_eq!(net.turn.count(METHOD_ALLOCATE), 2, "no retry loop");
    assert_eq!(net.a.poll_timeout(), None);
}

#[test]
fn unauthorized_twice_fails() {
    let mut net = Net::new(Mode::AlwaysUnauthorized);
    let now = net.now;
    net.a.allocation =
        Some(TurnAllocation::start(now, server(PASSWORD), net.a.host).expect("starts"));
    assert!(net.drive_until(Duration::from_secs(5), |net| {
        failed(net.a.state()).is_some()
    }));
    assert_eq!(net.turn.count(METHOD_ALLOCATE), 2);
    assert!(
        net.a
            .allocation
            .as_ref()
            .expect("kept")
            .candidate(net.a.host)
            .is_none()
    );
}

#[test]
fn no_answer_fails_after_retransmissions() {
    let mut net = Net::new(Mode::Silent);
    let now = net.now;
    net.a.allocation =
        Some(TurnAllocation::start(now, server(PASSWORD), net.a.host).expect("starts"));
    let mut sent = 0;
    let limit = now + Duration::from_secs(30);
    while failed(net.a.state()).is_none() && net.now < limit {
        while net.a.poll_transmit().is_some() {
            sent += 1;
        }
        net.step(limit);
    }
    let reason = failed(net.a.state()).expect("failed");
    assert!(reason.contains("no answer"), "{reason}");
    assert!(sent >= 5, "retransmitted ({sent} sent)");
    let took = net.now - now;
    assert!(
        took > Duration::from_secs(3) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert_eq!(net.a.poll_timeout(), None);
}

#[test]
fn idle_allocation_is_kept_alive_by_refreshes() {
    let mut net = Net::new(Mode::Normal);
    net.turn.lifetime = Duration::from_secs(120);
    allocate(&mut net, 'a');
    let start = net.now;
    net.drive_until(Duration::from_secs(30 * 60), |_| false);
    assert!(net.now - start >= Duration::from_secs(30 * 60));
    assert!(
        allocated(net.a.state()),
        "still allocated: {:?}",
        net.a.state()
    );
    assert!(
        net.turn.allocations.contains_key(&net.a.host),
        "the server still has it"
    );
    let refreshes = net.turn.count(METHOD_REFRESH);
    assert!((29..=40).contains(&refreshes), "{refreshes} refreshes");
}

#[test]
fn refused_refresh_fails_the_allocation() {
    let mut net = Net::new(Mode::Normal);
    allocate(&mut net, 'a');
    // The server forgets the allocation (e.g. restarted): the next refresh gets 437.
    net.turn.allocations.clear();
    assert!(net.drive_until(Duration::from_secs(5 * 60), |net| {
        failed(net.a.state()).is_some()
    }));
    let reason = failed(net.a.state()).expect("failed");
    assert!(reason.contains("437"), "{reason}");
}

#[test]
fn garbage_from_the_server_is_consumed_without_harm() {
    let mut net = Net::new(Mode::Normal);
    allocate(&mut net, 'a');
    let now = net.now;
    let server = net.turn.addr;
    let allocation = net.a.allocation.as_mut().expect("allocation");
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0x40, 0x00, 0xff, 0xff],
        vec![0x01, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42],
    ];
    let mut header = vec![0x01, 0x13, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42];
    header.extend_from_slice(&[7; 12]);
    header.extend_from_slice(&[0x00, 0x12, 0x00, 0x40]);
    garbage.push(header);
    for bytes in &garbage {
        assert!(allocation.handle_datagram(now, server, bytes));
    }
    assert!(!allocation.handle_datagram(now, net.b.host, &[0, 1]));
    assert!(allocated(Some(allocation.state())));
}

#[test]
fn attach_needs_an_allocation_and_debug_hides_the_password() {
    let now = base();
    let host = addr("10.0.0.1:40000");
    let allocation = TurnAllocation::start(now, server(PASSWORD), host).expect("starts");
    assert!(!format!("{:?}", server(PASSWORD)).contains(PASSWORD));
    assert!(!format!("{allocation:?}").contains(PASSWORD));
    let mut transport = WebRtcTransport::new(now, &[host], true).expect("transport");
    assert!(matches!(
        transport.attach_relay(now, allocation),
        Err(WebRtcError::Turn(_))
    ));
    let v6 = TurnAllocation::start(now, server(PASSWORD), addr("[::1]:40000"));
    assert!(matches!(v6, Err(WebRtcError::Turn(_))));
}

#[test]
fn stale_nonce_on_refresh_and_permission_is_retried() {
    let mut net = Net::new(Mode::Normal);
    net.turn.lifetime = Duration::from_secs(120);
    allocate(&mut net, 'a');
    net.turn.stale_once = vec![METHOD_REFRESH, METHOD_CREATE_PERMISSION];
    call(&mut net);
    media_flows(&mut net, 5);
    assert_eq!(
        net.turn.stale_once,
        vec![METHOD_REFRESH],
        "permission answered 438"
    );
    // Over several lifetimes: the refresh answered 438 was signed again at once.
    net.drive_until(Duration::from_secs(10 * 60), |_| false);
    assert!(net.turn.stale_once.is_empty(), "refresh answered 438");
    assert!(net.turn.allocations.contains_key(&net.a.host));
    assert!(matches!(
        net.a.transport().relay_state(),
        Some(TurnState::Allocated { .. })
    ));
}

#[test]
fn mutated_server_messages_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut net = Net::new(Mode::Normal);
    allocate(&mut net, 'a');
    let now = net.now;
    let Some(TurnState::Allocated { relayed, .. }) = net.a.state().cloned() else {
        panic!("allocated");
    };
    // Valid messages of each kind the server sends, as seeds.
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    let allocation = net
        .turn
        .allocations
        .get_mut(&net.a.host)
        .expect("allocation");
    allocation
        .permissions
        .insert(net.b.host.ip(), now + PERMISSION_LIFETIME);
    seeds.extend(
        net.turn
            .handle(now, net.b.host, relayed, b"peer data")
            .into_iter()
            .map(|(_, _, bytes)| bytes),
    );
    let allocation = net
        .turn
        .allocations
        .get_mut(&net.a.host)
        .expect("allocation");
    allocation.channels.insert(0x4000, net.b.host);
    seeds.extend(
        net.turn
            .handle(now, net.b.host, relayed, b"channel data")
            .into_iter()
            .map(|(_, _, bytes)| bytes),
    );
    let mut request = Message::new();
    request
        .build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_REFRESH, CLASS_REQUEST)),
        ])
        .expect("request");
    seeds.push(
        net.turn
            .success(&request, vec![Box::new(Lifetime(Duration::from_secs(60)))]),
    );
    seeds.push(net.turn.error(&request, ErrorCode(438), true));
    assert_eq!(seeds.len(), 4);
    let server = net.turn.addr;
    let allocation = net.a.allocation.as_mut().expect("allocation");
    for round in 0..20_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..rng.gen_range(1..4) {
            let at = rng.gen_range(0..bytes.len());
            bytes[at] = rng.r#gen();
        }
        bytes.truncate(rng.gen_range(0..=bytes.len()));
        assert!(allocation.handle_datagram(now, server, &bytes));
        while allocation.poll_transmit().is_some() {}
        while allocation.poll_received().is_some() {}
    }
}

#[test]
fn an_allocation_over_a_stream_relays_a_call() {
    let mut net = Net::new(Mode::Normal);
    net.only_turn_port = true;
    allocate_over_stream(&mut net, 'a');
    allocate(&mut net, 'b');
    let allocation = net.a.allocation.as_ref().expect("a's allocation");
    assert!(allocation.over_stream());
    assert_eq!(
        net.turn.count(METHOD_ALLOCATE),
        4,
        "401 then signed, for each side: nothing retransmitted"
    );
    call(&mut net);
    let (local, remote) = net.a.transport().selected_pair().expect("a's pair");
    assert!(
        local.starts_with("relay ") && remote.starts_with("relay "),
        "{local} / {remote}"
    );
    media_flows(&mut net, 30);
    let link = net.a.stream.as_ref().expect("a's link");
    // Checks, permissions, channel binding and 30 packets went through the connection.
    assert!(link.frames_up > 30, "{} frames up", link.frames_up);
    assert!(link.frames_down > 30, "{} frames down", link.frames_down);
    assert!(net.turn.count(METHOD_CHANNEL_BIND) >= 1);
    assert_eq!(link.up.pending(), 0);
    assert_eq!(link.down.pending(), 0);
}

#[test]
fn both_sides_over_streams_stay_allocated_while_idle() {
    let mut net = Net::new(Mode::Normal);
    net.turn.lifetime = Duration::from_secs(120);
    allocate_over_stream(&mut net, 'a');
    allocate_over_stream(&mut net, 'b');
    net.drive_until(Duration::from_secs(10 * 60), |_| false);
    assert!(allocated(net.a.state()) && allocated(net.b.state()));
    assert!(net.turn.count(METHOD_REFRESH) >= 18);
    call(&mut net);
    media_flows(&mut net, 10);
}

#[test]
fn no_answer_over_a_stream_is_sent_once_and_fails_at_ti() {
    let mut net = Net::new(Mode::Silent);
    let now = net.now;
    net.a.stream = Some(StreamLink::default());
    net.a.allocation =
        Some(TurnAllocation::start_over_stream(now, server(PASSWORD), net.a.host).expect("starts"));
    let mut sent = 0;
    let limit = now + Duration::from_secs(60);
    while failed(net.a.state()).is_none() && net.now < limit {
        while net.a.poll_transmit().is_some() {
            sent += 1;
        }
        net.step(limit);
    }
    let reason = failed(net.a.state()).expect("failed");
    assert!(reason.contains("no answer"), "{reason}");
    assert_eq!(sent, 1, "a reliable stream is not retransmitted on");
    let took = net.now - now;
    assert!(
        took >= Duration::from_millis(39_500) && took < Duration::from_secs(41),
        "{took:?}"
    );
}

/// A STUN Binding request with one attribute (8 bytes after the 20-byte header).
fn stun_message(id: u8) -> Vec<u8> {
    let mut message = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    message.extend_from_slice(&[id; 12]);
    message.extend_from_slice(&[0x80, 0x22, 0x00, 0x04, b'h', b'a', b'!', b'!']);
    message
}

fn channel_data(channel: u16, data: &[u8]) -> Vec<u8> {
    let mut message = ChannelData {
        data: data.to_vec(),
        number: ChannelNumber(channel),
        ..ChannelData::default()
    };
    message.encode();
    message.raw
}

fn frames_of(frames: &mut TurnStreamFrames) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = frames.poll_frame().expect("well framed") {
        out.push(frame);
    }
    out
}

#[test]
fn stream_frames_split_concatenated_messages() {
    let messages = vec![
        stun_message(1),
        channel_data(0x4000, b"odd"),
        channel_data(0x4fff, b""),
        channel_data(0x4001, &[9; 160]),
        stun_message(2),
    ];
    assert_eq!(messages[1].len(), 8, "3 bytes of data padded to 4");
    let stream: Vec<u8> = messages.concat();
    let mut frames = TurnStreamFrames::new();
    frames.push(&stream);
    assert_eq!(frames_of(&mut frames), messages);
    assert_eq!(frames.pending(), 0);
    // The padding stays in the frame; the ChannelData decoder ignores it.
    let mut decoded = ChannelData {
        raw: messages[1].clone(),
        ..ChannelData::default()
    };
    decoded.decode().expect("decodes");
    assert_eq!(decoded.data, b"odd");
}

#[test]
fn stream_frames_wait_for_partial_messages() {
    let messages = [
        stun_message(3),
        channel_data(0x4002, b"hello"),
        stun_message(4),
    ];
    let stream: Vec<u8> = messages.concat();
    for piece in 1..=stream.len() {
        let mut frames = TurnStreamFrames::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            frames.push(chunk);
            out.extend(frames_of(&mut frames));
        }
        assert_eq!(out, messages, "pieces of {piece} bytes");
    }
    // Byte by byte: nothing comes out before the last byte of a message is in.
    let mut frames = TurnStreamFrames::new();
    let first = &messages[0];
    for byte in &first[..first.len() - 1] {
        frames.push(&[*byte]);
        assert_eq!(frames.poll_frame(), Ok(None));
    }
    frames.push(&first[first.len() - 1..]);
    assert_eq!(frames.poll_frame(), Ok(Some(first.clone())));
    assert_eq!(frames.poll_frame(), Ok(None));
}

#[test]
fn stream_frames_refuse_garbage_for_good() {
    let mut no_cookie = stun_message(5);
    no_cookie[4] = 0;
    let mut unaligned = stun_message(6);
    unaligned[3] = 6;
    let cases: [(Vec<u8>, TurnFramingError); 4] = [
        // Bare RTP.
        (rtp_packet(1, b"x"), TurnFramingError::UnknownMessage(0x80)),
        (no_cookie, TurnFramingError::NoMagicCookie),
        (unaligned, TurnFramingError::UnalignedStun(6)),
        (
            vec![0x50, 0x00, 0x00, 0x04, 1, 2, 3, 4],
            TurnFramingError::ReservedChannel(0x5000),
        ),
    ];
    for (garbage, error) in cases {
        let mut frames = TurnStreamFrames::new();
        let good = stun_message(7);
        frames.push(&good);
        frames.push(&garbage);
        assert_eq!(frames.poll_frame(), Ok(Some(good)));
        assert_eq!(frames.poll_frame(), Err(error.clone()));
        // Out of step for good: a valid message after it is not taken.
        frames.push(&stun_message(8));
        assert_eq!(frames.poll_frame(), Err(error));
        assert_eq!(frames.pending(), 0);
    }
}

#[test]
fn random_stream_bytes_never_panic() {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x7c9);
    let (mut frames_seen, mut errors) = (0, 0);
    for _ in 0..2000 {
        let mut stream = Vec::new();
        // Valid messages with a random mutation, or pure noise.
        for _ in 0..rng.gen_range(0..4) {
            stream.extend(channel_data(0x4000, &vec![1; rng.gen_range(0..40)]));
            stream.extend(stun_message(rng.r#gen()));
        }
        if !stream.is_empty() && rng.gen_bool(0.7) {
            let at = rng.gen_range(0..stream.len());
            stream[at] = rng.r#gen();
        }
        if rng.gen_bool(0.2) {
            stream = (0..rng.gen_range(0..200)).map(|_| rng.r#gen()).collect();
        }
        let mut frames = TurnStreamFrames::new();
        let piece = rng.gen_range(1..64);
        for chunk in stream.chunks(piece) {
            frames.push(chunk);
            loop {
                match frames.poll_frame() {
                    Ok(Some(frame)) => {
                        assert!(frame.len() >= 4 && frame.len() % 4 == 0);
                        frames_seen += 1;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
        }
        // A held-back tail never exceeds one largest message.
        assert!(frames.pending() <= 20 + 65_535);
    }
    assert!(
        frames_seen > 1000 && errors > 100,
        "{frames_seen} frames, {errors} errors"
    );
}
