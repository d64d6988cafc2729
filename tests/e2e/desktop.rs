//! The real desktop app (Tauri + WebKitGTK) under Xvfb, driven through WebDriver: what the
//! agent sees and clicks. Needs `tauri-driver`, `WebKitWebDriver` (webkit2gtk-driver) and
//! `Xvfb`; screenshots of failures go to `target/e2e-artifacts/` (CI keeps them).

use std::path::PathBuf;
use std::time::Duration;

use homeagent_testkit::crm_server::{CrmMode, CrmServer};
use homeagent_testkit::peers::baresip::{Baresip, BaresipOpts, Codec, SipAccount, Transport};
use homeagent_testkit::platform_server::PlatformServer;
use homeagent_testkit::webdriver::{DesktopApp, WebDriverError};
use homeagent_testkit::{
    Kamailio, KamailioOpts, Sipp, TempDir, ports, require, scenario, score_pesq,
};

use crate::common::{PESQ_FLOOR, SOUND_SERVER, WAIT, virtual_devices};

const UI_WAIT: Duration = Duration::from_secs(30);

fn desktop_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HOMEAGENT_DESKTOP_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("homeagent-desktop"))
        .find(|p| p.is_file())
        .expect("no homeagent-desktop binary: run `cargo build --workspace` first")
}

/// Waits until the element's `data-status` is `status`.
fn wait_status(app: &DesktopApp, test_id: &str, status: &str) -> Result<(), WebDriverError> {
    app.wait_until(&format!("{test_id} {status}"), UI_WAIT, |app| {
        app.attribute(test_id, "data-status")
            .ok()
            .flatten()
            .is_some_and(|s| s == status)
    })
}

fn artifacts() -> PathBuf {
    homeagent_testkit::repo_dir().join("target/e2e-artifacts")
}

/// Launches the app with no configuration at all (both config layers point to missing files).
fn launch_unconfigured(dir: &TempDir, extra: &[(&str, String)]) -> DesktopApp {
    let mut env = vec![
        (
            "HOMEAGENT_SYSTEM_CONFIG",
            dir.path().join("none/system.toml").display().to_string(),
        ),
        (
            "HOMEAGENT_USER_CONFIG",
            dir.path().join("none/user.toml").display().to_string(),
        ),
        ("LANG", "fr_FR.UTF-8".to_owned()),
        // Each test's app is its own single instance (tests run in parallel).
        (
            "HOMEAGENT_INSTANCE_SOCKET",
            dir.path().join("instance.sock").display().to_string(),
        ),
    ];
    env.extend(extra.iter().cloned());
    DesktopApp::launch(&desktop_bin(), &env, &artifacts()).expect("app under WebDriver")
}

