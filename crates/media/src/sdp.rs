//! SDP (RFC 8866, formerly RFC 4566) model, parser, printer and offer/answer (RFC 3264).
//!
//! - [`SessionDescription::parse`] is tolerant (CRLF or LF, trailing whitespace, unknown lines and
//!   attributes are kept) but rejects what is structurally wrong, with the line number and the
//!   reason. It never panics, whatever the input.
//! - `Display` prints canonical SDP (CRLF line ends, RFC 8866 line order).
//! - Attributes are kept raw and in order; known ones are typed on demand
//!   ([`Attribute::known`], [`MediaDescription::rtpmaps`], [`MediaDescription::direction`] …).
//! - [`create_offer`], [`create_answer`] and [`apply_answer`] negotiate one audio stream
//!   (plain RTP/AVP or RTP/AVPF) into a [`Negotiated`] result for the RTP session.

mod model;
mod negotiate;
mod parse;

#[cfg(test)]
mod tests;

pub use model::{
    Attribute, Bandwidth, Connection, KnownAttribute, MediaDescription, Origin, Protocol, Rtcp,
    RtpMap, SessionDescription, Timing,
};
pub use negotiate::{
    LocalMedia, Negotiated, NegotiationError, apply_answer, create_answer, create_offer,
};
pub use parse::{SdpError, SdpErrorKind};
