//! Echo cancellation, noise suppression and gain control on the call's audio, through
//! `sonora` (a pure-Rust port of the WebRTC audio processing module: AEC3, NS, AGC2).
//!
//! The processor sits between the call and the sound card. Every frame played goes to
//! [`AudioProcessor::process_render`] (the far end, what the echo is made of) and every frame
//! captured goes through [`AudioProcessor::process_capture`] before it is encoded. The APM
//! works on 10 ms blocks; call frames of a whole number of blocks (20 ms, say) are processed
//! in place without delay. From the first frame of another length on, the capture is queued
//! into blocks and comes out 10 ms late (the first 10 ms are silence).
//!
//! The echo canceller estimates the render-to-capture delay itself (device and ring latency
//! included), up to about half a second.
//!
//! Costs measured by `bench/apm_bench.sh`: echo cancellation and noise suppression bring in
//! WebRTC's high-pass filter (steep, about 90 Hz, notches at 50/60 Hz), whose phase rotation
//! alone lowers PESQ-WB of clean speech from 4.64 to 3.79 (inaudible, but it shows in PESQ
//! tests); and while both ends talk at once with no echo at all (a headset), the echo
//! suppressor cannot tell the near end from an echo and damages it (PESQ-WB 4.64 -> 1.5 over
//! 21 s of non-stop double talk; turn-taking is unaffected).

use std::collections::VecDeque;

use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, NoiseSuppression, NoiseSuppressionLevel,
};
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::AudioError;

/// Which stages run on the capture path. All off makes the processor a pass-through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessingConfig {
    /// Acoustic echo cancellation (AEC3): removes the far end's voice picked up by the mic.
    pub echo_cancellation: bool,
    /// Stationary noise suppression (WebRTC NS at its "high" level, about 18 dB: on this bench
    /// it scores better in PESQ than "moderate", +0.56 against +0.36 on pink noise at 10 dB SNR).
    pub noise_suppression: bool,
    /// Adaptive digital gain (AGC2) and a limiter: brings speech to a steady level.
    pub gain_control: bool,
}

impl ProcessingConfig {
    /// Every stage on.
    pub const ALL: Self = Self {
        echo_cancellation: true,
        noise_suppression: true,
        gain_control: true,
    };

    /// Whether any stage runs.
    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.gain_control
    }

    fn apm_config(&self) -> Config {
        Config {
            echo_canceller: self.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: self.noise_suppression.then(|| NoiseSuppression {
                level: NoiseSuppressionLevel::High,
                ..NoiseSuppression::default()
            }),
            gain_controller2: self.gain_control.then(|| GainController2 {
                // No analog mixer to drive: digital gain only.
                input_volume_controller: false,
                adaptive_digital: Some(AdaptiveDigital::default()),
                ..GainController2::default()
            }),
            ..Config::default()
        }
    }
}

/// Figures of a processor, cumulative since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessingStats {
    /// 10 ms blocks of capture processed.
    pub capture_blocks: u64,
    /// 10 ms blocks of render analysed.
    pub render_blocks: u64,
    /// Echo return loss enhancement estimated by the echo canceller, in dB (how much of the
    /// echo it removes); `None` without echo cancellation or before it has an estimate.
    pub erle_db: Option<f64>,
    /// Echo return loss estimated by the echo canceller, in dB (how much quieter the echo is
    /// than the far end at the mic).
    pub erl_db: Option<f64>,
    /// Render-to-capture delay the echo canceller locked on, in milliseconds.
    pub echo_delay_ms: Option<i32>,
    /// Level of the capture before and after processing, in dBFS (whole call).
    pub capture_in_dbfs: Option<f64>,
    pub capture_out_dbfs: Option<f64>,
}

