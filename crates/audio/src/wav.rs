//! WAV file source (any format, resampled to the call's rate) and sink (mono 16-bit).

use std::fs::File;
use std::io::BufReader;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::resample::MonoResampler;
use crate::{AudioError, AudioSink, AudioSource, SourceState, f32_to_i16};

/// Input samples decoded per refill (per channel), before resampling.
const READ_CHUNK: usize = 1024;

/// Reads a WAV file as mono at the requested rate, streaming (the file is not loaded whole).
pub(crate) struct WavSource {
    path: PathBuf,
    reader: hound::WavReader<BufReader<File>>,
    decode: Decode,
    channels: usize,
    sample_rate: u32,
    /// `None` when the file is already at the requested rate.
    resampler: Option<MonoResampler>,
    /// Mono samples at the file's rate, reused by each refill.
    mono: Vec<f32>,
    /// Mono samples at the call's rate, ready to be handed out (no resampler case).
    ready: std::collections::VecDeque<f32>,
    /// Frames of the file not yet decoded.
    frames_left: u64,
    /// The whole file has been decoded and flushed through the resampler.
    drained: bool,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for WavSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSource")
            .field("path", &self.path)
            .field("channels", &self.channels)
            .field("sample_rate", &self.sample_rate)
            .field("frames_left", &self.frames_left)
            .finish_non_exhaustive()
    }
}

/// How to turn the file's samples into floats in [-1, 1].
#[derive(Debug, Clone, Copy)]
enum Decode {
    Int { scale: f32 },
    Float,
}

impl WavSource {
    pub(crate) fn open(path: &Path, sample_rate: u32) -> Result<Self, AudioError> {
        let wav_error = |source| AudioError::Wav {
            path: path.to_owned(),
            source,
        };
        let reader = hound::WavReader::open(path).map_err(wav_error)?;
        let spec = reader.spec();
        let decode = match spec.sample_format {
            hound::SampleFormat::Float if spec.bits_per_sample == 32 => Decode::Float,
            hound::SampleFormat::Int if (8..=32).contains(&spec.bits_per_sample) => Decode::Int {
                scale: 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32,
            },
            _ => return Err(wav_error(hound::Error::Unsupported)),
        };
        let channels = usize::from(spec.channels);
        if channels == 0 || spec.sample_rate == 0 {
            return Err(wav_error(hound::Error::FormatError(
                "no channels or zero rate",
            )));
        }
        let resampler = (spec.sample_rate != sample_rate)
            .then(|| MonoResampler::new(spec.sample_rate, sample_rate, READ_CHUNK, true))
            .transpose()?;
        Ok(Self {
            path: path.to_owned(),
            frames_left: u64::from(reader.duration()),
            reader,
            decode,
            channels,
            sample_rate,
            resampler,
            mono: Vec::with_capacity(READ_CHUNK),
            ready: std::collections::VecDeque::new(),
            drained: false,
            scratch: Vec::new(),
        })
    }

    fn available(&self) -> usize {
        match &self.resampler {
            Some(resampler) => resampler.available(),
            None => self.ready.len(),
        }
    }

    /// Decodes the next chunk of the file into mono and feeds it on.
    fn refill(&mut self) -> Result<(), AudioError> {
        let frames = (READ_CHUNK as u64).min(self.frames_left) as usize;
        self.mono.clear();
        if frames > 0 {
            let decoded = self.decode_frames(frames)?;
            self.frames_left = if decoded < frames {
                0 // Truncated file: stop at what is there.
            } else {
                self.frames_left - frames as u64
            };
        }
        match &mut self.resampler {
            Some(resampler) => {
                resampler.push(&self.mono);
                if self.frames_left == 0 {
                    resampler.flush();
                }
            }
            None => self.ready.extend(self.mono.iter().copied()),
        }
        if self.frames_left == 0 {
            self.drained = true;
        }
        Ok(())
    }

