//! Starting `homeagent` the way users do, and reading its JSON events.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use homeagent_testkit::peers::baresip::{Baresip, BaresipOpts, SipAccount, Transport};
use homeagent_testkit::{HomeagentProcess, Kamailio, ports, require};
use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(15);
/// A call whose audio input is a 21 s WAV ends by itself about a second after it.
pub const SPEECH_CALL: Duration = Duration::from_secs(60);
/// What our tests demand of speech carried by a call (PESQ, `shared/scripts/score.py`).
pub const PESQ_FLOOR: f64 = 3.8;

/// A `homeagent` process on its own SIP port and RTP range, with `--json`.
pub struct Ha {
    pub process: HomeagentProcess,
    pub port: u16,
}

impl Ha {
    /// `homeagent MODE ARGS... --bind 127.0.0.1:PORT --rtp-ports ... --json`.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Ha {
        // SIP on base; RTP pairs on base+2 .. base+9.
        let port = ports::reserve(&[0, 2, 3, 4, 5, 6, 7, 8, 9]);
        let bind = format!("127.0.0.1:{port}");
        let rtp = format!("{}-{}", port + 2, port + 9);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--bind", &bind, "--rtp-ports", &rtp, "--json"]);
        if !args.contains(&"--log-level") {
            all.extend(["--log-level", "info"]);
        }
        let process = HomeagentProcess::spawn(&all, env).expect("homeagent starts");
        let ha = Ha { process, port };
        ha.event("ready", WAIT);
        ha
    }

    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.port)
    }

    /// Waits for the first event named `name`.
    pub fn event(&self, name: &str, timeout: Duration) -> Value {
        self.process
            .wait_event(|e| e["event"] == name, timeout)
            .unwrap_or_else(|e| {
                panic!(
                    "no {name:?} event: {e}\nevents: {:?}",
                    self.process.events()
                )
            })
    }

    pub fn command(&self, json: &str) {
        self.process.send_line(json).expect("stdin command");
    }

    /// Waits for the exit and returns (exit code, the summary event). The temp dir (and the
    /// recordings in it) lives as long as `self`.
    pub fn finish(&mut self, timeout: Duration) -> (i32, Value) {
        let (code, summary, _) = self.finish_with_output(timeout);
        (code, summary)
    }

    /// Like [`Ha::finish`], also returning everything it printed (stdout and stderr).
    pub fn finish_with_output(&mut self, timeout: Duration) -> (i32, Value, String) {
        let status = self.process.wait_exit(timeout).unwrap_or_else(|e| {
            panic!(
                "homeagent did not exit: {e}\nevents: {:?}",
                self.process.events()
            )
        });
        let events = self.process.events();
        let summary = events
            .iter()
            .rev()
            .find(|e| e["event"] == "summary")
            .cloned();
        let summary = summary.unwrap_or_else(|| {
            panic!(
                "no summary; events: {events:?}\nlog: {}",
                self.process.process().tail(30)
            )
        });
        let output = self.process.process().lines().join("\n");
        (status.code().unwrap_or(-1), summary, output)
    }

    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }
}

/// Asserts a summary describes a call that carried media in both directions.
pub fn assert_media_flowed(summary: &Value, codec: &str) {
    assert_eq!(summary["codec"], codec, "{summary}");
    let sent = summary["packets_sent"].as_u64().unwrap_or(0);
    let received = summary["packets_received"].as_u64().unwrap_or(0);
    assert!(sent > 50 && received > 50, "too few packets: {summary}");
    assert!(
        summary["duration_s"].as_f64().unwrap_or(0.0) > 1.0,
        "{summary}"
    );
}

/// Device tests share one sound server: one at a time.
pub static SOUND_SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether the virtual PulseAudio devices of `shared/scripts/virtual-audio.sh` are up.
pub fn virtual_devices() -> bool {
    if !require(&["pactl", "paplay", "parec"]) {
        return false;
    }
    let up = Command::new("pactl")
        .args(["list", "short", "sinks"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("vspeaker")
        });
    let required = std::env::var("HOMEAGENT_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    assert!(
        up || !required,
        "no virtual PulseAudio devices (run shared/scripts/virtual-audio.sh)"
    );
    if !up {
        eprintln!("SKIP: no virtual PulseAudio devices");
    }
    up
}

