//! WebRTC media transport for one audio stream with rtcp-mux, as a browser expects it: ICE
//! (RFC 8445, full agent, host and server-reflexive candidates, and relay candidates through a TURN
//! allocation: [`TurnAllocation`], [`WebRtcTransport::attach_relay`]), DTLS 1.2 (RFC 6347) keying
//! SRTP (RFC 5764), and SRTP/SRTCP with the exported keys ([`crate::srtp::SrtpTransform`]).
//!
//! Sans-IO, like the rest of the crate: the driver owns the UDP socket and the timer.
//!
//! 1. [`WebRtcTransport::new`] with the socket's address(es); put [`local_credentials`],
//!    [`local_candidates`] and [`fingerprint`] in the local SDP (`a=setup` is the caller's).
//! 2. [`set_remote`] with the peer's ufrag/pwd, candidates and fingerprint, and the DTLS role
//!    from `a=setup`.
//! 3. Feed every datagram of the media socket to [`handle_datagram`] (STUN and DTLS are consumed,
//!    clear RTP/RTCP comes back), call [`handle_timeout`] at [`poll_timeout`], and after each of
//!    these calls drain [`poll_transmit`] and [`poll_event`].
//! 4. Once [`WebRtcEvent::DtlsConnected`] came, [`send_media`] protects and queues packets.
//!
//! The cryptographic randomness (ICE credentials, tie-breaker, certificate key, DTLS randoms)
//! comes from the `ring` system RNG behind the webrtc-rs crypto provider; nothing here reads a
//! clock, opens a socket or spawns a thread.
//!
//! [`local_credentials`]: WebRtcTransport::local_credentials
//! [`local_candidates`]: WebRtcTransport::local_candidates
//! [`fingerprint`]: WebRtcTransport::fingerprint
//! [`set_remote`]: WebRtcTransport::set_remote
//! [`handle_datagram`]: WebRtcTransport::handle_datagram
//! [`handle_timeout`]: WebRtcTransport::handle_timeout
//! [`poll_timeout`]: WebRtcTransport::poll_timeout
//! [`poll_transmit`]: WebRtcTransport::poll_transmit
//! [`poll_event`]: WebRtcTransport::poll_event
//! [`send_media`]: WebRtcTransport::send_media

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_ice::Agent;
use rtc_ice::agent::Event as IceEvent;
use rtc_ice::agent::agent_config::AgentConfig;
use rtc_ice::candidate::candidate_host::CandidateHostConfig;
use rtc_ice::candidate::candidate_server_reflexive::CandidateServerReflexiveConfig;
use rtc_ice::candidate::{Candidate, CandidateConfig, CandidateType, unmarshal_candidate};
use rtc_ice::crypto::{HashAlgorithm, RTCCryptoProvider};
use rtc_ice::mdns::MulticastDnsMode;
use rtc_ice::network_type::NetworkType;
use rtc_ice::state::ConnectionState;
use rtc_shared::{TransportContext, TransportMessage, TransportProtocol};
use sansio::Protocol;

use crate::sdp::{SrtpKeys, SrtpSuite};
use crate::srtp::{SrtpError, SrtpTransform};

#[cfg(test)]
mod tests;
mod turn;
#[cfg(test)]
mod turn_tests;

pub use turn::{TurnAllocation, TurnFramingError, TurnServer, TurnState, TurnStreamFrames};

/// The DTLS association is keyed by this placeholder instead of the peer's address, so it
/// survives a change of the selected pair (ICE restart, network change).
const DTLS_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);
/// RFC 5764 §4.2.
const SRTP_EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// The only fingerprint hash we compute (what browsers send).
const FINGERPRINT_ALGORITHM: &str = "sha-256";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcError {
    #[error("no local address to offer as a candidate")]
    NoLocalAddress,
    /// An unspecified IP (`0.0.0.0`, `::`) or port 0 cannot be a candidate.
    #[error("not a usable candidate address: {0}")]
    BadLocalAddress(SocketAddr),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("ICE: {0}")]
    Ice(String),
    #[error("DTLS: {0}")]
    Dtls(String),
    /// The remote `a=fingerprint` is not a SHA-256 fingerprint we can check.
    #[error("remote fingerprint: {0}")]
    Fingerprint(String),
    /// Media before the DTLS handshake completed: dropped, never sent in clear.
    #[error("DTLS-SRTP is not established yet")]
    NotConnected,
    /// No candidate pair is selected (before ICE connects, or during an ICE restart).
    #[error("no selected candidate pair")]
    NoPair,
    /// The transport failed (ICE or DTLS) or was closed: it carries no more media.
    #[error("the transport has failed")]
    Failed,
    #[error(transparent)]
    Srtp(#[from] SrtpError),
    /// A TURN allocation could not be started or used.
    #[error("TURN: {0}")]
    Turn(String),
}

