//! Figures of the call audio processing (`AudioProcessor`, sonora's AEC3/NS/AGC2), on
//! simulated signals built from the speech files. Run through `bench/apm_bench.sh`, which
//! also scores the noise suppression with PESQ:
//!
//! `cargo run --release -p homeagent-audio --example apm_bench -- AUDIO_DIR OUT_DIR`
//!
//! - ERLE: the far end (`speechNk.wav`) is played; the microphone hears it 100 ms later,
//!   10 dB quieter, through a 40 ms decaying room response, over a -80 dBFS noise floor;
//!   the near end is silent. ERLE = capture energy / processed energy, over everything after
//!   the first 2 s (convergence).
//! - Noise suppression: the same speech with noise added at 10 dB SNR (over active speech),
//!   pink noise and a four-talker babble; the noisy and the suppressed signals are written
//!   to OUT_DIR for PESQ, and the noise level in the pauses of the speech is compared.
//! - Double talk: the near end talks (the second half of the speech file) over the echo of
//!   the far end; the mic and the echo-cancelled signal are written for PESQ against the
//!   near end alone; and the same without any echo (a headset), where the canceller should
//!   leave the near end alone.
//! - CPU: wall time of `process_render` + `process_capture` per 10 ms, everything on, on one
//!   core (the bench is single-threaded).
//!
//! - `apm_bench device SPEECH.wav SINK SOURCE`: echo through real devices (the caller loops the
//!   sink back into the source), ERLE of the echo canceller in a 20 ms real-time loop.
//!
//! Output: one `key value` line per figure (stdout), and `pesq_pair` lines naming the WAV
//! files to score (reference, before, after).

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use homeagent_audio::{AudioProcessor, ProcessingConfig};

