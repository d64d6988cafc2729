//! Capture and playback devices through cpal.
//!
//! Threads: cpal runs the stream callback on its own real-time thread. The callback only
//! converts samples (device format and channels ↔ mono `f32` at the device rate) and copies
//! them through a [`SampleRing`]. Resampling to/from the call's rate runs on the driver's
//! thread, inside `read_frame`/`write_frame`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::resample::MonoResampler;
use crate::ring::SampleRing;
use crate::{
    AudioError, AudioSink, AudioSource, DeviceSelector, Direction, SourceState, StreamStats,
    f32_to_i16, i16_to_f32,
};

/// Evaluates `$body` with `$t` naming the Rust type of the cpal sample format `$format`
/// (capture and playback streams are built for every format the same way).
macro_rules! with_sample_type {
    ($format:expr, $t:ident => $body:expr) => {
        match $format {
            cpal::SampleFormat::I8 => {
                type $t = i8;
                $body
            }
            cpal::SampleFormat::I16 => {
                type $t = i16;
                $body
            }
            cpal::SampleFormat::I32 => {
                type $t = i32;
                $body
            }
            cpal::SampleFormat::U8 => {
                type $t = u8;
                $body
            }
            cpal::SampleFormat::U16 => {
                type $t = u16;
                $body
            }
            cpal::SampleFormat::F32 => {
                type $t = f32;
                $body
            }
            cpal::SampleFormat::F64 => {
                type $t = f64;
                $body
            }
            other => Err(cpal::Error::with_message(
                cpal::ErrorKind::UnsupportedConfig,
                format!("sample format {other} not handled"),
            )),
        }
    };
}

/// A device as seen by [`list_devices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The name to use in `device:NAME`: the host's device id (a PulseAudio sink or source
    /// name such as `vspeaker`, or an ALSA PCM name such as `pulse` or `hw:CARD=0,DEV=0`).
    pub name: String,
    /// Human-readable description ("VirtualSpeaker", "PulseAudio Sound Server");
    /// `device:NAME` also matches it.
    pub description: String,
    /// The cpal host serving it ("PulseAudio", "ALSA", ...).
    pub host: String,
    pub input: bool,
    pub output: bool,
    /// The default capture device of the preferred host.
    pub default_input: bool,
    /// The default playback device of the preferred host.
    pub default_output: bool,
}

/// Lists the devices of every available cpal host, the preferred host first (on Linux:
/// PulseAudio, also served by PipeWire, when a server is reachable; then ALSA).
pub fn list_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    list_devices_of(hosts())
}

/// The devices of the preferred host only: cheap enough to poll for hot-plug (ALSA's
/// enumeration, behind a sound server, probes every PCM).
pub fn list_preferred_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    list_devices_of(hosts().into_iter().take(1).collect())
}

fn list_devices_of(hosts: Vec<cpal::Host>) -> Result<Vec<DeviceInfo>, AudioError> {
    let Some(preferred) = hosts.first() else {
        return Err(AudioError::Host("no audio host available".to_owned()));
    };
    let default_input = preferred.default_input_device();
    let default_output = preferred.default_output_device();
    let mut listed = Vec::new();
    for (index, host) in hosts.iter().enumerate() {
        let devices = match host.devices() {
            Ok(devices) => devices,
            // The preferred host must work; a secondary one may be absent.
            Err(error) if index == 0 => return Err(AudioError::Host(error.to_string())),
            Err(error) => {
                tracing::debug!(host = host.id().name(), %error, "cannot list devices");
                continue;
            }
        };
        for device in devices {
            let (name, description) = names(&device);
            listed.push(DeviceInfo {
                name,
                description,
                host: host.id().name().to_owned(),
                input: device.supports_input(),
                output: device.supports_output(),
                default_input: index == 0 && default_input.as_ref() == Some(&device),
                default_output: index == 0 && default_output.as_ref() == Some(&device),
            });
        }
    }
    Ok(listed)
}

/// Available hosts, the preferred (cpal's default) first.
fn hosts() -> Vec<cpal::Host> {
    let preferred = cpal::default_host();
    let preferred_id = preferred.id();
    let others = cpal::available_hosts()
        .into_iter()
        .filter(|id| *id != preferred_id)
        .filter_map(|id| cpal::host_from_id(id).ok());
    std::iter::once(preferred).chain(others).collect()
}

