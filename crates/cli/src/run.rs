//! Drives a [`Phone`] for `call` and `listen`, prints events, decides the exit status.

use std::io::Write;
use std::time::Duration;

use homeagent_api::{CallStats, Command, Event, Phone, list_audio_devices};
use serde_json::json;

use crate::options::{Resolved, RunMode};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_REJECTED: u8 = 3;
pub const EXIT_TIMEOUT: u8 = 4;
pub const EXIT_AUTH: u8 = 5;

pub fn init_logging(settings: &Resolved) {
    homeagent_api::reveal_personal_data(settings.debug);
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub async fn run(settings: Resolved) -> u8 {
    match settings.mode {
        RunMode::Devices => return print_devices(settings.json),
        RunMode::Demo { every, length } => return crate::demo::run(&settings, every, length).await,
        _ => {}
    }
    let mut phone = match Phone::start(settings.phone.clone()).await {
        Ok(phone) => phone.with_workflow(settings.workflow.clone()),
        Err(error) => {
            eprintln!("homeagent: {error}");
            return EXIT_FAILED;
        }
    };
    let commander = phone.commander();
    {
        let commander = commander.clone();
        tokio::spawn(async move {
            // Ctrl-C or a service manager's SIGTERM: hang up, unregister, then exit.
            stop_signal().await;
            commander.send(Command::Shutdown).await;
        });
    }
    tokio::spawn(read_stdin_commands(commander.clone()));
    let mut run = Run::new(&settings);
    let registering = settings.phone.registrar.is_some();
    while let Some(event) = phone.next_event().await {
        run.print(&event);
        match &event {
            Event::Ready { .. } if !registering => run.start_call(&commander).await,
            Event::Registered { .. } => run.start_call(&commander).await,
            Event::RegistrationFailed { .. } if !run.registered_once => {
                run.exit = Some(EXIT_AUTH);
                commander.send(Command::Shutdown).await;
            }
            Event::AudioInputEnded { call } if settings.hangup_when_input_ends => {
                hang_up_later(&commander, *call, Duration::from_secs(1));
            }
            Event::Answered { call, .. } | Event::Established { call, .. } => {
                run.answered.insert(*call);
                if let Event::Established { call, srtp, .. } = &event {
                    // ICE + DTLS may finish before the call is established (incoming calls).
                    let dtls = run.dtls_srtp.get(call).cloned();
                    run.media_encryption = Some(match (srtp, dtls) {
                        (Some(suite), _) => format!("srtp {suite}"),
                        (None, Some(dtls)) => dtls,
                        (None, None) => "none".to_owned(),
                    });
                    on_established(&settings, &commander, *call);
                }
            }
            Event::IceConnected {
                call,
                local,
                remote,
                srtp,
            } => {
                let encryption = format!("dtls-srtp {srtp}");
                run.dtls_srtp.insert(*call, encryption.clone());
                run.media_encryption = Some(encryption);
                run.ice_pair = Some(json!({"local": local, "remote": remote}));
            }
            Event::Ended { call, .. } if run.call_ended(&event) => {
                if settings.workflow.auto_wrapup.is_some() && run.answered.contains(call) {
                    // Its wrap-up is queued next: leave once it is stored (and delivered, if
                    // the platform answers in time; else at the next start).
                    run.finishing = true;
                    shut_down_later(&commander, WRAPUP_GRACE);
                } else {
                    commander.send(Command::Shutdown).await;
                }
            }
            Event::WrapupQueued { .. } if run.finishing => {
                if settings.workflow.platform_api.is_some() {
                    // Wait for the platform's acknowledgement (below), a few seconds at most.
                    run.awaiting_delivery = true;
                    shut_down_later(&commander, DELIVERY_GRACE);
                } else {
                    commander.send(Command::Shutdown).await;
                }
            }
            Event::WrapupDelivered { pending: 0, .. } if run.awaiting_delivery => {
                commander.send(Command::Shutdown).await;
            }
            Event::Stopped => break,
            _ => {}
        }
        if let Event::Registered { .. } = event {
            run.registered_once = true;
        }
    }
    run.finish()
}

/// Longest wait for an ended call's wrap-up to be stored, then for its delivery.
const WRAPUP_GRACE: Duration = Duration::from_secs(10);
const DELIVERY_GRACE: Duration = Duration::from_secs(5);

fn on_established(settings: &Resolved, commander: &homeagent_api::Commander, call: u32) {
    if let Some(digits) = settings.dtmf.clone() {
        let commander = commander.clone();
        tokio::spawn(async move {
            // Let the media path settle so the first digit is not clipped.
            tokio::time::sleep(Duration::from_millis(500)).await;
            commander.send(Command::SendDtmf { call, digits }).await;
        });
    }
    if let Some(after) = settings.hangup_after {
        hang_up_later(commander, call, after);
    }
}

fn shut_down_later(commander: &homeagent_api::Commander, after: Duration) {
    let commander = commander.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        commander.send(Command::Shutdown).await;
    });
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Commands from stdin, one JSON object per line (scripts and tests drive the phone this way).
async fn read_stdin_commands(commander: homeagent_api::Commander) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Command>(line) {
            Ok(command) => {
                if !commander.send(command).await {
                    return;
                }
            }
            Err(error) => eprintln!("homeagent: ignored stdin line ({error}): {line}"),
        }
    }
}