/// Our side of the DTLS handshake, from SDP `a=setup` (`active` = client, `passive` = server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    Client,
    Server,
}

/// `a=ice-ufrag` / `a=ice-pwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    pub ufrag: String,
    pub pwd: String,
}

/// `a=fingerprint:<algorithm> <value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// `sha-256` (the only one supported for the peer's).
    pub algorithm: String,
    /// Colon-separated hex bytes, `AB:CD:…` (upper case for ours; either case for the peer's).
    pub value: String,
}

/// What the peer's SDP says about its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParams {
    pub credentials: IceCredentials,
    /// `a=candidate` values, with or without the leading `candidate:` (or `a=candidate:`).
    /// Unusable ones are skipped: TCP, components other than 1 (rtcp-mux), mDNS `.local` names,
    /// unparsable lines. End-of-candidates and extension attributes (`generation`, …) are fine.
    pub candidates: Vec<String>,
    pub fingerprint: Fingerprint,
    /// `a=ice-lite`: the peer only answers checks, so we must control.
    pub ice_lite: bool,
}

/// What the transport reports; drain with [`WebRtcTransport::poll_event`]. `DtlsConnected` may
/// come before our `IceConnected` when the peer's agent finished first (we are controlling and
/// still nominating); media can already be sent then.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebRtcEvent {
    /// A candidate pair is selected (again, after a restart): `"host 127.0.0.1:40000 udp"`.
    IceConnected { local: String, remote: String },
    /// The handshake completed and SRTP is keyed: media can flow.
    DtlsConnected { profile: SrtpSuite },
    /// ICE found no working pair, or DTLS failed (e.g. fingerprint mismatch). Final.
    Failed(String),
    /// ICE lost consent on the selected pair; it may come back (`IceConnected`) or fail.
    Disconnected,
    /// The peer closed the DTLS association (`close_notify`). Final.
    Closed,
}

/// ICE + DTLS-SRTP for one rtcp-muxed stream. See the module docs for the driving contract.
pub struct WebRtcTransport {
    provider: Arc<dyn RTCCryptoProvider>,
    agent: Agent,
    local_addrs: Vec<SocketAddr>,
    credentials: IceCredentials,
    certificate: Certificate,
    fingerprint: Fingerprint,
    /// The peer's current ufrag: a different one in `set_remote` is an ICE restart.
    remote_ufrag: Option<String>,
    /// `restart` was called and no `set_remote` followed yet.
    restarted_locally: bool,
    dtls: Option<Dtls>,
    srtp: Option<SrtpTransform>,
    selected: Option<SelectedPair>,
    /// Where DTLS came from, to answer before our side has selected a pair (controlled agent).
    dtls_source: Option<Route>,
    /// The TURN allocation whose relayed address is one of our candidates.
    relay: Option<TurnAllocation>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<WebRtcEvent>,
    finished: bool,
}

struct Dtls {
    endpoint: Endpoint,
    role: DtlsRole,
    config: Arc<HandshakeConfig>,
    /// The client has sent its ClientHello.
    started: bool,
    connected: bool,
}

#[derive(Debug, Clone)]
struct SelectedPair {
    route: Route,
    local: String,
    remote: String,
}

/// Our end (the socket's address, or the relayed one) and the peer's end of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    local: SocketAddr,
    remote: SocketAddr,
}

impl std::fmt::Debug for WebRtcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcTransport")
            .field("local_addrs", &self.local_addrs)
            .field("ufrag", &self.credentials.ufrag)
            .field("selected", &self.selected)
            .field("srtp", &self.srtp)
            .finish_non_exhaustive()
    }
}