/// The device's id (what `device:NAME` takes) and its description.
fn names(device: &cpal::Device) -> (String, String) {
    let description = device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_default();
    let id = device
        .id()
        .map(|id| id.id().to_owned())
        .unwrap_or_else(|_| description.clone());
    (id, description)
}

/// Finds a device: the preferred host's default, or by name across all hosts (exact id,
/// exact description, then case-insensitive substring of either).
fn find_device(
    selector: &DeviceSelector,
    direction: Direction,
) -> Result<(cpal::Device, String), AudioError> {
    let hosts = hosts();
    let wanted = match selector {
        DeviceSelector::Default => {
            let device = hosts.first().and_then(|host| match direction {
                Direction::Input => host.default_input_device(),
                Direction::Output => host.default_output_device(),
            });
            let device = device.ok_or(AudioError::NoDefaultDevice { direction })?;
            let (name, _) = names(&device);
            return Ok((device, name));
        }
        DeviceSelector::Named(name) => name,
    };
    let candidates: Vec<(cpal::Device, String, String)> = hosts
        .iter()
        .filter_map(|host| host.devices().ok())
        .flatten()
        .filter(|device| match direction {
            Direction::Input => device.supports_input(),
            Direction::Output => device.supports_output(),
        })
        .map(|device| {
            let (id, description) = names(&device);
            (device, id, description)
        })
        .collect();
    let lower = wanted.to_lowercase();
    let position = candidates
        .iter()
        .position(|(_, id, _)| id == wanted)
        .or_else(|| candidates.iter().position(|(_, _, desc)| desc == wanted))
        .or_else(|| {
            candidates.iter().position(|(_, id, desc)| {
                id.to_lowercase().contains(&lower) || desc.to_lowercase().contains(&lower)
            })
        });
    match position {
        Some(index) => {
            let (device, id, _) = candidates.into_iter().nth(index).ok_or_else(|| {
                AudioError::Host("device list changed while searching".to_owned())
            })?;
            Ok((device, id))
        }
        None => Err(AudioError::DeviceNotFound {
            name: wanted.clone(),
            available: candidates.into_iter().map(|(_, id, _)| id).collect(),
        }),
    }
}

/// State shared with the callback threads.
#[derive(Debug)]
struct Shared {
    ring: Mutex<SampleRing>,
    /// Set once by the error callback when the device is gone.
    fatal: Mutex<Option<String>>,
    /// Non-fatal stream errors (xruns).
    errors: AtomicU64,
    /// Samples per channel moved by the callback.
    callback_samples: AtomicU64,
}

impl Shared {
    /// The state of a new stream, its ring sized for the device period and the chunk size.
    fn new(period: usize, chunk: usize, device_rate: u32) -> Arc<Self> {
        let (capacity, prefill, max_level) = ring_sizes(period, chunk, device_rate);
        Arc::new(Self {
            ring: Mutex::new(SampleRing::new(capacity, prefill, max_level)),
            fatal: Mutex::new(None),
            errors: AtomicU64::new(0),
            callback_samples: AtomicU64::new(0),
        })
    }