fn hang_up_later(commander: &homeagent_api::Commander, call: u32, after: Duration) {
    let commander = commander.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        commander.send(Command::Hangup { call }).await;
    });
}

/// What happened so far, for the exit status and the summary.
struct Run {
    mode: RunMode,
    json: bool,
    call_started: bool,
    registered_once: bool,
    ended: Vec<Event>,
    exit: Option<u8>,
    answered: std::collections::HashSet<u32>,
    /// The last call ended; waiting for its wrap-up before leaving.
    finishing: bool,
    /// Its wrap-up is stored; waiting for the platform to take it.
    awaiting_delivery: bool,
    /// How the last established call's media was protected: `srtp SUITE` (SDES),
    /// `dtls-srtp SUITE` (ICE + DTLS) or `none`.
    media_encryption: Option<String>,
    /// The ICE candidate pair of the last call with ICE: `{"local": …, "remote": …}`.
    ice_pair: Option<serde_json::Value>,
    /// `dtls-srtp SUITE` of the calls whose ICE + DTLS connected.
    dtls_srtp: std::collections::HashMap<u32, String>,
    /// The SIP transport of the calls (`udp`, `tcp`, `tls`, ...), for the summary.
    transport: Option<&'static str>,
}

impl Run {
    fn new(settings: &Resolved) -> Self {
        Self {
            mode: settings.mode.clone(),
            json: settings.json,
            call_started: false,
            registered_once: false,
            ended: Vec::new(),
            exit: None,
            answered: std::collections::HashSet::new(),
            finishing: false,
            awaiting_delivery: false,
            media_encryption: None,
            ice_pair: None,
            dtls_srtp: std::collections::HashMap::new(),
            transport: signalling_transport(settings),
        }
    }

    async fn start_call(&mut self, commander: &homeagent_api::Commander) {
        if let RunMode::Call { uri } = &self.mode {
            if !self.call_started {
                self.call_started = true;
                commander.send(Command::Call { uri: uri.clone() }).await;
            }
        }
    }

    /// Records an ended call; true when the run is over.
    fn call_ended(&mut self, event: &Event) -> bool {
        self.ended.push(event.clone());
        match self.mode {
            RunMode::Call { .. } => true,
            RunMode::Listen { calls: Some(n) } => self.ended.len() >= n as usize,
            _ => false,
        }
    }

