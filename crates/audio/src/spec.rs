//! Parsing of the `--source` / `--sink` strings given on the command line.
//!
//! Grammar (a contract with the CLI and its users, keep it stable):
//!
//! | string | source | sink |
//! |---|---|---|
//! | `FILE.wav` (any case) | read the file | write the file |
//! | `tone:HZ` | sine at `HZ` hertz, −12 dBFS | — |
//! | `silence` | zeros, never ends | — |
//! | `null` | — | discard |
//! | `device:NAME` | capture device | playback device |
//! | `device:`, `device:default` | default capture device | default playback device |

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceSpec {
    /// A WAV file of any rate, channel count and sample format.
    Wav(PathBuf),
    /// A continuous sine wave at this frequency in hertz.
    Tone { hz: f64 },
    /// Endless digital silence.
    Silence,
    /// A capture device.
    Device(DeviceSelector),
}

/// Where audio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkSpec {
    /// A mono 16-bit WAV file at the call's sample rate.
    Wav(PathBuf),
    /// Discards everything.
    Null,
    /// A playback device.
    Device(DeviceSelector),
}

/// Which device a `device:` spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    /// The host's default device for the direction (`device:` or `device:default`).
    Default,
    /// A device name as printed by [`list_devices`](crate::list_devices): matched exactly
    /// first, then as a case-insensitive substring.
    Named(String),
}

/// Why a source or sink string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("empty audio spec")]
    Empty,
    #[error("invalid tone frequency {value:?} in {spec:?}: expected a positive number of hertz")]
    InvalidTone { spec: String, value: String },
    #[error("unrecognised audio source {0:?}: expected FILE.wav, tone:HZ, silence or device:NAME")]
    UnknownSource(String),
    #[error("unrecognised audio sink {0:?}: expected FILE.wav, null or device:NAME")]
    UnknownSink(String),
}

const DEVICE_PREFIX: &str = "device:";
const TONE_PREFIX: &str = "tone:";

impl FromStr for SourceSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SpecError::Empty);
        }
        if let Some(rest) = s.strip_prefix(DEVICE_PREFIX) {
            return Ok(SourceSpec::Device(DeviceSelector::parse(rest)));
        }
        if let Some(rest) = s.strip_prefix(TONE_PREFIX) {
            return parse_tone(s, rest);
        }
        if s == "silence" {
            return Ok(SourceSpec::Silence);
        }
        if is_wav_path(s) {
            return Ok(SourceSpec::Wav(PathBuf::from(s)));
        }
        Err(SpecError::UnknownSource(s.to_owned()))
    }
}

impl FromStr for SinkSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SpecError::Empty);
        }
        if let Some(rest) = s.strip_prefix(DEVICE_PREFIX) {
            return Ok(SinkSpec::Device(DeviceSelector::parse(rest)));
        }
        if s == "null" {
            return Ok(SinkSpec::Null);
        }
        if is_wav_path(s) {
            return Ok(SinkSpec::Wav(PathBuf::from(s)));
        }
        Err(SpecError::UnknownSink(s.to_owned()))
    }
}

impl DeviceSelector {
    fn parse(name: &str) -> Self {
        let name = name.trim();
        if name.is_empty() || name.eq_ignore_ascii_case("default") {
            DeviceSelector::Default
        } else {
            DeviceSelector::Named(name.to_owned())
        }
    }
}

fn parse_tone(spec: &str, value: &str) -> Result<SourceSpec, SpecError> {
    let invalid = || SpecError::InvalidTone {
        spec: spec.to_owned(),
        value: value.to_owned(),
    };
    let hz: f64 = value.trim().parse().map_err(|_| invalid())?;
    if !hz.is_finite() || hz <= 0.0 {
        return Err(invalid());
    }
    Ok(SourceSpec::Tone { hz })
}