const FRAME_MS: usize = 20;
const ECHO_DELAY_MS: usize = 100;
const ECHO_LOSS_DB: f64 = 10.0;
const CONVERGENCE_S: usize = 2;
const SNR_DB: f64 = 10.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, speech, sink, source] = args.as_slice()
        && mode == "device"
    {
        return device_echo(Path::new(speech), sink, source);
    }
    let [audio_dir, out_dir] = args.as_slice() else {
        return Err(
            "usage: apm_bench AUDIO_DIR OUT_DIR | apm_bench device SPEECH.wav SINK SOURCE".into(),
        );
    };
    let (audio_dir, out_dir) = (Path::new(audio_dir), PathBuf::from(out_dir));
    std::fs::create_dir_all(&out_dir)?;

    for rate in [8000, 16000, 48000] {
        let speech = read_wav(&audio_dir.join(format!("speech{}k.wav", rate / 1000)))?;
        let khz = rate / 1000;
        let mic = echo_path(&speech, rate, 7);
        let stages = [("aec", aec_only()), ("all", ProcessingConfig::ALL)];
        for (name, config) in stages {
            let (out, apm) = run(rate, config, Some(&speech), &mic)?;
            let skip = CONVERGENCE_S * rate as usize;
            let erle = 10.0 * (energy(&mic[skip..]) / energy(&out[skip..]).max(1.0)).log10();
            let stats = apm.stats();
            println!(
                "erle_db rate={khz}k stages={name} {erle:.1} (apm estimate {}, delay {} ms)",
                stats.erle_db.map_or("-".into(), |e| format!("{e:.1} dB")),
                stats.echo_delay_ms.map_or("-".into(), |d| d.to_string()),
            );
        }
    }

    for rate in [16000, 48000] {
        let khz = rate / 1000;
        let speech = read_wav(&audio_dir.join(format!("speech{khz}k.wav")))?;
        let noises = [
            ("pink", pink_noise(speech.len(), 11)),
            ("babble", babble(&speech, rate)),
        ];
        for (name, noise) in noises {
            let noisy = mix_at_snr(&speech, &noise, SNR_DB, rate);
            let (denoised, _) = run(rate, ns_only(), None, &noisy)?;
            let pauses = pause_mask(&speech, rate);
            let before = masked_dbfs(&noisy, &pauses);
            let after = masked_dbfs(&denoised, &pauses);
            println!(
                "ns_pause_noise_db rate={khz}k noise={name} {before:.1} -> {after:.1} dBFS ({:+.1} dB)",
                after - before
            );
            let noisy_path = out_dir.join(format!("noisy_{name}_{khz}k.wav"));
            let denoised_path = out_dir.join(format!("ns_{name}_{khz}k.wav"));
            write_wav(&noisy_path, &noisy, rate)?;
            write_wav(&denoised_path, &denoised, rate)?;
            println!(
                "pesq_pair rate={khz}k noise={name} {} {} {}",
                audio_dir.join(format!("speech{khz}k.wav")).display(),
                noisy_path.display(),
                denoised_path.display()
            );
        }
    }

    // Double talk: the near end talks over the echo of the far end (another part of the
    // speech file); what the canceller leaves of the near end is scored against it.
    for rate in [16000, 48000] {
        let khz = rate / 1000;
        let far = read_wav(&audio_dir.join(format!("speech{khz}k.wav")))?;
        let mut near = far.clone();
        near.rotate_left(far.len() / 2);
        let echo = echo_path(&far, rate, 13);
        let mic: Vec<i16> = echo
            .iter()
            .zip(&near)
            .map(|(&e, &n)| e.saturating_add(n))
            .collect();
        let (out, _) = run(rate, aec_only(), Some(&far), &mic)?;
        let near_path = out_dir.join(format!("dt_near_{khz}k.wav"));
        let mic_path = out_dir.join(format!("dt_mic_{khz}k.wav"));
        let out_path = out_dir.join(format!("dt_aec_{khz}k.wav"));
        write_wav(&near_path, &near, rate)?;
        write_wav(&mic_path, &mic, rate)?;
        write_wav(&out_path, &out, rate)?;
        println!(
            "pesq_pair rate={khz}k double_talk {} {} {}",
            near_path.display(),
            mic_path.display(),
            out_path.display()
        );
        // A headset: no echo at all, both ends talking at once (the worst case for the
        // canceller's suppressor, which cannot tell this near end from an echo yet).
        let (out, _) = run(rate, aec_only(), Some(&far), &near)?;
        let headset_path = out_dir.join(format!("dt_headset_aec_{khz}k.wav"));
        write_wav(&headset_path, &out, rate)?;
        println!(
            "pesq_pair rate={khz}k double_talk_headset {} {} {}",
            near_path.display(),
            near_path.display(),
            headset_path.display()
        );
    }

    for rate in [8000, 16000, 48000] {
        let khz = rate / 1000;
        let speech = read_wav(&audio_dir.join(format!("speech{khz}k.wav")))?;
        let mic = mix_at_snr(
            &echo_path(&speech, rate, 3),
            &pink_noise(speech.len(), 5),
            20.0,
            rate,
        );
        for (name, config) in [
            ("all", ProcessingConfig::ALL),
            ("aec", aec_only()),
            ("ns", ns_only()),
        ] {
            let started = Instant::now();
            let (_, apm) = run(rate, config, Some(&speech), &mic)?;
            let elapsed = started.elapsed();
            let blocks = apm.stats().capture_blocks.max(1);
            println!(
                "cpu_us_per_10ms rate={khz}k stages={name} {:.1}",
                elapsed.as_secs_f64() * 1e6 / blocks as f64
            );
        }
    }
    Ok(())
}