#[test]
fn demo_mode_delivers_a_call_the_agent_answers_and_hangs_up_by_click() {
    if !require(&["tauri-driver", "WebKitWebDriver", "Xvfb"]) {
        return;
    }
    let dir = TempDir::new("desktop-demo").expect("temp dir");
    let app = launch_unconfigured(
        &dir,
        &[
            ("HOMEAGENT_DEMO_FIRST_CALL", "2".to_owned()),
            ("HOMEAGENT_DEMO_LENGTH", "60".to_owned()),
        ],
    );
    // Clearly labelled training mode, in French by default.
    let banner = app
        .wait_for("demo-banner", UI_WAIT)
        .map(|_| app.text("demo-banner"));
    let banner = banner.expect("demo banner").expect("banner text");
    assert!(banner.to_uppercase().contains("FORMATION"), "{banner}");
    // The training customer calls: the caller shows, answer by click.
    app.wait_for("incoming-call", UI_WAIT)
        .expect("incoming call");
    let caller = app.text("incoming-caller-number").unwrap_or_default()
        + &app.text("incoming-caller-name").unwrap_or_default();
    assert!(
        caller.contains("client-formation"),
        "caller shown: {caller:?}"
    );
    let _ = app.screenshot("incoming-call");
    app.click("answer-button", UI_WAIT).expect("answer");
    wait_status(&app, "active-call", "active").expect("active call");
    // The timer runs once the call is up.
    let first = app.text("call-timer").expect("timer");
    app.wait_until("timer running", UI_WAIT, |app| {
        app.text("call-timer")
            .is_ok_and(|t| t != first && !t.is_empty())
    })
    .expect("timer");
    let _ = app.screenshot("active-call");
    // Hold, then resume.
    app.click("hold-button", UI_WAIT).expect("hold");
    wait_status(&app, "active-call", "held").expect("held");
    app.click("hold-button", UI_WAIT).expect("resume");
    wait_status(&app, "active-call", "active").expect("resumed");
    // DTMF from the keypad, then hang up.
    app.click("dtmf-key-5", UI_WAIT).expect("dtmf 5");
    app.click("hangup-button", UI_WAIT).expect("hang up");
    app.wait_until("call ended", UI_WAIT, |app| {
        app.count("active-call").is_ok_and(|n| n == 0)
            || app
                .attribute("active-call", "data-status")
                .ok()
                .flatten()
                .is_some_and(|status| status == "ended")
    })
    .expect("call ended");
    // The history shows the answered call, number masked.
    app.click("tab-history", UI_WAIT).expect("history tab");
    app.wait_for("history-row", UI_WAIT).expect("history row");
    let result = app.attribute("history-row", "data-result").ok().flatten();
    assert_eq!(result.as_deref(), Some("answered"));
    let _ = app.screenshot("history");
}

/// A `tel:` link opened while the app runs reaches its dial pad; the second launch exits.
#[test]
fn tel_link_opened_while_running_fills_the_dial_pad_of_the_running_app() {
    if !require(&["tauri-driver", "WebKitWebDriver", "Xvfb"]) {
        return;
    }
    let dir = TempDir::new("desktop-link").expect("temp dir");
    let app = launch_unconfigured(&dir, &[("HOMEAGENT_DEMO_FIRST_CALL", "3600".to_owned())]);
    app.wait_for("dial-input", UI_WAIT).expect("dial pad");
    // The second launch finds the first (same socket) before it would open any window.
    let second = std::process::Command::new(desktop_bin())
        .arg("tel:+33-6-12-34-56-78")
        .env(
            "HOMEAGENT_INSTANCE_SOCKET",
            dir.path().join("instance.sock"),
        )
        .output()
        .expect("second launch");
    assert!(second.status.success(), "{second:?}");
    app.wait_until("number in the dial pad", UI_WAIT, |app| {
        app.property("dial-input", "value")
            .is_ok_and(|v| v == "+33612345678")
    })
    .expect("dial pad filled");
}

/// The app registered with Kamailio (the platform), configured by the system layer as IT
/// deploys it (the agent's microphone is the reference speech), and baresip `alice`
/// registered too.
struct LiveDesk {
    app: DesktopApp,
    alice: Baresip,
    kam: Kamailio,
    speech: PathBuf,
    /// The app's SIP port (the ACD, sipp, calls it there directly).
    sip_port: u16,
    dir: TempDir,
}

const LIVE_TOOLS: &[&str] = &[
    "tauri-driver",
    "WebKitWebDriver",
    "Xvfb",
    "kamailio",
    "baresip",
    "stdbuf",
    "python3",
];

impl LiveDesk {
    fn start(name: &str) -> Self {
        Self::start_with(name, "")
    }

