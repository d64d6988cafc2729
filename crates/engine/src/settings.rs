//! What a front end configures: the phone's settings before sockets and names are resolved.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use homeagent_audio::{DeviceSelector, ProcessingConfig, SinkSpec, SourceSpec};
use homeagent_core::{AnswerMode, CodecKind, WrapupRules};

#[derive(Debug, Clone)]
pub struct PhoneSettings {
    /// Local SIP address, UDP and TCP.
    pub bind: SocketAddr,
    /// RTP ports (even RTP port, RTCP on the next one), inclusive.
    pub rtp_ports: (u16, u16),
    /// Codecs in preference order.
    pub codecs: Vec<CodecKind>,
    pub audio_in: SourceSpec,
    pub audio_out: SinkSpec,
    /// Echo cancellation, noise suppression and gain control of the call's audio; by default
    /// on whenever the input or the output is a sound device.
    pub audio_processing: ProcessingSettings,
    /// Registrar (and outbound proxy) URI, e.g. `sip:127.0.0.1:5060;transport=tcp`.
    pub registrar: Option<String>,
    /// SIP over WebSocket (RFC 7118): the server, `ws://HOST[:PORT]/PATH` or `wss://…`, that
    /// requests for the registrar go to (instead of the registrar URI's address). A registrar
    /// URI with `;transport=ws|wss` needs none (`ws(s)://HOST:PORT/`).
    pub ws_url: Option<String>,
    /// A STUN server (`HOST:PORT`) asked at start where our SIP socket is seen from outside
    /// (behind a NAT): that address goes into Contact and SDP.
    pub stun: Option<String>,
    /// A TURN server (RFC 8656) relaying the media of ICE calls where direct UDP is blocked.
    pub turn: Option<TurnSettings>,
    pub user: Option<String>,
    pub auth_user: Option<String>,
    /// The SIP password: from the keychain or the environment, never from a command line.
    pub password: Option<String>,
    /// Requested registration lifetime, seconds.
    pub expires: u32,
    pub answer: AnswerMode,
    pub no_answer_timeout: Duration,
    /// The contact-center platform, `HOST[:PORT]` each (resolved at start): its calls may be
    /// answered by themselves and reach only a ready agent.
    pub platform: Vec<String>,
    /// Forced delivery: every call from the platform is answered at once.
    pub auto_answer_all: bool,
    /// After-call work once a call ends.
    pub wrapup: WrapupRules,
    /// Media encryption (SRTP with SDES keys): off, preferred or mandatory.
    pub srtp: homeagent_core::SrtpPolicy,
    /// Take new requests only from the registrar and the platform (when configured).
    pub inbound_filter: bool,
    /// ICE + DTLS-SRTP media (WebRTC style) in our offers.
    pub ice: IceMode,
    /// SIP over TLS (`sips:` or `;transport=tls` URIs): trusted CAs, client certificate.
    pub tls: TlsSettings,
    /// RFC 5626 keepalive: a CRLF ping on a TCP/TLS connection we opened after this long
    /// without sending; `None` sends none.
    pub keepalive: Option<Duration>,
}

/// When our offers use ICE + DTLS-SRTP (`UDP/TLS/RTP/SAVPF`, what browsers and WebRTC
/// gateways speak) instead of RTP/AVP or SDES. Offers from peers with ICE/DTLS are answered
/// with it unless `Off`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IceMode {
    /// When the registrar is reached over WebSocket (`ws`/`wss`): the WebRTC face of a platform.
    #[default]
    Auto,
    /// In every offer.
    On,
    /// Never: ICE/DTLS offers are refused (488).
    Off,
}

/// A TURN server (RFC 7065 URI) and its long-term credentials: `turn:HOST[:PORT]` over UDP,
/// `turn:HOST[:PORT]?transport=tcp` over TCP, `turns:HOST[:PORT]` over TLS (default ports 3478,
/// 3478, 5349). The relay itself is UDP in every case.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnSettings {
    pub uri: String,
    pub username: String,
    /// From the keychain or the environment (`HOMEAGENT_TURN_PASSWORD`), never a command line.
    pub password: String,
}

