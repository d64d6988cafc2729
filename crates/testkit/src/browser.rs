//! A real WebRTC endpoint: headless Chromium running JsSIP (`shared/peers/browser`), and the
//! WebSocket Kamailio it registers at.
//!
//! - [`BrowserPeer`]: the peer installed once per test process (`setup.sh` into a temp dir,
//!   or `$HOMEAGENT_BROWSER_PEER` if CI installed it already).
//! - [`KamailioWs`]: `kamailio-ws.sh` (registrar + proxy, no auth) on free loopback ports.
//! - [`BrowserUa`]: one `node browser-ua.mjs` run (one Chromium, one call), its JSON events,
//!   its recording and its last WebRTC stats ([`CallStats`]).
//!
//! Every process runs in its own process group and is stopped on `Drop`; Chromium, which
//! Playwright starts in a group of its own, is killed too.

use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::Process;
use crate::tempdir::TempDir;
use crate::{Result, TestkitError, ports};

/// The browser the peer drives (Debian's `chromium`), unless `$CHROMIUM` names another.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// How long [`KamailioWs::start`] waits for the WebSocket port to accept connections.
const KAMAILIO_READY: Duration = Duration::from_secs(15);
/// Log lines shown in errors.
const LINES_IN_ERRORS: usize = 40;

/// The browser binary: `$CHROMIUM`, else [`DEFAULT_CHROMIUM`].
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from)
}

/// For browser tests: true if Chromium, node and Kamailio are installed. Otherwise prints a
/// `SKIP` notice and returns false, so the test can `return`; but panics in CI (`CI` set, or
/// `HOMEAGENT_REQUIRE_PEERS=1`), where a missing browser must not hide a test.
pub fn require_browser() -> bool {
    let chromium = chromium();
    let chromium = chromium.to_string_lossy();
    let programs = [chromium.as_ref(), "node", "kamailio"];
    let missing: Vec<&str> = programs
        .into_iter()
        .filter(|p| !crate::installed(p))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let notice = format!("SKIP: browser peer: not installed: {}", missing.join(", "));
    let in_ci = std::env::var_os("CI").is_some()
        || std::env::var("HOMEAGENT_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    assert!(!in_ci, "{notice} (in CI)");
    eprintln!("{notice}");
    false
}

/// The browser peer, installed in a writable directory (node resolves `playwright-core` next
/// to `browser-ua.mjs`, and `shared/` is read-only).
#[derive(Debug)]
pub struct BrowserPeer {
    dir: PathBuf,
}

static INSTALLED: OnceLock<std::result::Result<BrowserPeer, String>> = OnceLock::new();

impl BrowserPeer {
    /// The installed peer: `$HOMEAGENT_BROWSER_PEER` if set (a directory `setup.sh` filled),
    /// else `shared/peers/browser/setup.sh` into `$TMPDIR/homeagent-browser-peer-<pid>`, run
    /// once per process (parallel callers wait for it; about 1 s with a warm npm cache). Dirs
    /// of earlier, dead test processes are removed then.
    pub fn installed() -> Result<&'static BrowserPeer> {
        INSTALLED
            .get_or_init(|| install().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|detail| TestkitError::Failed {
                what: "browser peer setup.sh".into(),
                detail: detail.clone(),
                tail: String::new(),
            })
    }

    /// The installation directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `browser-ua.mjs`.
    pub fn ua_script(&self) -> PathBuf {
        self.dir.join("browser-ua.mjs")
    }

    /// `kamailio-ws.sh`.
    pub fn kamailio_script(&self) -> PathBuf {
        self.dir.join("kamailio-ws.sh")
    }
}

const DIR_PREFIX: &str = "homeagent-browser-peer-";

