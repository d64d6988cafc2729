//! TURN relay candidates (RFC 8656, long-term credentials), for networks where UDP between the
//! peers is blocked. The server is reached over UDP from the media socket, or over a TCP or TLS
//! connection ([`TurnAllocation::start_over_stream`], [`TurnStreamFrames`]) where outgoing UDP
//! is blocked too; the relay itself is UDP either way.
//!
//! The SDP is written before the call's transport exists, so the allocation is made ahead, on the
//! media socket, and handed to the transport with [`WebRtcTransport::attach_relay`]:
//!
//! 1. [`TurnAllocation::start`] with the server and the socket's address; feed it every datagram
//!    from the server ([`TurnAllocation::handle_datagram`]), drive [`TurnAllocation::poll_timeout`]
//!    / [`TurnAllocation::handle_timeout`] (retransmissions, refreshes: it stays allocated while
//!    idle) and send [`TurnAllocation::poll_transmit`] output from the same socket.
//!    Over a stream, the driver writes each datagram of [`TurnAllocation::poll_transmit`] to the
//!    connection as it is (STUN messages are 4-byte aligned, ChannelData goes out padded: RFC
//!    8656 §12.5), and splits what it reads with [`TurnStreamFrames`], offering each message as a
//!    datagram from [`TurnAllocation::server`].
//! 2. Once [`TurnState::Allocated`], put [`TurnAllocation::candidate`] in the SDP.
//! 3. Attach it to the call's transport, which then drives it (the driver feeds the transport
//!    every datagram, the server's included). [`WebRtcTransport::detach_relay`] gives it back
//!    after the call: the server keeps one allocation per socket, so reuse it (or
//!    [`TurnAllocation::close`] it) rather than allocating again from the same socket.
//!
//! The TURN client is `rtc-turn`'s sans-IO one (transactions, 401 + nonce/realm retry, refreshes,
//! permissions, channel bindings); this wrapper adds the state the engine needs, failure on
//! timeouts and refused refreshes, and routing of peer data.
//!
//! [`WebRtcTransport::attach_relay`]: super::WebRtcTransport::attach_relay
//! [`WebRtcTransport::detach_relay`]: super::WebRtcTransport::detach_relay

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc_ice::candidate::candidate_relay::CandidateRelayConfig;
use rtc_shared::{TransportContext, TransportMessage, TransportProtocol};
use rtc_stun::error_code::{CODE_STALE_NONCE, ErrorCodeAttribute};
use rtc_stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter as _, METHOD_ALLOCATE,
    METHOD_REFRESH, Message, MessageType, TransactionId,
};
use rtc_stun::xoraddr::XorMappedAddress;
use rtc_turn::client::{Client, ClientConfig, Event};
use sansio::Protocol;

use super::{WebRtcError, udp_candidate_config};

/// Refresh at least this often (RFC 8656 lets the server grant 10 minutes; refreshing every
/// minute also keeps a NAT binding to the server open and recovers from a stale nonce in time).
const REFRESH_CAP: Duration = Duration::from_secs(60);
/// First retransmission timeout; `rtc-turn` doubles it up to 1.6 s, 7 sends (~8 s) in all.
const RTO_MS: u64 = 250;
/// Stale-nonce (438) answers retried at once for one refresh or permission.
const STALE_RETRIES: u8 = 2;

/// A TURN server and the long-term credentials for it.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServer {
    pub addr: SocketAddr,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer")
            .field("addr", &self.addr)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnState {
    Allocating,
    /// `relayed`: where peers send (the relay candidate); `mapped`: our address as the server
    /// saw it (a server-reflexive address), when it said.
    Allocated {
        relayed: SocketAddr,
        mapped: Option<SocketAddr>,
    },
    /// Refused (e.g. wrong credentials), unanswered, or lost (refresh refused or unanswered).
    /// Final: start a new allocation.
    Failed(String),
}

