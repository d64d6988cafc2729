//! baresip 1.0 (Debian 12) as a scripted peer: plays a WAV as its microphone, records what
//! it hears, answers automatically or not, and is commanded over its UDP console.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{Line, Process};
use crate::tempdir::TempDir;
use crate::{Result, TestkitError, ports};

/// What baresip prints, as regexes (checked against baresip 1.0.0 / libre 1.1.0).
pub mod log {
    /// Startup finished.
    pub const READY: &str = r"baresip is ready\.";
    /// Registration accepted: `alice@127.0.0.1: {0/UDP/v4} 200 OK () [1 binding]`.
    pub const REGISTERED: &str = r"\{\d+/(UDP|TCP|TLS)/v4\} 200 OK";
    /// Incoming INVITE: `Incoming call from: ...` (manual answer) or
    /// `call: answering call on line 1 from sip:... with 200` (auto answer).
    pub const INCOMING: &str = r"Incoming call from:|call: answering call on line \d+ from";
    /// Outgoing call rings: `call: SIP Progress: 180 Ringing (/)`.
    pub const RINGING: &str = r"SIP Progress: 18\d";
    /// `alice@127.0.0.1: Call established: sip:bob@...`.
    pub const ESTABLISHED: &str = r"Call established: ";
    /// RTP arrives: `stream: incoming rtp for 'audio' established, receiving from ...`.
    pub const RTP_RECEIVED: &str = r"incoming rtp for 'audio' established";
    /// The call ended, any side, any reason: `session closed: <reason>` (remote BYE,
    /// rejection, CANCEL) and/or `Call with sip:... terminated (duration: N secs)`.
    pub const CLOSED: &str = r"session closed: |terminated \(duration: \d+ secs\)";
    /// An RFC 4733 event: `received event: '5' (end=0)` then `(end=1)`.
    pub const DTMF: &str = r"received event: '(.)' \(end=([01])\)";
    /// Any re-INVITE received (hold, resume or other): `call: got re-INVITE (SDP Offer)`.
    pub const REINVITE: &str = r"call: got re-INVITE";
}

/// Audio codec to restrict the call to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// Opus, 48 kHz (baresip 1.0 names it `opus/48000/2`; it plays/records mono here).
    Opus,
}

impl Codec {
    /// The name in baresip's `audio_codecs` account parameter.
    pub fn baresip_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU/8000/1",
            Codec::Opus => "opus/48000/2",
        }
    }

    /// The clock rate, which is also the rate the WAV given to `aufile` must have.
    pub fn rate(self) -> u32 {
        match self {
            Codec::Pcmu => 8000,
            Codec::Opus => 48000,
        }
    }

    /// `shared/audio/speech8k.wav` or `speech48k.wav` (21 s of speech).
    pub fn speech_wav(self) -> PathBuf {
        let name = match self {
            Codec::Pcmu => "speech8k.wav",
            Codec::Opus => "speech48k.wav",
        };
        crate::shared_dir().join("audio").join(name)
    }

    /// The PESQ mode that fits the codec's band.
    pub fn pesq_mode(self) -> crate::Mode {
        match self {
            Codec::Pcmu => crate::Mode::Nb,
            Codec::Opus => crate::Mode::Wb,
        }
    }
}

/// SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS (baresip 1.0 does not check the server certificate).
    Tls,
}

/// An account registering with a registrar (e.g. [`crate::Kamailio`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipAccount {
    /// User part of the AOR, also the auth user.
    pub user: String,
    /// Digest password.
    pub password: String,
    /// Registrar `host:port`; the AOR is `sip:user@registrar`.
    pub registrar: String,
    /// Transport to the registrar.
    pub transport: Transport,
}

