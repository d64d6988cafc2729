//! Tokio driver around the sans-IO phone: sockets (UDP, TCP, TLS, WebSocket), the single timer
//! one media task per call (RTP sockets + audio source/sink), name resolution.
//!
//! [`Engine::start`] binds everything and returns channels: [`EngineCommand`]s in,
//! [`EngineEvent`]s out. The `api` crate wraps these for the front ends.
#![forbid(unsafe_code)]

mod arrival;
mod driver;
mod media;
mod relay;
mod settings;
mod tls;
mod transport;
mod turn_stream;
mod ws;

use std::net::SocketAddr;

pub use homeagent_audio::{SinkSpec, SourceSpec};
pub use homeagent_core as core;
pub use media::CallStats;
pub use settings::{
    DEFAULT_KEEPALIVE, IceMode, PhoneSettings, SettingsError, TlsSettings, TurnSettings,
};
pub use tls::TlsConfigError;

use homeagent_core::{CallId, EndReason, PhoneEvent};
use tokio::sync::mpsc;

/// Commands from a front end.
#[derive(Debug, Clone)]
pub enum EngineCommand {
    Phone(homeagent_core::Command),
    SendDtmf {
        call: CallId,
        digits: String,
    },
    /// Microphone muted (silence is sent) or live again; the call stays up.
    Mute {
        call: CallId,
        muted: bool,
    },
    /// Audio input and/or output (specs as in the settings: `device:NAME`, a WAV file, …) for
    /// the calls in progress, switched at once, and for the next calls.
    SetAudio {
        input: Option<String>,
        output: Option<String>,
    },
}

/// Events to the front ends.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// Sockets bound; commands are accepted.
    Ready {
        sip: SocketAddr,
    },
    Phone(PhoneEvent),
    Dtmf {
        call: CallId,
        digit: char,
    },
    DtmfSent {
        call: CallId,
        digits: String,
    },
    AudioInputEnded {
        call: CallId,
    },
    Muted {
        call: CallId,
        muted: bool,
    },
    /// ICE found a working path and DTLS keyed SRTP (WebRTC-style media): audio can flow.
    /// Again after an ICE restart.
    IceConnected {
        call: CallId,
        /// Our candidate of the selected pair, e.g. `host udp 127.0.0.1:40000`.
        local: String,
        /// The peer's.
        remote: String,
        /// The SRTP protection profile DTLS negotiated.
        srtp: homeagent_media::sdp::SrtpSuite,
    },
    /// Live quality of a call, every few seconds.
    Quality {
        call: CallId,
        report: homeagent_media::QualityReport,
    },
    /// A call ended; carries the media figures.
    Ended {
        call: CallId,
        reason: EndReason,
        code: Option<u16>,
        detail: String,
        stats: CallStats,
    },
    Warning {
        message: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("cannot bind SIP socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("TLS settings: {0}")]
    Tls(#[from] TlsConfigError),
    #[error("cannot resolve {what}: {reason}")]
    Resolve { what: String, reason: String },
    #[error("no free RTP port in {0}-{1}")]
    NoRtpPort(u16, u16),
}

/// A running engine: the command and event channels.
#[derive(Debug)]
pub struct Engine {
    commands: mpsc::Sender<EngineCommand>,
    events: mpsc::Receiver<EngineEvent>,
}

impl Engine {
    /// Validates the settings, binds the SIP sockets, resolves the registrar and starts the
    /// driver task on the current runtime.
    pub async fn start(settings: PhoneSettings) -> Result<Self, EngineError> {
        let (commands, events) = driver::start(settings).await?;
        Ok(Self { commands, events })
    }

    pub fn into_channels(self) -> (mpsc::Sender<EngineCommand>, mpsc::Receiver<EngineEvent>) {
        (self.commands, self.events)
    }
}

/// An audio device as the front ends list it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AudioDevice {
    pub name: String,
    pub input: bool,
    pub output: bool,
    pub default_input: bool,
    pub default_output: bool,
}

/// The audio devices usable as `device:NAME`.
pub fn list_audio_devices() -> Result<Vec<AudioDevice>, String> {
    audio_devices(homeagent_audio::list_devices())
}

/// The devices of the preferred sound host only (PulseAudio/PipeWire when running): what a
/// hot-plug watch polls.
pub fn list_preferred_audio_devices() -> Result<Vec<AudioDevice>, String> {
    audio_devices(homeagent_audio::list_preferred_devices())
}

fn audio_devices(
    devices: Result<Vec<homeagent_audio::DeviceInfo>, homeagent_audio::AudioError>,
) -> Result<Vec<AudioDevice>, String> {
    let devices = devices.map_err(|e| e.to_string())?;
    Ok(devices
        .into_iter()
        .map(|d| AudioDevice {
            name: d.name,
            input: d.input,
            output: d.output,
            default_input: d.default_input,
            default_output: d.default_output,
        })
        .collect())
}