/// One TURN allocation from one local UDP socket (or one connection to the server). See the module
/// docs for the driving contract.
pub struct TurnAllocation {
    client: Client,
    server: SocketAddr,
    local: SocketAddr,
    /// How the server is reached: UDP, or TCP for a TCP or TLS connection (no retransmissions).
    protocol: TransportProtocol,
    state: TurnState,
    /// XOR-MAPPED-ADDRESS of the Allocate success, read before `client` consumes it.
    mapped: Option<SocketAddr>,
    /// Refresh requests in flight: a timeout or refusal of one loses the allocation.
    refreshes: HashSet<TransactionId>,
    stale_refreshes: u8,
    /// CreatePermission requests in flight and the peer each is for, to retry a stale nonce.
    permissions: HashMap<TransactionId, (SocketAddr, u8)>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Peer datagrams unwrapped from Data indications / ChannelData: `(peer, bytes)`.
    received: VecDeque<(SocketAddr, Vec<u8>)>,
}

impl std::fmt::Debug for TurnAllocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnAllocation")
            .field("server", &self.server)
            .field("local", &self.local)
            .field("protocol", &self.protocol)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl TurnAllocation {
    /// Sends the first Allocate (unauthenticated; the server's 401 gives realm and nonce for the
    /// signed one). `local`: the socket's address (its IP family must be the server's).
    pub fn start(
        now: Instant,
        server: TurnServer,
        local: SocketAddr,
    ) -> Result<TurnAllocation, WebRtcError> {
        Self::start_on(now, server, local, TransportProtocol::UDP)
    }

    /// Like [`Self::start`], for a server reached over a TCP or TLS connection (RFC 8656 §3.1;
    /// the relay is still UDP). `local`: the connection's local address. Requests are sent once,
    /// not retransmitted (the stream is reliable), and time out after 39.5 s (RFC 8489 Ti).
    pub fn start_over_stream(
        now: Instant,
        server: TurnServer,
        local: SocketAddr,
    ) -> Result<TurnAllocation, WebRtcError> {
        Self::start_on(now, server, local, TransportProtocol::TCP)
    }

    fn start_on(
        now: Instant,
        server: TurnServer,
        local: SocketAddr,
        protocol: TransportProtocol,
    ) -> Result<TurnAllocation, WebRtcError> {
        if server.addr.is_ipv4() != local.is_ipv4() {
            return Err(WebRtcError::Turn(format!(
                "server {} and socket {local} are not of the same IP family",
                server.addr
            )));
        }
        let provider =
            rtc_ice::crypto::default_provider().map_err(|e| WebRtcError::Crypto(e.to_string()))?;
        let config = ClientConfig {
            // A literal address: resolving it reads no DNS.
            turn_serv_addr: server.addr.to_string(),
            local_addr: local,
            transport_protocol: protocol,
            username: server.username,
            password: server.password,
            software: "homeagent".to_owned(),
            rto_in_ms: RTO_MS,
            allocation_refresh_interval_cap: Some(REFRESH_CAP),
            ..ClientConfig::default()
        };
        let mut client =
            Client::new(config, provider).map_err(|e| WebRtcError::Turn(e.to_string()))?;
        client
            .allocate(now)
            .map_err(|e| WebRtcError::Turn(e.to_string()))?;
        let mut allocation = TurnAllocation {
            client,
            server: server.addr,
            local,
            protocol,
            state: TurnState::Allocating,
            mapped: None,
            refreshes: HashSet::new(),
            stale_refreshes: 0,
            permissions: HashMap::new(),
            transmits: VecDeque::new(),
            received: VecDeque::new(),
        };
        allocation.process();
        Ok(allocation)
    }

    /// Every datagram of the socket may be offered: returns true when it came from the TURN
    /// server (and is consumed), false when it is someone else's.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> bool {
        if from != self.server {
            return false;
        }
        if matches!(self.state, TurnState::Failed(_)) {
            return true;
        }
        let stale = self.inspect_response(bytes);
        let message = TransportMessage {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: self.protocol,
            },
            message: BytesMut::from(bytes),
        };
        if let Err(e) = self.client.handle_read(message) {
            tracing::debug!("TURN message from {from}: {e}");
        }
        match stale {
            Some(Stale::Refresh) => {
                // The client took the new nonce from the 438; sign the refresh again with it.
                if let Err(e) = self.client.refresh_allocations(now) {
                    tracing::debug!("TURN refresh after a stale nonce: {e}");
                }
            }
            Some(Stale::Permission(peer, tries)) => self.request_permission(now, peer, tries),
            None => {}
        }
        self.process();
        true
    }

    /// The next datagram to send from the socket: `(to, bytes)` (always to the TURN server).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.collect_transmits();
        self.transmits.pop_front()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if matches!(self.state, TurnState::Failed(_)) {
            return None;
        }
        self.client.poll_timeout()
    }

    /// Retransmits requests, refreshes the allocation and the permissions when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, TurnState::Failed(_)) {
            return;
        }
        if let Err(e) = self.client.handle_timeout(now) {
            tracing::debug!("TURN timeout: {e}");
        }
        self.process();
    }

    pub fn state(&self) -> &TurnState {
        &self.state
    }

    /// The relayed address, while allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        match self.state {
            TurnState::Allocated { relayed, .. } => Some(relayed),
            _ => None,
        }
    }

    /// The TURN server's address: datagrams from it belong to [`Self::handle_datagram`].
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Whether the server is reached over a stream ([`Self::start_over_stream`]).
    pub fn over_stream(&self) -> bool {
        self.protocol != TransportProtocol::UDP
    }

    /// The `a=candidate` value of the relay candidate once allocated (without `candidate:`),
    /// with `host` (the socket's address, or the mapped one) as `raddr`/`rport`:
    /// `"… 1 udp 16777215 10.0.1.1 49152 typ relay raddr 10.0.1.2 rport 40000"`.
    pub fn candidate(&self, host: SocketAddr) -> Option<String> {
        let relayed = self.relayed()?;
        relay_candidate(relayed, host)
            .inspect_err(|e| tracing::debug!("relay candidate {relayed}: {e}"))
            .ok()
            .map(|candidate| candidate.marshal())
    }

    /// Releases the allocation at the server (a Refresh with lifetime 0); drain
    /// [`Self::poll_transmit`] once more. The allocation is unusable afterwards.
    pub fn close(&mut self, now: Instant) {
        if let Some(relayed) = self.relayed()
            && let Err(e) = self.client.relay(relayed).and_then(|mut r| r.close(now))
        {
            tracing::debug!("TURN close: {e}");
        }
        self.collect_transmits();
        self.refreshes.clear();
        self.state = TurnState::Failed("closed".to_owned());
    }

    /// Asks the server to let `peer`'s IP send to and receive from the relayed address.
    pub(crate) fn permit(&mut self, now: Instant, peer: SocketAddr) {
        if peer.is_ipv4() == self.relayed().is_some_and(|relayed| relayed.is_ipv4()) {
            self.request_permission(now, peer, 0);
            self.process();
        }
    }

    /// Sends `bytes` to `peer` through the relay (a Send indication, or ChannelData once the
    /// channel is bound). Dropped while the peer's permission is still being created.
    pub(crate) fn send(&mut self, now: Instant, peer: SocketAddr, bytes: &[u8]) {
        let Some(relayed) = self.relayed() else {
            return;
        };
        if let Err(e) = self
            .client
            .relay(relayed)
            .and_then(|mut relay| relay.send_to(now, bytes, peer))
        {
            tracing::trace!("TURN send to {peer} dropped: {e}");
        }
    }

    /// The next peer datagram that came through the relay: `(peer, bytes)`.
    pub(crate) fn poll_received(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.received.pop_front()
    }

    fn request_permission(&mut self, now: Instant, peer: SocketAddr, tries: u8) {
        let Some(relayed) = self.relayed() else {
            return;
        };
        match self
            .client
            .relay(relayed)
            .and_then(|mut relay| relay.create_permission(now, peer))
        {
            Ok(Some(id)) => {
                self.permissions.insert(id, (peer, tries));
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("TURN permission for {peer}: {e}"),
        }
    }

    /// Reads what `rtc-turn` does not report: the mapped address of the Allocate success, and
    /// why a refresh or permission was refused (a stale nonce is retried, anything else on a
    /// refresh loses the allocation).
    fn inspect_response(&mut self, bytes: &[u8]) -> Option<Stale> {
        let mut message = Message::new();
        message.raw = bytes.to_vec();
        message.decode().ok()?;
        let id = message.transaction_id;
        match (message.typ.method, message.typ.class) {
            (METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE) => {
                let mut mapped = XorMappedAddress::default();
                if mapped.get_from(&message).is_ok() {
                    self.mapped = Some(SocketAddr::new(mapped.ip, mapped.port));
                }
                None
            }
            (METHOD_REFRESH, CLASS_SUCCESS_RESPONSE) => {
                self.refreshes.remove(&id);
                self.stale_refreshes = 0;
                None
            }
            (METHOD_REFRESH, CLASS_ERROR_RESPONSE) if self.refreshes.remove(&id) => {
                let mut code = ErrorCodeAttribute::default();
                let stale = code.get_from(&message).is_ok() && code.code == CODE_STALE_NONCE;
                if stale && self.stale_refreshes < STALE_RETRIES {
                    self.stale_refreshes += 1;
                    Some(Stale::Refresh)
                } else {
                    self.fail(format!("allocation refresh refused ({code})"));
                    None
                }
            }
            (_, CLASS_ERROR_RESPONSE) => {
                let (peer, tries) = self.permissions.remove(&id)?;
                let mut code = ErrorCodeAttribute::default();
                let stale = code.get_from(&message).is_ok() && code.code == CODE_STALE_NONCE;
                (stale && tries < STALE_RETRIES).then_some(Stale::Permission(peer, tries + 1))
            }
            (_, CLASS_SUCCESS_RESPONSE) => {
                self.permissions.remove(&id);
                None
            }
            _ => None,
        }
    }

    /// Drains the client's events into our state.
    fn process(&mut self) {
        while let Some(event) = self.client.poll_event() {
            match event {
                Event::AllocateResponse(_, relayed) if self.state == TurnState::Allocating => {
                    tracing::debug!("TURN allocation {relayed} from {}", self.server);
                    self.state = TurnState::Allocated {
                        relayed,
                        mapped: self.mapped,
                    };
                }
                Event::AllocateError(_, e) => self.fail(format!("allocation refused: {e}")),
                Event::TransactionTimeout(id) => {
                    if self.state == TurnState::Allocating {
                        self.fail(format!("no answer from the TURN server {}", self.server));
                    } else if self.refreshes.remove(&id) {
                        self.fail("allocation refresh unanswered".to_owned());
                    } else {
                        self.permissions.remove(&id);
                    }
                }
                Event::DataIndicationOrChannelData(_, peer, bytes) if self.relayed().is_some() => {
                    self.received.push_back((peer, bytes.to_vec()));
                }
                Event::CreatePermissionError(_, e) => {
                    tracing::debug!("TURN permission refused: {e}");
                }
                _ => {}
            }
        }
        self.collect_transmits();
    }

    /// Moves the client's datagrams to our queue, noting the Refresh requests among them.
    fn collect_transmits(&mut self) {
        while let Some(message) = self.client.poll_write() {
            let bytes = message.message.to_vec();
            if let Some(id) = refresh_request_id(&bytes) {
                self.refreshes.insert(id);
            }
            self.transmits
                .push_back((message.transport.peer_addr, bytes));
        }
    }

    fn fail(&mut self, reason: String) {
        if !matches!(self.state, TurnState::Failed(_)) {
            tracing::warn!("TURN allocation at {} failed: {reason}", self.server);
            self.state = TurnState::Failed(reason);
            self.received.clear();
        }
    }
}