impl std::fmt::Debug for TurnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSettings")
            .field("uri", &self.uri)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl TurnSettings {
    /// Host and port of the URI (default 3478, 5349 for `turns:`).
    pub fn host_port(&self) -> Result<(String, u16), SettingsError> {
        self.endpoint()
            .map(|endpoint| (endpoint.host, endpoint.port))
    }

    /// Host, port and how the server is reached.
    pub(crate) fn endpoint(&self) -> Result<TurnEndpoint, SettingsError> {
        let bad = |reason: &'static str| SettingsError::BadTurnUri {
            uri: self.uri.clone(),
            reason,
        };
        let uri = self.uri.trim();
        let (rest, tls) = match uri.strip_prefix("turns:") {
            Some(rest) => (rest, true),
            None => (
                uri.strip_prefix("turn:")
                    .ok_or_else(|| bad("expected turn:HOST[:PORT] or turns:HOST[:PORT]"))?,
                false,
            ),
        };
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let transport = match (query.to_ascii_lowercase().as_str(), tls) {
            ("" | "transport=udp", false) => TurnTransport::Udp,
            ("transport=tcp", false) => TurnTransport::Tcp,
            ("" | "transport=tcp", true) => TurnTransport::Tls,
            ("transport=udp", true) => return Err(bad("TURN over DTLS is not supported")),
            _ => return Err(bad("expected ?transport=udp or ?transport=tcp")),
        };
        let default_port = if tls { 5349 } else { 3478 };
        let (host, port) = match address.rsplit_once(':') {
            // An IPv6 literal without a port: [::1]
            Some((host, port)) if !port.ends_with(']') => {
                (host, port.parse().map_err(|_| bad("bad port"))?)
            }
            _ => (address, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(TurnEndpoint {
            host: host.to_owned(),
            port,
            transport,
        })
    }
}

/// Where a TURN URI points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TurnEndpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) transport: TurnTransport,
}

/// How the TURN server is reached: UDP from each media socket, or one TCP or TLS connection per
/// media port (where outgoing UDP is blocked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TurnTransport {
    Udp,
    Tcp,
    Tls,
}

/// Certificates for SIP over TLS. The server's certificate must chain to a root of the
/// Mozilla set (webpki-roots) or to a CA of `ca_file`, and be valid for the URI's host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of extra CA certificates to trust (e.g. the platform's private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM file of certificate revocation lists (e.g. the company CA's): a listed server
    /// certificate is refused ("revoked").
    pub crl_file: Option<PathBuf>,
    /// PEM certificate chain presented when the server asks for one (mutual TLS).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
}

impl Default for PhoneSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 5060)),
            rtp_ports: (16384, 32767),
            codecs: vec![CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma],
            audio_in: SourceSpec::Device(DeviceSelector::Default),
            audio_out: SinkSpec::Device(DeviceSelector::Default),
            audio_processing: ProcessingSettings::default(),
            registrar: None,
            ws_url: None,
            stun: None,
            turn: None,
            user: None,
            auth_user: None,
            password: None,
            expires: 600,
            answer: AnswerMode::Auto,
            no_answer_timeout: Duration::from_secs(60),
            platform: Vec::new(),
            auto_answer_all: false,
            wrapup: WrapupRules::default(),
            srtp: homeagent_core::SrtpPolicy::Off,
            inbound_filter: true,
            ice: IceMode::Auto,
            tls: TlsSettings::default(),
            keepalive: Some(DEFAULT_KEEPALIVE),
        }
    }
}