/// Echo cancellation, noise suppression and gain control for one call: mono `i16` frames at
/// one sample rate, render and capture driven from the same thread.
///
/// ```
/// use homeagent_audio::{AudioProcessor, ProcessingConfig};
///
/// # fn main() -> Result<(), homeagent_audio::AudioError> {
/// let mut apm = AudioProcessor::new(16_000, ProcessingConfig::ALL)?;
/// let speaker = vec![0i16; 320]; // 20 ms about to be played
/// let mut mic = vec![0i16; 320]; // 20 ms just captured
/// apm.process_render(&speaker);
/// apm.process_capture(&mut mic);
/// # Ok(())
/// # }
/// ```
pub struct AudioProcessor {
    config: ProcessingConfig,
    /// `None` when every stage is off.
    apm: Option<AudioProcessing>,
    /// Samples per 10 ms block.
    block: usize,
    render_pending: Vec<i16>,
    capture_pending: Vec<i16>,
    capture_ready: VecDeque<i16>,
    scratch: Vec<i16>,
    stats: ProcessingStats,
    energy_in: f64,
    energy_out: f64,
    samples: u64,
}

impl std::fmt::Debug for AudioProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioProcessor")
            .field("config", &self.config)
            .field("block", &self.block)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl AudioProcessor {
    /// A processor for mono audio at `sample_rate` Hz (8 to 384 kHz, a multiple of 100 so that
    /// 10 ms is a whole number of samples: 8, 16, 32, 44.1, 48 kHz…).
    pub fn new(sample_rate: u32, config: ProcessingConfig) -> Result<Self, AudioError> {
        if !(8000..=384_000).contains(&sample_rate) || sample_rate % 100 != 0 {
            return Err(AudioError::InvalidParameters(format!(
                "audio processing needs 8000..=384000 Hz in steps of 100, not {sample_rate} Hz"
            )));
        }
        let block = sample_rate as usize / 100;
        let stream = StreamConfig::new(sample_rate, 1);
        let apm = config.any().then(|| {
            AudioProcessing::builder()
                .config(config.apm_config())
                .capture_config(stream)
                .render_config(stream)
                .build()
        });
        Ok(Self {
            config,
            apm,
            block,
            render_pending: Vec::with_capacity(block),
            capture_pending: Vec::with_capacity(block),
            capture_ready: VecDeque::new(),
            scratch: vec![0; block],
            stats: ProcessingStats::default(),
            energy_in: 0.0,
            energy_out: 0.0,
            samples: 0,
        })
    }

    pub fn config(&self) -> ProcessingConfig {
        self.config
    }

    /// Samples per 10 ms block, the APM's unit.
    pub fn block_samples(&self) -> usize {
        self.block
    }

    /// Gives the processor a frame about to be played (any length). Only the echo canceller
    /// uses it; the frame itself is not changed.
    pub fn process_render(&mut self, frame: &[i16]) {
        let Some(apm) = self.apm.as_mut().filter(|_| self.config.echo_cancellation) else {
            return;
        };
        let mut rest = frame;
        // Top up a partial block left by the previous frame first.
        if !self.render_pending.is_empty() {
            let take = (self.block - self.render_pending.len()).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.render_pending.extend_from_slice(head);
            rest = tail;
            if self.render_pending.len() < self.block {
                return;
            }
            // Errors only come from stream formats, fixed and valid since `new`.
            let _ = apm.process_render_i16(&self.render_pending, &mut self.scratch);
            self.render_pending.clear();
            self.stats.render_blocks += 1;
        }
        let mut blocks = rest.chunks_exact(self.block);
        for block in &mut blocks {
            let _ = apm.process_render_i16(block, &mut self.scratch);
            self.stats.render_blocks += 1;
        }
        self.render_pending.extend_from_slice(blocks.remainder());
    }

    /// Processes a frame just captured (any length), in place.
    pub fn process_capture(&mut self, frame: &mut [i16]) {
        if self.apm.is_none() {
            return;
        }
        self.measure(frame, true);
        if self.capture_pending.is_empty()
            && self.capture_ready.is_empty()
            && frame.len() % self.block == 0
        {
            // The usual case: whole blocks, in place, no delay.
            for block in frame.chunks_exact_mut(self.block) {
                self.process_block(block);
            }
        } else {
            self.process_queued(frame);
        }
        self.measure(frame, false);
    }

    /// The processor's figures, with the echo canceller's current estimates.
    pub fn stats(&self) -> ProcessingStats {
        let mut stats = self.stats;
        if let Some(apm) = self.apm.as_ref().filter(|_| self.config.echo_cancellation) {
            let apm_stats = apm.statistics();
            stats.erle_db = apm_stats.echo_return_loss_enhancement;
            stats.erl_db = apm_stats.echo_return_loss;
            stats.echo_delay_ms = apm_stats.delay_ms.or(apm_stats.delay_median_ms);
        }
        if self.samples > 0 {
            let samples = self.samples as f64;
            stats.capture_in_dbfs = Some(dbfs(self.energy_in / samples));
            stats.capture_out_dbfs = Some(dbfs(self.energy_out / samples));
        }
        stats
    }

    fn process_block(&mut self, block: &mut [i16]) {
        let Some(apm) = self.apm.as_mut() else {
            return;
        };
        self.scratch.copy_from_slice(block);
        // Errors only come from stream formats, fixed and valid since `new`.
        let _ = apm.process_capture_i16(&self.scratch, block);
        self.stats.capture_blocks += 1;
    }

    /// Frames that are not whole blocks: queue them into blocks and hand back processed
    /// samples one block late (the first time, the delay is filled with silence). The queues
    /// then always hold one block between them: `ready = block - pending` before a frame.
    fn process_queued(&mut self, frame: &mut [i16]) {
        if self.capture_pending.is_empty() && self.capture_ready.is_empty() {
            self.capture_ready.resize(self.block, 0);
        }
        let mut block = vec![0i16; self.block];
        for &sample in frame.iter() {
            self.capture_pending.push(sample);
            if self.capture_pending.len() == self.block {
                block.copy_from_slice(&self.capture_pending);
                self.capture_pending.clear();
                self.process_block(&mut block);
                self.capture_ready.extend(block.iter().copied());
            }
        }
        // The invariant above leaves at least `frame.len() + 1` samples ready.
        let ready = frame.len().min(self.capture_ready.len());
        for (out, sample) in frame.iter_mut().zip(self.capture_ready.drain(..ready)) {
            *out = sample;
        }
    }

    fn measure(&mut self, frame: &[i16], input: bool) {
        let energy: f64 = frame.iter().map(|&s| f64::from(s).powi(2)).sum();
        if input {
            self.energy_in += energy;
            self.samples += frame.len() as u64;
        } else {
            self.energy_out += energy;
        }
    }
}

