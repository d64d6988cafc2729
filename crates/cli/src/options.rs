//! Command line and `--config` TOML: every option has a config key of the same name
//! (`--rtp-ports` ↔ `rtp_ports`). The command line wins over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use homeagent_api::PhoneSettings;
use serde::Deserialize;

const AFTER_HELP: &str = "\
Commands on stdin: one JSON object per line, e.g. {\"command\":\"hold\",\"call\":1}; commands:
call {uri}, answer, decline, hangup, hold, resume {call}, send_dtmf {call, digits},
mute {call, muted}, transfer {call, target} (blind transfer, SIP REFER),
attended_transfer {call, consultation} (REFER with Replaces), set_audio {input, output}
(switch devices during calls, specs as --audio-in/--audio-out), shutdown.

Exit status: 0 the call(s) were answered and ended normally; 1 failed (network, media, other
error); 2 bad usage or configuration; 3 busy, declined or rejected; 4 no answer / timeout;
5 authentication or registration failed.

The SIP password is read from the environment variable HOMEAGENT_PASSWORD, the TURN one
from HOMEAGENT_TURN_PASSWORD, never from the command line. With --json, stdout carries one JSON object per event; the last line is the
summary: {\"event\":\"summary\",\"result\":...,\"codec\":...,\"duration_s\":...,
\"packets_sent\":...,\"packets_received\":...,\"packets_lost\":...,\"jitter_ms\":...,\"rtt_ms\":...,
\"mos\":...}. During a call, {\"event\":\"quality\",...} every 5 s: MOS, loss, jitter, RTT, delay.";

/// Homeagent: a softphone for contact-center agents (headless CLI).
#[derive(Debug, Parser)]
#[command(name = "homeagent", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Mode,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Place one call, wait for it to end; exit 0 if it was answered and ended normally.
    Call {
        /// Who to call: sip:user@host[:port][;transport=tcp], or a user/number at the registrar.
        uri: String,
    },
    /// Wait for incoming calls (answer them, or reject them).
    Listen {},
    /// List the audio devices usable with device:NAME.
    Devices {},
    /// Training line on this computer: a simulated customer calls you every few seconds;
    /// nothing leaves the machine (no registrar, loopback only).
    Demo {
        /// Seconds between the end of a training call and the next one.
        #[arg(long, default_value_t = 10.0)]
        every: f64,
        /// Length of each training call, seconds.
        #[arg(long, default_value_t = 20.0)]
        length: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerOption {
    Auto,
    Reject,
    /// Ring until a command on stdin answers or declines (`{"command":"answer","call":1}`).
    Manual,
}

/// Media encryption (SRTP with SDES keys, RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpOption {
    /// SRTP or no call: offer RTP/SAVP, refuse plain RTP with 488.
    Mandatory,
    /// Offer SRTP keys (best effort) and accept plain RTP from peers without SRTP.
    Preferred,
    /// Plain RTP only.
    Off,
}

/// ICE + DTLS-SRTP media (WebRTC style) in our offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IceOption {
    /// When the registrar is reached over WebSocket (ws/wss), the face browsers use.
    Auto,
    /// In every offer.
    On,
    /// Never; offers with ICE/DTLS are refused (488).
    Off,
}

/// An audio processing stage: forced on, forced off, or on only for device audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    Auto,
    On,
    Off,
}

impl Switch {
    fn forced(self) -> Option<bool> {
        match self {
            Self::Auto => None,
            Self::On => Some(true),
            Self::Off => Some(false),
        }
    }
}

