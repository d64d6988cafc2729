//! SIPp runs: a scenario against a peer, in the foreground or the background.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::process::Process;
use crate::tempdir::TempDir;
use crate::{Result, ports};

/// Default bound on a whole sipp run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Entry points.
#[derive(Debug)]
pub struct Sipp;

impl Sipp {
    /// Runs `scenario` to completion (bounded by [`DEFAULT_TIMEOUT`]).
    ///
    /// The helper adds: `-sf SCENARIO -i 127.0.0.1 -p PORT -mp MEDIA_PORT -nostdin
    /// -trace_msg -message_file … -trace_err -error_file … -timeout 30s -timeout_error`,
    /// and `-m 1` unless `args` has `-m`. `args` carries the rest, e.g.
    /// `["-s", "bob", "127.0.0.1:5060"]` for a UAC, or `["-s", "alice"]`-less UAS runs.
    pub fn run(scenario: impl AsRef<Path>, args: &[&str]) -> Result<SippResult> {
        Sipp::spawn(scenario, args)?.wait(DEFAULT_TIMEOUT + Duration::from_secs(5))
    }

    /// Starts sipp in the background (e.g. a UAS waiting for the phone under test).
    pub fn spawn(scenario: impl AsRef<Path>, args: &[&str]) -> Result<SippRun> {
        let dir = TempDir::new("sipp")?;
        // SIP port P; media P+2 (RTP) and P+3 (RTCP).
        let port = ports::reserve(&[0, 2, 3]);
        let media_port = port + 2;
        let messages = dir.join("messages.log");
        let errors = dir.join("errors.log");
        let mut command = Command::new("sipp");
        command
            .arg("-sf")
            .arg(scenario.as_ref())
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media_port.to_string()])
            .args(["-nostdin", "-trace_msg", "-message_file"])
            .arg(&messages)
            .args(["-trace_err", "-error_file"])
            .arg(&errors)
            .args(["-timeout", &format!("{}s", DEFAULT_TIMEOUT.as_secs())])
            .arg("-timeout_error");
        if !args.contains(&"-m") {
            command.args(["-m", "1"]);
        }
        command.args(args);
        let process = Process::spawn("sipp", command, &dir.join("sipp.out"), false)?;
        Ok(SippRun {
            process,
            port,
            media_port,
            messages,
            errors,
            dir,
        })
    }
}

/// A sipp running in the background.
#[derive(Debug)]
pub struct SippRun {
    process: Process,
    port: u16,
    media_port: u16,
    messages: PathBuf,
    errors: PathBuf,
    dir: TempDir,
}

impl SippRun {
    /// Its SIP port on 127.0.0.1 (UDP by default).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `[media_port]` its SDP advertises.
    pub fn media_port(&self) -> u16 {
        self.media_port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The message trace so far (every message sent and received).
    pub fn messages(&self) -> String {
        std::fs::read_to_string(&self.messages).unwrap_or_default()
    }

    /// Waits (bounded) for a message matching `regex` to appear in the trace.
    pub fn wait_message(&self, regex: &str, timeout: Duration) -> Result<String> {
        let re = regex::Regex::new(regex)?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let text = self.messages();
            if let Some(m) = re.find(&text) {
                return Ok(m.as_str().to_owned());
            }
            if std::time::Instant::now() >= deadline {
                return Err(self.process.timeout_error(regex, timeout));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for sipp to finish (bounded) and collects the result.
    pub fn wait(mut self, timeout: Duration) -> Result<SippResult> {
        let status = self.process.wait_exit(timeout)?;
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let output = self.process.lines().join("\n");
        Ok(SippResult {
            status,
            success: status.success(),
            output,
            messages: read(&self.messages),
            errors: read(&self.errors),
            message_log: self.messages.clone(),
            error_log: self.errors.clone(),
            _dir: self.dir,
        })
    }
}

/// The outcome of a sipp run. The trace files live until this is dropped.
#[derive(Debug)]
pub struct SippResult {
    /// sipp's exit status (0: every call succeeded; 1: some failed; 97/99: errors).
    pub status: ExitStatus,
    /// `status.success()`.
    pub success: bool,
    /// stdout and stderr (the final statistics screen).
    pub output: String,
    /// The message trace (`-trace_msg`).
    pub messages: String,
    /// Unexpected messages and errors (`-trace_err`).
    pub errors: String,
    /// Path of the message trace.
    pub message_log: PathBuf,
    /// Path of the error trace.
    pub error_log: PathBuf,
    _dir: TempDir,
}
