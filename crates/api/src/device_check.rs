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

/// Plays a 440 Hz tone for `duration` on `device` (by name; `None`: the system default).
pub fn play_test_tone(device: Option<&str>, duration: Duration) -> Result<(), String> {
    let frame = (TONE_RATE as usize) * TONE_FRAME.as_millis() as usize / 1000;
    let sink_spec: SinkSpec = format!("device:{}", device.unwrap_or("default"))
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut sink =
        homeagent_audio::open_sink(&sink_spec, TONE_RATE, frame).map_err(|e| e.to_string())?;
    let mut tone = homeagent_audio::open_source(&SourceSpec::Tone { hz: 440.0 }, TONE_RATE, frame)
        .map_err(|e| e.to_string())?;
    let mut pcm = vec![0i16; frame];
    let frames = duration.as_millis() / TONE_FRAME.as_millis();
    for _ in 0..frames {
        tone.read_frame(&mut pcm).map_err(|e| e.to_string())?;
        sink.write_frame(&pcm).map_err(|e| e.to_string())?;
        // Device sinks don't block: pace the writes like the device's clock.
        std::thread::sleep(TONE_FRAME);
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