/// Options common to every command; each one also has a `--config` key.
#[derive(Debug, Args, Default)]
pub struct Options {
    /// TOML file with any of these options as keys (rtp_ports = "20000-20099", ...).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Local SIP address, UDP and TCP [default: 0.0.0.0:5060].
    #[arg(long, global = true, value_name = "IP:PORT")]
    pub bind: Option<SocketAddr>,
    /// Local RTP port range [default: 16384-32767].
    #[arg(long, global = true, value_name = "LOW-HIGH")]
    pub rtp_ports: Option<String>,
    /// Codecs in preference order [default: opus,pcmu,pcma].
    #[arg(long, global = true, value_name = "LIST")]
    pub codecs: Option<String>,
    /// Microphone: FILE.wav | tone:HZ | silence | device:NAME [default: device:default].
    #[arg(long, global = true, value_name = "SOURCE")]
    pub audio_in: Option<String>,
    /// Speaker: FILE.wav | null | device:NAME [default: device:default]. A WAV records what
    /// the agent hears, clocked like a sound card.
    #[arg(long, global = true, value_name = "SINK")]
    pub audio_out: Option<String>,
    /// Echo cancellation on the microphone [default: auto = on when audio is a device].
    #[arg(long, global = true, value_enum)]
    pub echo_cancellation: Option<Switch>,
    /// Noise suppression on the microphone [default: auto].
    #[arg(long, global = true, value_enum)]
    pub noise_suppression: Option<Switch>,
    /// Automatic gain control on the microphone [default: auto].
    #[arg(long, global = true, value_enum)]
    pub gain_control: Option<Switch>,
    /// Hang up this many seconds after the call is answered. Without it, a call whose
    /// --audio-in is a WAV hangs up when the file ends plus one second.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub hangup_after: Option<f64>,
    /// DTMF digits to send (RFC 4733) once the call is up.
    #[arg(long, global = true, value_name = "DIGITS")]
    pub dtmf: Option<String>,
    /// Register with this registrar (also used as outbound proxy).
    #[arg(long, global = true, value_name = "SIP_URI")]
    pub registrar: Option<String>,
    /// SIP over WebSocket (RFC 7118): the server requests for the registrar go to, e.g.
    /// wss://sbc.example.com:8443/ or ws://127.0.0.1:8080/ (a registrar URI with
    /// ;transport=ws|wss needs none). The --ca-file of TLS applies to wss.
    #[arg(long, global = true, value_name = "URL")]
    pub ws_url: Option<String>,
    /// STUN server asked at start where our SIP socket is seen from outside (behind a home
    /// router's NAT): that address goes into Contact and SDP.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub stun: Option<String>,
    /// TURN server relaying the media of ICE calls where direct UDP is blocked (RFC 8656):
    /// turn:HOST[:PORT] (UDP to the server), turn:HOST[:PORT]?transport=tcp (TCP) or
    /// turns:HOST[:PORT] (TLS, checked like SIP over TLS); password from
    /// HOMEAGENT_TURN_PASSWORD, user --turn-user (default --user).
    #[arg(long, global = true, value_name = "URI")]
    pub turn: Option<String>,
    /// TURN user name [default: --user].
    #[arg(long, global = true, value_name = "NAME")]
    pub turn_user: Option<String>,
    /// Account user name (address of record user part).
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Authentication user name, when it differs from --user.
    #[arg(long, global = true, value_name = "NAME")]
    pub auth_user: Option<String>,
    /// SIP over TLS (sips: or ;transport=tls): PEM file of CA certificates to trust besides
    /// the public web roots (e.g. the platform's private CA).
    #[arg(long, global = true, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// SIP over TLS: PEM file of certificate revocation lists (e.g. the company CA's); a
    /// revoked server certificate is refused.
    #[arg(long, global = true, value_name = "PATH")]
    pub crl_file: Option<PathBuf>,
    /// SIP over TLS: PEM certificate (chain) to present when the server asks for one.
    #[arg(long, global = true, value_name = "PATH", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// SIP over TLS: PEM private key of --client-cert.
    #[arg(long, global = true, value_name = "PATH", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// CRLF keepalive (RFC 5626) on idle TCP/TLS connections to the registrar (a ping on
    /// WebSocket ones), every SECONDS; 0 turns it off [default: 30].
    #[arg(long, global = true, value_name = "SECONDS")]
    pub keepalive: Option<f64>,
    /// listen: what to do with incoming calls [default: auto].
    #[arg(long, global = true, value_enum)]
    pub answer: Option<AnswerOption>,
    /// listen: exit after this many calls have ended.
    #[arg(long, global = true, value_name = "N")]
    pub calls: Option<u32>,
    /// Media encryption: SRTP with keys in the SDP (SDES) [default: off]. `mandatory`
    /// refuses plain RTP (488); `preferred` offers keys and accepts plain peers.
    #[arg(long, global = true, value_enum)]
    pub srtp: Option<SrtpOption>,
    /// ICE + DTLS-SRTP media, as browsers and WebRTC gateways want it [default: auto: in
    /// offers over a ws/wss registrar]. Offers with ICE/DTLS are always answered with it,
    /// unless `off`.
    #[arg(long, global = true, value_enum)]
    pub ice: Option<IceOption>,
    /// The contact-center platform (ACD/SBC) address: only its INVITEs may be answered by
    /// themselves (Call-Info answer-after, Alert-Info auto-answer, Answer-Mode: Auto). With
    /// it, other calls ring (--answer defaults to manual). Comma-separated for several.
    #[arg(long, global = true, value_name = "HOST[:PORT]")]
    pub platform: Option<String>,
    /// Forced delivery: answer every call from --platform at once.
    #[arg(long, global = true)]
    pub auto_answer_all: bool,
    /// Take calls and requests from any address. By default, with --registrar, only the
    /// registrar's and --platform's hosts are answered (SIP scanners get no answer at all).
    #[arg(long, global = true)]
    pub allow_any_source: bool,
    /// Customer context lookup (screen-pop): URL template with {from}, {to} and
    /// {header:NAME} (URL-encoded), e.g. https://crm/api?id={header:X-Customer-Id}. An
    /// `Authorization`-style header can be given in HOMEAGENT_CONTEXT_AUTH ("Name: value").
    #[arg(long, global = true, value_name = "TEMPLATE")]
    pub context_url: Option<String>,
    /// Context lookup timeout [default: 1.5].
    #[arg(long, global = true, value_name = "SECONDS")]
    pub context_timeout: Option<f64>,
    /// The platform's HTTP API (docs/platform-api.yaml): agent state and wrap-ups. Bearer
    /// token in HOMEAGENT_PLATFORM_TOKEN.
    #[arg(long, global = true, value_name = "URL")]
    pub platform_api: Option<String>,
    /// Agent id for the platform API [default: --user, else "agent"].
    #[arg(long, global = true, value_name = "ID")]
    pub agent: Option<String>,
    /// Submit this disposition (and note) when each answered call ends.
    #[arg(long, global = true, value_name = "CODE[:NOTE]")]
    pub wrapup: Option<String>,
    /// After-call work after each call, at most SECONDS [default: 0 = none].
    #[arg(long, global = true, value_name = "SECONDS")]
    pub wrapup_time: Option<f64>,
    /// The wrap-up outbox (SQLite) [default: $XDG_DATA_HOME/homeagent/outbox.sqlite].
    #[arg(long, global = true, value_name = "FILE")]
    pub outbox: Option<PathBuf>,
    /// call: give up if not answered within SECONDS [default: 60].
    #[arg(long, global = true, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// One JSON object per event on stdout; the last line is a summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log filter for stderr (error, warn, info, debug, trace) [default: warn].
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Debug logging with phone numbers and SIP URIs shown unredacted.
    #[arg(long, global = true)]
    pub debug: bool,
}