/// How to start a [`Baresip`]. `BaresipOpts::default()`: PCMU, auto answer, no account,
/// plays the shared speech padded with silence, records.
#[derive(Debug, Clone)]
pub struct BaresipOpts {
    /// Label used in file names and messages; also the user part of the local AOR when
    /// there is no account.
    pub name: String,
    /// The only codec offered/accepted (plus telephone-event).
    pub codec: Codec,
    /// WAV played as microphone, at exactly `codec.rate()`. Default: the shared speech
    /// at that rate followed by 120 s of silence (baresip hangs up when its file ends).
    pub source: Option<PathBuf>,
    /// Answer incoming calls at once (`answermode=auto`) or wait for [`Baresip::accept`].
    pub auto_answer: bool,
    /// Register with this account; `None`: a local account `sip:NAME@127.0.0.1:PORT`,
    /// no registration.
    pub account: Option<SipAccount>,
    /// Digest password of the local account (no `account`), used when a peer challenges.
    pub password: Option<String>,
    /// Record what it hears (and what it sends) with the `sndfile` module.
    pub record: bool,
    /// SIP trace (`-s`) in the log: needed by [`Baresip::sip_messages`] and the hold
    /// helpers.
    pub sip_trace: bool,
    /// baresip quits by itself after this (`-t`), whatever happens.
    pub max_lifetime: Duration,
    /// Extra config lines, appended.
    pub extra_config: Vec<String>,
    /// Media encryption of the account (`mediaenc=`): `srtp` (best effort), `srtp-mand`
    /// (RTP/SAVP, SDES), … ; loads the `srtp` module.
    pub mediaenc: Option<String>,
}

impl Default for BaresipOpts {
    fn default() -> Self {
        BaresipOpts {
            name: "baresip".into(),
            codec: Codec::Pcmu,
            source: None,
            auto_answer: true,
            account: None,
            password: None,
            record: true,
            sip_trace: true,
            max_lifetime: Duration::from_secs(300),
            extra_config: Vec::new(),
            mediaenc: None,
        }
    }
}

/// A SIP message seen in baresip's trace (`-s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipTrace {
    /// True if baresip received it (false: baresip sent it).
    pub incoming: bool,
    /// `UDP`, `TCP`, `TLS`.
    pub transport: String,
    /// `127.0.0.1:port` of the sender.
    pub source: String,
    /// `127.0.0.1:port` of the receiver.
    pub destination: String,
    /// The message text, headers and body, lines joined with `\n`.
    pub text: String,
}

impl SipTrace {
    /// Request line or status line.
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    /// The request method, `None` for a response.
    pub fn method(&self) -> Option<&str> {
        let first = self.first_line();
        if first.starts_with("SIP/2.0") {
            None
        } else {
            first.split(' ').next()
        }
    }

    /// True for an INVITE whose SDP puts the receiver on hold (`a=sendonly`,
    /// `a=inactive`, or `c=IN IP4 0.0.0.0`).
    pub fn is_hold_offer(&self) -> bool {
        self.method() == Some("INVITE")
            && self.text.lines().any(|l| {
                let l = l.trim();
                l == "a=sendonly" || l == "a=inactive" || l == "c=IN IP4 0.0.0.0"
            })
    }

