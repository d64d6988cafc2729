//! What the phone tells its driver and front ends.

use std::fmt;
use std::net::SocketAddr;

use homeagent_media::sdp::Negotiated;

/// Identifies a call for the lifetime of the phone (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Registration with the account's registrar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    Registering,
    Registered { expires: u32 },
    Failed { code: Option<u16>, reason: String },
    Unregistered,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// We hung up after the call was answered.
    LocalHangup,
    /// The other side hung up (BYE).
    RemoteHangup,
    /// We cancelled or declined before answer.
    Cancelled,
    /// The caller cancelled before we answered.
    RemoteCancelled,
    /// We declined an incoming call.
    Declined,
    /// 486 / 600.
    Busy,
    /// Another 4xx–6xx final response.
    Rejected,
    /// No final response, or no ACK, in time.
    Timeout,
    /// 401/407 again after our credentials, or 403.
    AuthFailed,
    /// No codec in common (488) or a malformed SDP.
    MediaFailed,
    /// We transferred the call (the other party now talks to the transfer target).
    Transferred,
    /// Transport error or internal error.
    Failed,
}

impl EndReason {
    /// True when the call was answered and ended by a hang-up, as it should.
    pub fn is_normal(self) -> bool {
        matches!(
            self,
            Self::LocalHangup | Self::RemoteHangup | Self::Transferred
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalHangup => "local_hangup",
            Self::RemoteHangup => "remote_hangup",
            Self::Cancelled => "cancelled",
            Self::RemoteCancelled => "remote_cancelled",
            Self::Declined => "declined",
            Self::Busy => "busy",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::AuthFailed => "auth_failed",
            Self::MediaFailed => "media_failed",
            Self::Transferred => "transferred",
            Self::Failed => "failed",
        }
    }
}

/// Events for the front ends.
#[derive(Debug, Clone, PartialEq)]
pub enum PhoneEvent {
    Registration(RegistrationState),
    /// An outgoing call was sent.
    Calling {
        call: CallId,
        to: String,
    },
    /// An incoming call is offered (ringing locally).
    Incoming {
        call: CallId,
        from: String,
        to: String,
        /// The INVITE's headers (for the customer-context lookup: `X-Customer-Id`, …).
        headers: Vec<(String, String)>,
    },
    /// The agent's state changed (`since`: when, as given by the inputs' clock).
    AgentState {
        state: crate::AgentState,
    },
    /// The remote side is ringing (180/183).
    Ringing {
        call: CallId,
    },
    /// An incoming call was answered by us.
    Answered {
        call: CallId,
        auto: bool,
    },
    /// Media is flowing: the call is up.
    Established {
        call: CallId,
        codec: homeagent_media::CodecKind,
        remote_rtp: SocketAddr,
        /// The SRTP suite protecting the media, `None` for plain RTP.
        srtp: Option<homeagent_media::sdp::SrtpSuite>,
    },
    /// The call was put on hold (`local`: by us) or resumed.
    Hold {
        call: CallId,
        local: bool,
        on: bool,
    },
    /// The other party accepted our transfer and reached the target (the call then ends with
    /// [`EndReason::Transferred`]).
    Transferred {
        call: CallId,
        target: String,
    },
    /// The transfer did not happen; the call goes on.
    TransferFailed {
        call: CallId,
        reason: String,
    },
    Ended {
        call: CallId,
        reason: EndReason,
        code: Option<u16>,
        detail: String,
    },
    /// All calls ended and the account unregistered after [`crate::Command::Shutdown`].
    Stopped,
}

/// Instructions to the driver for a call's RTP session.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    Start {
        call: CallId,
        local_port: u16,
        media: Negotiated,
    },
    Update {
        call: CallId,
        media: Negotiated,
    },
    Stop {
        call: CallId,
    },
}

/// Re-export for drivers.
pub type MediaParams = Negotiated;
