//! Commands and events as the front ends see them (serde, stable names).

use homeagent_engine::core::{AgentState, CallId, PhoneEvent, RegistrationState};
use homeagent_engine::{EngineCommand, EngineError, EngineEvent};
use serde::{Deserialize, Serialize};

/// What a front end asks of the phone.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Place a call to a SIP URI (or a bare number/user, completed with the account's domain).
    Call {
        uri: String,
    },
    Answer {
        call: u32,
    },
    Decline {
        call: u32,
    },
    Hangup {
        call: u32,
    },
    Hold {
        call: u32,
    },
    Resume {
        call: u32,
    },
    SendDtmf {
        call: u32,
        digits: String,
    },
    /// Blind transfer (SIP REFER) of a connected call to a SIP URI or number.
    Transfer {
        call: u32,
        target: String,
    },
    /// Attended transfer: connects the other party of `call` with the party of our connected
    /// `consultation` call (SIP REFER with Replaces).
    AttendedTransfer {
        call: u32,
        consultation: u32,
    },
    /// Mute (send silence) or unmute the microphone on a call.
    Mute {
        call: u32,
        muted: bool,
    },
    /// Switch the audio input and/or output (specs as `--audio-in`/`--audio-out`:
    /// `device:NAME`, a WAV file, `tone:HZ`, `silence`/`null`; absent: unchanged) for the
    /// calls in progress, at once, and for the next calls.
    SetAudio {
        #[cfg_attr(feature = "specta", specta(optional))]
        input: Option<String>,
        #[cfg_attr(feature = "specta", specta(optional))]
        output: Option<String>,
    },
    /// The agent logs in or out, becomes ready or not ready (`state`: `ready`, `not_ready`
    /// with a `reason`, `logged_out`); on-call and after-call work follow the calls.
    SetAgentState {
        state: AgentChoice,
        #[cfg_attr(feature = "specta", specta(optional))]
        reason: Option<String>,
    },
    /// The wrap-up of a call: its disposition code and a free note, queued durably and
    /// delivered to the platform; ends after-call work.
    Wrapup {
        call: u32,
        disposition: String,
        note: String,
    },
    /// Hang up every call, unregister, then stop ([`Event::Stopped`]).
    Shutdown,
}

impl Command {
    pub(crate) fn into_engine(self) -> EngineCommand {
        use homeagent_engine::core::Command as C;
        let phone = match self {
            Self::Call { uri } => C::Call {
                uri,
                next_hop: None,
            },
            Self::Answer { call } => C::Answer {
                call: CallId(u64::from(call)),
            },
            Self::Decline { call } => C::Decline {
                call: CallId(u64::from(call)),
            },
            Self::Hangup { call } => C::Hangup {
                call: CallId(u64::from(call)),
            },
            Self::Hold { call } => C::Hold {
                call: CallId(u64::from(call)),
            },
            Self::Resume { call } => C::Resume {
                call: CallId(u64::from(call)),
            },
            Self::Transfer { call, target } => C::Transfer {
                call: CallId(u64::from(call)),
                target,
            },
            Self::AttendedTransfer { call, consultation } => C::AttendedTransfer {
                call: CallId(u64::from(call)),
                consultation: CallId(u64::from(consultation)),
            },
            Self::Shutdown => C::Shutdown,
            Self::SetAgentState { state, reason } => C::SetAgentState {
                state: match state {
                    AgentChoice::LoggedOut => AgentState::LoggedOut,
                    AgentChoice::NotReady => AgentState::NotReady {
                        reason: reason.unwrap_or_default(),
                    },
                    AgentChoice::Ready => AgentState::Ready,
                },
            },
            // The wrap-up itself is the workflow's (outbox); the phone only leaves ACW.
            Self::Wrapup { .. } => C::WrapupDone,
            Self::SetAudio { input, output } => {
                return EngineCommand::SetAudio { input, output };
            }
            Self::Mute { call, muted } => {
                return EngineCommand::Mute {
                    call: CallId(u64::from(call)),
                    muted,
                };
            }
            Self::SendDtmf { call, digits } => {
                return EngineCommand::SendDtmf {
                    call: CallId(u64::from(call)),
                    digits,
                };
            }
        };
        EngineCommand::Phone(phone)
    }
}

/// The states an agent chooses (on-call and after-call work follow the calls). An unknown
/// value is a bad command, never silently "ready".
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentChoice {
    Ready,
    NotReady,
    LoggedOut,
}

/// The rows of a customer card, in order (label, value as text). In JSON: an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContextFields(pub Vec<(String, String)>);

