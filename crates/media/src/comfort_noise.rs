//! RFC 3389 comfort noise (CN, static payload type 13 at 8 kHz): decoding, and the silence
//! detector that decides when to send it.
//!
//! A CN payload is a noise level (first byte, 0..=127 in −dBov) and optionally reflection
//! coefficients of a spectral envelope (RFC 3389 §3). The decoder shapes white noise with an
//! all-pole lattice filter built from the coefficients and scales it to the level. The level
//! is read against a full-scale 16-bit signal (0 dBov = RMS 32767).

/// The static RTP payload type of comfort noise at 8 kHz (RFC 3551 §6).
pub const CN_PAYLOAD_TYPE: u8 = 13;
/// Reflection coefficients are kept inside the unit circle for a stable filter.
const MAX_REFLECTION: f64 = 0.99;
/// Coefficients beyond this many are ignored (RFC 3389 allows any order; 12 is plenty).
const MAX_ORDER: usize = 12;
/// A frame is speech when it is this much louder than the noise floor...
const SPEECH_ABOVE_FLOOR_DB: f64 = 9.0;
/// ...and louder than this (anything quieter is silence whatever the floor).
const SPEECH_MIN_DBOV: f64 = -55.0;
/// The noise floor follows a quieter frame at once and a louder one by this much per second
/// (a steady background noise is learnt in seconds; speech does not raise it much).
const FLOOR_RISE_DB_PER_SEC: f64 = 6.0;
/// Silence must last this long before it counts (word gaps and plosives stay speech).
const HANGOVER_MS: u32 = 200;

/// The level of `pcm` in −dBov as an RFC 3389 level byte (0..=127; 127 for digital silence).
pub fn level_byte(pcm: &[i16]) -> u8 {
    let dbov = dbov(pcm);
    // −dBov rounded, within 0..=127 (checked by the clamp).
    (-dbov).round().clamp(0.0, 127.0) as u8
}

/// Frame level in dBov (0 for a full-scale square wave; −200 for digital silence).
fn dbov(pcm: &[i16]) -> f64 {
    let energy: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
    let rms = (energy / pcm.len().max(1) as f64).sqrt();
    if rms < 1e-3 {
        return -200.0;
    }
    20.0 * (rms / 32767.0).log10()
}

/// An energy voice-activity detector with an adaptive noise floor and a hangover: decides,
/// frame by frame, whether the microphone carries speech.
#[derive(Debug)]
pub struct SilenceDetector {
    floor_dbov: f64,
    frame_ms: u32,
    /// Silence so far (ms); a stream starts as speech (the peer hears audio at once).
    silent_ms: u32,
}

impl SilenceDetector {
    /// For frames of `frame_ms`.
    pub fn new(frame_ms: u32) -> Self {
        Self {
            floor_dbov: SPEECH_MIN_DBOV,
            frame_ms: frame_ms.max(1),
            silent_ms: 0,
        }
    }

    /// Takes one frame; returns whether it is silence (quiet for longer than the hangover).
    pub fn is_silence(&mut self, pcm: &[i16]) -> bool {
        let level = dbov(pcm);
        if level < self.floor_dbov {
            self.floor_dbov = level.max(-120.0);
        } else {
            self.floor_dbov += FLOOR_RISE_DB_PER_SEC * f64::from(self.frame_ms) / 1000.0;
        }
        let speech = level > SPEECH_MIN_DBOV && level > self.floor_dbov + SPEECH_ABOVE_FLOOR_DB;
        if speech {
            self.silent_ms = 0;
            return false;
        }
        self.silent_ms = self.silent_ms.saturating_add(self.frame_ms);
        self.silent_ms > HANGOVER_MS
    }
}

/// Generates comfort noise from the last CN payload.
#[derive(Debug)]
pub struct ComfortNoise {
    /// Target RMS of the output.
    rms: f64,
    reflection: Vec<f64>,
    /// Lattice filter state (backward prediction errors).
    state: Vec<f64>,
    /// Gain applied to the white noise so the filtered output has `rms`.
    excitation: f64,
    rng: u32,
}

impl ComfortNoise {
    /// `seed` drives the noise generator (sans-IO: the caller brings randomness).
    pub fn new(seed: u32) -> Self {
        Self {
            rms: 0.0,
            reflection: Vec::new(),
            state: Vec::new(),
            excitation: 0.0,
            rng: seed | 1,
        }
    }

    /// Takes in a CN payload; an empty one is ignored.
    pub fn update(&mut self, payload: &[u8]) {
        let Some((&level, coefficients)) = payload.split_first() else {
            return;
        };
        let dbov = f64::from(level & 0x7F);
        self.rms = 32767.0 * 10f64.powf(-dbov / 20.0);
        self.reflection.clear();
        self.reflection.extend(
            coefficients
                .iter()
                .take(MAX_ORDER)
                // RFC 3389 §3.2: 0..=254 spans −1..+1.
                .map(|&b| ((f64::from(b) - 127.0) / 127.0).clamp(-MAX_REFLECTION, MAX_REFLECTION)),
        );
        self.state = vec![0.0; self.reflection.len()];
        // An all-pole lattice raises the power of white noise by 1 / Π(1 − k²).
        let prediction_gain: f64 = self.reflection.iter().map(|k| 1.0 - k * k).product();
        self.excitation = self.rms * prediction_gain.sqrt();
    }

