//! linphonec (liblinphone 5.1, Debian 12) driven through its stdin.

use std::process::Command;
use std::time::Duration;

use crate::process::Process;
use crate::tempdir::TempDir;
use crate::{Result, TestkitError, ports};

/// What linphonec prints, as regexes.
pub mod log {
    /// `Receiving new incoming call from "sipp" <sip:...>, assigned id 1`.
    pub const INCOMING: &str = r"Receiving new incoming call from";
    /// `Call 1 with "sipp" <sip:...> connected.`
    pub const CONNECTED: &str = r"Call \d+ with .* connected\.";
    /// `Media streams established with ... for call 1 (audio).`
    pub const MEDIA: &str = r"Media streams established with";
    /// `Call 1 with ... ended (...)` or `Call 1 ... error`.
    pub const ENDED: &str = r"Call \d+ .*(ended|error)";
}

/// A running linphonec with its own HOME (so `~/.local/share/linphone` exists) and config.
#[derive(Debug)]
pub struct Linphonec {
    process: Process,
    sip_port: u16,
    // Dropped after `process`.
    _dir: TempDir,
}

impl Linphonec {
    /// Starts linphonec on 127.0.0.1 (`sip_port` 0: a free one), answering automatically
    /// (`-a`) or not; waits for its prompt.
    pub fn start(sip_port: u16, auto_answer: bool) -> Result<Linphonec> {
        let dir = TempDir::new("linphonec")?;
        let home = dir.join("home");
        // Without this folder linphonec silently never listens.
        std::fs::create_dir_all(home.join(".local/share/linphone")).map_err(|source| {
            TestkitError::Io {
                context: "create linphone home".into(),
                source,
            }
        })?;
        let sip_port = if sip_port == 0 {
            ports::reserve(&[0, 2, 3])
        } else {
            sip_port
        };
        let config = format!(
            "[sip]\nsip_port={sip_port}\nsip_tcp_port=0\nsip_tls_port=0\nbind_address=127.0.0.1\nuse_ipv6=0\nipv6_migration_done=1\n\
             [rtp]\naudio_rtp_port={}\n[sound]\n",
            sip_port + 2
        );
        let rc = dir.join("linphonerc");
        std::fs::write(&rc, config).map_err(|source| TestkitError::Io {
            context: "write linphonerc".into(),
            source,
        })?;
        let mut command = Command::new("stdbuf");
        command
            .args(["-oL", "-eL", "linphonec", "-c"])
            .arg(&rc)
            .env("HOME", &home);
        if auto_answer {
            command.arg("-a");
        }
        let process = Process::spawn("linphonec", command, &dir.join("linphonec.log"), true)?;
        process.wait_log(
            r"linphonec> |Warning: video is disabled",
            Duration::from_secs(10),
        )?;
        Ok(Linphonec {
            process,
            sip_port,
            _dir: dir,
        })
    }

    /// Its SIP port (UDP) on 127.0.0.1.
    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    /// `sip:linphone@127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("sip:linphone@127.0.0.1:{}", self.sip_port)
    }

    /// Sends one linphonec command (`answer`, `terminate`, `call sip:...`, `status`...).
    pub fn command(&self, line: &str) -> Result<()> {
        self.process.send_line(line)
    }

    /// Calls `uri`.
    pub fn call(&self, uri: &str) -> Result<()> {
        self.command(&format!("call {uri}"))
    }

    /// Answers the ringing call.
    pub fn answer(&self) -> Result<()> {
        self.command("answer")
    }

    /// Hangs up the current call.
    pub fn terminate(&self) -> Result<()> {
        self.command("terminate")
    }

    /// Waits for a log line matching `regex`; returns it.
    pub fn wait_log(&self, regex: &str, timeout: Duration) -> Result<String> {
        self.process.wait_log(regex, timeout)
    }

    /// The underlying process.
    pub fn process(&self) -> &Process {
        &self.process
    }
}

impl Drop for Linphonec {
    fn drop(&mut self) {
        // A polite quit first; the process group is killed by `Process`'s drop anyway.
        let _ = self.process.send_line("quit");
        let _ = self.process.wait_exit(Duration::from_secs(2));
    }
}
