//! Opus (RFC 6716 / RFC 7587): 48 kHz mono, VoIP application, in-band FEC on, DTX off.

use ::opus::{Application, Bitrate, Channels, Decoder, Encoder};

use super::{AudioDecoder, AudioEncoder, CodecError};
use crate::CodecKind;

const SAMPLE_RATE: u32 = 48_000;
/// The largest Opus packet: 120 ms at 48 kHz.
const MAX_PACKET_SAMPLES: usize = 5760;
const MAX_PAYLOAD_BYTES: usize = 1275;
/// Loss assumed until the remote reports one: enough for FEC to be worth sending.
const DEFAULT_LOSS_PERCENT: u8 = 5;

fn opus_error(operation: &'static str) -> impl FnOnce(::opus::Error) -> CodecError {
    move |source| CodecError::Opus { operation, source }
}

#[derive(Debug)]
pub(super) struct OpusEncoder {
    encoder: Encoder,
    scratch: Vec<u8>,
}

impl OpusEncoder {
    pub(super) fn new() -> Result<Self, CodecError> {
        let mut encoder = Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip)
            .map_err(opus_error("encoder create"))?;
        encoder
            .set_inband_fec(true)
            .map_err(opus_error("set inband fec"))?;
        encoder
            .set_packet_loss_perc(i32::from(DEFAULT_LOSS_PERCENT))
            .map_err(opus_error("set packet loss"))?;
        encoder.set_dtx(false).map_err(opus_error("set dtx"))?;
        encoder
            .set_bitrate(Bitrate::Bits(32_000))
            .map_err(opus_error("set bitrate"))?;
        Ok(Self {
            encoder,
            scratch: vec![0; MAX_PAYLOAD_BYTES],
        })
    }
}

impl AudioEncoder for OpusEncoder {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if ![120, 240, 480, 960, 1920, 2880].contains(&pcm.len()) {
            return Err(CodecError::FrameSize {
                kind: CodecKind::Opus,
                samples: pcm.len(),
            });
        }
        let len = self
            .encoder
            .encode(pcm, &mut self.scratch)
            .map_err(opus_error("encode"))?;
        out.extend_from_slice(self.scratch.get(..len).unwrap_or_default());
        Ok(())
    }

    fn set_packet_loss_percent(&mut self, percent: u8) {
        let percent = i32::from(percent.min(100));
        if let Err(error) = self.encoder.set_packet_loss_perc(percent) {
            tracing::warn!(%error, "opus: cannot set packet loss percentage");
        }
    }
}

#[derive(Debug)]
pub(super) struct OpusDecoder {
    decoder: Decoder,
    scratch: Vec<i16>,
}

impl OpusDecoder {
    pub(super) fn new() -> Result<Self, CodecError> {
        Ok(Self {
            decoder: Decoder::new(SAMPLE_RATE, Channels::Mono)
                .map_err(opus_error("decoder create"))?,
            scratch: vec![0; MAX_PACKET_SAMPLES],
        })
    }

    fn decode_into(
        &mut self,
        payload: &[u8],
        samples: usize,
        fec: bool,
        out: &mut Vec<i16>,
    ) -> Result<usize, CodecError> {
        let samples = samples.min(MAX_PACKET_SAMPLES);
        let buffer = self.scratch.get_mut(..samples).unwrap_or_default();
        let decoded = self
            .decoder
            .decode(payload, buffer, fec)
            .map_err(opus_error("decode"))?;
        out.extend_from_slice(buffer.get(..decoded).unwrap_or_default());
        Ok(decoded)
    }
}