    /// Like [`Self::start`], with more keys in the system configuration.
    fn start_with(name: &str, extra_config: &str) -> Self {
        let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
        let dir = TempDir::new(name).expect("temp dir");
        let port = ports::reserve(&[0, 2, 3, 4, 5, 6, 7, 8, 9]);
        let speech = Codec::Pcmu.speech_wav();
        let system = dir.path().join("system.toml");
        std::fs::write(
            &system,
            format!(
                "registrar = \"sip:127.0.0.1:{kam_port}\"\nuser = \"agent01\"\n\
                 bind = \"127.0.0.1:{port}\"\nrtp_ports = \"{}-{}\"\ncodecs = \"pcmu\"\n\
                 audio_in = \"{}\"\naudio_out = \"null\"\n{extra_config}",
                port + 2,
                port + 9,
                speech.display(),
                kam_port = kam.udp_port(),
            ),
        )
        .expect("system config");
        let app = DesktopApp::launch(
            &desktop_bin(),
            &[
                ("HOMEAGENT_SYSTEM_CONFIG", system.display().to_string()),
                (
                    "HOMEAGENT_USER_CONFIG",
                    dir.path().join("user.toml").display().to_string(),
                ),
                ("HOMEAGENT_PASSWORD", "agent01pw".to_owned()),
                ("LANG", "fr_FR.UTF-8".to_owned()),
                (
                    "HOMEAGENT_INSTANCE_SOCKET",
                    dir.path().join("instance.sock").display().to_string(),
                ),
            ],
            &artifacts(),
        )
        .expect("app under WebDriver");
        // Live mode: no training banner, registered with the platform.
        wait_status(&app, "registration-status", "registered").expect("registered");
        assert_eq!(app.count("demo-banner").ok(), Some(0));
        let alice = Self::registered_baresip(&kam, "alice");
        Self {
            app,
            alice,
            kam,
            speech,
            sip_port: port,
            dir,
        }
    }

    fn registered_baresip(kam: &Kamailio, user: &str) -> Baresip {
        let peer = Baresip::start(BaresipOpts {
            name: user.into(),
            account: Some(SipAccount {
                user: user.into(),
                password: format!("{user}pw"),
                registrar: format!("127.0.0.1:{}", kam.udp_port()),
                transport: Transport::Udp,
            }),
            ..BaresipOpts::default()
        })
        .expect("baresip starts");
        peer.wait_registered(WAIT).expect("baresip registers");
        peer
    }

    /// alice calls the agent through Kamailio; the caller shows; the agent answers by click.
    fn answered_call(&self) {
        self.alice
            .dial(&format!("sip:agent01@127.0.0.1:{}", self.kam.udp_port()))
            .expect("dial");
        self.app
            .wait_for("incoming-call", UI_WAIT)
            .expect("incoming call");
        let caller = self.app.text("incoming-call").unwrap_or_default();
        assert!(caller.contains("alice"), "caller shown: {caller:?}");
        self.app.click("answer-button", UI_WAIT).expect("answer");
        self.alice.wait_established(WAIT).expect("alice connected");
        wait_status(&self.app, "active-call", "active").expect("active call");
    }

    fn wait_call_ended(&self) {
        self.app
            .wait_until("call ended", UI_WAIT, |app| {
                app.count("active-call").is_ok_and(|n| n == 0)
                    || app
                        .attribute("active-call", "data-status")
                        .ok()
                        .flatten()
                        .is_some_and(|status| status == "ended")
            })
            .expect("call ended");
    }
}

/// Answer by click → the caller hears the agent → hang up by click → a masked history row.
#[test]
fn registered_app_rings_is_answered_by_click_and_the_caller_hears_the_agent() {
    if !require(LIVE_TOOLS) {
        return;
    }
    let desk = LiveDesk::start("desktop-live");
    desk.answered_call();
    // The agent's 21 s of speech reach the caller; then the agent hangs up by click.
    std::thread::sleep(Duration::from_secs(23));
    desk.app.click("hangup-button", UI_WAIT).expect("hang up");
    desk.alice.wait_closed(WAIT).expect("alice gets the BYE");
    let recording = desk.alice.wait_recording(WAIT).expect("alice's recording");
    let score = score_pesq(&desk.speech, &recording, Codec::Pcmu.pesq_mode()).expect("PESQ");
    eprintln!("desktop → baresip PCMU: PESQ {:.3}", score.pesq);
    assert!(score.pesq >= PESQ_FLOOR, "PESQ {:.3}", score.pesq);
    desk.app.click("tab-history", UI_WAIT).expect("history tab");
    desk.app
        .wait_for("history-row", UI_WAIT)
        .expect("history row");
    let number = desk.app.text("history-number").unwrap_or_default();
    assert!(number.contains("••") || number.contains("ice"), "{number}");
}

