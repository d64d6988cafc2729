//! The SDP data model and its canonical printer.

use std::fmt;
use std::net::IpAddr;

use super::parse::SdpErrorKind;
use crate::Direction;

/// A whole session description (RFC 8866 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (may be empty or `-`).
    pub session_name: String,
    /// Session-level `c=`, the default for media sections without their own.
    pub connection: Option<Connection>,
    /// `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines with their `r=` lines; the parser adds `t=0 0` when there is none.
    pub timings: Vec<Timing>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// `m=` sections, in order.
    pub media: Vec<MediaDescription>,
    /// Other lines kept as (type, value): `i=`, `u=`, `e=`, `p=`, `z=`, `k=` and unknown types.
    pub other_lines: Vec<(char, String)>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    /// Opaque numeric string: kept as text so that any length round-trips.
    pub session_id: String,
    /// Bumped by the owner on every change of the description.
    pub session_version: u64,
    /// The `<nettype> <addrtype> <unicast-address>` part.
    pub address: Connection,
}

/// `c=<nettype> <addrtype> <connection-address>` (also the tail of `o=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `IN` in practice.
    pub network_type: String,
    /// `IP4` or `IP6` in practice.
    pub address_type: String,
    /// An IP address, possibly with `/ttl[/count]` for multicast, or a host name.
    pub address: String,
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// `CT`, `AS`, `TIAS` …
    pub kind: String,
    pub value: u64,
}

