//! Sans-IO media: SDP offer/answer, RTP/RTCP, codecs, jitter buffer, DTMF.
//!
//! Nothing here reads a clock, opens a socket or spawns a thread: time comes in as an argument.
#![forbid(unsafe_code)]

pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod rtcp;
pub mod rtp;
pub mod rtp_session;
mod session;
pub mod sdp;
mod types;

pub use types::{CodecKind, CodecSpec, Direction};
pub use session::{MediaConfig, MediaError, MediaEvent, MediaSession, MediaStats, MediaTransmit};