/// The `--config` file: the same keys as the long options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOptions {
    bind: Option<SocketAddr>,
    rtp_ports: Option<String>,
    codecs: Option<String>,
    audio_in: Option<String>,
    audio_out: Option<String>,
    echo_cancellation: Option<Switch>,
    noise_suppression: Option<Switch>,
    gain_control: Option<Switch>,
    hangup_after: Option<f64>,
    dtmf: Option<String>,
    registrar: Option<String>,
    ws_url: Option<String>,
    stun: Option<String>,
    turn: Option<String>,
    turn_user: Option<String>,
    user: Option<String>,
    auth_user: Option<String>,
    allow_any_source: Option<bool>,
    ca_file: Option<PathBuf>,
    crl_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    keepalive: Option<f64>,
    answer: Option<AnswerOption>,
    calls: Option<u32>,
    srtp: Option<SrtpOption>,
    ice: Option<IceOption>,
    platform: Option<String>,
    auto_answer_all: Option<bool>,
    context_url: Option<String>,
    context_timeout: Option<f64>,
    platform_api: Option<String>,
    agent: Option<String>,
    wrapup: Option<String>,
    wrapup_time: Option<f64>,
    outbox: Option<PathBuf>,
    timeout: Option<f64>,
    json: Option<bool>,
    log_level: Option<String>,
    debug: Option<bool>,
}

