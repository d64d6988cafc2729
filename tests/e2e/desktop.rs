//! The real desktop app (Tauri + WebKitGTK) under Xvfb, driven through WebDriver: what the
//! agent sees and clicks. Needs `tauri-driver`, `WebKitWebDriver` (webkit2gtk-driver) and
//! `Xvfb`; screenshots of failures go to `target/e2e-artifacts/` (CI keeps them).

use std::path::PathBuf;
use std::time::Duration;

use homeagent_testkit::webdriver::DesktopApp;
use homeagent_testkit::{TempDir, require};

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
    app.wait_until("call active", UI_WAIT, |app| {
        app.attribute("active-call", "data-status")
            .ok()
            .flatten()
            .is_some_and(|status| status == "active")
    })
    .expect("active call");
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
    app.wait_until("held", UI_WAIT, |app| {
        app.attribute("active-call", "data-status")
            .ok()
            .flatten()
            .is_some_and(|status| status == "held")
    })
    .expect("held");
    app.click("hold-button", UI_WAIT).expect("resume");
    app.wait_until("resumed", UI_WAIT, |app| {
        app.attribute("active-call", "data-status")
            .ok()
            .flatten()
            .is_some_and(|status| status == "active")
    })
    .expect("resumed");
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
