//! G.711 packet loss concealment in the spirit of ITU-T G.711 Appendix I.
//!
//! - The decoder keeps a history of the last 48.75 ms and plays it out 3.75 ms late, so the
//!   start of an erasure can be smoothed (a quarter of the longest pitch period).
//! - At the first lost sample the pitch period (40..=120 samples, 200..66 Hz) is found by
//!   normalised cross-correlation of the last 20 ms with the history before it.
//! - The lost audio repeats the last pitch period; the last quarter period before the loss is
//!   overlap-added with the quarter period one pitch earlier so the repetition starts in phase.
//!   After 10 ms the repetition widens to two, after 20 ms to three periods (less buzz), each
//!   switch overlap-added over a quarter period.
//! - The first 10 ms play at full level, then the level falls linearly and reaches silence at
//!   60 ms.
//! - The first good frame after a loss is overlap-added with the continued repetition over a
//!   quarter period plus 4 ms per extra 10 ms lost (at most 10 ms).

const RATE_PER_MS: usize = 8;
const PITCH_MIN: usize = 40;
const PITCH_MAX: usize = 120;
/// Samples correlated to find the pitch.
const CORRELATION_LEN: usize = 20 * RATE_PER_MS;
/// Output delay: room to smooth the start of an erasure.
const DELAY: usize = PITCH_MAX / 4;
const HISTORY: usize = 3 * PITCH_MAX + DELAY;
/// Concealed samples at full level.
const FULL_LEVEL: usize = 10 * RATE_PER_MS;
/// Samples over which the level then falls to zero (silence 60 ms into the loss).
const FADE: usize = 50 * RATE_PER_MS;
const MAX_MERGE: usize = 10 * RATE_PER_MS;

#[derive(Debug)]
pub(super) struct Concealer {
    /// Recent audio, newest last; the last [`DELAY`] samples have not been played yet.
    history: Vec<f32>,
    /// Samples concealed in the current loss; 0 outside a loss.
    lost: usize,
    pitch: usize,
    /// The last three pitch periods when the loss started (tail smoothed).
    periods: Vec<f32>,
}

impl Concealer {
    pub(super) fn new() -> Self {
        Self {
            history: vec![0.0; HISTORY],
            lost: 0,
            pitch: PITCH_MIN,
            periods: Vec::new(),
        }
    }

    /// Takes decoded samples and appends as many (delayed by [`DELAY`]) to `out`.
    pub(super) fn good(&mut self, samples: &[i16], out: &mut Vec<i16>) {
        let mut samples: Vec<f32> = samples.iter().map(|&s| f32::from(s)).collect();
        if self.lost > 0 {
            let extra_lost = (self.lost - 1) / FULL_LEVEL;
            let merge = (self.pitch / 4 + extra_lost * 4 * RATE_PER_MS)
                .min(MAX_MERGE)
                .min(samples.len());
            for (i, sample) in samples.iter_mut().take(merge).enumerate() {
                let weight = (i + 1) as f32 / (merge + 1) as f32;
                let synthetic = self.synthesize(self.lost + i);
                *sample = synthetic * (1.0 - weight) + *sample * weight;
            }
            self.lost = 0;
        }
        self.push(&samples, out);
    }

    /// Appends `count` samples standing in for lost audio.
    pub(super) fn conceal(&mut self, count: usize, out: &mut Vec<i16>) {
        if self.lost == 0 {
            self.start_loss();
        }
        let samples: Vec<f32> = (self.lost..self.lost + count)
            .map(|k| self.synthesize(k))
            .collect();
        self.lost += count;
        self.push(&samples, out);
    }

    fn start_loss(&mut self) {
        let len = self.history.len();
        let pitch = estimate_pitch(&self.history);
        self.pitch = pitch;
        // Smooth the unplayed tail into the audio one period earlier: the repetition that
        // starts at `len - pitch` then follows on in phase.
        let quarter = (pitch / 4).max(1);
        for i in 0..quarter {
            let weight = (i + 1) as f32 / (quarter + 1) as f32;
            let index = len - quarter + i;
            self.history[index] =
                self.history[index] * (1.0 - weight) + self.history[index - pitch] * weight;
        }
        self.periods.clear();
        self.periods
            .extend_from_slice(&self.history[len - 3 * pitch..]);
    }