/// Hold by click: the caller gets a sendonly re-INVITE; resume by click: sendrecv again.
#[test]
fn hold_clicked_in_the_app_holds_the_caller_and_resume_brings_them_back() {
    if !require(LIVE_TOOLS) {
        return;
    }
    let desk = LiveDesk::start("desktop-hold");
    desk.answered_call();
    desk.app.click("hold-button", UI_WAIT).expect("hold");
    let hold = desk.alice.wait_hold_received(WAIT).expect("alice is held");
    assert!(hold.text.contains("a=sendonly"), "{}", hold.text);
    wait_status(&desk.app, "active-call", "held").expect("shown held");
    desk.app.click("hold-button", UI_WAIT).expect("resume");
    let resume = desk
        .alice
        .wait_resume_received(WAIT)
        .expect("alice resumed");
    assert!(resume.text.contains("a=sendrecv"), "{}", resume.text);
    wait_status(&desk.app, "active-call", "active").expect("shown active");
    desk.app.click("hangup-button", UI_WAIT).expect("hang up");
    desk.alice.wait_closed(WAIT).expect("alice gets the BYE");
}

/// Keypad digits clicked during the call reach the caller as RFC 4733 events, in order.
#[test]
fn dtmf_keys_clicked_in_the_app_reach_the_caller() {
    if !require(LIVE_TOOLS) {
        return;
    }
    let desk = LiveDesk::start("desktop-dtmf");
    desk.answered_call();
    for key in ["1", "5", "9", "hash"] {
        desk.app
            .click(&format!("dtmf-key-{key}"), UI_WAIT)
            .expect("keypad");
    }
    desk.alice
        .wait_log(r"received event: '#' \(end=1\)", WAIT)
        .expect("the last digit arrives");
    assert_eq!(desk.alice.received_dtmf(), "159#");
    desk.app.click("hangup-button", UI_WAIT).expect("hang up");
    desk.alice.wait_closed(WAIT).expect("alice gets the BYE");
}

/// Mute by click: the caller hears silence instead of the agent's speech; unmute: speech again.
#[test]
fn mute_clicked_in_the_app_silences_the_agent_for_the_caller() {
    if !require(LIVE_TOOLS) {
        return;
    }
    let desk = LiveDesk::start("desktop-mute");
    desk.answered_call();
    let established = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    desk.app.click("mute-button", UI_WAIT).expect("mute");
    desk.app
        .wait_for("muted-badge", UI_WAIT)
        .expect("shown muted");
    let muted_at = established.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    desk.app.click("mute-button", UI_WAIT).expect("unmute");
    let unmuted_at = established.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    desk.app.click("hangup-button", UI_WAIT).expect("hang up");
    desk.alice.wait_closed(WAIT).expect("alice gets the BYE");
    let recording = desk.alice.wait_recording(WAIT).expect("alice's recording");
    let levels = crate::common::levels(&recording);
    // 100 ms windows; a second of margin around each click for the round trips.
    let window = |from: Duration, to: Duration| {
        let (from, to) = (
            from.as_millis() as usize / 100,
            to.as_millis() as usize / 100,
        );
        levels.get(from..to.min(levels.len())).unwrap_or_default()
    };
    let loudest = |slice: &[f64]| slice.iter().copied().fold(f64::MIN, f64::max);
    let before = loudest(window(
        Duration::from_secs(1),
        muted_at - Duration::from_secs(1),
    ));
    let during = loudest(window(
        muted_at + Duration::from_secs(1),
        unmuted_at - Duration::from_millis(500),
    ));
    let after = loudest(window(
        unmuted_at + Duration::from_secs(1),
        unmuted_at + Duration::from_secs(4),
    ));
    eprintln!("caller hears: {before:.1} dBFS before, {during:.1} muted, {after:.1} after");
    assert!(before > -35.0 && after > -35.0, "speech before/after mute");
    assert!(during < -60.0, "silence while muted: {during:.1} dBFS");
}