/// Level of a mean square in sample units, in dBFS (a full-scale sine is -3 dBFS).
fn dbfs(mean_square: f64) -> f64 {
    10.0 * (mean_square.max(1e-3) / (32768.0 * 32768.0)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;
    const FRAME: usize = 320;

    /// A seeded xorshift generator of values in [-1, 1).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// A speech stand-in: low-passed noise under a syllable-rate envelope (4 Hz), with pauses.
    fn talker(seconds: f64, seed: u64) -> Vec<i16> {
        let mut noise = Noise(seed);
        let mut smooth = 0.0;
        let len = (seconds * f64::from(RATE)) as usize;
        (0..len)
            .map(|n| {
                let t = n as f64 / f64::from(RATE);
                smooth = 0.7 * smooth + 0.3 * noise.next();
                let syllables = (2.0 * std::f64::consts::PI * 4.0 * t).sin().max(0.0);
                let phrase = if (t % 1.5) < 1.1 { 1.0 } else { 0.0 };
                (smooth * syllables * phrase * 20_000.0) as i16
            })
            .collect()
    }

    /// The far end as the mic hears it: 60 ms later, 10 dB quieter, with one reflection.
    fn echo_of(far: &[i16]) -> Vec<i16> {
        let delay = 60 * RATE as usize / 1000;
        let reflection = delay + 5 * RATE as usize / 1000;
        (0..far.len())
            .map(|n| {
                let direct = n.checked_sub(delay).map_or(0.0, |m| f64::from(far[m]));
                let late = n.checked_sub(reflection).map_or(0.0, |m| f64::from(far[m]));
                (0.3 * direct + 0.1 * late) as i16
            })
            .collect()
    }

    fn energy(samples: &[i16]) -> f64 {
        samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() + 1.0
    }

    /// Runs 20 ms ticks: render the far end's frame, then process the mic's.
    fn run(apm: &mut AudioProcessor, far: &[i16], mic: &[i16]) -> Vec<i16> {
        let mut out = mic.to_vec();
        for (i, frame) in out.chunks_mut(FRAME).enumerate() {
            let start = (i * FRAME).min(far.len());
            apm.process_render(&far[start..(start + FRAME).min(far.len())]);
            apm.process_capture(frame);
        }
        out
    }

    fn only(stage: &str) -> ProcessingConfig {
        ProcessingConfig {
            echo_cancellation: stage == "aec",
            noise_suppression: stage == "ns",
            gain_control: stage == "agc",
        }
    }

    #[test]
    fn cancels_a_simulated_echo() {
        let far = talker(8.0, 1);
        let mic = echo_of(&far);
        let converged = 2 * RATE as usize;

        let mut apm = AudioProcessor::new(RATE, only("aec")).unwrap();
        let out = run(&mut apm, &far, &mic);
        let erle = 10.0 * (energy(&mic[converged..]) / energy(&out[converged..])).log10();
        assert!(erle > 20.0, "ERLE {erle:.1} dB");
        let stats = apm.stats();
        assert_eq!(stats.capture_blocks, (far.len() / 160) as u64);
        assert_eq!(stats.render_blocks, stats.capture_blocks);
        assert!(stats.erle_db.is_some(), "{stats:?}");

        // Without the far end, the canceller has nothing to cancel with.
        let mut blind = AudioProcessor::new(RATE, only("aec")).unwrap();
        let out = run(&mut blind, &vec![0; far.len()], &mic);
        let erle = 10.0 * (energy(&mic[converged..]) / energy(&out[converged..])).log10();
        assert!(erle < 6.0, "ERLE {erle:.1} dB without the render signal");
    }

    #[test]
    fn suppresses_stationary_noise_in_pauses() {
        let speech = talker(6.0, 2);
        let mut noise = Noise(3);
        // White noise about 10 dB below the talker's active level.
        let noisy: Vec<i16> = speech
            .iter()
            .map(|&s| (f64::from(s) + 1_500.0 * noise.next()) as i16)
            .collect();
        let mut apm = AudioProcessor::new(RATE, only("ns")).unwrap();
        let out = run(&mut apm, &[], &noisy);

        let converged = 2 * RATE as usize;
        let (mut pause_in, mut pause_out, mut talk_in, mut talk_out) = (0.0, 0.0, 0.0, 0.0);
        // Per 20 ms frame (NS delays its output by a few ms: compare whole frames, skipping
        // the frames at a pause's edges).
        let frames = speech
            .chunks(FRAME)
            .zip(noisy.chunks(FRAME))
            .zip(out.chunks(FRAME));
        for (i, ((clean, noisy), out)) in frames.enumerate().skip(converged / FRAME) {
            let t = (i * FRAME) as f64 / f64::from(RATE) % 1.5;
            if (1.15..1.45).contains(&t) {
                pause_in += energy(noisy);
                pause_out += energy(out);
            } else if energy(clean) > 1e6 * FRAME as f64 {
                talk_in += energy(noisy);
                talk_out += energy(out);
            }
        }
        let pause_reduction = 10.0 * (pause_in / pause_out).log10();
        let talk_reduction = 10.0 * (talk_in / talk_out).log10();
        assert!(
            pause_reduction > 8.0,
            "noise in pauses down {pause_reduction:.1} dB"
        );
        assert!(talk_reduction < 3.0, "speech down {talk_reduction:.1} dB");
    }

    #[test]
    fn disabled_stages_pass_audio_through() {
        let far = talker(1.0, 4);
        let mic = talker(1.0, 5);
        let mut apm = AudioProcessor::new(RATE, ProcessingConfig::default()).unwrap();
        assert_eq!(run(&mut apm, &far, &mic), mic);
        let stats = apm.stats();
        assert_eq!((stats.capture_blocks, stats.render_blocks), (0, 0));

        // The same frames through a processor with a stage on do change.
        let mut apm = AudioProcessor::new(RATE, only("ns")).unwrap();
        assert_ne!(run(&mut apm, &far, &mic), mic);
    }

    #[test]
    fn odd_frame_lengths_only_delay_the_output() {
        let mic = talker(2.0, 6);
        // Without echo cancellation the output depends on the capture alone.
        let config = ProcessingConfig {
            echo_cancellation: false,
            ..ProcessingConfig::ALL
        };
        let mut aligned = AudioProcessor::new(RATE, config).unwrap();
        let reference = run(&mut aligned, &[], &mic);
        let mut odd = AudioProcessor::new(RATE, config).unwrap();
        let out = run_odd(&mut odd, &mic);
        let lag = 160;
        assert!(out[..lag].iter().all(|&s| s == 0));
        assert!(
            out[lag..] == reference[..mic.len() - lag],
            "output is not the aligned output delayed by 10 ms"
        );
        assert!(out.iter().any(|&s| s != 0));

        // Everything on, render frames odd too: the echo is still cancelled.
        let far = talker(6.0, 7);
        let mic = echo_of(&far);
        let mut odd = AudioProcessor::new(RATE, only("aec")).unwrap();
        let out = run_odd(&mut odd, &mic);
        assert_eq!(out.len(), mic.len());
        let mut odd = AudioProcessor::new(RATE, only("aec")).unwrap();
        let mut out = mic.clone();
        let mut at = 0;
        for len in ODD_LENGTHS.iter().cycle() {
            let Some(frame) = out.get_mut(at..(at + len).min(mic.len())) else {
                break;
            };
            if at >= mic.len() {
                break;
            }
            odd.process_render(&far[at..at + frame.len()]);
            odd.process_capture(frame);
            at += len;
        }
        let converged = 2 * RATE as usize;
        let erle = 10.0 * (energy(&mic[converged..]) / energy(&out[converged..])).log10();
        assert!(erle > 20.0, "ERLE {erle:.1} dB with odd frames");
    }

    const ODD_LENGTHS: [usize; 6] = [7, 0, 150, 1000, 161, 320];

    /// Processes `mic` in frames of odd lengths, rendering silence frames of other odd lengths.
    fn run_odd(apm: &mut AudioProcessor, mic: &[i16]) -> Vec<i16> {
        let mut out = mic.to_vec();
        let mut rest = out.as_mut_slice();
        for (len, render) in ODD_LENGTHS
            .iter()
            .cycle()
            .zip(ODD_LENGTHS.iter().cycle().skip(2))
        {
            if rest.is_empty() {
                break;
            }
            let (frame, tail) = rest.split_at_mut((*len).min(rest.len()));
            apm.process_render(&vec![0; *render]);
            apm.process_capture(frame);
            rest = tail;
        }
        out
    }

    #[test]
    fn silence_and_clipping_do_not_break_it() {
        for rate in [8_000, 16_000, 48_000] {
            let frame = rate as usize / 50;
            let mut apm = AudioProcessor::new(rate, ProcessingConfig::ALL).unwrap();
            let mut silence = vec![0i16; frame];
            for _ in 0..100 {
                apm.process_render(&silence.clone());
                apm.process_capture(&mut silence);
            }
            assert!(
                silence.iter().all(|&s| s.abs() < 10),
                "{rate} Hz: {silence:?}"
            );
            // Full-scale square waves both ways, then silence again.
            for i in 0..200 {
                let level = if i % 2 == 0 { i16::MAX } else { i16::MIN };
                let mut clipped: Vec<i16> = (0..frame)
                    .map(|n| {
                        if n % 40 < 20 {
                            level
                        } else {
                            -level.saturating_add(1)
                        }
                    })
                    .collect();
                apm.process_render(&clipped.clone());
                apm.process_capture(&mut clipped);
            }
            let mut after = vec![0i16; frame];
            apm.process_capture(&mut after);
            assert_eq!(apm.stats().capture_blocks, 301 * 2);
        }
    }

    #[test]
    fn rejects_rates_without_whole_10_ms_blocks() {
        for rate in [0, 4_000, 22_050, 500_000] {
            assert!(
                AudioProcessor::new(rate, ProcessingConfig::ALL).is_err(),
                "{rate}"
            );
        }
        for rate in [8_000, 16_000, 32_000, 44_100, 48_000] {
            let apm = AudioProcessor::new(rate, ProcessingConfig::ALL).unwrap();
            assert_eq!(apm.block_samples(), rate as usize / 100);
        }
    }
}