/// Our DTLS certificate (self-signed ECDSA P-256) and its SHA-256 fingerprint. Made once and
/// shared by the calls: the fingerprint goes into SDP before a call's transport exists.
#[derive(Clone)]
pub struct DtlsIdentity {
    certificate: Certificate,
    fingerprint: Fingerprint,
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl DtlsIdentity {
    /// A fresh key pair and certificate (key from the system RNG, through ring).
    pub fn generate() -> Result<DtlsIdentity, WebRtcError> {
        let provider =
            rtc_ice::crypto::default_provider().map_err(|e| WebRtcError::Crypto(e.to_string()))?;
        let certificate =
            Certificate::generate_self_signed(vec!["homeagent".to_owned()], provider.crypto())
                .map_err(|e| WebRtcError::Crypto(e.to_string()))?;
        let der = certificate
            .certificate
            .first()
            .ok_or_else(|| WebRtcError::Crypto("certificate without DER".into()))?;
        let digest = provider
            .crypto()
            .hash(HashAlgorithm::Sha256, der.as_ref())
            .map_err(|e| WebRtcError::Crypto(e.to_string()))?;
        let fingerprint = Fingerprint {
            algorithm: FINGERPRINT_ALGORITHM.to_owned(),
            value: colon_hex(&digest),
        };
        Ok(DtlsIdentity {
            certificate,
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The `a=fingerprint` value: `sha-256 AB:CD:…`.
    pub fn sdp_fingerprint(&self) -> String {
        format!("{} {}", self.fingerprint.algorithm, self.fingerprint.value)
    }
}

impl WebRtcTransport {
    /// `local_addrs`: the media socket's address(es), offered as host candidates
    /// (e.g. `127.0.0.1:40000`; not an unspecified `0.0.0.0`). A certificate of its own and
    /// random ICE credentials: see [`Self::with_identity`] to choose them.
    pub fn new(
        now: Instant,
        local_addrs: &[SocketAddr],
        controlling: bool,
    ) -> Result<WebRtcTransport, WebRtcError> {
        Self::with_identity(
            now,
            local_addrs,
            &DtlsIdentity::generate()?,
            None,
            controlling,
        )
    }

    /// Like [`Self::new`] with a shared certificate and, when given, the ICE credentials
    /// already written in SDP.
    pub fn with_identity(
        now: Instant,
        local_addrs: &[SocketAddr],
        identity: &DtlsIdentity,
        credentials: Option<IceCredentials>,
        controlling: bool,
    ) -> Result<WebRtcTransport, WebRtcError> {
        if local_addrs.is_empty() {
            return Err(WebRtcError::NoLocalAddress);
        }
        if let Some(bad) = local_addrs
            .iter()
            .find(|addr| addr.ip().is_unspecified() || addr.port() == 0)
        {
            return Err(WebRtcError::BadLocalAddress(*bad));
        }
        let provider =
            rtc_ice::crypto::default_provider().map_err(|e| WebRtcError::Crypto(e.to_string()))?;
        let (local_ufrag, local_pwd) = credentials.map(|c| (c.ufrag, c.pwd)).unwrap_or_default();
        let config = AgentConfig {
            is_controlling: controlling,
            local_ufrag,
            local_pwd,
            multicast_dns_mode: MulticastDnsMode::Disabled,
            candidate_types: vec![
                CandidateType::Host,
                CandidateType::ServerReflexive,
                CandidateType::Relay,
            ],
            network_types: vec![NetworkType::Udp4, NetworkType::Udp6],
            ..AgentConfig::default()
        };
        let mut agent = Agent::new(now, Arc::new(config), provider.clone())
            .map_err(|e| WebRtcError::Ice(e.to_string()))?;
        for addr in local_addrs {
            let candidate = CandidateHostConfig {
                base_config: udp_candidate_config(*addr),
                ..CandidateHostConfig::default()
            }
            .new_candidate_host()
            .map_err(|e| WebRtcError::Ice(e.to_string()))?;
            agent
                .add_local_candidate(candidate)
                .map_err(|e| WebRtcError::Ice(e.to_string()))?;
        }
        let credentials = credentials_of(&agent);
        Ok(WebRtcTransport {
            provider,
            agent,
            local_addrs: local_addrs.to_vec(),
            credentials,
            certificate: identity.certificate.clone(),
            fingerprint: identity.fingerprint.clone(),
            remote_ufrag: None,
            restarted_locally: false,
            dtls: None,
            srtp: None,
            selected: None,
            dtls_source: None,
            relay: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            finished: false,
        })
    }

    pub fn local_credentials(&self) -> &IceCredentials {
        &self.credentials
    }

    /// SDP `a=candidate` values (without the `candidate:` prefix).
    pub fn local_candidates(&self) -> Vec<String> {
        self.agent
            .get_local_candidates()
            .iter()
            .map(Candidate::marshal)
            .collect()
    }

    /// Offers `mapped` (what a STUN server saw of the socket at `base`) as a server-reflexive
    /// candidate. Re-read [`Self::local_candidates`] afterwards.
    pub fn add_server_reflexive(
        &mut self,
        mapped: SocketAddr,
        base: SocketAddr,
    ) -> Result<(), WebRtcError> {
        let candidate = CandidateServerReflexiveConfig {
            base_config: udp_candidate_config(mapped),
            rel_addr: base.ip().to_string(),
            rel_port: base.port(),
            url: None,
        }
        .new_candidate_server_reflexive()
        .map_err(|e| WebRtcError::Ice(e.to_string()))?;
        self.agent
            .add_local_candidate(candidate)
            .map_err(|e| WebRtcError::Ice(e.to_string()))?;
        Ok(())
    }

    /// SHA-256 of our self-signed ECDSA P-256 DTLS certificate.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Starts ICE checks (DTLS follows once a pair works). Call again with a later SDP: new
    /// candidates are added; a new remote ufrag is an ICE restart, which also renews our
    /// credentials unless [`Self::restart`] already did — re-read [`Self::local_credentials`]
    /// for the answer. The DTLS role and fingerprint of the first call stay for the association.
    pub fn set_remote(
        &mut self,
        now: Instant,
        remote: RemoteParams,
        dtls_role: DtlsRole,
        controlling: bool,
    ) -> Result<(), WebRtcError> {
        if self.finished {
            return Err(WebRtcError::Failed);
        }
        let expected = parse_fingerprint(&remote.fingerprint)?;
        let controlling = controlling || remote.ice_lite;
        let IceCredentials { ufrag, pwd } = remote.credentials;
        let candidates = remote
            .candidates
            .iter()
            .filter_map(|value| parse_candidate(value));
        let ice_err = |e: rtc_shared::error::Error| WebRtcError::Ice(e.to_string());
        match &self.remote_ufrag {
            Some(current) if *current == ufrag => {
                for candidate in candidates {
                    self.agent
                        .add_remote_candidate(candidate)
                        .map_err(ice_err)?;
                }
            }
            previous => {
                if previous.is_some() && !self.restarted_locally {
                    self.agent
                        .restart(now, String::new(), String::new(), true)
                        .map_err(ice_err)?;
                    self.credentials = credentials_of(&self.agent);
                }
                self.selected = None;
                for candidate in candidates {
                    self.agent
                        .add_remote_candidate(candidate)
                        .map_err(ice_err)?;
                }
                self.agent
                    .start_connectivity_checks(now, controlling, ufrag.clone(), pwd)
                    .map_err(ice_err)?;
                self.remote_ufrag = Some(ufrag);
            }
        }
        self.restarted_locally = false;
        self.permit_remote_candidates(now);
        if self.dtls.is_none() {
            let config = Arc::new(self.dtls_config(dtls_role, expected)?);
            let server_config = (dtls_role == DtlsRole::Server).then(|| config.clone());
            self.dtls = Some(Dtls {
                endpoint: Endpoint::new(DTLS_PEER, TransportProtocol::UDP, server_config),
                role: dtls_role,
                config,
                started: false,
                connected: false,
            });
        }
        self.process(now);
        Ok(())
    }

    /// Our credentials as the latest SDP wrote them: different ones are an ICE restart on our
    /// side (as [`Self::restart`], with these); the same ones change nothing.
    pub fn set_local_credentials(
        &mut self,
        now: Instant,
        credentials: IceCredentials,
    ) -> Result<(), WebRtcError> {
        if credentials == self.credentials {
            return Ok(());
        }
        if self.finished {
            return Err(WebRtcError::Failed);
        }
        self.agent
            .restart(now, credentials.ufrag, credentials.pwd, true)
            .map_err(|e| WebRtcError::Ice(e.to_string()))?;
        self.credentials = credentials_of(&self.agent);
        self.restarted_locally = true;
        self.selected = None;
        self.dtls_source = None;
        self.process(now);
        Ok(())
    }

    /// ICE restart on our side (network change): new local credentials, the remote ones are
    /// forgotten until the next [`Self::set_remote`]. DTLS and SRTP keys stay.
    pub fn restart(&mut self, now: Instant) -> Result<(), WebRtcError> {
        if self.finished {
            return Err(WebRtcError::Failed);
        }
        self.agent
            .restart(now, String::new(), String::new(), true)
            .map_err(|e| WebRtcError::Ice(e.to_string()))?;
        self.credentials = credentials_of(&self.agent);
        self.restarted_locally = true;
        self.selected = None;
        self.dtls_source = None;
        self.process(now);
        Ok(())
    }

    /// Every datagram of the media socket. Returns clear RTP/RTCP when it was authentic media;
    /// STUN and DTLS are consumed (RFC 7983 demultiplexing by the first byte); anything else,
    /// and media from an address ICE does not know, is dropped.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Option<Vec<u8>> {
        let media = if let Some(relay) = self.relay.as_mut()
            && relay.handle_datagram(now, from, bytes)
        {
            self.handle_relayed(now)
        } else {
            self.demultiplex(now, self.transport_context(from), bytes)
        };
        self.process(now);
        media
    }

    /// The call uses `allocation` (made ahead on the media socket, see [`TurnAllocation`]): its
    /// relayed address becomes a local relay candidate (re-read [`Self::local_candidates`]),
    /// permissions are created for the remote candidates, checks and media on relay pairs go
    /// through the TURN server, and the transport keeps the allocation refreshed. Datagrams from
    /// the server keep coming to [`Self::handle_datagram`], like all others.
    pub fn attach_relay(
        &mut self,
        now: Instant,
        allocation: TurnAllocation,
    ) -> Result<(), WebRtcError> {
        if self.finished {
            return Err(WebRtcError::Failed);
        }
        let relayed = allocation
            .relayed()
            .ok_or_else(|| WebRtcError::Turn(format!("not allocated: {:?}", allocation.state())))?;
        let base = self
            .local_addrs
            .iter()
            .find(|addr| addr.is_ipv4() == relayed.is_ipv4())
            .copied()
            .unwrap_or(relayed);
        let candidate =
            turn::relay_candidate(relayed, base).map_err(|e| WebRtcError::Ice(e.to_string()))?;
        self.agent
            .add_local_candidate(candidate)
            .map_err(|e| WebRtcError::Ice(e.to_string()))?;
        self.relay = Some(allocation);
        self.permit_remote_candidates(now);
        self.process(now);
        Ok(())
    }

    /// Takes the allocation back (after the call, to reuse it for the next one from the same
    /// socket: the server keeps it until it expires or is closed).
    pub fn detach_relay(&mut self) -> Option<TurnAllocation> {
        self.relay.take()
    }

    /// The attached allocation's state (it may fail during the call: refresh refused).
    pub fn relay_state(&self) -> Option<&TurnState> {
        self.relay.as_ref().map(TurnAllocation::state)
    }

    /// Protects one clear RTP (or RTCP, `rtcp`) packet and queues it to the selected pair (or,
    /// until our side has selected one, to where the peer's DTLS came from). Before DTLS
    /// completes, or with nowhere to send (during an ICE restart), it is dropped with an error.
    pub fn send_media(
        &mut self,
        now: Instant,
        packet: &[u8],
        rtcp: bool,
    ) -> Result<(), WebRtcError> {
        if self.finished {
            return Err(WebRtcError::Failed);
        }
        let route = self.destination();
        let srtp = self.srtp.as_mut().ok_or(WebRtcError::NotConnected)?;
        let route = route.ok_or(WebRtcError::NoPair)?;
        let protected = if rtcp {
            srtp.protect_rtcp(packet)?
        } else {
            srtp.protect_rtp(packet)?
        };
        self.send_on(now, route, protected);
        Ok(())
    }

    /// The next datagram to send from the media socket: `(to, bytes)` (to the TURN server for
    /// what goes through the relay).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits
            .pop_front()
            .or_else(|| self.relay.as_mut()?.poll_transmit())
    }

    /// When [`Self::handle_timeout`] is due. `&mut` because the ICE agent computes it so.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let ice = self.agent.poll_timeout();
        let dtls = self
            .dtls
            .as_ref()
            .and_then(|dtls| dtls.endpoint.poll_timeout(&DTLS_PEER));
        let relay = self.relay.as_mut().and_then(TurnAllocation::poll_timeout);
        [ice, dtls, relay].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        if let Err(e) = self.agent.handle_timeout(now) {
            tracing::debug!("ICE timeout: {e}");
        }
        if let Some(relay) = self.relay.as_mut() {
            relay.handle_timeout(now);
        }
        if let Some(dtls) = self.dtls.as_mut()
            && (dtls.started || dtls.role == DtlsRole::Server)
            && dtls
                .endpoint
                .poll_timeout(&DTLS_PEER)
                .is_some_and(|at| at <= now)
            && let Err(e) = dtls.endpoint.handle_timeout(DTLS_PEER, now)
        {
            self.fail(format!("DTLS handshake: {e}"));
        }
        self.process(now);
    }

    pub fn poll_event(&mut self) -> Option<WebRtcEvent> {
        self.events.pop_front()
    }

    /// `(local, remote)` of the selected pair, e.g. `("host 127.0.0.1:40000 udp", …)`.
    pub fn selected_pair(&self) -> Option<(String, String)> {
        self.selected
            .as_ref()
            .map(|pair| (pair.local.clone(), pair.remote.clone()))
    }

    /// RFC 7983 demultiplexing by the first byte of a datagram that reached `context.local_addr`
    /// (the socket's, or the relayed address).
    fn demultiplex(
        &mut self,
        now: Instant,
        context: TransportContext,
        bytes: &[u8],
    ) -> Option<Vec<u8>> {
        match *bytes.first()? {
            0..=3 => {
                self.handle_stun(now, context, bytes);
                None
            }
            20..=63 => {
                self.handle_dtls(now, context, bytes);
                None
            }
            128..=191 => self.handle_srtp(now, context, bytes),
            _ => None,
        }
    }

    /// What the TURN server relayed from peers, as if received on the relayed address.
    fn handle_relayed(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut media = None;
        while let Some((relayed, (peer, bytes))) = self
            .relay
            .as_mut()
            .and_then(|relay| Some((relay.relayed()?, relay.poll_received()?)))
        {
            let context = TransportContext {
                local_addr: relayed,
                peer_addr: peer,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            };
            media = self.demultiplex(now, context, &bytes).or(media);
        }
        media
    }

    fn handle_stun(&mut self, now: Instant, context: TransportContext, bytes: &[u8]) {
        let from = context.peer_addr;
        let message = TransportMessage {
            now,
            transport: context,
            message: BytesMut::from(bytes),
        };
        if let Err(e) = self.agent.handle_read(message) {
            tracing::debug!("STUN from {from} dropped: {e}");
        }
    }

    fn handle_dtls(&mut self, now: Instant, context: TransportContext, bytes: &[u8]) {
        let from = context.peer_addr;
        if self.finished || !self.agent.is_valid_non_stun_traffic(now, context) {
            return;
        }
        let Some(dtls) = self.dtls.as_mut() else {
            return;
        };
        if dtls.role == DtlsRole::Client && !dtls.started {
            return;
        }
        self.dtls_source = Some(Route {
            local: context.local_addr,
            remote: from,
        });
        let connected = dtls.connected;
        match dtls
            .endpoint
            .read(now, DTLS_PEER, None, BytesMut::from(bytes))
        {
            Ok(events) => {
                for event in events {
                    match event {
                        EndpointEvent::HandshakeComplete => self.on_dtls_connected(),
                        EndpointEvent::PeerClosed => {
                            self.events.push_back(WebRtcEvent::Closed);
                            self.finish();
                        }
                        _ => {}
                    }
                }
            }
            Err(e) if connected => tracing::debug!("DTLS record from {from} dropped: {e}"),
            Err(e) => self.fail(format!("DTLS handshake: {e}")),
        }
    }

    fn handle_srtp(
        &mut self,
        now: Instant,
        context: TransportContext,
        bytes: &[u8],
    ) -> Option<Vec<u8>> {
        if self.finished {
            return None;
        }
        let from = context.peer_addr;
        let srtp = self.srtp.as_mut()?;
        if !self.agent.is_valid_non_stun_traffic(now, context) {
            return None;
        }
        // RFC 5761 §4: RTCP packet types 192..=223 sit where the RTP marker + payload type are.
        let rtcp = bytes.get(1).is_some_and(|pt| (192..=223).contains(pt));
        let clear = if rtcp {
            srtp.unprotect_rtcp(bytes)
        } else {
            srtp.unprotect_rtp(bytes)
        };
        clear
            .inspect_err(|e| tracing::debug!("SRTP from {from} dropped: {e}"))
            .ok()
    }

    fn on_dtls_connected(&mut self) {
        match self.srtp_keys() {
            Ok(keys) => match SrtpTransform::new(&keys) {
                Ok(srtp) => {
                    if let Some(dtls) = self.dtls.as_mut() {
                        dtls.connected = true;
                    }
                    self.srtp = Some(srtp);
                    self.events.push_back(WebRtcEvent::DtlsConnected {
                        profile: keys.suite,
                    });
                }
                Err(e) => self.fail(format!("SRTP keys: {e}")),
            },
            Err(e) => self.fail(e),
        }
    }

    /// RFC 5764 §4.2: client_write_key | server_write_key | client_salt | server_salt; the
    /// client's keys protect what the client sends.
    fn srtp_keys(&self) -> Result<SrtpKeys, String> {
        let dtls = self.dtls.as_ref().ok_or("no DTLS association")?;
        let state = dtls
            .endpoint
            .get_connection_state(DTLS_PEER)
            .ok_or("no DTLS association")?;
        let suite = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => SrtpSuite::AesCm128HmacSha1_80,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32 => SrtpSuite::AesCm128HmacSha1_32,
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => SrtpSuite::AeadAes128Gcm,
            other => return Err(format!("no usable SRTP profile negotiated ({other:?})")),
        };
        let key_len = suite.master_key_len();
        let salt_len = suite.key_material_len() - key_len;
        let material = state
            .export_keying_material(SRTP_EXPORTER_LABEL, &[], 2 * (key_len + salt_len))
            .map_err(|e| format!("SRTP key export: {e}"))?;
        let material = material.as_ref();
        let part = |start: usize, len: usize| {
            material
                .get(start..start + len)
                .ok_or_else(|| "short SRTP key export".to_owned())
        };
        let client = [part(0, key_len)?, part(2 * key_len, salt_len)?].concat();
        let server = [
            part(key_len, key_len)?,
            part(2 * key_len + salt_len, salt_len)?,
        ]
        .concat();
        let (local_key, remote_key) = match dtls.role {
            DtlsRole::Client => (client, server),
            DtlsRole::Server => (server, client),
        };
        Ok(SrtpKeys {
            suite,
            local_key,
            remote_key,
        })
    }

