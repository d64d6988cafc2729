//! RFC 3389 comfort noise (CN, static payload type 13 at 8 kHz): decoding.
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