/// RMS of each 100 ms of a 16-bit mono WAV (dBFS).
pub fn levels(path: &std::path::Path) -> Vec<f64> {
    let bytes = std::fs::read(path).expect("recording");
    let data = bytes
        .windows(4)
        .position(|w| w == b"data")
        .map(|at| &bytes[at + 8..])
        .expect("WAV data chunk");
    let rate = u32::from_le_bytes(bytes[24..28].try_into().expect("rate")) as usize;
    let samples: Vec<f64> = data
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    samples
        .chunks(rate / 10)
        .map(|chunk| {
            let energy = chunk.iter().map(|s| s * s).sum::<f64>() / chunk.len() as f64;
            10.0 * energy.max(1e-10).log10()
        })
        .collect()
}

/// Places 20 calls to `target` from a registered `ha` (hang-up after each `established`),
/// prints the median set-up time (stdin `call` → `established`) and shuts `ha` down; the
/// summary must name `transport`. A figure for the closing notes, not a threshold.
pub fn print_median_call_setup(ha: Ha, target: &str, transport: &str) {
    print_median_setup_until(ha, target, transport, "established");
}

/// [`print_median_call_setup`] up to the event `until` of each call (e.g. `ice_connected`:
/// media keyed by DTLS over the pair ICE chose).
pub fn print_median_setup_until(mut ha: Ha, target: &str, transport: &str, until: &str) {
    let mut setups = Vec::new();
    for _ in 0..20 {
        let mark = ha.process.process().mark();
        let started = std::time::Instant::now();
        ha.command(&format!(r#"{{"command":"call","uri":"{target}"}}"#));
        let (_, established) = ha
            .process
            .wait_event_from(mark, |e| e["event"] == until, WAIT)
            .unwrap_or_else(|e| panic!("no {until}: {e}"));
        setups.push(started.elapsed());
        let call = &established["call"];
        ha.command(&format!(r#"{{"command":"hangup","call":{call}}}"#));
        ha.process
            .wait_event_from(
                mark,
                |e: &Value| e["event"] == "ended" && e["call"] == *call,
                WAIT,
            )
            .expect("ended");
    }
    ha.command(r#"{"command":"shutdown"}"#);
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["transport"], transport, "{summary}");
    setups.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    if let (Some(first), Some(median), Some(last)) =
        (setups.first(), setups.get(setups.len() / 2), setups.last())
    {
        eprintln!(
            "call set-up over {transport} (to {until}): median {:.1} ms (min {:.1}, max {:.1}) of {}",
            ms(median),
            ms(first),
            ms(last),
            setups.len()
        );
    }
}

/// A baresip registered with Kamailio over UDP as `user`.
pub fn registered_baresip(kam: &Kamailio, user: &str, password: &str) -> Baresip {
    let account = SipAccount {
        user: user.into(),
        password: password.into(),
        registrar: kam.addr(),
        transport: Transport::Udp,
    };
    let peer = Baresip::start(BaresipOpts {
        name: user.into(),
        account: Some(account),
        record: false,
        ..BaresipOpts::default()
    })
    .expect("baresip starts");
    peer.wait_registered(WAIT).expect("baresip registers");
    peer
}

/// `agent01` registers with `registrar` (trusting `ca`), `check_registration` looks at how
/// Kamailio stored it, a baresip `alice` calls the agent through Kamailio, the agent answers
/// (a tone, hang-up after 3 s); returns the summary once alice got the BYE.
pub fn alice_calls_the_registered_agent(
    kam: &Kamailio,
    registrar: &str,
    ca: &str,
    check_registration: impl Fn(&Kamailio),
) -> Value {
    let mut ha = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--registrar",
            registrar,
            "--ca-file",
            ca,
            "--user",
            "agent01",
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--hangup-after",
            "3",
        ],
        &[("HOMEAGENT_PASSWORD", "agent01pw")],
    );
    ha.event("registered", WAIT);
    check_registration(kam);
    let alice = registered_baresip(kam, "alice", "alicepw");
    alice
        .dial(&format!("sip:agent01@127.0.0.1:{}", kam.udp_port()))
        .expect("dial");
    ha.event("incoming", WAIT);
    ha.event("established", WAIT);
    alice.wait_established(WAIT).expect("alice established");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert_media_flowed(&summary, "pcmu");
    alice.wait_closed(WAIT).expect("alice gets the BYE");
    summary
}