    /// Drains the ICE agent's events and both layers' datagrams; starts the DTLS client once a
    /// pair is selected.
    fn process(&mut self, now: Instant) {
        while let Some(tagged) = self.agent.poll_event() {
            match tagged.event {
                IceEvent::SelectedCandidatePairChange(local, remote) => {
                    let pair = SelectedPair {
                        route: Route {
                            local: local.base_addr(),
                            remote: remote.addr(),
                        },
                        local: describe(&local),
                        remote: describe(&remote),
                    };
                    self.events.push_back(WebRtcEvent::IceConnected {
                        local: pair.local.clone(),
                        remote: pair.remote.clone(),
                    });
                    self.selected = Some(pair);
                }
                IceEvent::ConnectionStateChange(ConnectionState::Disconnected) => {
                    self.events.push_back(WebRtcEvent::Disconnected);
                }
                IceEvent::ConnectionStateChange(ConnectionState::Failed) if !self.finished => {
                    self.fail("ICE failed: no candidate pair works".to_owned());
                }
                _ => {}
            }
        }
        if !self.finished
            && self.selected.is_some()
            && let Some(dtls) = self.dtls.as_mut()
            && dtls.role == DtlsRole::Client
            && !dtls.started
        {
            dtls.started = true;
            if let Err(e) = dtls
                .endpoint
                .connect(now, DTLS_PEER, dtls.config.clone(), None)
            {
                self.fail(format!("DTLS connect: {e}"));
            }
        }
        while let Some(message) = self.agent.poll_write() {
            let route = Route {
                local: message.transport.local_addr,
                remote: message.transport.peer_addr,
            };
            self.send_on(now, route, message.message.to_vec());
        }
        if let Some(route) = self.destination() {
            let mut records = Vec::new();
            if let Some(dtls) = self.dtls.as_mut() {
                while let Some(message) = dtls.endpoint.poll_transmit() {
                    records.push(message.message.to_vec());
                }
            }
            for record in records {
                self.send_on(now, route, record);
            }
        }
    }