    /// Concealed sample `k` of the current loss.
    fn synthesize(&self, k: usize) -> f32 {
        let level = if k < FULL_LEVEL {
            1.0
        } else {
            (1.0 - (k - FULL_LEVEL) as f32 / FADE as f32).max(0.0)
        };
        if level == 0.0 {
            return 0.0;
        }
        let quarter = (self.pitch / 4).max(1);
        let count = 1 + (k / FULL_LEVEL).min(2);
        let mut value = self.repeat(count, k);
        // Just after widening the repetition, overlap-add from the narrower one.
        let since_switch = k % FULL_LEVEL;
        if count > 1 && k < 3 * FULL_LEVEL && since_switch < quarter {
            let weight = (since_switch + 1) as f32 / (quarter + 1) as f32;
            value = self.repeat(count - 1, k) * (1.0 - weight) + value * weight;
        }
        value * level
    }

    /// Sample `k` of a loop over the last `count` stored periods.
    fn repeat(&self, count: usize, k: usize) -> f32 {
        let span = count * self.pitch;
        let start = self.periods.len().saturating_sub(span);
        self.periods
            .get(start + k % span.max(1))
            .copied()
            .unwrap_or(0.0)
    }

    fn push(&mut self, samples: &[f32], out: &mut Vec<i16>) {
        self.history.extend_from_slice(samples);
        let end = self.history.len() - DELAY;
        let start = end - samples.len();
        out.extend(
            self.history[start..end]
                .iter()
                .map(|&s| s.round().clamp(-32768.0, 32767.0) as i16),
        );
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
    }
}