impl Serialize for ContextFields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (label, value) in &self.0 {
            map.serialize_entry(label, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ContextFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Rows;
        impl<'de> serde::de::Visitor<'de> for Rows {
            type Value = ContextFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of text fields")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut rows = Vec::new();
                while let Some((label, value)) = map.next_entry::<String, String>()? {
                    rows.push((label, value));
                }
                Ok(ContextFields(rows))
            }
        }
        deserializer.deserialize_map(Rows)
    }
}

/// One row of a customer card.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextRow {
    pub label: String,
    pub value: String,
}

impl ContextFields {
    /// The rows as a list, in order.
    pub fn rows(&self) -> Vec<ContextRow> {
        self.0
            .iter()
            .map(|(label, value)| ContextRow {
                label: label.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

/// Error codes front ends branch on (never on message strings).
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BindFailed,
    BadSettings,
    AudioDevice,
    Network,
    Stopped,
    Internal,
}

impl ErrorCode {
    pub(crate) fn from_engine(error: &EngineError) -> Self {
        match error {
            EngineError::Bind { .. } => Self::BindFailed,
            EngineError::Settings(_) => Self::BadSettings,
            EngineError::Resolve { .. } => Self::Network,
            _ => Self::Internal,
        }
    }
}

/// Media figures of one call, as in the CLI's `--json` summary.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStats {
    pub codec: Option<String>,
    /// Seconds from answer to end (0 if never answered).
    pub duration_s: f64,
    pub packets_sent: u32,
    pub packets_received: u32,
    pub packets_lost: u32,
    /// Interarrival jitter of the received stream, ms (RFC 3550).
    pub jitter_ms: f64,
    /// Round-trip time from RTCP, ms (when the peer sent reports).
    pub rtt_ms: Option<f64>,
    /// Mean MOS estimate over the call (E-model, ITU-T G.107; 1.0-4.5).
    pub mos: Option<f64>,
}

/// What the phone tells the front ends. Serialised as `{"event":"<name>", ...}`.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Sockets bound; the phone is ready.
    Ready {
        sip: String,
    },
    Registering {
        registrar: String,
    },
    Registered {
        expires: u32,
    },
    RegistrationFailed {
        code: Option<u16>,
        reason: String,
    },
    Unregistered,
    /// The agent's state: `logged_out`, `ready`, `not_ready` (with its `reason`), `on_call`,
    /// `after_call_work`.
    AgentState {
        state: String,
        reason: Option<String>,
    },
    /// The customer's context for an incoming call (screen-pop): `fields`, the customer card's
    /// rows (label → value, as text, in order), or `error` when the CRM was slow, down or
    /// answered garbage (the call is answerable regardless).
    Context {
        call: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(
            feature = "specta",
            specta(optional, type = Option<std::collections::HashMap<String, String>>)
        )]
        fields: Option<ContextFields>,
        /// The same rows as a list, in the configured order (a JSON object's order is lost
        /// in JavaScript when labels look like numbers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "specta", specta(optional))]
        rows: Option<Vec<ContextRow>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "specta", specta(optional))]
        error: Option<String>,
    },
    /// A wrap-up is stored in the outbox (durable), to be delivered under `key`.
    WrapupQueued {
        call: u32,
        key: String,
        disposition: String,
    },
    /// The platform acknowledged wrap-ups; `pending` are still to deliver.
    WrapupDelivered {
        delivered: u32,
        pending: u32,
    },
    Calling {
        call: u32,
        to: String,
    },
    Incoming {
        call: u32,
        from: String,
        to: String,
    },
    Ringing {
        call: u32,
    },
    Answered {
        call: u32,
        auto: bool,
    },
    Established {
        call: u32,
        codec: String,
        remote_rtp: String,
        /// The SRTP suite protecting the media (e.g. `AEAD_AES_128_GCM`); absent: plain RTP.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "specta", specta(optional))]
        srtp: Option<String>,
    },
    Hold {
        call: u32,
        local: bool,
    },
    Resume {
        call: u32,
        local: bool,
    },
    Dtmf {
        call: u32,
        digit: String,
    },
    DtmfSent {
        call: u32,
        digits: String,
    },
    Muted {
        call: u32,
        muted: bool,
    },
    /// Our blind transfer reached its target; the call ends (`reason` "transferred").
    Transferred {
        call: u32,
        target: String,
    },
    /// The transfer did not happen; the call goes on.
    TransferFailed {
        call: u32,
        reason: String,
    },
    /// The WAV given as audio input has been played to the end.
    AudioInputEnded {
        call: u32,
    },
    /// ICE + DTLS-SRTP media is connected (browsers, WebRTC gateways): the candidate pair
    /// in use and the SRTP suite DTLS negotiated. Again after an ICE restart.
    IceConnected {
        call: u32,
        /// Our candidate, e.g. `host udp 127.0.0.1:40000`.
        local: String,
        /// The peer's candidate.
        remote: String,
        srtp: String,
    },
    /// Live call quality over the last few seconds (every 5 s during a call).
    Quality {
        call: u32,
        /// E-model MOS of the call (the worse direction), 1.0-4.5.
        mos: f64,
        /// MOS of what we hear.
        local_mos: f64,
        /// MOS of what the other side hears (from its RTCP reports).
        remote_mos: Option<f64>,
        /// Packets of the incoming stream lost in the network, percent.
        loss_percent: f64,
        /// Loss the other side reports about our stream, percent.
        remote_loss_percent: Option<f64>,
        /// Frames we played as concealment (loss not repaired by FEC, late packets), percent.
        concealed_percent: f64,
        jitter_ms: f64,
        rtt_ms: Option<f64>,
        /// Jitter-buffer delay, ms.
        playout_delay_ms: f64,
        /// Mouth-to-ear estimate without the sound devices, ms.
        one_way_delay_ms: f64,
        /// Lost frames rebuilt from Opus in-band FEC, over the window.
        fec_recovered: u32,
    },
    Ended {
        call: u32,
        reason: String,
        /// True when the call was answered and ended by a hang-up.
        normal: bool,
        code: Option<u16>,
        detail: String,
        stats: CallStats,
    },
    Warning {
        message: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Stopped,
}