/// Blind transfer typed and clicked: the caller gets the REFER, calls the target (bob, a second
/// baresip), and the agent's call ends as transferred.
#[test]
fn blind_transfer_clicked_in_the_app_sends_the_caller_to_the_target() {
    if !require(LIVE_TOOLS) {
        return;
    }
    let desk = LiveDesk::start("desktop-transfer");
    let bob = LiveDesk::registered_baresip(&desk.kam, "bob");
    desk.answered_call();
    desk.app
        .type_text("transfer-input", "bob", UI_WAIT)
        .expect("transfer target");
    desk.app
        .click("transfer-button", UI_WAIT)
        .expect("transfer");
    bob.wait_established(WAIT)
        .expect("alice reaches bob after the REFER");
    let refer = desk
        .alice
        .sip_messages()
        .into_iter()
        .find(|m| m.incoming && m.method() == Some("REFER"))
        .expect("alice received a REFER");
    let refer_to = refer.header("Refer-To").unwrap_or_default().to_owned();
    assert!(refer_to.contains("bob@"), "{refer_to}");
    desk.wait_call_ended();
    desk.app.click("tab-history", UI_WAIT).expect("history tab");
    desk.app
        .wait_for("history-row", UI_WAIT)
        .expect("history row");
    let result = desk
        .app
        .attribute("history-row", "data-result")
        .ok()
        .flatten();
    assert_eq!(result.as_deref(), Some("transferred"));
}

/// A headset plugged in during a call takes over the agent's audio (a preference rule matches
/// it), the settings list it, and pulling it out gives the audio back to the default devices:
/// the call goes on throughout. The "headset" is a PulseAudio null sink loaded and unloaded
/// during the call (its monitor is the headset microphone).
#[test]
fn a_headset_plugged_in_during_a_call_takes_over_and_gives_back_the_audio() {
    if !require(&["tauri-driver", "WebKitWebDriver", "Xvfb"]) || !virtual_devices() {
        return;
    }
    let _server = SOUND_SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("desktop-hotplug").expect("temp dir");
    let user = dir.path().join("user.toml");
    std::fs::write(&user, "preferred_devices = [\"hotplug-headset\"]\n").expect("user config");
    let socket = dir.path().join("instance.sock").display().to_string();
    let app = launch_unconfigured(
        &dir,
        &[
            ("HOMEAGENT_USER_CONFIG", user.display().to_string()),
            ("HOMEAGENT_INSTANCE_SOCKET", socket.clone()),
            ("HOMEAGENT_DEVICE_POLL", "0.5".to_owned()),
            ("HOMEAGENT_DEMO_FIRST_CALL", "1".to_owned()),
            ("HOMEAGENT_DEMO_LENGTH", "120".to_owned()),
        ],
    );
    app.wait_for("incoming-call", UI_WAIT)
        .expect("incoming call");
    app.click("answer-button", UI_WAIT).expect("answer");
    wait_status(&app, "active-call", "active").expect("active call");
    let pid = process_with_env("HOMEAGENT_INSTANCE_SOCKET", &socket).expect("the app's pid");
    // Before: the default speaker and microphone.
    wait_for_stream(&pid, "vspeaker", "vmic").expect("on the default devices");

    let headset = PulseModule::load(&[
        "module-null-sink",
        "sink_name=hotplug-headset",
        "sink_properties=device.description=HotplugHeadset",
    ])
    .expect("headset plugged in");
    wait_for_stream(&pid, "hotplug-headset", "hotplug-headset.monitor")
        .expect("the call's audio moves to the headset");
    // The settings list the new device.
    app.click("tab-settings", UI_WAIT).expect("settings tab");
    app.wait_until("headset listed", UI_WAIT, |app| {
        app.text("settings-speaker")
            .is_ok_and(|t| t.contains("hotplug-headset"))
    })
    .expect("headset in the speaker list");

    drop(headset);
    app.wait_until("headset unlisted", UI_WAIT, |app| {
        app.text("settings-speaker")
            .is_ok_and(|t| !t.contains("hotplug-headset"))
    })
    .expect("headset gone from the list");
    // Leaving the settings stops their level meter (a capture stream of its own).
    app.click("tab-phone", UI_WAIT).expect("phone tab");
    wait_for_stream(&pid, "vspeaker", "vmic").expect("back on the default devices");
    wait_status(&app, "active-call", "active").expect("the call went on");
    app.click("hangup-button", UI_WAIT).expect("hang up");
}