fn install() -> Result<BrowserPeer> {
    if let Some(dir) = std::env::var_os("HOMEAGENT_BROWSER_PEER") {
        let dir = PathBuf::from(dir);
        let ready = dir.join("node_modules").join("playwright-core").is_dir()
            && dir.join("page").join("jssip.bundle.js").is_file();
        if ready {
            return Ok(BrowserPeer { dir });
        }
        return Err(TestkitError::Failed {
            what: "HOMEAGENT_BROWSER_PEER".into(),
            detail: format!("{} is not a set-up browser peer", dir.display()),
            tail: String::new(),
        });
    }
    remove_dirs_of_dead_processes();
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
    let script = crate::shared_dir()
        .join("peers")
        .join("browser")
        .join("setup.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .output()
        .map_err(|source| TestkitError::Spawn {
            what: format!("bash {}", script.display()),
            source,
        })?;
    if !output.status.success() {
        return Err(TestkitError::Failed {
            what: script.display().to_string(),
            detail: output.status.to_string(),
            tail: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(BrowserPeer { dir })
}

/// Each test process leaves its peer copy behind (a static is never dropped): remove those
/// whose process is gone.
fn remove_dirs_of_dead_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// How to start a [`KamailioWs`].
#[derive(Debug, Clone)]
pub struct KamailioWsOpts {
    /// Also listen for WSS (self-signed certificate; the browser accepts it).
    pub wss: bool,
    /// Kamailio log level (`KAM_DEBUG`, 1..=3).
    pub debug: u8,
}

impl Default for KamailioWsOpts {
    fn default() -> Self {
        KamailioWsOpts {
            wss: false,
            debug: 2,
        }
    }
}

/// The minimal WebSocket Kamailio of the browser peer: registrar + proxy, no auth, usrloc in
/// memory, WS (and optionally WSS) and UDP on 127.0.0.1. Any user may register.
#[derive(Debug)]
pub struct KamailioWs {
    process: Process,
    ws_port: u16,
    udp_port: u16,
    wss_port: Option<u16>,
    // Dropped after `process` (field order).
    dir: TempDir,
}

impl KamailioWs {
    /// Runs `kamailio-ws.sh WS UDP WSS WORKDIR` on free ports; returns once the WS port
    /// accepts TCP connections.
    pub fn start(opts: KamailioWsOpts) -> Result<KamailioWs> {
        let peer = BrowserPeer::installed()?;
        let dir = TempDir::new("kamailio-ws")?;
        // WS on P (TCP), UDP on P+1, WSS on P+2.
        let base = ports::reserve(&[0, 1, 2]);
        let (ws_port, udp_port) = (base, base + 1);
        let wss_port = opts.wss.then_some(base + 2);
        if opts.wss {
            // A certificate from a throw-away CA (what `ca()` gives clients to trust), not the
            // script's self-signed one, which a verifying client refuses as a CA used as end
            // entity. The script keeps certificates it finds in its working dir.
            let work = dir.join("work");
            crate::peers::kamailio::generate_certificates(&dir.join("certs"), &["IP:127.0.0.1"])?;
            std::fs::create_dir_all(&work).map_err(|source| TestkitError::Io {
                context: format!("create {}", work.display()),
                source,
            })?;
            for (from, to) in [("server.crt", "cert.pem"), ("server.key", "key.pem")] {
                std::fs::copy(dir.join("certs").join(from), work.join(to)).map_err(|source| {
                    TestkitError::Io {
                        context: format!("copy {from}"),
                        source,
                    }
                })?;
            }
        }
        let mut command = Command::new("bash");
        command
            .arg(peer.kamailio_script())
            .arg(ws_port.to_string())
            .arg(udp_port.to_string())
            .arg(wss_port.unwrap_or(0).to_string())
            .arg(dir.join("work"))
            .env("KAM_DEBUG", opts.debug.to_string());
        let process = Process::spawn("kamailio-ws", command, &dir.join("kamailio.log"), false)?;
        let mut kamailio = KamailioWs {
            process,
            ws_port,
            udp_port,
            wss_port,
            dir,
        };
        kamailio.wait_listening()?;
        Ok(kamailio)
    }

    fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + KAMAILIO_READY;
        let ports: Vec<u16> = [Some(self.ws_port), self.wss_port]
            .into_iter()
            .flatten()
            .collect();
        let waiting_for = format!("tcp connections to ports {ports:?}");
        loop {
            let listening = ports
                .iter()
                .all(|&port| TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());
            if listening {
                return Ok(());
            }
            if let Some(status) = self.process.try_exit() {
                return Err(TestkitError::Failed {
                    what: "kamailio-ws.sh".into(),
                    detail: format!("exited ({status}) before {waiting_for}"),
                    tail: self.process.tail(LINES_IN_ERRORS),
                });
            }
            if Instant::now() >= deadline {
                return Err(self.process.timeout_error(&waiting_for, KAMAILIO_READY));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ws_port)
    }

    /// `wss://127.0.0.1:PORT` (with [`KamailioWsOpts::wss`]).
    pub fn wss_url(&self) -> Option<String> {
        self.wss_port.map(|port| format!("wss://127.0.0.1:{port}"))
    }

    /// WebSocket port (TCP).
    pub fn ws_port(&self) -> u16 {
        self.ws_port
    }

    /// Secure WebSocket port (with [`KamailioWsOpts::wss`]).
    pub fn wss_port(&self) -> Option<u16> {
        self.wss_port
    }

    /// UDP port: where a plain SIP peer registers and sends (`127.0.0.1:PORT`).
    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }

    /// `127.0.0.1:UDP_PORT`.
    pub fn udp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.udp_port)
    }

    /// With WSS: the CA its certificate chains to (for `--ca-file`).
    pub fn ca(&self) -> Option<PathBuf> {
        self.wss_port.map(|_| self.dir.join("certs").join("ca.crt"))
    }

    /// Its working dir (config, pid file, certificate with WSS).
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Kamailio's output (it logs to stderr, `-E`).
    pub fn log(&self) -> String {
        self.process.lines().join("\n")
    }

    /// The Kamailio process (its PID, `wait_log`).
    pub fn process(&self) -> &Process {
        &self.process
    }
}

/// What a [`BrowserUa`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Registers and answers the first incoming call.
    Answer,
    /// Registers and calls this URI.
    Call(String),
    /// Registers, then exits 0.
    RegisterOnly,
}