/// Everything `run` needs, validated.
#[derive(Debug)]
pub struct Resolved {
    pub mode: RunMode,
    pub phone: PhoneSettings,
    pub json: bool,
    pub hangup_after: Option<Duration>,
    pub dtmf: Option<String>,
    pub log_level: String,
    pub debug: bool,
    /// The audio input is a WAV file: hang up when it ends (+1 s) unless --hangup-after.
    pub hangup_when_input_ends: bool,
    /// Context lookup, platform API, wrap-ups.
    pub workflow: homeagent_api::WorkflowSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMode {
    Call { uri: String },
    Listen { calls: Option<u32> },
    Devices,
    Demo { every: Duration, length: Duration },
}

impl Cli {
    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let file = match &self.options.config {
            Some(path) => read_config(path)?,
            None => FileOptions::default(),
        };
        merge(
            self.command,
            self.options,
            file,
            std::env::var("HOMEAGENT_PASSWORD").ok(),
        )
    }
}

fn read_config(path: &Path) -> anyhow::Result<FileOptions> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn merge(
    command: Mode,
    cli: Options,
    file: FileOptions,
    password: Option<String>,
) -> anyhow::Result<Resolved> {
    let mut phone = PhoneSettings::default();
    if let Some(bind) = cli.bind.or(file.bind) {
        phone.bind = bind;
    }
    if let Some(range) = cli.rtp_ports.or(file.rtp_ports) {
        phone.rtp_ports = parse_port_range(&range)?;
    }
    if let Some(codecs) = cli.codecs.or(file.codecs) {
        phone.codecs = PhoneSettings::parse_codecs(&codecs)?;
    }
    let audio_in = cli.audio_in.or(file.audio_in);
    if let Some(source) = &audio_in {
        phone.audio_in = source
            .parse()
            .with_context(|| format!("bad --audio-in {source:?}"))?;
    }
    if let Some(sink) = cli.audio_out.or(file.audio_out) {
        phone.audio_out = sink
            .parse()
            .with_context(|| format!("bad --audio-out {sink:?}"))?;
    }
    let processing = &mut phone.audio_processing;
    processing.echo_cancellation = cli
        .echo_cancellation
        .or(file.echo_cancellation)
        .and_then(Switch::forced);
    processing.noise_suppression = cli
        .noise_suppression
        .or(file.noise_suppression)
        .and_then(Switch::forced);
    processing.gain_control = cli
        .gain_control
        .or(file.gain_control)
        .and_then(Switch::forced);
    phone.registrar = cli.registrar.or(file.registrar);
    phone.ws_url = cli.ws_url.or(file.ws_url);
    phone.stun = cli.stun.or(file.stun);
    if phone.ws_url.is_some() && phone.registrar.is_none() {
        bail!("--ws-url needs --registrar");
    }
    phone.user = cli.user.or(file.user);
    phone.auth_user = cli.auth_user.or(file.auth_user);
    if let Some(uri) = cli.turn.or(file.turn) {
        let username = cli
            .turn_user
            .or(file.turn_user)
            .or_else(|| phone.user.clone())
            .context("--turn needs a user name: --turn-user (or --user)")?;
        let password = std::env::var("HOMEAGENT_TURN_PASSWORD").ok().context(
            "--turn needs the password in the environment variable HOMEAGENT_TURN_PASSWORD",
        )?;
        phone.turn = Some(homeagent_api::TurnSettings {
            uri,
            username,
            password,
        });
    }
    phone.password = password.filter(|p| !p.is_empty());
    phone.tls.ca_file = cli.ca_file.or(file.ca_file);
    phone.tls.crl_file = cli.crl_file.or(file.crl_file);
    phone.tls.client_cert = cli.client_cert.or(file.client_cert);
    phone.tls.client_key = cli.client_key.or(file.client_key);
    if phone.tls.client_cert.is_some() != phone.tls.client_key.is_some() {
        bail!("--client-cert and --client-key go together");
    }
    if let Some(keepalive) = cli.keepalive.or(file.keepalive) {
        let interval = seconds(keepalive, "--keepalive")?;
        phone.keepalive = (!interval.is_zero()).then_some(interval);
    }
    if phone.registrar.is_some() && phone.user.is_none() {
        bail!("--registrar needs --user");
    }
    if phone.registrar.is_some() && phone.password.is_none() {
        bail!("--registrar needs the password in the environment variable HOMEAGENT_PASSWORD");
    }
    phone.platform = cli
        .platform
        .or(file.platform)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    phone.auto_answer_all = cli.auto_answer_all || file.auto_answer_all.unwrap_or(false);
    if phone.auto_answer_all && phone.platform.is_empty() {
        bail!(
            "--auto-answer-all needs --platform (only the platform's calls are answered by themselves)"
        );
    }
    if let Some(time) = cli.wrapup_time.or(file.wrapup_time) {
        phone.wrapup.max_time = seconds(time, "--wrapup-time")?;
    }
    // With a platform, its calls answer themselves; the others ring.
    let default_answer = if phone.platform.is_empty() {
        AnswerOption::Auto
    } else {
        AnswerOption::Manual
    };
    let answer = cli.answer.or(file.answer).unwrap_or(default_answer);
    phone.answer = match answer {
        AnswerOption::Auto => homeagent_api::AnswerMode::Auto,
        AnswerOption::Reject => homeagent_api::AnswerMode::Reject,
        AnswerOption::Manual => homeagent_api::AnswerMode::Manual,
    };
    phone.inbound_filter = !(cli.allow_any_source || file.allow_any_source.unwrap_or(false));
    phone.srtp = match cli.srtp.or(file.srtp).unwrap_or(SrtpOption::Off) {
        SrtpOption::Mandatory => homeagent_api::SrtpPolicy::Mandatory,
        SrtpOption::Preferred => homeagent_api::SrtpPolicy::Preferred,
        SrtpOption::Off => homeagent_api::SrtpPolicy::Off,
    };
    phone.ice = match cli.ice.or(file.ice).unwrap_or(IceOption::Auto) {
        IceOption::Auto => homeagent_api::IceMode::Auto,
        IceOption::On => homeagent_api::IceMode::On,
        IceOption::Off => homeagent_api::IceMode::Off,
    };
    if let Some(timeout) = cli.timeout.or(file.timeout) {
        phone.no_answer_timeout = seconds(timeout, "--timeout")?;
    }
    let hangup_after = cli
        .hangup_after
        .or(file.hangup_after)
        .map(|s| seconds(s, "--hangup-after"))
        .transpose()?;
    let dtmf = cli.dtmf.or(file.dtmf);
    if let Some(digits) = &dtmf {
        if let Some(bad) = digits
            .chars()
            .find(|c| !matches!(c.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D'))
        {
            bail!("--dtmf: {bad:?} is not a DTMF digit (0-9 * # A-D)");
        }
    }
    let mode = match command {
        Mode::Call { uri } => RunMode::Call { uri },
        Mode::Listen {} => RunMode::Listen {
            calls: cli.calls.or(file.calls),
        },
        Mode::Devices {} => RunMode::Devices,
        Mode::Demo { every, length } => RunMode::Demo {
            every: seconds(every, "--every")?,
            length: seconds(length, "--length")?,
        },
    };
    let debug = cli.debug || file.debug.unwrap_or(false);
    let log_level = cli
        .log_level
        .or(file.log_level)
        .unwrap_or_else(|| if debug { "debug".into() } else { "warn".into() });
    let workflow = workflow_settings(
        &phone,
        WorkflowOptions {
            context_url: cli.context_url.or(file.context_url),
            context_timeout: cli.context_timeout.or(file.context_timeout),
            platform_api: cli.platform_api.or(file.platform_api),
            agent: cli.agent.or(file.agent),
            wrapup: cli.wrapup.or(file.wrapup),
            outbox: cli.outbox.or(file.outbox),
        },
    )?;
    let hangup_when_input_ends = hangup_after.is_none()
        && audio_in
            .as_deref()
            .is_some_and(|s| s.to_ascii_lowercase().ends_with(".wav"));
    Ok(Resolved {
        mode,
        phone,
        json: cli.json || file.json.unwrap_or(false),
        hangup_after,
        dtmf,
        log_level,
        debug,
        hangup_when_input_ends,
        workflow,
    })
}

struct WorkflowOptions {
    context_url: Option<String>,
    context_timeout: Option<f64>,
    platform_api: Option<String>,
    agent: Option<String>,
    wrapup: Option<String>,
    outbox: Option<PathBuf>,
}

fn workflow_settings(
    phone: &PhoneSettings,
    options: WorkflowOptions,
) -> anyhow::Result<homeagent_api::WorkflowSettings> {
    let mut settings = homeagent_api::WorkflowSettings::default();
    if let Some(template) = options.context_url {
        let mut context = homeagent_api::ContextConfig {
            url_template: template,
            ..Default::default()
        };
        if let Some(timeout) = options.context_timeout {
            context.timeout = seconds(timeout, "--context-timeout")?;
        }
        if let Ok(header) = std::env::var("HOMEAGENT_CONTEXT_AUTH") {
            let (name, value) = header
                .split_once(':')
                .context("HOMEAGENT_CONTEXT_AUTH must be \"Name: value\"")?;
            context.auth_header = Some((name.trim().to_owned(), value.trim().to_owned()));
        }
        settings.context = Some(context);
    }
    settings.agent = options
        .agent
        .or_else(|| phone.user.clone())
        .unwrap_or_else(|| "agent".to_owned());
    settings.platform_api = options.platform_api;
    settings.platform_token = std::env::var("HOMEAGENT_PLATFORM_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    settings.auto_wrapup = options.wrapup.map(|spec| match spec.split_once(':') {
        Some((code, note)) => (code.to_owned(), note.to_owned()),
        None => (spec, String::new()),
    });
    if let Some((code, _)) = &settings.auto_wrapup
        && code.trim().is_empty()
    {
        bail!("--wrapup needs a disposition code");
    }
    if let Some(path) = options.outbox {
        settings.outbox = path;
    }
    Ok(settings)
}

fn seconds(value: f64, option: &str) -> anyhow::Result<Duration> {
    if !(value.is_finite() && (0.0..1e7).contains(&value)) {
        bail!("{option}: {value} is not a number of seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

fn parse_port_range(text: &str) -> anyhow::Result<(u16, u16)> {
    let (low, high) = text
        .split_once('-')
        .context("--rtp-ports: expected LOW-HIGH, e.g. 20000-20099")?;
    let low: u16 = low
        .trim()
        .parse()
        .context("--rtp-ports: LOW is not a port number")?;
    let high: u16 = high
        .trim()
        .parse()
        .context("--rtp-ports: HIGH is not a port number")?;
    if low == 0 || high < low.saturating_add(1) {
        bail!("--rtp-ports: need 0 < LOW < HIGH (an RTP port and its RTCP port, LOW+1)");
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Resolved> {
        let cli = Cli::try_parse_from(args)?;
        merge(
            cli.command,
            cli.options,
            FileOptions::default(),
            Some("pw".into()),
        )
    }

    #[test]
    fn call_with_common_options_after_the_uri() {
        let r = parse(&[
            "homeagent",
            "call",
            "sip:bob@127.0.0.1:5070",
            "--bind",
            "127.0.0.1:5090",
            "--codecs",
            "pcmu",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            r.mode,
            RunMode::Call {
                uri: "sip:bob@127.0.0.1:5070".into()
            }
        );
        assert_eq!(
            r.phone.bind,
            "127.0.0.1:5090".parse::<std::net::SocketAddr>().unwrap()
        );
        assert!(r.json);
    }

    #[test]
    fn rejects_bad_ranges_and_digits() {
        assert!(parse(&["homeagent", "listen", "--rtp-ports", "30000-20000"]).is_err());
        assert!(parse(&["homeagent", "listen", "--rtp-ports", "abc"]).is_err());
        assert!(parse(&["homeagent", "call", "sip:a@b", "--dtmf", "12x"]).is_err());
        assert!(parse(&["homeagent", "call", "sip:a@b", "--codecs", "g729"]).is_err());
    }

    #[test]
    fn config_file_keys_apply_and_cli_wins() {
        let file: FileOptions =
            toml::from_str("rtp_ports = \"20000-20010\"\ncalls = 3\nbind = \"127.0.0.1:6000\"")
                .unwrap();
        let cli = Cli::try_parse_from(["homeagent", "listen", "--bind", "127.0.0.1:7000"]).unwrap();
        let r = merge(cli.command, cli.options, file, None).unwrap();
        assert_eq!(r.phone.rtp_ports, (20000, 20010));
        assert_eq!(r.mode, RunMode::Listen { calls: Some(3) });
        assert_eq!(r.phone.bind.port(), 7000);
    }

    #[test]
    fn the_example_config_parses_with_every_key() {
        let example = include_str!("../../../docs/homeagent.example.toml");
        // Uncomment every `# key = value` line: each must be a known key with a valid value.
        let uncommented: String = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ")
                    .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            })
            .map(|l| format!("{}\n", l.split("  #").next().unwrap_or(l).trim()))
            .collect();
        let file: FileOptions = toml::from_str(&uncommented).unwrap();
        assert_eq!(file.rtp_ports.as_deref(), Some("16384-32767"));
        assert_eq!(file.answer, Some(AnswerOption::Auto));
        assert!(file.registrar.is_some() && file.debug == Some(false));
    }

    #[test]
    fn contact_center_options() {
        let resolve = |args: &[&str]| {
            let mut all = vec!["homeagent", "listen"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all)
                .map_err(|e| e.to_string())?
                .resolve()
                .map_err(|e| e.to_string())
        };
        let plain = resolve(&[]).unwrap();
        assert_eq!(plain.phone.answer, homeagent_api::AnswerMode::Auto);
        assert!(!plain.workflow.is_active());
        let acd = resolve(&[
            "--platform",
            "10.0.0.1:5060, sbc.example",
            "--auto-answer-all",
            "--wrapup",
            "SALE:signed: yes",
            "--context-url",
            "http://crm/{header:X-Customer-Id}",
            "--wrapup-time",
            "30",
        ])
        .unwrap();
        // Other callers ring: only the platform's calls answer themselves.
        assert_eq!(acd.phone.answer, homeagent_api::AnswerMode::Manual);
        assert_eq!(acd.phone.platform, ["10.0.0.1:5060", "sbc.example"]);
        assert!(acd.phone.auto_answer_all);
        assert_eq!(acd.phone.wrapup.max_time, Duration::from_secs(30));
        assert_eq!(
            acd.workflow.auto_wrapup,
            Some(("SALE".to_owned(), "signed: yes".to_owned()))
        );
        assert!(acd.workflow.context.is_some());
        let forced_alone = resolve(&["--auto-answer-all"]).unwrap_err();
        assert!(forced_alone.contains("--platform"), "{forced_alone}");
        assert!(resolve(&["--wrapup", ":note"]).is_err());
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        assert!(toml::from_str::<FileOptions>("bnid = \"x\"").is_err());
    }

    #[test]
    fn registrar_needs_user_and_password() {
        let cli = Cli::try_parse_from([
            "homeagent",
            "listen",
            "--registrar",
            "sip:127.0.0.1",
            "--user",
            "alice",
        ])
        .unwrap();
        assert!(merge(cli.command, cli.options, FileOptions::default(), None).is_err());
    }

    #[test]
    fn tls_files_and_keepalive() {
        let r = parse(&[
            "homeagent",
            "listen",
            "--ca-file",
            "ca.pem",
            "--client-cert",
            "me.pem",
            "--client-key",
            "me.key",
            "--keepalive",
            "0",
        ])
        .unwrap();
        assert_eq!(r.phone.tls.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(r.phone.tls.client_key, Some(PathBuf::from("me.key")));
        assert_eq!(r.phone.keepalive, None);
        assert!(parse(&["homeagent", "listen", "--client-cert", "me.pem"]).is_err());
        let file: FileOptions =
            toml::from_str("ca_file = \"/etc/pki/sbc-ca.pem\"\nkeepalive = 15").unwrap();
        let cli = Cli::try_parse_from(["homeagent", "listen"]).unwrap();
        let r = merge(cli.command, cli.options, file, None).unwrap();
        assert_eq!(
            r.phone.tls.ca_file,
            Some(PathBuf::from("/etc/pki/sbc-ca.pem"))
        );
        assert_eq!(r.phone.keepalive, Some(Duration::from_secs(15)));
    }

    #[test]
    fn processing_switches() {
        let r = parse(&[
            "homeagent",
            "listen",
            "--echo-cancellation",
            "off",
            "--noise-suppression",
            "on",
        ])
        .unwrap();
        assert_eq!(r.phone.audio_processing.echo_cancellation, Some(false));
        assert_eq!(r.phone.audio_processing.noise_suppression, Some(true));
        assert_eq!(r.phone.audio_processing.gain_control, None);
        assert!(parse(&["homeagent", "listen", "--gain-control", "maybe"]).is_err());
    }

    #[test]
    fn wav_input_hangs_up_at_its_end() {
        let r = parse(&["homeagent", "call", "sip:a@b", "--audio-in", "x.wav"]).unwrap();
        assert!(r.hangup_when_input_ends);
        let r = parse(&[
            "homeagent",
            "call",
            "sip:a@b",
            "--audio-in",
            "x.wav",
            "--hangup-after",
            "3",
        ])
        .unwrap();
        assert!(!r.hangup_when_input_ends);
    }
}