    /// The selected pair's route; before our side selects one (the controlling peer may finish
    /// first and start DTLS), the ICE-known path DTLS came from.
    fn destination(&self) -> Option<Route> {
        self.selected
            .as_ref()
            .map(|pair| pair.route)
            .or(self.dtls_source)
    }

    /// Queues `bytes` to `route.remote`: from the socket, or through the TURN server when
    /// `route.local` is the relayed address.
    fn send_on(&mut self, now: Instant, route: Route, bytes: Vec<u8>) {
        match self.relay.as_mut() {
            Some(relay) if relay.relayed() == Some(route.local) => {
                relay.send(now, route.remote, &bytes);
            }
            _ => self.transmits.push_back((route.remote, bytes)),
        }
    }

    /// The TURN server forwards only from peers with a permission: one per remote candidate.
    fn permit_remote_candidates(&mut self, now: Instant) {
        if let Some(relay) = self.relay.as_mut() {
            for candidate in self.agent.get_remote_candidates() {
                relay.permit(now, candidate.addr());
            }
        }
    }

    fn dtls_config(
        &self,
        role: DtlsRole,
        expected: Vec<u8>,
    ) -> Result<HandshakeConfig, WebRtcError> {
        let provider = self.provider.clone();
        let verify = move |certificates: &[Vec<u8>], _: &[_]| {
            let der = certificates.first().ok_or_else(|| {
                rtc_shared::error::Error::Other("peer sent no certificate".into())
            })?;
            let digest = provider
                .crypto()
                .hash(HashAlgorithm::Sha256, der)
                .map_err(|e| rtc_shared::error::Error::Other(e.to_string()))?;
            if rtc_ice::crypto::constant_time_eq(&digest, &expected) {
                Ok(())
            } else {
                Err(rtc_shared::error::Error::Other(
                    "certificate does not match the SDP fingerprint".into(),
                ))
            }
        };
        ConfigBuilder::default()
            .with_crypto_provider(self.provider.clone())
            .with_certificates(vec![self.certificate.clone()])
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            // No CA chain in WebRTC: the certificate is checked against the SDP fingerprint.
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(Arc::new(verify)))
            .with_server_name("homeagent".to_owned())
            .build(role == DtlsRole::Client, None)
            .map_err(|e| WebRtcError::Dtls(e.to_string()))
    }

    /// The local address a datagram from `from` reached: the socket's address of the same IP,
    /// else of the same family (one socket; which interface it came in on is not reported).
    fn transport_context(&self, from: SocketAddr) -> TransportContext {
        let local = self
            .local_addrs
            .iter()
            .find(|addr| addr.ip() == from.ip())
            .or_else(|| {
                self.local_addrs
                    .iter()
                    .find(|addr| addr.is_ipv4() == from.is_ipv4())
            })
            .or(self.local_addrs.first())
            .copied()
            .unwrap_or(DTLS_PEER);
        TransportContext {
            local_addr: local,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::warn!("WebRTC transport failed: {reason}");
        self.events.push_back(WebRtcEvent::Failed(reason));
        self.finish();
    }

    fn finish(&mut self) {
        self.finished = true;
        self.srtp = None;
    }
}