enum Stale {
    Refresh,
    Permission(SocketAddr, u8),
}

/// The transaction id of a Refresh request, read from the STUN header (RFC 5389 §6).
fn refresh_request_id(bytes: &[u8]) -> Option<TransactionId> {
    let typ = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
    if typ != MessageType::new(METHOD_REFRESH, CLASS_REQUEST).value() {
        return None;
    }
    let id: [u8; 12] = bytes.get(8..20)?.try_into().ok()?;
    Some(TransactionId(id))
}

pub(super) fn relay_candidate(
    relayed: SocketAddr,
    base: SocketAddr,
) -> Result<rtc_ice::candidate::Candidate, rtc_shared::error::Error> {
    CandidateRelayConfig {
        base_config: udp_candidate_config(relayed),
        rel_addr: base.ip().to_string(),
        rel_port: base.port(),
        url: None,
    }
    .new_candidate_relay()
}

/// Splits the bytes read from a TCP or TLS connection to a TURN server into its messages: STUN
/// messages (20-byte header with the length of what follows, the magic cookie) and ChannelData
/// messages (4-byte header, data padded to a multiple of 4: RFC 8656 §12.5), back to back.
///
/// [`Self::push`] what was read, then take [`Self::poll_frame`] until `Ok(None)`. Each frame is
/// one "datagram" for [`TurnAllocation::handle_datagram`] (ChannelData with its padding, which
/// the decoder ignores). Anything else on the stream leaves it out of step: an error, final, and
/// the connection must be closed.
#[derive(Debug, Default)]
pub struct TurnStreamFrames {
    buffer: Vec<u8>,
    broken: Option<TurnFramingError>,
}

