//! Phone configuration (already resolved: the driver has looked up names and bound sockets).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use homeagent_media::CodecKind;
use homeagent_sip::transaction::Peer;

use crate::agent::WrapupRules;

/// How incoming calls are handled when no front end decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerMode {
    /// Answer at once.
    #[default]
    Auto,
    /// Decline with 486 Busy Here (603 would be final for every fork).
    Reject,
    /// Ring and wait for [`crate::Command::Answer`] / [`crate::Command::Decline`].
    Manual,
}

/// A SIP account registered with a registrar, which is also the outbound proxy.
#[derive(Clone)]
pub struct Account {
    /// Registrar URI as configured, e.g. `sip:127.0.0.1:5060;transport=tcp`.
    pub registrar: String,
    /// Where to send requests (resolved registrar address and transport).
    pub proxy: Peer,
    /// Domain of the address of record (`sip:USER@DOMAIN`).
    pub domain: String,
    pub user: String,
    pub auth_user: Option<String>,
    pub password: String,
    /// Requested registration lifetime, seconds.
    pub expires: u32,
}

/// Digest credentials, used to answer challenges (also without a registrar).
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The contact-center platform (ACD, SBC) and its delivery rules.
#[derive(Debug, Clone, Default)]
pub struct AcdConfig {
    /// The platform's addresses (IP, and port when given). Only calls coming from them are
    /// answered by themselves (when they ask, or with forced delivery), and they reach only a
    /// ready agent. Empty: no call is answered by itself.
    pub platform: Vec<(IpAddr, Option<u16>)>,
    /// Forced delivery: every call from the platform is answered at once.
    pub auto_answer_all: bool,
    /// After-call work once a call ends.
    pub wrapup: WrapupRules,
    /// Publish the agent's state as presence (PUBLISH/PIDF) to the registrar, where it takes it.
    pub publish_presence: bool,
}

impl AcdConfig {
    /// Whether a request from `addr` comes from the platform (for auto-answer).
    pub fn is_platform(&self, addr: SocketAddr) -> bool {
        self.platform
            .iter()
            .any(|(ip, port)| *ip == addr.ip() && port.is_none_or(|p| p == addr.port()))
    }
}

#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// Where our SIP socket is bound and reachable (used in Via and Contact).
    pub local: Peer,
    /// Contact user part when there is no account.
    pub contact_user: String,
    pub account: Option<Account>,
    /// Credentials for challenges to our INVITEs (the account's when there is one).
    pub credentials: Option<Credentials>,
    /// Codecs in preference order.
    pub codecs: Vec<CodecKind>,
    /// Offer/accept RFC 4733 telephone-events.
    pub dtmf: bool,
    pub answer: AnswerMode,
    /// How the contact-center platform delivers calls (auto-answer, agent state).
    pub acd: AcdConfig,
    pub user_agent: String,
    /// Give up on an outgoing call not answered within this time (CANCEL).
    pub no_answer_timeout: Duration,
    /// Media encryption (SRTP with SDES keys).
    pub srtp: SrtpPolicy,
    /// Our address as seen from outside, learned by the driver before the start (STUN); the
    /// registrar's `received`/`rport` may correct it later.
    pub public_addr: Option<std::net::SocketAddr>,
    /// With a registrar, new requests are taken only from its host and the platform's hosts;
    /// others (SIP scanners) get no answer at all. Requests inside a call's dialog are taken
    /// from anywhere. Without a registrar (direct calls) everyone may call.
    pub inbound_filter: bool,
    /// ICE + DTLS-SRTP media (WebRTC style, for browsers and WebSocket gateways).
    pub ice: IceConfig,
    /// This device's RFC 5626 instance id (`urn:uuid:…`), registered over TCP/TLS/WS
    /// connections with `reg-id=1`; stable across restarts, so a reconnection replaces the
    /// binding instead of adding one.
    pub instance_id: Option<String>,
}

/// WebRTC-style media: ICE connectivity and DTLS-SRTP keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceConfig {
    /// Our DTLS certificate's fingerprint (`sha-256 AB:…`), from the driver that holds the
    /// certificate. `None`: ICE/DTLS offers are refused (488).
    pub dtls_fingerprint: Option<String>,
    /// Offer ICE/DTLS (`UDP/TLS/RTP/SAVPF`) in our own offers, as browsers expect.
    pub offer: bool,
}

/// Whether calls encrypt their media (SRTP keyed by SDES, RFC 4568).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SrtpPolicy {
    /// Plain RTP only; an RTP/SAVP offer is refused (488).
    #[default]
    Off,
    /// Offer SRTP keys over RTP/AVP (best effort) and accept either.
    Preferred,
    /// SRTP or no call: offer RTP/SAVP, refuse plain RTP with 488.
    Mandatory,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("Account")
            .field("registrar", &self.registrar)
            .field("proxy", &self.proxy)
            .field("user", &self.user)
            .field("auth_user", &self.auth_user)
            .finish_non_exhaustive()
    }
}

impl PhoneConfig {
    pub fn new(local: Peer) -> Self {
        Self {
            local,
            contact_user: "homeagent".to_owned(),
            account: None,
            credentials: None,
            codecs: vec![CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma],
            dtmf: true,
            answer: AnswerMode::Auto,
            acd: AcdConfig::default(),
            user_agent: concat!("Homeagent/", env!("CARGO_PKG_VERSION")).to_owned(),
            no_answer_timeout: Duration::from_secs(60),
            srtp: SrtpPolicy::Off,
            public_addr: None,
            inbound_filter: true,
            ice: IceConfig::default(),
            instance_id: None,
        }
    }
}