/// How to start a [`BrowserUa`].
#[derive(Debug, Clone)]
pub struct BrowserUaOpts {
    /// Its address of record, e.g. `sip:web1@127.0.0.1`.
    pub uri: String,
    /// The SIP WebSocket server, e.g. [`KamailioWs::ws_url`].
    pub ws: String,
    /// Answer, call or only register.
    pub role: Role,
    /// The WAV it sends (Chromium's fake capture device, after `mic_lead` of silence). Without
    /// it, and with `record`, a silent WAV is used: a recording UA without a mic records badly.
    pub mic: Option<PathBuf>,
    /// Silence before the mic WAV starts (`--mic-lead`, the UA's default is 1.5 s).
    pub mic_lead: Option<Duration>,
    /// Record what it receives to [`BrowserUa::recording`] (mono s16 48 kHz WAV).
    pub record: bool,
    /// Write the offer and answer SDP to [`BrowserUa::sdp_dir`].
    pub sdp: bool,
    /// Hang up this long after establishment (`None`: wait for the remote BYE).
    pub duration: Option<Duration>,
    /// Hard limit of the whole run (exit code 2 when reached).
    pub timeout: Duration,
    /// More `browser-ua.mjs` arguments (`--password`, `--debug`, `--chromium-arg`...).
    pub extra_args: Vec<String>,
}

impl BrowserUaOpts {
    /// Options for `uri` at the WebSocket server `ws`: no mic, no recording, 60 s timeout.
    pub fn new(uri: &str, ws: &str, role: Role) -> BrowserUaOpts {
        BrowserUaOpts {
            uri: uri.to_owned(),
            ws: ws.to_owned(),
            role,
            mic: None,
            mic_lead: None,
            record: false,
            sdp: false,
            duration: None,
            timeout: Duration::from_secs(60),
            extra_args: Vec::new(),
        }
    }
}

/// How a [`BrowserUa`] run ended.
#[derive(Debug, Clone)]
pub struct BrowserExit {
    /// 0: the call ended normally (or registered, with `RegisterOnly`); 1: failure; 2: its
    /// timeout; 3: bad usage; -1: killed by a signal.
    pub code: i32,
    /// Every event it printed.
    pub events: Vec<Value>,
}