/// The stream from the TURN server holds something that is neither STUN nor ChannelData.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnFramingError {
    #[error("neither STUN nor ChannelData on the TURN stream (first byte {0:#04x})")]
    UnknownMessage(u8),
    #[error("STUN message on the TURN stream without the magic cookie")]
    NoMagicCookie,
    #[error("STUN message on the TURN stream with a length of {0}, not a multiple of 4")]
    UnalignedStun(u16),
    #[error("ChannelData on the TURN stream with the reserved channel number {0:#06x}")]
    ReservedChannel(u16),
}

/// STUN header: type, length, magic cookie, transaction id (RFC 8489 §5).
const STUN_HEADER: usize = 20;
/// What of it gives the length: type, length, magic cookie.
const STUN_PREFIX: usize = 8;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// ChannelData header: channel number, length (RFC 8656 §12.4).
const CHANNEL_DATA_HEADER: usize = 4;

impl TurnStreamFrames {
    pub fn new() -> TurnStreamFrames {
        TurnStreamFrames::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.broken.is_none() {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// The next complete message, or `Ok(None)` until more bytes are pushed.
    pub fn poll_frame(&mut self) -> Result<Option<Vec<u8>>, TurnFramingError> {
        if let Some(error) = &self.broken {
            return Err(error.clone());
        }
        match self.frame_length() {
            Ok(Some(length)) if length <= self.buffer.len() => {
                Ok(Some(self.buffer.drain(..length).collect()))
            }
            Ok(_) => Ok(None),
            Err(error) => {
                self.buffer.clear();
                self.broken = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Bytes received but not yet part of a complete message.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// The length of the message at the front, once its header is in.
    fn frame_length(&self) -> Result<Option<usize>, TurnFramingError> {
        let Some(&first) = self.buffer.first() else {
            return Ok(None);
        };
        match first >> 6 {
            // STUN: the two most significant bits are 0 (RFC 8489 §5).
            0b00 => {
                let Some([_, _, high, low, cookie @ ..]) = self.buffer.get(..STUN_PREFIX) else {
                    return Ok(None);
                };
                let length = u16::from_be_bytes([*high, *low]);
                if *cookie != MAGIC_COOKIE {
                    return Err(TurnFramingError::NoMagicCookie);
                }
                if length % 4 != 0 {
                    return Err(TurnFramingError::UnalignedStun(length));
                }
                // The transaction id may still be on its way: the length covers it.
                Ok(Some(STUN_HEADER + usize::from(length)))
            }
            // ChannelData: channel numbers 0x4000-0x4FFF, 0x5000-0x7FFF reserved.
            0b01 => {
                let Some(&[channel_high, channel_low, high, low]) =
                    self.buffer.get(..CHANNEL_DATA_HEADER)
                else {
                    return Ok(None);
                };
                let channel = u16::from_be_bytes([channel_high, channel_low]);
                if channel > 0x4fff {
                    return Err(TurnFramingError::ReservedChannel(channel));
                }
                let length = usize::from(u16::from_be_bytes([high, low]));
                Ok(Some(CHANNEL_DATA_HEADER + length.next_multiple_of(4)))
            }
            _ => Err(TurnFramingError::UnknownMessage(first)),
        }
    }
}
