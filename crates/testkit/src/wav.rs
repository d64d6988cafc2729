//! Small WAV helpers for audio tests (16-bit PCM).

use std::path::Path;
use std::time::Duration;

use crate::{Result, TestkitError};

/// What a WAV file holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavInfo {
    /// Sample rate in Hz.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// Length.
    pub duration: Duration,
    /// RMS level over all samples, 0.0..=1.0 of full scale.
    pub rms: f64,
}

/// Reads a 16-bit PCM WAV's format, length and RMS level.
pub fn info(path: &Path) -> Result<WavInfo> {
    let (spec, samples) = read(path)?;
    let frames = samples.len() / usize::from(spec.channels.max(1));
    let energy: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    let rms = (energy / samples.len().max(1) as f64).sqrt() / f64::from(i16::MAX);
    Ok(WavInfo {
        rate: spec.sample_rate,
        channels: spec.channels,
        duration: Duration::from_secs_f64(frames as f64 / f64::from(spec.sample_rate.max(1))),
        rms,
    })
}

/// Writes to `dst` the first `length` of `src`, followed by `silence` of zeros, in the same
/// format. baresip's `aufile` hangs up the call when its file ends: pad the file it plays
/// with silence so that the test, not the file, decides when the call ends.
pub fn clip(src: &Path, dst: &Path, length: Duration, silence: Duration) -> Result<()> {
    let (spec, samples) = read(src)?;
    let per_second = f64::from(spec.sample_rate) * f64::from(spec.channels);
    let keep = ((length.as_secs_f64() * per_second) as usize).min(samples.len());
    let pad = (silence.as_secs_f64() * per_second) as usize;
    let mut writer = hound::WavWriter::create(dst, spec).map_err(|e| parse_error(dst, e))?;
    let kept = samples.get(..keep).unwrap_or(&samples);
    for &s in kept.iter().chain(std::iter::repeat_n(&0, pad)) {
        writer.write_sample(s).map_err(|e| parse_error(dst, e))?;
    }
    writer.finalize().map_err(|e| parse_error(dst, e))
}

/// Writes to `dst` `lead` of zeros followed by all of `src`, in the same format: speech that
/// starts once a call's media is up (ICE through a relay takes a few seconds).
pub fn with_lead(src: &Path, dst: &Path, lead: Duration) -> Result<()> {
    let (spec, samples) = read(src)?;
    let per_second = f64::from(spec.sample_rate) * f64::from(spec.channels);
    let pad = (lead.as_secs_f64() * per_second) as usize;
    let mut writer = hound::WavWriter::create(dst, spec).map_err(|e| parse_error(dst, e))?;
    for &s in std::iter::repeat_n(&0, pad).chain(samples.iter()) {
        writer.write_sample(s).map_err(|e| parse_error(dst, e))?;
    }
    writer.finalize().map_err(|e| parse_error(dst, e))
}

fn read(path: &Path) -> Result<(hound::WavSpec, Vec<i16>)> {
    let reader = hound::WavReader::open(path).map_err(|e| parse_error(path, e))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(TestkitError::Parse {
            what: path.display().to_string(),
            detail: format!("not 16-bit PCM: {spec:?}"),
        });
    }
    let samples = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_error(path, e))?;
    Ok((spec, samples))
}

fn parse_error(path: &Path, e: hound::Error) -> TestkitError {
    TestkitError::Parse {
        what: path.display().to_string(),
        detail: e.to_string(),
    }
}
