//! Generated sources (tone, silence) and the null sink.

use std::f64::consts::TAU;

use crate::{AudioError, AudioSink, AudioSource, SourceState, StreamStats, TONE_LEVEL_DBFS};

/// A continuous sine: the phase carries over from frame to frame.
#[derive(Debug)]
pub(crate) struct ToneSource {
    sample_rate: u32,
    amplitude: f64,
    /// Phase advance per sample, radians.
    step: f64,
    /// Current phase in [0, 2π).
    phase: f64,
}

impl ToneSource {
    pub(crate) fn new(hz: f64, sample_rate: u32) -> Result<Self, AudioError> {
        if !hz.is_finite() || hz <= 0.0 || hz >= f64::from(sample_rate) / 2.0 {
            return Err(AudioError::ToneAboveNyquist { hz, sample_rate });
        }
        Ok(Self {
            sample_rate,
            amplitude: 32767.0 * 10f64.powf(TONE_LEVEL_DBFS / 20.0),
            step: TAU * hz / f64::from(sample_rate),
            phase: 0.0,
        })
    }
}

impl AudioSource for ToneSource {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn read_frame(&mut self, out: &mut [i16]) -> Result<SourceState, AudioError> {
        for sample in out.iter_mut() {
            // The amplitude is below full scale, so the cast never saturates.
            *sample = (self.amplitude * self.phase.sin()).round() as i16;
            self.phase = (self.phase + self.step) % TAU;
        }
        Ok(SourceState::Data)
    }
}

#[derive(Debug)]
pub(crate) struct SilenceSource {
    sample_rate: u32,
}

impl SilenceSource {
    pub(crate) fn new(sample_rate: u32) -> Self {
        Self { sample_rate }
    }
}

impl AudioSource for SilenceSource {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn read_frame(&mut self, out: &mut [i16]) -> Result<SourceState, AudioError> {
        out.fill(0);
        Ok(SourceState::Data)
    }
}

#[derive(Debug)]
pub(crate) struct NullSink {
    sample_rate: u32,
    frames: u64,
    finished: bool,
}

impl NullSink {
    pub(crate) fn new(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            frames: 0,
            finished: false,
        }
    }
}

impl AudioSink for NullSink {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn write_frame(&mut self, _frame: &[i16]) -> Result<(), AudioError> {
        if self.finished {
            return Err(AudioError::Finished);
        }
        self.frames += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        self.finished = true;
        Ok(())
    }

    fn stats(&self) -> StreamStats {
        StreamStats {
            frames: self.frames,
            ..StreamStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{rms, zero_crossing_frequency};

    fn tone(hz: f64, rate: u32, frames: usize, frame_samples: usize) -> Vec<i16> {
        let mut source = ToneSource::new(hz, rate).unwrap();
        let mut all = Vec::new();
        let mut frame = vec![0; frame_samples];
        for _ in 0..frames {
            assert_eq!(source.read_frame(&mut frame).unwrap(), SourceState::Data);
            all.extend_from_slice(&frame);
        }
        all
    }

    #[test]
    fn tone_has_the_requested_frequency() {
        for (hz, rate) in [
            (440.0, 8000),
            (1000.0, 16000),
            (440.0, 48000),
            (3000.0, 8000),
        ] {
            let samples = tone(hz, rate, 50, rate as usize / 50);
            let measured = zero_crossing_frequency(&samples, rate);
            assert!(
                (measured - hz).abs() < 2.0,
                "{hz} Hz at {rate} Hz measured {measured} Hz"
            );
        }
    }

    #[test]
    fn tone_is_at_minus_12_dbfs() {
        let samples = tone(440.0, 8000, 50, 160);
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        let expected_peak = 32767.0 * 10f64.powf(-12.0 / 20.0);
        assert!(
            (f64::from(peak) - expected_peak).abs() < 50.0,
            "peak {peak}"
        );
        let rms_dbfs = 20.0 * (rms(&samples) * 2f64.sqrt() / 32767.0).log10();
        assert!((rms_dbfs + 12.0).abs() < 0.1, "level {rms_dbfs} dBFS");
    }

    #[test]
    fn tone_phase_is_continuous_across_frames() {
        // The same tone read in frames of 7 and of 160 samples must be identical.
        let a = tone(440.0, 8000, 160, 7);
        let b = tone(440.0, 8000, 7, 160);
        assert_eq!(a, b);
    }

    #[test]
    fn tone_above_nyquist_is_rejected() {
        assert!(matches!(
            ToneSource::new(4000.0, 8000),
            Err(AudioError::ToneAboveNyquist { .. })
        ));
    }

    #[test]
    fn silence_is_zero_and_never_ends() {
        let mut source = SilenceSource::new(8000);
        let mut frame = vec![7i16; 160];
        for _ in 0..10 {
            assert_eq!(source.read_frame(&mut frame).unwrap(), SourceState::Data);
            assert!(frame.iter().all(|&s| s == 0));
        }
    }

    #[test]
    fn null_sink_counts_and_refuses_after_finish() {
        let mut sink = NullSink::new(8000);
        sink.write_frame(&[0; 160]).unwrap();
        sink.write_frame(&[0; 160]).unwrap();
        sink.finish().unwrap();
        assert_eq!(sink.stats().frames, 2);
        assert!(matches!(
            sink.write_frame(&[0; 160]),
            Err(AudioError::Finished)
        ));
    }
}