/// Default interval of the CRLF keepalive on idle TCP/TLS connections (RFC 5626 suggests
/// 95-120 s for the server to see; NAT routers commonly drop idle TCP after a few minutes).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// The switches of the call audio processing ([`homeagent_audio::AudioProcessor`]). Each one
/// is `Some(true)` (forced on), `Some(false)` (forced off) or `None` (the default, automatic:
/// on when the call's input or output is a sound device, off for files, tones and silence,
/// which have no acoustic echo or room noise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessingSettings {
    /// Acoustic echo cancellation: removes the customer's voice coming back from the speaker
    /// into the microphone.
    pub echo_cancellation: Option<bool>,
    /// Stationary noise suppression on the microphone (fans, hum, street noise).
    pub noise_suppression: Option<bool>,
    /// Automatic gain control on the microphone (steady speech level, limiter).
    pub gain_control: Option<bool>,
}

impl ProcessingSettings {
    /// Every stage forced off.
    pub const OFF: Self = Self {
        echo_cancellation: Some(false),
        noise_suppression: Some(false),
        gain_control: Some(false),
    };

    /// The stages that run for a call with this input and output.
    pub fn resolve(&self, input: &SourceSpec, output: &SinkSpec) -> ProcessingConfig {
        let device =
            matches!(input, SourceSpec::Device(_)) || matches!(output, SinkSpec::Device(_));
        ProcessingConfig {
            echo_cancellation: self.echo_cancellation.unwrap_or(device),
            noise_suppression: self.noise_suppression.unwrap_or(device),
            gain_control: self.gain_control.unwrap_or(device),
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("unknown codec {0:?} (known: opus, pcmu, pcma)")]
    UnknownCodec(String),
    #[error("no codec given")]
    NoCodec,
    #[error("invalid registrar URI {0:?}")]
    BadRegistrar(String),
    #[error("invalid WebSocket URL {url:?}: {reason}")]
    BadWsUrl { url: String, reason: &'static str },
    #[error("a WebSocket URL needs a registrar")]
    WsUrlWithoutRegistrar,
    #[error("a registrar needs a user and a password")]
    MissingCredentials,
    #[error("invalid RTP port range {0}-{1}")]
    BadPortRange(u16, u16),
    #[error("a TLS client certificate needs both a certificate file and a key file")]
    IncompleteClientCertificate,
    #[error("invalid TURN URI {uri:?}: {reason}")]
    BadTurnUri { uri: String, reason: &'static str },
}

impl PhoneSettings {
    /// Parses a comma-separated codec list such as `opus,pcmu`.
    pub fn parse_codecs(list: &str) -> Result<Vec<CodecKind>, SettingsError> {
        let mut codecs = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let codec = CodecKind::from_name(name)
                .ok_or_else(|| SettingsError::UnknownCodec(name.to_owned()))?;
            if !codecs.contains(&codec) {
                codecs.push(codec);
            }
        }
        if codecs.is_empty() {
            return Err(SettingsError::NoCodec);
        }
        Ok(codecs)
    }

    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.codecs.is_empty() {
            return Err(SettingsError::NoCodec);
        }
        let (low, high) = self.rtp_ports;
        if low == 0 || high <= low {
            return Err(SettingsError::BadPortRange(low, high));
        }
        if self.registrar.is_some() && (self.user.is_none() || self.password.is_none()) {
            return Err(SettingsError::MissingCredentials);
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err(SettingsError::IncompleteClientCertificate);
        }
        if let Some(turn) = &self.turn {
            turn.host_port()?;
        }
        if let Some(url) = &self.ws_url {
            crate::ws::WsUrl::parse(url).map_err(|reason| SettingsError::BadWsUrl {
                url: url.clone(),
                reason,
            })?;
            if self.registrar.is_none() {
                return Err(SettingsError::WsUrlWithoutRegistrar);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_uris_give_host_port_and_transport_and_refuse_what_we_do_not_do() {
        let turn = |uri: &str| TurnSettings {
            uri: uri.to_owned(),
            username: "agent".to_owned(),
            password: "secret".to_owned(),
        };
        let ok = |uri: &str| {
            turn(uri)
                .endpoint()
                .map(|e| (e.host, e.port, e.transport))
                .map_err(|e| e.to_string())
        };
        use TurnTransport::{Tcp, Tls, Udp};
        assert_eq!(
            ok("turn:relay.example.com"),
            Ok(("relay.example.com".into(), 3478, Udp))
        );
        assert_eq!(ok("turn:10.0.0.1:3479"), Ok(("10.0.0.1".into(), 3479, Udp)));
        assert_eq!(
            ok("turn:[::1]:3479?transport=udp"),
            Ok(("::1".into(), 3479, Udp))
        );
        assert_eq!(ok("turn:[::1]"), Ok(("::1".into(), 3478, Udp)));
        assert_eq!(ok("turn:x?transport=TCP"), Ok(("x".into(), 3478, Tcp)));
        assert_eq!(ok("turn:x:443?transport=tcp"), Ok(("x".into(), 443, Tcp)));
        assert_eq!(ok("turns:x"), Ok(("x".into(), 5349, Tls)));
        assert_eq!(ok("turns:[::1]:443"), Ok(("::1".into(), 443, Tls)));
        assert_eq!(ok("turns:x?transport=tcp"), Ok(("x".into(), 5349, Tls)));
        assert_eq!(
            turn("turns:x:443").host_port().map_err(|e| e.to_string()),
            Ok(("x".into(), 443))
        );
        for bad in [
            "stun:x:3478",
            "turns:x?transport=udp",
            "turn:x?transport=sctp",
            "turn:",
            "turns:",
            "turn:x:port",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        assert!(!format!("{:?}", turn("turn:x")).contains("secret"));
        let settings = PhoneSettings {
            turn: Some(turn("turns:x?transport=udp")),
            ..PhoneSettings::default()
        };
        assert!(matches!(
            settings.validate(),
            Err(SettingsError::BadTurnUri { .. })
        ));
    }

    #[test]
    fn audio_processing_is_on_for_devices_unless_forced() {
        let device_in = SourceSpec::Device(DeviceSelector::Default);
        let device_out = SinkSpec::Device(DeviceSelector::Default);
        let file_in = SourceSpec::Wav("in.wav".into());
        let auto = PhoneSettings::default().audio_processing;
        assert_eq!(auto.resolve(&device_in, &device_out), ProcessingConfig::ALL);
        assert_eq!(auto.resolve(&file_in, &device_out), ProcessingConfig::ALL);
        assert_eq!(
            auto.resolve(&device_in, &SinkSpec::Null),
            ProcessingConfig::ALL
        );
        assert!(!auto.resolve(&file_in, &SinkSpec::Null).any());
        assert!(!auto.resolve(&SourceSpec::Silence, &SinkSpec::Null).any());

        let forced = ProcessingSettings {
            noise_suppression: Some(true),
            gain_control: Some(false),
            ..ProcessingSettings::default()
        };
        let expected = ProcessingConfig {
            echo_cancellation: false,
            noise_suppression: true,
            gain_control: false,
        };
        assert_eq!(forced.resolve(&file_in, &SinkSpec::Null), expected);
        assert_eq!(
            forced.resolve(&device_in, &SinkSpec::Null),
            ProcessingConfig {
                echo_cancellation: true,
                ..expected
            }
        );
        assert!(
            !ProcessingSettings::OFF
                .resolve(&device_in, &device_out)
                .any()
        );
    }

    #[test]
    fn codec_lists() {
        assert_eq!(
            PhoneSettings::parse_codecs("PCMU, opus,pcmu").unwrap(),
            vec![CodecKind::Pcmu, CodecKind::Opus]
        );
        assert_eq!(
            PhoneSettings::parse_codecs("g729"),
            Err(SettingsError::UnknownCodec("g729".into()))
        );
        assert_eq!(
            PhoneSettings::parse_codecs(" , "),
            Err(SettingsError::NoCodec)
        );
    }
}
