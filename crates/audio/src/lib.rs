//! Audio I/O for Homeagent: sound devices (cpal), WAV files, tones, silence and a null sink,
//! all seen as mono `i16` PCM at the call's sample rate, in fixed-size frames; and the
//! processing of a call's device audio ([`AudioProcessor`]: echo cancellation, noise
//! suppression, gain control).
//!
//! This is the only crate with real-time threads (cpal's device callbacks).
//!
//! # Contract
//!
//! The driver clocks the audio like a sound card: every frame period (20 ms, say) it reads
//! one frame from the [`AudioSource`] and writes one frame to the [`AudioSink`]. Sources and
//! sinks never block for long: a file is read or written on the spot, a device is reached
//! through a small ring buffer filled or drained by cpal's callback thread.
//!
//! ```no_run
//! use homeagent_audio::{open_sink, open_source, SinkSpec, SourceSpec, SourceState};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source: SourceSpec = "speech48k.wav".parse()?;
//! let sink: SinkSpec = "device:default".parse()?;
//! let (rate, frame) = (8000, 160); // 20 ms at 8 kHz
//! let mut source = open_source(&source, rate, frame)?;
//! let mut sink = open_sink(&sink, rate, frame)?;
//! let mut pcm = vec![0i16; frame];
//! while source.read_frame(&mut pcm)? == SourceState::Data {
//!     sink.write_frame(&pcm)?;
//!     // ... wait for the next 20 ms tick ...
//! }
//! sink.finish()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Devices
//!
//! Devices go through cpal. cpal is built with its PulseAudio host (pure Rust client, no C
//! library), which cpal prefers whenever a PulseAudio server is reachable (PipeWire's
//! `pipewire-pulse` included); ALSA is used otherwise. [`list_devices`] lists every host,
//! the preferred one first, and `device:NAME` searches them in that order: exact name, exact
//! description, then a case-insensitive part of either. So on a desktop the names are the
//! sound server's own sink and source names (`vspeaker`, `vmic`, `vspeaker.monitor`,
//! `alsa_output.usb-Jabra…`), with ALSA's `default`, `pulse`, `hw:CARD=0,DEV=0` after them.
//! Through ALSA alone, PulseAudio is only reachable as the `default`/`pulse` plugin devices
//! (no per-sink names), and that path floods the error callback with `snd_pcm_avail_delay`
//! I/O errors (counted in [`StreamStats::device_errors`], logged sparsely; cpal #1222).
//!
//! The device's native rate and channel count are used; conversion to the call's mono rate
//! happens on the driver's thread (resampler) and a ring buffer sits between the two threads:
//! an empty ring plays or reads silence (underrun), a full ring drops its oldest samples
//! (overrun). Both are counted in [`StreamStats`]. A fatal stream error (device gone, server
//! gone) is reported as [`AudioError::DeviceLost`] by the next `read_frame`/`write_frame`.
//! PulseAudio moves the streams of a removed sink or source to the default one, which is
//! not an error.
//!
//! Opening a device blocks: it connects to the sound server, and PulseAudio only returns
//! from starting a capture stream with the source's first fragment (0.2 to 2 s on an idle
//! virtual source). A driver with a real-time clock opens devices on another thread and
//! clocks silence meanwhile (the engine does), rather than stalling its clock.
//!
//! The buffer requested is one call frame (`BufferSize::Fixed`). cpal double-buffers it, and
//! PulseAudio then runs the sink at its minimum latency; an idle PulseAudio null sink only
//! notices the new stream after its 2 s default latency, so the first ~2 s written to a
//! virtual device are lost (a real sound card wakes at once).
//!
//! # Device tests
//!
//! `tests/device.rs` runs against virtual PulseAudio devices. As root:
//!
//! ```text
//! export $(/work/shared/scripts/virtual-audio.sh | grep XDG_RUNTIME_DIR)
//! cargo test -p homeagent-audio --test device
//! ```
//!
//! The script starts PulseAudio with a null sink `vspeaker` (default sink) and a virtual mic
//! `vmic` (default source, fed with `paplay -d vmic_src`). The tests list the devices, play a
//! tone to `device:default` and to ALSA's `device:pulse` while `parec` records
//! `vspeaker.monitor`, capture from `device:default` while `paplay` feeds `vmic_src`, do
//! both at once from one thread (full duplex, as in a call), and unload a sink under a
//! running stream. Without a reachable PulseAudio (`pactl info` fails)
//! each test prints a notice and passes without checking anything.

#![forbid(unsafe_code)]

mod device;
mod processing;
mod resample;
mod ring;
mod spec;
mod synth;
mod wav;

use std::path::PathBuf;

pub use device::{DeviceInfo, list_devices, list_preferred_devices};
pub use processing::{AudioProcessor, ProcessingConfig, ProcessingStats};
pub use spec::{DeviceSelector, SinkSpec, SourceSpec, SpecError};

/// Level of the `tone:` source, in dBFS.
pub const TONE_LEVEL_DBFS: f64 = -12.0;

/// What a [`AudioSource::read_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// The frame holds audio (the last frame of a file is padded with zeros).
    Data,
    /// The source has no more audio; the frame was filled with zeros. Further reads return
    /// `Ended` again.
    Ended,
}

/// Where frames come from: a file, a generator or a capture device.
pub trait AudioSource: Send {
    /// Sample rate of the frames produced, in hertz (the rate it was opened with).
    fn sample_rate(&self) -> u32;

    /// Fills `out` (one frame, any length, normally the frame size it was opened with) with
    /// mono samples.
    fn read_frame(&mut self, out: &mut [i16]) -> Result<SourceState, AudioError>;

