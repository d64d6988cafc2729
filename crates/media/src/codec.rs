//! Audio codecs behind one encoder trait and one decoder trait.
//!
//! PCM is always mono `i16` at [`CodecKind::sample_rate`]; one call encodes or decodes one
//! packet's worth of audio (usually 20 ms).

mod g711;
mod opus;

use std::fmt;

use crate::CodecKind;

pub use g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};

/// Encodes mono PCM frames into RTP payloads.
pub trait AudioEncoder: Send + fmt::Debug {
    fn kind(&self) -> CodecKind;

    /// Encodes one frame of mono PCM at [`CodecKind::sample_rate`], appending the payload to
    /// `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Tells the encoder the loss rate the remote reports, so it can spend bits on redundancy
    /// (Opus in-band FEC). Codecs without redundancy ignore it.
    fn set_packet_loss_percent(&mut self, percent: u8);

    /// Turns in-band redundancy (Opus FEC) on or off; on by default where the codec has it.
    fn set_inband_fec(&mut self, _enabled: bool) {}

    /// Tells the encoder each frame also travels `copies` more times (RFC 2198 RED), so it can
    /// keep the total bitrate sane. 0 by default.
    fn set_redundant_copies(&mut self, _copies: u8) {}

    /// Protects against loss in bursts inside the codec's own packets (Opus DRED: each packet
    /// also carries ~100 ms of low-rate audio before it; decoders without it skip it). Off by
    /// default.
    fn set_deep_redundancy(&mut self, _on: bool) {}

    /// Turns discontinuous transmission on or off (Opus DTX, RFC 7587 `usedtx=1`); off by
    /// default. In DTX the encoder yields [`is_dtx_payload`] frames that are not to be sent.
    fn set_dtx(&mut self, _enabled: bool) {}
}

/// Decodes RTP payloads into mono PCM and conceals lost packets.
pub trait AudioDecoder: Send + fmt::Debug {
    fn kind(&self) -> CodecKind;

    /// Decodes one payload, appending the samples to `out`; returns how many were appended.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError>;

    /// Appends `samples` samples that stand in for a lost packet (packet loss concealment).
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), CodecError>;

    /// Recovers a lost packet of `samples` samples from the redundancy carried in the packet
    /// that follows it (`next_payload`). Returns `false`, appending nothing, when the codec has
    /// no such redundancy.
    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<bool, CodecError>;

    /// Rebuilds a lost packet of `samples` samples from deep redundancy (Opus DRED) carried
    /// in a later packet, `later_payload`, which starts `frames_before` packets after the
    /// lost one's start (1: the next packet). Returns `false`, appending nothing, when that
    /// packet does not reach back so far (or the codec has no such redundancy).
    fn decode_dred(
        &mut self,
        _later_payload: &[u8],
        _frames_before: usize,
        _samples: usize,
        _out: &mut Vec<i16>,
    ) -> Result<bool, CodecError> {
        Ok(false)
    }
}

/// Codec failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("opus {operation} failed: {source}")]
    Opus {
        operation: &'static str,
        #[source]
        source: homeagent_opus::Error,
    },
    #[error("frame of {samples} samples is not a valid {kind} frame size")]
    FrameSize { kind: CodecKind, samples: usize },
}

/// Whether an encoded payload is a DTX frame: one an encoder in discontinuous transmission
/// yields for silence and that is not sent (libopus: two bytes or less, RFC 7587 §3.1.3).
pub fn is_dtx_payload(kind: CodecKind, payload: &[u8]) -> bool {
    kind == CodecKind::Opus && payload.len() <= 2
}

/// Whether a received payload says the sender is silent, so that a pause in its packets after it
/// is discontinuous transmission rather than loss: an Opus DTX frame, or an Opus SILK/hybrid
/// packet whose voice-activity flags are all clear. Always `false` for G.711 (its silences are
/// announced with RFC 3389 comfort noise).
pub fn signals_silence(kind: CodecKind, payload: &[u8]) -> bool {
    match kind {
        CodecKind::Opus => is_dtx_payload(kind, payload) || opus::is_inactive(payload),
        CodecKind::Pcmu | CodecKind::Pcma => false,
    }
}

/// A fresh encoder for `kind`.
pub fn new_encoder(kind: CodecKind) -> Result<Box<dyn AudioEncoder>, CodecError> {
    Ok(match kind {
        CodecKind::Pcmu => Box::new(g711::G711Encoder::new(g711::Law::Mu)),
        CodecKind::Pcma => Box::new(g711::G711Encoder::new(g711::Law::A)),
        CodecKind::Opus => Box::new(opus::OpusEncoder::new()?),
    })
}

/// A fresh decoder for `kind`.
pub fn new_decoder(kind: CodecKind) -> Result<Box<dyn AudioDecoder>, CodecError> {
    Ok(match kind {
        CodecKind::Pcmu => Box::new(g711::G711Decoder::new(g711::Law::Mu)),
        CodecKind::Pcma => Box::new(g711::G711Decoder::new(g711::Law::A)),
        CodecKind::Opus => Box::new(opus::OpusDecoder::new()?),
    })
}