/// `t=<start> <stop>` and the `r=` lines that follow it (kept raw).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
    pub repeats: Vec<String>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application` …
    pub media: String,
    /// Transport port; `0` means the stream is rejected or disabled.
    pub port: u16,
    /// The `/<number of ports>` suffix, if any.
    pub port_count: Option<u16>,
    pub protocol: Protocol,
    /// Format list: RTP payload type numbers for RTP protocols.
    pub formats: Vec<String>,
    /// Media-level `c=`; falls back to the session's (see [`SessionDescription::connection_for`]).
    pub connection: Option<Connection>,
    pub bandwidths: Vec<Bandwidth>,
    /// Media-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Other lines kept as (type, value): `i=`, `k=`, extra `c=` and unknown types.
    pub other_lines: Vec<(char, String)>,
}

/// The `<proto>` field of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// `RTP/AVP` (RFC 3551).
    RtpAvp,
    /// `RTP/AVPF` (RFC 4585).
    RtpAvpf,
    /// `RTP/SAVP` (SRTP, RFC 3711).
    RtpSavp,
    /// `RTP/SAVPF`.
    RtpSavpf,
    /// `UDP/TLS/RTP/SAVP` (DTLS-SRTP, RFC 5764).
    UdpTlsRtpSavp,
    /// `UDP/TLS/RTP/SAVPF` (WebRTC).
    UdpTlsRtpSavpf,
    /// Anything else, as written.
    Other(String),
}

/// One `a=` line: `a=<name>` (a flag) or `a=<name>:<value>`, both kept raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

/// The attributes this crate understands, typed from an [`Attribute`] on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KnownAttribute<'a> {
    RtpMap(RtpMap),
    /// `a=fmtp:<format> <parameters>`.
    Fmtp {
        format: &'a str,
        params: &'a str,
    },
    /// `a=ptime` in milliseconds (fractions are truncated).
    Ptime(u32),
    /// `a=maxptime` in milliseconds.
    MaxPtime(u32),
    /// `a=sendrecv`, `a=sendonly`, `a=recvonly`, `a=inactive`.
    Direction(Direction),
    /// `a=rtcp` (RFC 3605).
    Rtcp(Rtcp),
    /// `a=rtcp-mux` (RFC 5761).
    RtcpMux,
    /// `a=ssrc:<ssrc> <attribute>` (RFC 5576).
    Ssrc {
        ssrc: u32,
        attribute: &'a str,
    },
    /// `a=crypto` (SDES, RFC 4568), raw.
    Crypto(&'a str),
    /// `a=candidate` (ICE), raw.
    Candidate(&'a str),
    IceUfrag(&'a str),
    IcePwd(&'a str),
    IceOptions(&'a str),
    /// `a=fingerprint` (DTLS), raw.
    Fingerprint(&'a str),
    /// `a=setup` (RFC 4145), raw.
    Setup(&'a str),
    Mid(&'a str),
    /// An attribute this crate does not interpret.
    Other,
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    pub port: u16,
    pub connection: Option<Connection>,
}

impl SessionDescription {
    /// The connection that applies to `media`: its own `c=`, else the session's.
    pub fn connection_for<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_in(&self.attributes)
    }

    /// The direction that applies to `media`: its own attribute, else the session's, else
    /// `sendrecv` (RFC 8866 §6.7).
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media
            .direction()
            .or_else(|| self.direction())
            .unwrap_or_default()
    }
}

impl Connection {
    /// `IN IP4 <addr>` or `IN IP6 <addr>`.
    pub fn from_ip(ip: IpAddr) -> Self {
        let address_type = match ip {
            IpAddr::V4(_) => "IP4",
            IpAddr::V6(_) => "IP6",
        };
        Self {
            network_type: "IN".to_owned(),
            address_type: address_type.to_owned(),
            address: ip.to_string(),
        }
    }

    /// The IP address, without any multicast `/ttl` suffix; `None` for host names.
    pub fn ip(&self) -> Option<IpAddr> {
        if !self.network_type.eq_ignore_ascii_case("IN") {
            return None;
        }
        let address = self.address.split('/').next().unwrap_or_default();
        address.parse().ok()
    }

    /// `0.0.0.0` (or `::`): the old-style hold of RFC 2543, "do not send to me".
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

impl MediaDescription {
    /// The first attribute called `name`, if any.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Whether a flag or valued attribute called `name` is present.
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    /// The media-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_in(&self.attributes)
    }

    /// Every well-formed `a=rtpmap`, in order (malformed ones are skipped).
    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap> + '_ {
        self.attributes.iter().filter_map(|a| match a.known() {
            Ok(KnownAttribute::RtpMap(map)) => Some(map),
            _ => None,
        })
    }

    /// The rtpmap for RTP payload type `payload_type`: the explicit `a=rtpmap`, else the static
    /// assignment of RFC 3551 for the audio types this crate knows (0 PCMU, 8 PCMA, 9 G722, 13
    /// CN).
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        self.rtpmaps()
            .find(|m| m.payload_type == payload_type)
            .or_else(|| RtpMap::static_audio(payload_type))
    }

    /// The parameters of `a=fmtp:<format> …`, if any.
    pub fn fmtp(&self, format: &str) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a.known() {
            Ok(KnownAttribute::Fmtp { format: f, params }) if f == format => Some(params),
            _ => None,
        })
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a.known() {
            Ok(KnownAttribute::Ptime(ms)) => Some(ms),
            _ => None,
        })
    }

    /// `a=maxptime` in milliseconds.
    pub fn maxptime(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a.known() {
            Ok(KnownAttribute::MaxPtime(ms)) => Some(ms),
            _ => None,
        })
    }

    /// `a=rtcp` (RFC 3605), if present and well formed.
    pub fn rtcp(&self) -> Option<Rtcp> {
        self.attributes.iter().find_map(|a| match a.known() {
            Ok(KnownAttribute::Rtcp(rtcp)) => Some(rtcp),
            _ => None,
        })
    }

    /// `a=rtcp-mux` (RFC 5761).
    pub fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }

    /// The SSRC of the first `a=ssrc` line, if any.
    pub fn first_ssrc(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a.known() {
            Ok(KnownAttribute::Ssrc { ssrc, .. }) => Some(ssrc),
            _ => None,
        })
    }

    /// The format list as RTP payload types, skipping entries that are not 0–127.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok().filter(|pt| *pt <= 127))
    }
}

impl Protocol {
    /// The token as written in SDP.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RtpAvp => "RTP/AVP",
            Self::RtpAvpf => "RTP/AVPF",
            Self::RtpSavp => "RTP/SAVP",
            Self::RtpSavpf => "RTP/SAVPF",
            Self::UdpTlsRtpSavp => "UDP/TLS/RTP/SAVP",
            Self::UdpTlsRtpSavpf => "UDP/TLS/RTP/SAVPF",
            Self::Other(other) => other,
        }
    }

    /// Matches the known tokens case-insensitively; anything else is kept as written.
    pub fn from_token(token: &str) -> Self {
        const KNOWN: [Protocol; 6] = [
            Protocol::RtpAvp,
            Protocol::RtpAvpf,
            Protocol::RtpSavp,
            Protocol::RtpSavpf,
            Protocol::UdpTlsRtpSavp,
            Protocol::UdpTlsRtpSavpf,
        ];
        KNOWN
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(token))
            .unwrap_or_else(|| Self::Other(token.to_owned()))
    }

    /// Unencrypted RTP: `RTP/AVP` or `RTP/AVPF`.
    pub fn is_plain_rtp(&self) -> bool {
        matches!(self, Self::RtpAvp | Self::RtpAvpf)
    }

    /// SRTP, keyed by SDES or DTLS.
    pub fn is_secure_rtp(&self) -> bool {
        matches!(
            self,
            Self::RtpSavp | Self::RtpSavpf | Self::UdpTlsRtpSavp | Self::UdpTlsRtpSavpf
        )
    }
}

impl Attribute {
    /// `a=<name>`.
    pub fn flag(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: None,
        }
    }

    /// `a=<name>:<value>`.
    pub fn with_value(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            value: Some(value.into()),
        }
    }

    /// Types the attribute if this crate knows it. `Err` means a known attribute is malformed;
    /// unknown attributes give `Ok(KnownAttribute::Other)`.
    pub fn known(&self) -> Result<KnownAttribute<'_>, SdpErrorKind> {
        let value = self.value.as_deref();
        Ok(match self.name.as_str() {
            "rtpmap" => KnownAttribute::RtpMap(RtpMap::parse(required(value)?)?),
            "fmtp" => {
                let v = required(value)?;
                let (format, params) = v.split_once(' ').unwrap_or((v, ""));
                if format.is_empty() {
                    return Err(SdpErrorKind::Attribute("fmtp: missing format"));
                }
                KnownAttribute::Fmtp {
                    format,
                    params: params.trim(),
                }
            }
            "ptime" => KnownAttribute::Ptime(parse_millis(required(value)?)?),
            "maxptime" => KnownAttribute::MaxPtime(parse_millis(required(value)?)?),
            "sendrecv" => KnownAttribute::Direction(Direction::SendRecv),
            "sendonly" => KnownAttribute::Direction(Direction::SendOnly),
            "recvonly" => KnownAttribute::Direction(Direction::RecvOnly),
            "inactive" => KnownAttribute::Direction(Direction::Inactive),
            "rtcp" => KnownAttribute::Rtcp(Rtcp::parse(required(value)?)?),
            "rtcp-mux" => KnownAttribute::RtcpMux,
            "ssrc" => {
                let v = required(value)?;
                let (ssrc, attribute) = v.split_once(' ').unwrap_or((v, ""));
                let ssrc = ssrc
                    .parse()
                    .map_err(|_| SdpErrorKind::Attribute("ssrc: not a 32-bit number"))?;
                KnownAttribute::Ssrc {
                    ssrc,
                    attribute: attribute.trim(),
                }
            }
            "crypto" => KnownAttribute::Crypto(required(value)?),
            "candidate" => KnownAttribute::Candidate(required(value)?),
            "ice-ufrag" => KnownAttribute::IceUfrag(required(value)?),
            "ice-pwd" => KnownAttribute::IcePwd(required(value)?),
            "ice-options" => KnownAttribute::IceOptions(required(value)?),
            "fingerprint" => KnownAttribute::Fingerprint(required(value)?),
            "setup" => KnownAttribute::Setup(required(value)?),
            "mid" => KnownAttribute::Mid(required(value)?),
            _ => KnownAttribute::Other,
        })
    }
}

impl RtpMap {
    /// Parses the value of `a=rtpmap`, e.g. `111 opus/48000/2`.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let bad = SdpErrorKind::Attribute;
        let (pt, encoding) = value
            .trim()
            .split_once(' ')
            .ok_or(bad("rtpmap: missing encoding"))?;
        let payload_type: u8 = pt
            .parse()
            .ok()
            .filter(|pt| *pt <= 127)
            .ok_or(bad("rtpmap: payload type not 0-127"))?;
        let mut parts = encoding.trim().split('/');
        let name = parts.next().unwrap_or_default();
        if name.is_empty() {
            return Err(bad("rtpmap: empty encoding name"));
        }
        let clock_rate = parts
            .next()
            .and_then(|r| r.parse().ok())
            .filter(|r| *r > 0)
            .ok_or(bad("rtpmap: bad clock rate"))?;
        let channels = match parts.next() {
            None => None,
            Some(c) => Some(c.parse().map_err(|_| bad("rtpmap: bad channel count"))?),
        };
        if parts.next().is_some() {
            return Err(bad("rtpmap: too many fields"));
        }
        Ok(Self {
            payload_type,
            encoding: name.to_owned(),
            clock_rate,
            channels,
        })
    }

    /// The RFC 3551 static audio payload types that matter to a softphone.
    pub fn static_audio(payload_type: u8) -> Option<Self> {
        let (encoding, clock_rate) = match payload_type {
            0 => ("PCMU", 8000),
            8 => ("PCMA", 8000),
            9 => ("G722", 8000),
            13 => ("CN", 8000),
            _ => return None,
        };
        Some(Self {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels: None,
        })
    }

    /// Whether the encoding name (case-insensitive) and the clock rate are the same.
    pub fn same_codec(&self, name: &str, clock_rate: u32) -> bool {
        self.encoding.eq_ignore_ascii_case(name) && self.clock_rate == clock_rate
    }
}

impl Rtcp {
    /// Parses the value of `a=rtcp`, e.g. `53020` or `53020 IN IP4 126.16.64.4`.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let mut fields = value.split_whitespace();
        let port = fields
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or(SdpErrorKind::Attribute("rtcp: port not a number"))?;
        let connection = match (fields.next(), fields.next(), fields.next()) {
            (None, _, _) => None,
            (Some(network_type), Some(address_type), Some(address)) => Some(Connection {
                network_type: network_type.to_owned(),
                address_type: address_type.to_owned(),
                address: address.to_owned(),
            }),
            _ => return Err(SdpErrorKind::Attribute("rtcp: incomplete address")),
        };
        if fields.next().is_some() {
            return Err(SdpErrorKind::Attribute("rtcp: too many fields"));
        }
        Ok(Self { port, connection })
    }
}

fn required(value: Option<&str>) -> Result<&str, SdpErrorKind> {
    value.ok_or(SdpErrorKind::Attribute("missing value"))
}

fn direction_in(attributes: &[Attribute]) -> Option<Direction> {
    attributes.iter().find_map(|a| match a.known() {
        Ok(KnownAttribute::Direction(d)) => Some(d),
        _ => None,
    })
}

/// `20`, `20.0`, `2.5` (→ 2): milliseconds, truncated.
fn parse_millis(value: &str) -> Result<u32, SdpErrorKind> {
    let whole = value.trim().split('.').next().unwrap_or_default();
    whole
        .parse()
        .map_err(|_| SdpErrorKind::Attribute("not a number of milliseconds"))
}

// ---- Printer: canonical order (RFC 8866 §5), CRLF line ends.

/// Session-level line types printed between `s=` and `c=`, in this order.
const BEFORE_CONNECTION: [char; 4] = ['i', 'u', 'e', 'p'];

/// Where a kept session-level line is printed: `i u e p` first, in that order, the rest after
/// `t=`. The parser sorts by this so that printing does not reorder lines.
pub(super) fn session_line_rank(kind: char) -> usize {
    BEFORE_CONNECTION
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(BEFORE_CONNECTION.len())
}

/// Where a kept media-level line is printed: `i=` before `c=`, the rest after `b=`.
pub(super) fn media_line_rank(kind: char) -> usize {
    usize::from(kind != 'i')
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\n")?;
        write!(f, "o={}\r\n", self.origin)?;
        if self.session_name.is_empty() {
            write!(f, "s= \r\n")?;
        } else {
            write!(f, "s={}\r\n", self.session_name)?;
        }
        for kind in BEFORE_CONNECTION {
            write_other(f, &self.other_lines, |k| k == kind)?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        if self.timings.is_empty() {
            write!(f, "t=0 0\r\n")?;
        }
        for t in &self.timings {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        write_other(f, &self.other_lines, |k| !BEFORE_CONNECTION.contains(&k))?;
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.protocol)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        write!(f, "\r\n")?;
        write_other(f, &self.other_lines, |k| k == 'i')?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        write_other(f, &self.other_lines, |k| k != 'i')?;
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        Ok(())
    }
}

fn write_other(
    f: &mut fmt::Formatter<'_>,
    lines: &[(char, String)],
    select: impl Fn(char) -> bool,
) -> fmt::Result {
    for (kind, value) in lines.iter().filter(|(k, _)| select(*k)) {
        write!(f, "{kind}={value}\r\n")?;
    }
    Ok(())
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.username, self.session_id, self.session_version, self.address
        )
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.network_type, self.address_type, self.address
        )
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}:{}", self.name, value),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        if let Some(channels) = self.channels {
            write!(f, "/{channels}")?;
        }
        Ok(())
    }
}