    /// The first value of header `name` (case-insensitive, no compact forms).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// A running baresip.
#[derive(Debug)]
pub struct Baresip {
    process: Process,
    sip_port: u16,
    cons_port: u16,
    user: String,
    domain: String,
    record_dir: PathBuf,
    // Dropped after `process` (field order): the process is stopped before its dir goes.
    _dir: TempDir,
}

const START_TIMEOUT: Duration = Duration::from_secs(10);

impl Baresip {
    /// Writes a config dir, starts baresip and waits for "baresip is ready." (and the
    /// registration's 200 OK when there is an account).
    pub fn start(opts: BaresipOpts) -> Result<Baresip> {
        let dir = TempDir::new(&format!("baresip-{}", opts.name))?;
        // SIP on P (UDP and TCP), TLS on P+1 (baresip's own choice), console on P+2,
        // RTP/RTCP in P+4..=P+9: all inside the allocator's 10-port block.
        let sip_port = ports::reserve(&[0, 1, 2, 4, 5, 6, 7, 8, 9]);
        let cons_port = sip_port + 2;
        let record_dir = dir.join("rec");
        std::fs::create_dir_all(&record_dir).map_err(|source| io("create rec dir", source))?;
        let source = match &opts.source {
            Some(path) => path.clone(),
            None => {
                let padded = dir.join("source.wav");
                crate::wav::clip(
                    &opts.codec.speech_wav(),
                    &padded,
                    Duration::from_secs(3600),
                    Duration::from_secs(120),
                )?;
                padded
            }
        };
        let config = config_text(&opts, sip_port, cons_port, &source, &record_dir);
        write(&dir.join("config"), &config)?;
        let (user, domain, account) = account_line(&opts, sip_port);
        write(&dir.join("accounts"), &format!("{account}\n"))?;
        write(&dir.join("contacts"), "")?;

        let mut command = Command::new("stdbuf");
        command
            .args(["-oL", "-eL", "baresip", "-f"])
            .arg(dir.path())
            .args(["-t", &opts.max_lifetime.as_secs().max(1).to_string()]);
        if opts.sip_trace {
            command.arg("-s");
        }
        let process = Process::spawn(
            &format!("baresip {}", opts.name),
            command,
            &dir.join("baresip.log"),
            false,
        )?;
        let baresip = Baresip {
            process,
            sip_port,
            cons_port,
            user,
            domain,
            record_dir,
            _dir: dir,
        };
        baresip.process.wait_log(log::READY, START_TIMEOUT)?;
        if opts.account.is_some() {
            baresip.wait_registered(START_TIMEOUT)?;
        }
        Ok(baresip)
    }