    fn ring(&self) -> MutexGuard<'_, SampleRing> {
        // A panic while holding the lock cannot leave the ring inconsistent in a way that
        // matters (worst case: a few wrong samples), so recover from poisoning.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn on_error(&self, device: &str, error: cpal::Error) {
        use cpal::ErrorKind;
        match error.kind() {
            ErrorKind::DeviceNotAvailable | ErrorKind::StreamInvalidated => {
                tracing::error!(device, %error, "audio device lost");
                let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
                fatal.get_or_insert_with(|| error.to_string());
            }
            ErrorKind::Xrun => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(device, "audio device xrun");
            }
            _ => {
                // Some backends repeat an error in a loop: log the first few, then sparsely.
                let count = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
                if count <= 3 || count.is_power_of_two() {
                    tracing::warn!(device, %error, count, "audio device error");
                }
            }
        }
    }

    fn check(&self, device: &str) -> Result<(), AudioError> {
        let fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        match fatal.as_ref() {
            Some(reason) => Err(AudioError::DeviceLost {
                device: device.to_owned(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn stats(&self, frames: u64) -> StreamStats {
        let ring = self.ring();
        StreamStats {
            frames,
            underruns: ring.underruns,
            dropped_samples: ring.dropped,
            device_errors: self.errors.load(Ordering::Relaxed),
            device_samples: self.callback_samples.load(Ordering::Relaxed),
        }
    }
}

/// The device's own configuration and the buffer plan derived from it.
struct Plan {
    config: cpal::StreamConfig,
    format: cpal::SampleFormat,
    /// Requested period, in device frames.
    period: u32,
}

fn plan(
    device: &cpal::Device,
    name: &str,
    direction: Direction,
    sample_rate: u32,
    frame_samples: usize,
) -> Result<Plan, AudioError> {
    let supported = match direction {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(|e| device_error(name, e))?;
    let device_rate = supported.sample_rate();
    // One call frame's worth of device frames: small enough for latency, large enough that
    // the ALSA→PulseAudio path does not underrun constantly (cpal #1222).
    let period = (frame_samples as u64 * u64::from(device_rate) / u64::from(sample_rate)) as u32;
    let buffer_size = match *supported.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } => {
            cpal::BufferSize::Fixed(period.clamp(min, max))
        }
        cpal::SupportedBufferSize::Unknown => cpal::BufferSize::Default,
    };
    Ok(Plan {
        config: cpal::StreamConfig {
            channels: supported.channels(),
            sample_rate: device_rate,
            buffer_size,
        },
        format: supported.sample_format(),
        period,
    })
}

fn device_error(device: &str, error: cpal::Error) -> AudioError {
    AudioError::Device {
        device: device.to_owned(),
        reason: error.to_string(),
    }
}

/// Builds a stream with `build`, retrying with the default buffer size if the fixed one is
/// refused.
fn build_stream(
    name: &str,
    plan: &mut Plan,
    build: impl Fn(&cpal::StreamConfig) -> Result<cpal::Stream, cpal::Error>,
) -> Result<cpal::Stream, AudioError> {
    match build(&plan.config) {
        Ok(stream) => Ok(stream),
        Err(error) if matches!(plan.config.buffer_size, cpal::BufferSize::Fixed(_)) => {
            tracing::info!(device = name, %error, "fixed buffer refused, using the default");
            plan.config.buffer_size = cpal::BufferSize::Default;
            build(&plan.config).map_err(|e| device_error(name, e))
        }
        Err(error) => Err(device_error(name, error)),
    }
}

const BUILD_TIMEOUT: Option<Duration> = Some(Duration::from_secs(3));

/// Ring sizes for a stream: (capacity, prefill, max_level) in device samples.
fn ring_sizes(period: usize, chunk: usize, device_rate: u32) -> (usize, usize, usize) {
    let prefill = period + chunk;
    let max_level = 2 * prefill + device_rate as usize / 20;
    let capacity = (2 * max_level).max(device_rate as usize / 2);
    (capacity, prefill, max_level)
}

/// Captures from a device: mono, resampled to the call's rate.
pub(crate) struct DeviceSource {
    name: String,
    sample_rate: u32,
    shared: Arc<Shared>,
    resampler: Option<MonoResampler>,
    /// Device-rate samples taken from the ring for the resampler.
    input: Vec<f32>,
    scratch: Vec<f32>,
    frames: u64,
    // Dropped last: stops the callback.
    _stream: cpal::Stream,
}

impl std::fmt::Debug for DeviceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSource")
            .field("name", &self.name)
            .field("sample_rate", &self.sample_rate)
            .finish_non_exhaustive()
    }
}

impl DeviceSource {
    pub(crate) fn open(
        selector: &DeviceSelector,
        sample_rate: u32,
        frame_samples: usize,
    ) -> Result<Self, AudioError> {
        let (device, name) = find_device(selector, Direction::Input)?;
        let mut plan = plan(&device, &name, Direction::Input, sample_rate, frame_samples)?;
        let device_rate = plan.config.sample_rate;
        let period = plan.period as usize;
        let resampler = (device_rate != sample_rate)
            .then(|| MonoResampler::new(device_rate, sample_rate, period.max(1), false))
            .transpose()?;
        let chunk = resampler
            .as_ref()
            .map_or(frame_samples, MonoResampler::chunk);
        let shared = Shared::new(period, chunk, device_rate);
        let channels = usize::from(plan.config.channels.max(1));
        let format = plan.format;
        let stream = build_stream(
            &name,
            &mut plan,
            |config| with_sample_type!(format, T => build_input::<T>(&device, config, channels, &shared, &name)),
        )?;
        stream.play().map_err(|e| device_error(&name, e))?;
        tracing::info!(
            device = %name,
            rate = device_rate,
            channels,
            format = %format,
            period = ?stream.buffer_size().ok(),
            "capture started"
        );
        Ok(Self {
            name,
            sample_rate,
            shared,
            resampler,
            input: Vec::with_capacity(chunk),
            scratch: Vec::with_capacity(frame_samples),
            frames: 0,
            _stream: stream,
        })
    }
}

fn build_input<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    shared: &Arc<Shared>,
    name: &str,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let data_shared = Arc::clone(shared);
    let error_shared = Arc::clone(shared);
    let name = name.to_owned();
    let gain = 1.0 / channels as f32;
    device.build_input_stream(
        *config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            let mono = data
                .chunks_exact(channels)
                .map(|frame| frame.iter().map(|&s| f32::from_sample_(s)).sum::<f32>() * gain);
            data_shared.ring().write(mono);
            data_shared
                .callback_samples
                .fetch_add((data.len() / channels) as u64, Ordering::Relaxed);
        },
        move |error| error_shared.on_error(&name, error),
        BUILD_TIMEOUT,
    )
}

