//! Streaming mono resampler: push samples at one rate, pop them at another.
//!
//! Wraps rubato's synchronous FFT resampler (fixed ratio, band-limited, high quality) with
//! an input accumulator and an output queue, so callers can push and pop any number of
//! samples. Processing allocates nothing once constructed.

use std::collections::VecDeque;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use crate::AudioError;

pub(crate) struct MonoResampler {
    inner: Fft<f32>,
    /// Input waiting for a full chunk.
    pending: Vec<f32>,
    chunk: usize,
    /// Scratch output of one `process` call.
    scratch: Vec<f32>,
    output: VecDeque<f32>,
    /// Output samples still to discard: the resampler's start-up delay.
    skip: usize,
    /// Input pushed since construction, to know how much output a flush owes.
    pushed: u64,
    /// Output produced after the delay was skipped.
    produced: u64,
    ratio: f64,
}

impl std::fmt::Debug for MonoResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonoResampler")
            .field("ratio", &self.ratio)
            .field("chunk", &self.chunk)
            .field("queued", &self.output.len())
            .finish_non_exhaustive()
    }
}

impl MonoResampler {
    /// A resampler from `from` Hz to `to` Hz taking input in chunks of about `chunk` samples.
    ///
    /// With `trim_delay`, the filter's start-up delay is removed so output sample `n`
    /// lines up with input time `n / to` (for files); without, the delay is played as
    /// leading silence and output is available sooner (for devices).
    pub(crate) fn new(
        from: u32,
        to: u32,
        chunk: usize,
        trim_delay: bool,
    ) -> Result<Self, AudioError> {
        let error = |reason: String| AudioError::Resampler { from, to, reason };
        let inner = Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
            .map_err(|e| error(e.to_string()))?;
        let chunk = inner.input_frames_next();
        let scratch = vec![0.0; inner.output_frames_max()];
        let skip = if trim_delay { inner.output_delay() } else { 0 };
        Ok(Self {
            pending: Vec::with_capacity(chunk),
            chunk,
            scratch,
            output: VecDeque::with_capacity(inner.output_frames_max() * 4),
            skip,
            pushed: 0,
            produced: 0,
            ratio: f64::from(to) / f64::from(from),
            inner,
        })
    }

    /// Input samples per processing chunk.
    pub(crate) fn chunk(&self) -> usize {
        self.chunk
    }

    pub(crate) fn push(&mut self, mut samples: &[f32]) {
        self.pushed += samples.len() as u64;
        while !samples.is_empty() {
            let take = (self.chunk - self.pending.len()).min(samples.len());
            let (now, rest) = samples.split_at(take);
            self.pending.extend_from_slice(now);
            samples = rest;
            if self.pending.len() == self.chunk {
                self.process_pending();
            }
        }
    }

    /// Pushes out everything still inside the filter: afterwards the output holds the
    /// resampled version of all input pushed (input length × ratio, rounded).
    pub(crate) fn flush(&mut self) {
        let owed = (self.pushed as f64 * self.ratio).round() as u64;
        // Each round feeds at most a chunk of zeros; the delay is less than a few chunks.
        let mut rounds = 0;
        while self.produced < owed && rounds < 64 {
            self.process_pending();
            rounds += 1;
        }
        let extra = (self.produced.saturating_sub(owed)) as usize;
        let keep = self.output.len().saturating_sub(extra);
        self.output.truncate(keep);
        self.produced = owed;
    }

    pub(crate) fn available(&self) -> usize {
        self.output.len()
    }

    /// Moves up to `out.len()` samples to `out`; returns how many.
    pub(crate) fn pop(&mut self, out: &mut [f32]) -> usize {
        let n = out.len().min(self.output.len());
        for (slot, sample) in out.iter_mut().zip(self.output.drain(..n)) {
            *slot = sample;
        }
        n
    }

    /// Resamples the pending input (zero-padded to a chunk) into the output queue.
    fn process_pending(&mut self) {
        let valid = self.pending.len();
        self.pending.resize(self.chunk, 0.0);
        let frames_out = self.scratch.len();
        // Both buffers are mono and sized from the resampler's own figures, so neither
        // the adapters nor `process_into_buffer` can fail; an error would be a bug here.
        let result = match (
            InterleavedSlice::new(&self.pending[..], 1, self.chunk),
            InterleavedSlice::new_mut(&mut self.scratch[..], 1, frames_out),
        ) {
            (Ok(input), Ok(mut output)) => {
                let indexing = Indexing::new().partial_len(valid);
                self.inner
                    .process_into_buffer(&input, &mut output, Some(&indexing))
                    .map_err(|e| e.to_string())
            }
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        };
        self.pending.clear();
        let written = match result {
            Ok((_, written)) => written,
            Err(reason) => {
                tracing::error!(%reason, "resampler failed; substituting silence");
                self.scratch.fill(0.0);
                (self.chunk as f64 * self.ratio).round() as usize
            }
        };
        let mut produced = self.scratch.get(..written).unwrap_or(&self.scratch[..]);
        let skipped = self.skip.min(produced.len());
        self.skip -= skipped;
        produced = &produced[skipped..];
        self.produced += produced.len() as u64;
        self.output.extend(produced.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{rms, zero_crossing_frequency};

    fn sine(hz: f64, rate: u32, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| (0.5 * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin()) as f32)
            .collect()
    }

    fn run(from: u32, to: u32, input: &[f32], piece: usize) -> Vec<f32> {
        let mut resampler = MonoResampler::new(from, to, 1024, true).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0.0; 333];
        for part in input.chunks(piece) {
            resampler.push(part);
            while resampler.available() > 0 {
                let n = resampler.pop(&mut buf);
                out.extend_from_slice(&buf[..n]);
            }
        }
        resampler.flush();
        while resampler.available() > 0 {
            let n = resampler.pop(&mut buf);
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn preserves_length_and_frequency() {
        for (from, to) in [(48000, 8000), (44100, 8000), (8000, 48000), (16000, 44100)] {
            let input = sine(440.0, from, 1.0);
            let out = run(from, to, &input, 160);
            assert_eq!(out.len(), to as usize, "{from}->{to}");
            let pcm: Vec<i16> = out.iter().map(|&s| crate::f32_to_i16(s)).collect();
            let measured = zero_crossing_frequency(&pcm[to as usize / 10..], to);
            assert!(
                (measured - 440.0).abs() < 1.0,
                "{from}->{to}: {measured} Hz"
            );
            // Level kept: a 0.5 amplitude sine has an RMS of 0.354.
            let level = rms(&pcm[to as usize / 10..to as usize * 9 / 10]) / 32768.0;
            assert!((level - 0.3536).abs() < 0.01, "{from}->{to}: rms {level}");
        }
    }

    #[test]
    fn delay_is_trimmed() {
        // An impulse at input sample 4800 (0.1 s) must come out at output sample 800.
        let mut input = vec![0.0f32; 48000];
        input[4800] = 1.0;
        let out = run(48000, 8000, &input, 960);
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(i, _)| i)
            .unwrap();
        assert!((799..=801).contains(&peak), "impulse at {peak}");
    }
}