    /// The SIP port (UDP and TCP) on 127.0.0.1.
    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    /// Its own URI for direct calls: `sip:NAME@127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    /// Its AOR: `sip:USER@REGISTRAR` with an account, else [`Baresip::uri`].
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    /// The underlying process (log lines, marks, waits).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The log file (stdout + stderr).
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// Sends a console command (`/dial ...`, `/hangup`, a DTMF key...) to the `cons` port.
    pub fn command(&self, line: &str) -> Result<()> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|source| io("bind console socket", source))?;
        socket
            .send_to(
                format!("{line}\n").as_bytes(),
                (Ipv4Addr::LOCALHOST, self.cons_port),
            )
            .map_err(|source| io("send console command", source))?;
        Ok(())
    }

    /// Calls `uri`.
    pub fn dial(&self, uri: &str) -> Result<()> {
        self.command(&format!("/dial {uri}"))
    }

    /// Accepts the ringing incoming call (manual answer mode).
    pub fn accept(&self) -> Result<()> {
        self.command("/accept")
    }

    /// Hangs up (BYE, CANCEL or rejection, depending on the call state).
    pub fn hangup(&self) -> Result<()> {
        self.command("/hangup")
    }

    /// Puts the call on hold (re-INVITE `a=sendonly`).
    pub fn hold(&self) -> Result<()> {
        self.command("/hold")
    }

    /// Resumes a held call (re-INVITE `a=sendrecv`).
    pub fn resume(&self) -> Result<()> {
        self.command("/resume")
    }

    /// Sends DTMF digits (RFC 4733), one every 250 ms.
    pub fn send_dtmf(&self, digits: &str) -> Result<()> {
        for digit in digits.chars() {
            self.command(&digit.to_string())?;
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    /// Waits for a log line matching `regex` (since start); returns it.
    pub fn wait_log(&self, regex: &str, timeout: Duration) -> Result<String> {
        self.process.wait_log(regex, timeout)
    }

    /// Waits for the registration's `200 OK`.
    pub fn wait_registered(&self, timeout: Duration) -> Result<String> {
        self.wait_log(log::REGISTERED, timeout)
    }

    /// Waits for an incoming call (ringing or auto-answered).
    pub fn wait_incoming(&self, timeout: Duration) -> Result<String> {
        self.wait_log(log::INCOMING, timeout)
    }

    /// Waits for "Call established".
    pub fn wait_established(&self, timeout: Duration) -> Result<String> {
        self.wait_log(log::ESTABLISHED, timeout)
    }

    /// Waits for the end of a call (any side, any reason).
    pub fn wait_closed(&self, timeout: Duration) -> Result<String> {
        self.wait_log(log::CLOSED, timeout)
    }

    /// Waits until RTP has been received.
    pub fn wait_rtp(&self, timeout: Duration) -> Result<String> {
        self.wait_log(log::RTP_RECEIVED, timeout)
    }

    /// Waits until the peer put baresip on hold (a received INVITE with `a=sendonly`,
    /// `a=inactive` or `c=0.0.0.0`). Needs `sip_trace`.
    pub fn wait_hold_received(&self, timeout: Duration) -> Result<SipTrace> {
        self.wait_sip(timeout, "a received hold re-INVITE", |m| {
            m.incoming && m.is_hold_offer()
        })
    }

    /// Waits until a received re-INVITE after a hold takes the call off hold. Needs
    /// `sip_trace`.
    pub fn wait_resume_received(&self, timeout: Duration) -> Result<SipTrace> {
        let mut held = false;
        self.wait_sip(timeout, "a received resume re-INVITE", move |m| {
            if !m.incoming || m.method() != Some("INVITE") {
                return false;
            }
            if m.is_hold_offer() {
                held = true;
                return false;
            }
            held
        })
    }

    /// Waits for a traced SIP message satisfying `matches` (since start). Needs `sip_trace`.
    pub fn wait_sip(
        &self,
        timeout: Duration,
        waiting_for: &str,
        mut matches: impl FnMut(&SipTrace) -> bool,
    ) -> Result<SipTrace> {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = 0;
        loop {
            let messages = self.sip_messages();
            for message in messages.iter().skip(seen) {
                if matches(message) {
                    return Ok(message.clone());
                }
            }
            seen = messages.len();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(self.process.timeout_error(waiting_for, timeout));
            }
            // Wait for more output (any line), then re-parse.
            let mark = self.process.mark();
            let more = self.process.wait_line(mark, left, waiting_for, |_| true);
            // Output closed: baresip is gone, nothing more will come.
            if let Err(closed @ TestkitError::Failed { .. }) = more {
                return Err(closed);
            }
        }
    }

    /// Every SIP message in the trace so far (sent and received). Needs `sip_trace`.
    pub fn sip_messages(&self) -> Vec<SipTrace> {
        parse_trace(&self.process.raw_lines(), self.sip_port)
    }

    /// DTMF digits received so far, in order (from `received event` lines; a digit is
    /// counted once per key press).
    pub fn received_dtmf(&self) -> String {
        parse_dtmf(&self.process.lines())
    }

    /// The newest recording of what baresip heard (`dump-*-dec.wav`), if any; it may
    /// still be open (see [`Baresip::wait_recording`]). A new file is started per call;
    /// the sndfile module writes the decoder's output (codec rate; Opus: 48 kHz, 2
    /// channels), i.e. before baresip's jitter buffer and player.
    pub fn recording_path(&self) -> Option<PathBuf> {
        self.newest_recording("-dec.wav")
    }

    /// Waits (bounded) until the newest recording of what baresip heard is complete: its
    /// WAV header is written when the call's audio stream is closed, a moment after the
    /// "terminated" line. Call after the call ended.
    pub fn wait_recording(&self, timeout: Duration) -> Result<PathBuf> {
        let deadline = std::time::Instant::now() + timeout;
        let mut last_len = None;
        loop {
            if let Some(path) = self.recording_path() {
                let complete = crate::wav::info(&path).is_ok_and(|i| !i.duration.is_zero());
                let len = std::fs::metadata(&path).map(|m| m.len()).ok();
                if complete && len == last_len {
                    return Ok(path);
                }
                last_len = len;
            }
            if std::time::Instant::now() >= deadline {
                return Err(self.process.timeout_error("a complete recording", timeout));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The newest recording of what baresip sent (`dump-*-enc.wav`), if any.
    pub fn sent_recording_path(&self) -> Option<PathBuf> {
        self.newest_recording("-enc.wav")
    }

    fn newest_recording(&self, suffix: &str) -> Option<PathBuf> {
        let entries = std::fs::read_dir(&self.record_dir).ok()?;
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
            .map(|(_, path)| path)
    }

    /// Stops baresip now (SIGTERM, then SIGKILL); recordings stay until drop.
    pub fn stop(&mut self) {
        self.process.terminate();
    }
}

fn config_text(
    opts: &BaresipOpts,
    sip_port: u16,
    cons_port: u16,
    source: &Path,
    record_dir: &Path,
) -> String {
    let name = &opts.name;
    let mut c = String::new();
    // Writing to a String cannot fail.
    let mut line = |text: String| {
        let _ = writeln!(c, "{text}");
    };
    line("poll_method epoll".into());
    line(format!("sip_listen 127.0.0.1:{sip_port}"));
    line("net_interface 127.0.0.1".into());
    line(format!("rtp_ports {}-{}", sip_port + 4, sip_port + 9));
    // No sound card: the player is an aubridge device nobody reads.
    line(format!("audio_player aubridge,{name}"));
    line(format!("audio_alert aubridge,{name}"));
    line(format!("audio_source aufile,{}", source.display()));
    // Opus is 2 channels in baresip 1.0; play and record mono, resampled by baresip.
    line("ausrc_channels 1".into());
    line("auplay_channels 1".into());
    line("module_path /usr/lib/baresip/modules".into());
    line("module g711.so".into());
    line("module opus.so".into());
    line("module aubridge.so".into());
    line("module aufile.so".into());
    if opts.record {
        line("module sndfile.so".into());
        line(format!("snd_path {}", record_dir.display()));
    }
    line("module cons.so".into());
    if opts.mediaenc.is_some() {
        line("module srtp.so".into());
    }
    line(format!("cons_listen 127.0.0.1:{cons_port}"));
    line("module_tmp account.so".into());
    line("module_app menu.so".into());
    for extra in &opts.extra_config {
        line(extra.clone());
    }
    c
}

/// (user, domain, accounts line).
fn account_line(opts: &BaresipOpts, sip_port: u16) -> (String, String, String) {
    let answer = if opts.auto_answer { "auto" } else { "manual" };
    let mediaenc = opts
        .mediaenc
        .as_deref()
        .map(|enc| format!(";mediaenc={enc}"))
        .unwrap_or_default();
    let common = format!(
        "answermode={answer};audio_codecs={}{mediaenc}",
        opts.codec.baresip_name()
    );
    match &opts.account {
        None => {
            let domain = format!("127.0.0.1:{sip_port}");
            let auth = match &opts.password {
                Some(password) => format!(";auth_pass={password}"),
                None => String::new(),
            };
            let line = format!("<sip:{}@{domain}>;regint=0{auth};{common}", opts.name);
            (opts.name.clone(), domain, line)
        }
        Some(account) => {
            let transport = match account.transport {
                Transport::Udp => "",
                Transport::Tcp => ";transport=tcp",
                Transport::Tls => ";transport=tls",
            };
            let line = format!(
                "<sip:{}@{}{transport}>;auth_pass={};regint=300;{common}",
                account.user, account.registrar, account.password
            );
            (account.user.clone(), account.registrar.clone(), line)
        }
    }
}

/// Parses `-s` trace blocks: a line `ESC[36;1m#`, a line `UDP a:p -> b:q`, the message,
/// and a line starting with `ESC[;m`.
fn parse_trace(lines: &[Line], sip_port: u16) -> Vec<SipTrace> {
    let own = format!("127.0.0.1:{sip_port}");
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let starts_block = lines[i].raw.ends_with("\u{1b}[36;1m#") || lines[i].raw == "#";
        let header = lines.get(i + 1).map(|l| l.text.clone()).unwrap_or_default();
        let mut parts = header.split(' ');
        let (Some(transport), Some(source), Some("->"), Some(destination)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            i += 1;
            continue;
        };
        if !starts_block {
            i += 1;
            continue;
        }
        let mut text = Vec::new();
        let mut j = i + 2;
        let mut complete = false;
        while let Some(line) = lines.get(j) {
            if line.raw.starts_with("\u{1b}[;m") {
                complete = true;
                break;
            }
            text.push(line.text.clone());
            j += 1;
        }
        if !complete {
            // Still being printed: parsed again on the next call.
            break;
        }
        let text = text.join("\n");
        // UDP: the listening address tells the direction. TCP client connections use an
        // ephemeral local port: then a request is ours if its top Via names our port.
        let incoming = if destination == own {
            true
        } else if source == own {
            false
        } else {
            let via_is_ours = text
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("via:"))
                .is_some_and(|via| via.contains(&format!(":{sip_port};")));
            let is_request = !text.starts_with("SIP/2.0");
            is_request != via_is_ours
        };
        out.push(SipTrace {
            incoming,
            transport: transport.to_owned(),
            source: source.to_owned(),
            destination: destination.to_owned(),
            text,
        });
        i = j + 1;
    }
    out
}

fn parse_dtmf(lines: &[String]) -> String {
    let re = regex::Regex::new(log::DTMF).expect("constant regex is valid");
    let mut digits = String::new();
    // The digit of the last start event not yet ended.
    let mut pressed: Option<char> = None;
    for line in lines {
        let Some(caps) = re.captures(line) else {
            continue;
        };
        let digit = caps.get(1).and_then(|m| m.as_str().chars().next());
        let end = caps.get(2).is_some_and(|m| m.as_str() == "1");
        let Some(digit) = digit else { continue };
        if !end {
            digits.push(digit);
            pressed = Some(digit);
        } else if pressed.take() != Some(digit) {
            // An end without a start (a very short event): still one press.
            digits.push(digit);
        }
    }
    digits
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| io(&format!("write {}", path.display()), source))
}

