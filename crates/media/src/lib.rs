//! Sans-IO media: SDP offer/answer, RTP/RTCP, codecs, jitter buffer, DTMF.
//!
//! Nothing here reads a clock, opens a socket or spawns a thread: time comes in as an argument.
//!
//! The driver owns one [`MediaSession`] per call and follows its contract: feed it microphone
//! frames ([`MediaSession::send_audio`]), datagrams ([`MediaSession::handle_packet`]) and
//! timeouts ([`MediaSession::handle_timeout`] at [`MediaSession::poll_timeout`]); pull speaker
//! frames ([`MediaSession::pull_audio`]); after each call drain
//! [`MediaSession::poll_transmit`] and [`MediaSession::poll_event`]. The building blocks
//! ([`codec`], [`rtp`], [`rtcp`], [`rtp_session`], [`jitter`], [`dtmf`], [`quality`],
//! [`comfort_noise`], [`red`]) are public for tests, tools and fuzzing.
#![forbid(unsafe_code)]

pub mod codec;
pub mod comfort_noise;
pub mod dtmf;
pub mod jitter;
pub mod quality;
pub mod red;
pub mod rtcp;
pub mod rtp;
pub mod rtp_session;
pub mod sdp;
mod session;
pub mod srtp;
pub mod stun;
mod types;
pub mod webrtc;

pub use quality::QualityReport;
pub use session::{MediaConfig, MediaError, MediaEvent, MediaSession, MediaStats, MediaTransmit};
pub use types::{CodecKind, CodecSpec, Direction};