impl Event {
    /// The call the event is about, if it is about one.
    pub fn call(&self) -> Option<u32> {
        match self {
            Self::Calling { call, .. }
            | Self::Incoming { call, .. }
            | Self::Ringing { call }
            | Self::Answered { call, .. }
            | Self::Established { call, .. }
            | Self::Hold { call, .. }
            | Self::Resume { call, .. }
            | Self::Dtmf { call, .. }
            | Self::DtmfSent { call, .. }
            | Self::Muted { call, .. }
            | Self::Transferred { call, .. }
            | Self::TransferFailed { call, .. }
            | Self::AudioInputEnded { call }
            | Self::Quality { call, .. }
            | Self::IceConnected { call, .. }
            | Self::Ended { call, .. } => Some(*call),
            Self::Context { call, .. } | Self::WrapupQueued { call, .. } => Some(*call),
            Self::Ready { .. }
            | Self::AgentState { .. }
            | Self::WrapupDelivered { .. }
            | Self::Registering { .. }
            | Self::Registered { .. }
            | Self::RegistrationFailed { .. }
            | Self::Unregistered
            | Self::Warning { .. }
            | Self::Error { .. }
            | Self::Stopped => None,
        }
    }
}

impl From<EngineEvent> for Event {
    fn from(event: EngineEvent) -> Self {
        match event {
            EngineEvent::Ready { sip } => Self::Ready {
                sip: sip.to_string(),
            },
            EngineEvent::Phone(event) => from_phone(event),
            EngineEvent::Dtmf { call, digit } => Self::Dtmf {
                call: id(call),
                digit: digit.to_string(),
            },
            EngineEvent::DtmfSent { call, digits } => Self::DtmfSent {
                call: id(call),
                digits,
            },
            EngineEvent::AudioInputEnded { call } => Self::AudioInputEnded { call: id(call) },
            EngineEvent::Muted { call, muted } => Self::Muted {
                call: id(call),
                muted,
            },
            EngineEvent::IceConnected {
                call,
                local,
                remote,
                srtp,
            } => Self::IceConnected {
                call: id(call),
                local,
                remote,
                srtp: srtp.to_string(),
            },
            EngineEvent::Quality { call, report } => Self::Quality {
                call: id(call),
                mos: round2(report.mos),
                local_mos: round2(report.local_mos),
                remote_mos: report.remote_mos.map(round2),
                loss_percent: round2(report.loss_percent),
                remote_loss_percent: report.remote_loss_percent.map(round2),
                concealed_percent: round2(report.concealed_percent),
                jitter_ms: round2(report.jitter_ms),
                rtt_ms: report.rtt_ms.map(round2),
                playout_delay_ms: round2(report.playout_delay_ms),
                one_way_delay_ms: round2(report.one_way_delay_ms),
                fec_recovered: count(report.fec_recovered),
            },
            EngineEvent::Ended {
                call,
                reason,
                code,
                detail,
                stats,
            } => Self::Ended {
                call: id(call),
                reason: reason.as_str().to_owned(),
                normal: reason.is_normal(),
                code,
                detail,
                stats: CallStats {
                    codec: stats.codec.map(|c| c.to_string()),
                    duration_s: stats.duration.as_secs_f64(),
                    packets_sent: count(stats.packets_sent),
                    packets_received: count(stats.packets_received),
                    packets_lost: count(stats.packets_lost),
                    jitter_ms: stats.jitter_ms,
                    rtt_ms: stats.rtt_ms,
                    mos: stats.mos.map(round2),
                },
            },
            EngineEvent::Warning { message } => Self::Warning { message },
            EngineEvent::Error { message } => Self::Error {
                code: ErrorCode::Internal,
                message,
            },
        }
    }
}