fn io(context: &str, source: std::io::Error) -> TestkitError {
    TestkitError::Io {
        context: context.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(raw: &str) -> Line {
        Line {
            text: crate::process::strip_ansi(raw),
            raw: raw.to_owned(),
        }
    }

    #[test]
    fn dtmf_counts_each_press_once() {
        let lines: Vec<String> = [
            "received event: '1' (end=0)",
            "received event: '1' (end=1)",
            "noise",
            "received event: '#' (end=0)",
            "received event: '#' (end=1)",
            "received event: '7' (end=1)",
            "received event: '7' (end=0)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(parse_dtmf(&lines), "1#77");
    }

    #[test]
    fn trace_blocks_are_split_and_directed() {
        let raw = [
            "baresip is ready.",
            "\u{1b}[36;1m#",
            "UDP 127.0.0.1:5000 -> 127.0.0.1:6000",
            "INVITE sip:b@127.0.0.1:6000 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK1;rport",
            "",
            "v=0",
            "a=sendonly",
            "\u{1b}[;m",
            "\u{1b}[36;1m#",
            "UDP 127.0.0.1:6000 -> 127.0.0.1:5000",
            "SIP/2.0 200 OK",
            "\u{1b}[;mua: something",
        ];
        let lines: Vec<Line> = raw.iter().map(|r| line(r)).collect();
        // A block still being printed is not returned yet.
        assert_eq!(parse_trace(&lines[..7], 6000).len(), 0);
        assert_eq!(parse_trace(&lines[..9], 6000).len(), 1);
        let messages = parse_trace(&lines, 6000);
        assert_eq!(messages.len(), 2);
        assert!(messages[0].incoming && messages[0].is_hold_offer());
        assert_eq!(messages[0].method(), Some("INVITE"));
        assert_eq!(
            messages[0].header("via"),
            Some("SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK1;rport")
        );
        assert!(!messages[1].incoming);
        assert_eq!(messages[1].method(), None);
        assert!(!messages[1].is_hold_offer());
    }
}
