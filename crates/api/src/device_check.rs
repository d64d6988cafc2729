//! Device checks for the settings screen: a test tone on a speaker, the level of a microphone.
//! Both block (devices open slowly): run them off the UI thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use homeagent_audio::{SinkSpec, SourceSpec};

const TONE_RATE: u32 = 48_000;
const TONE_FRAME: Duration = Duration::from_millis(20);
const METER_RATE: u32 = 16_000;
const METER_PERIOD: Duration = Duration::from_millis(100);
/// The level reported for digital silence.
pub const SILENCE_DBFS: f64 = -100.0;

/// The ring cadence: tone, then pause (France: 1.5 s at 440 Hz every 5 s).
const RING_ON: Duration = Duration::from_millis(1500);
const RING_OFF: Duration = Duration::from_millis(3500);

/// Plays a 440 Hz tone for `duration` on `device` (by name; `None`: the system default).
pub fn play_test_tone(device: Option<&str>, duration: Duration) -> Result<(), String> {
    play_tone(device, &Arc::new(AtomicBool::new(false)), |elapsed| {
        (elapsed < duration).then_some(true)
    })
}

/// Rings on `device` (the ringer) until `stop` is set.
pub fn ring(device: Option<&str>, stop: &Arc<AtomicBool>) -> Result<(), String> {
    play_tone(device, stop, |elapsed| Some(ring_sounding(elapsed)))
}

/// Whether the ring cadence sounds at `elapsed` from its start.
fn ring_sounding(elapsed: Duration) -> bool {
    let period = (RING_ON + RING_OFF).as_millis();
    elapsed.as_millis() % period < RING_ON.as_millis()
}

/// Plays 440 Hz on `device` in 20 ms frames while `sounding(elapsed)` says `Some(true)`,
/// silence while `Some(false)`, until it says `None` or `stop` is set.
fn play_tone(
    device: Option<&str>,
    stop: &Arc<AtomicBool>,
    mut sounding: impl FnMut(Duration) -> Option<bool>,
) -> Result<(), String> {
    let frame = (TONE_RATE as usize) * TONE_FRAME.as_millis() as usize / 1000;
    let sink_spec: SinkSpec = format!("device:{}", device.unwrap_or("default"))
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut sink =
        homeagent_audio::open_sink(&sink_spec, TONE_RATE, frame).map_err(|e| e.to_string())?;
    let mut tone = homeagent_audio::open_source(&SourceSpec::Tone { hz: 440.0 }, TONE_RATE, frame)
        .map_err(|e| e.to_string())?;
    let mut pcm = vec![0i16; frame];
    let mut elapsed = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let Some(on) = sounding(elapsed) else { break };
        tone.read_frame(&mut pcm).map_err(|e| e.to_string())?;
        if !on {
            pcm.fill(0);
        }
        sink.write_frame(&pcm).map_err(|e| e.to_string())?;
        // Device sinks don't block: pace the writes like the device's clock.
        std::thread::sleep(TONE_FRAME);
        elapsed += TONE_FRAME;
    }
    sink.finish().map_err(|e| e.to_string())
}

/// Reports the level of `device` (dBFS of each 100 ms) to `on_level` until `stop` is set.
pub fn meter_input(
    device: Option<&str>,
    stop: &Arc<AtomicBool>,
    mut on_level: impl FnMut(f64),
) -> Result<(), String> {
    let frame = (METER_RATE as usize) * METER_PERIOD.as_millis() as usize / 1000;
    let spec: SourceSpec = format!("device:{}", device.unwrap_or("default"))
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut source =
        homeagent_audio::open_source(&spec, METER_RATE, frame).map_err(|e| e.to_string())?;
    let mut pcm = vec![0i16; frame];
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(METER_PERIOD);
        source.read_frame(&mut pcm).map_err(|e| e.to_string())?;
        on_level(level_dbfs(&pcm));
    }
    Ok(())
}

/// RMS level of `pcm` in dBFS, floored at [`SILENCE_DBFS`].
pub fn level_dbfs(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return SILENCE_DBFS;
    }
    let energy = pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64;
    let rms = energy.sqrt() / 32768.0;
    if rms <= 0.0 {
        return SILENCE_DBFS;
    }
    (20.0 * rms.log10()).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_cadence_is_one_and_a_half_seconds_every_five() {
        let on = |ms| ring_sounding(Duration::from_millis(ms));
        assert!(on(0) && on(1499) && on(5000) && on(6400));
        assert!(!on(1500) && !on(4999) && !on(6500));
    }

    #[test]
    fn levels_of_silence_and_full_scale() {
        assert_eq!(level_dbfs(&[0; 160]), SILENCE_DBFS);
        assert_eq!(level_dbfs(&[]), SILENCE_DBFS);
        let full: Vec<i16> = (0..160)
            .map(|n| if n % 2 == 0 { 32767 } else { -32768 })
            .collect();
        assert!(level_dbfs(&full).abs() < 0.01);
        let tenth: Vec<i16> = (0..160)
            .map(|n| if n % 2 == 0 { 3277 } else { -3277 })
            .collect();
        assert!(
            (level_dbfs(&tenth) + 20.0).abs() < 0.05,
            "{}",
            level_dbfs(&tenth)
        );
    }
}