    /// Decodes up to `frames` frames, averaging the channels, into `self.mono`; returns
    /// the number of frames decoded (fewer only if the file is shorter than its header says).
    fn decode_frames(&mut self, frames: usize) -> Result<usize, AudioError> {
        let channels = self.channels;
        let gain = 1.0 / channels as f32;
        let mono = &mut self.mono;
        let mut sum = 0.0f32;
        let mut channel = 0;
        let mut push = |value: f32| {
            sum += value;
            channel += 1;
            if channel == channels {
                mono.push(sum * gain);
                sum = 0.0;
                channel = 0;
            }
        };
        let samples = frames * channels;
        let result = match self.decode {
            Decode::Int { scale } => self
                .reader
                .samples::<i32>()
                .take(samples)
                .try_for_each(|sample| sample.map(|s| push(s as f32 * scale))),
            Decode::Float => self
                .reader
                .samples::<f32>()
                .take(samples)
                .try_for_each(|sample| sample.map(&mut push)),
        };
        result.map_err(|source| AudioError::Wav {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.mono.len())
    }
}

impl AudioSource for WavSource {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn read_frame(&mut self, out: &mut [i16]) -> Result<SourceState, AudioError> {
        while self.available() < out.len() && !self.drained {
            self.refill()?;
        }
        if self.available() == 0 {
            out.fill(0);
            return Ok(SourceState::Ended);
        }
        self.scratch.resize(out.len(), 0.0);
        let n = match &mut self.resampler {
            Some(resampler) => resampler.pop(&mut self.scratch),
            None => {
                let n = out.len().min(self.ready.len());
                for (slot, sample) in self.scratch.iter_mut().zip(self.ready.drain(..n)) {
                    *slot = sample;
                }
                n
            }
        };
        for (slot, &sample) in out.iter_mut().zip(&self.scratch[..n]) {
            *slot = f32_to_i16(sample);
        }
        out[n..].fill(0);
        Ok(SourceState::Data)
    }
}

/// Header refresh period, in samples written: a crash loses at most this much.
const HEADER_REFRESH_SECONDS: u64 = 1;

/// Writes mono 16-bit PCM. The header is finalised by `finish`, by `Drop`, and refreshed
/// every second so even a killed process leaves a readable file.
pub(crate) struct WavSink {
    path: PathBuf,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    sample_rate: u32,
    since_refresh: u64,
    frames: u64,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .field("sample_rate", &self.sample_rate)
            .field("open", &self.writer.is_some())
            .finish_non_exhaustive()
    }
}

impl WavSink {
    pub(crate) fn create(path: &Path, sample_rate: u32) -> Result<Self, AudioError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|source| AudioError::Wav {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            writer: Some(writer),
            sample_rate,
            since_refresh: 0,
            frames: 0,
        })
    }

    fn error(&self, source: hound::Error) -> AudioError {
        AudioError::Wav {
            path: self.path.clone(),
            source,
        }
    }
}

