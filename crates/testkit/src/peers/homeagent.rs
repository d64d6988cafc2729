//! The `homeagent` binary under test: spawned with arguments, its stdout JSON events
//! collected.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::process::Process;
use crate::tempdir::TempDir;
use crate::{Result, TestkitError};

/// The built `homeagent` binary: `$HOMEAGENT_BIN`, else `homeagent` in the target profile
/// dir of the running test executable (`target/<profile>/deps/x` → `target/<profile>/`).
pub fn homeagent_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("HOMEAGENT_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|source| TestkitError::Io {
        context: "current_exe".into(),
        source,
    })?;
    let candidates = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("homeagent"))
        .collect::<Vec<_>>();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| TestkitError::Failed {
            what: "homeagent_bin".into(),
            detail: format!(
                "no homeagent binary in {candidates:?}: run `cargo build --workspace` or set \
                 HOMEAGENT_BIN"
            ),
            tail: String::new(),
        })
}

/// A running `homeagent`: stdout lines that are JSON objects are events; other lines and
/// stderr are kept as log. Its stdin is a pipe, open until drop.
#[derive(Debug)]
pub struct HomeagentProcess {
    process: Process,
    dir: TempDir,
}

impl HomeagentProcess {
    /// Spawns [`homeagent_bin`] with `args` and extra `env`, working dir = a fresh temp
    /// dir (also given as `HOMEAGENT_TEST_DIR`).
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Result<HomeagentProcess> {
        HomeagentProcess::spawn_program(&homeagent_bin()?, args, env)
    }

    /// Like [`HomeagentProcess::spawn`] with another program (a wrapper, a fake).
    pub fn spawn_program(
        program: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<HomeagentProcess> {
        let dir = TempDir::new("homeagent")?;
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir.path())
            .env("HOMEAGENT_TEST_DIR", dir.path());
        for (key, value) in env {
            command.env(key, value);
        }
        let process = Process::spawn("homeagent", command, &dir.join("homeagent.log"), true)?;
        Ok(HomeagentProcess { process, dir })
    }

    /// The temp dir (working dir) of this run: put config files here.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Every JSON event printed so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.process
            .lines()
            .iter()
            .filter_map(|l| parse_event(l))
            .collect()
    }

    /// Waits for an event (since start) satisfying `matches`; returns it.
    pub fn wait_event(
        &self,
        matches: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        self.wait_event_from(0, matches, timeout).map(|(_, e)| e)
    }

    /// Waits for an event at line index `>= from` (see [`Process::mark`]); returns
    /// (line index, event).
    pub fn wait_event_from(
        &self,
        from: usize,
        matches: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Result<(usize, serde_json::Value)> {
        let (index, line) = self
            .process
            .wait_line(from, timeout, "a matching event", |l| {
                parse_event(&l.text).is_some_and(|e| matches(&e))
            })?;
        let event = parse_event(&line).ok_or_else(|| TestkitError::Parse {
            what: "event".into(),
            detail: line.clone(),
        })?;
        Ok((index, event))
    }

    /// Writes one line to its stdin.
    pub fn send_line(&self, line: &str) -> Result<()> {
        self.process.send_line(line)
    }

    /// Waits (bounded) for it to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    /// The underlying process (log lines, `wait_log`, pid).
    pub fn process(&self) -> &Process {
        &self.process
    }
}

fn parse_event(line: &str) -> Option<serde_json::Value> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str(line)
        .ok()
        .filter(serde_json::Value::is_object)
}
