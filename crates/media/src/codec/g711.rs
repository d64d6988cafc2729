//! G.711 µ-law (PCMU) and A-law (PCMA), 8 kHz, one byte per sample.

mod plc;

use super::{AudioDecoder, AudioEncoder, CodecError};
use crate::CodecKind;
use plc::Concealer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Law {
    Mu,
    A,
}

impl Law {
    fn kind(self) -> CodecKind {
        match self {
            Law::Mu => CodecKind::Pcmu,
            Law::A => CodecKind::Pcma,
        }
    }
}

#[derive(Debug)]
pub(super) struct G711Encoder {
    law: Law,
}

impl G711Encoder {
    pub(super) fn new(law: Law) -> Self {
        Self { law }
    }
}

impl AudioEncoder for G711Encoder {
    fn kind(&self) -> CodecKind {
        self.law.kind()
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let encode = match self.law {
            Law::Mu => linear_to_ulaw,
            Law::A => linear_to_alaw,
        };
        out.extend(pcm.iter().map(|&s| encode(s)));
        Ok(())
    }

    fn set_packet_loss_percent(&mut self, _percent: u8) {}
}

/// Decodes G.711 and conceals lost packets with pitch-based waveform repetition
/// ([`plc::Concealer`]); output is delayed by 3.75 ms for that.
#[derive(Debug)]
pub(super) struct G711Decoder {
    law: Law,
    decoded: Vec<i16>,
    concealer: Concealer,
}

impl G711Decoder {
    pub(super) fn new(law: Law) -> Self {
        Self {
            law,
            decoded: Vec::new(),
            concealer: Concealer::new(),
        }
    }
}

impl AudioDecoder for G711Decoder {
    fn kind(&self) -> CodecKind {
        self.law.kind()
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let decode = match self.law {
            Law::Mu => ulaw_to_linear,
            Law::A => alaw_to_linear,
        };
        self.decoded.clear();
        self.decoded.extend(payload.iter().map(|&b| decode(b)));
        self.concealer.good(&self.decoded, out);
        Ok(payload.len())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), CodecError> {
        self.concealer.conceal(samples, out);
        Ok(())
    }

    fn decode_fec(&mut self, _: &[u8], _: usize, _: &mut Vec<i16>) -> Result<bool, CodecError> {
        Ok(false)
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Encodes one linear sample to µ-law (G.711 §2, segment + 4-bit mantissa, bits inverted).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let value = i32::from(sample);
    let sign = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(ULAW_CLIP) + ULAW_BIAS;
    // magnitude is in 132..=32767, so its top set bit is 7..=14.
    let exponent = 31 - magnitude.leading_zeros() as i32 - 7;
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decodes one µ-law byte to a linear sample.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let byte = !byte;
    let exponent = i32::from((byte >> 4) & 0x07);
    let mantissa = i32::from(byte & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    // magnitude is at most ((15 << 3) + 132) << 7 - 132 = 32124, within i16.
    let magnitude = magnitude as i16;
    if byte & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Encodes one linear sample to A-law (13-bit segments, even bits inverted with 0x55).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let value = i32::from(sample) >> 3;
    let (mask, magnitude) = if value >= 0 {
        (0xD5, value)
    } else {
        (0x55, -value - 1)
    };
    // Segment = number of bits above the 5 low ones, 0..=7; values past 0xFFF saturate.
    let segment = (32 - magnitude.leading_zeros() as i32 - 5).max(0);
    let code = if segment >= 8 {
        0x7F
    } else if segment < 2 {
        (segment << 4) | ((magnitude >> 1) & 0x0F)
    } else {
        (segment << 4) | ((magnitude >> segment) & 0x0F)
    };
    (code ^ mask) as u8
}

/// Decodes one A-law byte to a linear sample.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let segment = i32::from((byte >> 4) & 0x07);
    let mantissa = i32::from(byte & 0x0F) << 4;
    let magnitude = match segment {
        0 => mantissa + 8,
        _ => (mantissa + 0x108) << (segment - 1),
    };
    // magnitude is at most (0xF0 + 0x108) << 6 = 32256, within i16.
    let magnitude = magnitude as i16;
    if byte & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_code_points() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
    }

    #[test]
    fn alaw_known_code_points() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn ulaw_round_trip_error_is_half_a_step() {
        for sample in i16::MIN..=i16::MAX {
            let decoded = ulaw_to_linear(linear_to_ulaw(sample));
            let magnitude = i32::from(sample).abs();
            let error = (i32::from(decoded) - i32::from(sample)).abs();
            if magnitude <= ULAW_CLIP {
                // The step in a segment is 1/16 of the biased segment start; error <= step / 2.
                assert!(
                    error <= (magnitude + ULAW_BIAS) / 32 + 1,
                    "{sample} -> {decoded}"
                );
            } else {
                assert_eq!(decoded.signum(), sample.signum());
                assert_eq!(i32::from(decoded).abs(), 32124);
            }
        }
    }

    #[test]
    fn alaw_round_trip_error_is_half_a_step() {
        for sample in i16::MIN..=i16::MAX {
            let decoded = alaw_to_linear(linear_to_alaw(sample));
            let magnitude = i32::from(sample).abs();
            let error = (i32::from(decoded) - i32::from(sample)).abs();
            if magnitude < 32256 {
                // Step is 16 in the two lowest segments, then doubles; error <= step / 2.
                assert!(
                    error <= (magnitude / 32).max(8) + 1,
                    "{sample} -> {decoded}"
                );
            }
        }
    }

    #[test]
    fn every_code_decodes_and_reencodes_to_itself() {
        for code in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "alaw {code:#x}");
            let decoded = ulaw_to_linear(code);
            // µ-law has two zeros (0x7F and 0xFF); both encode back to 0xFF.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(linear_to_ulaw(decoded), expected, "ulaw {code:#x}");
        }
    }

    #[test]
    fn decoder_conceals_through_the_plc() {
        let mut decoder = G711Decoder::new(Law::A);
        let mut out = Vec::new();
        for frame in 0..5 {
            let payload: Vec<u8> = (frame * 160..(frame + 1) * 160)
                .map(|n| {
                    let t = n as f64 / 8000.0;
                    linear_to_alaw((8000.0 * (2.0 * std::f64::consts::PI * 250.0 * t).sin()) as i16)
                })
                .collect();
            assert_eq!(decoder.decode(&payload, &mut out).unwrap(), 160);
        }
        decoder.conceal(160, &mut out).unwrap();
        assert_eq!(out.len(), 6 * 160);
        let concealed = &out[5 * 160 + 30..];
        assert!(concealed.iter().any(|&s| s.abs() > 6000), "not silence");
        assert!(!decoder.decode_fec(&[0xD5; 160], 160, &mut out).unwrap());
    }
}