impl AudioSource for DeviceSource {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn read_frame(&mut self, out: &mut [i16]) -> Result<SourceState, AudioError> {
        self.shared.check(&self.name)?;
        self.frames += 1;
        self.scratch.resize(out.len(), 0.0);
        match &mut self.resampler {
            None => {
                let mut slots = self.scratch.iter_mut();
                self.shared.ring().read(out.len(), |s| {
                    if let Some(slot) = slots.next() {
                        *slot = s;
                    }
                });
            }
            Some(resampler) => {
                while resampler.available() < out.len() {
                    self.input.clear();
                    let input = &mut self.input;
                    self.shared
                        .ring()
                        .read(resampler.chunk(), |s| input.push(s));
                    resampler.push(&self.input);
                }
                resampler.pop(&mut self.scratch);
            }
        }
        for (slot, &sample) in out.iter_mut().zip(&self.scratch) {
            *slot = f32_to_i16(sample);
        }
        Ok(SourceState::Data)
    }

    fn stats(&self) -> StreamStats {
        self.shared.stats(self.frames)
    }
}

/// Plays to a device: mono frames resampled to the device rate, copied to every channel.
pub(crate) struct DeviceSink {
    name: String,
    sample_rate: u32,
    device_rate: u32,
    shared: Arc<Shared>,
    resampler: Option<MonoResampler>,
    scratch: Vec<f32>,
    frames: u64,
    finished: bool,
    stream: cpal::Stream,
}

impl std::fmt::Debug for DeviceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSink")
            .field("name", &self.name)
            .field("sample_rate", &self.sample_rate)
            .finish_non_exhaustive()
    }
}

impl DeviceSink {
    pub(crate) fn open(
        selector: &DeviceSelector,
        sample_rate: u32,
        frame_samples: usize,
    ) -> Result<Self, AudioError> {
        let (device, name) = find_device(selector, Direction::Output)?;
        let mut plan = plan(
            &device,
            &name,
            Direction::Output,
            sample_rate,
            frame_samples,
        )?;
        let device_rate = plan.config.sample_rate;
        let period = plan.period as usize;
        let resampler = (device_rate != sample_rate)
            .then(|| MonoResampler::new(sample_rate, device_rate, frame_samples, false))
            .transpose()?;
        // Output arrives in bursts of one resampler chunk, converted to the device rate.
        let chunk = resampler.as_ref().map_or(frame_samples, |r| {
            r.chunk() * device_rate as usize / sample_rate as usize + 1
        });
        let shared = Shared::new(period, chunk, device_rate);
        let channels = usize::from(plan.config.channels.max(1));
        let format = plan.format;
        let stream = build_stream(
            &name,
            &mut plan,
            |config| with_sample_type!(format, T => build_output::<T>(&device, config, channels, &shared, &name)),
        )?;
        stream.play().map_err(|e| device_error(&name, e))?;
        tracing::info!(
            device = %name,
            rate = device_rate,
            channels,
            format = %format,
            period = ?stream.buffer_size().ok(),
            "playback started"
        );
        Ok(Self {
            name,
            sample_rate,
            device_rate,
            shared,
            resampler,
            scratch: Vec::new(),
            frames: 0,
            finished: false,
            stream,
        })
    }

