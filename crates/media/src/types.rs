//! Small types shared by SDP negotiation and the RTP media session.

use std::fmt;

/// A codec as negotiated in SDP (`a=rtpmap` + `a=fmtp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecSpec {
    /// RTP payload type (0..=127).
    pub payload_type: u8,
    /// Encoding name as in `a=rtpmap`, e.g. `opus`, `PCMU`, `telephone-event`.
    pub name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Number of channels in the rtpmap (opus is always `2` in SDP, RFC 7587).
    pub channels: u8,
    /// Raw `a=fmtp` parameters, if any.
    pub fmtp: Option<String>,
}

impl CodecSpec {
    /// The value of one `a=fmtp` parameter (`name=value`, `;`-separated, names
    /// case-insensitive), e.g. `fmtp_param("usedtx") == Some("1")`.
    pub fn fmtp_param(&self, name: &str) -> Option<&str> {
        self.fmtp.as_deref()?.split(';').find_map(|parameter| {
            let (key, value) = parameter.split_once('=')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// Whether a boolean `a=fmtp` parameter is `1` (RFC 7587 `usedtx`, `useinbandfec`, ...).
    pub fn fmtp_flag(&self, name: &str) -> bool {
        self.fmtp_param(name) == Some("1")
    }
}

/// The audio codecs the media session can encode and decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    Opus,
}

impl CodecKind {
    /// Matches an rtpmap encoding name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "pcmu" => Some(Self::Pcmu),
            "pcma" => Some(Self::Pcma),
            "opus" => Some(Self::Opus),
            _ => None,
        }
    }

    /// The name used on the CLI and in config (`pcmu`, `pcma`, `opus`).
    pub fn config_name(self) -> &'static str {
        match self {
            Self::Pcmu => "pcmu",
            Self::Pcma => "pcma",
            Self::Opus => "opus",
        }
    }

    /// The static or conventional payload type and rtpmap for an offer.
    pub fn default_spec(self) -> CodecSpec {
        let (payload_type, name, clock_rate, channels, fmtp) = match self {
            Self::Pcmu => (0, "PCMU", 8000, 1, None),
            Self::Pcma => (8, "PCMA", 8000, 1, None),
            Self::Opus => (
                111,
                "opus",
                48000,
                2,
                Some("minptime=10;useinbandfec=1;usedtx=1"),
            ),
        };
        CodecSpec {
            payload_type,
            name: name.to_owned(),
            clock_rate,
            channels,
            fmtp: fmtp.map(str::to_owned),
        }
    }

    /// Audio sample rate the codec's encoder takes and decoder yields (mono PCM).
    pub fn sample_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::Opus => 48000,
        }
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

/// Media direction (`a=sendrecv` …), always from the point of view of the side that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction the other side must answer with (RFC 3264 §6.1).
    pub fn reversed(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            d => d,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The SDP attribute name, e.g. `sendrecv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }
}