    fn print(&self, event: &Event) {
        let mut out = std::io::stdout().lock();
        let line = if self.json {
            serde_json::to_string(event).unwrap_or_default()
        } else {
            human(event)
        };
        if !line.is_empty() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    fn finish(self) -> u8 {
        let exit = self.exit.unwrap_or_else(|| self.exit_from_calls());
        let last = self.ended.last();
        let (reason, stats) = match last {
            Some(Event::Ended { reason, stats, .. }) => (Some(reason.clone()), stats.clone()),
            _ => (None, CallStats::default()),
        };
        if self.json {
            let calls: Vec<_> = self
                .ended
                .iter()
                .filter_map(|e| match e {
                    Event::Ended { call, reason, normal, code, stats, .. } => {
                        Some(json!({"call": call, "reason": reason, "normal": normal, "code": code, "stats": stats}))
                    }
                    _ => None,
                })
                .collect();
            let summary = json!({
                "event": "summary",
                "result": if exit == EXIT_OK { "ok" } else { "failed" },
                "exit_code": exit,
                "reason": reason,
                "transport": self.transport,
                "codec": stats.codec,
                "media_encryption": self.media_encryption,
                "ice_pair": self.ice_pair,
                "duration_s": round3(stats.duration_s),
                "packets_sent": stats.packets_sent,
                "packets_received": stats.packets_received,
                "packets_lost": stats.packets_lost,
                "jitter_ms": round3(stats.jitter_ms),
                "rtt_ms": stats.rtt_ms.map(round3),
                "mos": stats.mos,
                "calls": calls,
            });
            println!("{summary}");
        } else if exit != EXIT_OK {
            eprintln!("homeagent: {}", failure_message(last, exit));
        }
        exit
    }

    fn exit_from_calls(&self) -> u8 {
        if self.ended.is_empty() {
            return match self.mode {
                RunMode::Call { .. } => EXIT_FAILED,
                _ => EXIT_OK,
            };
        }
        if let RunMode::Listen { .. } = self.mode {
            // A listener's job is to take calls; any call ended abnormally on our side fails it.
            let failed = self.ended.iter().find(|e| matches!(e, Event::Ended { normal: false, reason, .. } if reason != "declined" && reason != "remote_cancelled"));
            return failed.map_or(EXIT_OK, exit_for);
        }
        self.ended.last().map_or(EXIT_FAILED, exit_for)
    }
}

fn exit_for(event: &Event) -> u8 {
    match event {
        Event::Ended { normal: true, .. } => EXIT_OK,
        Event::Ended { reason, .. } => match reason.as_str() {
            "busy" | "rejected" | "declined" => EXIT_REJECTED,
            "timeout" | "cancelled" => EXIT_TIMEOUT,
            "auth_failed" => EXIT_AUTH,
            _ => EXIT_FAILED,
        },
        _ => EXIT_FAILED,
    }
}

fn failure_message(last: Option<&Event>, exit: u8) -> String {
    match last {
        Some(Event::Ended {
            reason,
            code,
            detail,
            ..
        }) => {
            let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
            let what = match reason.as_str() {
                "busy" => "the callee is busy",
                "rejected" | "declined" => "the call was rejected",
                "timeout" => "no answer in time",
                "cancelled" => "the call was cancelled before it was answered",
                "auth_failed" => "authentication failed: check the user and HOMEAGENT_PASSWORD",
                "media_failed" => "no common codec or bad media description",
                _ => "the call failed",
            };
            format!("{what}{code}: {detail}")
        }
        _ if exit == EXIT_AUTH => {
            "registration failed: check the user, registrar and HOMEAGENT_PASSWORD".into()
        }
        _ => "no call took place".into(),
    }
}

fn human(event: &Event) -> String {
    match event {
        Event::Ready { sip } => format!("ready on {sip}"),
        Event::Registered { expires } => format!("registered ({expires} s)"),
        Event::RegistrationFailed { code, reason } => format!(
            "registration failed: {reason} {}",
            code.map(|c| c.to_string()).unwrap_or_default()
        ),
        Event::Calling { to, .. } => format!("calling {to}"),
        Event::Incoming { from, .. } => format!("incoming call from {from}"),
        Event::Ringing { .. } => "ringing".into(),
        Event::Established { codec, .. } => format!("call established ({codec})"),
        Event::IceConnected {
            local,
            remote,
            srtp,
            ..
        } => format!("ICE connected {local} <-> {remote}, DTLS-SRTP {srtp}"),
        Event::Hold { local, .. } => format!(
            "call on hold ({})",
            if *local { "by us" } else { "by the other side" }
        ),
        Event::Resume { .. } => "call resumed".into(),
        Event::Dtmf { digit, .. } => format!("DTMF {digit}"),
        Event::Ended { reason, stats, .. } => {
            format!("call ended: {reason} after {:.1} s", stats.duration_s)
        }
        Event::Warning { message } => format!("warning: {message}"),
        Event::Error { message, .. } => format!("error: {message}"),
        _ => String::new(),
    }
}

/// The transport the calls' signalling uses: the registrar's (every request goes through it),
/// else the called URI's: `sips:` is TLS, else its `transport` parameter, else UDP.
fn signalling_transport(settings: &Resolved) -> Option<&'static str> {
    if let Some(url) = &settings.phone.ws_url {
        let secure = url.trim().to_ascii_lowercase().starts_with("wss:");
        return Some(if secure { "wss" } else { "ws" });
    }
    let uri = match (&settings.phone.registrar, &settings.mode) {
        (Some(registrar), _) => registrar,
        (None, RunMode::Call { uri }) => uri,
        (None, _) => return None,
    };
    Some(uri_transport(uri))
}

fn uri_transport(uri: &str) -> &'static str {
    let uri = uri.trim().to_ascii_lowercase();
    let secure = uri.starts_with("sips:");
    let param = uri
        .split(';')
        .skip(1)
        .find_map(|param| param.strip_prefix("transport="))
        .map(|value| value.split(['?', '>']).next().unwrap_or(value));
    match (param, secure) {
        (Some("ws"), false) => "ws",
        (Some("ws" | "wss"), _) => "wss",
        (Some("tcp"), false) => "tcp",
        (Some("tls"), _) | (_, true) => "tls",
        _ => "udp",
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn print_devices(json: bool) -> u8 {
    match list_audio_devices() {
        Ok(devices) => {
            for device in devices {
                if json {
                    println!("{}", serde_json::to_string(&device).unwrap_or_default());
                } else {
                    let kind = match (device.input, device.output) {
                        (true, true) => "in/out",
                        (true, false) => "in",
                        _ => "out",
                    };
                    println!("{:<6} {}", kind, device.name);
                }
            }
            EXIT_OK
        }
        Err(error) => {
            eprintln!("homeagent: cannot list audio devices: {error}");
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod transport_tests {
    #[test]
    fn the_uri_names_the_transport() {
        assert_eq!(super::uri_transport("sip:127.0.0.1:5060"), "udp");
        assert_eq!(super::uri_transport("sip:pbx;transport=TCP"), "tcp");
        assert_eq!(super::uri_transport("sip:pbx:5061;transport=tls"), "tls");
        assert_eq!(super::uri_transport("sips:pbx.example.com"), "tls");
        assert_eq!(super::uri_transport("sips:pbx;transport=tcp"), "tls");
        assert_eq!(super::uri_transport("sip:pbx;lr;transport=wss"), "wss");
    }
}