impl BrowserExit {
    /// The first event named `name`.
    pub fn event(&self, name: &str) -> Option<&Value> {
        self.events.iter().find(|e| e["event"] == name)
    }

    /// The last WebRTC stats sample (see [`last_stats`]).
    pub fn stats(&self) -> Option<CallStats> {
        last_stats(&self.events)
    }
}

/// One `node browser-ua.mjs` run: a headless Chromium with a JsSIP UA. Killed on `Drop`.
#[derive(Debug)]
pub struct BrowserUa {
    process: Process,
    recording: Option<PathBuf>,
    sdp_dir: Option<PathBuf>,
    /// Chromium's process groups (Playwright starts the browser detached from node).
    browser_groups: Vec<u32>,
    // Dropped after `process` (field order): holds the log, the recording and the SDP.
    dir: TempDir,
}

impl BrowserUa {
    /// Starts the UA (installs the peer on first use). Returns at once; use
    /// [`BrowserUa::wait_event`] for `registered`, `established`...
    pub fn start(opts: BrowserUaOpts) -> Result<BrowserUa> {
        let peer = BrowserPeer::installed()?;
        let dir = TempDir::new("browser-ua")?;
        let mut command = Command::new("node");
        command
            .arg(peer.ua_script())
            .args(["--ws", &opts.ws, "--uri", &opts.uri])
            .args(["--timeout", &seconds(opts.timeout)])
            .arg("--chromium")
            .arg(chromium())
            // Away from the PulseAudio server the audio tests run (CI's virtual devices):
            // Chromium then renders to its fake output, a steady clock. Through the null sink
            // its WebAudio recording starved (PESQ 1.2 for a call scoring 4.2 without).
            .env_remove("XDG_RUNTIME_DIR")
            .env("PULSE_SERVER", "unix:/nonexistent/homeagent-no-pulse")
            .current_dir(dir.path());
        match &opts.role {
            Role::Answer => command.arg("--answer"),
            Role::Call(target) => command.args(["--call", target]),
            Role::RegisterOnly => command.arg("--register-only"),
        };
        let mic = match (&opts.mic, opts.record) {
            (Some(mic), _) => Some(mic.clone()),
            (None, true) => {
                let silence = dir.join("silence.wav");
                write_silence(&silence, opts.timeout)?;
                Some(silence)
            }
            (None, false) => None,
        };
        if let Some(mic) = &mic {
            command.arg("--mic").arg(mic);
        }
        if let Some(lead) = opts.mic_lead {
            command.args(["--mic-lead", &seconds(lead)]);
        }
        let recording = opts.record.then(|| dir.join("recording.wav"));
        if let Some(recording) = &recording {
            command.arg("--record").arg(recording);
        }
        let sdp_dir = opts.sdp.then(|| dir.join("sdp"));
        if let Some(sdp_dir) = &sdp_dir {
            command.arg("--sdp-dir").arg(sdp_dir);
        }
        if let Some(duration) = opts.duration {
            command.args(["--duration", &seconds(duration)]);
        }
        command.args(&opts.extra_args);
        let name = format!("browser-ua {}", opts.uri);
        let process = Process::spawn(&name, command, &dir.join("browser-ua.log"), false)?;
        Ok(BrowserUa {
            process,
            recording,
            sdp_dir,
            browser_groups: Vec::new(),
            dir,
        })
    }