/// Call ids are small sequential numbers; u32 keeps them exact in JavaScript.
fn id(call: CallId) -> u32 {
    u32::try_from(call.0).unwrap_or(u32::MAX)
}

/// Counters as u32 (exact in JavaScript; a call never sends 2^32 packets).
fn count(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn from_phone(event: PhoneEvent) -> Event {
    match event {
        PhoneEvent::Registration(state) => match state {
            RegistrationState::Registering => Event::Registering {
                registrar: String::new(),
            },
            RegistrationState::Registered { expires } => Event::Registered { expires },
            RegistrationState::Failed { code, reason } => {
                Event::RegistrationFailed { code, reason }
            }
            RegistrationState::Unregistered => Event::Unregistered,
        },
        PhoneEvent::Calling { call, to } => Event::Calling { call: id(call), to },
        PhoneEvent::AgentState { state } => Event::AgentState {
            state: state.as_str().to_owned(),
            reason: match state {
                AgentState::NotReady { reason } => Some(reason),
                _ => None,
            },
        },
        PhoneEvent::Incoming { call, from, to, .. } => Event::Incoming {
            call: id(call),
            from,
            to,
        },
        PhoneEvent::Ringing { call } => Event::Ringing { call: id(call) },
        PhoneEvent::Answered { call, auto } => Event::Answered {
            call: id(call),
            auto,
        },
        PhoneEvent::Established {
            call,
            codec,
            remote_rtp,
            srtp,
        } => Event::Established {
            call: id(call),
            codec: codec.to_string(),
            remote_rtp: remote_rtp.to_string(),
            srtp: srtp.map(|suite| suite.to_string()),
        },
        PhoneEvent::Hold {
            call,
            local,
            on: true,
        } => Event::Hold {
            call: id(call),
            local,
        },
        PhoneEvent::Hold {
            call,
            local,
            on: false,
        } => Event::Resume {
            call: id(call),
            local,
        },
        PhoneEvent::Transferred { call, target } => Event::Transferred {
            call: id(call),
            target,
        },
        PhoneEvent::TransferFailed { call, reason } => Event::TransferFailed {
            call: id(call),
            reason,
        },
        // The engine turns `Ended` into `EngineEvent::Ended` with the media figures.
        PhoneEvent::Ended {
            call,
            reason,
            code,
            detail,
        } => Event::Ended {
            call: id(call),
            reason: reason.as_str().to_owned(),
            normal: reason.is_normal(),
            code,
            detail,
            stats: CallStats::default(),
        },
        PhoneEvent::Stopped => Event::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_an_event_tag() {
        let json = serde_json::to_string(&Event::Answered {
            call: 3,
            auto: true,
        })
        .unwrap();
        assert_eq!(json, r#"{"event":"answered","call":3,"auto":true}"#);
    }

    #[test]
    fn commands_round_trip() {
        let command = Command::SendDtmf {
            call: 1,
            digits: "12#".into(),
        };
        let json = serde_json::to_string(&command).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), command);
        // A side left out is unchanged.
        let switch: Command =
            serde_json::from_str(r#"{"command":"set_audio","output":"device:usb-headset"}"#)
                .unwrap();
        assert_eq!(
            switch,
            Command::SetAudio {
                input: None,
                output: Some("device:usb-headset".into())
            }
        );
        let paused: Command = serde_json::from_str(
            r#"{"command":"set_agent_state","state":"not_ready","reason":"pause"}"#,
        )
        .unwrap();
        assert_eq!(
            paused,
            Command::SetAgentState {
                state: AgentChoice::NotReady,
                reason: Some("pause".into())
            }
        );
        // A typo is an error, not a ready agent.
        assert!(
            serde_json::from_str::<Command>(r#"{"command":"set_agent_state","state":"not-ready"}"#)
                .is_err()
        );
    }
}