    /// Moves resampled output into the ring.
    fn drain_resampler(&mut self) {
        if let Some(resampler) = &mut self.resampler {
            self.scratch.resize(resampler.available(), 0.0);
            let n = resampler.pop(&mut self.scratch);
            self.shared.ring().write(self.scratch[..n].iter().copied());
        }
    }
}

fn build_output<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    shared: &Arc<Shared>,
    name: &str,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let data_shared = Arc::clone(shared);
    let error_shared = Arc::clone(shared);
    let name = name.to_owned();
    device.build_output_stream(
        *config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            let frames = data.len() / channels;
            let mut slots = data.chunks_exact_mut(channels);
            data_shared.ring().read(frames, |s| {
                if let Some(frame) = slots.next() {
                    frame.fill(T::from_sample_(s));
                }
            });
            data_shared
                .callback_samples
                .fetch_add(frames as u64, Ordering::Relaxed);
        },
        move |error| error_shared.on_error(&name, error),
        BUILD_TIMEOUT,
    )
}

impl AudioSink for DeviceSink {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioError> {
        if self.finished {
            return Err(AudioError::Finished);
        }
        self.shared.check(&self.name)?;
        self.frames += 1;
        match &mut self.resampler {
            None => self
                .shared
                .ring()
                .write(frame.iter().map(|&s| i16_to_f32(s))),
            Some(resampler) => {
                self.scratch.clear();
                self.scratch.extend(frame.iter().map(|&s| i16_to_f32(s)));
                resampler.push(&self.scratch);
                self.drain_resampler();
            }
        }
        Ok(())
    }

    /// Plays out what is buffered (bounded wait), then stops the stream.
    fn finish(&mut self) -> Result<(), AudioError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if let Some(resampler) = &mut self.resampler {
            resampler.flush();
        }
        self.drain_resampler();
        let queued = {
            let mut ring = self.shared.ring();
            ring.drain();
            ring.len()
        };
        let deadline = Instant::now()
            + Duration::from_millis(queued as u64 * 1000 / u64::from(self.device_rate) + 500);
        while self.shared.ring().len() > 0 && Instant::now() < deadline {
            self.shared.check(&self.name)?;
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stream.pause().map_err(|e| device_error(&self.name, e))
    }

    fn stats(&self) -> StreamStats {
        self.shared.stats(self.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            ring: Mutex::new(SampleRing::new(64, 8, 32)),
            fatal: Mutex::new(None),
            errors: AtomicU64::new(0),
            callback_samples: AtomicU64::new(0),
        }
    }

    #[test]
    fn xruns_are_counted_not_fatal() {
        let shared = shared();
        shared.on_error("dev", cpal::Error::new(cpal::ErrorKind::Xrun));
        shared.on_error("dev", cpal::Error::new(cpal::ErrorKind::BackendError));
        assert!(shared.check("dev").is_ok());
        assert_eq!(shared.stats(0).device_errors, 2);
    }

    #[test]
    fn a_lost_device_is_reported_by_the_next_call() {
        for kind in [
            cpal::ErrorKind::DeviceNotAvailable,
            cpal::ErrorKind::StreamInvalidated,
        ] {
            let shared = shared();
            shared.on_error("headset", cpal::Error::new(kind));
            match shared.check("headset") {
                Err(AudioError::DeviceLost { device, .. }) => assert_eq!(device, "headset"),
                other => panic!("{kind:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn ring_sizes_leave_room_for_a_period_and_a_chunk() {
        let (capacity, prefill, max_level) = ring_sizes(960, 960, 48000);
        assert_eq!(prefill, 1920);
        assert!(max_level > prefill && capacity > max_level);
    }
}
