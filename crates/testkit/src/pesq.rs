//! PESQ (ITU-T P.862) scoring through `shared/scripts/score.py`, which aligns the
//! recording to the reference first.

use std::path::Path;
use std::process::Command;

use crate::{Result, TestkitError};

/// Narrow band (8 kHz, P.862.1) or wide band (16 kHz, P.862.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Narrow band: G.711.
    Nb,
    /// Wide band: Opus, G.722.
    Wb,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Nb => "nb",
            Mode::Wb => "wb",
        }
    }
}

/// A score and the alignment found.
#[derive(Debug, Clone, PartialEq)]
pub struct PesqScore {
    /// MOS-LQO, about 1.0..=4.6.
    pub pesq: f64,
    /// Bulk delay of the recording against the reference.
    pub lag_ms: f64,
    /// Normalised cross-correlation peak of the bulk alignment (near 1 = clean).
    pub xcorr_peak: f64,
    /// Everything `score.py` printed.
    pub json: serde_json::Value,
}

/// Scores `degraded` against `reference`. Both are WAV files (any rate; resampled).
pub fn score_pesq(reference: &Path, degraded: &Path, mode: Mode) -> Result<PesqScore> {
    let script = crate::shared_dir().join("scripts").join("score.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(reference)
        .arg(degraded)
        .arg(mode.arg())
        .output()
        .map_err(|source| TestkitError::Spawn {
            what: format!("python3 {}", script.display()),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(TestkitError::Failed {
            what: "score.py".into(),
            detail: output.status.to_string(),
            tail: format!("{stdout}{stderr}"),
        });
    }
    parse(&stdout)
}

fn parse(stdout: &str) -> Result<PesqScore> {
    let json: serde_json::Value =
        serde_json::from_str(stdout.trim()).map_err(|e| TestkitError::Parse {
            what: "score.py output".into(),
            detail: format!("{e}: {stdout}"),
        })?;
    if let Some(error) = json.get("error").and_then(|e| e.as_str()) {
        return Err(TestkitError::Pesq(error.to_owned()));
    }
    let number = |key: &str| json.get(key).and_then(serde_json::Value::as_f64);
    let pesq = number("pesq").ok_or_else(|| TestkitError::Parse {
        what: "score.py output".into(),
        detail: format!("no pesq field: {stdout}"),
    })?;
    Ok(PesqScore {
        pesq,
        lag_ms: number("lag_ms").unwrap_or(0.0),
        xcorr_peak: number("xcorr_peak").unwrap_or(0.0),
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_score_and_errors() {
        let ok = parse(r#"{"mode": "nb", "lag_ms": 12.5, "xcorr_peak": 0.9, "pesq": 3.91}"#);
        let ok = ok.expect("valid output parses");
        assert_eq!((ok.pesq, ok.lag_ms), (3.91, 12.5));
        let silent = parse(r#"{"mode": "nb", "error": "degraded file empty or silent"}"#);
        assert!(matches!(silent, Err(TestkitError::Pesq(m)) if m.contains("silent")));
        assert!(parse("not json").is_err());
    }
}
