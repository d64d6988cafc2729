//! A child process in its own process group, with its output captured line by line (to
//! memory, for `wait_log`, and to a log file), killed with its whole group on `Drop`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::{Result, TestkitError};

/// How long `Drop` waits after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// Lines shown in error messages.
const TAIL_LINES: usize = 40;

/// A running child process with captured output.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    output: Arc<Output>,
    log_path: PathBuf,
    readers: Vec<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

/// One captured line: as printed (`raw`, with ANSI colours) and cleaned (`text`).
#[derive(Debug, Clone)]
pub struct Line {
    /// The line without ANSI escape sequences and trailing `\r`.
    pub text: String,
    /// The line as printed.
    pub raw: String,
}

#[derive(Debug, Default)]
struct Output {
    captured: Mutex<Captured>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Captured {
    lines: Vec<Line>,
    /// Output streams not yet at end of file.
    open: usize,
}

impl Process {
    /// Spawns `command` in a new process group, stdout and stderr captured to `log_path`
    /// (and memory). With `piped_stdin`, [`Process::send_line`] writes to its stdin (which
    /// stays open until drop); otherwise stdin is `/dev/null`.
    pub fn spawn(
        name: &str,
        mut command: Command,
        log_path: &Path,
        piped_stdin: bool,
    ) -> Result<Process> {
        command
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|source| TestkitError::Spawn {
            what: format!("{name} ({command:?})"),
            source,
        })?;
        let log = File::create(log_path).map_err(|source| TestkitError::Io {
            context: format!("create {}", log_path.display()),
            source,
        })?;
        let log = Arc::new(Mutex::new(log));
        let output = Arc::new(Output::default());
        output_lock(&output).open = 2;
        let mut readers = Vec::new();
        // Both are piped above, so both are present.
        if let Some(stdout) = child.stdout.take() {
            readers.push(capture(stdout, output.clone(), log.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(capture(stderr, output.clone(), log));
        }
        let stdin = Mutex::new(child.stdin.take());
        Ok(Process {
            name: name.to_owned(),
            child,
            stdin,
            output,
            log_path: log_path.to_owned(),
            readers,
            exit: None,
        })
    }

    /// The peer's name (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file receiving stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// All lines so far (cleaned of ANSI colours).
    pub fn lines(&self) -> Vec<String> {
        self.locked().lines.iter().map(|l| l.text.clone()).collect()
    }

    /// All lines so far, with their raw form.
    pub fn raw_lines(&self) -> Vec<Line> {
        self.locked().lines.clone()
    }

    /// Number of lines so far: a mark for [`Process::wait_log_from`].
    pub fn mark(&self) -> usize {
        self.locked().lines.len()
    }

    /// The last `n` lines, joined.
    pub fn tail(&self, n: usize) -> String {
        let captured = self.locked();
        let from = captured.lines.len().saturating_sub(n);
        captured.lines[from..]
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until some line (since the start) matches `regex`; returns that line.
    pub fn wait_log(&self, regex: &str, timeout: Duration) -> Result<String> {
        self.wait_log_from(0, regex, timeout).map(|(_, line)| line)
    }

    /// Waits until a line at index `>= from` matches `regex`; returns (index, line).
    pub fn wait_log_from(
        &self,
        from: usize,
        regex: &str,
        timeout: Duration,
    ) -> Result<(usize, String)> {
        let re = Regex::new(regex)?;
        self.wait_line(from, timeout, regex, |line| re.is_match(&line.text))
    }

    /// Waits until a line at index `>= from` satisfies `matches`; returns (index, line).
    pub fn wait_line(
        &self,
        from: usize,
        timeout: Duration,
        waiting_for: &str,
        mut matches: impl FnMut(&Line) -> bool,
    ) -> Result<(usize, String)> {
        let deadline = Instant::now() + timeout;
        let mut captured = self.locked();
        let mut checked = from;
        loop {
            while let Some(line) = captured.lines.get(checked) {
                if matches(line) {
                    return Ok((checked, line.text.clone()));
                }
                checked += 1;
            }
            if captured.open == 0 {
                drop(captured);
                return Err(TestkitError::Failed {
                    what: format!("{} (log {})", self.name, self.log_path.display()),
                    detail: format!("output closed (exited?) before {waiting_for}"),
                    tail: self.tail(TAIL_LINES),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                drop(captured);
                return Err(self.timeout_error(waiting_for, timeout));
            }
            let wait = (deadline - now).min(Duration::from_millis(200));
            captured = match self.output.changed.wait_timeout(captured, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// A `Timeout` error with the log tail.
    pub fn timeout_error(&self, waiting_for: &str, waited: Duration) -> TestkitError {
        TestkitError::Timeout {
            what: format!("{} (log {})", self.name, self.log_path.display()),
            waiting_for: waiting_for.to_owned(),
            waited,
            tail: self.tail(TAIL_LINES),
        }
    }

    /// Writes `line` and a newline to the process's stdin (spawned with `piped_stdin`).
    pub fn send_line(&self, line: &str) -> Result<()> {
        let mut stdin = match self.stdin.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let io = |source| TestkitError::Io {
            context: format!("write to {} stdin", self.name),
            source,
        };
        match stdin.as_mut() {
            Some(pipe) => {
                pipe.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
                pipe.flush().map_err(io)
            }
            None => Err(io(std::io::Error::other("stdin is not piped"))),
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// The exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits (bounded) for the process to exit by itself; then drains its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                self.join_readers();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(self.timeout_error("process exit", timeout));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the whole process group, SIGKILL after a grace period; reaps the child.
    pub fn terminate(&mut self) {
        if self.try_exit().is_none() {
            signal_group(self.pid(), "TERM");
            let deadline = Instant::now() + TERM_GRACE;
            while self.try_exit().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Also reaches grandchildren left in the group after the leader exited.
        signal_group(self.pid(), "KILL");
        if self.exit.is_none() {
            self.exit = self.child.wait().ok();
        }
        self.stdin = Mutex::new(None);
        self.join_readers();
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    fn locked(&self) -> MutexGuard<'_, Captured> {
        output_lock(&self.output)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Sends a signal to process group `pgid` with the `kill` utility (no unsafe code here).
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn capture(
    stream: impl Read + Send + 'static,
    output: Arc<Output>,
    log: Arc<Mutex<File>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Ok(mut file) = log.lock() {
                let _ = file.write_all(&buf);
            }
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim_end_matches(['\n', '\r']);
            let mut captured = output_lock(&output);
            // Status lines redrawn with '\r' become separate lines.
            for part in text.split('\r') {
                captured.lines.push(Line {
                    text: strip_ansi(part),
                    raw: part.to_owned(),
                });
            }
            drop(captured);
            output.changed.notify_all();
        }
        let mut captured = output_lock(&output);
        captured.open = captured.open.saturating_sub(1);
        drop(captured);
        output.changed.notify_all();
    })
}

fn output_lock(output: &Output) -> MutexGuard<'_, Captured> {
    match output.captured.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Removes ANSI CSI sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