impl AudioDecoder for OpusDecoder {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if payload.is_empty() {
            // An empty slice means "lost" to libopus; an empty payload carries no audio.
            return Ok(0);
        }
        self.decode_into(payload, MAX_PACKET_SAMPLES, false, out)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), CodecError> {
        let mut remaining = samples;
        while remaining > 0 {
            // libopus conceals in multiples of 2.5 ms; ask for at most one packet at a time.
            let chunk = remaining.min(MAX_PACKET_SAMPLES);
            let decoded = self.decode_into(&[], chunk, false, out)?;
            if decoded == 0 {
                break;
            }
            remaining = remaining.saturating_sub(decoded);
        }
        out.extend(std::iter::repeat_n(0, remaining));
        Ok(())
    }

    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<bool, CodecError> {
        if next_payload.is_empty() {
            return Ok(false);
        }
        let decoded = self.decode_into(next_payload, samples, true, out)?;
        Ok(decoded > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(frequency: f64, samples: usize, offset: usize) -> Vec<i16> {
        (offset..offset + samples)
            .map(|n| {
                let t = n as f64 / f64::from(SAMPLE_RATE);
                (10_000.0 * (2.0 * std::f64::consts::PI * frequency * t).sin()) as i16
            })
            .collect()
    }

    /// Goertzel power of `frequency` in `samples`, normalised by length.
    fn tone_power(samples: &[i16], frequency: f64) -> f64 {
        let omega = 2.0 * std::f64::consts::PI * frequency / f64::from(SAMPLE_RATE);
        let coefficient = 2.0 * omega.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in samples {
            let s0 = f64::from(x) + coefficient * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / samples.len() as f64
    }

    #[test]
    fn sine_keeps_frequency_and_energy() {
        let mut encoder = OpusEncoder::new().unwrap();
        let mut decoder = OpusDecoder::new().unwrap();
        let mut sent = Vec::new();
        let mut received = Vec::new();
        for frame in 0..50 {
            let pcm = sine(440.0, 960, frame * 960);
            let mut payload = Vec::new();
            encoder.encode(&pcm, &mut payload).unwrap();
            assert!(!payload.is_empty() && payload.len() < 400);
            assert_eq!(decoder.decode(&payload, &mut received).unwrap(), 960);
            sent.extend(pcm);
        }
        // Skip the first 200 ms (encoder start-up), compare the rest.
        let tail = &received[9600..];
        let energy = |s: &[i16]| s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        let ratio = energy(tail) / energy(&sent[9600..]);
        assert!((0.7..1.3).contains(&ratio), "energy ratio {ratio}");
        let at_tone = tone_power(tail, 440.0);
        let off_tone = tone_power(tail, 1000.0);
        assert!(at_tone > 100.0 * off_tone, "{at_tone} vs {off_tone}");
    }

    #[test]
    fn conceal_and_fec_fill_the_requested_length() {
        let mut encoder = OpusEncoder::new().unwrap();
        let mut decoder = OpusDecoder::new().unwrap();
        let mut payloads = Vec::new();
        for frame in 0..10 {
            let mut payload = Vec::new();
            encoder
                .encode(&sine(300.0, 960, frame * 960), &mut payload)
                .unwrap();
            payloads.push(payload);
        }
        let mut out = Vec::new();
        for payload in &payloads[..5] {
            decoder.decode(payload, &mut out).unwrap();
        }
        decoder.conceal(960, &mut out).unwrap();
        assert_eq!(out.len(), 6 * 960);
        assert!(decoder.decode_fec(&payloads[6], 960, &mut out).unwrap());
        assert_eq!(out.len(), 7 * 960);
        let recovered = &out[6 * 960..];
        assert!(recovered.iter().any(|&s| s.abs() > 1000));
    }

    #[test]
    fn rejects_invalid_frame_sizes_and_garbage() {
        let mut encoder = OpusEncoder::new().unwrap();
        assert!(encoder.encode(&[0; 100], &mut Vec::new()).is_err());
        let mut decoder = OpusDecoder::new().unwrap();
        let mut out = Vec::new();
        // Garbage either decodes to something or errors, never panics.
        let _ = decoder.decode(&[0xFF, 0xFF, 0xFF], &mut out);
        assert_eq!(decoder.decode(&[], &mut out).unwrap(), 0);
    }
}