    /// Waits for the first event named `name` (since the start); returns it. Fails at once
    /// if the UA exits first.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Value> {
        let found = self
            .process
            .wait_line(0, timeout, &format!("event {name:?}"), |line| {
                parse_event(&line.text).is_some_and(|e| e["event"] == name)
            });
        self.note_browser_groups();
        let (_, line) = found?;
        parse_event(&line).ok_or_else(|| TestkitError::Parse {
            what: "browser-ua event".into(),
            detail: line,
        })
    }

    /// Every event printed so far.
    pub fn events(&self) -> Vec<Value> {
        self.process
            .lines()
            .iter()
            .filter_map(|line| parse_event(line))
            .collect()
    }

    /// Waits (bounded) for the UA to exit by itself (after its `--duration`, the remote BYE,
    /// or its `--timeout`); returns its exit code and all its events.
    pub fn finish(&mut self, timeout: Duration) -> Result<BrowserExit> {
        self.note_browser_groups();
        let status = self.process.wait_exit(timeout)?;
        Ok(BrowserExit {
            code: status.code().unwrap_or(-1),
            events: self.events(),
        })
    }

    /// The last WebRTC stats so far: `ended.stats`, else the latest `stats` event.
    pub fn stats(&self) -> Option<CallStats> {
        last_stats(&self.events())
    }

    /// Where the received audio is written (with [`BrowserUaOpts::record`]); complete after
    /// the `recorded` event.
    pub fn recording(&self) -> Option<&Path> {
        self.recording.as_deref()
    }

    /// Where the SDP files go (with [`BrowserUaOpts::sdp`]): `local-offer.sdp` and
    /// `remote-answer.sdp` for a caller, `remote-offer.sdp` and `local-answer.sdp` for a callee.
    pub fn sdp_dir(&self) -> Option<&Path> {
        self.sdp_dir.as_deref()
    }

    /// Its temp dir (log, recording, SDP), kept with `HOMEAGENT_KEEP_LOGS=1`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The node process (log lines, pid).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// An error with the UA's log tail, for a failed expectation.
    pub fn failure(&self, detail: &str) -> TestkitError {
        TestkitError::Failed {
            what: self.process.name().to_owned(),
            detail: detail.to_owned(),
            tail: self.process.tail(LINES_IN_ERRORS),
        }
    }

    /// Remembers the process groups that node's child processes lead (Chromium), while
    /// node is alive to be their parent.
    fn note_browser_groups(&mut self) {
        for group in child_group_leaders(self.process.pid()) {
            if !self.browser_groups.contains(&group) {
                self.browser_groups.push(group);
            }
        }
    }
}