/// A PulseAudio module, unloaded on drop (a device pulled out).
struct PulseModule(String);

impl PulseModule {
    fn load(args: &[&str]) -> Option<Self> {
        let output = std::process::Command::new("pactl")
            .arg("load-module")
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| Self(String::from_utf8_lossy(&output.stdout).trim().to_owned()))
    }
}

impl Drop for PulseModule {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pactl")
            .args(["unload-module", &self.0])
            .status();
    }
}

/// The pid of the process whose environment has `name=value` (the app, started by
/// tauri-driver, is not our child).
fn process_with_env(name: &str, value: &str) -> Option<String> {
    let wanted = format!("{name}={value}");
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        let found = std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid = entry.file_name().to_string_lossy().into_owned();
                let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
                let environ = std::fs::read(entry.path().join("environ")).ok()?;
                (comm.trim().starts_with("homeagent-desk")
                    && environ
                        .split(|b| *b == 0)
                        .any(|var| var == wanted.as_bytes()))
                .then_some(pid)
            });
        if found.is_some() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Waits until the process `pid` plays on the sink `sink` and records from the source `source`
/// (and from nothing else).
fn wait_for_stream(pid: &str, sink: &str, source: &str) -> Result<(), String> {
    let deadline = std::time::Instant::now() + UI_WAIT;
    let mut seen = (Vec::new(), Vec::new());
    while std::time::Instant::now() < deadline {
        seen = (
            pulse_streams("sink-inputs", "sinks", pid),
            pulse_streams("source-outputs", "sources", pid),
        );
        if seen.0 == [sink] && seen.1 == [source] {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "expected playback on {sink} and capture from {source}; saw {seen:?}"
    ))
}