impl AudioSink for WavSink {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(AudioError::Finished);
        };
        let result = (|| {
            let mut samples = writer.get_i16_writer(frame.len() as u32);
            for &sample in frame {
                samples.write_sample(sample);
            }
            samples.flush()?;
            self.since_refresh += frame.len() as u64;
            if self.since_refresh >= u64::from(self.sample_rate) * HEADER_REFRESH_SECONDS {
                self.since_refresh = 0;
                // Rewrites the header for the samples so far and flushes the file.
                writer.flush()?;
            }
            Ok(())
        })();
        self.frames += 1;
        result.map_err(|e| self.error(e))
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        match self.writer.take() {
            Some(writer) => writer.finalize().map_err(|e| self.error(e)),
            None => Ok(()),
        }
    }

    fn stats(&self) -> crate::StreamStats {
        crate::StreamStats {
            frames: self.frames,
            ..Default::default()
        }
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        if let Err(error) = self.finish() {
            tracing::error!(%error, "cannot finalise WAV file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{rms, zero_crossing_frequency};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("homeagent-audio-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Writes `seconds` of a 440 Hz tone at half scale on every channel.
    fn write_tone_file(path: &Path, spec: hound::WavSpec, seconds: f64) {
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        let frames = (f64::from(spec.sample_rate) * seconds) as usize;
        let t = |i: usize| i as f64 / f64::from(spec.sample_rate);
        for i in 0..frames {
            for _ in 0..spec.channels {
                let value = 0.5 * (std::f64::consts::TAU * 440.0 * t(i)).sin();
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => writer.write_sample(value as f32).unwrap(),
                    (_, bits) => {
                        let full = f64::from((1u32 << (bits - 1)) - 1);
                        writer.write_sample((value * full).round() as i32).unwrap();
                    }
                }
            }
        }
        writer.finalize().unwrap();
    }

    fn read_all(path: &Path, rate: u32, frame: usize) -> Vec<i16> {
        let mut source = WavSource::open(path, rate).unwrap();
        let mut all = Vec::new();
        let mut buf = vec![0i16; frame];
        let mut frames = 0;
        while source.read_frame(&mut buf).unwrap() == SourceState::Data {
            all.extend_from_slice(&buf);
            frames += 1;
            assert!(frames < 100_000, "source never ends");
        }
        assert!(buf.iter().all(|&s| s == 0), "Ended frame must be silent");
        assert_eq!(source.read_frame(&mut buf).unwrap(), SourceState::Ended);
        all
    }

    fn spec(rate: u32, channels: u16, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn reads_any_rate_and_format_as_mono_at_the_call_rate() {
        let dir = TempDir::new("read");
        let int = hound::SampleFormat::Int;
        let float = hound::SampleFormat::Float;
        let files = [
            spec(8000, 2, 16, int),
            spec(16000, 2, 16, int),
            spec(44100, 2, 16, int),
            spec(48000, 2, 16, int),
            spec(48000, 1, 8, int),
            spec(22050, 2, 24, int),
            spec(32000, 1, 32, int),
            spec(44100, 2, 32, float),
        ];
        for file_spec in files {
            let path = dir.0.join(format!(
                "t{}-{}-{}.wav",
                file_spec.sample_rate, file_spec.channels, file_spec.bits_per_sample
            ));
            write_tone_file(&path, file_spec, 1.5);
            for (rate, frame) in [(8000u32, 160usize), (48000, 960)] {
                let what = format!("{file_spec:?} -> {rate} Hz");
                let pcm = read_all(&path, rate, frame);
                // Duration kept within a frame: 1.5 s, rounded up to whole frames.
                let expected = (1.5 * f64::from(rate)) as usize;
                assert!(
                    pcm.len() >= expected && pcm.len() < expected + frame,
                    "{what}: {} samples",
                    pcm.len()
                );
                let middle = &pcm[rate as usize / 10..expected - rate as usize / 10];
                let measured = zero_crossing_frequency(middle, rate);
                assert!((measured - 440.0).abs() < 1.0, "{what}: {measured} Hz");
                let level = rms(middle) / 32768.0;
                // 8-bit quantisation is coarse but the level must still be right.
                assert!((level - 0.3536).abs() < 0.01, "{what}: rms {level}");
            }
        }
    }

    #[test]
    fn stereo_is_averaged() {
        let dir = TempDir::new("stereo");
        let path = dir.0.join("lr.wav");
        let mut writer =
            hound::WavWriter::create(&path, spec(8000, 2, 16, hound::SampleFormat::Int)).unwrap();
        for _ in 0..160 {
            writer.write_sample(1000i16).unwrap();
            writer.write_sample(3000i16).unwrap();
        }
        writer.finalize().unwrap();
        let pcm = read_all(&path, 8000, 160);
        assert_eq!(pcm.len(), 160);
        assert!(pcm.iter().all(|&s| s == 2000), "{:?}", &pcm[..4]);
    }

    #[test]
    fn last_frame_is_padded_with_zeros() {
        let dir = TempDir::new("pad");
        let path = dir.0.join("short.wav");
        let mut writer =
            hound::WavWriter::create(&path, spec(8000, 1, 16, hound::SampleFormat::Int)).unwrap();
        for i in 0..250i16 {
            writer.write_sample(i + 1).unwrap();
        }
        writer.finalize().unwrap();
        let pcm = read_all(&path, 8000, 160);
        assert_eq!(pcm.len(), 320);
        assert_eq!(pcm[249], 250);
        assert!(pcm[250..].iter().all(|&s| s == 0));
    }

    #[test]
    fn missing_file_is_a_wav_error() {
        let error = WavSource::open(Path::new("/nonexistent/x.wav"), 8000).unwrap_err();
        assert!(matches!(error, AudioError::Wav { .. }), "{error}");
    }

    #[test]
    fn sink_writes_mono_16_bit_and_reads_back() {
        let dir = TempDir::new("sink");
        let path = dir.0.join("out.wav");
        let written: Vec<i16> = (0..16000)
            .map(|i| ((i * 37) % 65536 - 32768) as i16)
            .collect();
        let mut sink = WavSink::create(&path, 16000).unwrap();
        for frame in written.chunks(320) {
            sink.write_frame(frame).unwrap();
        }
        sink.finish().unwrap();
        sink.finish().unwrap();
        assert!(matches!(
            sink.write_frame(&[0; 320]),
            Err(AudioError::Finished)
        ));
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec(), spec(16000, 1, 16, hound::SampleFormat::Int));
        let read: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(read, written);
    }

    #[test]
    fn sink_dropped_without_finish_leaves_a_valid_file() {
        let dir = TempDir::new("drop");
        let path = dir.0.join("dropped.wav");
        {
            let mut sink = WavSink::create(&path, 8000).unwrap();
            for _ in 0..3 {
                sink.write_frame(&[5; 160]).unwrap();
            }
        }
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.duration(), 480);
    }

    #[test]
    fn sink_header_is_refreshed_while_writing() {
        // Without finish or drop (as if killed), the header already covers the first second.
        let dir = TempDir::new("refresh");
        let path = dir.0.join("live.wav");
        let mut sink = WavSink::create(&path, 8000).unwrap();
        for _ in 0..60 {
            sink.write_frame(&[5; 160]).unwrap();
        }
        let reader = hound::WavReader::open(&path).unwrap();
        assert!(
            reader.duration() >= 8000,
            "header says {}",
            reader.duration()
        );
        std::mem::forget(sink);
    }

    #[test]
    fn wav_round_trip_through_source_keeps_samples() {
        let dir = TempDir::new("roundtrip");
        let path = dir.0.join("rt.wav");
        let written: Vec<i16> = (0..800).map(|i| (i * 40 - 16000) as i16).collect();
        let mut sink = WavSink::create(&path, 8000).unwrap();
        for frame in written.chunks(160) {
            sink.write_frame(frame).unwrap();
        }
        sink.finish().unwrap();
        assert_eq!(read_all(&path, 8000, 160), written);
    }
}