impl Drop for BrowserUa {
    fn drop(&mut self) {
        if self.process.try_exit().is_none() {
            self.note_browser_groups();
        }
        // SIGTERM lets node close Chromium; SIGKILL follows after a grace period.
        self.process.terminate();
        for group in &self.browser_groups {
            // Only a group that still has its leader: a reused pid would lead a new group
            // only if it were a new session leader, which is not worth guarding against here.
            if Path::new(&format!("/proc/{group}")).exists() {
                let _ = Command::new("kill")
                    .args(["-s", "KILL", "--", &format!("-{group}")])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

/// The WebRTC stats of a call, as `browser-ua.mjs` samples them (`getStats()` every second).
#[derive(Debug, Clone, PartialEq)]
pub struct CallStats {
    /// The transport's DTLS state: `connected` once DTLS-SRTP is up.
    pub dtls_state: Option<String>,
    /// The SRTP profile, e.g. `SRTP_AES128_CM_HMAC_SHA1_80`.
    pub srtp_cipher: Option<String>,
    /// DTLS version as Chrome reports it: `FEFD` = 1.2, `FEFC` = 1.3.
    pub tls_version: Option<String>,
    /// Codecs in use, e.g. `audio/opus/111`.
    pub codecs: Vec<String>,
    /// Inbound RTP packets received.
    pub packets_received: u64,
    /// Inbound RTP packets lost.
    pub packets_lost: i64,
    /// Outbound RTP packets sent.
    pub packets_sent: u64,
    /// Inbound jitter, seconds.
    pub jitter: f64,
    /// The whole `stats` object.
    pub json: Value,
}

impl CallStats {
    /// Reads the `stats` object of a `stats` or `ended` event.
    pub fn from_json(stats: &Value) -> CallStats {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        CallStats {
            dtls_state: text(&stats["dtls"]["dtlsState"]),
            srtp_cipher: text(&stats["dtls"]["srtpCipher"]),
            tls_version: text(&stats["dtls"]["tlsVersion"]),
            codecs: stats["codecs"]
                .as_array()
                .map(|codecs| codecs.iter().filter_map(text).collect())
                .unwrap_or_default(),
            packets_received: stats["inbound"]["packetsReceived"].as_u64().unwrap_or(0),
            packets_lost: stats["inbound"]["packetsLost"].as_i64().unwrap_or(0),
            packets_sent: stats["outbound"]["packetsSent"].as_u64().unwrap_or(0),
            jitter: stats["inbound"]["jitter"].as_f64().unwrap_or(0.0),
            json: stats.clone(),
        }
    }
}

/// The last stats sample among `events`: the `ended` event's, else the latest `stats` event's.
pub fn last_stats(events: &[Value]) -> Option<CallStats> {
    events
        .iter()
        .rev()
        .filter(|e| e["event"] == "ended" || e["event"] == "stats")
        .find_map(|e| e.get("stats").filter(|s| s.is_object()))
        .map(CallStats::from_json)
}

fn parse_event(line: &str) -> Option<Value> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str::<Value>(line)
        .ok()
        .filter(|e| e.get("event").is_some_and(Value::is_string))
}

fn seconds(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64())
}

/// A mono 16-bit 48 kHz WAV of zeros.
fn write_silence(path: &Path, length: Duration) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let error = |e: hound::Error| TestkitError::Parse {
        what: path.display().to_string(),
        detail: e.to_string(),
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(error)?;
    let samples = (length.as_secs_f64() * 48_000.0) as u64;
    {
        let mut fast = writer.get_i16_writer(samples as u32);
        for _ in 0..samples {
            fast.write_sample(0);
        }
        fast.flush().map_err(error)?;
    }
    writer.finalize().map_err(error)
}

/// Children of `parent` that lead their own process group (`/proc/*/stat`: ppid and pgrp).
fn child_group_leaders(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After "pid (comm) ": state ppid pgrp ...; comm may contain spaces and ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u32>().ok());
            number(1) == Some(parent) && number(2) == Some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_stats_sample() {
        let events: Vec<Value> = [
            r#"{"t":1,"event":"stats","stats":{"codecs":["audio/opus/111"],"inbound":{"packetsReceived":10}}}"#,
            r#"{"t":2,"event":"stats","stats":{"codecs":["audio/opus/111"],"inbound":{"packetsReceived":150,"packetsLost":2,"jitter":0.002},"outbound":{"packetsSent":149},"dtls":{"dtlsState":"connected","srtpCipher":"SRTP_AES128_CM_HMAC_SHA1_80","tlsVersion":"FEFC"}}}"#,
            r#"{"t":3,"event":"exit","code":0}"#,
        ]
        .iter()
        .filter_map(|line| parse_event(line))
        .collect();
        let stats = last_stats(&events).expect("a stats event");
        assert_eq!(stats.packets_received, 150);
        assert_eq!(stats.packets_lost, 2);
        assert_eq!(stats.packets_sent, 149);
        assert_eq!(stats.dtls_state.as_deref(), Some("connected"));
        assert_eq!(
            stats.srtp_cipher.as_deref(),
            Some("SRTP_AES128_CM_HMAC_SHA1_80")
        );
        assert_eq!(stats.codecs, ["audio/opus/111"]);
        assert!(last_stats(&events[2..]).is_none());
    }

    #[test]
    fn ended_stats_win_over_earlier_samples() {
        let events: Vec<Value> = [
            r#"{"event":"stats","stats":{"inbound":{"packetsReceived":10}}}"#,
            r#"{"event":"ended","ok":true,"stats":{"inbound":{"packetsReceived":600}}}"#,
            "not json",
            r#"{"no_event":1}"#,
        ]
        .iter()
        .filter_map(|line| parse_event(line))
        .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(last_stats(&events).map(|s| s.packets_received), Some(600));
    }

    #[test]
    fn finds_only_children_that_lead_a_group() {
        // This test process's children: none leads a group unless spawned so.
        let mut child = Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep starts");
        let mut leader = {
            use std::os::unix::process::CommandExt;
            Command::new("sleep")
                .arg("5")
                .process_group(0)
                .spawn()
                .expect("sleep starts")
        };
        let leaders = child_group_leaders(std::process::id());
        assert!(leaders.contains(&leader.id()), "{leaders:?}");
        assert!(!leaders.contains(&child.id()), "{leaders:?}");
        let _ = child.kill();
        let _ = leader.kill();
        let _ = child.wait();
        let _ = leader.wait();
    }
}