/// The lag in `PITCH_MIN..=PITCH_MAX` whose preceding audio best matches the last
/// [`CORRELATION_LEN`] samples (normalised cross-correlation). `history` holds at least
/// [`HISTORY`] samples.
fn estimate_pitch(history: &[f32]) -> usize {
    let len = history.len();
    let recent = &history[len - CORRELATION_LEN..];
    let scores: Vec<f32> = (PITCH_MIN..=PITCH_MAX)
        .map(|lag| {
            let earlier = &history[len - CORRELATION_LEN - lag..len - lag];
            let (dot, energy) = recent
                .iter()
                .zip(earlier)
                .fold((0.0f32, 0.0f32), |(dot, energy), (&a, &b)| {
                    (dot + a * b, energy + b * b)
                });
            dot / energy.max(1.0).sqrt()
        })
        .collect();
    let best = scores.iter().copied().fold(f32::MIN, f32::max);
    // Multiples of the period score about the same as the period: take the shortest peak
    // close to the best.
    let is_peak = |i: usize| {
        let score = scores[i];
        score >= 0.97 * best
            && scores.get(i.wrapping_sub(1)).is_none_or(|&s| s <= score)
            && scores.get(i + 1).is_none_or(|&s| s <= score)
    };
    (0..scores.len()).find(|&i| is_peak(i)).unwrap_or(0) + PITCH_MIN
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voiced-like tone: 190 Hz (a period of 42.1 samples, not a whole number) with its 2nd
    /// and 3rd harmonics.
    fn voiced(n: usize) -> f64 {
        let t = n as f64 / 8000.0;
        let w = 2.0 * std::f64::consts::PI * 190.0 * t;
        6000.0 * w.sin() + 3000.0 * (2.0 * w + 0.5).sin() + 1500.0 * (3.0 * w + 1.0).sin()
    }

    fn frame(index: usize) -> Vec<i16> {
        (index * 160..(index + 1) * 160)
            .map(|n| voiced(n) as i16)
            .collect()
    }

    fn rms(samples: &[i16]) -> f64 {
        let energy: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (energy / samples.len().max(1) as f64).sqrt()
    }

    fn max_step(samples: &[i16]) -> i32 {
        samples
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0)
    }

    /// Plays frames `0..count`, losing those in `lost`.
    fn play(count: usize, lost: &[usize]) -> Vec<i16> {
        let mut concealer = Concealer::new();
        let mut out = Vec::new();
        for index in 0..count {
            if lost.contains(&index) {
                concealer.conceal(160, &mut out);
            } else {
                concealer.good(&frame(index), &mut out);
            }
        }
        out
    }

    #[test]
    fn finds_the_pitch_of_a_voiced_tone() {
        let history: Vec<f32> = (0..HISTORY).map(|n| voiced(n) as f32).collect();
        assert_eq!(estimate_pitch(&history), 42);
        // 100 Hz: period 80.
        let low: Vec<f32> = (0..HISTORY)
            .map(|n| (2.0 * std::f32::consts::PI * 100.0 * n as f32 / 8000.0).sin() * 5000.0)
            .collect();
        assert_eq!(estimate_pitch(&low), 80);
    }

    #[test]
    fn output_is_delayed_by_a_fixed_amount() {
        let out = play(3, &[]);
        assert_eq!(out.len(), 480);
        assert!(out[..DELAY].iter().all(|&s| s == 0));
        let sent: Vec<i16> = (0..3).flat_map(frame).collect();
        assert_eq!(&out[DELAY..], &sent[..480 - DELAY]);
    }

    #[test]
    fn concealment_continues_a_voiced_tone_in_pitch_and_phase() {
        let out = play(12, &[10]);
        let reference: Vec<i16> = (0..12).flat_map(frame).collect();
        // Frame 10 is played from DELAY samples after its start.
        let concealed = &out[10 * 160 + DELAY..11 * 160 + DELAY];
        let truth = &reference[10 * 160..11 * 160];
        assert!(rms(concealed) > 0.8 * rms(truth), "not silence");
        let dot: f64 = concealed
            .iter()
            .zip(truth)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let correlation = dot / (rms(concealed) * rms(truth) * 160.0);
        assert!(correlation > 0.95, "correlation {correlation}");
    }

    #[test]
    fn long_losses_fade_to_silence_after_60_ms() {
        let out = play(16, &(10..15).collect::<Vec<_>>());
        let loss_start = 10 * 160 + DELAY;
        let level = |from_ms: usize| {
            let start = loss_start + from_ms * RATE_PER_MS;
            rms(&out[start..start + 10 * RATE_PER_MS])
        };
        let levels: Vec<f64> = (0..6).map(|i| level(i * 10)).collect();
        assert!(levels[0] > 3000.0, "{levels:?}");
        assert!(levels.windows(2).skip(1).all(|w| w[1] < w[0]), "{levels:?}");
        let silent = &out[loss_start + 60 * RATE_PER_MS..loss_start + 100 * RATE_PER_MS];
        assert!(silent.iter().all(|&s| s == 0));
        // The next good frame fades back in.
        let back = &out[15 * 160 + DELAY + 80..16 * 160];
        assert!(rms(back) > 3000.0);
    }

    #[test]
    fn joins_have_no_discontinuities() {
        let reference: Vec<i16> = (0..40).flat_map(frame).collect();
        let limit = max_step(&reference);
        let out = play(40, &[5, 12, 13, 20, 21, 22, 23, 24, 25, 26, 30, 35]);
        // From the first played sample on (the stream itself starts with a step).
        let step = max_step(&out[DELAY..]);
        assert!(step <= limit * 11 / 10, "step {step} vs {limit}");
    }

    #[test]
    fn speech_like_signal_joins_stay_bounded() {
        // No exact period: three inharmonic tones with a slow envelope.
        let signal = |n: usize| {
            let t = n as f64 / 8000.0;
            let env = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 1.7 * t).sin();
            let tones: f64 = [(310.0, 0.5), (770.0, 0.3), (1230.0, 0.2)]
                .iter()
                .map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
                .sum();
            (8000.0 * env * tones) as i16
        };
        let reference: Vec<i16> = (0..160 * 40).map(signal).collect();
        let mut concealer = Concealer::new();
        let mut out = Vec::new();
        for (index, chunk) in reference.chunks(160).enumerate() {
            if index % 7 == 3 || index % 11 == 5 {
                concealer.conceal(160, &mut out);
            } else {
                concealer.good(chunk, &mut out);
            }
        }
        let limit = max_step(&reference);
        let step = max_step(&out[DELAY..]);
        assert!(step <= limit * 11 / 10, "step {step} vs {limit}");
    }

    #[test]
    fn concealment_before_any_audio_is_silence() {
        let mut concealer = Concealer::new();
        let mut out = Vec::new();
        concealer.conceal(160, &mut out);
        assert_eq!(out, vec![0; 160]);
        // Odd lengths, longer than the history, keep the count.
        concealer.good(&vec![100; 1000], &mut out);
        concealer.conceal(7, &mut out);
        assert_eq!(out.len(), 1167);
    }
}