/// The names of the sinks (or sources) the streams of process `pid` are on.
fn pulse_streams(streams: &str, devices: &str, pid: &str) -> Vec<String> {
    let pactl = |args: &[&str]| {
        std::process::Command::new("pactl")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let names: std::collections::HashMap<String, String> = pactl(&["list", "short", devices])
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .collect();
    let owner = format!("application.process.id = \"{pid}\"");
    let mut on = Vec::new();
    // One block per stream: "Sink Input #3", then "Sink: 1" (or "Source: 2"), properties.
    for block in pactl(&["list", streams]).split("\n\n") {
        if !block.contains(&owner) {
            continue;
        }
        let device = block.lines().find_map(|line| {
            let line = line.trim();
            line.strip_prefix("Sink: ")
                .or_else(|| line.strip_prefix("Source: "))
        });
        if let Some(name) = device.and_then(|index| names.get(index.trim())) {
            on.push(name.clone());
        }
    }
    on.sort();
    on
}

/// The ACD (sipp, the configured platform) delivers a call asking for auto-answer: the app
/// answers by itself and shows the customer card from the CRM; the CRM's HTML arrives as text
/// (no element, no script); the agent picks a disposition and the platform gets the wrap-up.
#[test]
fn the_platforms_call_shows_the_customer_card_as_text_and_the_wrapup_reaches_the_platform() {
    if !require(LIVE_TOOLS) || !require(&["sipp"]) {
        return;
    }
    let crm = CrmServer::start().expect("CRM");
    crm.set_mode(CrmMode::Malicious);
    let platform = PlatformServer::start().expect("platform");
    let config = format!(
        "platform = \"127.0.0.1\"\ncontext_url = \"{}/customers?id={{header:X-Customer-Id}}\"\n\
         platform_api = \"{}\"\ndispositions = [\"SALE=Vente\", \"INFO=Information\"]\n\
         wrapup_time = 60.0\n",
        crm.base_url(),
        platform.base_url(),
    );
    let desk = LiveDesk::start_with("desktop-acd", &config);
    let app = &desk.app;
    wait_status(app, "agent-state", "ready").expect("agent ready");
    let peer = format!("127.0.0.1:{}", desk.sip_port);
    let sipp = Sipp::spawn(scenario("acd_autoanswer.xml"), &["-s", "agent01", &peer])
        .expect("sipp plays the ACD");
    // Answered by itself: the call is active without a click, the card shows.
    wait_status(app, "active-call", "active").expect("auto-answered");
    app.wait_for("customer-field", UI_WAIT)
        .expect("customer card");
    let html = app
        .property("customer-card", "innerHTML")
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    assert!(
        html.contains("&lt;img"),
        "the CRM's HTML shows as text: {html}"
    );
    assert!(!html.contains("<img"), "no element from the CRM: {html}");
    let _ = app.screenshot("customer-card");
    let result = sipp.wait(WAIT).expect("sipp ends");
    assert!(result.success, "{}\n{}", result.output, result.errors);
    // After-call work: the wrap-up form; pick "Vente", add a note, submit.
    app.wait_for("wrapup-disposition", UI_WAIT)
        .expect("wrap-up form");
    app.type_text("wrapup-filter", "Ven", UI_WAIT)
        .expect("filter");
    app.click("wrapup-disposition", UI_WAIT)
        .expect("disposition list");
    desk.app
        .wait_until("disposition chosen", UI_WAIT, |app| {
            choose_first_option(app, "wrapup-disposition")
        })
        .expect("disposition chosen");
    app.type_text("wrapup-note", "rappel demain", UI_WAIT)
        .expect("note");
    app.click("wrapup-submit", UI_WAIT).expect("submit");
    let deadline = std::time::Instant::now() + WAIT;
    while platform.wrapups().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let wrapups = platform.wrapups();
    assert_eq!(wrapups.len(), 1, "{wrapups:?}");
    assert_eq!(wrapups[0]["disposition"], "SALE");
    assert_eq!(wrapups[0]["note"], "rappel demain");
}

/// Selects the first option of a `<select>` by clicking it (WebDriver has no "select" verb).
fn choose_first_option(app: &DesktopApp, test_id: &str) -> bool {
    app.select_first_option(test_id).is_ok()
        && app
            .property(test_id, "value")
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .is_some_and(|v| !v.is_empty())
}

/// SIGTERM (the laptop shuts down, the session ends) exits like the agent quitting: the call
/// is hung up, the account unregistered and the agent logged out of the platform.
#[test]
fn sigterm_hangs_up_unregisters_and_logs_the_agent_out() {
    if !require(LIVE_TOOLS) {
        return;
    }
    let platform = PlatformServer::start().expect("platform");
    let config = format!(
        "platform_api = \"{}\"\nagent = \"agent01\"\n",
        platform.base_url()
    );
    let desk = LiveDesk::start_with("desktop-sigterm", &config);
    wait_status(&desk.app, "agent-state", "ready").expect("agent ready");
    assert_eq!(platform.sessions(), vec![("agent01".to_owned(), true)]);
    desk.answered_call();
    let socket = desk.dir.path().join("instance.sock");
    let pid = process_with_env("HOMEAGENT_INSTANCE_SOCKET", &socket.display().to_string())
        .expect("the app's pid");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    desk.alice
        .wait_closed(WAIT)
        .expect("the caller is hung up on");
    let deadline = std::time::Instant::now() + WAIT;
    let proc_dir = PathBuf::from("/proc").join(&pid);
    while proc_dir.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!proc_dir.exists(), "the app exits");
    assert_eq!(
        platform.sessions().last(),
        Some(&("agent01".to_owned(), false)),
        "logged out: {:?}",
        platform.sessions()
    );
    let contacts = desk.kam.registered_contacts().expect("ul.dump");
    assert!(
        !contacts.iter().any(|(user, _)| user.starts_with("agent01")),
        "unregistered: {contacts:?}"
    );
}