/// Echo through real devices: plays the speech to SINK for 20 s while capturing SOURCE (which
/// the caller loops back from the sink's monitor), clocked every 20 ms like a call, and
/// prints the ERLE of the echo canceller after 5 s (virtual sinks drop their first 2 s).
fn device_echo(speech: &Path, sink: &str, source: &str) -> Result<(), Box<dyn std::error::Error>> {
    const RATE: u32 = 16_000;
    let frame = RATE as usize * FRAME_MS / 1000;
    let far = read_wav(speech)?;
    let mut sink = homeagent_audio::open_sink(&sink.parse()?, RATE, frame)?;
    let mut source = homeagent_audio::open_source(&source.parse()?, RATE, frame)?;
    let mut apm = AudioProcessor::new(RATE, aec_only())?;
    let ticks = 20 * 1000 / FRAME_MS;
    let (mut raw, mut processed) = (Vec::new(), Vec::new());
    let mut mic = vec![0i16; frame];
    let started = Instant::now();
    for tick in 0..ticks {
        source.read_frame(&mut mic)?;
        raw.extend_from_slice(&mic);
        apm.process_capture(&mut mic);
        processed.extend_from_slice(&mic);
        let start = (tick * frame) % far.len().saturating_sub(frame).max(1);
        let speaker = far
            .get(start..start + frame)
            .ok_or("speech file shorter than a frame")?;
        apm.process_render(speaker);
        sink.write_frame(speaker)?;
        let next = started + std::time::Duration::from_millis(((tick + 1) * FRAME_MS) as u64);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    sink.finish()?;
    let skip = 5 * RATE as usize;
    let level = 10.0 * (energy(&raw[skip..]) / raw[skip..].len() as f64 / 32768f64.powi(2)).log10();
    let erle = 10.0 * (energy(&raw[skip..]) / energy(&processed[skip..]).max(1.0)).log10();
    let stats = apm.stats();
    println!(
        "device_erle_db rate=16k {erle:.1} (echo at {level:.1} dBFS; apm estimate {}, delay {} ms; input {:?}; output {:?})",
        stats.erle_db.map_or("-".into(), |e| format!("{e:.1} dB")),
        stats.echo_delay_ms.map_or("-".into(), |d| d.to_string()),
        source.stats(),
        sink.stats(),
    );
    Ok(())
}

fn aec_only() -> ProcessingConfig {
    ProcessingConfig {
        echo_cancellation: true,
        ..ProcessingConfig::default()
    }
}

fn ns_only() -> ProcessingConfig {
    ProcessingConfig {
        noise_suppression: true,
        ..ProcessingConfig::default()
    }
}

/// Runs a call's worth of 20 ms ticks: the far end's frame is rendered, the mic's frame
/// captured and processed.
fn run(
    rate: u32,
    config: ProcessingConfig,
    far: Option<&[i16]>,
    mic: &[i16],
) -> Result<(Vec<i16>, AudioProcessor), Box<dyn std::error::Error>> {
    let mut apm = AudioProcessor::new(rate, config)?;
    let frame = rate as usize * FRAME_MS / 1000;
    let mut out = mic.to_vec();
    for (i, chunk) in out.chunks_mut(frame).enumerate() {
        if let Some(far) = far {
            let start = (i * frame).min(far.len());
            apm.process_render(&far[start..(start + frame).min(far.len())]);
        }
        apm.process_capture(chunk);
    }
    Ok((out, apm))
}

/// What the microphone hears of the far end: delayed, attenuated, through a short room
/// response, plus a faint noise floor.
fn echo_path(far: &[i16], rate: u32, seed: u64) -> Vec<i16> {
    let rate = rate as usize;
    let delay = ECHO_DELAY_MS * rate / 1000;
    let mut random = Random(seed);
    // The direct sound, then 24 reflections at random instants of the next 40 ms, decaying
    // with an 8 ms time constant.
    let tail = 40 * rate / 1000;
    let mut response: Vec<(usize, f64)> = vec![(0, 1.0)];
    for _ in 0..24 {
        let at = 1 + (random.uniform() * (tail - 1) as f64) as usize;
        let decay = (-(at as f64) / (0.008 * rate as f64)).exp();
        response.push((at, 0.6 * decay * random.normal()));
    }
    let norm = response.iter().map(|(_, h)| h * h).sum::<f64>().sqrt();
    let gain = 10f64.powf(-ECHO_LOSS_DB / 20.0) / norm;
    response.iter_mut().for_each(|(_, h)| *h *= gain);
    let floor = 32768.0 * 10f64.powf(-80.0 / 20.0);
    (0..far.len())
        .map(|n| {
            let mut sample = floor * random.normal();
            for &(k, h) in &response {
                if let Some(&x) = n.checked_sub(delay + k).and_then(|m| far.get(m)) {
                    sample += h * f64::from(x);
                }
            }
            to_i16(sample)
        })
        .collect()
}

/// Seeded pink-ish noise (white noise through three one-pole low-passes, -3 dB/octave over
/// the speech band).
fn pink_noise(len: usize, seed: u64) -> Vec<f64> {
    let mut random = Random(seed);
    let (mut b0, mut b1, mut b2) = (0.0, 0.0, 0.0);
    (0..len)
        .map(|_| {
            let white = random.normal();
            b0 = 0.99765 * b0 + white * 0.099_046;
            b1 = 0.963 * b1 + white * 0.296_516_4;
            b2 = 0.57 * b2 + white * 1.052_691_3;
            b0 + b1 + b2 + white * 0.1848
        })
        .collect()
}

/// Four talkers: the speech itself, shifted by a few seconds each (wrapping around).
fn babble(speech: &[i16], rate: u32) -> Vec<f64> {
    let shifts = [3, 7, 11, 16].map(|s| s * rate as usize);
    (0..speech.len())
        .map(|n| {
            shifts
                .iter()
                .map(|shift| f64::from(speech[(n + shift) % speech.len()]))
                .sum()
        })
        .collect()
}

/// Speech plus noise scaled to `snr_db` below the active speech level.
fn mix_at_snr(speech: &[i16], noise: &[f64], snr_db: f64, rate: u32) -> Vec<i16> {
    let active = pause_mask(speech, rate)
        .iter()
        .map(|pause| !pause)
        .collect::<Vec<_>>();
    let speech_power = masked_power(speech.iter().map(|&s| f64::from(s)), &active);
    let noise_power = noise.iter().map(|n| n * n).sum::<f64>() / noise.len().max(1) as f64;
    let gain = (speech_power / noise_power.max(1e-9) / 10f64.powf(snr_db / 10.0)).sqrt();
    speech
        .iter()
        .zip(noise)
        .map(|(&s, n)| to_i16(f64::from(s) + gain * n))
        .collect()
}

/// Per sample: whether it lies in a 20 ms frame of the clean speech more than 40 dB below
/// its loudest frame (a pause).
fn pause_mask(speech: &[i16], rate: u32) -> Vec<bool> {
    let frame = rate as usize / 50;
    let levels: Vec<f64> = speech
        .chunks(frame)
        .map(|c| energy(c) / c.len() as f64)
        .collect();
    let loudest = levels.iter().copied().fold(0.0, f64::max);
    levels
        .iter()
        .zip(speech.chunks(frame))
        .flat_map(|(&level, chunk)| std::iter::repeat_n(level < loudest * 1e-4, chunk.len()))
        .collect()
}

fn masked_dbfs(signal: &[i16], mask: &[bool]) -> f64 {
    let power = masked_power(signal.iter().map(|&s| f64::from(s)), mask);
    10.0 * (power.max(1e-3) / (32768.0 * 32768.0)).log10()
}

fn masked_power(signal: impl Iterator<Item = f64>, mask: &[bool]) -> f64 {
    let (sum, count) = signal
        .zip(mask)
        .filter(|(_, m)| **m)
        .fold((0.0, 0usize), |(sum, count), (s, _)| {
            (sum + s * s, count + 1)
        });
    sum / count.max(1) as f64
}

fn energy(samples: &[i16]) -> f64 {
    samples.iter().map(|&s| f64::from(s).powi(2)).sum()
}

fn to_i16(sample: f64) -> i16 {
    sample.round().clamp(-32768.0, 32767.0) as i16
}

fn read_wav(path: &Path) -> Result<Vec<i16>, Box<dyn std::error::Error>> {
    let mut reader =
        hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let channels = usize::from(reader.spec().channels.max(1));
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    Ok(samples.chunks(channels).map(|c| c[0]).collect())
}

fn write_wav(path: &Path, samples: &[i16], rate: u32) -> Result<(), Box<dyn std::error::Error>> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for &sample in samples {
        writer.write_sample(sample)?;
    }
    writer.finalize()?;
    Ok(())
}

/// A seeded generator (xorshift64*), normal deviates by Box-Muller.
struct Random(u64);

impl Random {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (bits as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}