fn udp_candidate_config(addr: SocketAddr) -> CandidateConfig {
    CandidateConfig {
        network: "udp".to_owned(),
        address: addr.ip().to_string(),
        port: addr.port(),
        component: 1,
        ..CandidateConfig::default()
    }
}

fn credentials_of(agent: &Agent) -> IceCredentials {
    let credentials = agent.get_local_credentials();
    IceCredentials {
        ufrag: credentials.ufrag.clone(),
        pwd: credentials.pwd.clone(),
    }
}

/// One remote `a=candidate` value we can use: UDP, component 1, a literal IP address.
fn parse_candidate(value: &str) -> Option<Candidate> {
    let value = value.trim();
    let value = value.strip_prefix("a=").unwrap_or(value);
    let value = value.strip_prefix("candidate:").unwrap_or(value);
    let candidate = unmarshal_candidate(value)
        .inspect_err(|e| tracing::debug!("candidate {value:?} skipped: {e}"))
        .ok()?;
    let usable = candidate.component() == 1
        && matches!(
            candidate.network_type(),
            NetworkType::Udp4 | NetworkType::Udp6
        )
        && candidate.address().parse::<std::net::IpAddr>().is_ok();
    usable.then_some(candidate)
}

/// `"host 127.0.0.1:40000 udp"`.
fn describe(candidate: &Candidate) -> String {
    format!(
        "{} {} {}",
        candidate.candidate_type(),
        candidate.addr(),
        candidate.network_type().network_short()
    )
}

fn parse_fingerprint(fingerprint: &Fingerprint) -> Result<Vec<u8>, WebRtcError> {
    if !fingerprint
        .algorithm
        .eq_ignore_ascii_case(FINGERPRINT_ALGORITHM)
    {
        return Err(WebRtcError::Fingerprint(format!(
            "unsupported algorithm {:?}",
            fingerprint.algorithm
        )));
    }
    let bytes = fingerprint
        .value
        .trim()
        .split(':')
        .map(|byte| {
            (byte.len() == 2)
                .then(|| u8::from_str_radix(byte, 16).ok())
                .flatten()
        })
        .collect::<Option<Vec<u8>>>()
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| WebRtcError::Fingerprint(format!("bad value {:?}", fingerprint.value)))?;
    Ok(bytes)
}

fn colon_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02X}");
    }
    out
}