    /// Appends `samples` samples of noise at the last level.
    pub fn generate(&mut self, samples: usize, out: &mut Vec<i16>) {
        for _ in 0..samples {
            let white = self.uniform() * self.excitation;
            let sample = self.filter(white);
            out.push(sample.round().clamp(-32768.0, 32767.0) as i16);
        }
    }

    /// All-pole lattice synthesis: forward error from the excitation down to order 0.
    fn filter(&mut self, excitation: f64) -> f64 {
        let order = self.reflection.len();
        let mut forward = excitation;
        for i in (0..order).rev() {
            forward -= self.reflection[i] * self.state[i];
            if i + 1 < order {
                self.state[i + 1] = self.state[i] + self.reflection[i] * forward;
            }
        }
        if let Some(first) = self.state.first_mut() {
            *first = forward;
        }
        forward
    }

    /// Uniform noise with unit variance (xorshift32).
    fn uniform(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        // Uniform on −√3..√3 has variance 1.
        (f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0) * 3f64.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(samples: &[i16]) -> f64 {
        let energy: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (energy / samples.len() as f64).sqrt()
    }

    fn dbov(samples: &[i16]) -> f64 {
        -20.0 * (rms(samples) / 32767.0).log10()
    }

    #[test]
    fn white_noise_has_the_signalled_level() {
        let mut noise = ComfortNoise::new(1);
        noise.update(&[50]);
        let mut out = Vec::new();
        noise.generate(8000, &mut out);
        assert!((dbov(&out) - 50.0).abs() < 0.5, "{}", dbov(&out));
        noise.update(&[70]);
        out.clear();
        noise.generate(8000, &mut out);
        assert!((dbov(&out) - 70.0).abs() < 0.5, "{}", dbov(&out));
    }

    #[test]
    fn spectral_shape_keeps_the_level_and_colours_the_noise() {
        let mut noise = ComfortNoise::new(7);
        // One strong coefficient: a first-order resonance (low- or high-pass).
        noise.update(&[45, 127 + 100]);
        let mut out = Vec::new();
        noise.generate(16_000, &mut out);
        assert!((dbov(&out[800..]) - 45.0).abs() < 1.0, "{}", dbov(&out));
        // Coloured: neighbouring samples correlate (white noise would give ≈ 0).
        let lag1: f64 = out
            .windows(2)
            .map(|w| f64::from(w[0]) * f64::from(w[1]))
            .sum::<f64>()
            / out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        assert!(lag1.abs() > 0.5, "lag-1 correlation {lag1}");
    }

    fn noise(amplitude: f64, samples: usize, seed: u32) -> Vec<i16> {
        let mut generator = ComfortNoise::new(seed);
        generator.update(&[0]);
        let mut out = Vec::new();
        generator.generate(samples, &mut out);
        out.iter()
            .map(|&s| (f64::from(s) / 32767.0 * amplitude) as i16)
            .collect()
    }

    #[test]
    fn level_byte_reads_dbov() {
        assert_eq!(level_byte(&[0; 160]), 127);
        // A square wave of half scale: −6 dBov.
        assert_eq!(level_byte(&[16384; 160]), 6);
        assert_eq!(level_byte(&[-33; 160]), 60);
        assert_eq!(level_byte(&[]), 127);
    }

    #[test]
    fn silence_detector_follows_speech_with_a_hangover() {
        let mut detector = SilenceDetector::new(20);
        let quiet = noise(100.0, 160, 5); // about −50 dBov of background
        let loud = noise(8000.0, 160, 6); // about −12 dBov
        // Starts as speech, silent after the hangover on background noise.
        for frame in 0..10 {
            assert!(!detector.is_silence(&quiet), "frame {frame}");
        }
        for _ in 0..50 {
            assert!(detector.is_silence(&quiet));
        }
        assert!(!detector.is_silence(&loud));
        // 200 ms of hangover: ten quiet frames are still speech, the eleventh is silence.
        for frame in 0..10 {
            assert!(!detector.is_silence(&quiet), "frame {frame}");
        }
        assert!(detector.is_silence(&quiet));
        // A loud steady background is learnt as the floor within seconds.
        let hum = noise(3000.0, 160, 7);
        let silent = (0..500).filter(|_| detector.is_silence(&hum)).count();
        assert!(silent > 300, "{silent}");
        assert!(!detector.is_silence(&noise(30000.0, 160, 8)));
    }

    #[test]
    fn hostile_payloads_are_harmless() {
        let mut noise = ComfortNoise::new(3);
        let mut out = Vec::new();
        noise.generate(10, &mut out);
        assert!(out.iter().all(|&s| s == 0), "no level yet: silence");
        noise.update(&[]);
        noise.update(&[
            0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255,
        ]);
        out.clear();
        noise.generate(8000, &mut out);
        assert_eq!(out.len(), 8000);
        assert!(rms(&out) > 1000.0);
    }
}