fn is_wav_path(s: &str) -> bool {
    s.len() > 4
        && s.get(s.len() - 4..)
            .is_some_and(|ext| ext.eq_ignore_ascii_case(".wav"))
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::Default => write!(f, "{DEVICE_PREFIX}default"),
            DeviceSelector::Named(name) => write!(f, "{DEVICE_PREFIX}{name}"),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Wav(path) => write!(f, "{}", path.display()),
            SourceSpec::Tone { hz } => write!(f, "{TONE_PREFIX}{hz}"),
            SourceSpec::Silence => f.write_str("silence"),
            SourceSpec::Device(device) => device.fmt(f),
        }
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkSpec::Wav(path) => write!(f, "{}", path.display()),
            SinkSpec::Null => f.write_str("null"),
            SinkSpec::Device(device) => device.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(s: &str) -> Result<SourceSpec, SpecError> {
        s.parse()
    }

    fn sink(s: &str) -> Result<SinkSpec, SpecError> {
        s.parse()
    }

    #[test]
    fn parses_every_source_form() {
        assert_eq!(
            source("in.wav"),
            Ok(SourceSpec::Wav(PathBuf::from("in.wav")))
        );
        assert_eq!(
            source("/tmp/Speech 8k.WAV"),
            Ok(SourceSpec::Wav(PathBuf::from("/tmp/Speech 8k.WAV")))
        );
        assert_eq!(source("tone:440"), Ok(SourceSpec::Tone { hz: 440.0 }));
        assert_eq!(source("tone:997.5"), Ok(SourceSpec::Tone { hz: 997.5 }));
        assert_eq!(source("silence"), Ok(SourceSpec::Silence));
        assert_eq!(
            source("device:"),
            Ok(SourceSpec::Device(DeviceSelector::Default))
        );
        assert_eq!(
            source("device:default"),
            Ok(SourceSpec::Device(DeviceSelector::Default))
        );
        assert_eq!(
            source("device:pulse"),
            Ok(SourceSpec::Device(DeviceSelector::Named("pulse".into())))
        );
        assert_eq!(
            source("device:hw:CARD=0,DEV=0"),
            Ok(SourceSpec::Device(DeviceSelector::Named(
                "hw:CARD=0,DEV=0".into()
            )))
        );
    }

    #[test]
    fn parses_every_sink_form() {
        assert_eq!(sink("out.wav"), Ok(SinkSpec::Wav(PathBuf::from("out.wav"))));
        assert_eq!(sink("null"), Ok(SinkSpec::Null));
        assert_eq!(
            sink("device:"),
            Ok(SinkSpec::Device(DeviceSelector::Default))
        );
        assert_eq!(
            sink("device:Headset"),
            Ok(SinkSpec::Device(DeviceSelector::Named("Headset".into())))
        );
    }

    #[test]
    fn rejects_bad_sources() {
        assert_eq!(source(""), Err(SpecError::Empty));
        assert_eq!(source("   "), Err(SpecError::Empty));
        assert!(matches!(
            source("tone:"),
            Err(SpecError::InvalidTone { .. })
        ));
        assert!(matches!(
            source("tone:abc"),
            Err(SpecError::InvalidTone { .. })
        ));
        assert!(matches!(
            source("tone:-5"),
            Err(SpecError::InvalidTone { .. })
        ));
        assert!(matches!(
            source("tone:0"),
            Err(SpecError::InvalidTone { .. })
        ));
        assert!(matches!(
            source("tone:inf"),
            Err(SpecError::InvalidTone { .. })
        ));
        assert!(matches!(
            source("tone:NaN"),
            Err(SpecError::InvalidTone { .. })
        ));
        assert_eq!(source("null"), Err(SpecError::UnknownSource("null".into())));
        assert_eq!(
            source("in.mp3"),
            Err(SpecError::UnknownSource("in.mp3".into()))
        );
        assert_eq!(source(".wav"), Err(SpecError::UnknownSource(".wav".into())));
    }

    #[test]
    fn rejects_bad_sinks() {
        assert_eq!(sink(""), Err(SpecError::Empty));
        assert_eq!(
            sink("silence"),
            Err(SpecError::UnknownSink("silence".into()))
        );
        assert_eq!(
            sink("tone:440"),
            Err(SpecError::UnknownSink("tone:440".into()))
        );
        assert_eq!(
            sink("out.raw"),
            Err(SpecError::UnknownSink("out.raw".into()))
        );
    }

    #[test]
    fn error_messages_name_the_accepted_forms() {
        let message = source("speaker").unwrap_err().to_string();
        assert!(message.contains("tone:HZ"), "{message}");
        assert!(message.contains("device:NAME"), "{message}");
        let message = sink("speaker").unwrap_err().to_string();
        assert!(message.contains("null"), "{message}");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "in.wav",
            "tone:440",
            "silence",
            "device:default",
            "device:pulse",
        ] {
            assert_eq!(source(s).unwrap().to_string(), s);
        }
        for s in ["out.wav", "null", "device:default", "device:vspeaker"] {
            assert_eq!(sink(s).unwrap().to_string(), s);
        }
    }
}