    /// Counters about the stream (all zero for files and generators).
    fn stats(&self) -> StreamStats {
        StreamStats::default()
    }
}

/// Where frames go: a file, nothing, or a playback device.
pub trait AudioSink: Send {
    /// Sample rate of the frames accepted, in hertz.
    fn sample_rate(&self) -> u32;

    /// Takes one frame of mono samples. A file sink never loses a frame; a device sink may drop
    /// its oldest buffered samples if the device plays slower than frames arrive.
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioError>;

    /// Flushes and closes: finalises a WAV header, lets a device play out what it buffered.
    /// Idempotent; writing after `finish` is an error.
    fn finish(&mut self) -> Result<(), AudioError>;

    /// Counters about the stream (all zero for files).
    fn stats(&self) -> StreamStats {
        StreamStats::default()
    }
}

/// Counters of a device stream, cumulative since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Frames read or written by the driver.
    pub frames: u64,
    /// Times the reader of the ring found it empty (silence was substituted).
    pub underruns: u64,
    /// Samples dropped because the ring was full (oldest first), at the device rate.
    pub dropped_samples: u64,
    /// Non-fatal errors reported by the device stream (xruns in the sound server).
    pub device_errors: u64,
    /// Samples (per channel) moved by the device callback, at the device rate.
    pub device_samples: u64,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    #[error("invalid audio parameters: {0}")]
    InvalidParameters(String),
    #[error("tone at {hz} Hz cannot be produced at {sample_rate} Hz (limit is half the rate)")]
    ToneAboveNyquist { hz: f64, sample_rate: u32 },
    #[error("WAV file {path}: {source}")]
    Wav {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("cannot resample from {from} Hz to {to} Hz: {reason}")]
    Resampler { from: u32, to: u32, reason: String },
    #[error("audio sink already finished")]
    Finished,
    #[error("no audio device matches {name:?}; available: {available:?}")]
    DeviceNotFound {
        name: String,
        available: Vec<String>,
    },
    #[error("no default {direction} device")]
    NoDefaultDevice { direction: Direction },
    #[error("audio device {device}: {reason}")]
    Device { device: String, reason: String },
    #[error("audio device {device} lost: {reason}")]
    DeviceLost { device: String, reason: String },
    #[error("audio host unavailable: {0}")]
    Host(String),
}

/// Capture or playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// Opens a source producing mono frames of `frame_samples` samples at `sample_rate` Hz.
///
/// Opening a device (or a WAV file on a FIFO) can block for seconds; see the crate
/// documentation.
pub fn open_source(
    spec: &SourceSpec,
    sample_rate: u32,
    frame_samples: usize,
) -> Result<Box<dyn AudioSource>, AudioError> {
    check_parameters(sample_rate, frame_samples)?;
    Ok(match spec {
        SourceSpec::Wav(path) => Box::new(wav::WavSource::open(path, sample_rate)?),
        SourceSpec::Tone { hz } => Box::new(synth::ToneSource::new(*hz, sample_rate)?),
        SourceSpec::Silence => Box::new(synth::SilenceSource::new(sample_rate)),
        SourceSpec::Device(selector) => Box::new(device::DeviceSource::open(
            selector,
            sample_rate,
            frame_samples,
        )?),
    })
}

/// Opens a sink taking mono frames of `frame_samples` samples at `sample_rate` Hz.
pub fn open_sink(
    spec: &SinkSpec,
    sample_rate: u32,
    frame_samples: usize,
) -> Result<Box<dyn AudioSink>, AudioError> {
    check_parameters(sample_rate, frame_samples)?;
    Ok(match spec {
        SinkSpec::Wav(path) => Box::new(wav::WavSink::create(path, sample_rate)?),
        SinkSpec::Null => Box::new(synth::NullSink::new(sample_rate)),
        SinkSpec::Device(selector) => Box::new(device::DeviceSink::open(
            selector,
            sample_rate,
            frame_samples,
        )?),
    })
}

fn check_parameters(sample_rate: u32, frame_samples: usize) -> Result<(), AudioError> {
    if !(1000..=384_000).contains(&sample_rate) {
        return Err(AudioError::InvalidParameters(format!(
            "sample rate {sample_rate} Hz outside 1000..=384000"
        )));
    }
    // 1 s of audio is far beyond any sane frame; it also bounds the ring sizes.
    if frame_samples == 0 || frame_samples > sample_rate as usize {
        return Err(AudioError::InvalidParameters(format!(
            "frame of {frame_samples} samples at {sample_rate} Hz"
        )));
    }
    Ok(())
}

/// Converts a float sample in [-1, 1] to `i16`, saturating.
fn f32_to_i16(sample: f32) -> i16 {
    // `as` saturates and maps NaN to 0.
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

fn i16_to_f32(sample: i16) -> f32 {
    f32::from(sample) / 32768.0
}

#[cfg(test)]
mod test_support {
    /// Root mean square of the samples, in sample units.
    pub(crate) fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len().max(1) as f64).sqrt()
    }

    /// Frequency of a clean tone from its rising zero crossings, located to a fraction of a
    /// sample by linear interpolation.
    pub(crate) fn zero_crossing_frequency(samples: &[i16], rate: u32) -> f64 {
        let crossings: Vec<f64> = samples
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
            .map(|(i, w)| {
                let (a, b) = (f64::from(w[0]), f64::from(w[1]));
                i as f64 + -a / (b - a)
            })
            .collect();
        match (crossings.first(), crossings.last()) {
            (Some(first), Some(last)) if crossings.len() > 2 => {
                (crossings.len() - 1) as f64 * f64::from(rate) / (last - first)
            }
            _ => 0.0,
        }
    }
}
