//! Dev-only test kit for Homeagent.
//!
//! - [`netem`]: a seeded, deterministic, sans-IO network emulator (loss, Gilbert bursts,
//!   delay, jitter, reorder, duplicates).
//! - [`peers`]: real SIP peers on loopback for the end-to-end tests: [`peers::Kamailio`],
//!   [`peers::Baresip`], [`peers::Sipp`], [`peers::Linphonec`], and the
//!   [`peers::HomeagentProcess`] under test. Every process is started in its own process
//!   group, bound to 127.0.0.1, and killed on `Drop`; every wait is bounded.
//! - [`pesq`]: PESQ scoring through `shared/scripts/score.py`.
//! - [`wav`]: small WAV helpers (clips, padding, duration).
//!
//! Logs and temp dirs are removed on `Drop` unless `HOMEAGENT_KEEP_LOGS=1`.
#![forbid(unsafe_code)]

pub mod browser;
pub mod crm_server;
pub mod impair;
pub mod netem;
pub mod peers;
pub mod pesq;
pub mod platform_server;
pub mod ports;
pub mod process;
pub mod tempdir;
pub mod wav;
pub mod webdriver;

use std::path::PathBuf;
use std::time::Duration;

pub use peers::{
    Baresip, BaresipOpts, Codec, HomeagentProcess, Kamailio, KamailioOpts, Linphonec, SipAccount,
    SipTrace, Sipp, SippResult, SippRun, Transport, homeagent_bin,
};
pub use pesq::{Mode, PesqScore, score_pesq};
pub use process::Process;
pub use tempdir::TempDir;

/// Everything that can go wrong while driving a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// A program could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The program.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bounded wait ran out.
    #[error(
        "{what}: timed out after {waited:?} waiting for {waiting_for}\n--- log tail ---\n{tail}"
    )]
    Timeout {
        /// Which peer.
        what: String,
        /// What was awaited (a regex, an event...).
        waiting_for: String,
        /// How long we waited.
        waited: Duration,
        /// The last lines of the peer's log.
        tail: String,
    },
    /// A peer exited, or a helper script failed.
    #[error("{what} failed: {detail}\n--- log tail ---\n{tail}")]
    Failed {
        /// Which peer or script.
        what: String,
        /// Exit status or reason.
        detail: String,
        /// The last lines of its output.
        tail: String,
    },
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Output that could not be understood (JSON from score.py, a WAV file...).
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was parsed.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// A bad regex given to a `wait_log`.
    #[error("bad regex: {0}")]
    Regex(#[from] regex::Error),
    /// PESQ could not score the recording (empty, silent...).
    #[error("pesq: {0}")]
    Pesq(String),
}

/// Result alias for this crate.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;

/// The repository's read-only `shared/` folder: `$HOMEAGENT_SHARED`, else `<repo>/../shared`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("HOMEAGENT_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => repo_dir().join("..").join("shared"),
    }
}

/// The repository root (the workspace holding this crate).
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
}

/// A sipp scenario shipped in `tests/scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    repo_dir().join("tests").join("scenarios").join(name)
}

/// True when `HOMEAGENT_KEEP_LOGS=1`: temp dirs and logs are kept (their paths printed).
pub fn keep_logs() -> bool {
    std::env::var("HOMEAGENT_KEEP_LOGS").is_ok_and(|v| v == "1")
}

/// True if `program` is found on `PATH` (or is an existing path).
pub fn installed(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// For tests that need real peers: true if every program is installed. Otherwise prints a
/// `SKIP` notice and returns false, so the test can `return` early; but panics if
/// `HOMEAGENT_REQUIRE_PEERS=1` (CI sets it, so a missing install cannot hide a test).
pub fn require(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let notice = format!("SKIP: not installed: {}", missing.join(", "));
    let required = std::env::var("HOMEAGENT_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    assert!(!required, "{notice} (HOMEAGENT_REQUIRE_PEERS=1)");
    eprintln!("{notice}");
    false
}
